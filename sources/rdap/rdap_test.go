package rdap

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sources/status"
)

var testNow = day("2026-06-15T12:00:00Z")

// newProvider points every TLD of the test at srv through an override, so
// no bootstrap is fetched.
func newProvider(t *testing.T, srv *httptest.Server, mod func(*Config)) *Provider {
	t.Helper()
	cfg := Config{
		Servers:      map[string]string{"test": srv.URL + "/rdap/", "com": srv.URL + "/rdap/"},
		BootstrapURL: srv.URL + "/nope/dns.json",
		Client:       srv.Client(),
		Timeout:      2 * time.Second,
		Now:          func() time.Time { return testNow },
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const foundBody = `{"objectClassName":"domain","ldhName":"found.test","status":["active"],
	"events":[{"eventAction":"registration","eventDate":"2020-01-01T00:00:00Z"},
	{"eventAction":"expiration","eventDate":"2030-01-01T00:00:00Z"}]}`

func TestLookupAnswers(t *testing.T) {
	var accept atomic.Value
	mux := http.NewServeMux()
	mux.HandleFunc("/rdap/domain/found.test", func(w http.ResponseWriter, r *http.Request) {
		accept.Store(r.Header.Get("Accept"))
		w.Header().Set("Content-Type", "application/rdap+json")
		fmt.Fprint(w, foundBody)
	})
	mux.HandleFunc("/rdap/domain/free.test", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"errorCode":404}`, 404)
	})
	mux.HandleFunc("/rdap/domain/code404.test", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"errorCode":404,"title":"not found"}`)
	})
	mux.HandleFunc("/rdap/domain/moved.test", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/registrar/domain/found.test", http.StatusFound)
	})
	mux.HandleFunc("/registrar/domain/found.test", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") != "application/rdap+json" {
			http.Error(w, "lost the Accept header", 400)
			return
		}
		fmt.Fprint(w, strings.Replace(foundBody, "found.test", "moved.test", 1))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	p := newProvider(t, srv, nil)

	l, err := p.Lookup(context.Background(), "Found.Test.")
	if err != nil {
		t.Fatal(err)
	}
	if l.State != lifecycle.Registered || l.Domain != "found.test" || !l.CheckedAt.Equal(testNow) {
		t.Errorf("found: %+v", l)
	}
	if len(l.Evidence) != 1 || l.Evidence[0].Server != "127.0.0.1" || l.Evidence[0].Source != lifecycle.SourceRDAP {
		t.Errorf("found: evidence %+v, want one entry naming the server's host", l.Evidence)
	}
	if accept.Load() != "application/rdap+json" {
		t.Errorf("Accept = %v", accept.Load())
	}
	for _, d := range []string{"free.test", "code404.test"} {
		l, err := p.Lookup(context.Background(), d)
		if err != nil || l.State != lifecycle.Available {
			t.Errorf("%s: %s %v, want available", d, l.State, err)
		}
	}
	l, err = p.Lookup(context.Background(), "moved.test")
	if err != nil || l.State != lifecycle.Registered {
		t.Errorf("redirected: %s %v, want registered", l.State, err)
	}
}

