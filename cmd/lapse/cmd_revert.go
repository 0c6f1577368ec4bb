package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/lapse-dev/lapse/sinks/apply"
)

func init() { register(newRevertCmd) }

func newRevertCmd(g *globalOptions) *cobra.Command {
	var o applyOptions
	cmd := &cobra.Command{
		Use:   "revert CHANGESET_DIR",
		Short: "Restore the addresses an applied changeset un-verified",
		Long: `revert restores exactly the rows lapse apply changed for this changeset,
read from the audit table (apply.audit_table): verified again, with the
reason (and domain status) columns they had before. A row is restored only
while it is still as apply left it (same address, not verified, apply's
reason); a row its owner verified again, or that changed since, is left
alone and reported. Each restore is an audit row (action revert); the run
writes reverted.json beside the changeset and records it in lapse.duckdb.
Reverting again changes nothing; a reverted changeset is never applied
again.

Exit codes: 0 reverted (or already reverted), 1 refused or failed (never
applied, another apply running, account database unreachable), 2 usage or
configuration error, 130 interrupted (re-run to resume).`,
		Example: `  lapse revert lapse-data/changesets/2026-03-01 --dry-run
  PGPASSWORD=… lapse revert lapse-data/changesets/2026-03-01 --by alice`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.dir = args[0]
			return runRevert(cmd.Context(), o, g)
		},
	}
	addApplyFlags(cmd, &o)
	return cmd
}

func runRevert(ctx context.Context, o applyOptions, g *globalOptions) error {
	s, err := setupApply(ctx, o, g)
	if err != nil {
		return err
	}
	defer s.close()
	res, err := apply.Revert(ctx, s.opts)
	if err != nil {
		return err
	}
	return s.done(ctx, g, res)
}
