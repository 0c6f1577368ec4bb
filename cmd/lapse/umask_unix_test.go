//go:build unix

package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// What a library creates with its own default mode (0666, 0777) comes out
// 0640 / 0750, and an operator's stricter umask stays.
func TestRestrictUmask(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	restrictUmask()
	dir := t.TempDir()
	f, err := os.OpenFile(filepath.Join(dir, "f"), os.O_CREATE|os.O_WRONLY, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o777); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{"f": 0o640, "d": 0o750} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %04o", name, fi.Mode().Perm(), err, want)
		}
	}
	syscall.Umask(0o077)
	restrictUmask()
	if got := syscall.Umask(0o077); got != 0o077 {
		t.Errorf("umask %04o after a stricter 0077, want 0077", got)
	}
}
