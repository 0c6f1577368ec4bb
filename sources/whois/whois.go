package whois

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lapse-dev/lapse/internal/atomicfile"
	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sources/address"
	"github.com/lapse-dev/lapse/sources/status"
)

// Defaults for the zero Config fields.
const (
	DefaultIANAServer = "whois.iana.org:43"
	DefaultMaxBytes   = 256 << 10
	DefaultTimeout    = 20 * time.Second
)

// Config configures a Provider. Zero fields take the defaults above.
type Config struct {
	// Servers overrides the server per suffix: {"de": "whois.denic.de:43"}.
	Servers map[string]string
	// IANAServer answers the referral query for TLDs without an override.
	IANAServer string
	// MaxBytes caps an answer; a longer one is an error.
	MaxBytes int
	// Timeout bounds one query (dial, write, read) on top of the caller's
	// context.
	Timeout time.Duration
	// Dial opens connections; nil uses a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// CacheDir, when set, keeps the TLD → server referrals on disk
	// (whois-servers.json) so a new process does not ask IANA again.
	CacheDir string
	Now      func() time.Time
	Rules    lifecycle.Rules
	Logger   *slog.Logger
}

// Provider is the WHOIS status provider. It is safe for concurrent use.
type Provider struct {
	cfg       Config
	overrides map[string]string
	log       *slog.Logger

	mu   sync.Mutex
	tlds map[string]*referral // resolved (or resolving) TLD servers
	// saveMu orders cache writes so a later write always holds a superset.
	saveMu sync.Mutex
}

// referral is one TLD's server, resolved once; done is closed when server
// and err are set.
type referral struct {
	done   chan struct{}
	server string
	err    error
}

var _ status.Provider = (*Provider)(nil)

