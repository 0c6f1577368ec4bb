// Package providers wires the status providers (RDAP, WHOIS, Domainr,
// Fastly) with their politeness wrappers into the provider chain, from the
// configuration. The resolve stage and `lapse check` share Build.
//
// It lives apart from package status because the providers import status
// for its error classes: status itself cannot import them.
package providers

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sources/domainr"
	"github.com/lapse-dev/lapse/sources/fastly"
	"github.com/lapse-dev/lapse/sources/rdap"
	"github.com/lapse-dev/lapse/sources/status"
	"github.com/lapse-dev/lapse/sources/whois"
)

// Names are the providers a chain may name, in config and --source.
var Names = []string{"domainr", "fastly", "rdap", "whois"}

// Deps are Build's dependencies; zero values take production defaults.
type Deps struct {
	// Transport carries every HTTP request (default http.DefaultTransport);
	// the simulator and tests inject theirs.
	Transport http.RoundTripper
	Now       func() time.Time
	// Sleep is the retries' wait (tests make it instant).
	Sleep func(ctx context.Context, d time.Duration) error
	Log   *slog.Logger
	// Getenv reads secrets' environment variables (default os.LookupEnv
	// via config.ReadSecret); cmd passes its own environment.
	Getenv func(key string) (string, bool)
	// Only restricts the chain to one provider ("rdap", "whois",
	// "domainr", "fastly"); "" or "chain" uses the configured chain.
	Only string
	// UserAgent is sent with every HTTP request (default
	// config.DefaultUserAgent).
	UserAgent string
	// Dial opens WHOIS connections (default a net.Dialer).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Order returns the provider names of the chain the config asks for:
// providers.chain when set, otherwise Fastly and/or Domainr (when their key
// is configured), then RDAP, then WHOIS.
func Order(cfg config.Config, d Deps) ([]string, error) {
	p := cfg.Providers
	if len(p.Chain) > 0 {
		seen := map[string]bool{}
		var out []string
		for _, n := range p.Chain {
			n = strings.ToLower(strings.TrimSpace(n))
			if !slices.Contains(Names, n) {
				return nil, fmt.Errorf("%w: providers.chain names %q: want some of %s", config.ErrConfig, n, strings.Join(Names, ", "))
			}
			if seen[n] {
				return nil, fmt.Errorf("%w: providers.chain names %q twice", config.ErrConfig, n)
			}
			seen[n] = true
			out = append(out, n)
		}
		return out, nil
	}
	var out []string
	if k, err := secret(d, "providers.fastly key", p.Fastly.KeyEnv, p.Fastly.KeyFile); err != nil {
		return nil, err
	} else if k != "" {
		out = append(out, "fastly")
	}
	id, key, err := domainrSecrets(cfg, d)
	if err != nil {
		return nil, err
	}
	if id.value != "" || key.value != "" {
		out = append(out, "domainr")
	}
	return append(out, "rdap", "whois"), nil
}

// Build returns the provider lapse asks: the chain of Order (or the one
// provider of d.Only, still as a chain so failures become unknown
// Lifecycles with evidence), each provider behind its politeness wrappers.
//
// Call it once per run and share the result: the rate limiters, breakers,
// budgets and the stop after a 401 live in the returned provider.
func Build(cfg config.Config, d Deps) (status.Provider, error) {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Transport == nil {
		d.Transport = http.DefaultTransport
	}
	if d.UserAgent == "" {
		d.UserAgent = config.DefaultUserAgent
	}
	var names []string
	switch d.Only {
	case "", "chain":
		var err error
		if names, err = Order(cfg, d); err != nil {
			return nil, err
		}
	default:
		if !slices.Contains(Names, d.Only) {
			return nil, fmt.Errorf("%w: source %q: want chain, %s", config.ErrConfig, d.Only, strings.Join(Names, ", "))
		}
		names = []string{d.Only}
	}
	rules := lifecycle.DefaultRules
	if w := cfg.Policy.WatchWindow.Std(); w > 0 {
		rules.WatchWindow = w
	}
	var ps []status.Provider
	for _, n := range names {
		p, err := build(n, cfg, d, rules)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return status.NewChain(ps, status.ChainOptions{Now: d.Now, Log: d.Log})
}

func build(name string, cfg config.Config, d Deps, rules lifecycle.Rules) (status.Provider, error) {
	pc := cfg.Providers
	switch name {
	case "domainr":
		id, key, err := domainrSecrets(cfg, d)
		if err != nil {
			return nil, err
		}
		if id.value == "" && key.value == "" {
			return nil, fmt.Errorf("%w: domainr: no client_id or mashape key: set %s (providers.domainr.client_id_env / client_id_file)", config.ErrConfig, orDefault(pc.Domainr.ClientIDEnv, "LAPSE_DOMAINR_CLIENT_ID"))
		}
		p, err := domainr.New(domainr.Config{
			BaseURL: pc.Domainr.BaseURL, ClientID: id.value, MashapeKey: key.value,
			Client: httpClient(d, pc.Domainr.Limits), Now: d.Now, Rules: &rules,
		})
		if err != nil {
			return nil, fmt.Errorf("%w: %v", config.ErrConfig, err)
		}
		// The 401 names where the refused key came from.
		hint := "check " + id.from
		if id.value == "" {
			hint = "check " + key.from
		}
		return polite(p, pc.Domainr.Limits, d, hint, nil), nil
	case "fastly":
		key, err := secretFrom(d, "providers.fastly key", pc.Fastly.KeyEnv, pc.Fastly.KeyFile, "providers.fastly.key_file")
		if err != nil {
			return nil, err
		}
		if key.value == "" {
			return nil, fmt.Errorf("%w: fastly: no API key: set %s (providers.fastly.key_env / key_file)", config.ErrConfig, orDefault(pc.Fastly.KeyEnv, "LAPSE_FASTLY_KEY"))
		}
		p, err := fastly.New(fastly.Config{
			BaseURL: pc.Fastly.BaseURL, Key: key.value,
			Client: httpClient(d, pc.Fastly.Limits), Now: d.Now, Rules: &rules,
		})
		if err != nil {
			return nil, fmt.Errorf("%w: %v", config.ErrConfig, err)
		}
		return polite(p, pc.Fastly.Limits, d, "check "+key.from, nil), nil
	case "rdap":
		l := pc.RDAP.Limits
		// RDAP servers differ per TLD: the rate limit is per remote host,
		// in the transport, where the host is known.
		hosts := &status.HostLimits{Rate: l.RatePerSecond, Burst: l.Burst}
		cacheDir := ""
		if cfg.DataDir != "" {
			cacheDir = filepath.Join(cfg.DataDir, "rdap")
		}
		p, err := rdap.New(rdap.Config{
			BootstrapURL:            pc.RDAP.BootstrapURL,
			BootstrapMaxAge:         pc.RDAP.BootstrapMaxAge.Std(),
			DisableEmbeddedFallback: !pc.RDAP.EmbeddedFallback,
			CacheDir:                cacheDir,
			Servers:                 pc.RDAP.Servers,
			Transport:               &status.RateTransport{Next: d.Transport, Limits: hosts},
			Timeout:                 l.Timeout.Std(),
			UserAgent:               d.UserAgent,
			Now:                     d.Now,
			Rules:                   rules,
			Logger:                  d.Log,
		})
		if err != nil {
			return nil, fmt.Errorf("%w: rdap: %v", config.ErrConfig, err)
		}
		pol := politeness(l, d, "", status.TLD)
		pol.Limiter = nil
		return status.Polite(p, pol), nil
	case "whois":
		return buildWHOIS(cfg, d, rules)
	}
	return nil, fmt.Errorf("%w: unknown provider %q", config.ErrConfig, name)
}

// politeness fills the wrappers' settings from a config section and deps.
func politeness(l config.Limits, d Deps, hint string, key func(string) string) status.Politeness {
	pol := status.FromLimits(l)
	pol.UnauthorizedHint = hint
	pol.Retry.Sleep = d.Sleep
	pol.Retry.Log = d.Log
	pol.Log = d.Log
	pol.Breaker.Key, pol.Breaker.Now = key, d.Now
	return pol
}

func polite(p status.Provider, l config.Limits, d Deps, hint string, key func(string) string) status.Provider {
	return status.Polite(p, politeness(l, d, hint, key))
}

func httpClient(d Deps, l config.Limits) *http.Client {
	return &http.Client{Transport: &status.UserAgentTransport{Next: d.Transport, UserAgent: d.UserAgent}, Timeout: l.Timeout.Std()}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func domainrSecrets(cfg config.Config, d Deps) (id, key sourcedSecret, err error) {
	c := cfg.Providers.Domainr
	if id, err = secretFrom(d, "providers.domainr client_id", c.ClientIDEnv, c.ClientIDFile, "providers.domainr.client_id_file"); err != nil {
		return id, key, err
	}
	if key, err = secretFrom(d, "providers.domainr mashape key", c.MashapeKeyEnv, c.MashapeKeyFile, "providers.domainr.mashape_key_file"); err != nil {
		return id, key, err
	}
	return id, key, nil
}

// sourcedSecret is a secret and where it came from, for messages: its
// environment variable's name, or its file setting and the file's path.
type sourcedSecret struct {
	value config.Secret
	from  string
}

// secret reads a key from d.Getenv (when given) or the process
// environment, then from its file.
func secret(d Deps, what, env, file string) (config.Secret, error) {
	s, err := secretFrom(d, what, env, file, "")
	return s.value, err
}

// secretFrom is secret saying where the key came from; fileSetting names
// the setting of file.
func secretFrom(d Deps, what, env, file, fileSetting string) (sourcedSecret, error) {
	if d.Getenv != nil {
		if env != "" {
			if v, ok := d.Getenv(env); ok && v != "" {
				return sourcedSecret{config.Secret(v), env}, nil
			}
		}
		env = ""
	}
	s, err := config.ReadSecret(what, env, file)
	if err != nil {
		return sourcedSecret{}, fmt.Errorf("%w: %v", config.ErrConfig, err)
	}
	// ReadSecret takes a set, non-empty variable first, then the file.
	from := fileSetting + " (" + file + ")"
	if v, ok := os.LookupEnv(env); env != "" && ok && v != "" {
		from = env
	}
	return sourcedSecret{s, from}, nil
}

// buildWHOIS wires port-43 WHOIS. Its rate limit and breaker are per TLD:
// each TLD's registry runs its own server (referral hops to registrars
// count against the TLD that led there).
func buildWHOIS(cfg config.Config, d Deps, rules lifecycle.Rules) (status.Provider, error) {
	wc := cfg.Providers.WHOIS
	cacheDir := ""
	if cfg.DataDir != "" {
		cacheDir = filepath.Join(cfg.DataDir, "whois")
	}
	p, err := whois.New(whois.Config{
		Servers:    wc.Servers,
		IANAServer: wc.IANAServer,
		MaxBytes:   wc.MaxBytes,
		Timeout:    wc.Timeout.Std(),
		Dial:       d.Dial,
		CacheDir:   cacheDir,
		Now:        d.Now,
		Rules:      rules,
		Logger:     d.Log,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: whois: %v", config.ErrConfig, err)
	}
	// The timeout goes below the per-TLD limiter so waiting for a token
	// does not eat into the server's time.
	limited := status.RateLimitBy(status.Timeout(p, wc.Timeout.Std()), &status.HostLimits{Rate: wc.RatePerSecond, Burst: wc.Burst}, status.TLD)
	pol := politeness(wc.Limits, d, "", status.TLD)
	pol.Limiter, pol.Timeout = nil, 0
	return status.Polite(limited, pol), nil
}
