package main

import (
	"strings"
	"testing"
	"time"
)

func TestProgressLines(t *testing.T) {
	var b strings.Builder
	now := time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)
	p := &barProgress{counter: counter{now: func() time.Time { return now }}, w: &b}
	p.Start(100)
	now = now.Add(10 * time.Second)
	p.Add(50)
	p.Done()
	if !strings.Contains(b.String(), "resolve 50/100 domains  5.0/s  ETA 10s") {
		t.Errorf("bar: %q", b.String())
	}
}
