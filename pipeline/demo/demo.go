// Package demo runs lapse's nightly job night after night against the
// registry simulator, offline, and scores its verdicts against the
// simulator's ground truth. It is what `lapse demo` and `make demo` run.
//
// Each policy runs in its own data dir (DIR/default, DIR/pypi) against its
// own copy of the same seeded world, so the un-verifications one applies do
// not leak into the other. Every night: the world's clock moves to the
// night, its account table is exported as JSONL (as a registry's nightly
// export would be), the night runs exactly as `lapse run` does, and the
// changeset is applied to the world's account table (the apply step, played
// by a simulated reviewer who approves every changeset, blocked ones
// included) and marked in the cache. A re-run with the same arguments
// replays the finished nights' changesets and resumes where it stopped.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lapse-dev/lapse/cache"
	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/atomicfile"
	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/pipeline"
	"github.com/lapse-dev/lapse/sim"
	lapply "github.com/lapse-dev/lapse/sinks/apply"
	"github.com/lapse-dev/lapse/sinks/changeset"
)

// The policies the demo compares.
const (
	PolicyDefault = "default" // corroborated policy, RDAP then WHOIS, cache schedule
	PolicyPyPI    = "pypi"    // PyPI's rule: Domainr for every domain every night
	// PolicyDomainrFirst is the corroborated policy over a Domainr, RDAP,
	// WHOIS chain with the cache schedule: the chain lapse builds whenever
	// a Domainr key is set, whose authoritative facts have their own
	// schedule (resolve.authoritative_every).
	PolicyDomainrFirst = "domainr-first"
)

// Policies are the policies a demo can run, in the order they print.
var Policies = []string{PolicyDefault, PolicyPyPI, PolicyDomainrFirst}

// DefaultPolicies are the policies a demo runs without --policies.
var DefaultPolicies = []string{PolicyDefault, PolicyPyPI}

// Options configure a demo.
type Options struct {
	Nights int
	Emails int
	Seed   uint64
	// Dir holds one data dir per policy and score.json.
	Dir   string
	Start time.Time
	// Policies to run, in order (default: default, pypi).
	Policies []string
	// Out receives the per-night table; nil discards it.
	Out io.Writer
	Log *slog.Logger
	// Concurrency of the resolve stage (default 16).
	Concurrency int
	// NightHook, when set, is called after each night of each policy was
	// run and applied; an error stops the demo (tests interrupt it there).
	NightHook func(policy string, night int) error

	// tweak adjusts a night's runner options (tests interrupt a night).
	tweak func(policy string, night int, o *pipeline.Options)
	// dnsFaults are the simulator's DNS faults (tests).
	dnsFaults sim.DNSFaults
}

// NightRow is one line of the demo's table.
type NightRow struct {
	Night      int    `json:"night"`
	Date       string `json:"date"`
	Addresses  int64  `json:"addresses"`
	Lookups    int    `json:"lookups"`
	Flagged    int64  `json:"flagged"`
	Cumulative int64  `json:"cumulative"`
	Status     string `json:"status"`
}

// policyRun is what one policy's nights produced.
type policyRun struct {
	name    string
	dir     string
	rows    []NightRow
	flagged map[int64]time.Time // email_id → first night in a changeset
	world   *sim.World
	lookups int
	// bySource counts the lookups by provider (the night's figures).
	bySource map[string]int
	blocked  int
	// reverified counts owners' re-verifications; loops the addresses
	// un-verified again while their owner (who re-verified) held the domain.
	reverified, loops int
	reverifiedIDs     map[int64]bool
}

