package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/sinks/changeset"
	"github.com/lapse-dev/lapse/sinks/lifecycledb"
)

func init() { register(newApproveCmd) }

// approveOptions are `lapse approve`'s arguments and flags.
type approveOptions struct {
	dir           string // "" = the newest changeset of the data dir
	by, note      string
	overrideBrake bool
	sha256        string
	// now is the clock of the approval; tests replace it.
	now func() time.Time
}

func newApproveCmd(g *globalOptions) *cobra.Command {
	o := approveOptions{now: time.Now}
	cmd := &cobra.Command{
		Use:   "approve [CHANGESET_DIR] --by NAME [--note TEXT] [--override-brake] [--sha256 SHA]",
		Short: "Approve a reviewed changeset: pin its manifest sha256, by whom and when",
		Long: `Approve a changeset folder (DATA_DIR/changesets/YYYY-MM-DD; default: the
newest one) after reviewing it with lapse review. The approval pins the
sha256 of its manifest.json, which holds the sha256 of every file: it is
written beside the changeset (approval.json) and recorded in
DATA_DIR/lapse.duckdb (table approvals). lapse apply applies only an
approved changeset whose files still match.

A changeset whose files no longer match its manifest cannot be approved. A
changeset blocked by the safety brake needs --override-brake and a --note
saying why. --sha256 (the manifest sha256 lapse review printed, or its
first 12 or more hex digits) refuses a folder that changed since the review.
Approving the same manifest again changes nothing. While a lapse run holds
the data dir nothing is approved.

Exit codes: 0 approved (or already), 1 refused or failed, 2 usage error.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.dir = args[0]
			}
			return runApprove(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.by, "by", "", "who reviewed and approves the changeset (required)")
	f.StringVar(&o.note, "note", "", "why: required with --override-brake")
	f.BoolVar(&o.overrideBrake, "override-brake", false, "approve a changeset the safety brake blocked (needs --note)")
	f.StringVar(&o.sha256, "sha256", "", "the manifest sha256 that was reviewed (or a prefix of 12+ hex digits)")
	return cmd
}

func runApprove(ctx context.Context, g *globalOptions, o approveOptions) error {
	if strings.TrimSpace(o.by) == "" {
		return usagef("approve: --by NAME is required: who reviewed the changeset")
	}
	if o.overrideBrake && strings.TrimSpace(o.note) == "" {
		return usagef("approve: --override-brake needs a --note saying why the brake is overridden")
	}
	if s := strings.TrimSpace(o.sha256); s != "" {
		if !isHex(s) || len(s) < 12 || len(s) > 64 {
			return usagef("approve: --sha256 %q: want the manifest sha256 lapse review printed (12 to 64 hex digits)", o.sha256)
		}
	}
	if o.now == nil {
		o.now = time.Now
	}
	c, err := g.loadConfig()
	if err != nil {
		return err
	}
	dir := o.dir
	if dir == "" {
		if dir, err = latestChangeset(c.DataDir); err != nil {
			return err
		}
	} else {
		if err := checkChangesetDir(dir); err != nil {
			return err
		}
		if err := checkInDataDir(c.DataDir, dir); err != nil {
			return err
		}
	}
	dbPath := night.Dir(c.DataDir).DB()
	if _, err := os.Stat(dbPath); errors.Is(err, fs.ErrNotExist) {
		return usagef("no lifecycle database at %s: approvals are recorded there (is --data-dir right?)", dbPath)
	}

	// The lifecycle database first: while a night holds it nothing is
	// written. Then approval.json (what apply checks), then its row; a
	// row that failed is recorded by approving again.
	db, err := lifecycledb.Open(dbPath)
	if errors.Is(err, lifecycledb.ErrInUse) {
		return fmt.Errorf("a lapse run is using %s; approve after it finishes (nothing was approved): %w", c.DataDir, lifecycledb.ErrInUse)
	}
	if err != nil {
		return err
	}
	defer db.Close()

	prev, prevErr := changeset.ReadApproval(dir)
	a, already, err := changeset.Approve(dir, changeset.ApproveOptions{
		By: o.by, Note: o.note, OverrideBrake: o.overrideBrake, ExpectSHA256: o.sha256, Now: o.now(),
	})
	if err != nil {
		return err
	}
	if err := db.RecordApproval(ctx, lifecycledb.Approval{
		Date: a.Date, ManifestSHA256: a.ManifestSHA256, Status: a.Status, Flagged: a.Flagged,
		By: a.By, Note: a.Note, OverrideBrake: a.OverrideBrake, ApprovedAt: a.ApprovedAt,
	}); err != nil {
		return fmt.Errorf("%s written in %s but not recorded in %s: %w (run lapse approve again to record it)", changeset.FileApproval, dir, dbPath, err)
	}

	w := g.stdout
	at := a.ApprovedAt.UTC().Format(time.RFC3339)
	if already {
		fmt.Fprintf(w, "changeset %s already approved by %s at %s; nothing changed\n", dir, a.By, at)
	} else {
		if prevErr == nil && prev.ManifestSHA256 != a.ManifestSHA256 {
			fmt.Fprintf(w, "replacing the approval by %s at %s of manifest sha256 %s (the changeset was written again since)\n",
				prev.By, prev.ApprovedAt.UTC().Format(time.RFC3339), prev.ManifestSHA256)
		}
		fmt.Fprintf(w, "approved changeset %s (night %s, %s, %d addresses to un-verify) by %s at %s\n", dir, a.Date, a.Status, a.Flagged, a.By, at)
		switch {
		case a.OverrideBrake:
			fmt.Fprintln(w, "the safety brake is overridden for this changeset")
		case o.overrideBrake:
			fmt.Fprintln(w, "note: the changeset is not blocked: --override-brake changed nothing")
		}
	}
	fmt.Fprintf(w, "pinned manifest sha256 %s\n", a.ManifestSHA256)
	fmt.Fprintf(w, "next: lapse apply %s\n", dir)
	return nil
}

func isHex(s string) bool {
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return false
		}
	}
	return true
}

// checkInDataDir refuses a changeset folder outside the data dir's
// changesets: its approval is recorded in that data dir's lapse.duckdb.
func checkInDataDir(dataDir, dir string) error {
	want, got := realPath(changesetsDir(dataDir)), realPath(filepath.Dir(filepath.Clean(dir)))
	if want != got {
		return usagef("changeset %s is not in %s: its approval is recorded in the lifecycle database of the data dir it belongs to (pass that --data-dir)",
			dir, changesetsDir(dataDir))
	}
	return nil
}

func realPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	return p
}
