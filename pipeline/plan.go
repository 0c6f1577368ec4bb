package pipeline

import (
	"cmp"
	"context"
	"math"
	"slices"
	"time"

	"github.com/lapse-dev/lapse/cache"
	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sources/status"
	"github.com/lapse-dev/lapse/sources/status/providers"
)

// DomainCache is what plan and resolve need from the domain cache
// (*cache.Cache).
type DomainCache interface {
	Get(ctx context.Context, domain string) (cache.Entry, bool, error)
	// GetMany reads the entries of many domains at once: the plan's read
	// of a whole night, walking the keys in order instead of one Get each.
	GetMany(ctx context.Context, domains []string) ([]cache.Entry, error)
	Record(ctx context.Context, lc lifecycle.Lifecycle) (cache.Entry, error)
	Due(e cache.Entry, now time.Time) bool
	StatesCache
}

// Risk classes, in the order the plan spends its budget on them.
const (
	// RiskReverified: an owner verified an address on the domain again
	// after an applied changeset un-verified it; it is looked up afresh
	// whatever the schedule says, so the address is never proposed again
	// on the stale answer that un-verified it.
	RiskReverified   = iota
	RiskNeverChecked // no cache entry: lapse knows nothing
	// RiskNoDates: a status-API-first chain's domain that RDAP/WHOIS never
	// answered for: no registration date (a name dropped and registered
	// again before lapse first saw it looks active forever) and no expiry
	// (the schedule is blind). Only with PlanOptions.Refresh.
	RiskNoDates
	RiskExpiry   // expiry near or passed, expiring or grace
	RiskDecisive // a decisive state (awaiting confirmation first)
	RiskRest     // everything else that is due
)

var riskNames = []string{"reverified", "never_checked", "no_dates", "expiry", "decisive", "rest"}

// Plan is tonight's lookup plan (DATA/observations/date=D/plan.json).
type Plan struct {
	Date string `json:"date"`
	// AsOf is the clock when the plan was made; a planned domain whose cache
	// entry was checked at or after it was looked up tonight (resume).
	AsOf time.Time `json:"as_of"`
	// VerifiedDomains is the number of distinct registrable domains of
	// verified addresses in tonight's snapshot.
	VerifiedDomains int `json:"domains"`
	// Dependencies is the mail path's dependency domains that are not
	// address domains (issue 12), candidates like them; DependenciesDue
	// of them were due. Fresh counts them too.
	Dependencies    int `json:"dependencies,omitempty"`
	DependenciesDue int `json:"dependencies_due,omitempty"`
	// Fresh domains had a cache entry that is not due (cache hits).
	Fresh int `json:"fresh"`
	// Due domains needed a lookup; Budget is the night's cap (0: none).
	Due    int `json:"due"`
	Budget int `json:"budget"`
	// ByRisk counts the due domains by risk class.
	ByRisk map[string]int `json:"by_risk"`
	// Lookups are tonight's domains, riskiest first.
	Lookups []string `json:"lookups"`
	// Deferred counts due domains over the budget: they stay due and, being
	// overdue tomorrow, go first in their risk class. DeferredSample names
	// the first of them.
	Deferred       int      `json:"deferred"`
	DeferredSample []string `json:"deferred_sample"`
	// Authoritative lists the planned domains (sorted) whose lookup asks
	// RDAP/WHOIS first, a status-API-first chain's authoritative refresh
	// (status.Want.Authoritative); Refresh says what the refresh cost.
	// Both are empty for any other chain.
	Authoritative []string     `json:"authoritative,omitempty"`
	Refresh       *RefreshPlan `json:"refresh,omitempty"`
}

