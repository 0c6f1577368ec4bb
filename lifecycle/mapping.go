package lifecycle

import "time"

// NOTE: temporary signatures; the mapping rules land with the resolve issue.

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

// FromDomainr maps a Domainr or Fastly status string (space-separated flags).
func (r Rules) FromDomainr(domain, status string, src Source, asOf time.Time) Lifecycle {
	return Lifecycle{Domain: domain, State: Unknown, Source: src, AsOf: asOf}
}

// FromRDAP maps an RDAP answer.
func (r Rules) FromRDAP(a RDAPAnswer, asOf time.Time) Lifecycle {
	return Lifecycle{Domain: a.Domain, State: Unknown, Source: SourceRDAP, AsOf: asOf}
}

// FromWHOIS maps a WHOIS answer.
func (r Rules) FromWHOIS(a WHOISAnswer, asOf time.Time) Lifecycle {
	return Lifecycle{Domain: a.Domain, State: Unknown, Source: SourceWHOIS, AsOf: asOf}
}

// FromError is the Unknown lifecycle for a failed lookup.
func FromError(domain string, src Source, err error, asOf time.Time) Lifecycle {
	return Lifecycle{Domain: domain, State: Unknown, Source: src, AsOf: asOf, Error: err.Error()}
}
