package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/duck"
	"github.com/lapse-dev/lapse/sinks/changeset"
	"github.com/lapse-dev/lapse/sinks/lifecycledb"
)

// reviewAddress matches an email address: review and approve print none.
var reviewAddress = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+`)

// csRow is one flagged address of a test changeset.
type csRow struct {
	id                    int64
	domain, state, reason string
}

// writeTestChangeset writes night date's changeset into
// dataDir/changesets/date with changeset.Write (every row a verified
// address to un-verify, on user "u<id>"), creates dataDir/lapse.duckdb
// when missing, and returns the folder.
func writeTestChangeset(t *testing.T, dataDir, date string, brake config.BrakeConfig, rows ...csRow) string {
	t.Helper()
	ctx := context.Background()
	db, err := duck.OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tmp := t.TempDir()
	dec, snap := filepath.Join(tmp, "decisions.parquet"), filepath.Join(tmp, "emails.parquet")
	var vals []string
	for _, r := range rows {
		tld := r.domain[strings.LastIndex(r.domain, ".")+1:]
		vals = append(vals, fmt.Sprintf("(%d, 'u%d', 'user%d@%s', true, true, NULL::TIMESTAMPTZ, NULL::TIMESTAMPTZ, '%s', '%s', '%s', '%s', 'unverify', 'rdap:%s checked %s')",
			r.id, r.id, r.id, r.domain, r.domain, tld, r.state, r.reason, r.state, date))
	}
	q := `SELECT * FROM (VALUES ` + strings.Join(vals, ", ") + `)
		t(email_id, user_id, email, verified, "primary", created, verified_at, domain, tld, state, reason, action, evidence)`
	if err := duck.CopyParquet(ctx, db, q, dec, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := duck.CopyParquet(ctx, db, `SELECT email_id, user_id, email, verified, "primary" FROM read_parquet('`+dec+`')`, snap, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(dataDir, "changesets", date)
	if _, err := changeset.Write(ctx, db, changeset.Spec{Dir: dir, Date: date, Decisions: dec, Snapshot: snap, Verified: 500,
		Policy: "corroborated", Brake: brake}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "lapse.duckdb")); err != nil {
		ldb, err := lifecycledb.Open(filepath.Join(dataDir, "lapse.duckdb"))
		if err != nil {
			t.Fatal(err)
		}
		ldb.Close()
	}
	return dir
}

// markApplied writes the applied.json lapse apply leaves beside dir.
func markApplied(t *testing.T, dir string, changed int) {
	t.Helper()
	_, sum, err := changeset.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	b := fmt.Sprintf(`{"date": %q, "manifest_sha256": %q, "changed": %d, "skipped": 0, "finished_at": "2026-03-01T12:00:00Z"}`,
		filepath.Base(dir), sum, changed)
	if err := os.WriteFile(filepath.Join(dir, changeset.FileApplied), []byte(b), 0o640); err != nil {
		t.Fatal(err)
	}
}

func reviewRows() []csRow {
	return []csRow{{1, "gone.com", "available", "domain_available"}, {2, "gone.com", "available", "domain_available"},
		{4, "gone.com", "available", "domain_available"}, {5, "red.org", "redemption", "domain_redemption"},
		{6, "again.dev", "registered", "reregistered"}, {7, "again.dev", "registered", "reregistered"}}
}

// TestReviewCommand: with no argument lapse review takes the newest
// changeset; its counts are the manifest's, what is new is against the
// applied one before it, and no format prints an address.
func TestReviewCommand(t *testing.T) {
	data := t.TempDir()
	env := []string{"LAPSE_DATA_DIR=" + data}
	markApplied(t, writeTestChangeset(t, data, "2026-03-01", config.BrakeConfig{},
		csRow{1, "gone.com", "available", "domain_available"}, csRow{2, "gone.com", "available", "domain_available"}), 2)
	dir := writeTestChangeset(t, data, "2026-03-02", config.BrakeConfig{}, reviewRows()...)
	m, sum, err := changeset.Verify(dir)
	if err != nil {
		t.Fatal(err)
	}

	code, text, errs := runLapse(t, "", env, "review")
	if code != exitOK {
		t.Fatalf("review: exit %d: %s", code, errs)
	}
	for _, want := range []string{"changeset 2026-03-02: proposed", "folder           " + dir, "manifest sha256  " + sum,
		fmt.Sprintf("%d of %d verified addresses", m.Counts.Flagged, m.Counts.Verified),
		"4 of 6 since the last applied changeset (2026-03-01)",
		"#1 ×3  rdap:available checked 2026-03-02", "lapse approve " + dir + " --by NAME --sha256 " + sum} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	if !regexp.MustCompile(`\ngone\.com +available +domain_available +3 +3 +1\n`).MatchString(text) {
		t.Errorf("text lacks gone.com's line in the largest domains:\n%s", text)
	}
	code, md, errs := runLapse(t, "", env, "review", dir, "--format", "markdown")
	if code != exitOK || !strings.Contains(md, "# lapse changeset 2026-03-02: proposed") || !strings.Contains(md, "| gone.com | available | domain_available | 3 | 3 | 1 |") {
		t.Errorf("markdown: exit %d %s\n%s", code, errs, md)
	}
	code, js, errs := runLapse(t, "", nil, "review", dir, "--format", "json")
	if code != exitOK {
		t.Fatalf("json: exit %d %s", code, errs)
	}
	var r changeset.ReviewReport
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		t.Fatal(err)
	}
	byReason := map[string]int64{}
	for _, x := range r.Counts.ByReason {
		byReason[x.Name] = x.Addresses
	}
	if r.Counts.Flagged != m.Counts.Flagged || r.Counts.Users != m.Counts.Users || r.Counts.FlaggedDomains != m.Counts.FlaggedDomains ||
		!reflect.DeepEqual(byReason, m.Counts.ByReason) || r.ManifestSHA256 != sum || r.New.Since != "2026-03-01" || r.New.New != 4 {
		t.Errorf("json review %+v\nmanifest counts %+v", r, m.Counts)
	}
	for name, out := range map[string]string{"text": text, "markdown": md, "json": js} {
		if a := reviewAddress.FindString(out); a != "" {
			t.Errorf("%s output holds the address %q", name, a)
		}
	}
}

func TestReviewCommandTampered(t *testing.T) {
	data := t.TempDir()
	dir := writeTestChangeset(t, data, "2026-03-02", config.BrakeConfig{}, reviewRows()...)
	os.WriteFile(filepath.Join(dir, changeset.FileCSV), []byte("email_id\n1\n"), 0o600)
	for _, format := range []string{"text", "markdown"} {
		code, out, errs := runLapse(t, "", nil, "review", dir, "--format", format)
		if code != exitOK {
			t.Fatalf("%s: exit %d %s", format, code, errs)
		}
		for _, want := range []string{"FILES DO NOT MATCH THE MANIFEST: CANNOT BE APPROVED", "changeset.csv", "changed since the night wrote it"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s lacks %q:\n%s", format, want, out)
			}
		}
	}
}

func TestReviewCommandErrors(t *testing.T) {
	data := t.TempDir()
	os.MkdirAll(filepath.Join(data, "changesets", "2026-03-02"), 0o750)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"review", "--format", "yaml"}, exitUsage, `--format "yaml": want text, markdown, json`},
		{[]string{"review", "--top", "0"}, exitUsage, "--top 0"},
		{[]string{"review", filepath.Join(data, "nope")}, exitUsage, "nope does not exist"},
		{[]string{"review", "a", "b"}, exitUsage, "accepts at most 1 arg"},
		{[]string{"review", filepath.Join(data, "changesets", "2026-03-02")}, exitFailure, "no manifest.json"},
		{[]string{"review"}, exitFailure, "no changeset in " + filepath.Join(data, "changesets")},
		{[]string{"--data-dir", filepath.Join(data, "empty"), "review"}, exitFailure, "changesets does not exist"},
	} {
		code, _, errs := runLapse(t, "", []string{"LAPSE_DATA_DIR=" + data}, c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d %q; want %d with %q", c.args, code, errs, c.code, c.want)
		}
	}
}

// TestReviewApproveRealNight runs one simulated night, reviews its
// changeset, approves it and reviews it again.
func TestReviewApproveRealNight(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED in -short: runs a night over the simulator")
	}
	data := filepath.Join(t.TempDir(), "data")
	s := newSimSetup(t, data, "")
	date := "2026-01-01"
	env := s.export(date)
	if code, out, errs := runLapse(t, "", env, "--config", s.config, "run", "--date", date); code != exitOK {
		t.Fatalf("night: exit %d\n%s\n%s", code, out, errs)
	}
	dir := filepath.Join(data, "changesets", date)
	m, sum, err := changeset.Verify(dir)
	if err != nil || m.Counts.Flagged == 0 {
		t.Fatalf("the night's changeset: %v, %d flagged (want some)", err, m.Counts.Flagged)
	}
	code, text, errs := runLapse(t, "", env, "--config", s.config, "review")
	if code != exitOK || !strings.Contains(text, "manifest sha256  "+sum) || !strings.Contains(text, fmt.Sprintf("to un-verify     %d of %d", m.Counts.Flagged, m.Counts.Verified)) {
		t.Fatalf("review: exit %d %s\n%s", code, errs, text)
	}
	if a := reviewAddress.FindString(text); a != "" {
		t.Errorf("review of a real night prints the address %q", a)
	}
	code, out, errs := runLapse(t, "", env, "--config", s.config, "approve", "--by", "alice", "--sha256", sum[:16])
	if code != exitOK || !strings.Contains(out, "pinned manifest sha256 "+sum) || !strings.Contains(out, "next: lapse apply "+dir) {
		t.Fatalf("approve: exit %d %s\n%s", code, errs, out)
	}
	code, js, _ := runLapse(t, "", env, "review", dir, "--format", "json")
	var r changeset.ReviewReport
	if err := json.Unmarshal([]byte(js), &r); err != nil || code != exitOK {
		t.Fatalf("review json: exit %d %v", code, err)
	}
	tlds := map[string]int64{}
	for _, x := range r.Counts.ByTLD {
		tlds[x.Name] = x.Addresses
	}
	if r.Approval == nil || !r.Approval.Current || r.Approval.By != "alice" || r.Next[0] != "lapse apply "+dir ||
		r.Counts.Flagged != m.Counts.Flagged || !reflect.DeepEqual(tlds, m.Counts.ByTLD) {
		t.Errorf("review after approve: approval %+v next %q counts %+v (manifest %+v)", r.Approval, r.Next, r.Counts, m.Counts)
	}
}
