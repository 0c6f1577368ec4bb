package address

import (
	"bytes"
	"hash/maphash"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestSortedDomains merges the domains of the workers' cache entries
// (hosts sharing a domain, domains sharing their first sixteen bytes, the
// entries' keys), their kept sets (emptied caches, hash collisions' overflow
// maps) and domains in several workers, and wants each domain once, in
// byte order.
func TestSortedDomains(t *testing.T) {
	// Two lists are merged without the heap: two workers, or one with
	// overflow domains.
	for _, c := range []struct {
		workers      int
		extra, reset bool
	}{{1, false, false}, {1, true, false}, {2, false, false}, {2, true, false}, {3, true, false}, {2, false, true}, {3, true, true}} {
		testSortedDomains(t, c.workers, c.extra, c.reset)
	}
}

func testSortedDomains(t *testing.T, workers int, extra, reset bool) {
	s := NewBatchNormalizer(memory.NewGoAllocator(), nil, workers, testSchema, testColumns)
	defer s.Release()
	seed := s.seed
	if reset {
		for _, c := range s.caches {
			c.size = 50 // emptied every 50 hosts, its domains kept
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	want := map[string]bool{}
	prefixes := []string{"", "a", "averyveryverylongprefix", "averyveryverylongprefiy", "sixteenbytes-exa"}
	for i := range 3000 {
		d := prefixes[r.IntN(len(prefixes))] + strings.Repeat("z", r.IntN(3)) + string(rune('a'+r.IntN(26))) + ".example"
		if i%7 == 0 {
			d = "shared" + d // in every worker
		}
		want[d] = true
		for w, c := range s.caches {
			if i%7 == 0 || i%len(s.caches) == w {
				switch {
				case extra && i%11 == 0:
					// As a hash collision leaves it: in the overflow map.
					if c.kept.extra == nil {
						c.kept.extra = map[string]struct{}{}
					}
					c.kept.extra[d] = struct{}{}
				case i%5 == 0:
					c.kept.add(d, maphash.String(seed, d))
				default:
					// Its host, and now and then another host of it.
					for _, h := range []string{d, "mail." + d}[:1+i%2] {
						c.get(h, maphash.String(seed, h), nil, seed)
					}
				}
				if i%50 == 0 {
					c.startBatch(seed)
				}
			}
		}
	}
	var got []string
	for d := range s.SortedDomains() {
		got = append(got, string(d))
	}
	wantList := slices.Sorted(func(yield func(string) bool) {
		for d := range want {
			if !yield(d) {
				return
			}
		}
	})
	if !slices.Equal(got, wantList) {
		t.Fatalf("SortedDomains of %d workers (overflow %t, emptied %t): %d domains %.8q…, want %d %.8q…", workers, extra, reset, len(got), got, len(wantList), wantList)
	}
	if n := s.DistinctDomains(); n != int64(len(wantList)) {
		t.Errorf("DistinctDomains = %d, want %d", n, len(wantList))
	}
	// Stopping early stops the merge.
	n := 0
	for range s.SortedDomains() {
		if n++; n == 5 {
			break
		}
	}
}

// BenchmarkSortedDomains sorts and merges the domains of a snapshot's
// normalizer on two workers: 340,000 domains, the size of bench/snapshot's
// list, a third of them seen by both workers.
func BenchmarkSortedDomains(b *testing.B) {
	s := NewBatchNormalizer(memory.NewGoAllocator(), nil, 2, testSchema, testColumns)
	defer s.Release()
	seed := maphash.MakeSeed()
	tlds := []string{".com", ".org", ".net", ".io", ".dev", ".co.uk", ".de", ".fr", ".com.au", ".nl"}
	for i := range 340_000 {
		d := "site" + strconv.Itoa(i*7919%1_000_003) + tlds[i%len(tlds)]
		for w, c := range s.caches {
			if i%3 == 0 || i%2 == w {
				c.get(d, maphash.String(seed, d), nil, seed)
			}
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for range s.SortedDomains() {
			n++
		}
		if n != 340_000 {
			b.Fatalf("%d domains", n)
		}
	}
}

// The radix sort orders keys as bytes.Compare does, whatever their shared
// prefixes, lengths (keys are zero-padded: "a" and "a\x00" tie on theirs)
// and part sizes.
func TestRadixSortEntries(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 47, 48, 49, 1000, 50_000} {
		var strs [][]byte
		for range n {
			b := []byte(strings.Repeat("ab", r.IntN(12)))
			for range r.IntN(6) {
				b = append(b, "a\x00bz.-"[r.IntN(6)])
			}
			strs = append(strs, b)
		}
		l := &sortedList{at: func(v uint64) []byte { return strs[v] }}
		for i, s := range strs {
			l.ents = append(l.ents, newSortedEntry(s, uint64(i)))
		}
		l.sort()
		for i := 1; i < len(l.ents); i++ {
			if a, b := strs[l.ents[i-1].v], strs[l.ents[i].v]; bytes.Compare(a, b) > 0 {
				t.Fatalf("n=%d: %q before %q", n, a, b)
			}
		}
		if len(l.ents) != n {
			t.Fatalf("n=%d: %d entries after the sort", n, len(l.ents))
		}
	}
}
