package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lapse-dev/lapse/sinks/lifecycledb"
)

func gRunCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errb, nil)
	return code, out.String(), errb.String()
}

func TestNotebookCommand(t *testing.T) {
	code, out, _ := gRunCLI("notebook", "list")
	if code != 0 || !strings.Contains(out, "05_detection_lead_time") {
		t.Fatalf("list: %d %q", code, out)
	}
	code, out, _ = gRunCLI("notebook", "show", "01")
	if code != 0 || !strings.Contains(out, "FROM daily_flags") {
		t.Fatalf("show: %d %q", code, out)
	}
	if code, _, errs := gRunCLI("notebook", "run", "nope"); code != 2 || !strings.Contains(errs, "no notebook") {
		t.Errorf("unknown notebook: %d %q", code, errs)
	}
	dir := t.TempDir()
	if code, _, errs := gRunCLI("--data-dir", dir, "notebook", "run", "02"); code != 2 || !strings.Contains(errs, "lapse run") {
		t.Errorf("no database: %d %q", code, errs)
	}
	db, err := lifecycledb.Open(filepath.Join(dir, "lapse.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().Exec(`INSERT INTO email_decisions VALUES ('2026-06-09', 1, 'u1', true, 'gone.com', 'com', 'available', 'unverify', 'domain_available', 'corroborated');
		INSERT INTO nightly_metrics VALUES ('2026-06-09', 'flagged', '', '', 1)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	code, out, errs := gRunCLI("--data-dir", dir, "notebook", "run", "overview")
	if code != 0 || !strings.Contains(out, "# Cumulative un-verified") || !strings.Contains(out, "# 1 addresses un-verified since 2026-06-09") || !strings.Contains(out, "2026-06-09") {
		t.Errorf("run: %d %q %q", code, out, errs)
	}
}
