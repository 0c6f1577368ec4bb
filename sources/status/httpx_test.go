package status

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":       0,
		"5":      5 * time.Second,
		" 120 ":  2 * time.Minute,
		"-3":     0,
		"soon":   0,
		"1.5e10": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
	} {
		if got := ParseRetryAfter(v, now); got != want {
			t.Errorf("ParseRetryAfter(%q) = %s, want %s", v, got, want)
		}
	}
}

func TestReadCapped(t *testing.T) {
	if b, err := ReadCapped(strings.NewReader("12345"), 5); err != nil || string(b) != "12345" {
		t.Errorf("at the cap: %q, %v", b, err)
	}
	if b, err := ReadCapped(strings.NewReader("123456"), 5); !errors.Is(err, ErrBodyTooLarge) || b != nil {
		t.Errorf("over the cap: %q, %v, want ErrBodyTooLarge and no bytes", b, err)
	}
	// A read error comes back as it is, for the caller to name what it read.
	if _, err := ReadCapped(iotest.ErrReader(io.ErrUnexpectedEOF), 5); err != io.ErrUnexpectedEOF {
		t.Errorf("read error: %v, want io.ErrUnexpectedEOF itself", err)
	}
	if b, err := ReadCapped(strings.NewReader(strings.Repeat("a", DefaultMaxBody)), 0); err != nil || len(b) != DefaultMaxBody {
		t.Errorf("max 0 takes DefaultMaxBody: %d bytes, %v", len(b), err)
	}
}