// TestLookupFaults: no fault may end as available, or as any state.
func TestLookupFaults(t *testing.T) {
	release := make(chan struct{})
	var hits atomic.Int32
	mux := http.NewServeMux()
	handle := func(name string, h http.HandlerFunc) {
		mux.HandleFunc("/rdap/domain/"+name+".test", func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			h(w, r)
		})
	}
	handle("throttled", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "120")
		http.Error(w, "slow down", 429)
	})
	handle("throttleddate", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", testNow.Add(90*time.Second).Format(http.TimeFormat))
		w.WriteHeader(429)
	})
	handle("forbidrate", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"errorCode":403,"title":"Too many requests from your IP"}`, 403)
	})
	handle("forbid", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"errorCode":403,"title":"Forbidden"}`, 403)
	})
	handle("unprocessable", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `query limit reached`, 422)
	})
	handle("broken", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "internal", 500)
	})
	handle("gateway", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "", 502)
	})
	handle("garbage", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<html><body>Domain not found</body>")
	})
	handle("huge", func(w http.ResponseWriter, r *http.Request) {
		// 10 MB of a syntactically plausible document.
		fmt.Fprint(w, `{"objectClassName":"domain","ldhName":"huge.test","remarks":["`)
		chunk := strings.Repeat("x", 64<<10)
		for i := 0; i < 160; i++ {
			if _, err := fmt.Fprint(w, chunk); err != nil {
				return
			}
		}
		fmt.Fprint(w, `"]}`)
	})
	handle("reset", func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: application/rdap+json\r\nContent-Length: %d\r\n\r\n%s", len(foundBody), foundBody[:40])
		buf.Flush()
		conn.Close()
	})
	handle("slow", func(w http.ResponseWriter, r *http.Request) {
		select { // answers only after the client gave up
		case <-r.Context().Done():
		case <-release:
		}
	})
	handle("slowbody", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(foundBody)))
		fmt.Fprint(w, foundBody[:20])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	handle("loop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Path, http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(release)
	// A generous timeout for the answers, a short one for the slow cases,
	// so a loaded machine cannot turn one fault into another.
	p := newProvider(t, srv, func(c *Config) { c.Timeout = 10 * time.Second })
	quick := newProvider(t, srv, func(c *Config) { c.Timeout = 300 * time.Millisecond })

	tests := []struct {
		name       string
		throttled  bool
		retryAfter time.Duration
		retryable  bool
		contains   string
	}{
		{"throttled", true, 120 * time.Second, true, "429"},
		{"throttleddate", true, 90 * time.Second, true, "429"},
		{"forbidrate", true, 0, true, "403"},
		{"unprocessable", true, 0, true, "422"},
		{"forbid", false, 0, true, "forbidden"},
		{"broken", false, 0, true, "500"},
		{"gateway", false, 0, true, "502"},
		{"garbage", false, 0, true, "not JSON"},
		{"huge", false, 0, true, "exceeds the size cap"},
		{"reset", false, 0, true, "EOF"},
		{"slow", false, 0, true, "deadline"},
		{"slowbody", false, 0, true, "deadline"},
		{"loop", false, 0, true, "redirects"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pr := p
			if strings.HasPrefix(tt.name, "slow") {
				pr = quick
			}
			l, err := pr.Lookup(context.Background(), tt.name+".test")
			if err == nil {
				t.Fatalf("no error; state %s", l.State)
			}
			if l.State != "" {
				t.Errorf("error came with state %s", l.State)
			}
			var te *status.ThrottledError
			if errors.As(err, &te) != tt.throttled {
				t.Errorf("throttled = %v, want %v: %v", !tt.throttled, tt.throttled, err)
			}
			if tt.throttled && te.RetryAfter != tt.retryAfter {
				t.Errorf("RetryAfter = %s, want %s", te.RetryAfter, tt.retryAfter)
			}
			if status.Retryable(err) != tt.retryable {
				t.Errorf("Retryable = %v: %v", !tt.retryable, err)
			}
			if tt.name == "huge" && !errors.Is(err, status.ErrBodyTooLarge) {
				t.Errorf("huge answer: %v, want status.ErrBodyTooLarge", err)
			}
			if !strings.Contains(err.Error(), tt.contains) || !strings.Contains(err.Error(), tt.name+".test") {
				t.Errorf("error %q: want it to name the domain and %q", err, tt.contains)
			}
		})
	}
	// Cancelled by the caller: context.Canceled, not retryable.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Lookup(ctx, "found.test"); !errors.Is(err, context.Canceled) || status.Retryable(err) {
		t.Errorf("cancelled lookup: %v", err)
	}
}

