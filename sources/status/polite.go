package status

import (
	"log/slog"
	"time"

	"github.com/lapse-dev/lapse/config"
)

// Politeness is every wrapper's settings for one provider.
type Politeness struct {
	// Limiter is the provider's request budget (shared by all its
	// lookups); nil means none (e.g. when a RateTransport limits per host).
	Limiter *Limiter
	// Concurrency bounds lookups in flight (0: none).
	Concurrency int
	// Timeout bounds one attempt, once it has its token and slot (0: none).
	Timeout time.Duration
	// Retry.AttemptTimeout is ignored by Polite (Timeout replaces it).
	Retry   RetryOptions
	Breaker BreakerOptions
	// Budget caps the lookups of one run (0: none).
	Budget int
	// UnauthorizedHint completes the 401 message, e.g. "check
	// LAPSE_DOMAINR_CLIENT_ID"; empty leaves out the stop-on-401 wrapper
	// (RDAP and WHOIS send no key: one server's 401 must not stop them).
	UnauthorizedHint string
	// Log receives the one error line when a provider is stopped.
	Log *slog.Logger
}

// FromLimits fills Politeness from a provider's config section.
func FromLimits(l config.Limits) Politeness {
	return Politeness{
		Limiter:     NewLimiter(l.RatePerSecond, l.Burst),
		Concurrency: l.Concurrency,
		Timeout:     l.Timeout.Std(),
		Retry:       RetryOptions{Retries: l.Retries},
		Budget:      l.BudgetPerNight,
		Breaker:     BreakerOptions{Threshold: l.BreakerThreshold, Cooldown: l.BreakerCooldown.Std()},
	}
}

// Polite stacks the wrappers once, outermost first:
//
//	stop-on-401 (keyed providers) → budget → retry (backoff, Retry-After) → circuit breaker
//	→ concurrency bound → rate limit → per-attempt timeout → provider
//
// Retry sits outside the breaker and the limiter so every attempt pays for a
// token and counts towards the host's health; the concurrency slot is
// released while a retry sleeps; the timeout starts once the attempt may
// really be sent.
func Polite(p Provider, o Politeness) Provider {
	o.Retry.AttemptTimeout = 0
	inner := Timeout(p, o.Timeout)
	inner = RateLimit(inner, o.Limiter)
	inner = Concurrency(inner, o.Concurrency)
	inner = NewBreaker(inner, o.Breaker)
	inner = Retry(inner, o.Retry)
	inner = Budget(inner, o.Budget)
	if o.UnauthorizedHint == "" {
		return inner
	}
	return stopOnUnauthorizedLog(inner, o.UnauthorizedHint, o.Log)
}
