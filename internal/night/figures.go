package night

// A night's counts, at every level (the snapshot manifest's rows,
// classify's counts.json, the run manifest's Figures, the lifecycle
// database's metrics, a changeset's counts), give each meaning one Go name
// (their JSON names are older, and kept):
//
//   - Addresses: every address of the snapshot (its rows);
//   - Verified: the verified ones among them;
//   - Invalid: those without a registrable domain;
//   - Domains: the distinct registrable domains of the snapshot's
//     addresses;
//   - VerifiedDomains: the distinct registrable domains of its verified
//     addresses, what the plan plans for;
//   - FlaggedDomains: the distinct domains of a changeset's rows.

// Figures are the night's numbers: printed by `lapse demo`, written to
// metrics.prom and the manifest.
type Figures struct {
	Addresses       int64 `json:"addresses"`
	Verified        int64 `json:"verified"`
	Invalid         int64 `json:"invalid"`
	VerifiedDomains int   `json:"domains"`
	// Planned domains were due and fit the budget; Deferred were due and did
	// not (they go first tomorrow); Fresh were not due (cache hits).
	Planned  int `json:"planned"`
	Deferred int `json:"deferred"`
	Fresh    int `json:"fresh"`
	// Reverified counts addresses found verified again by their owners
	// tonight after an applied changeset un-verified them.
	Reverified int64 `json:"reverified,omitempty"`
	// Lookups counts provider requests by source and by "source/outcome"
	// (outcome is the state answered or "error").
	Lookups        map[string]int `json:"lookups"`
	LookupOutcomes map[string]int `json:"lookup_outcomes"`
	// LookedUp is the domains looked up tonight, over every run of the
	// night: a forced re-run keeps (and adds to) the earlier runs' lookups.
	LookedUp int `json:"looked_up"`
	// UnknownDomains is the distinct domains of tonight's snapshot whose
	// state is unknown (every source failed or could not tell), out of
	// Domains, the snapshot's distinct domains; UnknownAddresses
	// is the addresses decided unknown. Degraded says UnknownDomains is
	// over resolve.max_unknown_fraction of Domains.
	UnknownDomains   int64 `json:"unknown_domains"`
	Domains          int64 `json:"classified_domains"`
	UnknownAddresses int64 `json:"unknown_addresses"`
	Degraded         bool  `json:"degraded,omitempty"`
	// Flagged is the changeset's size (addresses to un-verify), by reason.
	Flagged         int64            `json:"flagged"`
	FlaggedByReason map[string]int64 `json:"flagged_by_reason"`
	Watch           int64            `json:"watch"`
	ChangesetStatus string           `json:"changeset_status"`
	BlockedReason   string           `json:"blocked_reason,omitempty"`
	// MailPath is the DNS stage's night (nil when the mail path is off).
	MailPath *MailPathFigures `json:"mail_path,omitempty"`
}

// MailPathFigures are the DNS stage's numbers (issue 12). Each domain
// looked up is also one "dns" lookup in Figures.Lookups.
type MailPathFigures struct {
	// Due address domains wanted their mail path looked up; LookedUp were
	// (over every run of the night); Deferred were over dns.budget_per_night.
	Due      int `json:"due"`
	LookedUp int `json:"looked_up"`
	Deferred int `json:"deferred"`
	// Queries is the DNS messages sent; Outcomes counts "mx/ok",
	// "ns/servfail", … over tonight's lookups.
	Queries  int            `json:"queries"`
	Outcomes map[string]int `json:"outcomes"`
	// Links and Dependencies: the links copy's links and its distinct
	// dependency domains (over every domain, not only tonight's).
	Links        int `json:"links"`
	Dependencies int `json:"dependencies"`
	// Unreachable: so many lookups in a row had no conclusive answer
	// that the rest were deferred (the resolver is down or broken).
	Unreachable bool `json:"unreachable,omitempty"`
}

// TotalLookups sums the lookups over providers.
func (f Figures) TotalLookups() int {
	n := 0
	for _, v := range f.Lookups {
		n += v
	}
	return n
}

// UnknownShare is the share of the snapshot's domains whose state is
// unknown tonight (0 when there are none).
func (f Figures) UnknownShare() float64 {
	if f.Domains <= 0 {
		return 0
	}
	return float64(f.UnknownDomains) / float64(f.Domains)
}
