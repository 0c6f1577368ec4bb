package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/cache"
	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sinks/lifecycledb"
)

// rvProvider answers each domain with the state and registration date the
// test sets for it, and counts lookups per domain.
type rvProvider struct {
	mu     sync.Mutex
	now    func() time.Time
	state  map[string]lifecycle.State
	reg    map[string]time.Time
	lookup map[string]int
}

func (p *rvProvider) Name() lifecycle.Source { return lifecycle.SourceRDAP }

func (p *rvProvider) Lookup(_ context.Context, d string) (lifecycle.Lifecycle, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lookup[d]++
	st, ok := p.state[d]
	if !ok {
		st = lifecycle.Registered
	}
	now := p.now()
	lc := lifecycle.Lifecycle{Domain: d, State: st, Source: lifecycle.SourceRDAP, CheckedAt: now, AsOf: now,
		Evidence: []lifecycle.Evidence{{Source: lifecycle.SourceRDAP, State: st, CheckedAt: now}}}
	if r, ok := p.reg[d]; ok && st != lifecycle.Available {
		lc.RegisteredAt = &r
	}
	if st == lifecycle.Registered {
		exp := now.AddDate(1, 0, 0)
		lc.ExpiresAt = &exp
	}
	return lc, nil
}

// rvAccount is one row of the test's account export.
type rvAccount struct {
	id         int
	email      string
	verified   bool
	verifiedAt string // RFC 3339, "" for none
}

