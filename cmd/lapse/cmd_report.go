package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/notebooks"
	"github.com/lapse-dev/lapse/sinks/report"
)

func init() { register(newReportCmd) }

// reportOptions are `lapse report`'s flags.
type reportOptions struct {
	notebooks []string // names; empty = all
	out       string   // "" = DATA_DIR/reports/latest
	date      string   // the night heading the index; "" = the latest
	now       func() time.Time
}

func newReportCmd(g *globalOptions) *cobra.Command {
	var o reportOptions
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Render the trend notebooks as self-contained HTML pages with charts",
		Long: `Run the trend notebooks against DATA_DIR/lapse.duckdb (opened read-only) and
write one HTML page per notebook, with its charts as inline SVG and the
query's table under each, plus index.html headed by the night's changeset
summary. The pages load nothing from anywhere (open them from disk, a share
or a mail), fit a 1280-pixel screen and print.

The nightly run writes the same pages into DATA_DIR/reports/D/. A cell that
fails (bad SQL, a missing table) shows its message on its page and the others
still render; lapse report then exits 1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runReport(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.notebooks, "notebook", nil, "render only this notebook (name or number; repeatable)")
	f.StringVar(&o.out, "out", "", "output folder (default DATA_DIR/reports/latest)")
	f.StringVar(&o.date, "date", "", "the night whose changeset heads the index, YYYY-MM-DD (default: the latest)")
	return cmd
}

func runReport(ctx context.Context, g *globalOptions, o reportOptions) error {
	var nbs []notebooks.Notebook
	for _, name := range o.notebooks {
		nb, err := notebooks.Find(name)
		if err != nil {
			return usageError{err}
		}
		nbs = append(nbs, nb)
	}
	if o.date != "" {
		if !night.Valid(o.date) {
			return usagef("report: --date %q: want YYYY-MM-DD", o.date)
		}
	}
	c, err := g.loadConfig()
	if err != nil {
		return err
	}
	path := night.Dir(c.DataDir).DB()
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return usagef("no lifecycle database at %s: run `lapse run` first, or set --data-dir", path)
	}
	db, err := notebooks.OpenReadOnly(path)
	if err != nil {
		return err
	}
	defer db.Close()
	out := o.out
	if out == "" {
		out = filepath.Join(night.Dir(c.DataDir).Reports(), "latest")
	}
	now := time.Now
	if o.now != nil {
		now = o.now
	}
	res, err := report.Build(ctx, db, report.Options{
		Dir: out, Date: o.date, Notebooks: nbs, GeneratedAt: now(),
		ChangesetRoot: night.Dir(c.DataDir).Changesets(),
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "%s\n", filepath.Join(out, "index.html"))
	g.log.Info("report written", "dir", out, "pages", len(res.Files), "cells", res.Cells, "failed", len(res.Failures))
	return res.Err()
}
