package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/atomicfile"
	"github.com/lapse-dev/lapse/sim"
)

func init() { register(newSimCmd) }

const simNote = "This is a SIMULATION: a seeded, made-up world served over loopback; no real registry is asked."

// worldOptions are the flags that define a simulated world; the same
// values mean the same world in every `lapse sim` command.
type worldOptions struct {
	seed    uint64
	start   string
	emails  int
	domains int
}

func (o *worldOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.Uint64Var(&o.seed, "seed", 1, "world seed (simulation)")
	f.StringVar(&o.start, "start", "2026-01-01", "day 0 of the simulated clock (YYYY-MM-DD)")
	f.IntVar(&o.emails, "emails", 0, "simulated addresses (default 20000, or 5 per domain with --domains)")
	f.IntVar(&o.domains, "domains", 0, "simulated registrable domains (default: derived from --emails)")
}

func (o *worldOptions) params() (sim.Params, error) {
	start, err := time.Parse(time.DateOnly, o.start)
	if err != nil {
		return sim.Params{}, usagef("--start %q: want a date like 2026-01-01", o.start)
	}
	if o.emails < 0 || o.domains < 0 {
		return sim.Params{}, usagef("--emails and --domains must not be negative")
	}
	return sim.Params{Seed: o.seed, Start: start, Emails: o.emails, Domains: o.domains}, nil
}

// simDate parses --date (empty: the world's start).
func simDate(flag string, p sim.Params) (time.Time, error) {
	if flag == "" {
		return p.Start, nil
	}
	d, err := time.Parse(time.DateOnly, flag)
	if err != nil {
		return time.Time{}, usagef("--date %q: want a date like 2026-02-15", flag)
	}
	return d, nil
}

func newSimCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Registry simulator (a simulation): serve, seed and judge a made-up world",
		Long: `The registry simulator builds a seeded world of users, addresses and domains
whose registrations age day by day (expiry, grace, redemption, pending delete,
release, re-registration by someone else), serves it over loopback as Domainr,
Fastly, RDAP and WHOIS, and writes the ground truth beside it.

` + simNote,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newSimServeCmd(g), newSimTruthCmd(g), newSimSeedCmd(g))
	return cmd
}

type simServeOptions struct {
	world         worldOptions
	date          string
	endpointsFile string
	faults        string
	perServer     [4]string // domainr, fastly, rdap, whois
	// ready, when set, is called once the endpoints file is written (tests).
	ready func(sim.Endpoints)
}

func newSimServeCmd(g *globalOptions) *cobra.Command {
	var o simServeOptions
	cmd := &cobra.Command{
		Use:   "serve --endpoints-file FILE",
		Short: "Serve the simulated world as Domainr, Fastly, RDAP and WHOIS on loopback (a simulation)",
		Long: `Start simulated Domainr, Fastly, RDAP and WHOIS servers on free 127.0.0.1 ports
and write a JSON file naming each endpoint, with under "config" a ready lapse
TOML configuration pointing lapse's providers at them (key files are written
next to the endpoints file). Runs until interrupted.

Control: POST <control>/sim/advance?days=N moves the clock; GET <control>/sim/date.

Faults, per server (--faults-domainr, --faults-fastly, --faults-rdap,
--faults-whois) or for all (--faults), as key=value pairs:
  latency=20ms rate=50 burst=10 retry_after=1s error=0.02 reset=0.01
  timeout=0.01 hang=5s malformed=0.01 unknown=0.05 (Domainr/Fastly)

` + simNote,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSimServe(cmd.Context(), g, o)
		},
	}
	o.world.addFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&o.date, "date", "", "simulated date to start the clock at (default --start)")
	f.StringVar(&o.endpointsFile, "endpoints-file", "", "write the endpoints JSON here (required)")
	f.StringVar(&o.faults, "faults", "", "fault spec for every server (see above)")
	for i, n := range []string{"domainr", "fastly", "rdap", "whois"} {
		f.StringVar(&o.perServer[i], "faults-"+n, "", "fault spec for the simulated "+n+" server")
	}
	return cmd
}

func runSimServe(ctx context.Context, g *globalOptions, o simServeOptions) error {
	if o.endpointsFile == "" {
		return usagef("sim serve: --endpoints-file is required (where to write the endpoints JSON)")
	}
	p, err := o.world.params()
	if err != nil {
		return err
	}
	date, err := simDate(o.date, p)
	if err != nil {
		return err
	}
	all, err := sim.ParseFaults(o.faults, sim.Faults{})
	if err != nil {
		return usagef("--faults: %v", err)
	}
	var fs [4]sim.Faults
	for i, n := range []string{"domainr", "fastly", "rdap", "whois"} {
		if fs[i], err = sim.ParseFaults(o.perServer[i], all); err != nil {
			return usagef("--faults-%s: %v", n, err)
		}
	}
	dir, err := filepath.Abs(filepath.Dir(o.endpointsFile))
	if err != nil {
		return fmt.Errorf("sim serve: %w", err)
	}
	w := sim.NewWorld(p)
	w.SetDate(date)
	srv, err := sim.Start(ctx, w, sim.ServerOptions{Domainr: fs[0], Fastly: fs[1], RDAP: fs[2], WHOIS: fs[3], Dir: dir, Log: g.log})
	if err != nil {
		return usageError{err}
	}
	defer srv.Close()
	b, err := json.MarshalIndent(srv.Endpoints(), "", "  ")
	if err != nil {
		return fmt.Errorf("sim serve: %w", err)
	}
	if err := atomicfile.WriteFile(o.endpointsFile, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("sim serve: endpoints file: %w", err)
	}
	g.log.Info("simulator serving (a simulation)", "endpoints_file", o.endpointsFile, "date", w.Date().Format(time.DateOnly),
		"domains", len(w.Domains), "addresses", len(w.Emails), "control", srv.Endpoints().Control)
	if o.ready != nil {
		o.ready(srv.Endpoints())
	}
	<-ctx.Done()
	return ctx.Err()
}

