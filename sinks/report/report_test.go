package report

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/sinks/lifecycledb"
)

func TestWriteSelfContainedReport(t *testing.T) {
	ctx := context.Background()
	db, err := lifecycledb.Open(filepath.Join(t.TempDir(), "lapse.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = db.SQL().ExecContext(ctx, `
		INSERT INTO email_decisions VALUES
			('2026-06-09', 1, 'u1', true, 'gone.com', 'com', 'available', 'unverify', 'domain_available', 'corroborated'),
			('2026-06-10', 2, 'u2', true, 'red.org', 'org', 'redemption', 'unverify', 'domain_redemption', 'corroborated'),
			('2026-06-10', 3, 'u3', true, 'red.org', 'org', 'redemption', 'unverify', 'domain_redemption', 'corroborated');
		INSERT INTO nightly_metrics VALUES
			('2026-06-09', 'addresses_scanned', '', '', 100), ('2026-06-10', 'addresses_scanned', '', '', 101),
			('2026-06-10', 'lookups', 'rdap', 'ok', 7);
		INSERT INTO changesets VALUES
			('2026-06-09', 'proposed', 'corroborated', 1, 100, NULL, 'x', 'y', now()),
			('2026-06-10', 'blocked', 'corroborated', 2, 101, 'would un-verify <2> addresses', 'x', 'y', now());`)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "reports", "2026-06-10", "index.html")
	if err := Write(ctx, db.SQL(), Spec{Date: "2026-06-10", Path: path, GeneratedAt: time.Date(2026, 6, 10, 4, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	html := string(b)
	for _, want := range []string{"night of 2026-06-10", "blocked", "would un-verify &lt;2&gt; addresses", "domain_redemption",
		".org", "red.org (domain_redemption)", "rdap ok", "<svg", "2026-06-09", "addresses_scanned"} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, bad := range []string{"http://", "https://", "<script", "<link", "<img"} {
		if strings.Contains(html, bad) {
			t.Errorf("report is not self-contained: has %q", bad)
		}
	}
	d, err := Load(ctx, db.SQL(), Spec{Date: "2026-06-10"})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Trend) != 2 || d.Trend[1].Flagged != 2 || d.Trend[1].Cumulative != 1 {
		// The blocked night's addresses do not count as un-verified.
		t.Errorf("trend %+v", d.Trend)
	}
}
