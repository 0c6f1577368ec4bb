package status

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/lapse-dev/lapse/lifecycle"
)

// RetryOptions configure Retry. Zero values take the defaults noted.
type RetryOptions struct {
	// Retries is how many times a failed lookup is tried again (0: none).
	Retries int
	// Base and Max bound the exponential backoff: attempt n waits a random
	// duration in [0, min(Max, Base·2ⁿ)) ("full jitter"). Defaults 500 ms, 30 s.
	Base, Max time.Duration
	// MaxWait caps a server's Retry-After: asked to wait longer, lapse gives
	// up on the domain for tonight (error). Default 60 s.
	MaxWait time.Duration
	// AttemptTimeout bounds one attempt (0: only the caller's context),
	// including whatever waits sit below Retry; Polite uses the innermost
	// Timeout wrapper instead.
	AttemptTimeout time.Duration
	// Sleep waits d or until ctx ends (tests inject one that records and
	// returns at once). Default: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand returns a float in [0,1) for the jitter. Default math/rand/v2.
	Rand func() float64
	Log  *slog.Logger
}

type retrying struct {
	next Provider
	o    RetryOptions
}

// Retry retries p's retryable failures (Retryable) with exponential backoff
// and full jitter, honouring a ThrottledError's RetryAfter up to MaxWait.
// The caller's context ending stops it at once. An open breaker, a 401 or a
// permanent error is returned without retrying.
func Retry(p Provider, o RetryOptions) Provider {
	if o.Base <= 0 {
		o.Base = 500 * time.Millisecond
	}
	if o.Max <= 0 {
		o.Max = 30 * time.Second
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 60 * time.Second
	}
	if o.Sleep == nil {
		o.Sleep = SleepContext
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	return &retrying{next: p, o: o}
}

var _ Provider = (*retrying)(nil)

// SleepContext waits d or until ctx ends, returning ctx's error then.
func SleepContext(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *retrying) Name() lifecycle.Source { return r.next.Name() }

// Backoff is the full-jitter wait before retry number n (0-based).
func (o RetryOptions) backoff(n int) time.Duration {
	ceil := o.Base
	for i := 0; i < n && ceil < o.Max; i++ {
		ceil *= 2
	}
	ceil = min(ceil, o.Max)
	return time.Duration(o.Rand() * float64(ceil))
}

func (r *retrying) Lookup(ctx context.Context, domain string) (lifecycle.Lifecycle, error) {
	var lastErr error
	for attempt := 0; ; attempt++ {
		lc, err := r.attempt(ctx, domain)
		if err == nil {
			return lc, nil
		}
		if ctx.Err() != nil {
			// The caller gave up (Ctrl-C, deadline): no more attempts.
			return lifecycle.Lifecycle{}, errors.Join(err, ctx.Err())
		}
		lastErr = err
		var boe *BreakerOpenError
		if !Retryable(err) || errors.As(err, &boe) || errors.Is(err, ErrStopped) {
			return lifecycle.Lifecycle{}, err
		}
		if attempt >= r.o.Retries {
			if attempt > 0 {
				return lifecycle.Lifecycle{}, fmt.Errorf("%w (gave up after %d attempts)", lastErr, attempt+1)
			}
			return lifecycle.Lifecycle{}, lastErr
		}
		wait := r.o.backoff(attempt)
		var te *ThrottledError
		if errors.As(err, &te) && te.RetryAfter > 0 {
			if te.RetryAfter > r.o.MaxWait {
				return lifecycle.Lifecycle{}, fmt.Errorf("%w (Retry-After %s exceeds the %s cap: giving up for this run)", err, te.RetryAfter, r.o.MaxWait)
			}
			wait = max(wait, te.RetryAfter)
		}
		if r.o.Log != nil {
			r.o.Log.Debug("retrying lookup", "source", r.next.Name(), "domain", domain, "attempt", attempt+1, "wait", wait, "err", err)
		}
		if err := r.o.Sleep(ctx, wait); err != nil {
			return lifecycle.Lifecycle{}, errors.Join(lastErr, err)
		}
	}
}

func (r *retrying) attempt(ctx context.Context, domain string) (lifecycle.Lifecycle, error) {
	// The per-attempt timeout is visible in the error and retryable.
	return Timeout(r.next, r.o.AttemptTimeout).Lookup(ctx, domain)
}

type timed struct {
	next Provider
	d    time.Duration
}

// Timeout bounds each lookup through p to d (d <= 0: no bound). Polite
// puts it innermost, so waiting for a rate-limit token or a concurrency
// slot does not eat into the time the server gets.
func Timeout(p Provider, d time.Duration) Provider {
	if d <= 0 {
		return p
	}
	return &timed{next: p, d: d}
}

func (t *timed) Name() lifecycle.Source { return t.next.Name() }

func (t *timed) Lookup(ctx context.Context, domain string) (lifecycle.Lifecycle, error) {
	actx, cancel := context.WithTimeoutCause(ctx, t.d, fmt.Errorf("attempt timed out after %s", t.d))
	defer cancel()
	lc, err := t.next.Lookup(actx, domain)
	if err != nil && actx.Err() != nil && ctx.Err() == nil {
		err = fmt.Errorf("%w: %w", context.Cause(actx), err)
	}
	return lc, err
}
