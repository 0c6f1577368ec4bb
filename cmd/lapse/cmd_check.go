package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/lapse-dev/lapse/cache"
	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/pipeline"
	"github.com/lapse-dev/lapse/sources/address"
	"github.com/lapse-dev/lapse/sources/status/providers"
)

func init() { register(newCheckCmd) }

// checkOptions are `lapse check`'s flags.
type checkOptions struct {
	source  string
	noCache bool
	// now and sleep are injected by tests; nil means the wall clock.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

func (o *checkOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.source, "source", "chain", "provider to ask: chain, rdap, whois, domainr or fastly")
	f.BoolVar(&o.noCache, "no-cache", false, "ignore the cache: always ask the providers and store nothing")
}

func newCheckCmd(g *globalOptions) *cobra.Command {
	var o checkOptions
	cmd := &cobra.Command{
		Use:   "check DOMAIN...",
		Short: "Look up the lifecycle of domains and print one JSON line each",
		Long: `check looks up each registrable domain (a host or an address is reduced to
its registrable domain) through the provider chain, or one provider with
--source, and prints one normalized Lifecycle per domain as a JSON line, with
the evidence of every source asked.

With --source chain (the default) a fresh cache entry answers without a
lookup, and new answers are stored in the cache; --no-cache skips both.
A single --source never reads or writes the cache.

A failed lookup is state "unknown" with the error recorded, never "available".`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCheck(cmd.Context(), g, o, args)
		},
	}
	o.AddFlags(cmd)
	return cmd
}

// runCheck looks up domains and writes JSON lines to g.stdout, in the order
// given.
func runCheck(ctx context.Context, g *globalOptions, o checkOptions, args []string) error {
	switch o.source {
	case "chain", "rdap", "whois", "domainr", "fastly":
	default:
		return usagef("--source %q: want chain, rdap, whois, domainr or fastly", o.source)
	}
	domains := make([]string, 0, len(args))
	for _, a := range args {
		d, err := registrable(a)
		if err != nil {
			return usageError{err}
		}
		domains = append(domains, d)
	}
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	now := o.now
	if now == nil {
		now = time.Now
	}
	p, err := providers.Build(cfg, providers.Deps{
		Now:    now,
		Sleep:  o.sleep,
		Log:    g.log,
		Only:   o.source,
		Getenv: func(k string) (string, bool) { return lookupEnv(g.environ, k) },
	})
	if err != nil {
		return usageError{err}
	}
	if o.source == "chain" && !o.noCache {
		copts := cacheOptions(cfg, g)
		copts.Now = now
		c, err := cache.Open(pipeline.CacheDir(cfg), copts)
		if err != nil {
			return fmt.Errorf("check: %w (or use --no-cache)", err)
		}
		defer c.Close()
		p = c.Provider(p, g.log)
	}
	results := make([]lifecycle.Lifecycle, len(domains))
	errs := make([]error, len(domains))
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, cfg.Resolve.Concurrency))
	for i, d := range domains {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			// Only the caller's context or the cache ends a lookup with
			// an error: every provider failure is an unknown Lifecycle.
			results[i], errs[i] = p.Lookup(ctx, d)
		})
	}
	wg.Wait()
	enc := json.NewEncoder(g.stdout)
	for i := range domains {
		if errs[i] != nil {
			return fmt.Errorf("check %w", errs[i])
		}
		if err := enc.Encode(results[i]); err != nil {
			return fmt.Errorf("check: write: %w", err)
		}
	}
	return ctx.Err()
}

// registrable reduces a domain, host or address to its registrable domain.
func registrable(arg string) (string, error) {
	s := strings.TrimSpace(arg)
	if !strings.Contains(s, "@") {
		s = "check@" + s
	}
	r := address.Normalize(s)
	if r.Domain == "" {
		reason := r.InvalidReason
		if reason == "" {
			reason = "no registrable domain"
		}
		return "", fmt.Errorf("check: %q is not a registrable domain (%s): give a name like example.com", arg, reason)
	}
	return r.Domain, nil
}
