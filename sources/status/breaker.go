package status

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/lapse-dev/lapse/lifecycle"
)

// BreakerOptions configure a circuit breaker.
type BreakerOptions struct {
	// Threshold consecutive failures open the breaker (default 5).
	Threshold int
	// Cooldown is how long it stays open before one probe is let through
	// (default 1 min).
	Cooldown time.Duration
	// Key maps a domain to the breaker it counts against, usually the
	// remote host (RDAP, WHOIS: per TLD server). Default: one breaker.
	Key func(domain string) string
	Now func() time.Time
}

// BreakerOpenError is returned without asking the provider while the
// breaker for Key is open. It is an error, never a state.
type BreakerOpenError struct {
	Source lifecycle.Source
	Key    string
	Until  time.Time
	Cause  string
}

func (e *BreakerOpenError) Error() string {
	k := ""
	if e.Key != "" {
		k = " for " + e.Key
	}
	return fmt.Sprintf("%s: circuit breaker open%s until %s after repeated failures (last: %s)", e.Source, k, e.Until.UTC().Format(time.RFC3339), e.Cause)
}

type breakerState struct {
	fails     int
	openUntil time.Time
	probing   bool
	lastErr   string
}

// Breaker is a Provider wrapper holding one circuit breaker per key.
type Breaker struct {
	next Provider
	o    BreakerOptions
	mu   sync.Mutex
	st   map[string]*breakerState
}

// NewBreaker wraps p in per-key circuit breakers: Threshold consecutive
// failures open the key's breaker for Cooldown, during which lookups fail
// fast; then one probe is let through (half-open): success closes it,
// failure opens it again. Failures are transient errors and throttling;
// permanent errors, missing servers and the caller's cancellation do not
// count (they say nothing about the host's health).
func NewBreaker(p Provider, o BreakerOptions) *Breaker {
	if o.Threshold <= 0 {
		o.Threshold = 5
	}
	if o.Cooldown <= 0 {
		o.Cooldown = time.Minute
	}
	if o.Key == nil {
		o.Key = func(string) string { return "" }
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Breaker{next: p, o: o, st: map[string]*breakerState{}}
}

var _ Provider = (*Breaker)(nil)

// Name is the wrapped provider's.
func (b *Breaker) Name() lifecycle.Source { return b.next.Name() }

// Lookup asks the provider unless the key's breaker is open.
func (b *Breaker) Lookup(ctx context.Context, domain string) (lifecycle.Lifecycle, error) {
	key := b.o.Key(domain)
	probe, err := b.allow(key)
	if err != nil {
		return lifecycle.Lifecycle{}, err
	}
	lc, lerr := b.next.Lookup(ctx, domain)
	b.report(ctx, key, probe, lerr)
	return lc, lerr
}

func (b *Breaker) allow(key string) (probe bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.st[key]
	if s == nil || s.fails < b.o.Threshold {
		return false, nil
	}
	now := b.o.Now()
	if now.Before(s.openUntil) || s.probing {
		until := s.openUntil
		if s.probing && !now.Before(until) {
			until = now
		}
		return false, &BreakerOpenError{Source: b.next.Name(), Key: key, Until: until, Cause: s.lastErr}
	}
	s.probing = true
	return true, nil
}

func (b *Breaker) report(ctx context.Context, key string, probe bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.st[key]
	if s == nil {
		s = &breakerState{}
		b.st[key] = s
	}
	if probe {
		s.probing = false
	}
	switch {
	case err == nil:
		s.fails, s.lastErr = 0, ""
	case ctx.Err() != nil || !countsAgainstHost(err):
		// Says nothing about the host: a probe that ended this way leaves
		// the breaker as it was (it re-probes next time).
	default:
		s.fails++
		s.lastErr = err.Error()
		if s.fails >= b.o.Threshold {
			s.openUntil = b.o.Now().Add(b.o.Cooldown)
		}
	}
}

func countsAgainstHost(err error) bool {
	var pe *PermanentError
	var te *ThrottledError
	switch {
	case errors.As(err, &te):
		return true
	case errors.As(err, &pe), errors.Is(err, ErrNoServer), errors.Is(err, ErrUnauthorized), errors.Is(err, context.Canceled):
		return false
	}
	return true
}
