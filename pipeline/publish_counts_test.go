package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/cache"
	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sinks/changeset"
)

// TestClassifyOverRealCacheExport classifies over the cache's own export
// (ExportStates, what the states copy is), not a hand-made fixture: a domain re-registered
// between two lookups, a redemption confirmed over two nights by Domainr,
// and an RDAP-available domain.
func TestClassifyOverRealCacheExport(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clk := &hClock{t: time.Date(2026, 6, 9, 3, 0, 0, 0, time.UTC)}
	c, err := cache.Open(filepath.Join(dir, "cache"), cache.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rec := func(d string, st lifecycle.State, src lifecycle.Source, reg *time.Time, statuses ...string) {
		t.Helper()
		now := clk.Now()
		lc := lifecycle.Lifecycle{Domain: d, State: st, Source: src, Statuses: statuses, RegisteredAt: reg, CheckedAt: now, AsOf: now,
			Evidence: []lifecycle.Evidence{{Source: src, State: st, Statuses: statuses, CheckedAt: now}}}
		if _, err := c.Record(ctx, lc); err != nil {
			t.Fatal(err)
		}
	}
	rec("again.com", lifecycle.Registered, gRDAP, gT("2010-01-01"))
	rec("red.com", lifecycle.Redemption, gDomainr, nil, "expiring")
	rec("gone.com", lifecycle.Available, gRDAP, nil)
	rec("fine.com", lifecycle.Registered, gRDAP, gT("2001-01-01"))
	clk.Add(24 * time.Hour)
	rec("again.com", lifecycle.Registered, gRDAP, gT("2026-06-09"))
	rec("red.com", lifecycle.Redemption, gDomainr, nil, "expiring")

	cases := []gCase{
		{name: "again", domain: "again.com", unchecked: true, created: gT("2015-01-01")},
		{name: "red", domain: "red.com", unchecked: true, created: gT("2015-01-01")},
		{name: "gone", domain: "gone.com", unchecked: true, created: gT("2015-01-01")},
		{name: "fine", domain: "fine.com", unchecked: true, created: gT("2015-01-01")},
	}
	paths := gWriteFixtures(t, dir, cases) // the hand-made states file is replaced below
	if _, _, err := cache.ExportStates(ctx, c, paths.States()); err != nil {
		t.Fatal(err)
	}
	o := ClassifyOptionsFor(paths, lifecycle.DefaultPolicy, clk.Now())
	if _, err := Classify(ctx, o); err != nil {
		t.Fatal(err)
	}
	got := gAllDecisions(t, o)
	want := []lifecycle.Decision{
		{Action: lifecycle.ActionUnverify, Reason: lifecycle.ReasonReregistered},
		{Action: lifecycle.ActionUnverify, Reason: lifecycle.ReasonRedemption},
		{Action: lifecycle.ActionUnverify, Reason: lifecycle.ReasonAvailable},
		{Action: lifecycle.ActionKeep, Reason: lifecycle.ReasonRegistered},
	}
	for i, w := range want {
		if got[int64(i)] != w {
			t.Errorf("%s: %v, want %v", cases[i].name, got[int64(i)], w)
		}
	}
}

// TestPublishCountsFromClassify: the counts the runner hands over from
// classify record the same metrics as a resumed publish reading counts.json.
func TestPublishCountsFromClassify(t *testing.T) {
	ctx := context.Background()
	metrics := func(counts bool) []string {
		dir := t.TempDir()
		db := gOpenDB(t, dir)
		o := gPublished(t, dir, gPublishCases(), config.BrakeConfig{MaxFraction: 1}, db)
		if counts {
			r, err := Classify(ctx, ClassifyOptionsFor(night.Paths{DataDir: dir, Date: gNight}, lifecycle.DefaultPolicy, gAsOf))
			if err != nil {
				t.Fatal(err)
			}
			o.Counts = &r
		}
		if _, err := Publish(ctx, o); err != nil {
			t.Fatal(err)
		}
		rows, err := db.SQL().QueryContext(ctx, `SELECT metric || '/' || key || '/' || subkey || '=' || value FROM nightly_metrics ORDER BY ALL`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}
	with, without := metrics(true), metrics(false)
	if len(with) < 5 || !slices.Equal(with, without) {
		t.Fatalf("metrics with classify's counts:\n%v\nrecounted:\n%v", with, without)
	}
}

// TestPublishResumedReadsCountsJSON: a publish without classify's counts
// (a resumed night) takes them from counts.json and says what to do when
// the file is missing or belongs to other decisions.
func TestPublishResumedReadsCountsJSON(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := gOpenDB(t, dir)
	o := gPublished(t, dir, gPublishCases(), config.BrakeConfig{MaxFraction: 1}, db)
	res, err := Publish(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	// The brake's denominator and the metrics come from counts.json: 7
	// verified addresses, 8 scanned, one invalid, although the decisions
	// file holds only the 7 non-keep rows.
	if res.Manifest.Counts.Verified != 7 || res.Manifest.Counts.Flagged != 4 {
		t.Errorf("manifest counts %+v, want 4 flagged of 7 verified", res.Manifest.Counts)
	}
	if n := len(gDecisions(t, night.Paths{DataDir: dir, Date: gNight}.Decisions())); n != 7 {
		t.Errorf("decisions hold %d rows, want the 7 non-keep ones", n)
	}
	var scanned, verified, invalid float64
	if err := db.SQL().QueryRow(`SELECT sum(value) FILTER (metric = 'addresses_scanned'), sum(value) FILTER (metric = 'addresses_verified'),
		sum(value) FILTER (metric = 'addresses_invalid') FROM nightly_metrics`).Scan(&scanned, &verified, &invalid); err != nil {
		t.Fatal(err)
	}
	if scanned != 8 || verified != 7 || invalid != 1 {
		t.Errorf("metrics scanned %v verified %v invalid %v, want 8 7 1", scanned, verified, invalid)
	}

	counts := night.Paths{DataDir: dir, Date: gNight}.Counts()
	good, err := os.ReadFile(counts)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, content, want string
	}{
		{"missing", "", "counts.json are missing"},
		{"other decisions", strings.Replace(string(good), `"decisions_sha256": "`, `"decisions_sha256": "0`, 1), "do not match"},
		{"other night", strings.Replace(string(good), gNight, "2026-06-01", 1), "not 2026-06-10"},
		{"garbage", "{", "unexpected end of JSON input"},
	} {
		if tc.content == "" {
			os.Remove(counts)
		} else if err := os.WriteFile(counts, []byte(tc.content), 0o640); err != nil {
			t.Fatal(err)
		}
		_, err := Publish(ctx, o)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--force") || !strings.Contains(err.Error(), counts) {
			t.Errorf("%s counts.json: error %v, want one naming %s, saying %q and to re-run with --force", tc.name, err, counts, tc.want)
		}
	}
}

// TestPublishNotifyOthersFromSnapshot: notify.csv lists, for each flagged
// address, the user's other verified addresses from tonight's snapshot —
// kept (not in the decisions file), watched and unknown ones alike, primary
// first — and never an unverified or a flagged one.
func TestPublishNotifyOthersFromSnapshot(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	no := false
	cases := []gCase{
		{name: "gone (flagged)", userID: "u1", domain: "gone.com", state: lifecycle.Available, source: gRDAP},
		{name: "fine (keep)", userID: "u1", domain: "fine.com", state: lifecycle.Registered, source: gRDAP, expiresAt: gT("2030-01-01")},
		{name: "soon (watch)", userID: "u1", domain: "soon.net", state: lifecycle.Expiring, source: gRDAP},
		{name: "old (unverified)", userID: "u1", domain: "old.org", verified: &no, state: lifecycle.Registered, source: gRDAP, expiresAt: gT("2030-01-01")},
		{name: "unchecked (unknown)", userID: "u1", domain: "new.dev", unchecked: true},
		{name: "red (flagged too)", userID: "u1", domain: "red.org", state: lifecycle.Redemption, source: gWHOIS},
		{name: "other user's", userID: "u2", domain: "fine.com", state: lifecycle.Registered, source: gRDAP, expiresAt: gT("2030-01-01")},
	}
	res, err := Publish(ctx, gPublished(t, dir, cases, config.BrakeConfig{MaxFraction: 1}, nil))
	if err != nil {
		t.Fatal(err)
	}
	notify := gReadCSV(t, filepath.Join(res.Dir, changeset.FileNotify))
	if len(notify) != 2 {
		t.Fatalf("notify.csv has %d rows, want 2: %v", len(notify), notify)
	}
	// Even ids are primary in the fixtures: soon.net (2) and new.dev (4)
	// first, then fine.com (1).
	want := "user2@soon.net user4@new.dev user1@fine.com"
	for _, r := range notify {
		if r["user_id"] != "u1" || r["other_verified"] != want {
			t.Errorf("notify row %v, want u1 with other verified %q", r, want)
		}
	}
}
