package pipeline

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/cache"
	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sources/status"
)

// hProvider answers from a table and counts its lookups; "fail.*" domains
// fail with a throttle, as a rate-limited provider would.
type hProvider struct {
	mu    sync.Mutex
	calls map[string]int
	now   func() time.Time
}

func (p *hProvider) Name() lifecycle.Source { return lifecycle.SourceRDAP }

func (p *hProvider) Lookup(ctx context.Context, d string) (lifecycle.Lifecycle, error) {
	p.mu.Lock()
	p.calls[d]++
	p.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return lifecycle.Lifecycle{}, err
	}
	if strings.HasPrefix(d, "fail.") {
		return lifecycle.Lifecycle{}, &status.ThrottledError{RetryAfter: time.Minute, Err: errors.New("429")}
	}
	st := lifecycle.Registered
	if strings.HasPrefix(d, "gone.") {
		st = lifecycle.Available
	}
	now := p.now()
	return lifecycle.Lifecycle{Domain: d, State: st, Source: lifecycle.SourceRDAP, CheckedAt: now, AsOf: now,
		Evidence: []lifecycle.Evidence{{Source: lifecycle.SourceRDAP, State: st, CheckedAt: now}}}, nil
}

func TestResolveRecordsAndResumes(t *testing.T) {
	ctx := context.Background()
	clk := &hClock{t: time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)}
	c := hOpenCache(t, clk)
	prov := &hProvider{calls: map[string]int{}, now: clk.Now}
	plan := Plan{Date: "2026-03-01", AsOf: clk.Now(), Lookups: []string{
		"a.com", "b.com", "c.com", "fail.com", "gone.net", "d.org", "e.org", "f.org"}}
	journal := filepath.Join(t.TempDir(), "lookups.jsonl")
	opts := ResolveOptions{Plan: plan, Provider: prov, Cache: c, Concurrency: 1, Journal: journal, Now: clk.Now, StopAfter: 3}

	// Interrupted after three answers, as a Ctrl-C would.
	_, err := Resolve(ctx, opts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("stopped resolve: %v", err)
	}
	calls := 0
	for _, n := range prov.calls {
		calls += n
	}
	// The resumed run asks only what is left.
	opts.StopAfter = 0
	opts.Concurrency = 4
	res, err := Resolve(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed != 3 || len(res.Answers) != len(plan.Lookups) {
		t.Errorf("resumed %d, answers %d", res.Resumed, len(res.Answers))
	}
	for _, d := range plan.Lookups {
		if prov.calls[d] != 1 && !(calls > 3 && prov.calls[d] == 2) {
			t.Errorf("%s asked %d times", d, prov.calls[d])
		}
	}
	for i := 1; i < len(res.Answers); i++ {
		if res.Answers[i-1].Domain >= res.Answers[i].Domain {
			t.Errorf("answers not sorted: %s before %s", res.Answers[i-1].Domain, res.Answers[i].Domain)
		}
	}
	// A failure is an unknown answer with its error, never a state.
	e, ok, err := c.Get(ctx, "fail.com")
	if err != nil || !ok || e.LastError == "" || e.Lifecycle.State != lifecycle.Unknown {
		t.Errorf("fail.com entry: %v %v %+v", ok, err, e)
	}
	e, ok, _ = c.Get(ctx, "gone.net")
	if !ok || e.Lifecycle.State != lifecycle.Available {
		t.Errorf("gone.net entry %+v", e)
	}
	by, outcomes := res.Lookups()
	if by["rdap"] != 8 || outcomes["rdap/error"] != 1 || outcomes["rdap/available"] != 1 || outcomes["rdap/registered"] != 6 {
		t.Errorf("lookups %v %v", by, outcomes)
	}

	// Tonight's answers and states as Parquet, read back by DuckDB.
	var rows []cache.StateRow
	for _, lc := range res.Answers {
		e, _, _ := c.Get(ctx, lc.Domain)
		r := cache.RowFromEntry(e)
		r.Lifecycle = lc
		rows = append(rows, r)
	}
	out := filepath.Join(t.TempDir(), "domains.parquet")
	if err := cache.WriteStates(out, rows); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, unknown, withErr int
	var next time.Time
	if err := db.QueryRow(`SELECT count(*), count(*) FILTER (state = 'unknown'), count(error), max(next_check)
		FROM read_parquet(?)`, out).Scan(&n, &unknown, &withErr, &next); err != nil {
		t.Fatal(err)
	}
	if n != 8 || unknown != 1 || withErr != 1 || !next.After(clk.Now()) {
		t.Errorf("domains.parquet: rows %d unknown %d errors %d next %v", n, unknown, withErr, next)
	}
}

