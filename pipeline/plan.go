package pipeline

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/lapse-dev/lapse/cache"
	"github.com/lapse-dev/lapse/internal/atomicfile"
	"github.com/lapse-dev/lapse/internal/duck"
	"github.com/lapse-dev/lapse/lifecycle"
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
	RiskExpiry       // expiry near or passed, expiring or grace
	RiskDecisive     // a decisive state (awaiting confirmation first)
	RiskRest         // everything else that is due
)

var riskNames = []string{"reverified", "never_checked", "expiry", "decisive", "rest"}

// Plan is tonight's lookup plan (DATA/observations/date=D/plan.json).
type Plan struct {
	Date string `json:"date"`
	// AsOf is the clock when the plan was made; a planned domain whose cache
	// entry was checked at or after it was looked up tonight (resume).
	AsOf time.Time `json:"as_of"`
	// VerifiedDomains is the number of distinct registrable domains of
	// verified addresses in tonight's snapshot.
	VerifiedDomains int `json:"domains"`
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
}

// PlanOptions configure the plan stage.
type PlanOptions struct {
	Date         string
	SnapshotPath string
	Cache        DomainCache
	Now          time.Time
	// Budget caps tonight's lookups; 0 means no cap.
	Budget int
	// WatchWindow: an expiry within it is "near".
	WatchWindow time.Duration
	// CheckAll plans every domain every night, ignoring the cache schedule
	// (the pypi comparison run: PyPI asks Domainr about every domain).
	CheckAll bool
	// Force domains go first tonight whether due or not (the domains of
	// addresses re-verified by their owners since an applied changeset).
	Force []string
	// States is the cache's states copy (night.Dir.StatesCopy), current
	// (resolve owns it: CurrentStates; the plan only reads it). When set,
	// the plan finds the due domains with DuckDB from it, decoding only
	// their cache entries; otherwise it reads the entry of every domain of
	// the snapshot from the cache.
	States string
}

// candidate is one due domain and what ordering needs of it.
type candidate struct {
	domain string
	class  int
	next   time.Time // when it became due; zero for never checked
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
	var domains []string
	var err error
	p.VerifiedDomains, domains, err = snapshotDomains(ctx, o.SnapshotPath, states, o.Now)
	if err != nil {
		return p, err
	}
	entries, err := lookupEntries(ctx, o.Cache, domains)
	if err != nil {
		return p, err
	}
	p.Fresh = p.VerifiedDomains - len(domains)
	var cs []candidate
	for i, d := range domains {
		e, found := entries[i], entries[i].Domain != ""
		if found && !o.CheckAll && !o.Cache.Due(e, o.Now) {
			p.Fresh++
			continue
		}
		c := candidate{domain: d, class: riskClass(e, found, o.Now, o.WatchWindow)}
		if found {
			c.next = e.NextCheck
		}
		cs = append(cs, c)
	}
	if len(o.Force) > 0 {
		cs = forceFirst(cs, o.Force, &p)
	}
	orderCandidates(cs)
	p.Due = len(cs)
	for _, c := range cs {
		p.ByRisk[riskNames[c.class]]++
	}
	n := len(cs)
	if o.Budget > 0 && n > o.Budget {
		n = o.Budget
	}
	p.Lookups = make([]string, n)
	for i := range n {
		p.Lookups[i] = cs[i].domain
	}
	p.Deferred = len(cs) - n
	for _, c := range cs[n:min(len(cs), n+20)] {
		p.DeferredSample = append(p.DeferredSample, c.domain)
	}
	return p, nil
}

// forceFirst puts the forced domains in the reverified risk class, adding
// those that were not due (no longer counted fresh).
func forceFirst(cs []candidate, force []string, p *Plan) []candidate {
	want := make(map[string]bool, len(force))
	for _, d := range force {
		want[d] = true
	}
	for i := range cs {
		if want[cs[i].domain] {
			cs[i].class, cs[i].next = RiskReverified, time.Time{}
			delete(want, cs[i].domain)
		}
	}
	added := make([]string, 0, len(want))
	for d := range want {
		added = append(added, d)
	}
	slices.Sort(added)
	for _, d := range added {
		cs = append(cs, candidate{domain: d, class: RiskReverified})
		p.Fresh--
	}
	return cs
}

// statesReadError is an error reading the states copy: the runner writes
// the copy again from the cache (it is derived data) and plans again.
type statesReadError struct{ error }

func (e statesReadError) Unwrap() error { return e.error }

// snapshotDomains counts the distinct registrable domains of the
// snapshot's verified addresses (the domains a night plans for) and
// returns, sorted, those the states copy says may be due at now: not in
// the cache, or next check at or before now; every one of them when states
// is "". It is a superset of what cache.Due decides (next_check is stored
// truncated to the microsecond, never later), so the caller checks each
// with Due.
func snapshotDomains(ctx context.Context, snapshot, states string, now time.Time) (int, []string, error) {
	if _, err := os.Stat(snapshot); err != nil {
		return 0, nil, fmt.Errorf("snapshot: %w", err)
	}
	db, err := duck.OpenMemory()
	if err != nil {
		return 0, nil, err
	}
	defer db.Close()
	// One connection (OpenMemory's): the table of distinct domains lives in it.
	if _, err := db.ExecContext(ctx, `CREATE TEMP TABLE d AS SELECT DISTINCT domain FROM read_parquet(?) WHERE domain IS NOT NULL AND verified`, snapshot); err != nil {
		return 0, nil, fmt.Errorf("read domains of %s: %w", snapshot, err)
	}
	var total int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM d`).Scan(&total); err != nil {
		return 0, nil, fmt.Errorf("read domains of %s: %w", snapshot, err)
	}
	q, args, from := `SELECT domain FROM d`, []any(nil), snapshot
	if states != "" {
		q = `SELECT d.domain FROM d
		LEFT JOIN (SELECT domain, next_check FROM read_parquet(?)) s USING (domain)
		WHERE s.domain IS NULL OR s.next_check IS NULL OR epoch_us(s.next_check) <= ?`
		args, from = []any{states, now.UnixMicro()}, states
	}
	fail := func(err error) (int, []string, error) {
		if states == "" {
			return 0, nil, fmt.Errorf("read domains of %s: %w", snapshot, err)
		}
		return 0, nil, statesReadError{fmt.Errorf("due domains from %s: %w", from, err)}
	}
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return fail(err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	slices.Sort(out) // byte order, for GetMany's ordered walk
	return total, out, nil
}

// lookupEntries returns the cache entry of each of domains (sorted), the
// zero Entry where there is none. Decoding the entries is the plan's main
// cost on a warm night; the cache's batch read spreads it over the cores.
func lookupEntries(ctx context.Context, c DomainCache, domains []string) ([]cache.Entry, error) {
	es, err := c.GetMany(ctx, domains)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	return es, nil
}

// WritePlan writes the plan atomically.
func WritePlan(path string, p Plan) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o640)
}

// ReadPlan reads a plan written by WritePlan.
func ReadPlan(path string) (Plan, error) {
	var p Plan
	b, err := os.ReadFile(path)
	if err != nil {
		return p, fmt.Errorf("read plan: %w", err)
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("plan %s: %w", path, err)
	}
	return p, nil
}
