package rdap

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/atomicfile"
	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sources/address"
	"github.com/lapse-dev/lapse/sources/status"
)

// Defaults for the zero Config fields.
const (
	DefaultBootstrapURL    = "https://data.iana.org/rdap/dns.json"
	DefaultBootstrapMaxAge = 24 * time.Hour
	DefaultMaxBody         = status.DefaultMaxBody
	DefaultMaxRedirects    = 5
	DefaultTimeout         = 20 * time.Second
	// bootstrapRetry is how long a failed bootstrap refresh waits before
	// the next try, so an IANA outage does not cost a request per lookup.
	bootstrapRetry = 15 * time.Minute
)

// Config configures a Provider. Zero fields take the defaults above.
type Config struct {
	BootstrapURL    string
	BootstrapMaxAge time.Duration
	// DisableEmbeddedFallback refuses the embedded 2022 bootstrap even
	// with the default BootstrapURL (providers.rdap.embedded_fallback =
	// false). Another BootstrapURL never falls back to it: a mirror or a
	// test registry that cannot be reached must not send lookups to the
	// real registries' servers.
	DisableEmbeddedFallback bool
	// CacheDir holds the downloaded bootstrap file (dns.json); empty keeps
	// it in memory only.
	CacheDir string
	// Servers overrides the bootstrap per suffix: {"dev": "https://…/"}.
	Servers map[string]string
	// Client is the one HTTP client used for every request; nil builds one
	// over Transport (or http.DefaultTransport). Its redirect policy is
	// replaced by ours (bounded to MaxRedirects).
	Client       *http.Client
	Transport    http.RoundTripper
	Timeout      time.Duration // per request, on top of the caller's context
	MaxBody      int64
	MaxRedirects int
	UserAgent    string
	Now          func() time.Time
	Rules        lifecycle.Rules
	Logger       *slog.Logger
}

// Provider is the RDAP status provider. It is safe for concurrent use.
type Provider struct {
	cfg       Config
	client    *http.Client
	overrides map[string]string
	log       *slog.Logger

	fallback bool // the embedded bootstrap may stand in

	mu       sync.Mutex
	boot     *Bootstrap
	bootErr  error     // why there is no boot at all (until bootNext)
	bootNext time.Time // when to try refreshing boot
}

var _ status.Provider = (*Provider)(nil)

// New builds a Provider. It does no I/O: the bootstrap is loaded on the
// first lookup.
func New(cfg Config) (*Provider, error) {
	if cfg.BootstrapURL == "" {
		cfg.BootstrapURL = DefaultBootstrapURL
	}
	if cfg.BootstrapMaxAge <= 0 {
		cfg.BootstrapMaxAge = DefaultBootstrapMaxAge
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxRedirects <= 0 {
		cfg.MaxRedirects = DefaultMaxRedirects
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = config.DefaultUserAgent
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rules.WatchWindow == 0 {
		cfg.Rules = lifecycle.DefaultRules
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Provider{cfg: cfg, log: cfg.Logger, overrides: map[string]string{},
		fallback: !cfg.DisableEmbeddedFallback && cfg.BootstrapURL == DefaultBootstrapURL}
	for suffix, base := range cfg.Servers {
		u, err := url.Parse(base)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("rdap servers.%s = %q: want an http(s) base URL such as https://rdap.example/", suffix, base)
		}
		p.overrides[address.Fold(strings.TrimPrefix(suffix, "."))] = base
	}
	c := &http.Client{Transport: cfg.Transport}
	if cfg.Client != nil {
		cc := *cfg.Client
		c = &cc
	}
	max := cfg.MaxRedirects
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) > max {
			return fmt.Errorf("more than %d redirects", max)
		}
		return nil
	}
	p.client = c
	return p, nil
}

// Name is lifecycle.SourceRDAP.
func (p *Provider) Name() lifecycle.Source { return lifecycle.SourceRDAP }

// Server returns the RDAP base URL for domain, or status.ErrNoServer.
func (p *Provider) Server(ctx context.Context, domain string) (string, error) {
	if u, ok := longestSuffix(p.overrides, domain); ok {
		return u, nil
	}
	b, err := p.bootstrap(ctx)
	if err != nil {
		return "", err
	}
	if u, ok := b.Lookup(domain); ok {
		return u, nil
	}
	return "", fmt.Errorf("rdap %s: %w", domain, status.ErrNoServer)
}

// Lookup asks the domain's RDAP server. Throttling, timeouts, resets,
// server errors and unreadable answers are errors, never states.
func (p *Provider) Lookup(ctx context.Context, domain string) (lifecycle.Lifecycle, error) {
	domain = address.Fold(domain)
	base, err := p.Server(ctx, domain)
	if err != nil {
		return lifecycle.Lifecycle{}, err
	}
	u := strings.TrimSuffix(base, "/") + "/domain/" + url.PathEscape(domain)
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return lifecycle.Lifecycle{}, &status.PermanentError{Err: fmt.Errorf("rdap %s: %w", domain, err)}
	}
	req.Header.Set("Accept", "application/rdap+json")
	req.Header.Set("User-Agent", p.cfg.UserAgent)
	resp, err := p.client.Do(req)
	if err != nil {
		return lifecycle.Lifecycle{}, fmt.Errorf("rdap %s: %w", domain, err)
	}
	defer resp.Body.Close()
	body, err := status.ReadCapped(resp.Body, p.cfg.MaxBody)
	if err != nil {
		return lifecycle.Lifecycle{}, fmt.Errorf("rdap %s: reading answer from %s: %w", domain, resp.Request.URL.Host, err)
	}
	now := p.cfg.Now()
	l, err := parse(p.cfg.Rules, body, resp.StatusCode, domain, now, status.ParseRetryAfter(resp.Header.Get("Retry-After"), now))
	if err != nil {
		return lifecycle.Lifecycle{}, err
	}
	l.CheckedAt = now.UTC()
	return l.WithServer(resp.Request.URL.Hostname()), nil
}

