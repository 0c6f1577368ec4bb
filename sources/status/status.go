// Package status holds what every domain status provider shares: the
// Provider interface the resolve stage and the chain consume, the error
// classes providers return (throttled with a wait, unauthorized, no server
// for the TLD), the politeness wrappers (rate limit, retry, circuit breaker)
// and the provider chain with corroboration.
//
// The wiring of the real providers from the configuration (Build) lives in
// sources/status/providers, because the providers import this package.
package status

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lapse-dev/lapse/lifecycle"
)

// Provider looks up the lifecycle of one registrable domain.
//
// On success it returns the normalized Lifecycle (whose State may be
// Unknown when the source answered but could not tell). On failure it
// returns the zero Lifecycle and an error, classified with the types below
// where the provider understands it; it never turns a failure into a state.
type Provider interface {
	// Name is the source this provider speaks for.
	Name() lifecycle.Source
	Lookup(ctx context.Context, domain string) (lifecycle.Lifecycle, error)
}

// ThrottledError is a provider telling lapse to slow down (HTTP 429, 403 or
// 422 with a rate-limit body, WHOIS "limit exceeded"). RetryAfter is the
// wait it asked for, zero when it named none.
type ThrottledError struct {
	RetryAfter time.Duration
	Err        error
}

func (e *ThrottledError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("throttled (retry after %s): %v", e.RetryAfter, e.Err)
	}
	return fmt.Sprintf("throttled: %v", e.Err)
}

func (e *ThrottledError) Unwrap() error { return e.Err }

// ErrUnauthorized means the provider refused our credentials (HTTP 401):
// asking again tonight would only hammer it.
var ErrUnauthorized = errors.New("unauthorized: check the API key or client_id")

// ErrNoServer means the provider has no server for the domain's TLD (no
// RDAP bootstrap entry, no WHOIS server): the chain falls back at once.
var ErrNoServer = errors.New("no server for this TLD")

// PermanentError wraps a failure that retrying will not fix (a malformed
// request, a 400). Transient failures (timeouts, resets, 5xx) stay plain.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Retryable reports whether err is worth another try later tonight.
func Retryable(err error) bool {
	var pe *PermanentError
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, ErrUnauthorized), errors.Is(err, ErrNoServer), errors.As(err, &pe):
		return false
	}
	return true
}
