package providers

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/lifecycle"
)

// hosts is a transport recording the host of every request; it passes
// them to next, or fails them when next is nil.
type hosts struct {
	mu   sync.Mutex
	seen []string
	next http.RoundTripper
}

func (h *hosts) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.seen = append(h.seen, r.URL.Host)
	h.mu.Unlock()
	if h.next == nil {
		return nil, errors.New("no network in tests")
	}
	return h.next.RoundTrip(r)
}

func (h *hosts) all() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.seen...)
}

// providers.rdap.bootstrap_url set to a closed loopback server: RDAP
// lookups fail, naming the URL and the setting, and no request leaves for
// the real registries through the embedded bootstrap. The default URL
// falls back to it unless providers.rdap.embedded_fallback = false.
func TestRDAPBootstrapFallback(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	closed := srv.URL + "/dns.json"
	srv.Close()
	lookup := func(t *testing.T, mod func(*config.Config), tr *hosts) lifecycle.Lifecycle {
		t.Helper()
		cfg := config.Default()
		cfg.DataDir = t.TempDir()
		cfg.Providers.RDAP.Retries = 0
		mod(&cfg)
		p, err := Build(cfg, Deps{Only: "rdap", Sleep: noSleep, Transport: tr})
		if err != nil {
			t.Fatal(err)
		}
		lc, err := p.Lookup(context.Background(), "example.com")
		if err != nil {
			t.Fatal(err)
		}
		return lc
	}

	t.Run("explicit URL", func(t *testing.T) {
		tr := &hosts{next: http.DefaultTransport}
		lc := lookup(t, func(c *config.Config) { c.Providers.RDAP.BootstrapURL = closed }, tr)
		if lc.State != lifecycle.Unknown || !strings.Contains(lc.Error, closed) || !strings.Contains(lc.Error, "providers.rdap.bootstrap_url") {
			t.Errorf("lookup: %s %q, want unknown naming %s and the setting", lc.State, lc.Error, closed)
		}
		u, _ := url.Parse(closed)
		if seen := tr.all(); len(seen) != 1 || seen[0] != u.Host {
			t.Errorf("requests to %q, want one to the bootstrap %s", seen, u.Host)
		}
	})
	t.Run("default URL, fallback off", func(t *testing.T) {
		tr := &hosts{}
		lc := lookup(t, func(c *config.Config) { c.Providers.RDAP.EmbeddedFallback = false }, tr)
		if lc.State != lifecycle.Unknown || !strings.Contains(lc.Error, "providers.rdap.embedded_fallback") {
			t.Errorf("lookup: %s %q", lc.State, lc.Error)
		}
		if seen := tr.all(); len(seen) != 1 || seen[0] != "data.iana.org" {
			t.Errorf("requests to %q, want data.iana.org only", seen)
		}
	})
	t.Run("default URL", func(t *testing.T) {
		tr := &hosts{}
		lookup(t, func(*config.Config) {}, tr)
		// The embedded bootstrap named .com's server: asked (and failed
		// here, with no network).
		if seen := tr.all(); len(seen) != 2 || seen[0] != "data.iana.org" || seen[1] == "data.iana.org" {
			t.Errorf("requests to %q, want data.iana.org then the embedded copy's .com server", seen)
		}
	})
}
