// Package lifecycle holds lapse's core vocabulary: the lifecycle State of a
// registrable domain, the Lifecycle record every status provider's answer is
// normalized to, the mapping rules from provider answers to states, and the
// email policy that turns domain states into decisions.
//
// It imports no other lapse package: everything else points inward to it.
package lifecycle

import (
	"fmt"
	"slices"
	"time"
)

// State is where a registrable domain stands in its registration lifecycle.
type State string

// The states of ARCHITECTURE.md, "Lifecycle states".
const (
	Registered    State = "registered"
	Expiring      State = "expiring"
	Grace         State = "grace"
	Redemption    State = "redemption"
	PendingDelete State = "pending_delete"
	Available     State = "available"
	Reserved      State = "reserved"
	Invalid       State = "invalid"
	Unknown       State = "unknown"
)

// States lists every state in lifecycle order.
var States = []State{Registered, Expiring, Grace, Redemption, PendingDelete, Available, Reserved, Invalid, Unknown}

// ParseState returns the State named s.
func ParseState(s string) (State, error) {
	for _, st := range States {
		if string(st) == s {
			return st, nil
		}
	}
	return "", fmt.Errorf("unknown lifecycle state %q (want one of registered, expiring, grace, redemption, pending_delete, available, reserved, invalid, unknown)", s)
}

// DecisiveStates are the states that, once confirmed, un-verify the
// addresses on the domain: the name is gone or about to be released.
var DecisiveStates = []State{Available, PendingDelete, Redemption}

// Decisive reports whether s is one of DecisiveStates.
func (s State) Decisive() bool {
	return slices.Contains(DecisiveStates, s)
}

// IsUnknown reports whether s says nothing usable: unknown, or no state at
// all (UnknownStateSQL is the same test in SQL).
func (s State) IsUnknown() bool {
	return s == Unknown || s == ""
}

// RegisteredFamily reports whether someone still holds the name.
func (s State) RegisteredFamily() bool {
	return s == Registered || s == Expiring || s == Grace
}

// Source names where an answer came from.
type Source string

// The status providers lapse knows.
const (
	SourceDomainr Source = "domainr"
	SourceFastly  Source = "fastly"
	SourceRDAP    Source = "rdap"
	SourceWHOIS   Source = "whois"
	SourceCache   Source = "cache"
)

// AuthoritativeSources speak for the registry itself; BestEffortSources
// are aggregates whose answers need corroborating.
var (
	AuthoritativeSources = []Source{SourceRDAP, SourceWHOIS}
	BestEffortSources    = []Source{SourceDomainr, SourceFastly}
)

// Authoritative reports whether the source speaks for the registry itself
// (RDAP, WHOIS) rather than a best-effort aggregate (Domainr, Fastly).
func (s Source) Authoritative() bool {
	return slices.Contains(AuthoritativeSources, s)
}

// BestEffort reports whether the source is a best-effort aggregate
// (Domainr, Fastly).
func (s Source) BestEffort() bool {
	return slices.Contains(BestEffortSources, s)
}

// Evidence is one source's answer for a domain, kept beside the verdict so a
// reviewer can see why lapse decided what it did.
type Evidence struct {
	Source       Source     `json:"source"`
	State        State      `json:"state"`
	Statuses     []string   `json:"statuses"`
	RegisteredAt *time.Time `json:"registered_at"`
	ExpiresAt    *time.Time `json:"expires_at"`
	Delegated    *bool      `json:"delegated,omitempty"`
	Server       string     `json:"server,omitempty"` // host that answered, never with credentials
	CheckedAt    time.Time  `json:"checked_at"`
	Error        string     `json:"error,omitempty"`
}

// Lifecycle is the normalized state of one registrable domain at AsOf.
//
// Times are UTC. A nil time means the source did not say. Error is set when
// no source could tell (State is then Unknown).
type Lifecycle struct {
	Domain       string     `json:"domain"`
	State        State      `json:"state"`
	Statuses     []string   `json:"statuses"`
	RegisteredAt *time.Time `json:"registered_at"`
	ExpiresAt    *time.Time `json:"expires_at"`
	// LastChanged is the registry's "last changed" event when it gives one.
	LastChanged *time.Time `json:"last_changed"`
	// Delegated is whether the name is in the zone; nil when unknown.
	Delegated *bool     `json:"delegated"`
	Source    Source    `json:"source"`
	CheckedAt time.Time `json:"checked_at"`
	AsOf      time.Time `json:"as_of"`
	Error     string    `json:"error"`
	// Corroborated is true when a decisive state from a best-effort source
	// (Domainr, Fastly) was confirmed by an authoritative one (RDAP, WHOIS),
	// or when the deciding source is itself authoritative.
	Corroborated bool       `json:"corroborated"`
	Evidence     []Evidence `json:"evidence"`
}

// Authoritative reports whether the verdict rests on an authoritative answer.
func (l Lifecycle) Authoritative() bool {
	return l.Source.Authoritative() || l.Corroborated
}

// WithServer returns l with its answer as its evidence, naming the host
// that gave it (a provider's own answer; a chain keeps the evidence of each
// provider it asked). Evidence already there is kept.
func (l Lifecycle) WithServer(host string) Lifecycle {
	if len(l.Evidence) == 0 {
		e := l.AsEvidence()
		e.Server = host
		l.Evidence = []Evidence{e}
	}
	return l
}

// AsEvidence returns the Lifecycle as one Evidence entry.
func (l Lifecycle) AsEvidence() Evidence {
	return Evidence{
		Source:       l.Source,
		State:        l.State,
		Statuses:     l.Statuses,
		RegisteredAt: l.RegisteredAt,
		ExpiresAt:    l.ExpiresAt,
		Delegated:    l.Delegated,
		CheckedAt:    l.CheckedAt,
		Error:        l.Error,
	}
}
