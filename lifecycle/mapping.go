package lifecycle

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// This file is the one place where provider answers become states: the
// rules and precedence of ARCHITECTURE.md, "Lifecycle states". Providers
// parse their wire formats into the answers below and call Rules; they never
// decide a state themselves.

// Event is one RDAP event (eventAction, eventDate).
type Event struct {
	Action string
	Date   time.Time
}

// RDAPAnswer is what lapse reads from an RDAP domain response.
type RDAPAnswer struct {
	Domain     string
	HTTPStatus int // 200, or 404 for not found (also from an errorCode object)
	Statuses   []string
	Events     []Event
	Server     string
}

// WHOISAnswer is what lapse reads from a WHOIS response.
type WHOISAnswer struct {
	Domain    string
	NotFound  bool
	Reserved  bool
	Statuses  []string
	CreatedAt *time.Time
	UpdatedAt *time.Time
	ExpiresAt *time.Time
	Server    string
}

// Rules are the mapping rules' parameters.
type Rules struct {
	// WatchWindow: a registered domain expiring within it is Expiring.
	WatchWindow time.Duration
}

// DefaultRules uses the 30-day watch window of ARCHITECTURE.md.
var DefaultRules = Rules{WatchWindow: 30 * 24 * time.Hour}

// domainrRules are the Domainr/Fastly flags that decide a state, in order of
// precedence: the first flag present wins. Flags not listed (parked,
// marketed, priced, transferable, premium, pending, undelegated, unknown)
// are annotations and do not decide anything; "undelegated" is recorded as
// Delegated=false.
var domainrRules = []struct {
	flag  string
	state State
}{
	{"deleting", PendingDelete},
	{"expiring", Redemption},
	{"inactive", Available},
	{"active", Registered},
	{"reserved", Reserved},
	{"disallowed", Reserved},
	{"claimed", Reserved},
	{"dpml", Reserved},
	{"invalid", Invalid},
	{"suffix", Invalid},
	{"tld", Invalid},
	{"zone", Invalid},
}

// domainrKnown are the flags Domainr documents that decide nothing; any
// other flag is kept in Statuses but reported in Error when nothing decides.
var domainrKnown = map[string]bool{
	"unknown": true, "undelegated": true, "pending": true, "parked": true,
	"marketed": true, "priced": true, "transferable": true, "premium": true,
}

// FromDomainr maps a Domainr or Fastly status string (space-separated flags).
//
// An empty status, or one of only "unknown"/"undelegated"/annotations, is
// Unknown. The caller handles a body with "errors" (FromError).
func (r Rules) FromDomainr(domain, status string, src Source, asOf time.Time) Lifecycle {
	asOf = asOf.UTC()
	flags := strings.Fields(strings.ToLower(status))
	l := Lifecycle{
		Domain:    domain,
		State:     Unknown,
		Statuses:  append([]string{}, strings.Fields(status)...),
		Source:    src,
		CheckedAt: asOf,
		AsOf:      asOf,
	}
	has := make(map[string]bool, len(flags))
	for _, f := range flags {
		has[f] = true
	}
	for _, rule := range domainrRules {
		if has[rule.flag] {
			l.State = rule.state
			break
		}
	}
	if has["undelegated"] {
		l.Delegated = new(false)
	}
	if l.State == Unknown {
		var odd []string
		for _, f := range flags {
			if !domainrKnown[f] {
				odd = append(odd, f)
			}
		}
		switch {
		case len(flags) == 0:
			l.Error = fmt.Sprintf("%s: empty status", src)
		case len(odd) > 0:
			l.Error = fmt.Sprintf("%s: unrecognized status %q", src, strings.Join(odd, " "))
		}
	}
	return l
}

// Registry status classes shared by RDAP ("redemption period") and WHOIS/EPP
// ("redemptionPeriod"): both normalize to the same key (normStatus).
type regFlag uint8

const (
	flagRedemption    regFlag = 1 << iota // redemption period, pending restore
	flagPendingDelete                     // pending delete
	flagAutoRenew                         // auto renew period
	flagHold                              // client hold, server hold
)

var registryStatuses = map[string]regFlag{
	"redemptionperiod": flagRedemption,
	"pendingrestore":   flagRedemption,
	"pendingdelete":    flagPendingDelete,
	"autorenewperiod":  flagAutoRenew,
	"clienthold":       flagHold,
	"serverhold":       flagHold,
}

