package main

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/notebooks"
)

func init() { register(newQueryCmd) }

// queryOptions are `lapse query`'s argument and flags.
type queryOptions struct {
	sql    string // "-" reads it from stdin
	format string
}

var queryFormats = []string{"table", "csv", "json"}

func newQueryCmd(g *globalOptions) *cobra.Command {
	var o queryOptions
	cmd := &cobra.Command{
		Use:   "query SQL",
		Short: "Run one read-only query against the lifecycle database and print the rows",
		Long: `Run one SELECT (or WITH, FROM, SUMMARIZE, DESCRIBE, SHOW, a PRAGMA that reads,
EXPLAIN) against DATA_DIR/lapse.duckdb and print its rows as an aligned table
(default), CSV with a header line, or a JSON array of objects. SQL "-" reads
the query from stdin.

The database is opened read-only (DuckDB access_mode=READ_ONLY), so DuckDB
itself refuses any write; anything but one reading statement is refused
before it runs ("lapse query is read-only: …", exit 2). While a night is
writing the database it cannot be opened: retry when lapse run finishes.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.sql = args[0]
			return runQuery(cmd.Context(), g, o)
		},
	}
	cmd.Flags().StringVar(&o.format, "format", "table", "output: table, csv or json")
	return cmd
}

func runQuery(ctx context.Context, g *globalOptions, o queryOptions) error {
	if !slices.Contains(queryFormats, o.format) {
		return usagef("query: --format %q: want %s", o.format, strings.Join(queryFormats, ", "))
	}
	q := o.sql
	if q == "-" {
		b, err := io.ReadAll(g.stdin)
		if err != nil {
			return err
		}
		q = string(b)
	}
	if err := notebooks.CheckText(q); err != nil {
		return usageError{err}
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
	r, err := notebooks.Query(ctx, db, q)
	if errors.Is(err, notebooks.ErrReadOnly) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	switch o.format {
	case "csv":
		return r.WriteCSV(g.stdout)
	case "json":
		return r.WriteJSON(g.stdout)
	}
	return r.WriteTable(g.stdout)
}
