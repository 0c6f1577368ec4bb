package lifecycledb

import (
	"os"
	"path/filepath"
	"testing"
)

// lapse.duckdb and its write-ahead log (right after the migration) are
// 0640 after Open, a database an older lapse left 0644 included.
func TestOpenFileModes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lapse.duckdb")
	check := func(when string) {
		t.Helper()
		for _, p := range []string{path, path + ".wal"} {
			fi, err := os.Stat(p)
			if os.IsNotExist(err) && p != path {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if m := fi.Mode().Perm(); m != FileMode {
				t.Errorf("%s: %s mode %04o, want %04o", when, filepath.Base(p), m, FileMode)
			}
		}
	}
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	check("new database")
	if _, err := os.Stat(path + ".wal"); err != nil {
		t.Errorf("no write-ahead log after the migration (%v): the test checks its mode", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	check("reopened 0644 database")
}