// Run runs every policy's nights and writes DIR/score.json.
func Run(ctx context.Context, o Options) (Score, error) {
	if o.Nights < 1 {
		return nil, fmt.Errorf("demo: --nights %d: want at least 1", o.Nights)
	}
	if o.Emails < 1 {
		return nil, fmt.Errorf("demo: --emails %d: want at least 1", o.Emails)
	}
	if o.Dir == "" {
		return nil, errors.New("demo: --dir is empty")
	}
	if len(o.Policies) == 0 {
		o.Policies = DefaultPolicies
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Concurrency < 1 {
		o.Concurrency = 16
	}
	o.Start = o.Start.UTC().Truncate(24 * time.Hour)
	score := Score{}
	for _, p := range o.Policies {
		if !slices.Contains(Policies, p) {
			return nil, fmt.Errorf("demo: policy %q: want some of %s", p, strings.Join(Policies, ", "))
		}
	}
	fmt.Fprintf(o.Out, "simulated world: seed %d, %d emails, %d nights from %s; one data dir per policy under %s\n",
		o.Seed, o.Emails, o.Nights, o.Start.Format(time.DateOnly), o.Dir)
	fmt.Fprintf(o.Out, "%-*s  %5s  %-10s  %9s  %7s  %7s  %10s  %s\n", nameWidth(o.Policies), "policy", "night", "date", "addresses", "lookups", "flagged", "cumulative", "changeset")
	// The policies run side by side: each night has stretches on one core
	// (the simulator's answers, single-threaded writers) the other fills.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := &lockedWriter{w: o.Out}
	o.Out = out
	runs := make([]*policyRun, len(o.Policies))
	errs := make([]error, len(o.Policies))
	var wg sync.WaitGroup
	for i, p := range o.Policies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runs[i], errs[i] = runPolicy(ctx, o, p)
			if errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	// The first error that is not the others' cancellation says why.
	var first error
	for _, err := range errs {
		if err != nil && (first == nil || errors.Is(first, context.Canceled) && !errors.Is(err, context.Canceled)) {
			first = err
		}
	}
	if first != nil {
		return nil, first
	}
	for i, p := range o.Policies {
		s, err := scorePolicy(ctx, o, runs[i])
		if err != nil {
			return nil, err
		}
		score[p] = s
	}
	b, err := json.MarshalIndent(score, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(o.Dir, "score.json"), append(b, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	printScore(o.Out, o, score)
	return score, nil
}

// SimConfig is the lapse configuration of one policy's data dir: the
// simulator's providers, with politeness limits raised (the simulator is
// on loopback and answers thousands of requests a second).
func SimConfig(srv *sim.Servers, dir, policy string, concurrency int) (config.Config, error) {
	f, err := os.CreateTemp("", "lapse-demo-*.toml")
	if err != nil {
		return config.Config{}, fmt.Errorf("demo: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(srv.Config()); err != nil {
		f.Close()
		return config.Config{}, fmt.Errorf("demo: %w", err)
	}
	f.Close()
	c, err := config.Load(f.Name(), true, nil)
	if err != nil {
		return c, fmt.Errorf("demo: simulator config: %w", err)
	}
	c.DataDir = dir
	c.Resolve.Concurrency = concurrency
	for _, l := range []*config.Limits{&c.Providers.Domainr.Limits, &c.Providers.Fastly.Limits, &c.Providers.RDAP.Limits, &c.Providers.WHOIS.Limits} {
		l.RatePerSecond, l.Burst, l.Concurrency = 1e6, 1000, concurrency
	}
	switch policy {
	case PolicyPyPI:
		c.Policy.Name = "pypi"
		c.Providers.Chain = []string{"domainr"}
	case PolicyDomainrFirst:
		// Domainr's "active" carries no dates: RDAP/WHOIS are asked on
		// their own schedule (no answer yet, expiry near or passed, 90
		// days old, Domainr's flags changed).
		c.Policy.Name = "corroborated"
		c.Providers.Chain = []string{"domainr", "rdap", "whois"}
	default:
		// lapse's own chain: the registries' RDAP (WHOIS where a TLD has
		// none). Their answers carry the expiry date, which schedules a
		// domain daily from 14 days before it expires; Domainr's do not,
		// and it says "active" all through the grace period.
		c.Policy.Name = "corroborated"
		c.Providers.Chain = []string{"rdap", "whois"}
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("demo: %w", err)
	}
	return c, nil
}

func runPolicy(ctx context.Context, o Options, policy string) (*policyRun, error) {
	r := &policyRun{name: policy, dir: filepath.Join(o.Dir, policy), flagged: map[int64]time.Time{}, reverifiedIDs: map[int64]bool{}, bySource: map[string]int{}}
	r.world = sim.NewWorld(sim.Params{Seed: o.Seed, Start: o.Start, Emails: o.Emails})
	srv, err := sim.Start(ctx, r.world, sim.ServerOptions{Log: o.Log, DNS: o.dnsFaults})
	if err != nil {
		return nil, fmt.Errorf("demo: start simulator: %w", err)
	}
	defer srv.Close()
	// The simulator listens on new ports every time: the RDAP bootstrap
	// and WHOIS servers cached by an earlier demo process would name dead
	// ones.
	for _, d := range []string{"rdap", "whois"} {
		if err := os.RemoveAll(filepath.Join(r.dir, d)); err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
	}
	cfg, err := SimConfig(srv, r.dir, policy, o.Concurrency)
	if err != nil {
		return nil, err
	}
	// The account table's apply target: the world's accounts, through the
	// same apply driver as a PostgreSQL account database.
	target := lapply.NewMemoryTarget(r.world)
	var cum int64
	for i := range o.Nights {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		date := o.Start.AddDate(0, 0, i)
		ds := date.Format(time.DateOnly)
		r.world.SetDate(date)
		// Owners who still hold their domain verify an un-verified address
		// again, early in the day, before the night's export.
		for _, id := range r.world.OwnerReverify() {
			r.reverified++
			r.reverifiedIDs[id] = true
		}
		// Each night runs at 03:00 UTC of its date on a fixed clock, so the
		// files it writes are the same on every machine and every re-run.
		now := date.Add(3 * time.Hour)
		src, err := exportAccounts(r.dir, ds, r.world.Addresses(date))
		if err != nil {
			return nil, err
		}
		cfg.Source = "jsonl:" + src
		ro := pipeline.Options{
			Config: cfg, Date: ds, Now: func() time.Time { return now }, Log: o.Log.With("policy", policy),
			CheckAll: policy == PolicyPyPI, Version: "demo",
		}
		if o.tweak != nil {
			o.tweak(policy, i+1, &ro)
		}
		res, err := pipeline.RunNight(ctx, ro)
		status := res.Figures().ChangesetStatus
		if errors.Is(err, pipeline.ErrBlocked) {
			// The simulated reviewer reads the summary and approves.
			r.blocked++
			status += " (approved)"
		} else if err != nil && !errors.Is(err, pipeline.ErrDegraded) {
			// A degraded night (many lookups failed) published all the same.
			return nil, fmt.Errorf("demo %s: %w", policy, err)
		}
		// The apply runs an hour after the night, on the same fixed clock.
		ids, err := apply(ctx, cfg, target, r.dir, ds, now.Add(time.Hour), o.Log)
		if err != nil {
			return nil, fmt.Errorf("demo %s: night %s: apply: %w", policy, ds, err)
		}
		// The night's account export is not kept once the night is done:
		// the world is replayed on a resume and writes the same export
		// again (about 5 MB a night per policy at 20,000 addresses).
		if err := os.Remove(src); err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		for _, id := range ids {
			if _, ok := r.flagged[id]; !ok {
				r.flagged[id] = date
			}
			// Un-verified again after its owner re-verified it, while the
			// owner still holds the domain: the loop of pypi/warehouse#18356.
			if r.reverifiedIDs[id] && r.world.OwnerHolds(id) {
				r.loops++
			}
		}
		cum += int64(len(ids))
		f := res.Figures()
		r.lookups += f.TotalLookups()
		for src, n := range f.Lookups {
			r.bySource[src] += n
		}
		row := NightRow{Night: i + 1, Date: ds, Addresses: f.Addresses, Lookups: f.TotalLookups(), Flagged: f.Flagged, Cumulative: cum, Status: status}
		r.rows = append(r.rows, row)
		fmt.Fprintf(o.Out, "%-*s  %5d  %-10s  %9d  %7d  %7d  %10d  %s\n", nameWidth(o.Policies), policy, row.Night, row.Date, row.Addresses, row.Lookups, row.Flagged, row.Cumulative, row.Status)
		if o.NightHook != nil {
			if err := o.NightHook(policy, i+1); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

// exportAccounts writes the night's account export, unless an earlier run
// of the demo wrote it (a night interrupted before it finished).
func exportAccounts(dir, date string, rows []sim.Row) (string, error) {
	p := filepath.Join(dir, "accounts", "date="+date, "user_emails.jsonl")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if err := WriteAccounts(p, rows); err != nil {
		return "", fmt.Errorf("demo: %w", err)
	}
	return p, nil
}

// WriteAccounts writes the account table as a JSONL export (0600,
// atomically): the simulator's seed file, read by the night's snapshot.
func WriteAccounts(path string, rows []sim.Row) error {
	return sim.Seed(context.Background(), "jsonl:"+path, rows, sim.SeedOptions{})
}

// reviewer is who approves and applies the demo's changesets.
const reviewer = "lapse-demo (simulated reviewer)"

// apply plays the reviewed apply step with the same code `lapse review`,
// `lapse approve` and `lapse apply` run: the night's changeset is reviewed
// (its files checked against the manifest), approved by the simulated
// reviewer (who also approves blocked ones, overriding the brake with a
// note), and applied through the apply driver to the world's account
// table (guarded per row, audited, in batches). What was applied is
// recorded in the lifecycle database (the next nights tell re-verified
// addresses by it) and the cache learns that the domains' addresses are
// un-verified (weekly re-checks from now on). A marker file records that
// both were told; a resumed demo replays the finished nights on the
// (in-memory) world only, so neither is told twice about a night (they
// may have learnt newer things since).
func apply(ctx context.Context, cfg config.Config, target *lapply.MemoryTarget, dir, ds string, now time.Time, log *slog.Logger) ([]int64, error) {
	marker := filepath.Join(dir, "applied", ds)
	csDir := night.Paths{DataDir: cfg.DataDir, Date: ds}.Changeset()
	if _, err := os.Stat(filepath.Join(csDir, changeset.FileManifest)); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	rev, err := changeset.Review(ctx, csDir, changeset.ReviewOptions{})
	if err != nil {
		return nil, fmt.Errorf("review: %w", err)
	}
	if rev.Counts.Flagged == 0 {
		return nil, nil
	}
	if _, _, err := changeset.Approve(csDir, changeset.ApproveOptions{
		By: reviewer, Note: "the demo approves every changeset, blocked ones included", OverrideBrake: rev.Brake.Blocked,
		ExpectSHA256: rev.ManifestSHA256, Now: now,
	}); err != nil {
		return nil, err
	}
	res, err := lapply.Apply(ctx, lapply.Options{
		Dir: csDir, Target: target, By: reviewer, Reason: cfg.Apply.Reason, BatchSize: cfg.Apply.BatchSize,
		Now: func() time.Time { return now }, Log: log,
	})
	if err != nil {
		return nil, err
	}
	ids := make([]int64, 0, len(res.Changes))
	for _, c := range res.Changes {
		ids = append(ids, c.EmailID)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	if _, err := os.Stat(marker); err == nil {
		return ids, nil
	}
	if err := lapply.Record(ctx, lapply.RecordOptions{DataDir: cfg.DataDir, CacheDir: night.CacheDir(cfg),
		Cache: cache.Options{Now: func() time.Time { return now }, Logger: log}}, res); err != nil {
		return nil, err
	}
	return ids, atomicfile.WriteFile(marker, []byte(fmt.Sprintf("%d addresses un-verified\n", len(ids))), 0o640)
}

// nameWidth is the width of the tables' policy column: 8, or the longest
// name run.
func nameWidth(policies []string) int {
	w := 8
	for _, p := range policies {
		w = max(w, len(p))
	}
	return w
}

// bySourceLine is "domainr 1200 (60.0%), rdap 800 (40.0%)", by source name.
func bySourceLine(m map[string]int) string {
	total := 0
	names := make([]string, 0, len(m))
	for k, v := range m {
		total += v
		names = append(names, k)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s %d (%.1f%%)", k, m[k], 100*float64(m[k])/float64(max(total, 1)))
	}
	return strings.Join(parts, ", ")
}

// lockedWriter serializes the policies' table lines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func printScore(w io.Writer, o Options, s Score) {
	fmt.Fprintf(w, "\nscore against the simulator's truth (%s/score.json):\n", o.Dir)
	fmt.Fprintf(w, "%-*s  %9s  %6s  %9s  %16s  %8s  %7s  %s\n", nameWidth(o.Policies), "policy", "precision", "recall", "lead days", "resurrections", "lookups", "flagged", "re-verified / re-flag loops")
	for _, p := range o.Policies {
		v, ok := s[p]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "%-*s  %9.3f  %6.3f  %9.1f  %7d caught/%-3d  %8d  %7d  %d / %d\n", nameWidth(o.Policies), p, v.Precision, v.Recall, v.LeadDaysMedian,
			v.ResurrectionsCaught, v.Resurrections, v.Lookups, v.Flagged, v.Reverified, v.ReflagLoops)
	}
	if p, ok := s[PolicyPyPI]; ok && p.Lookups > 0 {
		for _, name := range o.Policies {
			if d, ok := s[name]; ok && name != PolicyPyPI {
				fmt.Fprintf(w, "%s spends %.1f%% of the pypi preset's lookups\n", name, 100*float64(d.Lookups)/float64(p.Lookups))
			}
		}
	}
	for _, name := range o.Policies {
		if d, ok := s[name]; ok && len(d.LookupsBySource) > 1 {
			fmt.Fprintf(w, "%s lookups by source: %s\n", name, bySourceLine(d.LookupsBySource))
		}
	}
	for _, name := range o.Policies {
		if d, ok := s[name]; ok && d.MailPath.AtRisk+d.MailPath.Flagged > 0 {
			m := d.MailPath
			fmt.Fprintf(w, "%s mail path (MX or NS domain lapsed, own domain healthy): %d of %d at-risk addresses caught in time, %d missed, %d pending; %d flagged, precision %.3f, recall %.3f, lead days %.1f\n",
				name, m.Caught, m.AtRisk, m.Missed, m.Pending, m.Flagged, m.Precision, m.Recall, m.LeadDaysMedian)
		}
	}
	for _, name := range o.Policies {
		if d, ok := s[name]; ok && d.ResurrectionsBeforeStart > 0 {
			fmt.Fprintf(w, "%s: %d of %d addresses on names re-registered before the first night flagged\n", name, d.ResurrectionsBeforeStartCaught, d.ResurrectionsBeforeStart)
		}
	}
	fmt.Fprintln(w, strings.TrimSpace(`
(a simulation: the world, its registries and their answers are generated)`))
}
