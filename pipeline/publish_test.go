package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/duck"
	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sinks/changeset"
	"github.com/lapse-dev/lapse/sinks/lifecycledb"
)

// gPublishCases: user u1 has three addresses (two on lapsed domains, one
// healthy); others are single addresses.
func gPublishCases() []gCase {
	no := false
	return []gCase{
		{name: "u1 gone", userID: "u1", domain: "gone.com", state: lifecycle.Available, source: gRDAP},
		{name: "u1 healthy", userID: "u1", domain: "fine.com", state: lifecycle.Registered, source: gRDAP, expiresAt: gT("2030-01-01")},
		{name: "u1 redemption", userID: "u1", domain: "red.org", state: lifecycle.Redemption, source: gWHOIS},
		{name: "u2 gone", userID: "u2", domain: "gone.com", state: lifecycle.Available, source: gRDAP},
		{name: "u3 rereg", userID: "u3", domain: "again.dev", state: lifecycle.Registered, source: gRDAP,
			registeredAt: gT("2026-05-01"), firstNight: "2026-02-01"},
		{name: "u4 unverified on gone", userID: "u4", domain: "gone.com", verified: &no, state: lifecycle.Available, source: gRDAP},
		{name: "u5 watch", userID: "u5", domain: "soon.net", state: lifecycle.Expiring, source: gRDAP},
		{name: "u6 invalid", userID: "u6", invalid: true},
	}
}

// gPublished classifies cases into dataDir and returns publish options.
func gPublished(t *testing.T, dataDir string, cases []gCase, brake config.BrakeConfig, db *lifecycledb.DB) PublishOptions {
	t.Helper()
	paths := gWriteFixtures(t, dataDir, cases)
	if _, err := Classify(context.Background(), ClassifyOptionsFor(paths, lifecycle.DefaultPolicy, gAsOf)); err != nil {
		t.Fatal(err)
	}
	return PublishOptions{Paths: night.Paths{DataDir: dataDir, Date: gNight}, Policy: lifecycle.PolicyCorroborated, Brake: brake, DB: db,
		Metrics: lifecycledb.Metrics{CacheHits: 2}, Now: func() time.Time { return gAsOf }}
}

func gOpenDB(t *testing.T, dataDir string) *lifecycledb.DB {
	t.Helper()
	db, err := lifecycledb.Open(filepath.Join(dataDir, "lapse.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func gReadCSV(t *testing.T, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, h := range recs[0] {
			m[h] = r[i]
		}
		out = append(out, m)
	}
	return out
}

