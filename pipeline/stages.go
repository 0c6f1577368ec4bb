package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"

	"github.com/lapse-dev/lapse/cache"
	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sinks/changeset"
	"github.com/lapse-dev/lapse/sinks/lifecycledb"
	"github.com/lapse-dev/lapse/sources/status"
	"github.com/lapse-dev/lapse/sources/status/providers"
)

// The stages of a night, as the runner calls them (stageFunc): each takes
// its inputs and outputs from the night's paths, calls its stage and fills
// the night's figures.

// stageDNS looks up the mail path of the due address domains and makes
// the links copy current (issue 12); with the mail path off it removes
// the night's links, so classify reads none.
func stageDNS(ctx context.Context, n *nightRun) (int64, int64, error) {
	if !n.opts.MailPathOn() {
		n.manifest.Figures.MailPath = nil
		if err := os.Remove(n.paths.Links()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return 0, 0, fmt.Errorf("dns: %w", err)
		}
		return 0, 0, nil
	}
	// The cache opens beside the reads of the due walk, which need none
	// of it; the stage waits for it before it returns whatever happens
	// (the night closes it).
	opened := make(chan error, 1)
	go func() {
		_, err := n.env.Cache()
		opened <- err
	}()
	openCache := sync.OnceValues(func() (MailCache, error) {
		if err := <-opened; err != nil {
			return nil, err
		}
		return n.env.Cache()
	})
	defer openCache()
	if err := os.MkdirAll(n.paths.ObservationsDir(), 0o750); err != nil {
		return 0, 0, fmt.Errorf("dns: %w", err)
	}
	// An owner who verified an address again received its mail: the
	// domain's mail path is looked up afresh (it may have moved). The plan
	// of this run reuses the list.
	force, err := reverified(ctx, n)
	if err != nil {
		return 0, 0, err
	}
	n.reverified = &force
	cfg := n.opts.Config.DNS
	data := night.Dir(n.opts.Config.DataDir)
	// The states copy is current before the plan reads it; the DNS stage
	// reads only its decisive and re-registered domains, so the copy
	// as last written serves.
	r, err := MailPath(ctx, MailPathOptions{
		Snapshot: n.paths.Snapshot(), SnapshotDomains: n.paths.SnapshotDomains(), SnapshotManifest: n.paths.SnapshotManifest(), LinksCopy: data.LinksCopy(), Schedule: data.MailSchedule(), StatesCopy: data.StatesCopy(),
		NightLinks: n.paths.Links(), NightDNS: n.paths.DNS(), Journal: n.paths.DNSJournal(), openCache: openCache, Resolver: n.env.Resolver, Force: force,
		Every: cfg.Every.Std(), Budget: cfg.BudgetPerNight, Concurrency: cfg.Concurrency, Now: n.opts.Now(), Log: n.log,
		keep: &n.index,
	})
	if err != nil {
		return 0, 0, err
	}
	n.mailDeps = r.DependencyDomains
	if _, err := n.env.db.AppendMailLinks(ctx, n.opts.Date, n.paths.DNS()); err != nil {
		return 0, 0, err
	}
	n.manifest.Figures.MailPath = &night.MailPathFigures{
		Due: r.Due, LookedUp: r.LookedUp, Deferred: r.Deferred, Queries: r.Queries, Outcomes: r.Outcomes,
		Links: r.Links, Dependencies: r.Dependencies, Unreachable: r.Unreachable,
	}
	switch {
	case r.Unreachable:
		n.log.Error("dns: the resolver gave no conclusive answer to many lookups in a row: the rest of tonight's mail paths wait for tomorrow (check [dns] servers)",
			"servers", cfg.Servers, "looked_up", r.LookedUp, "deferred", r.Deferred)
	case r.Deferred > 0:
		n.log.Warn("dns budget reached: mail paths deferred to tomorrow", "deferred", r.Deferred, "budget", cfg.BudgetPerNight)
	}
	n.log.Info("mail path", "due", r.Due, "looked_up", r.LookedUp, "resumed", r.Resumed, "queries", r.Queries, "links", r.Links, "dependencies", r.Dependencies)
	return int64(r.Due), int64(r.LookedUp), nil
}

