package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/flock"
	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/sinks/metrics"
	"github.com/lapse-dev/lapse/sources/status"
)

// The stages of one night, in order.
const (
	StageSnapshot = "snapshot"
	// StageDNS looks up the mail path of the due address domains (issue 12).
	StageDNS      = "dns"
	StagePlan     = "plan"
	StageResolve  = "resolve"
	StageClassify = "classify"
	StagePublish  = "publish"
)

// StageNames lists the stages in the order the runner runs them.
var StageNames = []string{StageSnapshot, StageDNS, StagePlan, StageResolve, StageClassify, StagePublish}

// Options configure one night.
type Options struct {
	Config config.Config
	// Date is the night, YYYY-MM-DD (UTC).
	Date string
	// Force re-runs a night that already finished.
	Force bool
	// Now is the clock (as_of of every answer and the cache schedule).
	Now func() time.Time
	Log *slog.Logger
	// Progress reports the resolve stage; nil reports nothing.
	Progress Progress
	// Provider replaces the provider chain built from Config (tests).
	Provider status.Provider
	// DNS replaces the mail path's resolver built from Config.DNS (tests).
	// A night given a Provider but no DNS runs without the mail path: its
	// test did not ask for one, and must not reach the system's resolver.
	DNS MailResolver
	// AfterStage, when set, is called after each stage finished and was
	// recorded; an error stops the night there (tests kill a night with it).
	AfterStage func(stage string) error
	// StopAfterLookups, when > 0, cancels the night after that many lookups
	// in resolve, as Ctrl-C would (tests).
	StopAfterLookups int
	// CheckAll plans every domain every night, ignoring the cache schedule
	// (the demo's pypi comparison run).
	CheckAll bool
	// Getenv reads the providers' secrets (default: the process environment).
	Getenv func(key string) (string, bool)
	// Version is lapse's version, recorded in the snapshot manifest.
	Version string
	// AcceptShrink lets a snapshot with far fewer verified addresses than
	// the previous finished night's through (run.min_verified_fraction).
	AcceptShrink bool
}

// NightResult is what RunNight did.
type NightResult struct {
	Date string
	// Skipped is true when the night had already finished and was not forced.
	Skipped  bool
	Outcome  string
	Resumed  string // the stage the night resumed after, "" when it started fresh
	Manifest night.Manifest
}

// Figures returns the night's figures.
func (r NightResult) Figures() night.Figures { return r.Manifest.Figures }

// stageFunc runs one stage over the night's files and returns its rows in
// and out; it may fill the night's figures.
type stageFunc func(ctx context.Context, n *nightRun) (rowsIn, rowsOut int64, err error)

// nightRun is one run's state, passed to each stage.
type nightRun struct {
	opts     Options
	paths    night.Paths
	log      *slog.Logger
	manifest *night.Manifest
	env      *nightEnv
	// classified is classify's result in this run (nil when the night
	// resumed after classify): publish reuses its counts.
	classified *ClassifyResult
	// reverified is the dns stage's list of re-verified domains in this
	// run (nil when it did not run them): the plan reuses it.
	reverified *[]string
	// mailDeps is the dns stage's dependency domains in this run (nil when
	// it did not run, or rewrote the links copy): the plan reuses them.
	mailDeps []string
	// index is tonight's domains and states as the dns stage read them,
	// for the plan.
	index *nightIndex
}

