package address

import (
	"hash/maphash"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestSortedDomains merges sets whose domains share their first sixteen
// bytes (the entries' keys), overlap across workers and spill to a set's
// overflow map, and wants each domain once, in byte order.
func TestSortedDomains(t *testing.T) {
	s := NewBatchNormalizer(memory.NewGoAllocator(), nil, 3, testSchema, testColumns)
	defer s.Release()
	seed := maphash.MakeSeed()
	r := rand.New(rand.NewPCG(1, 2))
	want := map[string]bool{}
	prefixes := []string{"", "a", "averyveryverylongprefix", "averyveryverylongprefiy", "sixteenbytes-exa"}
	for i := range 3000 {
		d := prefixes[r.IntN(len(prefixes))] + strings.Repeat("z", r.IntN(3)) + string(rune('a'+r.IntN(26))) + ".example"
		if i%7 == 0 {
			d = "shared" + d // in every set
		}
		want[d] = true
		for w, c := range s.caches {
			if i%7 == 0 || i%len(s.caches) == w {
				if i%11 == 0 {
					// As a hash collision leaves it: in the overflow map.
					if c.domains.extra == nil {
						c.domains.extra = map[string]struct{}{}
					}
					c.domains.extra[d] = struct{}{}
					continue
				}
				c.domains.add(d, maphash.String(seed, d))
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
		t.Fatalf("SortedDomains: %d domains %.8q…, want %d %.8q…", len(got), got, len(wantList), wantList)
	}
	// Stopping early stops the merge.
	n := 0
	for range s.SortedDomains() {
		if n++; n == 5 {
			break
		}
	}
}