// normStatus reduces a registry status to a comparison key: RDAP "client
// hold", EPP "clientHold" and WHOIS "clientHold https://icann.org/epp#clientHold"
// (or "(https://…)") all become "clienthold".
func normStatus(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if i := strings.Index(s, "http://"); i >= 0 {
		s = s[:i]
	}
	if i := strings.Index(s, "https://"); i >= 0 {
		s = s[:i]
	}
	var b strings.Builder
	for _, c := range s {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
		}
	}
	return b.String()
}

func registryFlags(statuses []string) regFlag {
	var f regFlag
	for _, s := range statuses {
		f |= registryStatuses[normStatus(s)]
	}
	return f
}

// registryState applies the RDAP/WHOIS rules that follow "not found", in
// order, then the watch window. A hold with the expiry passed is grace, but
// so is any passed expiry; the hold only matters with it.
func (r Rules) registryState(f regFlag, expires *time.Time, asOf time.Time) State {
	expired := expires != nil && expires.Before(asOf)
	switch {
	case f&flagRedemption != 0:
		return Redemption
	case f&flagPendingDelete != 0:
		return PendingDelete
	case f&flagAutoRenew != 0, expired, f&flagHold != 0 && expired:
		return Grace
	}
	return r.watch(expires, asOf)
}

// watch is the rule applied last: registered and expiring within the window.
func (r Rules) watch(expires *time.Time, asOf time.Time) State {
	if expires != nil && !expires.Before(asOf) && !expires.After(asOf.Add(r.WatchWindow)) {
		return Expiring
	}
	return Registered
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// FromRDAP maps an RDAP answer. HTTPStatus 0 counts as 200; a status other
// than 200 or 404 is Unknown (the provider normally returns an error first).
func (r Rules) FromRDAP(a RDAPAnswer, asOf time.Time) Lifecycle {
	asOf = asOf.UTC()
	l := Lifecycle{
		Domain:    a.Domain,
		State:     Unknown,
		Statuses:  append([]string{}, a.Statuses...),
		Source:    SourceRDAP,
		CheckedAt: asOf,
		AsOf:      asOf,
	}
	switch a.HTTPStatus {
	case 404:
		l.State = Available
		return l
	case 0, 200:
	default:
		l.Error = fmt.Sprintf("rdap %s: HTTP status %d", a.Domain, a.HTTPStatus)
		return l
	}
	for _, e := range a.Events {
		if e.Date.IsZero() {
			continue
		}
		d := e.Date.UTC()
		switch normStatus(e.Action) {
		case "registration", "reregistration", "reinstantiation":
			if l.RegisteredAt == nil || d.After(*l.RegisteredAt) {
				l.RegisteredAt = &d
			}
		case "expiration":
			l.ExpiresAt = &d
		case "lastchanged":
			l.LastChanged = &d
		}
	}
	l.State = r.registryState(registryFlags(a.Statuses), l.ExpiresAt, asOf)
	return l
}

// FromWHOIS maps a WHOIS answer: not found, then the registry statuses and
// expiry, then reserved, then the watch window.
func (r Rules) FromWHOIS(a WHOISAnswer, asOf time.Time) Lifecycle {
	asOf = asOf.UTC()
	l := Lifecycle{
		Domain:       a.Domain,
		State:        Unknown,
		Statuses:     append([]string{}, a.Statuses...),
		RegisteredAt: utcPtr(a.CreatedAt),
		ExpiresAt:    utcPtr(a.ExpiresAt),
		LastChanged:  utcPtr(a.UpdatedAt),
		Source:       SourceWHOIS,
		CheckedAt:    asOf,
		AsOf:         asOf,
	}
	if a.NotFound {
		l.State = Available
		l.RegisteredAt, l.ExpiresAt, l.LastChanged = nil, nil, nil
		return l
	}
	f := registryFlags(a.Statuses)
	expired := l.ExpiresAt != nil && l.ExpiresAt.Before(asOf)
	if a.Reserved && f&(flagRedemption|flagPendingDelete|flagAutoRenew) == 0 && !expired {
		l.State = Reserved
		return l
	}
	l.State = r.registryState(f, l.ExpiresAt, asOf)
	return l
}

// FromError is the Unknown lifecycle for a failed lookup.
func FromError(domain string, src Source, err error, asOf time.Time) Lifecycle {
	if err == nil {
		err = errors.New("lookup failed without an error")
	}
	asOf = asOf.UTC()
	return Lifecycle{Domain: domain, State: Unknown, Statuses: []string{}, Source: src, CheckedAt: asOf, AsOf: asOf, Error: err.Error()}
}