// RunNight runs one night: snapshot → plan → resolve → classify → publish,
// resuming after the last finished stage of an earlier, interrupted run of
// the same date. A finished night is not run again unless opts.Force.
//
// It returns an error wrapping ErrBlocked when the changeset was written but
// held by the safety brake, or ErrDegraded when it was written but too many
// of tonight's domains are unknown (the night is finished all the same).
// Whatever else fails, metrics.prom is rewritten to say the night failed.
func RunNight(ctx context.Context, opts Options) (res NightResult, err error) {
	res = NightResult{Date: opts.Date}
	if _, err := night.Parse(opts.Date); err != nil {
		return res, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Progress == nil {
		opts.Progress = NoProgress{}
	}
	data := night.Dir(opts.Config.DataDir)
	paths := data.Night(opts.Date)
	log := opts.Log.With("date", opts.Date)
	// m is the night's manifest as far as it got; run is its row in the
	// lifecycle database once begun.
	m := night.Manifest{Date: opts.Date, Outcome: "running", Policy: opts.Config.Policy.Name}
	var (
		env     *nightEnv
		runID   int64
		ownsDir bool // the lock is held: the night's files are ours to write
	)
	// One failure path for every failed return below: monitoring must see a
	// failed night (lapse_run_success 0) whatever failed, and the run log
	// must say the run ended. A Ctrl-C still records it (fresh context).
	defer func() {
		if err == nil || errors.Is(err, ErrBlocked) || errors.Is(err, ErrDegraded) {
			return
		}
		m.Outcome = night.OutcomeFailed
		res.Outcome, res.Manifest = night.OutcomeFailed, m
		bg := context.WithoutCancel(ctx)
		if ownsDir && runID != 0 {
			if werr := writeManifest(paths, m); werr != nil {
				log.Error("write run manifest", "err", werr)
			}
			if rerr := env.db.FinishRun(bg, runID, night.OutcomeFailed, opts.Now()); rerr != nil {
				log.Error("record run", "err", rerr)
			}
		}
		if werr := metrics.Write(data.Metrics(), m, opts.Now()); werr != nil {
			log.Error("write metrics", "err", werr)
		}
	}()

	lock, err := flock.Acquire(data.Lock())
	if err != nil {
		return res, err
	}
	defer lock.Release()
	ownsDir = true
	if err := checkFreeSpace(opts.Config); err != nil {
		return res, fmt.Errorf("night %s: %w", opts.Date, err)
	}
	// A run killed mid-write leaves its temp files; the lock says no other
	// run is writing now.
	if n, err := removeStaleTemps(paths); err != nil {
		log.Warn("could not remove every stale temp file", "err", err)
	} else if n > 0 {
		log.Info("removed temp files left by an interrupted run", "files", n)
	}
	warnMissingState(log, opts.Config, opts.Date)

	env, err = openNightEnv(ctx, opts)
	if err != nil {
		return res, fmt.Errorf("night %s: %w", opts.Date, err)
	}
	defer env.Close()

	last, err := env.db.LastFinishedStage(ctx, opts.Date)
	if err != nil {
		return res, fmt.Errorf("night %s: read run log: %w", opts.Date, err)
	}
	prev, perr := ReadManifest(paths)
	if perr != nil && !errors.Is(perr, fs.ErrNotExist) {
		log.Warn("run manifest unreadable; the night starts over", "err", perr)
		last = ""
	}
	if perr != nil {
		// Without the manifest the figures of finished stages are gone: run
		// them again (each stage is idempotent).
		last = ""
	}
	if last == StagePublish && !opts.Force {
		res.Skipped = true
		res.Outcome = prev.Outcome
		res.Manifest = prev
		log.Info("night already finished; nothing to do (use --force to run it again)", "outcome", prev.Outcome)
		switch prev.Outcome {
		case night.OutcomeBlocked:
			return res, fmt.Errorf("night %s (already finished): %w", opts.Date, blockedError(prev.Figures.BlockedReason))
		case night.OutcomeDegraded:
			return res, fmt.Errorf("night %s (already finished): %w", opts.Date, degradedError(prev.Figures, opts.Config.Resolve.MaxUnknownFraction))
		}
		return res, nil
	}
	start := 0
	if opts.Force {
		last = ""
	}
	supersede := opts.Force
	if last != "" && last != StagePublish {
		// Every stage after the snapshot reads it: a resumed night checks
		// it is the file the snapshot stage wrote.
		if derr := verifySnapshot(paths); derr != nil {
			log.Warn("snapshot damaged: taking it again from the source, the night starts over", "err", derr)
			last, supersede = "", true
			m.Attempts = prev.Attempts
		}
	}
	if last != "" {
		m = prev
		m.Outcome = "running"
		for i, s := range StageNames {
			if s == last {
				start = i + 1
			}
		}
		res.Resumed = last
		log.Info("resuming an interrupted night", "after", last)
	}
	m.Attempts++
	if supersede {
		if err := env.db.Supersede(ctx, opts.Date); err != nil {
			return res, fmt.Errorf("night %s: %w", opts.Date, err)
		}
	}
	runID, err = env.db.BeginRun(ctx, opts.Date, opts.Now())
	if err != nil {
		return res, fmt.Errorf("night %s: record run: %w", opts.Date, err)
	}
	n := &nightRun{opts: opts, paths: paths, log: log, manifest: &m, env: env}
	stages := map[string]stageFunc{
		StageSnapshot: stageSnapshot,
		StageDNS:      stageDNS,
		StagePlan:     stagePlan,
		StageResolve:  stageResolve,
		StageClassify: stageClassify,
		StagePublish:  stagePublish,
	}
	outcome := night.OutcomeOK
	var blocked error
	for _, name := range StageNames[start:] {
		if err := checkFreeSpace(opts.Config); err != nil {
			return res, fmt.Errorf("night %s: before %s: %w", opts.Date, name, err)
		}
		rec := night.StageRecord{Stage: name, StartedAt: time.Now().UTC()}
		log.Info("stage started", "stage", name)
		in, out, err := stages[name](ctx, n)
		rec.FinishedAt, rec.RowsIn, rec.RowsOut, rec.Outcome = time.Now().UTC(), in, out, night.OutcomeOK
		if errors.Is(err, ErrBlocked) {
			rec.Outcome, outcome, blocked, err = night.OutcomeBlocked, night.OutcomeBlocked, err, nil
		}
		if err != nil {
			rec.Outcome, rec.Error = night.OutcomeFailed, err.Error()
			m.SetStage(rec)
			// The deferred failure path writes the manifest, ends the run
			// and writes the metrics.
			if rerr := env.db.RecordStage(context.WithoutCancel(ctx), runID, rec); rerr != nil {
				log.Error("record stage", "stage", name, "err", rerr)
			}
			log.Error("stage failed", "stage", name, "err", err)
			return res, fmt.Errorf("night %s: %s: %w", opts.Date, name, err)
		}
		m.SetStage(rec)
		// The manifest goes first: a crash between the two leaves the stage
		// unrecorded in the DB, so it runs again (stages are idempotent).
		if err := writeManifest(paths, m); err != nil {
			return res, fmt.Errorf("night %s: %s: %w", opts.Date, name, err)
		}
		if err := env.db.RecordStage(ctx, runID, rec); err != nil {
			return res, fmt.Errorf("night %s: record stage %s: %w", opts.Date, name, err)
		}
		log.Info("stage finished", "stage", name, "rows_in", in, "rows_out", out, "outcome", rec.Outcome,
			"seconds", rec.FinishedAt.Sub(rec.StartedAt).Seconds())
		if opts.AfterStage != nil {
			if err := opts.AfterStage(name); err != nil {
				return res, fmt.Errorf("night %s: after %s: %w", opts.Date, name, err)
			}
		}
	}
	// A night most of whose domains could not be checked is finished, but
	// not healthy: the changeset misses what the failed lookups hid. The
	// brake's blocked outcome wins (the changeset needs a review anyway).
	var degraded error
	if m.Figures.Degraded {
		degraded = degradedError(m.Figures, opts.Config.Resolve.MaxUnknownFraction)
		log.Warn("night degraded: too many domains unknown", "unknown_domains", m.Figures.UnknownDomains,
			"domains", m.Figures.Domains, "max_unknown_fraction", opts.Config.Resolve.MaxUnknownFraction)
		if outcome == night.OutcomeOK {
			outcome = night.OutcomeDegraded
		}
	}
	m.Outcome = outcome
	if err := writeManifest(paths, m); err != nil {
		return res, fmt.Errorf("night %s: %w", opts.Date, err)
	}
	if err := env.db.FinishRun(ctx, runID, outcome, opts.Now()); err != nil {
		return res, fmt.Errorf("night %s: record run: %w", opts.Date, err)
	}
	runID = 0 // recorded: the failure path must not overwrite it
	if err := metrics.Write(data.Metrics(), m, opts.Now()); err != nil {
		return res, fmt.Errorf("night %s: %w", opts.Date, err)
	}
	// Retention, once the night is safely finished. A failure is logged,
	// not the night's: its files are all written and recorded. A night
	// dated after today prunes nothing: it must never delete the real
	// nights before it.
	if keep := opts.Config.Retention.Nights; keep > 0 && !RetentionApplies(opts.Date, opts.Now()) {
		log.Warn("retention skipped: the night is dated after today, so no earlier night is deleted", "keep_nights", keep)
	} else {
		removed, err := Prune(data, opts.Date, keep)
		if len(removed) > 0 {
			log.Info("retention: deleted the address files of old nights", "folders", len(removed), "keep_nights", keep)
		}
		if err != nil {
			log.Error("retention: could not delete every old folder (they are retried after the next night)", "err", err)
		}
	}
	res.Outcome, res.Manifest = outcome, m
	if blocked != nil {
		return res, fmt.Errorf("night %s: %w", opts.Date, blocked)
	}
	if degraded != nil {
		return res, fmt.Errorf("night %s: %w", opts.Date, degraded)
	}
	return res, nil
}
