package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/lapse-dev/lapse/notebooks"
	"github.com/lapse-dev/lapse/pipeline"
	"github.com/lapse-dev/lapse/sinks/lifecycledb"
)

func init() { register(newNotebookCmd) }

func newNotebookCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "notebook",
		Short: "List, print or run the trend notebooks over the lifecycle database",
		Long: `The notebooks are SQL over the views of DATA_DIR/lapse.duckdb (daily_flags,
cumulative_unverified, states_by_tld, lookup_cost, detection_lead_time).
"lapse notebook show NAME" prints one for the DuckDB CLI; "run" runs it here.`,
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
		Short: "Run a notebook against DATA_DIR/lapse.duckdb and print the results",
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
	path := pipeline.DBPath(c.DataDir)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return usagef("no lifecycle database at %s: run `lapse run` first, or set --data-dir", path)
	}
	db, err := lifecycledb.Open(path)
	if err != nil {
		return err
	}
	defer db.Close()
	return notebooks.Run(ctx, db.SQL(), nb, g.stdout)
}
