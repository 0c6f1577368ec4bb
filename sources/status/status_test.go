package status

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/lifecycle"
)

// scripted is a provider answering from a script of results, one per call
// (the last repeats). It stands in for a provider, not for a network.
type scripted struct {
	name  lifecycle.Source
	mu    sync.Mutex
	steps []step
	calls int
}

type step struct {
	state lifecycle.State
	err   error
	block bool // wait for ctx to end
}

func (s *scripted) Name() lifecycle.Source { return s.name }

func (s *scripted) Lookup(ctx context.Context, domain string) (lifecycle.Lifecycle, error) {
	s.mu.Lock()
	st := s.steps[min(s.calls, len(s.steps)-1)]
	s.calls++
	s.mu.Unlock()
	if st.block {
		<-ctx.Done()
		return lifecycle.Lifecycle{}, fmt.Errorf("%s %s: %w", s.name, domain, ctx.Err())
	}
	if st.err != nil {
		return lifecycle.Lifecycle{}, fmt.Errorf("%s %s: %w", s.name, domain, st.err)
	}
	return lifecycle.Lifecycle{Domain: domain, State: st.state, Source: s.name, Statuses: []string{string(st.state)}}, nil
}

func (s *scripted) Calls() int { s.mu.Lock(); defer s.mu.Unlock(); return s.calls }

// sleeps records the waits a retry asked for, without waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

var errReset = errors.New("connection reset by peer")

func TestRetryHonoursRetryAfter(t *testing.T) {
	p := &scripted{name: "x", steps: []step{
		{err: &ThrottledError{RetryAfter: 7 * time.Second, Err: errors.New("HTTP 429")}},
		{state: lifecycle.Registered},
	}}
	var sl sleeps
	r := Retry(p, RetryOptions{Retries: 3, Base: time.Second, Sleep: sl.Sleep, Rand: func() float64 { return 0.5 }})
	lc, err := r.Lookup(context.Background(), "a.com")
	if err != nil || lc.State != lifecycle.Registered {
		t.Fatalf("got %v, %v", lc.State, err)
	}
	if len(sl.d) != 1 || sl.d[0] != 7*time.Second {
		t.Errorf("waits %v, want [7s]", sl.d)
	}
}

func TestRetryAfterOverCapGivesUp(t *testing.T) {
	p := &scripted{name: "x", steps: []step{{err: &ThrottledError{RetryAfter: time.Hour, Err: errors.New("HTTP 429")}}}}
	var sl sleeps
	r := Retry(p, RetryOptions{Retries: 3, MaxWait: time.Minute, Sleep: sl.Sleep})
	_, err := r.Lookup(context.Background(), "a.com")
	var te *ThrottledError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("err %v, want a throttled error that gave up", err)
	}
	if p.Calls() != 1 || len(sl.d) != 0 {
		t.Errorf("calls %d, waits %v: should give up at once", p.Calls(), sl.d)
	}
}

func TestRetryBackoffFullJitter(t *testing.T) {
	p := &scripted{name: "x", steps: []step{{err: errReset}}}
	var sl sleeps
	r := Retry(p, RetryOptions{Retries: 5, Base: 100 * time.Millisecond, Max: 1 * time.Second, Sleep: sl.Sleep, Rand: func() float64 { return 0.99 }})
	_, err := r.Lookup(context.Background(), "a.com")
	if !errors.Is(err, errReset) || !strings.Contains(err.Error(), "gave up after 6 attempts") {
		t.Fatalf("err %v", err)
	}
	want := []time.Duration{99, 198, 396, 792, 990} // 0.99 × min(1s, 100ms·2ⁿ), in ms
	if len(sl.d) != len(want) {
		t.Fatalf("waits %v", sl.d)
	}
	for i, w := range want {
		if sl.d[i] != w*time.Millisecond {
			t.Errorf("wait %d = %v, want %v", i, sl.d[i], w*time.Millisecond)
		}
	}
	if p.Calls() != 6 {
		t.Errorf("calls %d, want 6", p.Calls())
	}
}