func stagePlan(ctx context.Context, n *nightRun) (int64, int64, error) {
	c, err := n.env.Cache()
	if err != nil {
		return 0, 0, err
	}
	budget := providers.NightBudget(n.opts.Config, n.env.deps())
	var force []string
	if n.reverified != nil {
		force = slices.Clone(*n.reverified)
	} else if force, err = reverified(ctx, n); err != nil {
		return 0, 0, err
	}
	if links := mailLinks(n); links != "" && len(force) > 0 {
		// The dependencies of a re-verified address's domain too: a
		// mail-path state older than the re-verification is stale.
		deps, err := mailDependenciesOf(ctx, links, force)
		if err != nil {
			return 0, 0, fmt.Errorf("plan: %w", err)
		}
		force = append(force, deps...)
	}
	var refresh *RefreshOptions
	if order, err := providers.Order(n.opts.Config, n.env.deps()); err == nil && !n.opts.CheckAll {
		refresh = refreshOptions(n.opts.Config, order)
	}
	p, err := planOverStates(ctx, PlanOptions{
		Date: n.opts.Date, SnapshotPath: n.paths.Snapshot(), SnapshotDomains: n.paths.SnapshotDomains(), SnapshotManifest: n.paths.SnapshotManifest(), Cache: c, Now: n.opts.Now(), Force: force,
		Budget: budget, Total: n.opts.Config.Resolve.Budget, Refresh: refresh, WatchWindow: n.opts.Config.Policy.WatchWindow.Std(),
		CheckAll: n.opts.CheckAll, States: night.Dir(n.opts.Config.DataDir).StatesCopy(),
		Links: mailLinks(n), Schedule: night.Dir(n.opts.Config.DataDir).MailSchedule(), KnownDependencies: n.mailDeps,
		index: n.index,
	})
	n.index = nil // the plan was its last reader
	if err != nil {
		return 0, 0, err
	}
	if r := p.Refresh; r != nil && r.NoDates > 0 {
		// A first night over a new data set: what the backlog of domains
		// without dates costs at the configured budget and rate.
		log := n.log.Info
		if r.BacklogNights > 1 {
			log = n.log.Warn
		}
		log("domains without registration and expiry dates (no RDAP/WHOIS answer yet)",
			"no_dates", r.NoDates, "asked_tonight", r.NoDates-r.NoDatesLeft, "left", r.NoDatesLeft,
			"backlog_nights", r.BacklogNights, "backlog_hours", r.BacklogHours, "refresh_budget", r.Budget)
	}
	// A new plan means a new resolve. The journal keeps the lookups of an
	// earlier one (a finished night run again with --force): they are
	// tonight's observations too; a mark tells the new resolve's apart.
	if err := StartJournalSegment(n.paths.Journal(), p); err != nil {
		return 0, 0, fmt.Errorf("plan: %w", err)
	}
	if err := WritePlan(n.paths.Plan(), p); err != nil {
		return 0, 0, err
	}
	f := &n.manifest.Figures
	f.VerifiedDomains, f.Planned, f.Deferred, f.Fresh = p.VerifiedDomains, len(p.Lookups), p.Deferred, p.Fresh
	if p.Dependencies > 0 {
		n.log.Info("mail path dependency domains", "dependencies", p.Dependencies, "due", p.DependenciesDue)
	}
	if p.Deferred > 0 {
		n.log.Warn("lookup budget reached: due domains deferred to tomorrow", "deferred", p.Deferred, "budget", p.Budget, "first", p.DeferredSample)
	}
	return int64(p.VerifiedDomains), int64(len(p.Lookups)), nil
}

