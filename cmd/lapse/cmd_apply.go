package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/atomicfile"
	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/sinks/apply"
)

func init() { register(newApplyCmd) }

type applyOptions struct {
	dir        string
	dsn        string
	dryRun     bool
	allowStale bool
	wait       bool
	by         string
	verdicts   string
}

func newApplyCmd(g *globalOptions) *cobra.Command {
	var o applyOptions
	cmd := &cobra.Command{
		Use:   "apply CHANGESET_DIR",
		Short: "Un-verify an approved changeset's addresses in the account database",
		Long: `apply un-verifies exactly the rows of an approved changeset
(DATA/changesets/D) in the account table of [postgres]:

  UPDATE table SET verified = false, unverify_reason = apply.reason
  WHERE id = $1 AND email = $2 AND verified

A row whose address changed, that was deleted or that is no longer
verified since the snapshot is left alone and reported with why. Rows are
changed apply.batch_size at a time, each batch one transaction holding its
changes, one audit row per change (apply.audit_table, created if missing)
and its progress, so an interrupted apply resumes where it stopped and no
row is changed twice. Applying again changes nothing. One apply or revert
runs at a time (a PostgreSQL advisory lock); --wait waits for the other.

It refuses a changeset that is not approved (lapse approve), whose files
changed since, or whose night is older than apply.max_age (--allow-stale).
It writes applied.json (ids, no addresses) and notify_applied.csv (the
users whose addresses were un-verified) beside the changeset, and records
the changes in lapse.duckdb and the cache.

The account database is apply.dsn, else source when it is postgres://; the
password comes from PGPASSWORD, postgres.password_env or
postgres.password_file, never from the command line or lapse.toml.

Exit codes: 0 applied (or already applied), 1 refused or failed (not
approved, changed since approval, stale, another apply running, account
database unreachable, lifecycle database in use), 2 usage or configuration
error, 130 interrupted (re-run to resume).`,
		Example: `  lapse apply lapse-data/changesets/2026-03-01 --dry-run --verdicts -
  PGPASSWORD=… lapse apply lapse-data/changesets/2026-03-01 --by alice`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.dir = args[0]
			return runApply(cmd.Context(), o, g)
		},
	}
	addApplyFlags(cmd, &o)
	cmd.Flags().BoolVar(&o.allowStale, "allow-stale", false, "apply a changeset older than apply.max_age")
	return cmd
}

func addApplyFlags(cmd *cobra.Command, o *applyOptions) {
	f := cmd.Flags()
	f.StringVar(&o.dsn, "dsn", "", "account database, postgres://USER@HOST/DB without a password (overrides apply.dsn)")
	f.BoolVar(&o.dryRun, "dry-run", false, "print what would change; change and write nothing")
	f.StringVar(&o.verdicts, "verdicts", "", "with --dry-run: write each row's verdict (email_id,verdict) as CSV to FILE, - for stdout")
	f.BoolVar(&o.wait, "wait", false, "wait for another apply or revert to finish instead of stopping")
	f.StringVar(&o.by, "by", "", "who runs it, written to every audit row (default: the OS user)")
}

// applyNow is the clock of apply and revert (tests replace it).
var applyNow = time.Now

// applySetup is what apply and revert share: the configuration, the
// account database and the driver's options.
type applySetup struct {
	cfg      config.Config
	target   *apply.Postgres
	opts     apply.Options
	verdicts *atomicfile.File
}

func (s *applySetup) close() {
	if s.target != nil {
		s.target.Close()
	}
	if s.verdicts != nil {
		s.verdicts.Abort()
	}
}

func setupApply(ctx context.Context, o applyOptions, g *globalOptions) (*applySetup, error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(o.dir); err != nil || !fi.IsDir() {
		return nil, usagef("%s is not a changeset folder (DATA/changesets/YYYY-MM-DD)", o.dir)
	}
	if o.verdicts != "" && !o.dryRun {
		return nil, usagef("--verdicts is for --dry-run: a real run writes applied.json")
	}
	dsn, err := accountDSN(cfg, o.dsn)
	if err != nil {
		return nil, err
	}
	by := strings.TrimSpace(o.by)
	if by == "" {
		if u, err := user.Current(); err == nil {
			by = u.Username
		}
	}
	if by == "" {
		return nil, usagef("--by is empty and the OS user is unknown: name who runs it with --by NAME")
	}
	s := &applySetup{cfg: cfg}
	s.target, err = apply.OpenPostgres(ctx, apply.PostgresOptions{DSN: dsn, Postgres: cfg.Postgres, Apply: cfg.Apply})
	if err != nil {
		if errors.Is(err, config.ErrConfig) {
			return nil, usageError{err}
		}
		return nil, err
	}
	s.opts = apply.Options{Dir: o.dir, Target: s.target, By: by, DryRun: o.dryRun, MaxAge: cfg.Apply.MaxAge.Std(),
		AllowStale: o.allowStale, Reason: cfg.Apply.Reason, WriteDomainStatus: cfg.Apply.WriteDomainStatus,
		BatchSize: cfg.Apply.BatchSize, Wait: o.wait, Now: applyNow, Log: g.log}
	switch o.verdicts {
	case "":
	case "-":
		s.opts.Verdicts = g.stdout
	default:
		s.verdicts, err = atomicfile.Create(o.verdicts, 0o640)
		if err != nil {
			s.close()
			return nil, err
		}
		s.opts.Verdicts = s.verdicts
	}
	return s, nil
}

