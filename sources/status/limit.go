package status

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sources/address"
)

// Headroom is the share of a configured rate lapse really uses. A token
// bucket at exactly R grants R per second, but a request delayed by a
// millisecond on its way puts R+1 into the server's one-second window;
// aiming 1% under keeps the server's count at or below R.
const Headroom = 0.99

// NewLimiter returns a token bucket of r requests per second (times
// Headroom) with burst b (at least 1), guarded so that no one-second window
// holds more than r grants (at least 1); r <= 0 means no limit.
func NewLimiter(r float64, b int) *Limiter {
	if r <= 0 {
		return &Limiter{Limiter: rate.NewLimiter(rate.Inf, 1)}
	}
	if b < 1 {
		b = 1
	}
	n := max(1, int(r))
	return &Limiter{Limiter: rate.NewLimiter(rate.Limit(r*Headroom), b), grants: make([]time.Time, n)}
}

// GuardMargin is how much longer than a second the guard's window is: the
// time a request may take from its grant to the network (a goroutine
// preempted on the way) without putting R+1 into one second there. It
// costs 2% of the rate at R = 20 (97.6–98% of R, against 99% without;
// BenchmarkPoliteness on two loaded cores: at most 20 sent in any second
// with it, 20–21 without).
const GuardMargin = 20 * time.Millisecond

// Limiter is a token bucket with a guard on the clock its grants are
// actually taken at. The bucket grants at most R in any second of its own
// schedule, but a waiter woken late (a busy machine: the scheduler, the
// garbage collector) sends later than its slot and bunches with the ones
// after it: BenchmarkPoliteness saw 22 and 23 requests in one second at
// R = 20 on two loaded cores. So Wait, once the bucket grants, reads the
// clock and waits further while the last n grants all fall within the
// second (and GuardMargin) before: by that clock no second ever holds
// more than n = R.
type Limiter struct {
	*rate.Limiter
	mu     sync.Mutex
	grants []time.Time // ring of the last len(grants) grant times; nil: no guard
	next   int
}