func stageResolve(ctx context.Context, n *nightRun) (int64, int64, error) {
	p, err := ReadPlan(n.paths.Plan())
	if err != nil {
		return 0, 0, err
	}
	c, err := n.env.Cache()
	if err != nil {
		return 0, 0, err
	}
	var prov status.Provider
	if len(p.Lookups) > 0 {
		// Built only when there is something to ask: a warm night needs
		// no provider (nor its bootstrap files).
		if prov, err = n.env.Provider(); err != nil {
			return 0, 0, err
		}
	}
	conc := n.opts.Config.Resolve.Concurrency
	r, err := Resolve(ctx, ResolveOptions{
		Plan: p, Provider: prov, Cache: c, Concurrency: conc, Progress: n.opts.Progress,
		Log: n.log, Journal: n.paths.Journal(), StopAfter: n.opts.StopAfterLookups, Now: n.opts.Now,
	})
	if err != nil {
		return int64(len(p.Lookups)), 0, err
	}
	if err := allFailed(r.Answers); err != nil {
		return int64(len(p.Lookups)), 0, err
	}
	// Tonight's lookups: the answers as given, with the schedule the cache
	// set for them; those of an earlier run of the night (before a forced
	// re-run's plan) that this plan did not ask again are kept.
	all := r.NightAnswers()
	rows := make([]cache.StateRow, 0, len(all))
	for _, lc := range all {
		row := cache.RowFromEntry(r.Entries[lc.Domain])
		row.Lifecycle = lc
		rows = append(rows, row)
	}
	if err := cache.WriteStates(n.paths.Domains(), rows); err != nil {
		return 0, 0, err
	}
	// Tonight's states: the cache's states copy, rewritten when tonight's
	// lookups (or anything since the last copy) changed the cache.
	sc, err := CurrentStates(ctx, c, night.Dir(n.opts.Config.DataDir).StatesCopy())
	if err != nil {
		return 0, 0, err
	}
	if err := linkStates(sc.Path, n.paths.States()); err != nil {
		return 0, 0, err
	}
	n.log.Info("domain states", "rows", sc.Rows, "reused", sc.Reused)
	if _, err := n.env.db.AppendObservations(ctx, n.opts.Date, n.paths.Domains()); err != nil {
		return 0, 0, err
	}
	f := &n.manifest.Figures
	f.Lookups, f.LookupOutcomes = r.Lookups()
	if mp := f.MailPath; mp != nil && mp.LookedUp > 0 {
		// A domain's mail path is one lookup, of source "dns".
		f.Lookups["dns"] = mp.LookedUp
		for k, v := range mp.Outcomes {
			f.LookupOutcomes["dns/"+k] = v
		}
	}
	f.LookedUp = len(rows)
	if r.Earlier > 0 {
		n.log.Info("kept the lookups of an earlier run of the night", "earlier", r.Earlier, "asked_now", len(r.Answers))
	}
	return int64(len(p.Lookups)), int64(len(rows)), nil
}

func stageClassify(ctx context.Context, n *nightRun) (int64, int64, error) {
	// DuckDB's join is the night's hungriest step: hand back first what the
	// snapshot's streaming left on the Go heap, so the two never add up.
	debug.FreeOSMemory()
	c := n.opts.Config.Policy
	pol := lifecycle.NewPolicy(c.Name, c.WatchWindow.Std(), c.ConfirmNights)
	r, err := Classify(ctx, ClassifyOptionsFor(n.paths, pol, n.opts.Now()))
	if err != nil {
		return 0, 0, err
	}
	n.classified = &r
	f := &n.manifest.Figures
	f.Addresses, f.Verified, f.Invalid = r.Addresses, r.Verified, r.Invalid
	f.Flagged, f.Watch = r.Flagged, r.Watch
	f.UnknownDomains, f.Domains, f.UnknownAddresses = r.UnknownDomains, r.Domains, r.ByAction[lifecycle.ActionUnknown]
	f.FlaggedByReason = map[string]int64{}
	for k, v := range r.FlaggedByReason {
		f.FlaggedByReason[string(k)] = v
	}
	return r.Addresses, r.Addresses, nil
}

