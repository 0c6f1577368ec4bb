package changeset

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/duck"
)

func TestBrake(t *testing.T) {
	for _, tc := range []struct {
		name              string
		b                 config.BrakeConfig
		flagged, verified int64
		protected         []string
		want              string // "" = passes
	}{
		{"under the fraction", config.BrakeConfig{MaxFraction: 0.005}, 5, 1000, nil, ""},
		{"over the fraction", config.BrakeConfig{MaxFraction: 0.005}, 6, 1000, nil, "max_fraction"},
		{"fraction 0 disables", config.BrakeConfig{}, 600, 1000, nil, ""},
		{"nothing verified", config.BrakeConfig{MaxFraction: 0.005}, 0, 0, nil, ""},
		{"at the count", config.BrakeConfig{MaxCount: 10}, 10, 1e6, nil, ""},
		{"over the count", config.BrakeConfig{MaxCount: 10}, 11, 1e6, nil, "max_count 10"},
		{"protected", config.BrakeConfig{}, 1, 1e6, []string{"pypi.org"}, "protected domains: pypi.org"},
	} {
		got := Brake(tc.b, tc.flagged, tc.verified, tc.protected)
		switch {
		case tc.want == "" && len(got) != 0:
			t.Errorf("%s: blocked: %v", tc.name, got)
		case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
			t.Errorf("%s: %v, want one reason with %q", tc.name, got, tc.want)
		}
	}
	if got := Brake(config.BrakeConfig{MaxFraction: 0.001, MaxCount: 1}, 5, 10, []string{"a.com"}); len(got) != 3 {
		t.Errorf("all three limits crossed: %v", got)
	}
}

