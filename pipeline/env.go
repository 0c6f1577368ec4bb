package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/lapse-dev/lapse/cache"
	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sinks/lifecycledb"
	"github.com/lapse-dev/lapse/sources/dns"
	"github.com/lapse-dev/lapse/sources/status"
	"github.com/lapse-dev/lapse/sources/status/providers"
)

// nightEnv holds what the stages share: the lifecycle database (open for
// the whole night), and the cache and provider chain, opened on first use
// so a night resuming at classify touches neither.
type nightEnv struct {
	opts      Options
	db        *lifecycledb.DB
	cache     *cache.Cache
	provider  status.Provider
	resolver  MailResolver
	transport *http.Transport
}

func openNightEnv(_ context.Context, opts Options) (*nightEnv, error) {
	db, err := lifecycledb.Open(night.Dir(opts.Config.DataDir).DB())
	if err != nil {
		return nil, err
	}
	return &nightEnv{opts: opts, db: db}, nil
}

func (e *nightEnv) Cache() (*cache.Cache, error) {
	if e.cache != nil {
		return e.cache, nil
	}
	c, err := cache.Open(night.CacheDir(e.opts.Config), cache.Options{Now: e.opts.Now, Logger: e.opts.Log})
	if err != nil {
		return nil, err
	}
	e.cache = c
	return c, nil
}

func (e *nightEnv) Provider() (status.Provider, error) {
	if e.provider != nil {
		return e.provider, nil
	}
	if e.opts.Provider != nil {
		e.provider = e.opts.Provider
		return e.provider, nil
	}
	p, err := providers.Build(e.opts.Config, e.deps())
	if err != nil {
		return nil, fmt.Errorf("providers: %w", err)
	}
	e.provider = p
	return p, nil
}

// MailPathOn reports whether the night looks at the mail path: [dns]
// enabled, a policy that reads it (pypi does not) and not the pypi
// comparison's every-domain run; a test night that injects its provider
// must inject its resolver too.
func (o Options) MailPathOn() bool {
	c := o.Config
	if !c.DNS.Enabled || c.Policy.Name == lifecycle.PolicyPyPI || o.CheckAll {
		return false
	}
	return o.Provider == nil || o.DNS != nil
}

// Resolver is the mail path's resolver, built on first use.
func (e *nightEnv) Resolver() (MailResolver, error) {
	if e.resolver != nil {
		return e.resolver, nil
	}
	if e.opts.DNS != nil {
		e.resolver = e.opts.DNS
		return e.resolver, nil
	}
	r, err := NewResolver(e.opts.Config.DNS, e.opts.Log, e.opts.Now)
	if err != nil {
		return nil, err
	}
	e.resolver = r
	return r, nil
}

// NewResolver builds the mail path's resolver from [dns].
func NewResolver(c config.DNSConfig, log *slog.Logger, now func() time.Time) (*dns.Resolver, error) {
	r, err := dns.New(dns.Config{
		Servers: c.Servers, ResolvConf: c.ResolvConf, Timeout: c.Timeout.Std(), Retries: c.Retries,
		RatePerSecond: c.RatePerSecond, Burst: c.Burst, ReferralPort: c.ReferralPort, Log: log, Now: now,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: dns: %w", config.ErrConfig, err)
	}
	return r, nil
}

func (e *nightEnv) deps() providers.Deps {
	if e.transport == nil {
		// Keep a connection per lookup in flight: the default transport
		// keeps two per host and would dial (and TLS-handshake) anew for
		// most lookups of a concurrent night.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = max(e.opts.Config.Resolve.Concurrency, 16)
		e.transport = t
	}
	return providers.Deps{Now: e.opts.Now, Log: e.opts.Log, Getenv: e.opts.Getenv, Transport: e.transport} // User-Agent: config.DefaultUserAgent
}

// Close closes what the night opened; the first error wins.
func (e *nightEnv) Close() error {
	var errs []error
	if e.cache != nil {
		errs = append(errs, e.cache.Close())
	}
	if c, ok := e.provider.(io.Closer); ok && e.opts.Provider == nil {
		errs = append(errs, c.Close())
	}
	if e.transport != nil {
		e.transport.CloseIdleConnections()
	}
	errs = append(errs, e.db.Close())
	return errors.Join(errs...)
}
