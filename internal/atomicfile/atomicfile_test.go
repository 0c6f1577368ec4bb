package atomicfile

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// A file written in pieces past several writeback starts is whole at its
// path after Commit, each piece's writeback started once, in order.
func TestWriteStartsWriteback(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "f.bin")
	f, err := Create(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	var want bytes.Buffer
	piece := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	for i := range 9 {
		piece[0] = byte(i)
		if _, err := f.Write(piece); err != nil {
			t.Fatal(err)
		}
		want.Write(piece)
	}
	if f.written != 9<<20 || f.flushed != 2*writebackEvery {
		t.Errorf("written %d, writeback started for %d; want %d and %d", f.written, f.flushed, 9<<20, 2*writebackEvery)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("final path visible before Commit: %v", err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("committed file differs: %d bytes, want %d", len(got), want.Len())
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("folder holds %d entries after Commit, want the file alone", len(entries))
	}
}

// Abort leaves nothing behind, and the previous file as it was.
func TestAbortKeepsPrevious(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := WriteFile(path, []byte("old"), 0o640); err != nil {
		t.Fatal(err)
	}
	f, err := Create(path, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(bytes.Repeat([]byte("x"), writebackEvery+1))
	f.Abort()
	if b, err := os.ReadFile(path); err != nil || string(b) != "old" {
		t.Errorf("after Abort: %q, %v; want the old content", b, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("%d entries after Abort, want 1", len(entries))
	}
}
