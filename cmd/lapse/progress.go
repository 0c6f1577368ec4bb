package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/lapse-dev/lapse/pipeline"
)

// newProgress reports lapse run's resolve stage: a bar redrawn in place
// when w is a terminal, else a log line every 30 s.
func newProgress(w io.Writer, log *slog.Logger) pipeline.Progress {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return &barProgress{counter: counter{now: time.Now}, w: w}
	}
	return &logProgress{counter: counter{now: time.Now}, log: log, every: 30 * time.Second}
}

// counter is the part of progress reporting both printers share.
type counter struct {
	mu           sync.Mutex
	total, done  int
	start, shown time.Time
	now          func() time.Time
}

func (c *counter) line() string {
	el := c.now().Sub(c.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(c.done) / el
	}
	eta := "?"
	if rate > 0 {
		eta = (time.Duration(float64(c.total-c.done)/rate) * time.Second).Round(time.Second).String()
	}
	return fmt.Sprintf("resolve %d/%d domains  %.1f/s  ETA %s", c.done, c.total, rate, eta)
}

type barProgress struct {
	counter
	w io.Writer
}

func (b *barProgress) Start(total int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.total, b.done, b.start = total, 0, b.now()
}

func (b *barProgress) Add(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += n
	if t := b.now(); t.Sub(b.shown) >= 200*time.Millisecond || b.done == b.total {
		b.shown = t
		fmt.Fprintf(b.w, "\r\033[K%s", b.line())
	}
}

func (b *barProgress) Done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	fmt.Fprintf(b.w, "\r\033[K%s\n", b.line())
}

type logProgress struct {
	counter
	log   *slog.Logger
	every time.Duration
}

func (l *logProgress) Start(total int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total, l.done, l.start, l.shown = total, 0, l.now(), l.now()
}

func (l *logProgress) Add(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done += n
	if t := l.now(); t.Sub(l.shown) >= l.every {
		l.shown = t
		l.log.Info(l.line())
	}
}

func (l *logProgress) Done() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.log.Info(l.line())
}
