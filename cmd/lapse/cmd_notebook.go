package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/notebooks"
)

func init() { register(newNotebookCmd) }

func newNotebookCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "notebook",
		Short: "List, print or run the trend notebooks over the lifecycle database",
		Long: `The notebooks are SQL over the tables and views of DATA_DIR/lapse.duckdb, each
statement under a "-- title:", "-- about:" and "-- chart:" comment.
"lapse notebook show NAME" prints one for the DuckDB CLI
(duckdb lapse.duckdb < FILE); "run" runs it here on the database opened
read-only; "lapse report" draws their charts as HTML.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the notebooks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			all, err := notebooks.All()
			if err != nil {
				return err
			}
			for _, nb := range all {
				fmt.Fprintln(g.stdout, nb.Name)
			}
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "show NAME",
		Short: "Print a notebook's SQL",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			nb, err := notebooks.Find(args[0])
			if err != nil {
				return usageError{err}
			}
			_, err = fmt.Fprint(g.stdout, nb.SQL)
			return err
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "run NAME",
		Short: "Run a notebook against DATA_DIR/lapse.duckdb (read-only) and print the results",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runNotebook(cmd.Context(), g, args[0])
		},
	})
	return cmd
}

func runNotebook(ctx context.Context, g *globalOptions, name string) error {
	nb, err := notebooks.Find(name)
	if err != nil {
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
	return notebooks.Run(ctx, db, nb, g.stdout)
}
