package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/sinks/changeset"
)

func init() { register(newReviewCmd) }

// reviewOptions are `lapse review`'s arguments and flags.
type reviewOptions struct {
	dir    string // "" = the newest changeset of the data dir
	format string
	top    int
}

func newReviewCmd(g *globalOptions) *cobra.Command {
	var o reviewOptions
	cmd := &cobra.Command{
		Use:   "review [CHANGESET_DIR]",
		Short: "Show a changeset for review: counts, largest domains, evidence, what is new, brake, integrity, approval",
		Long: `Show what a reviewer reads before approving a changeset folder
(DATA_DIR/changesets/YYYY-MM-DD; default: the newest one): the addresses to
un-verify by reason, state and TLD; the largest domains with sample evidence
(which sources said what, when); what is new since the last applied
changeset; the safety brake's verdict; whether the files still match
manifest.json (a changeset whose files changed cannot be approved); the
approval and apply state; and the manifest sha256 an approval pins.

It names domains and email ids, never addresses (they are in changeset.csv).
--format markdown is for a ticket, json for tooling. It writes nothing.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.dir = args[0]
			}
			return runReview(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.format, "format", changeset.FormatText, "output: text, markdown or json")
	f.IntVar(&o.top, "top", 20, "how many of the largest domains to list")
	return cmd
}

func runReview(ctx context.Context, g *globalOptions, o reviewOptions) error {
	if !slices.Contains(changeset.ReviewFormats, o.format) {
		return usagef("review: --format %q: want %s", o.format, strings.Join(changeset.ReviewFormats, ", "))
	}
	if o.top < 1 {
		return usagef("review: --top %d: want at least 1", o.top)
	}
	dir := o.dir
	if dir == "" {
		c, err := g.loadConfig()
		if err != nil {
			return err
		}
		if dir, err = latestChangeset(c.DataDir); err != nil {
			return err
		}
	} else if err := checkChangesetDir(dir); err != nil {
		return err
	}
	r, err := changeset.Review(ctx, dir, changeset.ReviewOptions{TopDomains: o.top})
	if err != nil {
		return err
	}
	return r.Render(g.stdout, o.format)
}

// changesetsDir is the data dir's folder of changesets.
func changesetsDir(dataDir string) string { return night.Dir(dataDir).Changesets() }

// latestChangeset is the data dir's newest changeset folder.
func latestChangeset(dataDir string) (string, error) {
	dir, err := changeset.Latest(changesetsDir(dataDir))
	if errors.Is(err, changeset.ErrNoChangeset) {
		return "", fmt.Errorf("%w; or name a changeset folder", err)
	}
	return dir, err
}

// checkChangesetDir is the usage error of a CHANGESET_DIR argument that is
// not a folder.
func checkChangesetDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return usagef("changeset folder %s does not exist (changesets are DATA_DIR/changesets/YYYY-MM-DD)", dir)
	case err != nil:
		return err
	case !fi.IsDir():
		return usagef("%s is not a folder: name a changeset folder (DATA_DIR/changesets/YYYY-MM-DD)", dir)
	}
	return nil
}
