package status

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/lapse-dev/lapse/lifecycle"
)

// SourceChain names the chain itself (Chain.Name); the Lifecycles it
// returns name the source whose state was used.
const SourceChain lifecycle.Source = "chain"

// Chain asks an ordered list of providers for one domain and keeps every
// answer as evidence.
//
//   - Providers are asked in order until one answers; a failure (error, or
//     an Unknown state) falls through to the next, so RDAP falls back to
//     WHOIS when the TLD has no RDAP server or RDAP fails.
//   - An authoritative answer (RDAP, WHOIS) ends the chain and counts as
//     corroborated.
//   - A best-effort answer (Domainr, Fastly) that is not decisive ends the
//     chain. A decisive one (available, pending_delete, redemption) is
//     checked with the next authoritative provider that answers: it wins
//     (Corroborated=true, whether it agrees or overrules); when every
//     authoritative provider fails, the best-effort state stands with
//     Corroborated=false.
//   - When nobody answers, the result is State unknown with every error in
//     Error and Evidence: throttling, timeouts and resets never become a
//     state other than unknown.
//
// Lookup returns an error only when the caller's context ended (the chain
// then records nothing): every other failure is a Lifecycle.
type Chain struct {
	providers []Provider
	now       func() time.Time
	log       *slog.Logger
}

// ChainOptions are the chain's dependencies.
type ChainOptions struct {
	Now func() time.Time
	Log *slog.Logger
}

// NewChain returns the chain over providers, asked in this order.
func NewChain(providers []Provider, o ChainOptions) (*Chain, error) {
	if len(providers) == 0 {
		return nil, errors.New("provider chain is empty: configure at least one of rdap, whois, domainr, fastly")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Chain{providers: providers, now: o.Now, log: o.Log}, nil
}

var _ Provider = (*Chain)(nil)

// Name is SourceChain.
func (c *Chain) Name() lifecycle.Source { return SourceChain }

// Providers lists the chain's sources in order.
func (c *Chain) Providers() []lifecycle.Source {
	var s []lifecycle.Source
	for _, p := range c.providers {
		s = append(s, p.Name())
	}
	return s
}

// Lookup runs the chain for domain.
func (c *Chain) Lookup(ctx context.Context, domain string) (lifecycle.Lifecycle, error) {
	var (
		evidence   []lifecycle.Evidence
		errs       []string
		bestEffort *lifecycle.Lifecycle // decisive answer awaiting corroboration
		unknown    *lifecycle.Lifecycle // an answer that could not tell
	)
	finish := func(lc lifecycle.Lifecycle, corroborated bool) lifecycle.Lifecycle {
		lc.Corroborated = corroborated
		lc.Evidence = evidence
		if lc.CheckedAt.IsZero() {
			lc.CheckedAt = c.now().UTC()
		}
		return lc
	}
	for _, p := range c.providers {
		src := p.Name()
		if bestEffort != nil && !src.Authoritative() {
			continue // a decisive best-effort answer needs RDAP or WHOIS, not a second opinion of its kind
		}
		lc, err := p.Lookup(ctx, domain)
		if ctx.Err() != nil {
			return lifecycle.Lifecycle{}, fmt.Errorf("%s %s: %w", src, domain, ctx.Err())
		}
		if err != nil {
			at := c.now().UTC()
			evidence = append(evidence, lifecycle.Evidence{Source: src, State: lifecycle.Unknown, CheckedAt: at, Error: err.Error()})
			errs = append(errs, err.Error())
			c.log.Debug("provider failed", "source", src, "domain", domain, "err", err)
			continue
		}
		evidence = append(evidence, evidenceOf(lc, src, c.now().UTC())...)
		if lc.State == lifecycle.Unknown {
			if unknown == nil {
				unknown = &lc
			}
			if lc.Error != "" {
				errs = append(errs, fmt.Sprintf("%s %s: %s", src, domain, lc.Error))
			}
			continue
		}
		if src.Authoritative() {
			return finish(lc, true), nil
		}
		if !lc.State.Decisive() {
			return finish(lc, false), nil
		}
		if bestEffort == nil {
			bestEffort = &lc
		}
	}
	if bestEffort != nil {
		// The authoritative errors are in the evidence; Error stays empty
		// because a state was found.
		return finish(*bestEffort, false), nil
	}
	if unknown != nil && len(errs) == 0 {
		return finish(*unknown, false), nil
	}
	src := c.providers[0].Name()
	if unknown != nil {
		src = unknown.Source
	}
	msg := "no source could tell"
	if len(errs) > 0 {
		msg = strings.Join(errs, "; ")
	}
	lc := lifecycle.FromError(domain, src, errors.New(msg), c.now().UTC())
	return finish(lc, false), nil
}

// evidenceOf is lc as evidence, flattening a nested chain's own evidence.
func evidenceOf(lc lifecycle.Lifecycle, src lifecycle.Source, now time.Time) []lifecycle.Evidence {
	if len(lc.Evidence) > 0 {
		return lc.Evidence
	}
	e := lc.AsEvidence()
	if e.Source == "" {
		e.Source = src
	}
	if e.CheckedAt.IsZero() {
		e.CheckedAt = now
	}
	return []lifecycle.Evidence{e}
}
