// Package flock is the run lock: an exclusive flock(2) on one file
// (DATA_DIR/lapse.lock), so one lapse process writes a data dir at a time.
// Badger and DuckDB lock their own files too; this lock comes first so the
// second run gets one clear message naming the pid that holds it.
package flock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrRunning is returned when another lapse process holds the lock.
var ErrRunning = errors.New("another lapse run is using this data dir")

// Lock is a held lock.
type Lock struct{ f *os.File }

// Acquire takes the lock on the file at path (created 0640, and its
// folder 0750, when missing) without waiting, or returns ErrRunning naming
// the pid holding it. The pid written into the file is informative only:
// the flock is the lock, and it goes with the process.
func Acquire(path string) (*Lock, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("create data dir %s: %w", dir, err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid := strings.TrimSpace(string(holder))
			if pid == "" {
				pid = "?"
			}
			return nil, fmt.Errorf("%w: %s is held by pid %s; wait for it to finish or stop it", ErrRunning, path, pid)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// Release drops the lock; safe twice and on nil.
func (l *Lock) Release() {
	if l == nil || l.f == nil {
		return
	}
	syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
	l.f = nil
}