// RefreshPlan is the authoritative refresh of a status-API-first chain in
// tonight's plan (issue 11): how many due domains want RDAP/WHOIS, how
// many the budget lets ask them, and the backlog of domains without dates.
type RefreshPlan struct {
	// EveryDays is resolve.authoritative_every in days; Budget the cap on
	// tonight's refreshes (0: none).
	EveryDays float64 `json:"every_days"`
	Budget    int     `json:"budget"`
	// Wanted due domains want RDAP/WHOIS tonight; Planned of them ask
	// them; Deferred are over the budget (looked up by the status API
	// alone when that lookup was due, else not at all): they stay due and
	// go first tomorrow in their risk class. RefreshOnly of the planned
	// were due for the refresh alone (their status lookup was not).
	Wanted      int `json:"wanted"`
	Planned     int `json:"planned"`
	Deferred    int `json:"deferred"`
	RefreshOnly int `json:"refresh_only"`
	// NoDates counts the snapshot's domains without an authoritative
	// answer before tonight (never checked included); NoDatesLeft those
	// the plan leaves without one; BacklogNights the nights NoDates take
	// at Budget, tonight included (1 without a budget); BacklogHours the
	// time they take at the first authoritative provider's rate (0 when it
	// has none; RDAP's rate is per server, so at most this).
	NoDates       int     `json:"no_dates"`
	NoDatesLeft   int     `json:"no_dates_left"`
	BacklogNights int     `json:"backlog_nights"`
	BacklogHours  float64 `json:"backlog_hours"`
}

// RefreshOptions configure a status-API-first chain's authoritative
// refresh in the plan.
type RefreshOptions struct {
	// Refresh is the schedule (resolve.authoritative_every, the watch
	// window).
	cache.Refresh
	// Budget caps tonight's refreshes: the first authoritative provider's
	// budget_per_night and resolve.budget (0: none).
	Budget int
	// Rate is the first authoritative provider's rate_per_second, for the
	// backlog estimate (0: none).
	Rate float64
}

// PlanOptions configure the plan stage.
type PlanOptions struct {
	Date         string
	SnapshotPath string
	// SnapshotDomains and SnapshotManifest are the snapshot's domain list
	// and manifest (night.Paths): the list, when the manifest vouches for
	// it, is read instead of every address; "" reads the snapshot.
	SnapshotDomains, SnapshotManifest string
	Cache                             DomainCache
	Now                               time.Time
	// Budget caps tonight's lookups; 0 means no cap. With Refresh it caps
	// the lookups that start with the status API (it is its budget), and
	// Refresh.Budget those that start with RDAP/WHOIS.
	Budget int
	// Total caps every lookup of the night, with Refresh (resolve.budget;
	// without Refresh, Budget holds it); 0 means no cap.
	Total int
	// Refresh, when set, plans a status-API-first chain's authoritative
	// refresh (issue 11): a domain whose refresh is due is planned even
	// when its status lookup is not, and the lookups that want RDAP/WHOIS
	// (cache.Refresh.Wanted) are marked in Plan.Authoritative, up to
	// Refresh.Budget.
	Refresh *RefreshOptions
	// WatchWindow: an expiry within it is "near".
	WatchWindow time.Duration
	// CheckAll plans every domain every night, ignoring the cache schedule
	// (the pypi comparison run: PyPI asks Domainr about every domain).
	CheckAll bool
	// Force domains go first tonight whether due or not (the domains of
	// addresses re-verified by their owners since an applied changeset).
	Force []string
	// Links is the night's links file (night.Paths.Links; "" with the
	// mail path off): the dependency domains of the snapshot's domains
	// are planned like them. Schedule is its fold per domain
	// (night.Dir.MailSchedule; "" folds it in memory).
	Links, Schedule string
	// KnownDependencies, when not nil, are the dependency domains the dns
	// stage found in this run from the same links (MailPathResult's): the
	// plan takes them instead of joining the schedule again.
	KnownDependencies []string
	// index, when current, is tonight's domains and the states copy as
	// the dns stage of the same run read them.
	index *nightIndex
	// States is the cache's states copy (night.Dir.StatesCopy), current
	// (resolve owns it: CurrentStates; the plan only reads it). When set,
	// the plan finds the due domains with DuckDB from it, decoding only
	// their cache entries; otherwise it reads the entry of every domain of
	// the snapshot from the cache.
	States string
}

