package lifecycledb

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/internal/night"
)

var t0 = time.Date(2026, 6, 10, 3, 0, 0, 0, time.UTC)

func openTemp(t *testing.T) *DB {
	t.Helper()
	d, err := Open(filepath.Join(t.TempDir(), "lapse.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	clk := t0
	d.Now = func() time.Time { clk = clk.Add(time.Second); return clk }
	return d
}

func TestOpenMigratesOnceAndReopens(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lapse.duckdb")
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := d.SchemaVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := migrations()
	if v != ms[len(ms)-1].version || v < 1 {
		t.Fatalf("schema version %d, want %d", v, ms[len(ms)-1].version)
	}
	for _, view := range []string{"daily_flags", "cumulative_unverified", "states_by_tld", "lookup_cost", "detection_lead_time"} {
		if _, err := d.SQL().ExecContext(ctx, "SELECT * FROM "+view); err != nil {
			t.Errorf("view %s: %v", view, err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d, err = Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer d.Close()
	var n int
	if err := d.SQL().QueryRow(`SELECT count(*) FROM schema_version`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) {
		t.Errorf("schema_version has %d rows after reopening, want %d (migrations ran twice?)", n, len(ms))
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lapse.duckdb")
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.SQL().Exec(`INSERT INTO schema_version VALUES (999, '999_future.sql', now())`); err != nil {
		t.Fatal(err)
	}
	d.Close()
	_, err = Open(path)
	if err == nil || !strings.Contains(err.Error(), "upgrade lapse") {
		t.Fatalf("open of a newer schema: %v, want an upgrade message", err)
	}
}

// TestHelperHoldDB is not a test: TestOpenInUseByAnotherProcess runs the
// test binary with it to hold the database from a second process.
func TestHelperHoldDB(t *testing.T) {
	path := os.Getenv("LAPSE_TEST_HOLD_DB")
	if path == "" {
		t.Skip("helper process only: run by TestOpenInUseByAnotherProcess")
	}
	d, err := Open(path)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin) // hold until the parent closes stdin
	d.Close()
	os.Exit(0)
}

func TestOpenInUseByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lapse.duckdb")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldDB$")
	cmd.Env = append(os.Environ(), "LAPSE_TEST_HOLD_DB="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("helper: %q %v", line, err)
	}
	_, err = Open(path)
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("open while held: %v, want ErrInUse", err)
	}
	if !strings.Contains(err.Error(), "lapse.duckdb is in use by another lapse process") {
		t.Errorf("message %q", err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	d, err := Open(path)
	if err != nil {
		t.Fatalf("open after release: %v", err)
	}
	d.Close()
}

func TestRunsAndStagesResume(t *testing.T) {
	ctx := context.Background()
	d := openTemp(t)
	const date = "2026-06-10"
	if s, err := d.LastFinishedStage(ctx, date); err != nil || s != "" {
		t.Fatalf("fresh night: %q %v", s, err)
	}
	r1, err := d.BeginRun(ctx, date, t0)
	if err != nil {
		t.Fatal(err)
	}
	rec := func(run int64, stage, outcome string, at time.Time) {
		t.Helper()
		if err := d.RecordStage(ctx, run, night.StageRecord{Stage: stage, StartedAt: at, FinishedAt: at.Add(time.Minute), RowsIn: 10, RowsOut: 5, Outcome: outcome}); err != nil {
			t.Fatal(err)
		}
	}
	rec(r1, "snapshot", night.OutcomeOK, t0)
	rec(r1, "plan", night.OutcomeOK, t0.Add(2*time.Minute))
	rec(r1, "resolve", night.OutcomeFailed, t0.Add(4*time.Minute))
	if err := d.FinishRun(ctx, r1, night.OutcomeFailed, t0.Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if s, _ := d.LastFinishedStage(ctx, date); s != "plan" {
		t.Fatalf("after a failed resolve: %q, want plan", s)
	}
	if done, _ := d.NightFinished(ctx, date); done {
		t.Fatal("a failed night counts as finished")
	}
	// A second run resumes and dies without finishing anything: the first
	// run's progress still counts.
	r2, _ := d.BeginRun(ctx, date, t0.Add(10*time.Minute))
	d.FinishRun(ctx, r2, night.OutcomeFailed, t0.Add(11*time.Minute))
	if s, _ := d.LastFinishedStage(ctx, date); s != "plan" {
		t.Fatalf("after an empty run: %q, want plan", s)
	}
	// A third finishes the night.
	r3, _ := d.BeginRun(ctx, date, t0.Add(20*time.Minute))
	rec(r3, "resolve", night.OutcomeOK, t0.Add(20*time.Minute))
	rec(r3, "classify", night.OutcomeOK, t0.Add(22*time.Minute))
	rec(r3, "publish", night.OutcomeBlocked, t0.Add(24*time.Minute))
	d.FinishRun(ctx, r3, night.OutcomeBlocked, t0.Add(30*time.Minute))
	if s, _ := d.LastFinishedStage(ctx, date); s != "publish" {
		t.Fatalf("finished night: %q, want publish", s)
	}
	if done, _ := d.NightFinished(ctx, date); !done {
		t.Fatal("finished (blocked) night not finished")
	}
	// --force: earlier runs are superseded; the forced run starts over.
	if err := d.Supersede(ctx, date); err != nil {
		t.Fatal(err)
	}
	if s, _ := d.LastFinishedStage(ctx, date); s != "" {
		t.Fatalf("after supersede: %q, want none", s)
	}
	if done, _ := d.NightFinished(ctx, date); done {
		t.Fatal("superseded night still finished")
	}
	// Other nights are untouched.
	if s, _ := d.LastFinishedStage(ctx, "2026-06-09"); s != "" {
		t.Fatalf("other night: %q", s)
	}
	if _, err := d.BeginRun(ctx, "June 10", t0); err == nil {
		t.Error("BeginRun accepted a bad date")
	}
}

// writeParquet writes a query's rows to a Parquet file with DuckDB.
func writeParquet(t *testing.T, db *sql.DB, query, path string) {
	t.Helper()
	if _, err := db.Exec(fmt.Sprintf("COPY (%s) TO '%s' (FORMAT parquet)", query, path)); err != nil {
		t.Fatalf("%v\n%s", err, query)
	}
}

// seedNight writes observations and decisions files for a night and loads
// them, with the night's metrics and changeset.
func seedNight(t *testing.T, d *DB, night string, flagged []int, status string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	obs := filepath.Join(dir, "domains.parquet")
	dec := filepath.Join(dir, "decisions.parquet")
	writeParquet(t, d.SQL(), `SELECT * FROM (VALUES
		('gone.com', 'available', ['inactive'], NULL::TIMESTAMPTZ, 'domainr', TIMESTAMPTZ '2026-06-10 03:00:00+00', true,
		 '[{"source":"domainr","state":"available","statuses":["inactive"]},{"source":"rdap","state":"available"}]', NULL),
		('red.org', 'redemption', ['redemption period'], TIMESTAMPTZ '2015-01-01 00:00:00+00', 'rdap', TIMESTAMPTZ '2026-06-10 03:00:00+00', true,
		 '[{"source":"rdap","state":"redemption"}]', NULL),
		('fail.net', 'unknown', NULL, NULL, 'rdap', TIMESTAMPTZ '2026-06-10 03:00:00+00', false, NULL, 'rdap: 429 too many requests, write to abuse@registry.example'))
		AS t(domain, state, statuses, registered_at, source, checked_at, corroborated, evidence_json, error)`, obs)
	var rows []string
	for _, id := range flagged {
		rows = append(rows, fmt.Sprintf("(%d, 'u%d', 'user%d@gone.com', true, 'gone.com', 'com', 'available', 'unverify', 'domain_available')", id, id, id))
	}
	rows = append(rows, "(900, 'owner@red.org', 'x@red.org', true, 'red.org', 'org', 'redemption', 'watch', 'awaiting_confirmation')",
		"(901, 'u901', 'y@fine.com', true, 'fine.com', 'com', 'registered', 'keep', 'domain_registered')")
	writeParquet(t, d.SQL(), `SELECT * FROM (VALUES `+strings.Join(rows, ", ")+`)
		AS t(email_id, user_id, email, verified, domain, tld, state, action, reason)`, dec)
	if _, err := d.AppendObservations(ctx, night, obs); err != nil {
		t.Fatal(err)
	}
	if _, err := d.AppendDecisions(ctx, night, dec, "corroborated"); err != nil {
		t.Fatal(err)
	}
	if err := d.RecordChangeset(ctx, Changeset{Date: night, Status: status, Policy: "corroborated", Flagged: int64(len(flagged)), Verified: 100}); err != nil {
		t.Fatal(err)
	}
	if err := d.RecordMetrics(ctx, night, Metrics{Addresses: 100, Verified: 100, Domains: 3, CacheHits: 1,
		Extra: []Metric{{Name: "domains_deferred", Value: 2}}}); err != nil {
		t.Fatal(err)
	}
}

func metricMap(t *testing.T, d *DB, night string) map[string]float64 {
	t.Helper()
	ms, err := d.NightMetrics(context.Background(), night)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, m := range ms {
		k := m.Name
		if m.Key != "" {
			k += "/" + m.Key
		}
		if m.Subkey != "" {
			k += "/" + m.Subkey
		}
		out[k] = m.Value
	}
	return out
}

func TestNightDataIdempotentMetricsAndViews(t *testing.T) {
	ctx := context.Background()
	d := openTemp(t)
	seedNight(t, d, "2026-06-09", []int{1, 2}, "proposed")
	seedNight(t, d, "2026-06-10", []int{2, 3, 4}, "proposed")
	first := metricMap(t, d, "2026-06-10")
	// Re-running a night replaces its rows.
	seedNight(t, d, "2026-06-10", []int{2, 3, 4}, "proposed")
	again := metricMap(t, d, "2026-06-10")
	if fmt.Sprint(first) != fmt.Sprint(again) {
		t.Errorf("metrics changed on re-run:\n%v\n%v", first, again)
	}
	var n int
	d.SQL().QueryRow(`SELECT count(*) FROM domain_observations WHERE date = DATE '2026-06-10'`).Scan(&n)
	if n != 3 {
		t.Errorf("observations of the night: %d, want 3", n)
	}
	d.SQL().QueryRow(`SELECT count(*) FROM email_decisions WHERE date = DATE '2026-06-10'`).Scan(&n)
	if n != 4 { // 3 unverify + 1 watch; keep is not stored
		t.Errorf("decisions of the night: %d, want 4", n)
	}
	want := map[string]float64{
		"addresses_scanned": 100, "cache_hits": 1, "domains_deferred": 2,
		"lookups/domainr/ok": 1, "lookups/rdap/ok": 2, "lookups/rdap/error": 1,
		"flagged": 3, "flagged_by_reason/domain_available": 3, "flagged_by_tld/com": 3, "flagged_by_state/available": 3,
		"decisions/watch": 1, "decisions/unverify": 3,
		// ids 1, 2 on the 9th; 3 and 4 new on the 10th.
		"unverified_cumulative": 4,
	}
	for k, v := range want {
		if again[k] != v {
			t.Errorf("metric %s = %v, want %v (all: %v)", k, again[k], v, again)
		}
	}
	// The watch and keep rows are counted under decisions only.
	for k := range again {
		if _, ok := want[k]; !ok && (strings.HasPrefix(k, "flagged") || strings.HasPrefix(k, "decisions/")) {
			t.Errorf("metric %s = %v, not expected (all: %v)", k, again[k], again)
		}
	}
	var cum, newN int64
	if err := d.SQL().QueryRow(`SELECT cumulative, new_unverified FROM cumulative_unverified WHERE date = DATE '2026-06-10'`).Scan(&cum, &newN); err != nil {
		t.Fatal(err)
	}
	if cum != 4 || newN != 2 {
		t.Errorf("cumulative %d new %d, want 4 and 2", cum, newN)
	}
	// A blocked night does not count as un-verified.
	seedNight(t, d, "2026-06-11", []int{5}, "blocked")
	if got := metricMap(t, d, "2026-06-11")["unverified_cumulative"]; got != 4 {
		t.Errorf("cumulative after a blocked night = %v, want 4", got)
	}
	var lead sql.NullInt64
	if err := d.SQL().QueryRow(`SELECT lead_days FROM detection_lead_time WHERE domain = 'gone.com'`).Scan(&lead); err != nil {
		t.Fatal(err)
	}
	if !lead.Valid || lead.Int64 != 0 {
		t.Errorf("lead days %v, want 0 (flagged the night it was seen available)", lead)
	}
	c, ok, err := d.LastChangeset(ctx, "2026-06-11")
	if err != nil || !ok || c.Date != "2026-06-10" || c.Flagged != 3 {
		t.Errorf("last changeset before the 11th: %+v %v %v", c, ok, err)
	}
	assertNoAddresses(t, d)
}

// assertNoAddresses: no text column of any table holds an '@'.
func assertNoAddresses(t *testing.T, d *DB) {
	t.Helper()
	rows, err := d.SQL().Query(`SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = 'main' AND data_type IN ('VARCHAR', 'VARCHAR[]')
		AND table_name IN (SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE')`)
	if err != nil {
		t.Fatal(err)
	}
	var cols [][2]string
	for rows.Next() {
		var tb, c string
		rows.Scan(&tb, &c)
		cols = append(cols, [2]string{tb, c})
	}
	rows.Close()
	if len(cols) < 10 {
		t.Fatalf("only %d text columns found: %v", len(cols), cols)
	}
	for _, c := range cols {
		var n int
		q := fmt.Sprintf(`SELECT count(*) FROM %q WHERE CAST(%q AS VARCHAR) LIKE '%%@%%'`, c[0], c[1])
		if err := d.SQL().QueryRow(q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			t.Errorf("%s.%s holds %d values with '@': raw addresses in the lifecycle DB", c[0], c[1], n)
		}
	}
}
