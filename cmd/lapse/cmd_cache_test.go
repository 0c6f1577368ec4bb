package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/lapse-dev/lapse/cache"
	"github.com/lapse-dev/lapse/lifecycle"
)

// seedCache writes a few entries into DATA_DIR/cache.
func seedCache(t *testing.T, dataDir string) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	c, err := cache.Open(filepath.Join(dataDir, "cache"), cache.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reg := now.AddDate(-3, 0, 0)
	exp := now.AddDate(1, 0, 0)
	for _, lc := range []lifecycle.Lifecycle{
		{Domain: "example.com", State: lifecycle.Registered, Statuses: []string{"active"}, RegisteredAt: &reg, ExpiresAt: &exp, Source: lifecycle.SourceRDAP, CheckedAt: now, AsOf: now, Corroborated: true},
		{Domain: "gone.org", State: lifecycle.Available, Source: lifecycle.SourceRDAP, CheckedAt: now, AsOf: now, Corroborated: true},
		{Domain: "flaky.net", State: lifecycle.Unknown, Source: lifecycle.SourceWHOIS, CheckedAt: now, AsOf: now, Error: "whois flaky.net: limit exceeded"},
	} {
		if _, err := c.Record(context.Background(), lc); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCacheCommands(t *testing.T) {
	dataDir := t.TempDir()
	env := []string{"LAPSE_DATA_DIR=" + dataDir}

	code, _, errs := runLapse(t, "", env, "cache", "stats")
	if code != exitFailure || !strings.Contains(errs, "does not exist yet") {
		t.Fatalf("stats of a missing cache: exit %d, %q", code, errs)
	}
	seedCache(t, dataDir)

	code, out, errs := runLapse(t, "", env, "cache", "stats")
	if code != exitOK || !strings.Contains(out, "entries") || !strings.Contains(out, "registered") {
		t.Fatalf("stats: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runLapse(t, "", env, "cache", "stats", "--json")
	var st cache.Stats
	if code != exitOK || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("stats --json: exit %d\n%s%s", code, out, errs)
	}
	if st.Entries != 3 || st.Errors != 1 || st.ByState[lifecycle.Available] != 1 || st.SizeBytes <= 0 {
		t.Errorf("stats: %+v", st)
	}

	code, out, errs = runLapse(t, "", env, "cache", "get", "Example.COM.")
	var e cache.Entry
	if code != exitOK || json.Unmarshal([]byte(out), &e) != nil {
		t.Fatalf("get: exit %d\n%s%s", code, out, errs)
	}
	if e.Domain != "example.com" || e.Lifecycle.State != lifecycle.Registered || e.NextCheck.IsZero() {
		t.Errorf("get: %+v", e)
	}
	if code, _, errs = runLapse(t, "", env, "cache", "get", "nope.com"); code != exitFailure || !strings.Contains(errs, "nope.com is not in the cache") {
		t.Errorf("get missing: exit %d, %q", code, errs)
	}
	if code, _, _ = runLapse(t, "", env, "cache", "get"); code != exitUsage {
		t.Errorf("get without a domain: exit %d", code)
	}

	if code, _, errs = runLapse(t, "", env, "cache", "export"); code != exitUsage || !strings.Contains(errs, "--parquet") {
		t.Errorf("export without --parquet: exit %d, %q", code, errs)
	}
	pq := filepath.Join(t.TempDir(), "out", "cache.parquet")
	if code, _, errs = runLapse(t, "", env, "cache", "export", "--parquet", pq); code != exitOK {
		t.Fatalf("export: exit %d, %s", code, errs)
	}
	checkExportWithDuckDB(t, pq)

	code, out, errs = runLapse(t, "", env, "cache", "gc")
	if code != exitOK || !strings.Contains(out, "dropped 0 stale entries") {
		t.Errorf("gc: exit %d\n%s%s", code, out, errs)
	}

	// A nightly run holding the cache locks the commands out.
	c, err := cache.Open(filepath.Join(dataDir, "cache"), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	code, _, errs = runLapse(t, "", env, "cache", "get", "example.com")
	if code != exitFailure || !strings.Contains(errs, "cache at "+filepath.Join(dataDir, "cache")+" is in use by another lapse process") {
		t.Errorf("locked: exit %d, %q", code, errs)
	}
}

// checkExportWithDuckDB reads the export the way the classify stage and
// the notebooks do.
func checkExportWithDuckDB(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("export mode %v", fi.Mode().Perm())
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT domain, state, coalesce(error, ''), registered_at IS NOT NULL,
		len(coalesce(statuses, [])), consecutive_errors, next_check > checked_at
		FROM read_parquet(?) ORDER BY domain`, path)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var domain, state, errText string
		var hasReg, later bool
		var nStatuses, nErr int
		if err := rows.Scan(&domain, &state, &errText, &hasReg, &nStatuses, &nErr, &later); err != nil {
			t.Fatal(err)
		}
		got = append(got, strings.Join([]string{domain, state, errText, strconv.FormatBool(hasReg), strconv.Itoa(nStatuses), strconv.Itoa(nErr), strconv.FormatBool(later)}, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"example.com|registered||true|1|0|true",
		"flaky.net|unknown|whois flaky.net: limit exceeded|false|0|1|true",
		"gone.org|available||false|0|0|true",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("DuckDB read of the export:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var typ string
	if err := db.QueryRow(`SELECT typeof(registered_at) FROM read_parquet(?) LIMIT 1`, path).Scan(&typ); err != nil || typ != "TIMESTAMP WITH TIME ZONE" {
		t.Errorf("registered_at type %q, %v", typ, err)
	}
}
