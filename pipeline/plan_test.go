package pipeline

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/cache"
	"github.com/lapse-dev/lapse/lifecycle"
)

// hClock is a movable clock shared by the cache and the stages.
type hClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *hClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *hClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// hWriteSnapshot writes a snapshot Parquet file with the contract's columns;
// each spec is "email domain verified" (domain "-" for an invalid address).
func hWriteSnapshot(t testing.TB, path string, specs ...string) {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var vals []string
	for i, s := range specs {
		f := strings.Fields(s)
		dom, reason := "'"+f[1]+"'", "NULL"
		if f[1] == "-" {
			dom, reason = "NULL", "'no_at'"
		}
		vals = append(vals, fmt.Sprintf("(%d, 'u%d', '%s', %s, true, NULL::TIMESTAMPTZ, NULL::TIMESTAMPTZ, %s, %s, %s)",
			i+1, i+1, f[0], f[2], dom, dom, reason))
	}
	q := fmt.Sprintf(`COPY (SELECT * FROM (VALUES %s) t(email_id, user_id, email, verified, "primary", created, verified_at, host, domain, invalid_reason))
		TO '%s' (FORMAT parquet)`, strings.Join(vals, ","), path)
	if err := hMkdirFor(path); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(q); err != nil {
		t.Fatal(err)
	}
}

