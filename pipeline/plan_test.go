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
	// Looked up 40 days ago: a registered one without an expiry date is due
	// again (30-day schedule).
	clk.Add(-40 * 24 * time.Hour)
	rec("registered.io", lifecycle.Registered, lifecycle.SourceRDAP, nil)
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
	_, err := snapshotDomains(context.Background(), snapshotDomainsSQL(filepath.Join(t.TempDir(), "nope.parquet"), "", ""), "", depsSource{}, time.Time{}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "nope.parquet") {
		t.Errorf("missing snapshot: %v", err)
	}
}

func hMkdirFor(path string) error { return os.MkdirAll(filepath.Dir(path), 0o750) }

// hRefreshCache fills a cache with a status-API-first chain's history at
// clk's time (issue 11) and returns the snapshot naming its domains:
//
//   - nodates.com: Domainr alone answered, two days ago (no dates);
//   - stale.com: RDAP 90 days ago, Domainr 20 days ago;
//   - young.com: RDAP 89 days ago, Domainr 20 days ago;
//   - expsoon.com: RDAP 40 days ago, expiring in 10 days;
//   - plain.com: RDAP 70 days ago, Domainr 61 days ago (its status lookup
//     due on the 60-day schedule of a domain with a known expiry);
//   - new.org: never checked.
func hRefreshCache(t *testing.T, c *cache.Cache, clk *hClock) string {
	t.Helper()
	ctx := context.Background()
	now := clk.Now()
	at := func(days int) time.Time { return now.Add(-time.Duration(days) * 24 * time.Hour) }
	rdap := func(d string, days int, exp time.Time) {
		t.Helper()
		clk.Add(at(days).Sub(clk.Now()))
		lc := lifecycle.Lifecycle{Domain: d, State: lifecycle.Registered, Source: lifecycle.SourceRDAP, CheckedAt: clk.Now(), AsOf: clk.Now(),
			RegisteredAt: hTP(time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)), ExpiresAt: &exp, Corroborated: true}
		if _, err := c.Record(ctx, lc); err != nil {
			t.Fatal(err)
		}
	}
	domainr := func(d string, days int) {
		t.Helper()
		clk.Add(at(days).Sub(clk.Now()))
		lc := lifecycle.Lifecycle{Domain: d, State: lifecycle.Registered, Source: lifecycle.SourceDomainr, Statuses: []string{"active"},
			CheckedAt: clk.Now(), AsOf: clk.Now()}
		if _, err := c.Record(ctx, lc); err != nil {
			t.Fatal(err)
		}
	}
	far := now.Add(300 * 24 * time.Hour)
	rdap("stale.com", 90, far)
	rdap("young.com", 89, far)
	rdap("expsoon.com", 40, now.Add(10*24*time.Hour))
	rdap("plain.com", 70, far)
	domainr("plain.com", 61)
	domainr("stale.com", 20)
	domainr("young.com", 20)
	domainr("nodates.com", 2)
	clk.Add(now.Sub(clk.Now()))
	snap := filepath.Join(t.TempDir(), "emails.parquet")
	hWriteSnapshot(t, snap, "a@nodates.com nodates.com true", "b@stale.com stale.com true", "c@young.com young.com true",
		"d@expsoon.com expsoon.com true", "e@plain.com plain.com true", "f@new.org new.org true")
	return snap
}

// Issue 11: a status-API-first chain's plan asks RDAP/WHOIS where the
// authoritative facts are missing, old or needed (expiry near), plans a
// domain whose refresh alone is due, and counts the backlog; the states
// copy's query and the entries agree.
func TestPlanRefresh(t *testing.T) {
	ctx := context.Background()
	clk := &hClock{t: time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)}
	c := hOpenCache(t, clk)
	snap := hRefreshCache(t, c, clk)
	states := filepath.Join(t.TempDir(), "states", "states.parquet")
	if _, err := CurrentStates(ctx, c, states); err != nil {
		t.Fatal(err)
	}
	for _, copy := range []string{"", states} {
		o := PlanOptions{Date: "2026-03-01", SnapshotPath: snap, Cache: c, Now: clk.Now(), WatchWindow: 30 * 24 * time.Hour,
			States: copy, Refresh: &RefreshOptions{Rate: 0.5}}
		p, err := MakePlan(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		wantLookups := []string{"new.org", "nodates.com", "expsoon.com", "plain.com", "stale.com"}
		wantAuth := []string{"expsoon.com", "new.org", "nodates.com", "stale.com"}
		if !slices.Equal(p.Lookups, wantLookups) || !slices.Equal(p.Authoritative, wantAuth) {
			t.Errorf("states %q: lookups %v authoritative %v, want %v and %v", copy, p.Lookups, p.Authoritative, wantLookups, wantAuth)
		}
		if p.Fresh != 1 || p.Due != 5 || p.ByRisk["no_dates"] != 1 || p.ByRisk["never_checked"] != 1 || p.ByRisk["expiry"] != 1 || p.ByRisk["rest"] != 2 {
			t.Errorf("states %q: fresh %d due %d by risk %v", copy, p.Fresh, p.Due, p.ByRisk)
		}
		want := RefreshPlan{EveryDays: 90, Wanted: 4, Planned: 4, RefreshOnly: 2, NoDates: 2, NoDatesLeft: 0, BacklogNights: 1, BacklogHours: 0}
		if r := p.Refresh; r == nil || *r != want {
			t.Errorf("states %q: refresh %+v, want %+v", copy, r, want)
		}
	}
	// Without a refresh (an RDAP-first chain) the plan is as before:
	// nothing is marked, the refresh-only domains are fresh.
	p, err := MakePlan(ctx, PlanOptions{Date: "2026-03-01", SnapshotPath: snap, Cache: c, Now: clk.Now(), WatchWindow: 30 * 24 * time.Hour, States: states})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Lookups, []string{"new.org", "expsoon.com", "plain.com"}) || p.Authoritative != nil || p.Refresh != nil || p.Fresh != 3 {
		t.Errorf("no refresh: lookups %v authoritative %v refresh %+v fresh %d", p.Lookups, p.Authoritative, p.Refresh, p.Fresh)
	}
}

