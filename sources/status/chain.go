package status

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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
//   - With a Want (LookupWith): Authoritative asks RDAP/WHOIS first (the
//     status APIs only when they all fail); PrevFlags makes a non-decisive
//     best-effort answer whose flags changed since the last night it was
//     asked go to the authoritative providers too, like a decisive one.
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

// Want is what the caller knows of a domain that changes how the chain
// asks about it (issue 11): a status API's "active" ends a plain lookup,
// so a status-API-first chain would never learn a domain's registration
// and expiry dates. The caller (resolve, from the plan and the cache
// entry) decides Authoritative; the chain decides the flags-changed case
// itself once the status API answered, from PrevFlags.
type Want struct {
	// Authoritative asks the authoritative providers (RDAP, WHOIS) tonight,
	// whatever a status API would say: the domain has no authoritative
	// answer yet, its known expiry is near or passed, or its latest one is
	// too old. They are asked first and the status APIs are not asked at
	// all when one of them answers (its answer would decide anyway, and
	// asking both would double the night's cost); when every one of them
	// fails the status APIs answer as in a plain lookup.
	Authoritative bool
	// PrevFlags are the status API's flags the last night it was asked;
	// nil when it never was. A non-decisive status answer whose flags
	// differ (as sets, case aside) is checked with the authoritative
	// providers, whose answer wins, as for a decisive one.
	PrevFlags []string
	// Corroborate checks every status answer with the authoritative
	// providers, decisive or not: both are asked, the authoritative answer
	// wins (lapse check shows the status API's flags and the dates).
	Corroborate bool
}

// WantLookuper is a Provider that takes a Want with a lookup (the Chain).
type WantLookuper interface {
	Provider
	LookupWith(ctx context.Context, domain string, w Want) (lifecycle.Lifecycle, error)
}

var _ WantLookuper = (*Chain)(nil)

// LookupWith asks p with w when it takes a Want, and a plain Lookup
// otherwise.
func LookupWith(ctx context.Context, p Provider, domain string, w Want) (lifecycle.Lifecycle, error) {
	if wl, ok := p.(WantLookuper); ok {
		return wl.LookupWith(ctx, domain, w)
	}
	return p.Lookup(ctx, domain)
}

// StatusFirst reports whether a chain of these sources asks a status API
// (Domainr, Fastly) before an authoritative provider it also has: the
// chains whose authoritative facts need a schedule of their own (Want).
func StatusFirst(sources []lifecycle.Source) bool {
	for i, s := range sources {
		if s.Authoritative() {
			return false
		}
		if s.BestEffort() {
			for _, t := range sources[i+1:] {
				if t.Authoritative() {
					return true
				}
			}
			return false
		}
	}
	return false
}

// Lookup runs the chain for domain: LookupWith and no Want.
func (c *Chain) Lookup(ctx context.Context, domain string) (lifecycle.Lifecycle, error) {
	return c.LookupWith(ctx, domain, Want{})
}

// chainLookup is one run of the chain for a domain.
type chainLookup struct {
	c        *Chain
	domain   string
	evidence []lifecycle.Evidence
	errs     []string
	unknown  *lifecycle.Lifecycle // an answer that could not tell
	asked    []bool
}

// ask asks provider i; ok is false when it failed or could not tell (the
// failure is in the evidence). err is set only when ctx ended.
func (l *chainLookup) ask(ctx context.Context, i int) (lc lifecycle.Lifecycle, ok bool, err error) {
	p := l.c.providers[i]
	src := p.Name()
	l.asked[i] = true
	lc, err = p.Lookup(ctx, l.domain)
	if ctx.Err() != nil {
		return lc, false, fmt.Errorf("%s %s: %w", src, l.domain, ctx.Err())
	}
	if err != nil {
		at := l.c.now().UTC()
		l.evidence = append(l.evidence, lifecycle.Evidence{Source: src, State: lifecycle.Unknown, CheckedAt: at, Error: err.Error()})
		l.errs = append(l.errs, err.Error())
		l.c.log.Debug("provider failed", "source", src, "domain", l.domain, "err", err)
		return lc, false, nil
	}
	l.evidence = append(l.evidence, evidenceOf(lc, src, l.c.now().UTC())...)
	if lc.State == lifecycle.Unknown {
		if l.unknown == nil {
			l.unknown = &lc
		}
		if lc.Error != "" {
			l.errs = append(l.errs, fmt.Sprintf("%s %s: %s", src, l.domain, lc.Error))
		}
		return lc, false, nil
	}
	return lc, true, nil
}

