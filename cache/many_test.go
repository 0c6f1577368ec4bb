package cache

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/lapse-dev/lapse/lifecycle"
)

// TestGetManyMatchesGet holds GetMany to one Get per domain: over a cache
// with gaps longer than a walk steps over, missing domains before, between
// and after the cached ones, duplicates, and lists GetMany cannot walk
// (unsorted, not in key form).
func TestGetManyMatchesGet(t *testing.T) {
	clk := &clock{t: ts("2026-03-10T02:00:00Z")}
	c := openTest(t, t.TempDir(), clk)
	ctx := context.Background()
	var cached []string
	for i := range 3000 {
		if i%7 == 3 || (i >= 1000 && i < 1100) {
			continue // gaps, one longer than seekAfter
		}
		d := fmt.Sprintf("d%05d.com", i)
		st := []lifecycle.State{lifecycle.Registered, lifecycle.Available, lifecycle.Redemption}[i%3]
		lc := answer(d, st, clk.Now())
		if i%5 == 0 {
			lc = failure(d, clk.Now(), "timeout")
		}
		if _, err := c.Record(ctx, lc); err != nil {
			t.Fatal(err)
		}
		cached = append(cached, d)
	}
	var all []string
	for i := range 3000 {
		if i%2 == 0 || i%7 == 3 {
			all = append(all, fmt.Sprintf("d%05d.com", i))
		}
	}
	all = append([]string{"a.com"}, all...)
	all = append(all, "d01500.com", "zzz.org")
	slices.Sort(all)
	lists := map[string][]string{
		"sorted":      all,
		"every":       cached,
		"duplicates":  append([]string{"d00000.com"}, all...),
		"unsorted":    append(slices.Clone(all), "d00002.com"),
		"not-key":     append(slices.Clone(all), "ZZZZ.org."),
		"empty":       nil,
		"one missing": {"d01050.com"},
	}
	for name, domains := range lists {
		got, err := c.GetMany(ctx, domains)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got) != len(domains) {
			t.Fatalf("%s: %d entries for %d domains", name, len(got), len(domains))
		}
		found := 0
		for i, d := range domains {
			want, ok, err := c.Get(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				found++
			}
			if !reflect.DeepEqual(got[i], want) || (got[i].Domain != "") != ok {
				t.Fatalf("%s: %s: GetMany = %+v, Get = %+v (found %v)", name, d, got[i], want, ok)
			}
		}
		if name == "every" && found != len(cached) {
			t.Fatalf("every: found %d of %d", found, len(cached))
		}
	}
	c.Close()
	if _, err := c.GetMany(ctx, all); err != ErrClosed {
		t.Fatalf("GetMany after Close: %v, want ErrClosed", err)
	}
}