// Wait blocks until the bucket grants a token and the last second holds
// fewer than R grants, or ctx is done.
func (l *Limiter) Wait(ctx context.Context) error {
	if err := l.Limiter.Wait(ctx); err != nil {
		return err
	}
	if len(l.grants) == 0 {
		return nil
	}
	for {
		l.mu.Lock()
		now := time.Now()
		wait := l.grants[l.next].Add(time.Second + GuardMargin).Sub(now)
		if wait <= 0 {
			l.grants[l.next] = now
			l.next = (l.next + 1) % len(l.grants)
			l.mu.Unlock()
			return nil
		}
		l.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// rateLimited waits for a token of a shared limiter before every lookup.
type rateLimited struct {
	next Provider
	lim  *Limiter
}

// RateLimit makes every lookup through p wait for a token of lim. Share
// one limiter between wrappers to share the budget.
func RateLimit(p Provider, lim *Limiter) Provider {
	if lim == nil {
		return p
	}
	return &rateLimited{next: p, lim: lim}
}

var _ Provider = (*rateLimited)(nil)

func (r *rateLimited) Name() lifecycle.Source { return r.next.Name() }

func (r *rateLimited) Lookup(ctx context.Context, domain string) (lifecycle.Lifecycle, error) {
	if err := r.lim.Wait(ctx); err != nil {
		return lifecycle.Lifecycle{}, fmt.Errorf("%s %s: rate limit wait: %w", r.next.Name(), domain, ctxErr(ctx, err))
	}
	return r.next.Lookup(ctx, domain)
}

// ctxErr prefers the context's own error: rate.Limiter.Wait reports "would
// exceed context deadline" before the deadline passes, which should still
// read (and classify) as a deadline.
func ctxErr(ctx context.Context, err error) error {
	if e := ctx.Err(); e != nil {
		return e
	}
	if _, ok := ctx.Deadline(); ok {
		return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	return err
}

// bounded holds at most n lookups in flight.
type bounded struct {
	next Provider
	sem  chan struct{}
}

// Concurrency bounds the lookups in flight through p to n (n < 1: no bound).
func Concurrency(p Provider, n int) Provider {
	if n < 1 {
		return p
	}
	return &bounded{next: p, sem: make(chan struct{}, n)}
}

var _ Provider = (*bounded)(nil)

func (b *bounded) Name() lifecycle.Source { return b.next.Name() }

func (b *bounded) Lookup(ctx context.Context, domain string) (lifecycle.Lifecycle, error) {
	select {
	case b.sem <- struct{}{}:
	case <-ctx.Done():
		return lifecycle.Lifecycle{}, fmt.Errorf("%s %s: waiting for a slot: %w", b.next.Name(), domain, ctx.Err())
	}
	defer func() { <-b.sem }()
	return b.next.Lookup(ctx, domain)
}

// ErrBudgetExhausted means the provider spent its lookups for the night.
var ErrBudgetExhausted = errors.New("lookup budget for this run exhausted")

type budgeted struct {
	next Provider
	left atomic.Int64
}

// Budget lets at most n lookups through p (n < 1: no cap); later ones fail
// at once with ErrBudgetExhausted, wrapped as permanent for tonight.
func Budget(p Provider, n int) Provider {
	if n < 1 {
		return p
	}
	b := &budgeted{next: p}
	b.left.Store(int64(n))
	return b
}

func (b *budgeted) Name() lifecycle.Source { return b.next.Name() }

func (b *budgeted) Lookup(ctx context.Context, domain string) (lifecycle.Lifecycle, error) {
	if b.left.Add(-1) < 0 {
		return lifecycle.Lifecycle{}, &PermanentError{Err: fmt.Errorf("%s %s: %w", b.next.Name(), domain, ErrBudgetExhausted)}
	}
	return b.next.Lookup(ctx, domain)
}

// stopping remembers a 401 and fails every later call fast.
type stopping struct {
	next    Provider
	hint    string
	log     *slog.Logger
	stopped atomic.Bool
}

// ErrStopped marks a provider stopped for this run after a 401; it wraps
// ErrUnauthorized too.
var ErrStopped = errors.New("provider stopped for this run")

// StopOnUnauthorized stops p for the rest of the run at its first
// ErrUnauthorized: asking again with a refused key only hammers the
// provider. hint names the setting to fix, e.g. "check LAPSE_DOMAINR_CLIENT_ID".
func StopOnUnauthorized(p Provider, hint string) Provider {
	return &stopping{next: p, hint: hint}
}

// stopOnUnauthorizedLog is StopOnUnauthorized that logs the stop once.
func stopOnUnauthorizedLog(p Provider, hint string, log *slog.Logger) Provider {
	return &stopping{next: p, hint: hint, log: log}
}

func (s *stopping) Name() lifecycle.Source { return s.next.Name() }

func (s *stopping) err() error {
	msg := fmt.Sprintf("%s: unauthorized (401)", s.next.Name())
	if s.hint != "" {
		msg += ": " + s.hint
	}
	return &stoppedError{msg: msg + "; provider stopped for this run"}
}

type stoppedError struct{ msg string }

func (e *stoppedError) Error() string { return e.msg }
func (e *stoppedError) Is(target error) bool {
	return target == ErrStopped || target == ErrUnauthorized
}

func (s *stopping) Lookup(ctx context.Context, domain string) (lifecycle.Lifecycle, error) {
	if s.stopped.Load() {
		return lifecycle.Lifecycle{}, s.err()
	}
	lc, err := s.next.Lookup(ctx, domain)
	if errors.Is(err, ErrUnauthorized) {
		if !s.stopped.Swap(true) && s.log != nil {
			s.log.Error(s.err().Error(), "source", s.next.Name(), "err", err)
		}
		return lifecycle.Lifecycle{}, fmt.Errorf("%w (%v)", s.err(), err)
	}
	return lc, err
}

// HostLimits hands out one limiter per remote host, created on first use.
type HostLimits struct {
	Rate  float64
	Burst int

	mu   sync.Mutex
	lims map[string]*Limiter
}

// For returns host's limiter.
func (h *HostLimits) For(host string) *Limiter {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lims == nil {
		h.lims = map[string]*Limiter{}
	}
	l, ok := h.lims[host]
	if !ok {
		l = NewLimiter(h.Rate, h.Burst)
		h.lims[host] = l
	}
	return l
}

// RateTransport is an http.RoundTripper that waits for a token of the
// request host's limiter (req.URL.Host) before sending: RDAP's hosts differ
// per TLD and each gets its own budget. It only moves bytes; it does not
// interpret answers.
type RateTransport struct {
	Next   http.RoundTripper
	Limits *HostLimits
}

// RoundTrip waits for the host's token, then sends.
func (t *RateTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	next := t.Next
	if next == nil {
		next = http.DefaultTransport
	}
	if t.Limits != nil {
		if err := t.Limits.For(req.URL.Host).Wait(req.Context()); err != nil {
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, fmt.Errorf("rate limit wait for %s: %w", req.URL.Host, ctxErr(req.Context(), err))
		}
	}
	return next.RoundTrip(req)
}

type keyedRate struct {
	next   Provider
	limits *HostLimits
	key    func(domain string) string
}

// RateLimitBy makes every lookup wait for a token of the limiter of
// key(domain): WHOIS asks a different server per TLD, so the TLD is the key.
func RateLimitBy(p Provider, limits *HostLimits, key func(domain string) string) Provider {
	if limits == nil || limits.Rate <= 0 {
		return p
	}
	return &keyedRate{next: p, limits: limits, key: key}
}

func (k *keyedRate) Name() lifecycle.Source { return k.next.Name() }

func (k *keyedRate) Lookup(ctx context.Context, domain string) (lifecycle.Lifecycle, error) {
	if err := k.limits.For(k.key(domain)).Wait(ctx); err != nil {
		return lifecycle.Lifecycle{}, fmt.Errorf("%s %s: rate limit wait: %w", k.next.Name(), domain, ctxErr(ctx, err))
	}
	return k.next.Lookup(ctx, domain)
}

// TLD is the last label of domain, the usual key for per-registry limits
// and breakers.
func TLD(domain string) string {
	d := address.Fold(domain)
	if i := strings.LastIndexByte(d, '.'); i >= 0 {
		return d[i+1:]
	}
	return d
}

// UserAgentTransport sets the User-Agent of every request it sends.
type UserAgentTransport struct {
	Next      http.RoundTripper
	UserAgent string
}

// RoundTrip sets the header on a clone of req and sends it.
func (t *UserAgentTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	next := t.Next
	if next == nil {
		next = http.DefaultTransport
	}
	if t.UserAgent != "" && req.Header.Get("User-Agent") == "" {
		req = req.Clone(req.Context())
		req.Header.Set("User-Agent", t.UserAgent)
	}
	return next.RoundTrip(req)
}