// Budgets cap the refreshes and defer the rest in risk order: RDAP's
// budget goes to the riskiest that want it (never checked, no dates,
// expiry near, old answers); a deferred refresh whose status lookup is
// due still gets the status API, one due for the refresh alone waits; the
// status API's budget and resolve.budget cap theirs; the backlog is
// counted in nights of the refresh budget and hours at its rate.
func TestPlanRefreshBudgets(t *testing.T) {
	ctx := context.Background()
	clk := &hClock{t: time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)}
	c := hOpenCache(t, clk)
	snap := hRefreshCache(t, c, clk)
	plan := func(budget, total, refresh int) Plan {
		t.Helper()
		p, err := MakePlan(ctx, PlanOptions{Date: "2026-03-01", SnapshotPath: snap, Cache: c, Now: clk.Now(), WatchWindow: 30 * 24 * time.Hour,
			Budget: budget, Total: total, Refresh: &RefreshOptions{Budget: refresh, Rate: 0.0001}})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := plan(0, 0, 2)
	if !slices.Equal(p.Lookups, []string{"new.org", "nodates.com", "expsoon.com", "plain.com"}) || !slices.Equal(p.Authoritative, []string{"new.org", "nodates.com"}) {
		t.Errorf("refresh budget 2: lookups %v authoritative %v", p.Lookups, p.Authoritative)
	}
	if r := p.Refresh; r.Wanted != 4 || r.Planned != 2 || r.Deferred != 2 || r.NoDatesLeft != 0 || r.BacklogNights != 1 || r.BacklogHours != 5.6 ||
		p.Deferred != 1 || !slices.Equal(p.DeferredSample, []string{"stale.com"}) {
		t.Errorf("refresh budget 2: %+v deferred %d %v", r, p.Deferred, p.DeferredSample)
	}
	p = plan(0, 0, 1)
	if !slices.Equal(p.Authoritative, []string{"new.org"}) || p.Refresh.NoDatesLeft != 1 || p.Refresh.BacklogNights != 2 {
		t.Errorf("refresh budget 1: authoritative %v refresh %+v", p.Authoritative, p.Refresh)
	}
	// The status API's budget: one status lookup (expsoon.com, the
	// riskiest without a refresh); plain.com waits.
	p = plan(1, 0, 2)
	if !slices.Equal(p.Lookups, []string{"new.org", "nodates.com", "expsoon.com"}) || p.Deferred != 2 {
		t.Errorf("status budget 1: lookups %v deferred %d", p.Lookups, p.Deferred)
	}
	// resolve.budget over both.
	p = plan(0, 3, 0)
	if !slices.Equal(p.Lookups, []string{"new.org", "nodates.com", "expsoon.com"}) || p.Deferred != 2 || p.Refresh.Deferred != 1 {
		t.Errorf("total 3: lookups %v deferred %d refresh %+v", p.Lookups, p.Deferred, p.Refresh)
	}
}

// The 90-day refresh is planned on its night: RDAP answered on night 0,
// Domainr kept the domain fresh since; night 89 does not ask RDAP,
// night 90 does, even when it runs three hours earlier than night 0.
func TestPlanRefreshOnItsNight(t *testing.T) {
	ctx := context.Background()
	night0 := time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC)
	clk := &hClock{t: night0}
	c := hOpenCache(t, clk)
	snap := filepath.Join(t.TempDir(), "emails.parquet")
	hWriteSnapshot(t, snap, "a@held.com held.com true")
	states := filepath.Join(t.TempDir(), "states", "states.parquet")
	record := func(src lifecycle.Source) {
		t.Helper()
		lc := lifecycle.Lifecycle{Domain: "held.com", State: lifecycle.Registered, Source: src, CheckedAt: clk.Now(), AsOf: clk.Now(), Statuses: []string{"active"}}
		if src == lifecycle.SourceRDAP {
			lc.RegisteredAt, lc.ExpiresAt = hTP(time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)), hTP(night0.AddDate(2, 0, 0))
		}
		if _, err := c.Record(ctx, lc); err != nil {
			t.Fatal(err)
		}
	}
	record(lifecycle.SourceRDAP)
	for night := 1; night <= 90; night++ {
		clk.Add(24 * time.Hour)
		now := clk.Now()
		if night == 90 {
			now = now.Add(-3 * time.Hour)
		}
		if _, err := CurrentStates(ctx, c, states); err != nil {
			t.Fatal(err)
		}
		p, err := MakePlan(ctx, PlanOptions{Date: now.Format(time.DateOnly), SnapshotPath: snap, Cache: c, Now: now, States: states,
			WatchWindow: 30 * 24 * time.Hour, Refresh: &RefreshOptions{}})
		if err != nil {
			t.Fatal(err)
		}
		auth := len(p.Authoritative) == 1
		if auth != (night == 90) {
			t.Fatalf("night %d: lookups %v authoritative %v", night, p.Lookups, p.Authoritative)
		}
		if len(p.Lookups) == 1 {
			if auth {
				record(lifecycle.SourceRDAP)
			} else {
				record(lifecycle.SourceDomainr) // the 30-day status re-checks
			}
		}
	}
}
