package address

import (
	"fmt"
	"hash/maphash"
	"maps"
	"math"
	"reflect"
	"runtime"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/lapse-dev/lapse/sources/emails"
)

// testSchema is a snapshot's: the source's columns, then the three the
// normalizer adds.
var testSchema = arrow.NewSchema(append(append([]arrow.Field(nil), emails.Schema.Fields()...),
	arrow.Field{Name: "host", Type: arrow.BinaryTypes.String, Nullable: true},
	arrow.Field{Name: "domain", Type: arrow.BinaryTypes.String, Nullable: true},
	arrow.Field{Name: "invalid_reason", Type: arrow.BinaryTypes.String, Nullable: true},
), nil)

var testColumns = BatchColumns{UserID: 1, Email: 2, Verified: 3}

// TestHostCacheCollisions forces hash collisions in the batch normalizer's
// pointer-free caches: hosts and domains sharing a hash must never be
// mixed up, and a full cache empties between batches without losing the
// distinct domains (it keeps them in its set).
func TestHostCacheCollisions(t *testing.T) {
	seed := maphash.MakeSeed()
	c := newHostCache(2)
	check := func(i uint32, host, domain, reason string) {
		t.Helper()
		h, d, r := c.host(i)
		if string(h) != host || string(d) != domain || r != reason {
			t.Errorf("entry %d: got (%q, %q, %q), want (%q, %q, %q)", i, h, d, r, host, domain, reason)
		}
	}
	const same = 42 // one hash for every raw host
	a := c.get("Mail.Example.COM", same, nil, seed)
	b := c.get("other.co.uk", same, nil, seed)
	p := c.get("co.uk", same, nil, seed)
	check(a, "mail.example.com", "example.com", "")
	check(b, "other.co.uk", "other.co.uk", "")
	check(p, "co.uk", "", ReasonPublicSuffix)
	if again := c.get("Mail.Example.COM", same, nil, seed); again != a {
		t.Errorf("cached host not found again: %d, want %d", again, a)
	}
	check(c.get("other.co.uk", same, nil, seed), "other.co.uk", "other.co.uk", "")

	c.startBatch(seed) // over its size of 2: emptied
	if len(c.ents) != 0 || c.index.n != 0 {
		t.Fatalf("full cache not emptied: %d entries, %d indexed", len(c.ents), c.index.n)
	}
	if got := setDomains(&c.kept); !slices.Equal(got, []string{"example.com", "other.co.uk"}) {
		t.Errorf("emptied cache kept %q, want its entries' domains", got)
	}
	check(c.get("bücher.de", same, nil, seed), "xn--bcher-kva.de", "xn--bcher-kva.de", "")

	// An arena that would overflow spills to strings, still correct.
	defer func(l uint64) { arenaLimit = l }(arenaLimit)
	arenaLimit = uint64(len(c.arena)) + 10
	sp := c.get("Spilled.Example.ORG", 43, nil, seed)
	check(sp, "spilled.example.org", "example.org", "")
	if !c.ents[sp].spilled {
		t.Error("host past the arena limit not spilled")
	}
	check(c.get("co.uk", 44, nil, seed), "co.uk", "", ReasonPublicSuffix)
	if got := setDomains(&c.kept); !slices.Contains(got, "example.org") {
		t.Errorf("spilled host's domain not kept: %q", got)
	}
	arenaLimit = math.MaxUint32

	// Two workers' domain sets, with colliding hashes inside one of them.
	s := &BatchNormalizer{seed: seed, caches: []*hostCache{newHostCache(8), newHostCache(8)}}
	s.caches[0].kept.add("a.com", 7)
	s.caches[0].kept.add("b.com", 7) // collision: kept apart
	s.caches[0].kept.add("a.com", 7)
	s.caches[0].kept.add("b.com", 7)
	for _, d := range []string{"a.com", "b.com", "c.com"} {
		s.caches[1].kept.add(d, maphash.String(seed, d))
	}
	if got := setDomains(&s.caches[0].kept); !slices.Equal(got, []string{"a.com", "b.com"}) {
		t.Errorf("domain set under a collision holds %q, want a.com and b.com once each", got)
	}
	// a.com and b.com are in both sets, under different hashes in each,
	// and in the second worker's entries: counting by content still
	// finds 4.
	s.caches[1].kept = domainSet{index: newHashIndex(0)}
	for _, d := range []string{"a.com", "b.com", "c.com"} {
		s.caches[1].kept.add(d, 7)
	}
	for i, h := range []string{"a.com", "mail.b.com", "b.com", "d.com", "mx.d.com"} {
		s.caches[1].get(h, uint64(100+i), nil, seed)
	}
	if n := s.DistinctDomains(); n != 4 {
		t.Errorf("distinct domains = %d, want 4", n)
	}
}