func gSHA(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestPublishChangesetFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := gOpenDB(t, dir)
	o := gPublished(t, dir, gPublishCases(), config.BrakeConfig{MaxFraction: 1}, db)
	res, err := Publish(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	m := res.Manifest
	if m.Status != changeset.StatusProposed || m.Counts.Flagged != 4 || m.Counts.Verified != 7 {
		t.Fatalf("manifest %+v", m)
	}
	wantReasons := map[string]int64{"domain_available": 2, "domain_redemption": 1, "domain_reregistered": 1}
	for k, v := range wantReasons {
		if m.Counts.ByReason[k] != v {
			t.Errorf("by reason %v, want %v", m.Counts.ByReason, wantReasons)
		}
	}
	rows := gReadCSV(t, filepath.Join(res.Dir, changeset.FileCSV))
	if len(rows) != 4 {
		t.Fatalf("changeset.csv has %d rows, want 4", len(rows))
	}
	for _, r := range rows {
		if r["verified"] != "true" || r["email"] == "" || r["evidence"] == "" || r["reason"] == "" {
			t.Errorf("changeset row %v", r)
		}
		if r["domain"] == "again.dev" && !strings.Contains(r["evidence"], "first seen 2026-02-02") {
			t.Errorf("re-registration evidence %q lacks the first-seen date", r["evidence"])
		}
	}
	// notify.csv: u1 loses two addresses and keeps fine.com; u2 keeps none.
	notify := gReadCSV(t, filepath.Join(res.Dir, changeset.FileNotify))
	if len(notify) != 4 {
		t.Fatalf("notify.csv has %d rows, want 4", len(notify))
	}
	for _, r := range notify {
		switch r["user_id"] {
		case "u1":
			if r["other_verified"] != "user1@fine.com" {
				t.Errorf("u1 other verified %q, want user1@fine.com", r["other_verified"])
			}
		default:
			if r["other_verified"] != "" {
				t.Errorf("%s other verified %q, want none", r["user_id"], r["other_verified"])
			}
		}
	}
	// Every file: 0600 when it holds addresses, listed with its sha256.
	for _, name := range []string{changeset.FileParquet, changeset.FileCSV, changeset.FileNotify, changeset.FileSummary} {
		p := filepath.Join(res.Dir, name)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, fi.Mode().Perm())
		}
		if got := gSHA(t, p); m.Files[name].SHA256 != got {
			t.Errorf("%s sha256 %s in manifest, file has %s", name, m.Files[name].SHA256, got)
		}
	}
	var onDisk changeset.Manifest
	b, _ := os.ReadFile(filepath.Join(res.Dir, changeset.FileManifest))
	if err := json.Unmarshal(b, &onDisk); err != nil || onDisk.Status != "proposed" || onDisk.Policy != "corroborated" {
		t.Errorf("manifest.json: %v %+v", err, onDisk)
	}
	ents, _ := os.ReadDir(res.Dir)
	if len(ents) != 5 {
		t.Errorf("changeset folder has %d entries (temp files left?), want 5", len(ents))
	}
	summary, _ := os.ReadFile(filepath.Join(res.Dir, changeset.FileSummary))
	for _, want := range []string{"proposed", "## By reason", "domain_available | 2", "## Top domains", "gone.com", "## Sample evidence", "everything is new"} {
		if !strings.Contains(string(summary), want) {
			t.Errorf("summary.md lacks %q:\n%s", want, summary)
		}
	}
	// The report: self-contained, no addresses.
	html, err := os.ReadFile(res.Report)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"@", "src=\"http", "href=\"http", "<script src", "<link"} {
		if strings.Contains(string(html), bad) {
			t.Errorf("report contains %q", bad)
		}
	}
	for _, want := range []string{"2026-06-10", "domain_available", "<svg", "gone.com", ".com"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// The lifecycle DB: the changeset and the decisions, no addresses.
	var status string
	var flagged int64
	if err := db.SQL().QueryRow(`SELECT status, flagged FROM changesets WHERE date = DATE '2026-06-10'`).Scan(&status, &flagged); err != nil || status != "proposed" || flagged != 4 {
		t.Errorf("changesets row: %s %d %v", status, flagged, err)
	}
	var n int
	db.SQL().QueryRow(`SELECT count(*) FROM daily_flags`).Scan(&n)
	if n == 0 {
		t.Error("daily_flags is empty")
	}
	gAssertNoAt(t, db)
}