// TestWriteFromSpecCountsAndSnapshot: the brake's denominator is the
// Spec's verified count (the decisions hold no keep rows to count), and
// notify.csv's other verified addresses come from the snapshot.
func TestWriteFromSpecCountsAndSnapshot(t *testing.T) {
	ctx := context.Background()
	db, err := duck.OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dir := t.TempDir()
	dec, snap := filepath.Join(dir, "decisions.parquet"), filepath.Join(dir, "emails.parquet")
	// u1 loses a@gone.com; b@soon.net is only watched, c@fine.com kept
	// (not in the decisions), d@old.org unverified.
	if err := duck.CopyParquet(ctx, db, `SELECT * FROM (VALUES
		(1, 'u1', 'a@gone.com', true, true, NULL::TIMESTAMPTZ, NULL::TIMESTAMPTZ, 'gone.com', 'com', 'available', 'domain_available', 'unverify', 'rdap:available'),
		(2, 'u1', 'b@soon.net', true, false, NULL::TIMESTAMPTZ, NULL::TIMESTAMPTZ, 'soon.net', 'net', 'expiring', 'domain_expiring', 'watch', 'rdap:expiring'))
		t(email_id, user_id, email, verified, "primary", created, verified_at, domain, tld, state, reason, action, evidence)`, dec, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := duck.CopyParquet(ctx, db, `SELECT * FROM (VALUES
		(1, 'u1', 'a@gone.com', true, true), (2, 'u1', 'b@soon.net', true, false),
		(3, 'u1', 'c@fine.com', true, false), (4, 'u1', 'd@old.org', false, false), (5, 'u2', 'e@fine.com', true, true))
		t(email_id, user_id, email, verified, "primary")`, snap, 0o600); err != nil {
		t.Fatal(err)
	}
	s := Spec{Dir: filepath.Join(dir, "cs"), Date: "2026-06-10", Decisions: dec, Snapshot: snap, Verified: 1000,
		Policy: "corroborated", Brake: config.BrakeConfig{MaxFraction: 0.0005}}
	res, err := Write(ctx, db, s)
	if err != nil {
		t.Fatal(err)
	}
	c := res.Manifest.Counts
	if c.Flagged != 1 || c.Verified != 1000 || !res.Blocked() || !strings.Contains(res.Manifest.BlockReasons[0], "1 of 1000") {
		t.Errorf("counts %+v, status %s %v: want 1 flagged of 1000 verified, blocked", c, res.Manifest.Status, res.Manifest.BlockReasons)
	}
	notify, err := os.ReadFile(filepath.Join(s.Dir, FileNotify))
	if err != nil {
		t.Fatal(err)
	}
	want := "user_id,email_id,email,domain,reason,was_primary,other_verified\nu1,1,a@gone.com,gone.com,domain_available,true,b@soon.net c@fine.com\n"
	if string(notify) != want {
		t.Errorf("notify.csv:\n%s\nwant\n%s", notify, want)
	}
	// Write leaves no table behind: a second Write on the same DB works.
	if _, err := Write(ctx, db, s); err != nil {
		t.Fatal(err)
	}
	s.Snapshot = ""
	if _, err := Write(ctx, db, s); err == nil || !strings.Contains(err.Error(), "snapshot") {
		t.Errorf("Write without a snapshot: %v", err)
	}
}

// TestWriteLeavesDB: Write runs its steps on connections of its own and
// leaves db with its one connection and settings; notify.csv matches a
// UUID user_id, and changeset.csv's times are UTC whatever the session's
// time zone.
func TestWriteLeavesDB(t *testing.T) {
	ctx := context.Background()
	db, err := duck.OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dir := t.TempDir()
	dec, snap := filepath.Join(dir, "decisions.parquet"), filepath.Join(dir, "emails.parquet")
	const u1 = "6a3c1b52-0f6e-4d7a-9a55-1f0c2b3d4e5f"
	if err := duck.CopyParquet(ctx, db, `SELECT * FROM (VALUES
		(1, '`+u1+`', 'a@gone.com', true, true, TIMESTAMPTZ '2026-01-02 03:04:05+00', 'infinity'::TIMESTAMPTZ, 'gone.com', 'com', 'available', 'domain_available', 'unverify', 'rdap:available'))
		t(email_id, user_id, email, verified, "primary", created, verified_at, domain, tld, state, reason, action, evidence)`, dec, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := duck.CopyParquet(ctx, db, `SELECT email_id, user_id::UUID AS user_id, email, verified, "primary" FROM (VALUES
		(1, '`+u1+`', 'a@gone.com', true, true), (2, '`+u1+`', 'b@fine.com', true, false))
		t(email_id, user_id, email, verified, "primary")`, snap, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "SET TimeZone = 'Asia/Tokyo'"); err != nil {
		t.Fatal(err)
	}
	var threads string
	if err := db.QueryRowContext(ctx, "SELECT current_setting('threads')").Scan(&threads); err != nil {
		t.Fatal(err)
	}
	s := Spec{Dir: filepath.Join(dir, "cs"), Date: "2026-06-10", Decisions: dec, Snapshot: snap, Verified: 1000, Policy: "corroborated"}
	if _, err := Write(ctx, db, s); err != nil {
		t.Fatal(err)
	}
	notify, err := os.ReadFile(filepath.Join(s.Dir, FileNotify))
	if err != nil {
		t.Fatal(err)
	}
	if want := "user_id,email_id,email,domain,reason,was_primary,other_verified\n" + u1 + ",1,a@gone.com,gone.com,domain_available,true,b@fine.com\n"; string(notify) != want {
		t.Errorf("notify.csv:\n%s\nwant\n%s", notify, want)
	}
	csv, err := os.ReadFile(filepath.Join(s.Dir, FileCSV))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(csv), ",2026-01-02T03:04:05Z,infinity\n") {
		t.Errorf("changeset.csv times:\n%s", csv)
	}
	var tz, th string
	if err := db.QueryRowContext(ctx, "SELECT current_setting('TimeZone'), current_setting('threads')").Scan(&tz, &th); err != nil {
		t.Fatal(err)
	}
	st := db.Stats()
	if tz != "Asia/Tokyo" || th != threads || st.OpenConnections != 1 || st.MaxOpenConnections != 1 {
		t.Errorf("after Write: time zone %s, threads %s (want %s), %d connections open, at most %d", tz, th, threads, st.OpenConnections, st.MaxOpenConnections)
	}
}
