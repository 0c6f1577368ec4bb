package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/lapse-dev/lapse/cache"
	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/pipeline"
	"github.com/lapse-dev/lapse/sources/address"
	"github.com/lapse-dev/lapse/sources/status"
	"github.com/lapse-dev/lapse/sources/status/providers"
)

func init() { register(newCheckCmd) }

// checkOptions are `lapse check`'s flags.
type checkOptions struct {
	source  string
	noCache bool
	noMail  bool
	// now and sleep are injected by tests; nil means the wall clock.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

func (o *checkOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.source, "source", "chain", "provider to ask: chain, rdap, whois, domainr or fastly")
	f.BoolVar(&o.noCache, "no-cache", false, "ignore the cache: always ask the providers and store nothing")
	f.BoolVar(&o.noMail, "no-mail-path", false, "do not look up the MX and NS hosts (the mail path)")
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

A failed lookup is state "unknown" with the error recorded, never "available".

Each line also holds "status_api" (the status API's latest flags: source,
flags, checked_at, age_days) and "authoritative" (the latest RDAP/WHOIS
answer: source, state, registered_at, expires_at, checked_at, age_days),
from the cache entry (kept across nights) or, with --no-cache, from this
lookup; null when never asked. A chain that starts with a status API asks
RDAP/WHOIS too, so a lookup shows both.

With [dns] enabled (and no --no-mail-path), each line also holds
"mail_path": the domain's MX and NS lookup outcomes and every MX host and
name server outside the domain, with its registrable domain and that
domain's state, looked up like the domain itself (SERVFAIL and timeouts
are shown, never read as evidence).`,
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
	// A status API's "active" would end the chain without dates: the
	// authoritative providers are asked too.
	p = wanting{p, status.Want{Corroborate: true}}
	var c *cache.Cache
	if o.source == "chain" && !o.noCache {
		copts := cacheOptions(cfg, g)
		copts.Now = now
		c, err = cache.Open(night.CacheDir(cfg), copts)
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
	var mails []*mailLine
	if cfg.DNS.Enabled && !o.noMail {
		if mails, err = checkMailPaths(ctx, cfg, g, p, c, domains, now); err != nil {
			return err
		}
	}
	enc := json.NewEncoder(g.stdout)
	at := now().UTC()
	for i, d := range domains {
		if errs[i] != nil {
			return fmt.Errorf("check %w", errs[i])
		}
		facts := cache.FactsOf(results[i])
		if c != nil {
			e, found, err := c.Get(ctx, d)
			if err != nil {
				return fmt.Errorf("check %s: cache: %w", d, err)
			}
			if found {
				facts = e
			}
		}
		line := newCheckLine(results[i], facts, at)
		if mails != nil {
			line.MailPath = mails[i]
		}
		if err := enc.Encode(line); err != nil {
			return fmt.Errorf("check: write: %w", err)
		}
	}
	return ctx.Err()
}

// wanting asks its provider with a Want (a plain provider ignores it).
type wanting struct {
	status.Provider
	want status.Want
}

func (w wanting) Lookup(ctx context.Context, domain string) (lifecycle.Lifecycle, error) {
	return status.LookupWith(ctx, w.Provider, domain, w.want)
}

// checkLine is one line of lapse check: the Lifecycle, and the status
// API's and the authoritative providers' latest answers with their ages.
type checkLine struct {
	lifecycle.Lifecycle
	StatusAPI     *statusFacts `json:"status_api"`
	Authoritative *authFacts   `json:"authoritative"`
	MailPath      *mailLine    `json:"mail_path,omitempty"`
}

// mailLine is a domain's mail path in lapse check.
type mailLine struct {
	MX             string     `json:"mx"`
	NS             string     `json:"ns"`
	NullMX         bool       `json:"null_mx,omitempty"`
	NSFromReferral bool       `json:"ns_from_referral,omitempty"`
	Error          string     `json:"error,omitempty"`
	Hosts          []mailHost `json:"hosts"`
}

// mailHost is one MX host or name server outside the domain, with the
// state of its registrable domain.
type mailHost struct {
	Role         string           `json:"role"`
	Host         string           `json:"host"`
	Dep          string           `json:"domain"`
	Pref         int              `json:"pref,omitempty"`
	State        lifecycle.State  `json:"state"`
	Source       lifecycle.Source `json:"source,omitempty"`
	RegisteredAt *time.Time       `json:"registered_at,omitempty"`
	ExpiresAt    *time.Time       `json:"expires_at,omitempty"`
	Error        string           `json:"error,omitempty"`
}

// checkMailPaths looks up the mail path of each domain and the state of
// every dependency domain (once each, through p: the cache answers for
// a fresh one); with the cache, the mail paths are recorded there too.
func checkMailPaths(ctx context.Context, cfg config.Config, g *globalOptions, p status.Provider, c *cache.Cache,
	domains []string, now func() time.Time) ([]*mailLine, error) {
	r, err := pipeline.NewResolver(cfg.DNS, g.log, now)
	if err != nil {
		return nil, usageError{err}
	}
	out := make([]*mailLine, len(domains))
	deps := map[string]lifecycle.Lifecycle{}
	for i, d := range domains {
		a, err := r.Lookup(ctx, d)
		if err != nil {
			return nil, fmt.Errorf("check %s: mail path: %w", d, err)
		}
		ob := pipeline.MailObservation(a)
		if c != nil {
			if _, err := c.RecordMailPath(ctx, ob, cfg.DNS.Every.Std()); err != nil {
				return nil, fmt.Errorf("check %s: %w", d, err)
			}
		}
		m := &mailLine{MX: ob.MX, NS: ob.NS, NullMX: ob.NullMX, NSFromReferral: ob.NSFromReferral, Error: ob.Error, Hosts: []mailHost{}}
		for _, l := range ob.Links {
			lc, ok := deps[l.Dep]
			if !ok {
				if lc, err = p.Lookup(ctx, l.Dep); err != nil {
					return nil, fmt.Errorf("check %s: %w", l.Dep, err)
				}
				deps[l.Dep] = lc
			}
			m.Hosts = append(m.Hosts, mailHost{Role: l.Role, Host: l.Host, Dep: l.Dep, Pref: l.Pref, State: lc.State,
				Source: lc.Source, RegisteredAt: lc.RegisteredAt, ExpiresAt: lc.ExpiresAt, Error: lc.Error})
		}
		out[i] = m
	}
	return out, nil
}

type statusFacts struct {
	Source    lifecycle.Source `json:"source"`
	Flags     []string         `json:"flags"`
	CheckedAt time.Time        `json:"checked_at"`
	AgeDays   float64          `json:"age_days"`
}

type authFacts struct {
	Source       lifecycle.Source `json:"source"`
	State        lifecycle.State  `json:"state"`
	RegisteredAt *time.Time       `json:"registered_at"`
	ExpiresAt    *time.Time       `json:"expires_at"`
	CheckedAt    time.Time        `json:"checked_at"`
	AgeDays      float64          `json:"age_days"`
}

func newCheckLine(lc lifecycle.Lifecycle, e cache.Entry, now time.Time) checkLine {
	age := func(t time.Time) float64 { return math.Round(now.Sub(t).Hours()/24*10) / 10 }
	l := checkLine{Lifecycle: lc}
	if t := e.StatusCheckedAt; t != nil {
		l.StatusAPI = &statusFacts{Source: e.StatusSource, Flags: e.StatusFlags, CheckedAt: *t, AgeDays: age(*t)}
	}
	if t := e.AuthCheckedAt; t != nil {
		l.Authoritative = &authFacts{Source: e.AuthSource, State: e.AuthState, RegisteredAt: e.AuthRegisteredAt,
			ExpiresAt: e.AuthExpiresAt, CheckedAt: *t, AgeDays: age(*t)}
	}
	return l
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