type simTruthOptions struct {
	world     worldOptions
	date      string
	out       string
	addresses string
}

func newSimTruthCmd(g *globalOptions) *cobra.Command {
	var o simTruthOptions
	cmd := &cobra.Command{
		Use:   "truth --date D --out FILE [--addresses FILE]",
		Short: "Write the simulated world's ground truth for a date (a simulation)",
		Long: `Write each simulated domain's true state on --date (domain, suffix, kind,
state, registered_at, expires_at, epoch, delegated) to --out, and with
--addresses each address's truth (email_id, user_id, email, domain,
owner_epoch, state, should_flag, at_risk, risk_start, registrable_at,
reregistered_at, mail_at_risk, mail_risk_start, mail_registrable_at,
mail_via: the mail path, an MX host's or name server's domain lapsed or
changed hands while the address's own domain is healthy). CSV or Parquet
by the file's extension.

` + simNote,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSimTruth(g, o)
		},
	}
	o.world.addFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&o.date, "date", "", "the simulated date (default --start)")
	f.StringVar(&o.out, "out", "", "domain truth file, .csv or .parquet (required)")
	f.StringVar(&o.addresses, "addresses", "", "address truth file, .csv or .parquet")
	return cmd
}

func runSimTruth(g *globalOptions, o simTruthOptions) error {
	if o.out == "" {
		return usagef("sim truth: --out FILE is required (.csv or .parquet)")
	}
	for _, f := range []string{o.out, o.addresses} {
		if ext := filepath.Ext(f); f != "" && ext != ".csv" && ext != ".parquet" {
			return usagef("sim truth: %s: want a .csv or .parquet file name", f)
		}
	}
	p, err := o.world.params()
	if err != nil {
		return err
	}
	date, err := simDate(o.date, p)
	if err != nil {
		return err
	}
	w := sim.NewWorld(p)
	if err := sim.WriteDomainTruth(o.out, w.DomainTruth(date)); err != nil {
		return err
	}
	if o.addresses != "" {
		if err := sim.WriteAddressTruth(o.addresses, w.AddressTruth(date)); err != nil {
			return err
		}
	}
	g.log.Info("simulated truth written", "date", date.Format(time.DateOnly), "domains", o.out, "addresses", o.addresses)
	return nil
}

type simSeedOptions struct {
	world   worldOptions
	date    string
	to      string
	table   string
	replace bool
}

func newSimSeedCmd(g *globalOptions) *cobra.Command {
	var o simSeedOptions
	cmd := &cobra.Command{
		Use:   "seed --to postgres://DSN|csv:PATH|jsonl:PATH",
		Short: "Write the simulated account table (PyPI's user_emails) as of a date (a simulation)",
		Long: `Write the simulated population as it stands on --date as PyPI warehouse's
user_emails table (id, user_id, email, verified, "primary", unverify_reason,
domain_last_checked, domain_last_status, plus created and verified_at): a new
PostgreSQL table filled with COPY, or a CSV/JSONL file with the same field
names.

` + simNote,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSimSeed(cmd.Context(), g, o)
		},
	}
	o.world.addFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&o.date, "date", "", "the simulated date (default --start)")
	f.StringVar(&o.to, "to", "", "target: postgres://…, csv:PATH or jsonl:PATH (required)")
	f.StringVar(&o.table, "table", "user_emails", "PostgreSQL table to create")
	f.BoolVar(&o.replace, "replace", false, "drop an existing PostgreSQL table first")
	return cmd
}

func runSimSeed(ctx context.Context, g *globalOptions, o simSeedOptions) error {
	if o.to == "" {
		return usagef("sim seed: --to is required: postgres://DSN, csv:PATH or jsonl:PATH")
	}
	if kind, _ := config.ParseSource(o.to); kind == "" {
		return usagef("sim seed: --to %q: want postgres://DSN, csv:PATH or jsonl:PATH", o.to)
	}
	p, err := o.world.params()
	if err != nil {
		return err
	}
	date, err := simDate(o.date, p)
	if err != nil {
		return err
	}
	w := sim.NewWorld(p)
	rows := w.Addresses(date)
	if err := sim.Seed(ctx, o.to, rows, sim.SeedOptions{Table: o.table, Replace: o.replace}); err != nil {
		return err
	}
	g.log.Info("simulated accounts seeded", "date", date.Format(time.DateOnly), "rows", len(rows))
	return nil
}