func stageSnapshot(ctx context.Context, n *nightRun) (int64, int64, error) {
	o := SnapshotOptionsFromConfig(n.opts.Config, n.opts.Date)
	o.Version, o.Log = n.opts.Version, n.log
	r, err := Snapshot(ctx, o)
	if err != nil {
		return 0, 0, err
	}
	f := &n.manifest.Figures
	rows := r.Manifest.Rows
	f.Addresses, f.Verified, f.Invalid = rows.Addresses, rows.Verified, rows.Invalid
	in := rows.Addresses + rows.Malformed + rows.SkippedUnverified
	// An empty or partial export must not pass for a night: it would
	// publish nothing and restart the history of the addresses it lacks.
	if err := checkShrink(ctx, n, rows.Verified); err != nil {
		return in, rows.Addresses, err
	}
	return in, rows.Addresses, nil
}

func stagePublish(ctx context.Context, n *nightRun) (int64, int64, error) {
	f := &n.manifest.Figures
	maxUnknown := n.opts.Config.Resolve.MaxUnknownFraction
	f.Degraded = maxUnknown > 0 && f.UnknownShare() > maxUnknown
	r, err := Publish(ctx, PublishOptions{
		Paths: n.paths, Policy: n.opts.Config.Policy.Name,
		Brake: n.opts.Config.Brake, DB: n.env.db, Now: n.opts.Now, Counts: n.classified,
		Unknowns: changeset.Unknowns{
			Domains: f.UnknownDomains, OfDomains: f.Domains, Addresses: f.UnknownAddresses,
			MaxFraction: maxUnknown, Degraded: f.Degraded,
		},
		Metrics: lifecycledb.Metrics{CacheHits: int64(f.Fresh), Extra: []lifecycledb.Metric{
			{Name: "domains_planned", Value: float64(f.Planned)},
			{Name: "domains_deferred", Value: float64(f.Deferred)},
		}},
	})
	if err != nil && !errors.Is(err, ErrBlocked) {
		return 0, 0, err
	}
	f.ChangesetStatus = r.Manifest.Status
	f.BlockedReason = strings.Join(r.Manifest.BlockReasons, "; ")
	return f.Addresses, f.Flagged, err
}

// allFailed fails a night whose every lookup failed: the providers are
// unreachable or refuse us, and publishing a night of "unknown" would only
// hide it. The failed answers are asked again when the night is re-run.
func allFailed(answers []lifecycle.Lifecycle) error {
	if len(answers) == 0 {
		return nil
	}
	for _, lc := range answers {
		if lc.State != lifecycle.Unknown || lc.Error == "" {
			return nil
		}
	}
	return fmt.Errorf("all %d lookups failed, first %s: %s (check the providers' settings and the network, then run the night again)",
		len(answers), answers[0].Domain, answers[0].Error)
}

// planOverStates makes the night's plan from the states copy at o.States,
// made current first. Resolve owns the copy (CurrentStates, here before
// the plan and again after its lookups); the plan only reads it. A copy
// that was current but cannot be read (damaged on disk) is derived data:
// it is written again from the cache, once, and the plan made again.
func planOverStates(ctx context.Context, o PlanOptions) (Plan, error) {
	if o.States == "" || o.CheckAll {
		return MakePlan(ctx, o)
	}
	sc, err := CurrentStates(ctx, o.Cache, o.States)
	if err != nil {
		return Plan{}, err
	}
	p, err := MakePlan(ctx, o)
	var unreadable statesReadError
	if errors.As(err, &unreadable) && sc.Reused && ctx.Err() == nil {
		if _, err := rewriteStates(ctx, o.Cache, o.States); err != nil {
			return p, err
		}
		p, err = MakePlan(ctx, o)
	}
	return p, err
}

// mailLinks is the night's links file when the mail path is on, else "".
func mailLinks(n *nightRun) string {
	if !n.opts.MailPathOn() {
		return ""
	}
	return n.paths.Links()
}
