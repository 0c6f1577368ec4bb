package main

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lapse-dev/lapse/notebooks"
	"github.com/lapse-dev/lapse/sinks/lifecycledb"
)

// queryDataDir is a data dir whose lapse.duckdb holds a few nights.
func queryDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	db, err := lifecycledb.Open(filepath.Join(dir, "lapse.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = db.SQL().Exec(`
		INSERT INTO email_decisions VALUES
			('2026-06-09', 1, 'u1', true, 'gone.com', 'com', 'available', 'unverify', 'domain_available', 'corroborated'),
			('2026-06-10', 2, 'u2', true, 'red.org', 'org', 'redemption', 'unverify', 'domain_redemption', 'corroborated'),
			('2026-06-10', 3, 'u "3", x', true, 'red.org', 'org', 'redemption', 'watch', 'domain_redemption', 'corroborated');
		INSERT INTO nightly_metrics VALUES
			('2026-06-09', 'lookups', 'rdap', 'ok', 7), ('2026-06-10', 'lookups', 'rdap', 'ok', 9.5),
			('2026-06-10', 'lookups', 'whois', 'error', 2);`)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// duckCopy has DuckDB itself write the query's result (COPY … TO) on its
// own read-only handle of the same file.
func duckCopy(t *testing.T, dir, q, options string) []byte {
	t.Helper()
	db, err := notebooks.OpenReadOnly(filepath.Join(dir, "lapse.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := filepath.Join(t.TempDir(), "out")
	if _, err := db.Exec(`COPY (` + q + `) TO '` + out + `' (` + options + `)`); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestQueryAgreesWithDuckDB(t *testing.T) {
	dir := queryDataDir(t)
	const q = `SELECT date, reason, tld, flagged, user_id FROM daily_flags JOIN (SELECT date, tld, reason, max(user_id) AS user_id FROM email_decisions GROUP BY ALL) USING (date, tld, reason) ORDER BY date, reason`
	const q2 = `SELECT d.date, d.user_id, d.action, m.lookups FROM email_decisions d
		JOIN (SELECT date, sum(lookups) AS lookups FROM lookup_cost GROUP BY date) m USING (date) ORDER BY d.email_id`

	code, out, errs := gRunCLI("--data-dir", dir, "query", "--format", "csv", q2)
	if code != 0 {
		t.Fatalf("csv: %d %s", code, errs)
	}
	got, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want, err := csv.NewReader(strings.NewReader(string(duckCopy(t, dir, q2, "FORMAT csv, HEADER true, DATEFORMAT '%Y-%m-%d'")))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) || len(got) != 4 {
		t.Errorf("lapse query --format csv:\n%q\nDuckDB's COPY:\n%q", got, want)
	}

	code, out, errs = gRunCLI("--data-dir", dir, "query", "--format", "json", q)
	if code != 0 {
		t.Fatalf("json: %d %s", code, errs)
	}
	var gotJ, wantJ []map[string]any
	if err := json.Unmarshal([]byte(out), &gotJ); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if err := json.Unmarshal(duckCopy(t, dir, q, "FORMAT json, ARRAY true"), &wantJ); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotJ, wantJ) || len(gotJ) != 2 {
		t.Errorf("lapse query --format json:\n%v\nDuckDB's COPY:\n%v", gotJ, wantJ)
	}

	// The table: every value DuckDB returns, in order.
	code, out, _ = gRunCLI("--data-dir", dir, "query", "SELECT provider, outcome, sum(lookups) AS n FROM lookup_cost GROUP BY ALL ORDER BY n DESC")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || strings.Fields(lines[0])[2] != "n" || strings.Join(strings.Fields(lines[1]), " ") != "rdap ok 17" {
		t.Errorf("table: %d\n%s", code, out)
	}
	// From stdin, with a comment and a trailing semicolon.
	var o, e strings.Builder
	code = run(context.Background(), []string{"--data-dir", dir, "query", "-"}, strings.NewReader("-- how many\nSELECT count(*) AS n FROM email_decisions;\n"), &o, &e, nil)
	if code != 0 || !strings.Contains(o.String(), "3") {
		t.Errorf("stdin: %d %q %q", code, o.String(), e.String())
	}
}

func TestQueryRefusesWrites(t *testing.T) {
	dir := queryDataDir(t)
	for q, want := range map[string]string{
		"DELETE FROM email_decisions":                 "DELETE statements are refused",
		"SELECT 1; DELETE FROM email_decisions":       "one statement at a time",
		"SELECT nextval('run_ids')":                   "DuckDB refused it",
		"CREATE TABLE t AS SELECT * FROM runs":        "CREATE statements",
		"UPDATE email_decisions SET verified = false": "UPDATE statements",
	} {
		code, _, errs := gRunCLI("--data-dir", dir, "query", q)
		if code != 2 || !strings.Contains(errs, "lapse query is read-only: ") || !strings.Contains(errs, want) {
			t.Errorf("%q: exit %d, %q (want exit 2 and %q)", q, code, errs, want)
		}
	}
	db, err := sql.Open("duckdb", filepath.Join(dir, "lapse.duckdb")+"?access_mode=READ_ONLY")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM email_decisions WHERE verified`).Scan(&n); err != nil || n != 3 {
		t.Errorf("the database changed: %d rows %v", n, err)
	}
	if code, _, errs := gRunCLI("--data-dir", dir, "query", "--format", "xml", "SELECT 1"); code != 2 || !strings.Contains(errs, "want table, csv, json") {
		t.Errorf("--format xml: %d %q", code, errs)
	}
	if code, _, errs := gRunCLI("--data-dir", t.TempDir(), "query", "SELECT 1"); code != 2 || !strings.Contains(errs, "no lifecycle database") {
		t.Errorf("no database: %d %q", code, errs)
	}
	if code, _, errs := gRunCLI("--data-dir", dir, "query", "SELECT * FROM no_such_table"); code != 1 || !strings.Contains(errs, "no_such_table") {
		t.Errorf("bad SQL: %d %q", code, errs)
	}
}
