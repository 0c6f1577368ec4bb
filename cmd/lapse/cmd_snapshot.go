package main

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"

	"github.com/lapse-dev/lapse/internal/flock"
	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/pipeline"
	"github.com/lapse-dev/lapse/sources/emails"
)

func init() { register(newSnapshotCmd) }

type snapshotOptions struct {
	source string
	date   string
	all    bool
	allSet bool
}

func newSnapshotCmd(g *globalOptions) *cobra.Command {
	var o snapshotOptions
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Freeze the source's verified addresses into a dated Parquet snapshot",
		Long: `snapshot streams every verified address of the source into
DATA_DIR/snapshots/date=D/emails.parquet with its host, registrable domain
and invalid reason, and writes manifest.json beside it (row counts, sha256,
the source without secrets). Re-running a date replaces its snapshot
atomically; a failed run leaves the previous one intact.

Sources: postgres://USER@HOST/DB (password from PGPASSWORD,
postgres.password_env or postgres.password_file), csv:PATH or jsonl:PATH.
Malformed file lines, and rows whose id an earlier row had, are left out,
counted and listed in the manifest by line number (database rows by their
ordinal). Bytes that are not UTF-8 are stored escaped (\xFF); such an
email is invalid (invalid_utf8).`,
		Example: `  lapse snapshot --source postgres://lapse@db/warehouse
  lapse snapshot --source csv:emails.csv --date 2026-11-28 --all`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.allSet = cmd.Flags().Changed("all")
			return runSnapshot(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.source, "source", "", "postgres://…, csv:PATH or jsonl:PATH (overrides source and LAPSE_SOURCE)")
	f.StringVar(&o.date, "date", "", "night to snapshot, YYYY-MM-DD (default today in UTC)")
	f.BoolVar(&o.all, "all", false, "include unverified addresses (overrides all)")
	return cmd
}

// snapshotMemoryLimit is the soft heap limit of a snapshot run: the stage
// streams, so its live heap stays near 100 MB, and the limit keeps the
// garbage collector from letting the heap double past it on big sources.
const snapshotMemoryLimit = 200 << 20

// limitMemory applies snapshotMemoryLimit unless GOMEMLIMIT says otherwise.
func limitMemory(environ []string) {
	if _, ok := lookupEnv(environ, "GOMEMLIMIT"); ok {
		return
	}
	if debug.SetMemoryLimit(-1) > snapshotMemoryLimit {
		debug.SetMemoryLimit(snapshotMemoryLimit)
	}
}

// snapshotNow is the clock for the default date.
var snapshotNow = time.Now

func runSnapshot(ctx context.Context, g *globalOptions, o snapshotOptions) error {
	c, err := g.loadConfig()
	if err != nil {
		return err
	}
	if o.source != "" {
		c.Source = o.source
	}
	if o.allSet {
		c.All = o.all
	}
	date := o.date
	if date == "" {
		date = snapshotNow().UTC().Format(time.DateOnly)
	}
	if !night.Valid(date) {
		return usagef("--date %q: want YYYY-MM-DD, e.g. 2026-11-28", date)
	}
	if _, _, err := emails.ParseSpec(c.Source); err != nil {
		return usageError{err}
	}
	lock, err := flock.Acquire(night.Dir(c.DataDir).Lock())
	if err != nil {
		return err
	}
	defer lock.Release()

	log := g.log.With("date", date)
	so := pipeline.SnapshotOptionsFromConfig(c, date)
	so.Version, so.Log = version, log
	limitMemory(g.environ)
	res, err := pipeline.Snapshot(ctx, so)
	if err != nil {
		var ce *emails.ConfigError
		var se *emails.SpecError
		if errors.As(err, &ce) || errors.As(err, &se) {
			return usageError{err}
		}
		return err
	}
	m := res.Manifest
	if m.Rows.Malformed > 0 {
		first := m.Problems[0]
		where := []any{"first_line", first.Line}
		if first.Line == 0 { // the database: its rows have ordinals
			where = []any{"first_row", first.Row}
		}
		log.Warn("malformed source lines left out of the snapshot (listed in the manifest)",
			append(append([]any{"count", m.Rows.Malformed}, where...), "first_reason", first.Reason, "manifest", res.ManifestPath)...)
	}
	_, err = fmt.Fprintf(g.stdout, "snapshot %s: %d addresses (%d verified, %d invalid), %d domains, %d malformed lines → %s\n",
		date, m.Rows.Addresses, m.Rows.Verified, m.Rows.Invalid, m.Rows.Domains, m.Rows.Malformed, res.Path)
	return err
}
