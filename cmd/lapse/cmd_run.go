package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/pipeline"
	"github.com/lapse-dev/lapse/sources/emails"
)

func init() { register(newRunCmd) }

// runOptions are `lapse run`'s own flags.
type runOptions struct {
	source       string // overrides source and LAPSE_SOURCE
	date         string
	force        bool
	acceptShrink bool
	allowFuture  bool
}

func newRunCmd(g *globalOptions) *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the nightly job: snapshot, plan, resolve, classify, publish",
		Long: `Run one night of lapse: snapshot the verified addresses from the source,
plan which domains are due, resolve them through the provider chain into the
cache, classify every address with the policy, and publish the changeset,
the lifecycle database rows, the report and DATA_DIR/metrics.prom.

A night that died re-runs from its last finished stage; a finished night
re-run does nothing unless --force. One run per data dir at a time.
--date is refused after tomorrow (UTC) unless --allow-future, and before 2000.
A snapshot with fewer verified addresses than run.min_verified_fraction of
the previous finished night's stops the night before plan, unless
--accept-shrink.

Exit codes: 0 done, 1 failed, 2 usage or configuration error, 3 done but
the changeset is blocked by the safety brake (review it), 4 done but
degraded (more than resolve.max_unknown_fraction of the domains are unknown:
check the providers), 130 interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRun(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.date, "date", "", "the night to run, YYYY-MM-DD (default: today, UTC)")
	f.StringVar(&o.source, "source", "", "postgres://…, csv:PATH or jsonl:PATH (overrides source and LAPSE_SOURCE)")
	f.BoolVar(&o.force, "force", false, "run a night that already finished again")
	f.BoolVar(&o.acceptShrink, "accept-shrink", false, "go on when the snapshot has far fewer verified addresses than the previous night's (run.min_verified_fraction)")
	f.BoolVar(&o.allowFuture, "allow-future", false, "allow a --date after tomorrow (UTC)")
	return cmd
}

// checkNightDate refuses a night date that cannot be a real night: before
// 2000, or after today (UTC) plus one day of slack unless allowFuture.
// Retention and the first-seen history count nights by date, so a stray
// future night would skew both.
func checkNightDate(date string, now time.Time, allowFuture bool) error {
	d, err := night.Parse(date)
	if err != nil {
		return usagef("--date: %v", err)
	}
	if d.Year() < 2000 {
		return usagef("--date %s is before 2000: give the night's date, YYYY-MM-DD", date)
	}
	latest := now.UTC().AddDate(0, 0, 1).Format(time.DateOnly)
	if date > latest && !allowFuture {
		return usagef("--date %s is in the future (today is %s UTC): give tonight's or a past night's date, or --allow-future to run it anyway",
			date, now.UTC().Format(time.DateOnly))
	}
	return nil
}

func runRun(ctx context.Context, g *globalOptions, o runOptions) error {
	c, err := g.loadConfig()
	if err != nil {
		return err
	}
	if o.source != "" {
		c.Source = o.source
	}
	if o.date == "" {
		o.date = time.Now().UTC().Format(time.DateOnly)
	}
	if err := checkNightDate(o.date, time.Now(), o.allowFuture); err != nil {
		return err
	}
	if c.Source == "" {
		return usagef("no source to snapshot: set source in lapse.toml or LAPSE_SOURCE (postgres://…, csv:PATH or jsonl:PATH)")
	}
	if _, _, err := emails.ParseSpec(c.Source); err != nil {
		return usageError{err}
	}
	res, err := pipeline.RunNight(ctx, pipeline.Options{
		Config:       c,
		Date:         o.date,
		Force:        o.force,
		Log:          g.log,
		Progress:     newProgress(g.stderr, g.log),
		Getenv:       func(k string) (string, bool) { return lookupEnv(g.environ, k) },
		Version:      version,
		AcceptShrink: o.acceptShrink,
	})
	// Blocked (exit 3) and degraded (exit 4) nights are finished: their
	// errors wrap pipeline.ErrBlocked and ErrDegraded (exitCode).
	blocked, degraded := errors.Is(err, pipeline.ErrBlocked), errors.Is(err, pipeline.ErrDegraded)
	if err == nil || blocked || degraded {
		printNight(g, c.DataDir, res)
	}
	if blocked || degraded {
		return err
	}
	// A source that does not match its settings is a configuration error.
	var ce *emails.ConfigError
	var se *emails.SpecError
	if errors.As(err, &ce) || errors.As(err, &se) {
		return usageError{err}
	}
	return err
}

// printNight prints the one-line summary of a night.
func printNight(g *globalOptions, dataDir string, r pipeline.NightResult) {
	f := r.Figures()
	what := "done"
	switch {
	case r.Skipped:
		what = "already finished (nothing done; --force runs it again)"
	case r.Resumed != "":
		what = "done (resumed after " + r.Resumed + ")"
	}
	if f.Degraded && r.Outcome != night.OutcomeFailed {
		what += ", DEGRADED"
	}
	lookedUp := f.LookedUp
	if lookedUp == 0 {
		lookedUp = f.Planned // a manifest written before looked_up was counted
	}
	fmt.Fprintf(g.stdout, "night %s %s: %d addresses (%d verified, %d invalid), %d domains, %d looked up (%d lookups, %d deferred), "+
		"%d domains unknown (%.1f%%), %d addresses unknown, %d to un-verify, %d on watch; changeset %s in %s\n",
		r.Date, what, f.Addresses, f.Verified, f.Invalid, f.VerifiedDomains, lookedUp, f.TotalLookups(), f.Deferred,
		f.UnknownDomains, 100*f.UnknownShare(), f.UnknownAddresses,
		f.Flagged, f.Watch, f.ChangesetStatus, night.Paths{DataDir: dataDir, Date: r.Date}.Changeset())
}
