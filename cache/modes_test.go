package cache

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/lapse-dev/lapse/lifecycle"
)

// The cache folder is at most 0750 and its files at most 0640, whatever
// mode Badger created them with (DISCARD, LOCK, value logs, tables), after
// Open and after Close; a folder an older lapse made 0755 is tightened,
// and a stricter file (KEYREGISTRY's 0600) stays as it is.
func TestFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // past the umask
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != DirMode {
			t.Errorf("%s: folder mode %04o, want %04o", when, m, DirMode)
		}
		ents, err := os.ReadDir(dir)
		if err != nil || len(ents) == 0 {
			t.Fatalf("%s: %d files: %v", when, len(ents), err)
		}
		for _, e := range ents {
			fi, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			if m := fi.Mode().Perm(); m&^FileMode != 0 {
				t.Errorf("%s: %s mode %04o, want at most %04o", when, e.Name(), m, FileMode)
			}
			if e.Name() == "KEYREGISTRY" && fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: KEYREGISTRY mode %04o, want its own 0600", when, fi.Mode().Perm())
			}
		}
	}
	clk := &clock{t: ts("2026-03-10T02:00:00Z")}
	c, err := Open(dir, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	check("after Open")
	ctx := context.Background()
	for i := range 2000 {
		if _, err := c.Record(ctx, answer(fmt.Sprintf("d%d.example", i), lifecycle.Registered, clk.Now())); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	check("after Close") // the tables written since Open included
}