// gAssertNoAt: no text column of any table of the lifecycle DB holds '@'.
func gAssertNoAt(t *testing.T, db *lifecycledb.DB) {
	t.Helper()
	rows, err := db.SQL().Query(`SELECT c.table_name, c.column_name FROM information_schema.columns c
		JOIN information_schema.tables t USING (table_schema, table_name)
		WHERE t.table_type = 'BASE TABLE' AND c.data_type LIKE 'VARCHAR%'`)
	if err != nil {
		t.Fatal(err)
	}
	var cols [][2]string
	for rows.Next() {
		var a, b string
		rows.Scan(&a, &b)
		cols = append(cols, [2]string{a, b})
	}
	rows.Close()
	if len(cols) < 10 {
		t.Fatalf("only %d text columns: %v", len(cols), cols)
	}
	for _, c := range cols {
		var n int
		if err := db.SQL().QueryRow(`SELECT count(*) FROM "` + c[0] + `" WHERE CAST("` + c[1] + `" AS VARCHAR) LIKE '%@%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			t.Errorf("%s.%s: %d values with '@'", c[0], c[1], n)
		}
	}
}

func TestPublishSafetyBrake(t *testing.T) {
	for _, tc := range []struct {
		name  string
		brake config.BrakeConfig
		want  string
	}{
		{"fraction", config.BrakeConfig{MaxFraction: 0.5}, "brake.max_fraction"}, // 4 of 7 > 50%
		{"count", config.BrakeConfig{MaxFraction: 1, MaxCount: 3}, "brake.max_count 3"},
		{"protected", config.BrakeConfig{MaxFraction: 1, Protected: []string{"RED.org"}}, "protected domains: red.org"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			db := gOpenDB(t, dir)
			res, err := Publish(context.Background(), gPublished(t, dir, gPublishCases(), tc.brake, db))
			if !errors.Is(err, ErrBlocked) {
				t.Fatalf("publish: %v, want ErrBlocked", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if res.Manifest.Status != changeset.StatusBlocked {
				t.Errorf("status %s", res.Manifest.Status)
			}
			var onDisk changeset.Manifest
			b, _ := os.ReadFile(filepath.Join(res.Dir, changeset.FileManifest))
			if err := json.Unmarshal(b, &onDisk); err != nil || onDisk.Status != "blocked" || len(onDisk.BlockReasons) != 1 {
				t.Errorf("manifest.json on disk: %v %+v", err, onDisk)
			}
			if _, err := os.Stat(filepath.Join(res.Dir, changeset.FileCSV)); err != nil {
				t.Errorf("blocked changeset lacks its csv: %v", err)
			}
			var status string
			db.SQL().QueryRow(`SELECT status FROM changesets`).Scan(&status)
			if status != "blocked" {
				t.Errorf("DB changeset status %q", status)
			}
		})
	}
	// Just under every limit passes.
	dir := t.TempDir()
	_, err := Publish(context.Background(), gPublished(t, dir, gPublishCases(),
		config.BrakeConfig{MaxFraction: 4.0 / 7, MaxCount: 4, Protected: []string{"fine.com", "example.org"}}, nil))
	if err != nil {
		t.Fatalf("at the limits: %v", err)
	}
}

func TestPublishIdempotentAndNewSincePrevious(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := gOpenDB(t, dir)
	// An earlier changeset that already held u2's address (email_id 3).
	prev := filepath.Join(dir, "changesets", "2026-06-09", changeset.FileParquet)
	mdb, err := duck.OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer mdb.Close()
	if err := duck.CopyParquet(ctx, mdb, "SELECT 3::BIGINT AS email_id", prev, 0o600); err != nil {
		t.Fatal(err)
	}
	o := gPublished(t, dir, gPublishCases(), config.BrakeConfig{MaxFraction: 1}, db)
	r1, err := Publish(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Manifest.Counts.New != 3 {
		t.Errorf("new since previous = %d, want 3", r1.Manifest.Counts.New)
	}
	hashes := func() map[string]string {
		out := map[string]string{}
		for _, n := range []string{changeset.FileParquet, changeset.FileCSV, changeset.FileNotify, changeset.FileSummary, changeset.FileManifest} {
			out[n] = gSHA(t, filepath.Join(r1.Dir, n))
		}
		out["report"] = gSHA(t, r1.Report)
		return out
	}
	h1 := hashes()
	count := func() (n int) {
		db.SQL().QueryRow(`SELECT (SELECT count(*) FROM email_decisions) + (SELECT count(*) FROM changesets) * 1000 + (SELECT count(*) FROM nightly_metrics) * 1000000`).Scan(&n)
		return n
	}
	c1 := count()
	if _, err := Publish(ctx, o); err != nil {
		t.Fatal(err)
	}
	h2 := hashes()
	for k := range h1 {
		if h1[k] != h2[k] {
			t.Errorf("%s changed on re-publish", k)
		}
	}
	if c2 := count(); c1 != c2 {
		t.Errorf("DB rows changed on re-publish: %d → %d", c1, c2)
	}
}
