package lifecycle

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Action is what the policy decides for one email address.
type Action string

// The actions of ARCHITECTURE.md, "From domain state to email decision".
const (
	// ActionUnverify proposes un-verifying the address (it goes into the
	// changeset; nothing is applied without review).
	ActionUnverify Action = "unverify"
	// ActionWatch keeps the address but flags the domain for early re-checks.
	ActionWatch Action = "watch"
	// ActionKeep leaves the address alone: the domain is held.
	ActionKeep Action = "keep"
	// ActionUnknown: lapse cannot tell. Unknown never un-verifies anything.
	ActionUnknown Action = "unknown"
)

// Reason says why the policy decided what it did. The first four are the
// changeset reasons; the others explain watch, keep and unknown.
type Reason string

// Reason codes.
const (
	ReasonAvailable     Reason = "domain_available"
	ReasonPendingDelete Reason = "domain_pending_delete"
	ReasonRedemption    Reason = "domain_redemption"
	ReasonReregistered  Reason = "domain_reregistered"

	ReasonExpiring     Reason = "domain_expiring"
	ReasonGrace        Reason = "domain_grace"
	ReasonAwaitConfirm Reason = "awaiting_confirmation"
	// ReasonAwaitLookup: the owner re-verified the address after an applied
	// changeset un-verified it, and the domain's decisive state is older
	// than that re-verification. It is not proposed again on a stale answer
	// (the loop of pypi/warehouse#18356); the night looks it up afresh.
	ReasonAwaitLookup Reason = "reverified_awaiting_lookup"
	ReasonRegistered  Reason = "domain_registered"
	ReasonReserved    Reason = "domain_reserved"
	ReasonInvalidName Reason = "domain_invalid"
	ReasonUnknown     Reason = "domain_unknown"
	ReasonNotChecked  Reason = "domain_not_checked"
	ReasonInvalidAddr Reason = "invalid_address"
)

// The mail path (issue 12): an address whose own domain is healthy, but
// whose mail is received through an MX host, or whose DNS is answered by a
// name server, in a registrable domain that lapsed or was re-registered.
const (
	ReasonMXAvailable     Reason = "mx_domain_available"
	ReasonMXPendingDelete Reason = "mx_domain_pending_delete"
	ReasonMXRedemption    Reason = "mx_domain_redemption"
	ReasonMXReregistered  Reason = "mx_domain_reregistered"
	// ReasonMXWatch: an MX host's domain is expiring, in grace, or decisive
	// without confirmation: the address is watched.
	ReasonMXWatch Reason = "mx_domain_watch"

	ReasonNSAvailable     Reason = "ns_domain_available"
	ReasonNSPendingDelete Reason = "ns_domain_pending_delete"
	ReasonNSRedemption    Reason = "ns_domain_redemption"
	ReasonNSReregistered  Reason = "ns_domain_reregistered"
	ReasonNSWatch         Reason = "ns_domain_watch"
)

// Mail-path roles: how an address domain depends on another domain.
const (
	RoleMX = "mx"
	RoleNS = "ns"
)

// MailReason is the reason of a mail-path decision: role (RoleMX or
// RoleNS) and the dependency domain's decisive state, or "reregistered",
// or "watch".
func MailReason(role, what string) Reason { return Reason(role + "_domain_" + what) }

// MailPath reports whether r is a mail-path reason (mx_… or ns_…): the
// address's own domain is healthy; one of its MX or NS hosts' is not.
func (r Reason) MailPath() bool {
	return strings.HasPrefix(string(r), RoleMX+"_domain_") || strings.HasPrefix(string(r), RoleNS+"_domain_")
}

// Decision is the policy's verdict for one address.
type Decision struct {
	Action Action `json:"action"`
	Reason Reason `json:"reason"`
}

// Policy names.
const (
	PolicyCorroborated = "corroborated"
	PolicyPyPI         = "pypi"
)

// Policy turns a domain state into an email decision by its rule table
// (Rules): one table, evaluated in Go by Decide and in SQL by pipeline's
// classify stage; tests hold the two to the same cases.
type Policy struct {
	// Name is PolicyCorroborated (default) or PolicyPyPI.
	Name string
	// WatchWindow: a registered domain whose expiry lies within it of the
	// night's reference time is watched as expiring.
	WatchWindow time.Duration
	// ConfirmNights: how many nights a best-effort (Domainr/Fastly) decisive
	// state must be seen to count without RDAP/WHOIS corroboration.
	ConfirmNights int
}

// DefaultPolicy is the corroborated policy with a 30-day watch window and a
// two-night confirmation.
var DefaultPolicy = Policy{Name: PolicyCorroborated, WatchWindow: 30 * 24 * time.Hour, ConfirmNights: 2}

// Validate checks the policy's parameters.
func (p Policy) Validate() error {
	if p.Name != PolicyCorroborated && p.Name != PolicyPyPI {
		return fmt.Errorf("policy %q: want %q or %q", p.Name, PolicyCorroborated, PolicyPyPI)
	}
	if p.ConfirmNights < 1 {
		return fmt.Errorf("policy confirm_nights %d: must be at least 1", p.ConfirmNights)
	}
	if p.WatchWindow < 0 {
		return fmt.Errorf("policy watch_window %v: must not be negative", p.WatchWindow)
	}
	return nil
}