// bootstrap returns the best bootstrap available: fresh in memory, fresh
// on disk, downloaded, stale on disk, then embedded (with the default URL
// only, see Config.DisableEmbeddedFallback), in that order; or, when there
// is none, an error naming the URL and the settings, kept (no new download)
// until the next retry.
func (p *Provider) bootstrap(ctx context.Context) (*Bootstrap, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.cfg.Now()
	if now.Before(p.bootNext) {
		if p.boot != nil {
			return p.boot, nil
		}
		if p.bootErr != nil {
			return nil, p.bootErr
		}
	}
	disk, diskAge := p.readCached(now)
	if disk != nil && diskAge < p.cfg.BootstrapMaxAge {
		p.boot, p.bootErr, p.bootNext = disk, nil, now.Add(p.cfg.BootstrapMaxAge-diskAge)
		return p.boot, nil
	}
	b, err := p.download(ctx, now)
	if err == nil {
		p.boot, p.bootErr, p.bootNext = b, nil, now.Add(p.cfg.BootstrapMaxAge)
		return p.boot, nil
	}
	if ctx.Err() != nil && p.boot == nil && disk == nil {
		return nil, ctx.Err() // the caller gave up: nothing learned
	}
	p.bootNext = now.Add(bootstrapRetry)
	switch {
	case p.boot != nil:
		p.log.Warn("rdap bootstrap refresh failed; keeping the copy in memory", "err", err)
	case disk != nil:
		p.log.Warn("rdap bootstrap download failed; using the cached copy", "err", err, "age", diskAge.Round(time.Minute))
		p.boot = disk
	case p.fallback:
		p.log.Warn("rdap bootstrap download failed and no cached copy; using the embedded 2022 copy", "err", err)
		p.boot, _ = ParseBootstrap(embeddedBootstrap)
	default:
		p.bootErr = &status.PermanentError{Err: p.noBootstrap(err)}
		p.log.Error("rdap: no bootstrap, every RDAP lookup fails until it can be downloaded", "err", p.bootErr)
		return nil, p.bootErr
	}
	return p.boot, nil
}

// noBootstrap explains a bootstrap that could be neither downloaded nor
// read from the cache, when the embedded copy may not stand in.
func (p *Provider) noBootstrap(err error) error {
	u := redactURL(p.cfg.BootstrapURL)
	why := err.Error()
	for _, prefix := range []string{"rdap bootstrap " + p.cfg.BootstrapURL + ": ", "rdap bootstrap: "} {
		why = strings.TrimPrefix(why, prefix)
	}
	cached := "no cached copy"
	if path := p.cachePath(); path != "" {
		cached += " at " + path
	}
	if p.cfg.BootstrapURL != DefaultBootstrapURL {
		return fmt.Errorf("rdap bootstrap %s (providers.rdap.bootstrap_url): %s, and %s; the embedded copy stands in only for the default URL, "+
			"so no RDAP server is asked: make the URL reachable or fix providers.rdap.bootstrap_url", u, why, cached)
	}
	return fmt.Errorf("rdap bootstrap %s: %s, and %s; providers.rdap.embedded_fallback is false, so the embedded copy does not stand in "+
		"and no RDAP server is asked", u, why, cached)
}

// redactURL drops a password from a URL for messages.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return s
}

func (p *Provider) cachePath() string {
	if p.cfg.CacheDir == "" {
		return ""
	}
	return filepath.Join(p.cfg.CacheDir, "dns.json")
}

func (p *Provider) readCached(now time.Time) (*Bootstrap, time.Duration) {
	path := p.cachePath()
	if path == "" {
		return nil, 0
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, 0
	}
	b, err := os.ReadFile(path)
	if err != nil {
		p.log.Warn("rdap bootstrap cache unreadable", "path", path, "err", err)
		return nil, 0
	}
	bs, err := ParseBootstrap(b)
	if err != nil {
		p.log.Warn("rdap bootstrap cache is corrupt; ignoring it", "path", path, "err", err)
		return nil, 0
	}
	return bs, max(now.Sub(fi.ModTime()), 0)
}

func (p *Provider) download(ctx context.Context, now time.Time) (*Bootstrap, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.cfg.BootstrapURL, nil)
	if err != nil {
		return nil, fmt.Errorf("rdap bootstrap %s: %w", p.cfg.BootstrapURL, err)
	}
	req.Header.Set("User-Agent", p.cfg.UserAgent)
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("rdap bootstrap: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("rdap bootstrap %s: HTTP %d", p.cfg.BootstrapURL, resp.StatusCode)
	}
	body, err := status.ReadCapped(resp.Body, 16<<20)
	if err != nil {
		return nil, fmt.Errorf("rdap bootstrap %s: %w", p.cfg.BootstrapURL, err)
	}
	b, err := ParseBootstrap(body)
	if err != nil {
		return nil, err
	}
	if path := p.cachePath(); path != "" {
		if err := atomicfile.WriteFile(path, body, 0o640); err != nil {
			p.log.Warn("rdap bootstrap: cannot cache the download", "path", path, "err", err)
		} else if err := os.Chtimes(path, now, now); err != nil {
			// The age is measured on our clock, so stamp it with it.
			p.log.Warn("rdap bootstrap: cannot stamp the cache", "path", path, "err", err)
		}
	}
	return b, nil
}