// New builds a Provider; it does no I/O.
func New(cfg Config) (*Provider, error) {
	if cfg.IANAServer == "" {
		cfg.IANAServer = DefaultIANAServer
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Dial == nil {
		cfg.Dial = (&net.Dialer{}).DialContext
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
	p := &Provider{cfg: cfg, log: cfg.Logger, overrides: map[string]string{}, tlds: map[string]*referral{}}
	for suffix, srv := range cfg.Servers {
		if strings.TrimSpace(srv) == "" || strings.Contains(srv, "/") {
			return nil, fmt.Errorf("whois servers.%s = %q: want a host or host:port such as whois.denic.de:43", suffix, srv)
		}
		p.overrides[address.Fold(strings.TrimPrefix(suffix, "."))] = srv
	}
	p.loadCache()
	return p, nil
}

// Name is lifecycle.SourceWHOIS.
func (p *Provider) Name() lifecycle.Source { return lifecycle.SourceWHOIS }

// errNoTLD is IANA saying the TLD does not exist: the name is invalid.
var errNoTLD = errors.New("IANA knows no such TLD")

// Lookup asks the TLD's WHOIS server, follows a thin registry's referral
// to the registrar, and maps the answer.
func (p *Provider) Lookup(ctx context.Context, domain string) (lifecycle.Lifecycle, error) {
	domain = address.Fold(domain)
	server, err := p.Server(ctx, domain)
	if errors.Is(err, errNoTLD) {
		l := lifecycle.FromError(domain, lifecycle.SourceWHOIS, err, p.cfg.Now())
		l.State, l.Error = lifecycle.Invalid, ""
		return l, nil
	}
	if err != nil {
		return lifecycle.Lifecycle{}, err
	}
	text, err := p.Query(ctx, server, domain)
	if err != nil {
		return lifecycle.Lifecycle{}, err
	}
	a, err := Answer(text, domain)
	if err != nil {
		return lifecycle.Lifecycle{}, fmt.Errorf("%w (server %s)", err, server)
	}
	// A thin registry names the registrar's server and leaves the dates
	// to it. A failing registrar keeps the registry's answer.
	answered := server
	if !a.NotFound && !a.Reserved && a.ExpiresAt == nil {
		if ref := registrarServer(text); ref != "" && !sameServer(ref, server) {
			if rt, rerr := p.Query(ctx, ref, domain); rerr == nil {
				if ra, rerr := Answer(rt, domain); rerr == nil && !ra.NotFound && !ra.Reserved {
					ra.Statuses = append(a.Statuses, ra.Statuses...)
					a, answered = ra, ref
				}
			} else if ctx.Err() != nil {
				return lifecycle.Lifecycle{}, rerr
			} else {
				p.log.Debug("whois registrar referral failed; using the registry answer", "domain", domain, "server", ref, "err", rerr)
			}
		}
	}
	now := p.cfg.Now()
	l := p.cfg.Rules.FromWHOIS(a, now)
	l.CheckedAt = now.UTC()
	return l.WithServer(hostOf(answered)), nil
}

// hostOf is a WHOIS server's host without its port: the evidence names the
// registry, not how lapse reached it.
func hostOf(server string) string {
	if h, _, err := net.SplitHostPort(server); err == nil {
		return h
	}
	return server
}

// Server returns the WHOIS server for domain: the longest configured
// suffix, else the TLD's IANA referral, asked once per TLD and cached.
func (p *Provider) Server(ctx context.Context, domain string) (string, error) {
	d := address.Fold(domain)
	for s := d; s != ""; {
		if srv, ok := p.overrides[s]; ok {
			return srv, nil
		}
		i := strings.IndexByte(s, '.')
		if i < 0 {
			break
		}
		s = s[i+1:]
	}
	tld := d[strings.LastIndexByte(d, '.')+1:]
	if tld == "" {
		return "", &status.PermanentError{Err: fmt.Errorf("whois %q: empty name", domain)}
	}
	for attempt := 0; ; attempt++ {
		p.mu.Lock()
		r, ok := p.tlds[tld]
		if !ok {
			r = &referral{done: make(chan struct{})}
			p.tlds[tld] = r
			p.mu.Unlock()
			r.server, r.err = p.askIANA(ctx, tld)
			close(r.done)
			if r.err == nil {
				p.saveCache()
			} else if !errors.Is(r.err, errNoTLD) && !errors.Is(r.err, status.ErrNoServer) {
				// A failed referral query is retried by the next lookup.
				p.mu.Lock()
				delete(p.tlds, tld)
				p.mu.Unlock()
			}
		} else {
			p.mu.Unlock()
			select {
			case <-r.done:
			case <-ctx.Done():
				return "", fmt.Errorf("whois %s: waiting for the .%s referral: %w", domain, tld, ctx.Err())
			}
			// The lookup we waited for was cancelled on its own context,
			// not ours: ask again ourselves.
			if r.err != nil && ctx.Err() == nil && attempt == 0 &&
				(errors.Is(r.err, context.Canceled) || errors.Is(r.err, context.DeadlineExceeded)) {
				continue
			}
		}
		if r.err != nil {
			return "", fmt.Errorf("whois %s: %w", domain, r.err)
		}
		return r.server, nil
	}
}

func (p *Provider) askIANA(ctx context.Context, tld string) (string, error) {
	text, err := p.Query(ctx, p.cfg.IANAServer, tld)
	if err != nil {
		return "", fmt.Errorf("IANA referral for .%s: %w", tld, err)
	}
	if srv := field(text, "whois:"); srv != "" {
		return srv, nil
	}
	if srv := field(text, "refer:"); srv != "" {
		return srv, nil
	}
	if strings.Contains(strings.ToLower(text), "returned 0 objects") {
		return "", fmt.Errorf(".%s: %w", tld, errNoTLD)
	}
	// Only a well-formed IANA record without a whois line means "no
	// server"; anything else (a garbled or truncated answer) is transient,
	// so it is not cached and the next lookup asks again.
	if field(text, "domain:") != "" {
		return "", fmt.Errorf(".%s has no WHOIS server at IANA: %w", tld, status.ErrNoServer)
	}
	return "", fmt.Errorf("IANA referral for .%s: unreadable answer (%d bytes)", tld, len(text))
}

// field returns the value of the first line starting with key
// (case-insensitive).
func field(text, key string) string {
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if len(line) > len(key) && strings.EqualFold(line[:len(key)], key) {
			if v := strings.TrimSpace(line[len(key):]); v != "" {
				return v
			}
		}
	}
	return ""
}

// registrarServer reads a thin registry's referral ("Registrar WHOIS
// Server: whois.example.com"), without scheme or path.
func registrarServer(text string) string {
	v := field(text, "Registrar WHOIS Server:")
	if v == "" {
		v = field(text, "Whois Server:")
	}
	v = strings.TrimPrefix(strings.TrimPrefix(strings.ToLower(v), "https://"), "http://")
	v = strings.TrimPrefix(v, "whois://")
	if i := strings.IndexAny(v, "/ "); i >= 0 {
		v = v[:i]
	}
	return v
}

func sameServer(a, b string) bool {
	return strings.EqualFold(withPort(a), withPort(b))
}

func withPort(s string) string {
	if _, _, err := net.SplitHostPort(s); err == nil {
		return s
	}
	return net.JoinHostPort(s, "43")
}

// queryForms are the query syntaxes some registries want instead of the
// bare name.
var queryForms = map[string]string{
	"whois.denic.de":         "-T dn,ace %s",
	"whois.jprs.jp":          "%s/e",
	"whois.verisign-grs.com": "domain %s",
}

// Query sends one port-43 query to server (host or host:port) and returns
// the cleaned answer. A longer answer than MaxBytes is an error; a
// rate-limit text in a cut-off answer is a *status.ThrottledError.
func (p *Provider) Query(ctx context.Context, server, query string) (string, error) {
	addr := withPort(server)
	host, _, _ := net.SplitHostPort(addr)
	if f, ok := queryForms[strings.ToLower(host)]; ok && strings.Contains(query, ".") {
		query = fmt.Sprintf(f, query)
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	conn, err := p.cfg.Dial(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("whois %s: connecting to %s: %w", query, addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// Cancellation without a deadline still unblocks the read.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := io.WriteString(conn, query+"\r\n"); err != nil {
		return "", p.queryErr(ctx, query, addr, "sending", err)
	}
	b, err := io.ReadAll(io.LimitReader(conn, int64(p.cfg.MaxBytes)+1))
	if len(b) > p.cfg.MaxBytes {
		return "", fmt.Errorf("whois %s: answer from %s larger than %d bytes", query, addr, p.cfg.MaxBytes)
	}
	text := Clean(string(b))
	if err != nil {
		// Some servers refuse with a reason and reset the connection.
		if Throttled(text) {
			return "", &status.ThrottledError{Err: fmt.Errorf("whois %s: %s: %s", query, addr, excerpt(text))}
		}
		return "", p.queryErr(ctx, query, addr, "reading", err)
	}
	return text, nil
}

func (p *Provider) queryErr(ctx context.Context, query, addr, doing string, err error) error {
	var ne net.Error
	switch {
	case ctx.Err() != nil:
		err = fmt.Errorf("%w (%v)", ctx.Err(), err)
	case errors.As(err, &ne) && ne.Timeout():
		// The conn deadline is the context's; say so even when the
		// socket noticed first.
		err = fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	return fmt.Errorf("whois %s: %s %s: %w", query, doing, addr, err)
}

// The on-disk referral cache: TLD → server, as resolved from IANA.
func (p *Provider) cachePath() string {
	if p.cfg.CacheDir == "" {
		return ""
	}
	return filepath.Join(p.cfg.CacheDir, "whois-servers.json")
}

func (p *Provider) loadCache() {
	path := p.cachePath()
	if path == "" {
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			p.log.Warn("whois referral cache unreadable", "path", path, "err", err)
		}
		return
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		p.log.Warn("whois referral cache is corrupt; ignoring it", "path", path, "err", err)
		return
	}
	for tld, srv := range m {
		if tld != "" && srv != "" {
			r := &referral{done: make(chan struct{}), server: srv}
			close(r.done)
			p.tlds[tld] = r
		}
	}
}

func (p *Provider) saveCache() {
	path := p.cachePath()
	if path == "" {
		return
	}
	p.saveMu.Lock()
	defer p.saveMu.Unlock()
	p.mu.Lock()
	m := map[string]string{}
	for tld, r := range p.tlds {
		select {
		case <-r.done:
			if r.err == nil && r.server != "" {
				m[tld] = r.server
			}
		default: // still being resolved
		}
	}
	p.mu.Unlock()
	b, err := json.MarshalIndent(m, "", "  ")
	if err == nil {
		err = atomicfile.WriteFile(path, b, 0o640)
	}
	if err != nil {
		p.log.Warn("whois referral cache not written", "path", path, "err", err)
	}
}
