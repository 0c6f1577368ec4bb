package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/lapse-dev/lapse/pipeline"
	"github.com/lapse-dev/lapse/sources/emails"
)

func init() { register(newRunCmd) }

// runOptions are `lapse run`'s own flags.
type runOptions struct {
	source string // overrides source and LAPSE_SOURCE
	date   string
	force  bool
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

Exit codes: 0 done, 1 failed, 2 usage or configuration error, 3 done but
the changeset is blocked by the safety brake (review it), 130 interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRun(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.date, "date", "", "the night to run, YYYY-MM-DD (default: today, UTC)")
	f.StringVar(&o.source, "source", "", "postgres://…, csv:PATH or jsonl:PATH (overrides source and LAPSE_SOURCE)")
	f.BoolVar(&o.force, "force", false, "run a night that already finished again")
	return cmd
}

// blockedError is a night held by the safety brake: exit code 3.
type blockedError struct{ err error }

func (e blockedError) Error() string   { return e.err.Error() }
func (e blockedError) Unwrap() []error { return []error{e.err, errBlocked} }

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
	if _, err := pipeline.ParseDate(o.date); err != nil {
		return usagef("--date: %v", err)
	}
	if c.Source == "" {
		return usagef("no source to snapshot: set source in lapse.toml or LAPSE_SOURCE (postgres://…, csv:PATH or jsonl:PATH)")
	}
	if _, _, err := emails.ParseSpec(c.Source); err != nil {
		return usageError{err}
	}
	res, err := pipeline.RunNight(ctx, pipeline.Options{
		Config:   c,
		Date:     o.date,
		Force:    o.force,
		Log:      g.log,
		Progress: pipeline.NewProgress(g.stderr, g.log),
		Getenv:   func(k string) (string, bool) { return lookupEnv(g.environ, k) },
		Version:  version,
	})
	if err == nil || pipeline.IsBlocked(err) {
		printNight(g, c.DataDir, res)
	}
	if pipeline.IsBlocked(err) {
		return blockedError{err}
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
	fmt.Fprintf(g.stdout, "night %s %s: %d addresses (%d verified, %d invalid), %d domains, %d looked up (%d lookups, %d deferred), %d to un-verify, %d on watch; changeset %s in %s\n",
		r.Date, what, f.Addresses, f.Verified, f.Invalid, f.Domains, f.Planned, f.TotalLookups(), f.Deferred,
		f.Flagged, f.Watch, f.ChangesetStatus, pipeline.NightPaths{DataDir: dataDir, Date: r.Date}.Changesets())
}