func TestResolveTornJournalLine(t *testing.T) {
	ctx := context.Background()
	clk := &hClock{t: time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)}
	c := hOpenCache(t, clk)
	prov := &hProvider{calls: map[string]int{}, now: clk.Now}
	journal := filepath.Join(t.TempDir(), "lookups.jsonl")
	// A kill while writing leaves half a line: that answer is asked again.
	if err := writeTestFile(journal, `{"domain":"a.com","state":"registered","source":"rdap","checked_at":"2026-03-01T03:00:00Z"}`+"\n"+`{"domain":"b.c`); err != nil {
		t.Fatal(err)
	}
	res, err := Resolve(ctx, ResolveOptions{Plan: Plan{Lookups: []string{"a.com", "b.com"}}, Provider: prov, Cache: c, Journal: journal, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if prov.calls["a.com"] != 0 || prov.calls["b.com"] != 1 || len(res.Answers) != 2 {
		t.Errorf("calls %v answers %d", prov.calls, len(res.Answers))
	}
	// The journaled answer the kill kept out of the cache is recorded.
	if _, ok, _ := c.Get(ctx, "a.com"); !ok {
		t.Error("journaled a.com not recorded in the cache")
	}
}

func writeTestFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

func TestLookupsCountRequestsSent(t *testing.T) {
	r := ResolveResult{Answers: []lifecycle.Lifecycle{
		{Domain: "a.de", State: lifecycle.Registered, Source: lifecycle.SourceWHOIS, Evidence: []lifecycle.Evidence{
			{Source: lifecycle.SourceRDAP, State: lifecycle.Unknown, Error: "rdap a.de: " + status.ErrNoServer.Error()},
			{Source: lifecycle.SourceWHOIS, State: lifecycle.Registered}}},
		{Domain: "b.com", State: lifecycle.Available, Source: lifecycle.SourceRDAP, Evidence: []lifecycle.Evidence{
			{Source: lifecycle.SourceDomainr, State: lifecycle.Available},
			{Source: lifecycle.SourceRDAP, State: lifecycle.Unknown, Error: "timeout"}}},
	}}
	by, outcomes := r.Lookups()
	if fmt.Sprint(by) != "map[domainr:1 rdap:1 whois:1]" || fmt.Sprint(outcomes) != "map[domainr/available:1 rdap/error:1 whois/registered:1]" {
		t.Errorf("lookups %v %v", by, outcomes)
	}
}

// wantProvider records the Want of each lookup (a chain's LookupWith).
type wantProvider struct {
	hProvider
	wants map[string]status.Want
}

func (p *wantProvider) LookupWith(ctx context.Context, d string, w status.Want) (lifecycle.Lifecycle, error) {
	p.mu.Lock()
	p.wants[d] = w
	p.mu.Unlock()
	return p.Lookup(ctx, d)
}

// Issue 11: resolve tells a status-API-first chain which lookups the plan
// wants RDAP/WHOIS for, and the status API's previous flags for the rest;
// any other plan asks plainly.
func TestResolvePassesWant(t *testing.T) {
	ctx := context.Background()
	clk := &hClock{t: time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)}
	c := hOpenCache(t, clk)
	if _, err := c.Record(ctx, lifecycle.Lifecycle{Domain: "flags.com", State: lifecycle.Registered, Source: lifecycle.SourceDomainr,
		Statuses: []string{"undelegated", "active"}, CheckedAt: clk.Now().Add(-30 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for _, refresh := range []bool{true, false} {
		prov := &wantProvider{hProvider: hProvider{calls: map[string]int{}, now: clk.Now}, wants: map[string]status.Want{}}
		plan := Plan{Date: "2026-03-01", AsOf: clk.Now(), Lookups: []string{"auth.com", "flags.com", "new.com"}, Authoritative: []string{"auth.com"}}
		if refresh {
			plan.Refresh = &RefreshPlan{}
		}
		if _, err := Resolve(ctx, ResolveOptions{Plan: plan, Provider: prov, Cache: c, Journal: filepath.Join(t.TempDir(), "lookups.jsonl"), Now: clk.Now}); err != nil {
			t.Fatal(err)
		}
		want := map[string]status.Want{"auth.com": {Authoritative: true}, "flags.com": {PrevFlags: []string{"active", "undelegated"}}, "new.com": {}}
		if !refresh {
			want = map[string]status.Want{"auth.com": {}, "flags.com": {}, "new.com": {}}
		}
		if fmt.Sprint(prov.wants) != fmt.Sprint(want) {
			t.Errorf("refresh %v: wants %v, want %v", refresh, prov.wants, want)
		}
		clk.Add(24 * time.Hour)
	}
}