// accountDSN is the account database: --dsn, else apply.dsn, else source
// when it is a postgres:// DSN. A password in --dsn or apply.dsn is
// refused: it would sit in the shell history, ps or lapse.toml.
func accountDSN(cfg config.Config, flag string) (string, error) {
	fix := "drop it and set PGPASSWORD, postgres.password_env or postgres.password_file"
	switch {
	case flag != "":
		if dsnHasPassword(flag) {
			return "", usagef("--dsn %s holds a password, which the command line shows to every user of the machine: %s", config.RedactSource(flag), fix)
		}
		return flag, nil
	case cfg.Apply.DSN != "":
		if dsnHasPassword(cfg.Apply.DSN) {
			return "", usagef("apply.dsn %s holds a password: %s", config.RedactSource(cfg.Apply.DSN), fix)
		}
		return cfg.Apply.DSN, nil
	case config.IsPostgresURL(cfg.Source):
		return cfg.Source, nil
	}
	return "", usagef("no account database to apply to: set apply.dsn (LAPSE_APPLY_DSN) or source to postgres://USER@HOST/DB, or pass --dsn")
}

func dsnHasPassword(dsn string) bool {
	if config.IsPostgresURL(dsn) {
		u, err := url.Parse(dsn)
		if err != nil {
			return strings.Contains(dsn, "@") // unparseable: assume the worst
		}
		if _, has := u.User.Password(); has {
			return true
		}
		return u.Query().Has("password")
	}
	for _, f := range strings.Fields(dsn) {
		if strings.HasPrefix(f, "password=") {
			return true
		}
	}
	return false
}

func runApply(ctx context.Context, o applyOptions, g *globalOptions) error {
	s, err := setupApply(ctx, o, g)
	if err != nil {
		return err
	}
	defer s.close()
	res, err := apply.Apply(ctx, s.opts)
	if err != nil {
		return err
	}
	return s.done(ctx, g, res)
}

// done prints the outcome, commits the verdicts file and records a real
// run in the lifecycle database and the cache.
func (s *applySetup) done(ctx context.Context, g *globalOptions, res apply.Result) error {
	printApplyResult(g.stdout, res)
	if res.DryRun != nil {
		if s.verdicts != nil {
			if err := s.verdicts.Commit(); err != nil {
				return err
			}
		}
		return nil
	}
	return apply.Record(ctx, apply.RecordOptions{DataDir: s.cfg.DataDir, CacheDir: night.CacheDir(s.cfg), Cache: cacheOptions(s.cfg, g)}, res)
}

func printApplyResult(w io.Writer, res apply.Result) {
	verb, done, changed, to := "apply", "applied", "un-verified", "to"
	if res.Action == apply.ActionRevert {
		verb, done, changed, to = "revert", "reverted", "restored", "in"
	}
	skips := apply.SkipSummary(res.SkippedByReason)
	if skips != "" {
		skips = " (" + skips + ")"
	}
	switch {
	case res.DryRun != nil:
		d := res.DryRun
		ws := apply.SkipSummary(d.WouldSkip)
		if ws != "" {
			ws = " (" + ws + ")"
		}
		fmt.Fprintf(w, "dry run: %s of changeset %s %s %s: would change %d of %d rows, skip %d%s; %d done by earlier runs; nothing was changed\n",
			verb, res.Date, to, res.Target, d.WouldChange, d.Rows, d.Rows-d.Done-d.WouldChange, ws, d.Done)
	case res.Already:
		fmt.Fprintf(w, "changeset %s was already %s %s %s: nothing changed (%d %s, %d skipped%s)\n",
			res.Date, done, to, res.Target, res.Changed, changed, res.Skipped, skips)
	default:
		files := res.Path
		if res.NotifyPath != "" {
			files += ", " + res.NotifyPath
		}
		resumed := ""
		if res.BatchesNow < res.Batches {
			resumed = fmt.Sprintf(" (resumed: %d batches and %d changes this run)", res.BatchesNow, res.ChangedNow)
		}
		fmt.Fprintf(w, "%s changeset %s %s %s: %d %s, %d skipped%s in %d batches%s → %s\n",
			done, res.Date, to, res.Target, res.Changed, changed, res.Skipped, skips, res.Batches, resumed, files)
	}
}