func rvWriteExport(t *testing.T, path string, rows []rvAccount) {
	t.Helper()
	var b strings.Builder
	for _, r := range rows {
		va := "null"
		if r.verifiedAt != "" {
			va = fmt.Sprintf("%q", r.verifiedAt)
		}
		fmt.Fprintf(&b, `{"id":%d,"user_id":"u%d","email":%q,"verified":%v,"primary":true,"created":"2025-01-01T00:00:00Z","verified_at":%s}`+"\n",
			r.id, r.id, r.email, r.verified, va)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// rvChangesetIDs reads the email ids of a night's changeset.
func rvChangesetIDs(t *testing.T, dataDir, date string) []string {
	t.Helper()
	rows := gReadCSV(t, filepath.Join(night.Paths{DataDir: dataDir, Date: date}.Changeset(), "changeset.csv"))
	var ids []string
	for _, r := range rows {
		ids = append(ids, r["email_id"]+":"+r["reason"])
	}
	slices.Sort(ids)
	return ids
}

// TestReverifiedAddressIsNotALoop runs four nights: two addresses are
// un-verified by an applied changeset; their owners verify them again, one
// after registering the lapsed name anew, one while the name is still
// free. The night they are seen verified again their domains are looked up
// afresh although the cache's schedule says not yet; the owner's own new
// registration is proof of control (kept, no domain_reregistered), the
// still-free name is proposed again on tonight's authoritative answer, and
// the next night leaves the kept one alone.
func TestReverifiedAddressIsNotALoop(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "accounts.jsonl")
	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Source = "jsonl:" + src
	cfg.Brake.MaxFraction = 1
	clk := &hClock{t: time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)}
	prov := &rvProvider{now: clk.Now, lookup: map[string]int{},
		state: map[string]lifecycle.State{"mine.net": lifecycle.Available, "free.net": lifecycle.Available},
		reg:   map[string]time.Time{}}
	accounts := []rvAccount{
		{1, "owner@mine.net", true, "2025-01-02T00:00:00Z"},
		{2, "other@free.net", true, "2025-01-02T00:00:00Z"},
	}
	// Healthy addresses, so two un-verifications are not a collapse.
	for i := 3; i <= 12; i++ {
		accounts = append(accounts, rvAccount{i, fmt.Sprintf("keep%d@steady%d.org", i, i), true, ""})
	}
	rvWriteExport(t, src, accounts)
	runNight := func(date string) NightResult {
		t.Helper()
		res, err := RunNight(ctx, Options{Config: cfg, Date: date, Now: clk.Now, Provider: prov})
		if err != nil {
			t.Fatalf("night %s: %v", date, err)
		}
		return res
	}

	// Night 1: both lapsed names are flagged.
	runNight("2026-03-01")
	if got, want := rvChangesetIDs(t, cfg.DataDir, "2026-03-01"), []string{"1:domain_available", "2:domain_available"}; !slices.Equal(got, want) {
		t.Fatalf("night 1 changeset %v, want %v", got, want)
	}
	// The changeset is applied that morning: the account table shows both
	// un-verified, the lifecycle DB and the cache know.
	applied := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	db, err := lifecycledb.Open(night.Dir(cfg.DataDir).DB())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.RecordApplied(ctx, "2026-03-01", "sha-night-1", []lifecycledb.AppliedChange{
		{EmailID: 1, UserID: "u1", Domain: "mine.net", Reason: "domain_available", AppliedAt: applied},
		{EmailID: 2, UserID: "u2", Domain: "free.net", Reason: "domain_available", AppliedAt: applied},
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	c, err := cache.Open(night.CacheDir(cfg), cache.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.MarkUnverified(ctx, []string{"mine.net", "free.net"}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	accounts[0].verified, accounts[1].verified = false, false
	rvWriteExport(t, src, accounts)

	// Night 2: nothing is verified on those names; they are not due
	// (available with un-verified addresses: weekly).
	clk.Add(24 * time.Hour)
	res := runNight("2026-03-02")
	if res.Figures().Reverified != 0 || prov.lookup["mine.net"] != 1 {
		t.Fatalf("night 2: reverified %d, mine.net looked up %d times", res.Figures().Reverified, prov.lookup["mine.net"])
	}

	// During 2 March the owner registers mine.net again and verifies the
	// address; someone verifies other@free.net while free.net is still free
	// (no verified_at in that export row).
	prov.state["mine.net"] = lifecycle.Registered
	prov.reg["mine.net"] = time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	accounts[0].verified, accounts[0].verifiedAt = true, "2026-03-02T13:00:00Z"
	accounts[1].verified, accounts[1].verifiedAt = true, ""
	rvWriteExport(t, src, accounts)

	// Night 3: both are re-verified; their names are looked up afresh,
	// first, though the schedule says weekly.
	clk.Add(24 * time.Hour)
	res = runNight("2026-03-03")
	if res.Figures().Reverified != 2 {
		t.Errorf("night 3: reverified %d, want 2", res.Figures().Reverified)
	}
	p, err := ReadPlan(night.Paths{DataDir: cfg.DataDir, Date: "2026-03-03"}.Plan())
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Lookups) < 2 || !slices.Equal(p.Lookups[:2], []string{"free.net", "mine.net"}) || p.ByRisk["reverified"] != 2 {
		t.Errorf("night 3 plan: lookups %v by risk %v; want free.net and mine.net first", p.Lookups, p.ByRisk)
	}
	if prov.lookup["mine.net"] != 2 || prov.lookup["free.net"] != 2 {
		t.Errorf("night 3: lookups mine.net %d free.net %d, want 2 each", prov.lookup["mine.net"], prov.lookup["free.net"])
	}
	// mine.net's registration (12:00) is before the owner's re-verification
	// (13:00): proof of control, not a re-registration. free.net is still
	// free on tonight's own RDAP answer: proposed again.
	if got, want := rvChangesetIDs(t, cfg.DataDir, "2026-03-03"), []string{"2:domain_available"}; !slices.Equal(got, want) {
		t.Errorf("night 3 changeset %v, want %v", got, want)
	}
	db, err = lifecycledb.Open(night.Dir(cfg.DataDir).DB())
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var rvAt time.Time
	if err := db.SQL().QueryRow(`SELECT count(*), max(reverified_at) FILTER (WHERE email_id = 1) FROM reverifications WHERE date = DATE '2026-03-03'`).Scan(&n, &rvAt); err != nil {
		t.Fatal(err)
	}
	if n != 2 || !rvAt.Equal(time.Date(2026, 3, 2, 13, 0, 0, 0, time.UTC)) {
		t.Errorf("reverifications: %d rows, address 1 re-verified at %v; want 2, its verified_at", n, rvAt)
	}
	db.Close()

	// Night 4: the owner's address stays kept on the cached answer (the
	// re-verification still anchors it); nothing new is re-verified.
	clk.Add(24 * time.Hour)
	res = runNight("2026-03-04")
	if res.Figures().Reverified != 0 {
		t.Errorf("night 4: reverified %d, want 0 (already recorded)", res.Figures().Reverified)
	}
	if got := rvChangesetIDs(t, cfg.DataDir, "2026-03-04"); slices.Contains(got, "1:domain_reregistered") {
		t.Errorf("night 4 changeset %v: the owner's address is flagged again", got)
	}
}
