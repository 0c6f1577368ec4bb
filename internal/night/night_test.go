package night

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	d, err := Parse("2026-03-01")
	if err != nil || d.Format("2006-01-02 15:04 MST") != "2026-03-01 00:00 UTC" {
		t.Errorf("Parse: %v %v", d, err)
	}
	for _, bad := range []string{"", "2026-3-1", "2026-02-30", "20260301", "2026-03-01T00:00:00Z"} {
		if _, err := Parse(bad); err == nil || Valid(bad) {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	if _, err := Parse("x"); err == nil || err.Error() != `date "x": want YYYY-MM-DD` {
		t.Errorf("error: %v", err)
	}
}

func TestFolders(t *testing.T) {
	root := t.TempDir()
	for _, n := range []string{"date=2026-03-02", "date=2026-03-01", "date=nope", "2026-03-03", "date=2026-13-01"} {
		if err := os.Mkdir(filepath.Join(root, n), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "date=2026-03-04"), nil, 0o640) // a file, not a night
	got, err := Folders(root, Hive)
	if err != nil || !slices.Equal(got, []string{"2026-03-01", "2026-03-02"}) {
		t.Errorf("Folders(Hive): %v %v", got, err)
	}
	if got, _ := Folders(root, ""); !slices.Equal(got, []string{"2026-03-03"}) {
		t.Errorf("Folders(\"\"): %v", got)
	}
	if got, err := Folders(filepath.Join(root, "missing"), Hive); err != nil || got != nil {
		t.Errorf("missing root: %v %v", got, err)
	}
	if FolderDate("date=2026-03-01", Hive) != "2026-03-01" || FolderDate("2026-03-01", Hive) != "" {
		t.Error("FolderDate")
	}
}

// TestPaths holds the layout to README.md's "Files on disk".
func TestPaths(t *testing.T) {
	d := Dir("/data")
	p := d.Night("2026-03-01")
	for got, want := range map[string]string{
		d.DB():               "/data/lapse.duckdb",
		d.Lock():             "/data/lapse.lock",
		d.Metrics():          "/data/metrics.prom",
		d.Cache():            "/data/cache",
		d.StatesCopy():       "/data/states/states.parquet",
		p.Snapshot():         "/data/snapshots/date=2026-03-01/emails.parquet",
		p.SnapshotManifest(): "/data/snapshots/date=2026-03-01/manifest.json",
		p.SnapshotGlob():     "/data/snapshots/date=*/emails.parquet",
		p.Plan():             "/data/observations/date=2026-03-01/plan.json",
		p.Journal():          "/data/observations/date=2026-03-01/lookups.jsonl",
		p.Domains():          "/data/observations/date=2026-03-01/domains.parquet",
		p.States():           "/data/observations/date=2026-03-01/states.parquet",
		p.Reverified():       "/data/observations/date=2026-03-01/reverified.parquet",
		p.Decisions():        "/data/decisions/date=2026-03-01/decisions.parquet",
		p.FirstSeen():        "/data/decisions/date=2026-03-01/first_seen.parquet",
		p.Counts():           "/data/decisions/date=2026-03-01/counts.json",
		p.Changeset():        "/data/changesets/2026-03-01",
		p.Report():           "/data/reports/2026-03-01/index.html",
		p.Manifest():         "/data/runs/date=2026-03-01/manifest.json",
	} {
		if got != want {
			t.Errorf("%s, want %s", got, want)
		}
	}
}
