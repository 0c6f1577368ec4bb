package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lapse-dev/lapse/sinks/lifecycledb"
)

func TestReportCommand(t *testing.T) {
	dir := queryDataDir(t)
	out := filepath.Join(t.TempDir(), "r")
	code, stdout, errs := gRunCLI("--data-dir", dir, "report", "--out", out)
	if code != 0 || strings.TrimSpace(stdout) != filepath.Join(out, "index.html") {
		t.Fatalf("report: %d %q %q", code, stdout, errs)
	}
	for _, f := range []string{"index.html", "01_overview.html", "06_resurrections.html"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	// The default folder, and one notebook only.
	code, stdout, errs = gRunCLI("--data-dir", dir, "report", "--notebook", "02", "--date", "2026-06-10")
	if want := filepath.Join(dir, "reports", "latest", "index.html"); code != 0 || strings.TrimSpace(stdout) != want {
		t.Fatalf("--notebook 02: %d %q %q", code, stdout, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "reports", "latest", "01_overview.html")); err == nil {
		t.Error("--notebook 02 rendered 01 too")
	}
	b, _ := os.ReadFile(filepath.Join(dir, "reports", "latest", "index.html"))
	if !strings.Contains(string(b), "The night of 2026-06-10") || !strings.Contains(string(b), "No changeset at "+filepath.Join(dir, "changesets", "2026-06-10")) {
		t.Errorf("index of --date 2026-06-10 does not say so")
	}
	for _, args := range [][]string{{"--notebook", "nope"}, {"--date", "June"}} {
		if code, _, errs := gRunCLI(append([]string{"--data-dir", dir, "report", "--out", out}, args...)...); code != 2 {
			t.Errorf("%v: %d %q", args, code, errs)
		}
	}
	if code, _, errs := gRunCLI("--data-dir", t.TempDir(), "report"); code != 2 || !strings.Contains(errs, "no lifecycle database") {
		t.Errorf("no database: %d %q", code, errs)
	}

	// A cell that fails (its view is gone): the pages are written, the
	// page says why, and lapse report exits 1 naming the cell.
	db, err := lifecycledb.Open(filepath.Join(dir, "lapse.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().Exec(`DROP VIEW applied_by_night`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	code, _, errs = gRunCLI("--data-dir", dir, "report", "--out", out)
	if code != 1 || !strings.Contains(errs, "06_resurrections #4") || !strings.Contains(errs, "applied_by_night") {
		t.Errorf("failing cell: exit %d, %q", code, errs)
	}
	b, _ = os.ReadFile(filepath.Join(out, "06_resurrections.html"))
	if !strings.Contains(string(b), "This cell failed") || !strings.Contains(string(b), `class="bar"`) && !strings.Contains(string(b), "No rows yet") {
		t.Errorf("the page does not show the failure beside the other cells")
	}
}
