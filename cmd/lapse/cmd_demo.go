package main

import (
	"context"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/pipeline/demo"
	"github.com/lapse-dev/lapse/sim"
)

func init() { register(newDemoCmd) }

// demoOptions are `lapse demo`'s flags.
type demoOptions struct {
	nights   int
	emails   int
	seed     uint64
	dir      string
	start    string
	policies []string
}

func newDemoCmd(g *globalOptions) *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run many simulated nights offline and score the verdicts (a simulation)",
		Long: `Run lapse night after night against the registry SIMULATOR, offline: a seeded
world of users, addresses and domains whose registrations lapse, enter grace,
redemption and pending delete, become available and are sometimes registered
again by someone else. Nothing here touches a real registry.

Every night the simulator's account table is exported, the nightly job runs
exactly as "lapse run" does (snapshot, plan, resolve, classify, publish) into
DIR/default, and the changeset is applied back to the simulated accounts.
The same world is run again with PyPI's rule (Domainr for every domain every
night) into DIR/pypi. --policies domainr-first adds lapse's policy over a
Domainr, RDAP, WHOIS chain (DIR/domainr-first: Domainr answers, RDAP/WHOIS
are asked on their own schedule for the dates). A table per night is printed
and DIR/score.json compares them against the simulator's truth: precision,
recall of at-risk addresses, median lead days, resurrections caught and
lookups spent (in all and by source).

Re-running with the same flags in the same DIR resumes where it stopped and
writes the same files.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f := cmd.Flag("log-level"); f != nil && !f.Changed {
				// Each night logs its stages; the table says enough.
				g.logLevel = "warn"
				if err := g.setupLogging(); err != nil {
					return err
				}
			}
			return runDemo(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.nights, "nights", 60, "simulated nights to run")
	f.IntVar(&o.emails, "emails", sim.DefaultEmails, "addresses in the simulated world")
	f.Uint64Var(&o.seed, "seed", 1, "seed of the simulated world")
	f.StringVar(&o.dir, "dir", "demo", "folder for the data dirs and score.json")
	f.StringVar(&o.start, "start", "2026-01-01", "date of the first simulated night, YYYY-MM-DD")
	f.StringSliceVar(&o.policies, "policies", demo.DefaultPolicies, "policies to run: "+strings.Join(demo.Policies, ", "))
	return cmd
}

func runDemo(ctx context.Context, g *globalOptions, o demoOptions) error {
	start, err := night.Parse(o.start)
	if err != nil {
		return usagef("--start %q: want YYYY-MM-DD", o.start)
	}
	if o.nights < 1 || o.nights > 3650 {
		return usagef("--nights %d: want 1..3650", o.nights)
	}
	if o.emails < 1 {
		return usagef("--emails %d: want at least 1", o.emails)
	}
	if o.dir == "" {
		return usagef("--dir is empty: name a folder for the demo's data")
	}
	for _, p := range o.policies {
		if !slices.Contains(demo.Policies, p) {
			return usagef("--policies %q: want some of %s", p, strings.Join(demo.Policies, ", "))
		}
	}
	_, err = demo.Run(ctx, demo.Options{
		Nights: o.nights, Emails: o.emails, Seed: o.seed, Dir: o.dir, Start: start,
		Policies: o.policies, Out: g.stdout, Log: g.log,
	})
	return err
}
