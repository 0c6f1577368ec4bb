package notebooks

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lapse-dev/lapse/sinks/lifecycledb"
)

// seed fills a lifecycle DB with three nights of rows.
const seed = `
INSERT INTO domain_observations (date, domain, tld, state, source, checked_at, corroborated) VALUES
	('2026-06-08', 'gone.com', 'com', 'redemption', 'rdap', '2026-06-08 03:00:00+00', true),
	('2026-06-09', 'gone.com', 'com', 'pending_delete', 'rdap', '2026-06-09 03:00:00+00', true),
	('2026-06-10', 'gone.com', 'com', 'available', 'rdap', '2026-06-10 03:00:00+00', true),
	('2026-06-10', 'fine.org', 'org', 'registered', 'rdap', '2026-06-10 03:00:00+00', true);
INSERT INTO email_decisions VALUES
	('2026-06-08', 1, 'u1', true, 'gone.com', 'com', 'redemption', 'unverify', 'domain_redemption', 'corroborated'),
	('2026-06-09', 1, 'u1', true, 'gone.com', 'com', 'pending_delete', 'unverify', 'domain_pending_delete', 'corroborated'),
	('2026-06-09', 2, 'u2', true, 'gone.com', 'com', 'pending_delete', 'unverify', 'domain_pending_delete', 'corroborated'),
	('2026-06-10', 3, 'u3', true, 'soon.org', 'org', 'expiring', 'watch', 'domain_expiring', 'corroborated');
INSERT INTO nightly_metrics VALUES
	('2026-06-08', 'lookups', 'rdap', 'ok', 40), ('2026-06-09', 'lookups', 'rdap', 'ok', 12),
	('2026-06-09', 'lookups', 'rdap', 'error', 2), ('2026-06-10', 'lookups', 'domainr', 'ok', 30);
INSERT INTO changesets VALUES
	('2026-06-08', 'proposed', 'corroborated', 1, 100, NULL, 'x', 'y', now()),
	('2026-06-09', 'proposed', 'corroborated', 2, 100, NULL, 'x', 'y', now());
`

func TestNotebooksRunAgainstTheLifecycleDB(t *testing.T) {
	ctx := context.Background()
	db, err := lifecycledb.Open(filepath.Join(t.TempDir(), "lapse.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.SQL().ExecContext(ctx, seed); err != nil {
		t.Fatal(err)
	}
	nbs, err := All()
	if err != nil {
		t.Fatal(err)
	}
	if len(nbs) < 5 {
		t.Fatalf("%d notebooks, want at least 5", len(nbs))
	}
	for _, nb := range nbs {
		stmts := nb.Statements()
		if len(stmts) == 0 {
			t.Errorf("notebook %s has no statements", nb.Name)
		}
		for i, s := range stmts {
			rows, err := db.SQL().QueryContext(ctx, s)
			if err != nil {
				t.Errorf("notebook %s statement %d: %v\n%s", nb.Name, i+1, err, s)
				continue
			}
			n := 0
			for rows.Next() {
				n++
			}
			if err := rows.Err(); err != nil {
				t.Errorf("notebook %s statement %d: %v", nb.Name, i+1, err)
			}
			rows.Close()
			if n == 0 {
				t.Errorf("notebook %s statement %d returned no rows over seeded data", nb.Name, i+1)
			}
		}
	}
}

func TestFindAndRun(t *testing.T) {
	ctx := context.Background()
	db, err := lifecycledb.Open(filepath.Join(t.TempDir(), "lapse.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.SQL().ExecContext(ctx, seed); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"02", "cumulative_unverified", "02_cumulative_unverified.sql"} {
		nb, err := Find(name)
		if err != nil || nb.Name != "02_cumulative_unverified" {
			t.Fatalf("find %q: %+v %v", name, nb, err)
		}
	}
	if _, err := Find("nope"); err == nil || !strings.Contains(err.Error(), "01_daily_flags") {
		t.Errorf("find nope: %v (should list the notebooks)", err)
	}
	nb, _ := Find("02")
	var b strings.Builder
	if err := Run(ctx, db.SQL(), nb, &b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"# Cumulative un-verified", "date", "cumulative", "2026-06-08", "2026-06-09"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
