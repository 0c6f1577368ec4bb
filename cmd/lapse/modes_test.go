package main

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// After a night, nothing in the data dir is readable by others or
// writable by the group, whatever created it (lapse, DuckDB's log, Badger's
// tables); folders are at most 0750; the files holding addresses are 0600.
func TestRunFileModes(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	s := newSimSetup(t, data, "")
	env := s.export("2026-01-01")
	if code, out, errs := runLapse(t, "", env, "--config", s.config, "run", "--date", "2026-01-01"); code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	addresses := map[string]bool{"emails.parquet": true, "decisions.parquet": true, "first_seen.parquet": true,
		"changeset.parquet": true, "changeset.csv": true, "notify.csv": true}
	seen := map[string]bool{}
	err := filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(data, p)
		m := fi.Mode().Perm()
		switch {
		case d.IsDir():
			if m&^0o750 != 0 {
				t.Errorf("folder %s mode %04o, want at most 0750", rel, m)
			}
		case addresses[d.Name()] || strings.HasPrefix(rel, "snapshots"+string(filepath.Separator)):
			if m != 0o600 {
				t.Errorf("%s mode %04o, want 0600 (addresses)", rel, m)
			}
		case m&^0o640 != 0:
			t.Errorf("%s mode %04o, want at most 0640", rel, m)
		}
		seen[d.Name()] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"lapse.duckdb", "metrics.prom", "dns.json", "DISCARD", "emails.parquet", "changeset.csv"} {
		if !seen[f] {
			t.Errorf("no %s in the data dir: the test checks its mode", f)
		}
	}
}
