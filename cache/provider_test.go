package cache

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lapse-dev/lapse/lifecycle"
)

// counting answers each lookup with answer(state) at the clock's time, or
// with err, and counts the calls.
type counting struct {
	clk   *clock
	state lifecycle.State
	err   error
	calls atomic.Int32
}

func (p *counting) Name() lifecycle.Source { return lifecycle.SourceRDAP }

func (p *counting) Lookup(ctx context.Context, domain string) (lifecycle.Lifecycle, error) {
	p.calls.Add(1)
	if p.err != nil {
		return lifecycle.Lifecycle{}, p.err
	}
	return answer(domain, p.state, p.clk.Now()), nil
}

func TestProviderAsksTheCacheFirst(t *testing.T) {
	clk := &clock{t: ts("2026-03-10T02:00:00Z")}
	c := openTest(t, t.TempDir(), clk)
	ctx := context.Background()
	var logs bytes.Buffer
	next := &counting{clk: clk, state: lifecycle.Registered}
	p := c.Provider(next, slog.New(slog.NewTextHandler(&logs, nil)))
	if p.Name() != lifecycle.SourceRDAP {
		t.Errorf("Name %q, want the wrapped provider's", p.Name())
	}

	// No entry: asked, and the answer recorded.
	lc, err := p.Lookup(ctx, "example.com")
	if err != nil || lc.State != lifecycle.Registered || next.calls.Load() != 1 {
		t.Fatalf("first lookup: %s %v after %d calls", lc.State, err, next.calls.Load())
	}
	e, found, err := c.Get(ctx, "example.com")
	if err != nil || !found || e.Lifecycle.State != lifecycle.Registered {
		t.Fatalf("not recorded: %+v %v %v", e, found, err)
	}

	// Fresh: the entry answers, the provider is not asked, the log says so.
	clk.Set(clk.Now().Add(Day))
	next.state = lifecycle.Available
	if lc, err := p.Lookup(ctx, "example.com"); err != nil || lc.State != lifecycle.Registered || next.calls.Load() != 1 {
		t.Errorf("fresh entry: %s %v after %d calls, want registered from the cache", lc.State, err, next.calls.Load())
	}
	if !strings.Contains(logs.String(), `msg="answered from the cache" domain=example.com next_check=`) {
		t.Errorf("log %q", logs.String())
	}

	// Due: asked again, and the new answer recorded.
	clk.Set(e.NextCheck)
	if lc, err := p.Lookup(ctx, "example.com"); err != nil || lc.State != lifecycle.Available || next.calls.Load() != 2 {
		t.Errorf("due entry: %s %v after %d calls, want available from the provider", lc.State, err, next.calls.Load())
	}
	if e, _, _ := c.Get(ctx, "example.com"); e.Lifecycle.State != lifecycle.Available {
		t.Errorf("new answer not recorded: %s", e.Lifecycle.State)
	}
}

func TestProviderNeverCachesErrors(t *testing.T) {
	clk := &clock{t: ts("2026-03-10T02:00:00Z")}
	c := openTest(t, t.TempDir(), clk)
	ctx := context.Background()
	boom := errors.New("rdap a.com: context canceled")
	next := &counting{clk: clk, err: boom}
	p := c.Provider(next, nil)
	if _, err := p.Lookup(ctx, "a.com"); err != boom {
		t.Errorf("error %v, want the provider's error as it is", err)
	}
	if _, found, err := c.Get(ctx, "a.com"); found || err != nil {
		t.Errorf("an error was cached: found %v, %v", found, err)
	}
	// The next lookup asks again.
	next.err = nil
	next.state = lifecycle.Registered
	if lc, err := p.Lookup(ctx, "a.com"); err != nil || lc.State != lifecycle.Registered || next.calls.Load() != 2 {
		t.Errorf("after the error: %s %v after %d calls", lc.State, err, next.calls.Load())
	}

	// A cache that fails is an error naming the domain and the cache.
	c.Close()
	if _, err := p.Lookup(ctx, "b.com"); !errors.Is(err, ErrClosed) || !strings.HasPrefix(err.Error(), "b.com: cache: ") || next.calls.Load() != 2 {
		t.Errorf("closed cache: %v after %d calls", err, next.calls.Load())
	}
}