func hOpenCache(t testing.TB, clk *hClock) *cache.Cache {
	t.Helper()
	c, err := cache.Open(filepath.Join(t.TempDir(), "cache"), cache.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func hTP(t time.Time) *time.Time { return &t }

func TestPlanOrdersByRiskAndCutsToBudget(t *testing.T) {
	ctx := context.Background()
	clk := &hClock{t: time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)}
	c := hOpenCache(t, clk)
	snap := filepath.Join(t.TempDir(), "emails.parquet")
	hWriteSnapshot(t, snap,
		"a@fresh.com fresh.com true", "b@fresh.com fresh.com true",
		"c@expiring.com expiring.com true",
		"d@redeem.net redeem.net true",
		"e@zz-new.org zz-new.org true", "f@aa-new.org aa-new.org true",
		"g@registered.io registered.io true",
		"h@unverified.dev unverified.dev false",
		"broken -  true")
	now := clk.Now()
	rec := func(d string, st lifecycle.State, src lifecycle.Source, exp *time.Time) {
		t.Helper()
		lc := lifecycle.Lifecycle{Domain: d, State: st, Source: src, CheckedAt: clk.Now(), AsOf: clk.Now(), ExpiresAt: exp}
		if _, err := c.Record(ctx, lc); err != nil {
			t.Fatal(err)
		}
	}
	// Looked up 40 days ago: registered ones are due again (30-day schedule).
	clk.Add(-40 * 24 * time.Hour)
	rec("registered.io", lifecycle.Registered, lifecycle.SourceRDAP, hTP(now.Add(300*24*time.Hour)))
	rec("expiring.com", lifecycle.Registered, lifecycle.SourceRDAP, hTP(now.Add(10*24*time.Hour)))
	clk.Add(39 * 24 * time.Hour)
	// Yesterday: a best-effort redemption, due nightly until confirmed.
	rec("redeem.net", lifecycle.Redemption, lifecycle.SourceDomainr, nil)
	rec("fresh.com", lifecycle.Registered, lifecycle.SourceRDAP, hTP(now.Add(300*24*time.Hour)))
	clk.Add(24 * time.Hour)

	p, err := MakePlan(ctx, PlanOptions{Date: "2026-03-01", SnapshotPath: snap, Cache: c, Now: clk.Now(), WatchWindow: 30 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"aa-new.org", "zz-new.org", "expiring.com", "redeem.net", "registered.io"}
	if !slices.Equal(p.Lookups, want) {
		t.Errorf("lookups %v, want %v", p.Lookups, want)
	}
	if p.VerifiedDomains != 6 || p.Fresh != 1 || p.Due != 5 || p.Deferred != 0 {
		t.Errorf("counts: domains %d fresh %d due %d deferred %d", p.VerifiedDomains, p.Fresh, p.Due, p.Deferred)
	}
	if p.ByRisk["never_checked"] != 2 || p.ByRisk["expiry"] != 1 || p.ByRisk["decisive"] != 1 || p.ByRisk["rest"] != 1 {
		t.Errorf("by risk %v", p.ByRisk)
	}

	// A budget of 3: the riskiest go tonight, the rest is reported.
	p, err = MakePlan(ctx, PlanOptions{Date: "2026-03-01", SnapshotPath: snap, Cache: c, Now: clk.Now(), Budget: 3, WatchWindow: 30 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Lookups, want[:3]) || p.Deferred != 2 || !slices.Equal(p.DeferredSample, want[3:]) {
		t.Errorf("budget 3: lookups %v deferred %d %v", p.Lookups, p.Deferred, p.DeferredSample)
	}

	// Re-verified domains go first whatever their schedule (fresh.com is
	// not due) and are spent from the budget first.
	p, err = MakePlan(ctx, PlanOptions{Date: "2026-03-01", SnapshotPath: snap, Cache: c, Now: clk.Now(), Budget: 3,
		WatchWindow: 30 * 24 * time.Hour, Force: []string{"registered.io", "fresh.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if w := []string{"fresh.com", "registered.io", "aa-new.org"}; !slices.Equal(p.Lookups, w) || p.Fresh != 0 || p.Due != 6 ||
		p.ByRisk["reverified"] != 2 || p.Deferred != 3 {
		t.Errorf("forced: lookups %v (want %v) fresh %d due %d by risk %v deferred %d", p.Lookups, w, p.Fresh, p.Due, p.ByRisk, p.Deferred)
	}

	// CheckAll (the pypi comparison) ignores the schedule.
	p, err = MakePlan(ctx, PlanOptions{Date: "2026-03-01", SnapshotPath: snap, Cache: c, Now: clk.Now(), CheckAll: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Lookups) != 6 || p.Fresh != 0 {
		t.Errorf("check all: %v fresh %d", p.Lookups, p.Fresh)
	}

	// Round trip through the file the resumed night reads.
	pf := filepath.Join(t.TempDir(), "plan.json")
	if err := WritePlan(pf, p); err != nil {
		t.Fatal(err)
	}
	back, err := ReadPlan(pf)
	if err != nil || !slices.Equal(back.Lookups, p.Lookups) || !back.AsOf.Equal(p.AsOf) {
		t.Errorf("plan round trip: %v %+v", err, back)
	}
}

func TestDeferredGoFirstTomorrow(t *testing.T) {
	ctx := context.Background()
	clk := &hClock{t: time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)}
	c := hOpenCache(t, clk)
	snap := filepath.Join(t.TempDir(), "emails.parquet")
	var specs []string
	for i := range 10 {
		specs = append(specs, fmt.Sprintf("x@d%02d.com d%02d.com true", i, i))
	}
	hWriteSnapshot(t, snap, specs...)
	seen := map[string]int{}
	for night := range 4 {
		p, err := MakePlan(ctx, PlanOptions{Date: "2026-03-01", SnapshotPath: snap, Cache: c, Now: clk.Now(), Budget: 4})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range p.Lookups {
			seen[d]++
			if _, err := c.Record(ctx, lifecycle.Lifecycle{Domain: d, State: lifecycle.Registered, Source: lifecycle.SourceRDAP, CheckedAt: clk.Now(), AsOf: clk.Now()}); err != nil {
				t.Fatal(err)
			}
		}
		if night == 2 && len(seen) != 10 {
			t.Errorf("after 3 nights with budget 4, %d of 10 domains checked", len(seen))
		}
		clk.Add(24 * time.Hour)
	}
	for d, n := range seen {
		if n != 1 {
			t.Errorf("%s looked up %d times in 4 nights (registered: monthly)", d, n)
		}
	}
}

func TestSnapshotDomainsMissingFile(t *testing.T) {
	_, _, err := snapshotDomains(context.Background(), filepath.Join(t.TempDir(), "nope.parquet"), "", time.Time{})
	if err == nil || !strings.Contains(err.Error(), "nope.parquet") {
		t.Errorf("missing snapshot: %v", err)
	}
}

func hMkdirFor(path string) error { return os.MkdirAll(filepath.Dir(path), 0o750) }