func TestRetrySkipsNonRetryable(t *testing.T) {
	for _, e := range []error{ErrUnauthorized, ErrNoServer, &PermanentError{Err: errors.New("HTTP 400")}, &BreakerOpenError{Source: "x"}} {
		p := &scripted{name: "x", steps: []step{{err: e}}}
		var sl sleeps
		_, err := Retry(p, RetryOptions{Retries: 3, Sleep: sl.Sleep}).Lookup(context.Background(), "a.com")
		if err == nil || p.Calls() != 1 || len(sl.d) != 0 {
			t.Errorf("%v: calls %d, waits %v, err %v", e, p.Calls(), sl.d, err)
		}
	}
}

func TestRetryCancelEndsAtOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p := &scripted{name: "x", steps: []step{{err: errReset}}}
	r := Retry(p, RetryOptions{Retries: 100, Sleep: func(ctx context.Context, d time.Duration) error {
		cancel()
		return SleepContext(ctx, time.Hour)
	}})
	_, err := r.Lookup(ctx, "a.com")
	if !errors.Is(err, context.Canceled) || p.Calls() != 1 {
		t.Fatalf("err %v after %d calls", err, p.Calls())
	}
}

func TestRetryAttemptTimeout(t *testing.T) {
	p := &scripted{name: "x", steps: []step{{block: true}, {state: lifecycle.Registered}}}
	var sl sleeps
	r := Retry(p, RetryOptions{Retries: 1, AttemptTimeout: 20 * time.Millisecond, Sleep: sl.Sleep})
	lc, err := r.Lookup(context.Background(), "a.com")
	if err != nil || lc.State != lifecycle.Registered || p.Calls() != 2 {
		t.Fatalf("got %v %v after %d calls; want the timed-out attempt retried", lc.State, err, p.Calls())
	}
	p2 := &scripted{name: "x", steps: []step{{block: true}}}
	_, err = Retry(p2, RetryOptions{Retries: 2, AttemptTimeout: 10 * time.Millisecond, Sleep: sl.Sleep}).Lookup(context.Background(), "a.com")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "attempt timed out") || p2.Calls() != 3 {
		t.Fatalf("err %v after %d calls", err, p2.Calls())
	}
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestBreaker(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p := &scripted{name: "rdap", steps: []step{{err: errReset}, {err: errReset}, {err: errReset}, {err: errReset}, {err: errReset}, {state: lifecycle.Registered}}}
	b := NewBreaker(p, BreakerOptions{Threshold: 3, Cooldown: time.Minute, Key: TLD, Now: clk.Now})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := b.Lookup(ctx, "a.com"); !errors.Is(err, errReset) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	var boe *BreakerOpenError
	if _, err := b.Lookup(ctx, "b.com"); !errors.As(err, &boe) || boe.Key != "com" {
		t.Fatalf("open breaker: %v", err)
	}
	if p.Calls() != 3 {
		t.Fatalf("open breaker reached the provider: %d calls", p.Calls())
	}
	// Another key is not affected.
	if _, err := b.Lookup(ctx, "a.net"); !errors.Is(err, errReset) {
		t.Fatalf("other key: %v", err)
	}
	clk.Advance(61 * time.Second)
	// Half-open: one probe; it fails (5th reset) → open again.
	if _, err := b.Lookup(ctx, "c.com"); !errors.Is(err, errReset) {
		t.Fatalf("probe: %v", err)
	}
	if _, err := b.Lookup(ctx, "c.com"); !errors.As(err, &boe) {
		t.Fatalf("after failed probe: %v", err)
	}
	clk.Advance(61 * time.Second)
	if lc, err := b.Lookup(ctx, "c.com"); err != nil || lc.State != lifecycle.Registered {
		t.Fatalf("probe 2: %v %v", lc.State, err)
	}
	if _, err := b.Lookup(ctx, "d.com"); err != nil {
		t.Fatalf("closed breaker: %v", err)
	}
}