// setDomains is the domains of set, sorted.
func setDomains(set *domainSet) []string {
	var out []string
	set.index.each(func(_, v uint64) { out = append(out, string(set.at(v))) })
	for d := range set.extra {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// TestBatchNormalizer runs the batch normalizer on batches of tricky
// addresses, with one worker and several, with and without a Normalizer,
// and checks every row and count against Normalize.
func TestBatchNormalizer(t *testing.T) {
	var addrs []string
	for i := range 3000 {
		addrs = append(addrs,
			fmt.Sprintf("u%d@Host%d.Example%d.COM", i, i%7, i%50),
			fmt.Sprintf("v%d@bücher%d.de", i, i%13),
			fmt.Sprintf("w%d@mail.corp%d.co.uk.", i, i%40))
		if i%100 == 0 {
			addrs = append(addrs, "nobody", "x@[192.0.2.1]", "y@co.uk", "z@a..b.com", "@example.org", " ", "q@１２７.０.０.１")
		}
	}
	wantDomains := map[string]bool{}
	wantReasons := map[string]int64{}
	for _, a := range addrs {
		r := Normalize(a)
		if r.Domain != "" {
			wantDomains[r.Domain] = true
		}
		if r.InvalidReason != "" {
			wantReasons[r.InvalidReason]++
		}
	}
	for _, tc := range []struct {
		workers int
		norm    *Normalizer
	}{{1, nil}, {3, nil}, {2, NewNormalizer(4)}} {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		s := NewBatchNormalizer(mem, tc.norm, tc.workers, testSchema, testColumns)
		for _, c := range s.caches {
			c.size = 50 // small, so caches empty between batches
		}
		for lo := 0; lo < len(addrs); lo += 2500 {
			batch := addrs[lo:min(lo+2500, len(addrs))]
			rb := array.NewRecordBuilder(mem, emails.Schema)
			for i, a := range batch {
				rb.Field(0).(*array.Int64Builder).Append(int64(lo + i))
				rb.Field(1).AppendNull()
				rb.Field(2).(*array.StringBuilder).Append(a)
				rb.Field(3).(*array.BooleanBuilder).Append(i%4 != 0)
				rb.Field(4).(*array.BooleanBuilder).Append(false)
				rb.Field(5).AppendNull()
				rb.Field(6).AppendNull()
			}
			in := rb.NewRecordBatch()
			rb.Release()
			out := s.Normalize(in)
			in.Release()
			cols := len(emails.Schema.Fields())
			host, domain, reason := out.Column(cols).(*array.String), out.Column(cols+1).(*array.String), out.Column(cols+2).(*array.String)
			for i, a := range batch {
				r := Normalize(a)
				got := Result{Email: a, Host: host.Value(i), Domain: domain.Value(i), InvalidReason: reason.Value(i)}
				if got != r || host.IsNull(i) != (r.Host == "") || domain.IsNull(i) != (r.Domain == "") || reason.IsNull(i) != (r.InvalidReason == "") {
					t.Fatalf("workers %d: row %q: got %+v (nulls %v %v %v), want %+v", tc.workers, a, got, host.IsNull(i), domain.IsNull(i), reason.IsNull(i), r)
				}
			}
			out.Release()
		}
		if s.counts.Addresses != int64(len(addrs)) || !reflect.DeepEqual(s.counts.Reasons, wantReasons) {
			t.Errorf("workers %d: read %d, reasons %v; want %d, %v", tc.workers, s.counts.Addresses, s.counts.Reasons, len(addrs), wantReasons)
		}
		if n := s.DistinctDomains(); n != int64(len(wantDomains)) {
			t.Errorf("workers %d: %d distinct domains, want %d", tc.workers, n, len(wantDomains))
		}
		// The domain list, each once, sorted: the snapshot's domains file.
		want := slices.Sorted(maps.Keys(wantDomains))
		if got := s.Domains(); !slices.Equal(got, want) {
			t.Errorf("workers %d: Domains() = %d domains %.5q…, want %d %.5q…", tc.workers, len(got), got, len(want), want)
		}
		s.Release()
		mem.AssertSize(t, 0)
	}
}

// BenchmarkBatchNormalizer runs the snapshot's batch normalizer over the mix
// of bench/snapshot (most addresses at ten providers, a long tail of custom
// domains, some IDN and invalid ones), a fresh stage per pass so that every
// distinct host is normalized once, as in a night.
func BenchmarkBatchNormalizer(b *testing.B) {
	providers := []string{"gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "protonmail.com", "icloud.com", "qq.com", "163.com", "gmx.de", "mail.ru"}
	tlds := []string{".com", ".org", ".net", ".io", ".dev", ".co.uk", ".de", ".fr", ".com.au", ".nl"}
	const rows, batch = 200_000, 16 << 10 // the snapshot's batch size
	mem := memory.NewGoAllocator()
	var batches []arrow.RecordBatch
	rb := array.NewRecordBuilder(mem, emails.Schema)
	defer rb.Release()
	for i := range rows {
		h := uint64(i) * 0x9E3779B97F4A7C15 >> 20
		var a string
		switch {
		case h%100 < 55:
			a = fmt.Sprintf("user%d@%s", i, providers[h%10])
		case h%100 < 90:
			a = fmt.Sprintf("dev%d@site%d%s", i, (h/100)%150000, tlds[(h/7)%10])
		case h%100 < 95:
			a = fmt.Sprintf("ops%d@mail.team%d.co.jp", i, (h/100)%20000)
		case h%100 < 98:
			a = fmt.Sprintf("ü%d@bücher%d.de", i, (h/100)%3000)
		default:
			a = fmt.Sprintf("y%d@co.uk", i)
		}
		rb.Field(0).(*array.Int64Builder).Append(int64(i))
		rb.Field(1).AppendNull()
		rb.Field(2).(*array.StringBuilder).Append(a)
		rb.Field(3).(*array.BooleanBuilder).Append(true)
		rb.Field(4).(*array.BooleanBuilder).Append(false)
		rb.Field(5).AppendNull()
		rb.Field(6).AppendNull()
		if (i+1)%batch == 0 || i == rows-1 {
			batches = append(batches, rb.NewRecordBatch())
		}
	}
	defer func() {
		for _, r := range batches {
			r.Release()
		}
	}()
	b.ReportAllocs()
	for b.Loop() {
		s := NewBatchNormalizer(mem, nil, runtime.GOMAXPROCS(0), testSchema, testColumns)
		for _, r := range batches {
			s.Normalize(r).Release()
		}
		s.DistinctDomains()
		s.Release()
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "addresses/s")
}