// refreshOptions is the authoritative refresh of the chain named by order
// (providers.Order), nil unless it asks a status API before RDAP/WHOIS:
// the schedule (resolve.authoritative_every, policy.watch_window), the
// budget of its first authoritative provider (with resolve.budget) and
// that provider's rate.
func refreshOptions(c config.Config, order []string) *RefreshOptions {
	srcs := make([]lifecycle.Source, len(order))
	for i, n := range order {
		srcs[i] = lifecycle.Source(n)
	}
	if !status.StatusFirst(srcs) {
		return nil
	}
	r := &RefreshOptions{Refresh: cache.Refresh{Every: c.Resolve.AuthoritativeEvery.Std(), Window: c.Policy.WatchWindow.Std()}}
	for _, s := range srcs {
		if !s.Authoritative() {
			continue
		}
		r.Budget = providers.BudgetPerNight(c, string(s))
		if b := c.Resolve.Budget; b > 0 && (r.Budget == 0 || b < r.Budget) {
			r.Budget = b
		}
		r.Rate = c.Providers.RDAP.RatePerSecond
		if s == lifecycle.SourceWHOIS {
			r.Rate = c.Providers.WHOIS.RatePerSecond
		}
		break
	}
	return r
}

// candidate is one due domain and what ordering needs of it.
type candidate struct {
	domain string
	class  int
	next   time.Time // when it became due; zero for never checked
	// statusDue: the cache's schedule (or a force) wants a lookup;
	// otherwise only the authoritative refresh is due. auth: the lookup
	// wants RDAP/WHOIS (with PlanOptions.Refresh).
	statusDue, auth bool
	noDates         bool // no authoritative answer yet
}

// riskClass places a cache entry in its risk class.
func riskClass(e cache.Entry, found bool, now time.Time, window time.Duration) int {
	if !found {
		return RiskNeverChecked
	}
	lc := e.Lifecycle
	switch {
	case lc.State == lifecycle.Expiring || lc.State == lifecycle.Grace:
		return RiskExpiry
	case lc.ExpiresAt != nil && lc.State.RegisteredFamily() && !lc.ExpiresAt.After(now.Add(window)):
		return RiskExpiry
	case lc.State.Decisive():
		return RiskDecisive
	}
	return RiskRest
}

// orderCandidates sorts by risk class, then most overdue first, then name
// (so the order is the same on every machine).
func orderCandidates(cs []candidate) {
	slices.SortFunc(cs, func(a, b candidate) int {
		if c := cmp.Compare(a.class, b.class); c != 0 {
			return c
		}
		if c := a.next.Compare(b.next); c != 0 {
			return c
		}
		return cmp.Compare(a.domain, b.domain)
	})
}

// MakePlan computes tonight's plan from the snapshot and the cache.
func MakePlan(ctx context.Context, o PlanOptions) (Plan, error) {
	p := Plan{Date: o.Date, AsOf: o.Now.UTC(), Budget: o.Budget, ByRisk: map[string]int{}}
	// The candidates: every domain, or those the copy says may be due.
	states := o.States
	if o.CheckAll {
		states = ""
	}
	var refresh *cache.Refresh
	if o.Refresh != nil {
		refresh = &o.Refresh.Refresh
	}
	sd, err := snapshotDomains(ctx, snapshotDomainsSQL(o.SnapshotPath, o.SnapshotDomains, o.SnapshotManifest), states, depsSource{o.Links, o.Schedule, o.KnownDependencies}, o.Now, refresh, o.index)
	if err != nil {
		return p, err
	}
	domains := sd.maybeDue
	p.VerifiedDomains, p.Dependencies = sd.total, sd.deps
	entries, err := lookupEntries(ctx, o.Cache, domains)
	if err != nil {
		return p, err
	}
	p.Fresh = p.VerifiedDomains + p.Dependencies - len(domains)
	var cs []candidate
	noDates := sd.noDates
	for i, d := range domains {
		e, found := entries[i], entries[i].Domain != ""
		c := candidate{domain: d, statusDue: !found || o.CheckAll || o.Cache.Due(e, o.Now)}
		if refresh != nil {
			c.auth = refresh.Wanted(e, found, o.Now)
			c.noDates = !found || e.AuthCheckedAt == nil
			if states == "" && c.noDates {
				noDates++ // read from the entries: every domain is here
			}
		}
		if !c.statusDue && !(refresh != nil && refresh.Due(e, found, o.Now)) {
			p.Fresh++
			continue
		}
		c.class = riskClass(e, found, o.Now, o.WatchWindow)
		if c.noDates && found && c.class > RiskNoDates {
			c.class = RiskNoDates
		}
		if found {
			c.next = e.NextCheck
			if !c.statusDue {
				c.next = refresh.DueAt(e)
			}
		}
		cs = append(cs, c)
	}
	if len(o.Force) > 0 {
		cs = forceFirst(cs, o.Force, &p, refresh != nil)
	}
	orderCandidates(cs)
	p.Due = len(cs)
	for _, c := range cs {
		p.ByRisk[riskNames[c.class]]++
		if sd.depSet[c.domain] {
			p.DependenciesDue++
		}
	}
	datesAsked := spend(&p, cs, o)
	if o.Refresh != nil {
		rp := p.Refresh
		rp.EveryDays = (o.Refresh.MaxAge() + cache.NightSlack).Hours() / 24
		rp.Budget, rp.NoDates = o.Refresh.Budget, noDates
		rp.NoDatesLeft = max(0, noDates-datesAsked)
		if noDates > 0 {
			rp.BacklogNights = 1
			if b := o.Refresh.Budget; b > 0 {
				rp.BacklogNights = (noDates + b - 1) / b
			}
			if o.Refresh.Rate > 0 {
				rp.BacklogHours = math.Round(float64(noDates)/o.Refresh.Rate/3600*10) / 10
			}
		}
	}
	return p, nil
}