func TestBreakerIgnoresPermanent(t *testing.T) {
	p := &scripted{name: "x", steps: []step{{err: &PermanentError{Err: errors.New("HTTP 400")}}}}
	b := NewBreaker(p, BreakerOptions{Threshold: 2})
	for i := 0; i < 5; i++ {
		var boe *BreakerOpenError
		if _, err := b.Lookup(context.Background(), "a.com"); errors.As(err, &boe) {
			t.Fatalf("permanent errors opened the breaker")
		}
	}
}

func TestStopOnUnauthorized(t *testing.T) {
	p := &scripted{name: "domainr", steps: []step{{err: fmt.Errorf("%w (HTTP 401)", ErrUnauthorized)}}}
	s := StopOnUnauthorized(p, "check LAPSE_DOMAINR_CLIENT_ID")
	_, err := s.Lookup(context.Background(), "a.com")
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("first: %v", err)
	}
	_, err = s.Lookup(context.Background(), "b.com")
	want := "domainr: unauthorized (401): check LAPSE_DOMAINR_CLIENT_ID; provider stopped for this run"
	if err == nil || err.Error() != want || !errors.Is(err, ErrStopped) || !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("second: %v, want %q", err, want)
	}
	if p.Calls() != 1 {
		t.Errorf("provider called %d times after the 401", p.Calls())
	}
}

func TestConcurrencyBound(t *testing.T) {
	var inFlight, peak atomic.Int32
	release := make(chan struct{})
	p := providerFunc(func(ctx context.Context, d string) (lifecycle.Lifecycle, error) {
		n := inFlight.Add(1)
		for {
			m := peak.Load()
			if n <= m || peak.CompareAndSwap(m, n) {
				break
			}
		}
		<-release
		inFlight.Add(-1)
		return lifecycle.Lifecycle{Domain: d, State: lifecycle.Registered}, nil
	})
	b := Concurrency(p, 2)
	var wg sync.WaitGroup
	started := make(chan struct{}, 6)
	for i := 0; i < 6; i++ {
		wg.Go(func() {
			started <- struct{}{}
			b.Lookup(context.Background(), "a.com")
		})
	}
	for i := 0; i < 6; i++ {
		<-started
	}
	close(release)
	wg.Wait()
	if peak.Load() > 2 {
		t.Errorf("peak in flight %d > 2", peak.Load())
	}
	// A waiting caller whose context ends leaves at once.
	block, entered := make(chan struct{}), make(chan struct{})
	bp := Concurrency(providerFunc(func(ctx context.Context, d string) (lifecycle.Lifecycle, error) {
		close(entered)
		<-block
		return lifecycle.Lifecycle{}, nil
	}), 1)
	go bp.Lookup(context.Background(), "a.com")
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := bp.Lookup(ctx, "b.com"); !errors.Is(err, context.Canceled) {
		t.Errorf("waiting for a slot: %v, want canceled", err)
	}
	close(block)
}

type providerFunc func(ctx context.Context, domain string) (lifecycle.Lifecycle, error)

func (f providerFunc) Name() lifecycle.Source { return "func" }
func (f providerFunc) Lookup(ctx context.Context, d string) (lifecycle.Lifecycle, error) {
	return f(ctx, d)
}