func TestNoServer(t *testing.T) {
	boot := `{"services":[[["com"],["https://rdap.example/"]]]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, boot) }))
	defer srv.Close()
	p, err := New(Config{BootstrapURL: srv.URL, Client: srv.Client(), Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Lookup(context.Background(), "example.zz"); !errors.Is(err, status.ErrNoServer) {
		t.Errorf("example.zz: %v, want ErrNoServer", err)
	}
	if u, err := p.Server(context.Background(), "a.example.com"); err != nil || u != "https://rdap.example/" {
		t.Errorf("Server = %q %v", u, err)
	}
	if _, err := New(Config{Servers: map[string]string{"dev": "rdap.example"}}); err == nil {
		t.Error("override without scheme accepted")
	}
}

func TestBootstrapCache(t *testing.T) {
	now := testNow
	var hits atomic.Int32
	var fail atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if fail.Load() {
			http.Error(w, "down", 503)
			return
		}
		fmt.Fprint(w, `{"publication":"fresh","services":[[["test"],["https://fresh.example/"]]]}`)
	}))
	defer srv.Close()
	dir := t.TempDir()
	mk := func() *Provider {
		p, err := New(Config{BootstrapURL: srv.URL, CacheDir: dir, BootstrapMaxAge: 24 * time.Hour,
			Client: srv.Client(), Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	ctx := context.Background()

	// 1. Nothing cached: download, write dns.json.
	p := mk()
	if u, _ := p.Server(ctx, "a.test"); u != "https://fresh.example/" || hits.Load() != 1 {
		t.Fatalf("first: %q after %d downloads", u, hits.Load())
	}
	if fi, err := os.Stat(filepath.Join(dir, "dns.json")); err != nil {
		t.Fatal(err)
	} else if m := fi.Mode().Perm(); m != 0o640 {
		t.Errorf("dns.json mode %04o, want 0640", m)
	}
	// In memory: no new download.
	p.Server(ctx, "b.test")
	if hits.Load() != 1 {
		t.Errorf("downloads = %d, want 1 (in memory)", hits.Load())
	}
	// 2. New process, cache fresh (1 h old): read from disk.
	now = now.Add(time.Hour)
	if u, _ := mk().Server(ctx, "a.test"); u != "https://fresh.example/" || hits.Load() != 1 {
		t.Errorf("fresh disk: %q after %d downloads", u, hits.Load())
	}
	// 3. Cache stale, download fails: stale copy used.
	now = now.Add(48 * time.Hour)
	fail.Store(true)
	if u, _ := mk().Server(ctx, "a.test"); u != "https://fresh.example/" || hits.Load() != 2 {
		t.Errorf("stale disk: %q after %d downloads", u, hits.Load())
	}
	// 4. Cache stale, download works: refreshed.
	fail.Store(false)
	p = mk()
	p.Server(ctx, "a.test")
	if hits.Load() != 3 {
		t.Errorf("refresh: %d downloads, want 3", hits.Load())
	}
	// The refreshed file is fresh again for the next day.
	now = now.Add(23 * time.Hour)
	mk().Server(ctx, "a.test")
	if hits.Load() != 3 {
		t.Errorf("after refresh: %d downloads, want 3", hits.Load())
	}
	// 5. No cache, download fails: no embedded copy for a bootstrap_url
	// that is not the default (TestBootstrapNoFallback).
	fail.Store(true)
	p2, _ := New(Config{BootstrapURL: srv.URL, CacheDir: t.TempDir(), Client: srv.Client(), Now: func() time.Time { return now }})
	if u, err := p2.Server(ctx, "example.com"); err == nil || !strings.Contains(err.Error(), "providers.rdap.bootstrap_url") {
		t.Errorf("no bootstrap: %q %v", u, err)
	}
	// A failed download is not retried on every lookup.
	n := hits.Load()
	p2.Server(ctx, "example.net")
	if hits.Load() != n {
		t.Errorf("failed bootstrap retried at once")
	}
	now = now.Add(bootstrapRetry)
	fail.Store(false)
	if u, err := p2.Server(ctx, "a.test"); err != nil || u != "https://fresh.example/" || hits.Load() != n+1 {
		t.Errorf("after the retry delay: %q %v after %d downloads", u, err, hits.Load()-n)
	}
	// A corrupt cache file is ignored, not fatal.
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "dns.json"), []byte("{garbage"), 0o644)
	fail.Store(false)
	p3, _ := New(Config{BootstrapURL: srv.URL, CacheDir: bad, Client: srv.Client(), Now: func() time.Time { return now }})
	if u, _ := p3.Server(ctx, "a.test"); u != "https://fresh.example/" {
		t.Errorf("corrupt cache: %q", u)
	}
}

// hostsSeen is a transport that fails every request, recording its host.
type hostsSeen struct {
	mu    sync.Mutex
	hosts []string
}

func (h *hostsSeen) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.hosts = append(h.hosts, r.URL.Host)
	h.mu.Unlock()
	return nil, errors.New("no network in tests")
}

// An explicit bootstrap_url that cannot be reached (a closed loopback
// server) is an error naming the URL and the setting, never the embedded
// bootstrap, which would send the night's domains to the real registries;
// the embedded copy stands in for the default URL only, unless
// embedded_fallback is off.
func TestBootstrapNoFallback(t *testing.T) {
	ctx := context.Background()
	srv := httptest.NewServer(http.NotFoundHandler())
	closed := srv.URL + "/dns.json"
	srv.Close()
	seen := &hostsSeen{}
	dial := &http.Transport{} // the real dialer: the closed port refuses
	tr := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen.mu.Lock()
		seen.hosts = append(seen.hosts, r.URL.Host)
		seen.mu.Unlock()
		return dial.RoundTrip(r)
	})
	p, err := New(Config{BootstrapURL: closed, CacheDir: t.TempDir(), Transport: tr, Timeout: 2 * time.Second, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		l, err := p.Lookup(ctx, "example.com")
		var pe *status.PermanentError
		if err == nil || !errors.As(err, &pe) || l.State != "" {
			t.Fatalf("lookup without a bootstrap: %+v %v, want a permanent error", l, err)
		}
		for _, want := range []string{closed, "providers.rdap.bootstrap_url", "no RDAP server is asked"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
		}
	}
	u, _ := url.Parse(closed)
	if len(seen.hosts) != 1 || seen.hosts[0] != u.Host {
		t.Errorf("requests went to %q, want one to %s (the bootstrap, once)", seen.hosts, u.Host)
	}

	// The default URL, unreachable: the embedded copy (and nothing asked
	// but IANA).
	seen = &hostsSeen{}
	p, _ = New(Config{Transport: seen, Now: func() time.Time { return testNow }})
	if u, err := p.Server(ctx, "example.com"); err != nil || !strings.HasPrefix(u, "https://") {
		t.Errorf("embedded: %q %v", u, err)
	}
	if len(seen.hosts) != 1 || seen.hosts[0] != "data.iana.org" {
		t.Errorf("requests went to %q, want data.iana.org", seen.hosts)
	}
	// ... unless embedded_fallback = false.
	p, _ = New(Config{Transport: &hostsSeen{}, DisableEmbeddedFallback: true, Now: func() time.Time { return testNow }})
	if _, err := p.Server(ctx, "example.com"); err == nil || !strings.Contains(err.Error(), "providers.rdap.embedded_fallback is false") ||
		!strings.Contains(err.Error(), DefaultBootstrapURL) {
		t.Errorf("fallback off: %v", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// BenchmarkLookup is one found lookup over a loopback HTTP server.
func BenchmarkLookup(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, strings.Replace(foundBody, "found.test", strings.TrimPrefix(r.URL.Path, "/rdap/domain/"), 1))
	}))
	defer srv.Close()
	p, err := New(Config{Servers: map[string]string{"test": srv.URL + "/rdap/"}, Client: srv.Client()})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if l, err := p.Lookup(context.Background(), "found.test"); err != nil || l.State != lifecycle.Registered {
			b.Fatal(l.State, err)
		}
	}
}