// Facts are what the policy knows about one address and its domain.
type Facts struct {
	// InvalidAddress: the address has no registrable domain. Such addresses
	// are never un-verified: the decision is unknown/invalid_address, so
	// they stay visible in the counts rather than looking healthy.
	InvalidAddress bool
	// Checked: a domain state exists (the domain was looked up at least once).
	Checked bool

	State        State
	Source       Source
	Corroborated bool
	// DecisiveNights counts the nights a decisive state was seen in a row.
	DecisiveNights int
	// Flags are the raw best-effort (Domainr/Fastly) status flags, from the
	// statuses of a best-effort answer and from best-effort evidence.
	Flags []string

	RegisteredAt          *time.Time
	ExpiresAt             *time.Time
	PreviousRegisteredAt  *time.Time
	RegisteredAtChangedAt *time.Time

	// FirstSeen is the earliest time the address is known to have existed:
	// its created or verified time, or the end of the day of the first
	// snapshot that held it, whichever is earliest.
	FirstSeen *time.Time

	// CheckedAt is when the domain's state was looked up.
	CheckedAt *time.Time
	// ReverifiedAt is set when the owner verified the address again after
	// an applied changeset un-verified it (the latest such time). A
	// re-verification is proof of control at that time: registrations
	// before it are not a re-registration, and a decisive state looked up
	// before it does not un-verify.
	ReverifiedAt *time.Time

	// MX and NS are the mail path's facts (issue 12), per role: what the
	// dependency domains of the address domain's MX hosts and name servers
	// say (lifecycle.MailFactsOf). Zero when the domain has no mail path
	// (no links file, not looked up, or no link outside itself).
	MX, NS MailFacts
}

// MailFacts are one role's mail-path facts of an address domain: over
// the dependency domains its links of that role lead to (MailDep), those
// whose state is usable (not unknown).
type MailFacts struct {
	// State is the most severe confirmed decisive state of a dependency
	// (Available > PendingDelete > Redemption, DecisiveStates' order);
	// confirmed is an authoritative (RDAP/WHOIS) or corroborated answer.
	// "" when none.
	State State
	// StateCheckedAt is the latest lookup of a dependency in State.
	StateCheckedAt *time.Time
	// ReregisteredAt is the latest re-registration of a dependency seen
	// after its link's first sighting (MailDep.ReregisteredAt).
	ReregisteredAt *time.Time
	// Watch: some dependency is expiring, in grace, decisive but not
	// confirmed, or registered with expiry inside the watch window.
	Watch bool
	// Host and Dep name, for evidence, the link of the first of
	// ReregisteredAt, State and Watch that is set (the least host on a tie).
	Host, Dep string
}

// Anchor is the time from which a later registration of the domain means
// someone else holds it: the first sighting, or a later re-verification.
func (f Facts) Anchor() *time.Time {
	if f.ReverifiedAt != nil && (f.FirstSeen == nil || f.ReverifiedAt.After(*f.FirstSeen)) {
		return f.ReverifiedAt
	}
	return f.FirstSeen
}

// StaleForReverified reports whether the address was re-verified after its
// domain's state was looked up: that state says nothing of the domain
// since the owner proved control.
func (f Facts) StaleForReverified() bool {
	return f.ReverifiedAt != nil && (f.CheckedAt == nil || f.CheckedAt.Before(*f.ReverifiedAt))
}

// Reregistered reports whether the domain was registered (again) after the
// address was first seen: registered_at later than first seen, or a
// registration date that changed between observations after first seen.
func (f Facts) Reregistered() bool {
	a := f.Anchor()
	if a == nil {
		return false
	}
	if f.RegisteredAt != nil && f.RegisteredAt.After(*a) {
		return true
	}
	return f.PreviousRegisteredAt != nil && f.RegisteredAtChangedAt != nil && f.RegisteredAtChangedAt.After(*a)
}

// Decide applies the policy to one address at the night's reference time
// asOf: the decision of the first rule of p.Rules(asOf) that holds for f.
// Pipeline's classify stage evaluates the same table in SQL.
func (p Policy) Decide(f Facts, asOf time.Time) Decision {
	return p.DecidingRule(f, asOf).Decision
}

// PyPIFlags are the Domainr flags PyPI un-verifies on, in the order their
// reasons take precedence, with the closest lapse reason for each.
var PyPIFlags = []struct {
	Flag   string
	Reason Reason
}{
	{"deleting", ReasonPendingDelete},
	{"expiring", ReasonRedemption},
	{"inactive", ReasonAvailable},
	// Not in the zone, or Domainr cannot tell: PyPI treats both as lapsed;
	// "available" is the closest of lapse's changeset reasons.
	{"undelegated", ReasonAvailable},
	{"unknown", ReasonAvailable},
}

// StateReason is the changeset reason for a decisive state.
func StateReason(s State) Reason {
	switch s {
	case Available:
		return ReasonAvailable
	case PendingDelete:
		return ReasonPendingDelete
	case Redemption:
		return ReasonRedemption
	}
	return ReasonUnknown
}

// BestEffortFlags collects the raw Domainr/Fastly flags of a domain: the
// statuses when the deciding source is best-effort, and the statuses of every
// best-effort evidence entry. Flags are split on spaces, lowercased, and
// returned sorted without duplicates.
func BestEffortFlags(src Source, statuses []string, evidence []Evidence) []string {
	var out []string
	add := func(ss []string) {
		for _, s := range ss {
			for _, f := range strings.Fields(strings.ToLower(s)) {
				out = append(out, f)
			}
		}
	}
	if src.BestEffort() {
		add(statuses)
	}
	for _, e := range evidence {
		if e.Source.BestEffort() {
			add(e.Statuses)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