func TestBudget(t *testing.T) {
	p := &scripted{name: "x", steps: []step{{state: lifecycle.Registered}}}
	b := Budget(p, 2)
	for i := 0; i < 2; i++ {
		if _, err := b.Lookup(context.Background(), "a.com"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Lookup(context.Background(), "a.com"); !errors.Is(err, ErrBudgetExhausted) || Retryable(err) {
		t.Fatalf("3rd: %v", err)
	}
}

func TestRateTransportPerHost(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	// Two names for the same loopback server are two hosts to the limiter.
	u, _ := url.Parse(srv.URL)
	hostA := srv.URL
	hostB := "http://localhost:" + u.Port()
	rt := &RateTransport{Limits: &HostLimits{Rate: 0.01, Burst: 1}}
	c := &http.Client{Transport: rt}
	get := func(base string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/x", nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(hostA); err != nil {
		t.Fatalf("A first: %v", err)
	}
	if err := get(hostB); err != nil {
		t.Fatalf("B first (own bucket): %v", err)
	}
	// A's bucket is empty for 100 s: the wait cannot fit the deadline and
	// fails at once, as a deadline error.
	if err := get(hostA); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("A second: %v, want a deadline error", err)
	}
}

func TestRateLimitGrantsAtMostRate(t *testing.T) {
	// Real time, but the assertion is an upper bound the token bucket
	// guarantees, so a slow machine cannot break it.
	const r = 50.0
	var mu sync.Mutex
	var at []time.Time
	p := RateLimit(providerFunc(func(ctx context.Context, d string) (lifecycle.Lifecycle, error) {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		return lifecycle.Lifecycle{}, nil
	}), NewLimiter(r, 1))
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < 26; i++ {
		wg.Go(func() { p.Lookup(context.Background(), "a.com") })
	}
	wg.Wait()
	// 26 grants at 50/s with burst 1 need at least 25 intervals of 20 ms.
	if el := time.Since(start); el < 490*time.Millisecond {
		t.Errorf("26 grants took %v, want ≥ 500ms at %v/s", el, r)
	}
}

func TestHTTPHelpers(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := http.Header{"Retry-After": {"5"}}
	var te *ThrottledError
	if err := ClassifyHTTP(429, h, nil, now); !errors.As(err, &te) || te.RetryAfter != 5*time.Second {
		t.Errorf("429: %v", err)
	}
	if err := ClassifyHTTP(403, nil, []byte("Rate limit exceeded, slow down"), now); !errors.As(err, &te) {
		t.Errorf("403 throttle text: %v", err)
	}
	var pe *PermanentError
	if err := ClassifyHTTP(403, nil, []byte("forbidden"), now); !errors.As(err, &pe) {
		t.Errorf("403 plain: %v", err)
	}
	if err := ClassifyHTTP(401, nil, nil, now); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("401: %v", err)
	}
	if err := ClassifyHTTP(503, nil, nil, now); err == nil || !Retryable(err) {
		t.Errorf("503: %v", err)
	}
	ue := &url.Error{Op: "Get", URL: "https://api.example/v2/status?domain=a.com&client_id=SECRET123", Err: errReset}
	err := RedactError(fmt.Errorf("wrapped: %w", ue), "SECRET123")
	if strings.Contains(err.Error(), "SECRET123") || !errors.Is(err, errReset) {
		t.Errorf("redacted: %v", err)
	}
	err = RedactError(errors.New("echo SECRET123"), "SECRET123")
	if strings.Contains(err.Error(), "SECRET123") {
		t.Errorf("redacted message: %v", err)
	}
}

func TestPoliteTimeoutExcludesRateWait(t *testing.T) {
	// 20/s with burst 1: the fourth lookup waits ~150 ms for its token,
	// far beyond the 40 ms the server gets; it must still succeed.
	var calls atomic.Int32
	p := Polite(providerFunc(func(ctx context.Context, d string) (lifecycle.Lifecycle, error) {
		calls.Add(1)
		return lifecycle.Lifecycle{Domain: d, State: lifecycle.Registered}, nil
	}), Politeness{Limiter: NewLimiter(20, 1), Timeout: 40 * time.Millisecond, Concurrency: 4})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			if _, err := p.Lookup(context.Background(), "a.com"); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("lookup failed: %v", err)
	}
	// And the timeout does bound a hanging provider.
	hang := Polite(&scripted{name: "x", steps: []step{{block: true}}}, Politeness{Timeout: 20 * time.Millisecond})
	if _, err := hang.Lookup(context.Background(), "a.com"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hanging provider: %v", err)
	}
}