// spend walks the ordered candidates and plans each the budgets allow:
// a lookup that wants RDAP/WHOIS asks them while the refresh budget lasts,
// else the status API alone when its lookup was due (the refresh is
// deferred), else nothing tonight; other lookups spend the status budget.
// Every lookup counts against Total. What does not fit is deferred. It
// returns how many domains without an authoritative answer ask RDAP/WHOIS.
func spend(p *Plan, cs []candidate, o PlanOptions) (datesAsked int) {
	var rp *RefreshPlan
	if o.Refresh != nil {
		rp = &RefreshPlan{}
		p.Refresh = rp
	}
	left := func(cap, used int) bool { return cap <= 0 || used < cap }
	statusUsed, authUsed := 0, 0
	p.Lookups = make([]string, 0, len(cs))
	for _, c := range cs {
		if rp != nil && c.auth {
			rp.Wanted++
		}
		planned, auth := false, false
		switch {
		case rp != nil && !left(o.Total, len(p.Lookups)):
		case rp != nil && c.auth && left(o.Refresh.Budget, authUsed):
			planned, auth = true, true
		case c.statusDue && left(o.Budget, statusUsed):
			planned = true
		}
		if rp != nil && c.auth && !auth {
			rp.Deferred++
		}
		if !planned {
			p.Deferred++
			if len(p.DeferredSample) < 20 {
				p.DeferredSample = append(p.DeferredSample, c.domain)
			}
			continue
		}
		p.Lookups = append(p.Lookups, c.domain)
		if !auth {
			statusUsed++
			continue
		}
		authUsed++
		p.Authoritative = append(p.Authoritative, c.domain)
		rp.Planned++
		if !c.statusDue {
			rp.RefreshOnly++
		}
		if c.noDates {
			datesAsked++
		}
	}
	slices.Sort(p.Authoritative)
	return datesAsked
}

// forceFirst puts the forced domains in the reverified risk class, adding
// those that were not due (no longer counted fresh). A forced lookup is a
// fresh one: with a refresh (auth) it asks RDAP/WHOIS.
func forceFirst(cs []candidate, force []string, p *Plan, auth bool) []candidate {
	want := make(map[string]bool, len(force))
	for _, d := range force {
		want[d] = true
	}
	for i := range cs {
		if want[cs[i].domain] {
			cs[i].class, cs[i].next, cs[i].statusDue = RiskReverified, time.Time{}, true
			cs[i].auth = cs[i].auth || auth
			delete(want, cs[i].domain)
		}
	}
	added := make([]string, 0, len(want))
	for d := range want {
		added = append(added, d)
	}
	slices.Sort(added)
	for _, d := range added {
		cs = append(cs, candidate{domain: d, class: RiskReverified, statusDue: true, auth: auth})
		p.Fresh--
	}
	return cs
}