func (l *chainLookup) finish(lc lifecycle.Lifecycle, corroborated bool) lifecycle.Lifecycle {
	lc.Corroborated = corroborated
	lc.Evidence = l.evidence
	if lc.CheckedAt.IsZero() {
		lc.CheckedAt = l.c.now().UTC()
	}
	return lc
}

// authoritativeLeft reports whether an authoritative provider is still
// to be asked.
func (l *chainLookup) authoritativeLeft() bool {
	for i, p := range l.c.providers {
		if !l.asked[i] && p.Name().Authoritative() {
			return true
		}
	}
	return false
}

// LookupWith runs the chain for domain with what the caller knows of it
// (Want); see Chain and Want.
func (c *Chain) LookupWith(ctx context.Context, domain string, w Want) (lifecycle.Lifecycle, error) {
	l := &chainLookup{c: c, domain: domain, asked: make([]bool, len(c.providers))}
	if w.Authoritative {
		for i, p := range c.providers {
			if !p.Name().Authoritative() {
				continue
			}
			lc, ok, err := l.ask(ctx, i)
			if err != nil {
				return lifecycle.Lifecycle{}, err
			}
			if ok {
				return l.finish(lc, true), nil
			}
		}
	}
	// pending is a best-effort answer awaiting an authoritative check: a
	// decisive state, or flags that changed since PrevFlags.
	var pending *lifecycle.Lifecycle
	for i, p := range c.providers {
		src := p.Name()
		if l.asked[i] || (pending != nil && !src.Authoritative()) {
			continue // a best-effort answer to check needs RDAP or WHOIS, not a second opinion of its kind
		}
		lc, ok, err := l.ask(ctx, i)
		if err != nil {
			return lifecycle.Lifecycle{}, err
		}
		if !ok {
			continue
		}
		if src.Authoritative() {
			return l.finish(lc, true), nil
		}
		if !lc.State.Decisive() {
			changed := w.PrevFlags != nil && !sameFlags(lc.Statuses, w.PrevFlags)
			if !(changed || w.Corroborate) || !l.authoritativeLeft() {
				return l.finish(lc, false), nil
			}
			if changed {
				c.log.Debug("status flags changed: asking the authoritative providers", "source", src, "domain", domain,
					"flags", strings.Join(lc.Statuses, " "), "previous", strings.Join(w.PrevFlags, " "))
			}
		}
		if pending == nil {
			pending = &lc
		}
	}
	if pending != nil {
		// The authoritative errors are in the evidence; Error stays empty
		// because a state was found.
		return l.finish(*pending, false), nil
	}
	if l.unknown != nil && len(l.errs) == 0 {
		return l.finish(*l.unknown, false), nil
	}
	src := c.providers[0].Name()
	if l.unknown != nil {
		src = l.unknown.Source
	}
	msg := "no source could tell"
	if len(l.errs) > 0 {
		msg = strings.Join(l.errs, "; ")
	}
	lc := lifecycle.FromError(domain, src, errors.New(msg), c.now().UTC())
	return l.finish(lc, false), nil
}

// sameFlags reports whether two status API answers carry the same flags,
// as sets and case aside.
func sameFlags(a, b []string) bool {
	return slices.Equal(NormalFlags(a), NormalFlags(b))
}

// NormalFlags is flags lowercased, sorted and without repeats: the form
// the cache keeps and compares.
func NormalFlags(flags []string) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		if f = strings.ToLower(strings.TrimSpace(f)); f != "" {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
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
