package cache

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/internal/duck"
	"github.com/lapse-dev/lapse/lifecycle"
)

// ExportStates is the one writer of the cache's entries as Parquet (the
// states copy and `lapse cache export`): every column read back.
func TestExportStatesReadBack(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 3, 10, 2, 0, 0, 0, time.UTC)}
	c := openTest(t, filepath.Join(t.TempDir(), "cache"), clk)
	tp := func(s string) *time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return &v
	}
	now := clk.Now()
	yes := true
	reg := lifecycle.Lifecycle{Domain: "reg.com", State: lifecycle.Registered, Statuses: []string{"client transfer prohibited"},
		RegisteredAt: tp("2015-06-01T10:00:00Z"), ExpiresAt: tp("2027-06-01T10:00:00Z"), LastChanged: tp("2025-12-01T00:00:00Z"),
		Delegated: &yes, Source: lifecycle.SourceRDAP, CheckedAt: now, AsOf: now, Corroborated: true,
		Evidence: []lifecycle.Evidence{{Source: lifecycle.SourceRDAP, State: lifecycle.Registered, CheckedAt: now, Server: "rdap.example.net"}}}
	failed := lifecycle.Lifecycle{Domain: "err.org", State: lifecycle.Unknown, Source: lifecycle.SourceRDAP, CheckedAt: now, AsOf: now,
		Error: "rdap err.org: 429 Too Many Requests"}
	avail := lifecycle.Lifecycle{Domain: "avail.net", State: lifecycle.Available, Source: lifecycle.SourceRDAP, CheckedAt: now, AsOf: now}
	for _, lc := range []lifecycle.Lifecycle{reg, failed, avail} {
		if _, err := c.Record(ctx, lc); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.MarkUnverified(ctx, []string{"avail.net"}); err != nil {
		t.Fatal(err)
	}
	// A failed lookup after a known answer: the known answer stays, the
	// error goes to last_error.
	clk.Set(clk.Now().Add(time.Hour))
	later := failed
	later.Domain, later.CheckedAt, later.AsOf, later.Error = "reg.com", clk.Now(), clk.Now(), "rdap reg.com: timeout"
	if _, err := c.Record(ctx, later); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "export.parquet")
	n, tok, err := ExportStates(ctx, c, path)
	if err != nil || n != 3 {
		t.Fatalf("export: %d rows, %v", n, err)
	}
	if cur, _ := c.ChangeToken(ctx); tok == "" || tok != cur {
		t.Errorf("export token %q, cache token %q", tok, cur)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("export file: %v %v", fi, err)
	}
	db, err := duck.OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT domain, state, coalesce(array_to_string(statuses, '|'), '<null>'),
		coalesce(strftime(registered_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ'), '<null>'),
		coalesce(strftime(last_changed AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ'), '<null>'),
		coalesce(CAST(delegated AS VARCHAR), '<null>'), coalesce(source, '<null>'),
		strftime(checked_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ'), coalesce(error, '<null>'), coalesce(last_error, '<null>'),
		corroborated, coalesce(json_extract_string(evidence_json, '$[0].server'), '<null>'),
		strftime(next_check AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ'), consecutive_errors, unverified, decisive_nights,
		typeof(registered_at), typeof(consecutive_errors)
		FROM read_parquet(?) ORDER BY domain`, path)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var f [18]any
		ptrs := make([]any, len(f))
		for i := range f {
			ptrs[i] = &f[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprint(f[:]...))
	}
	want := []string{
		fmt.Sprint("avail.net", "available", "<null>", "<null>", "<null>", "<null>", "rdap", "2026-03-10T02:00:00Z", "<null>", "<null>",
			false, "<null>", "2026-03-16T22:00:00Z", int64(0), true, int64(1), "TIMESTAMP WITH TIME ZONE", "BIGINT"),
		fmt.Sprint("err.org", "unknown", "<null>", "<null>", "<null>", "<null>", "rdap", "2026-03-10T02:00:00Z",
			"rdap err.org: 429 Too Many Requests", "rdap err.org: 429 Too Many Requests",
			false, "<null>", "2026-03-10T22:00:00Z", int64(1), false, int64(0), "TIMESTAMP WITH TIME ZONE", "BIGINT"),
		fmt.Sprint("reg.com", "registered", "client transfer prohibited", "2015-06-01T10:00:00Z", "2025-12-01T00:00:00Z", "true", "rdap",
			"2026-03-10T02:00:00Z", "<null>", "rdap reg.com: timeout",
			true, "rdap.example.net", "2026-03-10T23:00:00Z", int64(1), false, int64(0), "TIMESTAMP WITH TIME ZONE", "BIGINT"),
	}
	if len(got) != len(want) {
		t.Fatalf("rows %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("row %d\n got %s\nwant %s", i, got[i], want[i])
		}
	}
}

// Issue 11: the states files carry the authoritative and status API
// facts, and registered_at/expires_at keep the authoritative dates
// through a status API's answer.
func TestExportStatesAuthoritativeFacts(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 3, 10, 2, 0, 0, 0, time.UTC)
	clk := &clock{t: at}
	c := openTest(t, filepath.Join(t.TempDir(), "cache"), clk)
	if _, err := c.Record(ctx, answer("reg.com", lifecycle.Registered, at)); err != nil {
		t.Fatal(err)
	}
	clk.Set(at.Add(30 * Day))
	if _, err := c.Record(ctx, statusAnswer("reg.com", lifecycle.Registered, []string{"active"}, clk.Now(), "")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Record(ctx, statusAnswer("new.com", lifecycle.Registered, []string{"undelegated", "active"}, clk.Now(), "rdap new.com: timeout")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "states.parquet")
	if _, _, err := ExportStates(ctx, c, path); err != nil {
		t.Fatal(err)
	}
	db, err := duck.OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	f := func(col string) string {
		return fmt.Sprintf("coalesce(strftime(%s AT TIME ZONE 'UTC', '%%Y-%%m-%%d'), '-')", col)
	}
	rows, err := db.Query(`SELECT domain, source, `+f("registered_at")+`, `+f("expires_at")+`, `+f("auth_checked_at")+`,
		coalesce(auth_source, '-'), coalesce(auth_state, '-'), `+f("auth_registered_at")+`, `+f("auth_expires_at")+`,
		auth_failures, `+f("auth_retry_at")+`, coalesce(status_source, '-'), coalesce(array_to_string(status_flags, '|'), '-'), `+f("status_checked_at")+`
		FROM read_parquet(?) ORDER BY domain`, path)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var v [14]any
		ptrs := make([]any, len(v))
		for i := range v {
			ptrs[i] = &v[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprint(v[:]...))
	}
	want := []string{
		fmt.Sprint("new.com", "domainr", "-", "-", "-", "-", "-", "-", "-", int64(1), "2026-04-09", "domainr", "active|undelegated", "2026-04-09"),
		fmt.Sprint("reg.com", "domainr", "2015-06-01", "2027-06-01", "2026-03-10", "rdap", "registered", "2015-06-01", "2027-06-01", int64(0), "-", "domainr", "active", "2026-04-09"),
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("rows\n got %q\nwant %q", got, want)
	}
}
