package providers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sources/providertest"
	"github.com/lapse-dev/lapse/sources/status"
)

func env(kv ...string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == k {
				return kv[i+1], true
			}
		}
		return "", false
	}
}

func TestOrder(t *testing.T) {
	cfg := config.Default()
	cases := []struct {
		name  string
		chain []string
		env   func(string) (string, bool)
		want  []string
		err   string
	}{
		{"default", nil, env(), []string{"rdap", "whois"}, ""},
		{"domainr key", nil, env("LAPSE_DOMAINR_CLIENT_ID", "x"), []string{"domainr", "rdap", "whois"}, ""},
		{"rapidapi key", nil, env("LAPSE_DOMAINR_MASHAPE_KEY", "x"), []string{"domainr", "rdap", "whois"}, ""},
		{"both keys", nil, env("LAPSE_DOMAINR_CLIENT_ID", "x", "LAPSE_FASTLY_KEY", "y"), []string{"fastly", "domainr", "rdap", "whois"}, ""},
		{"explicit", []string{"whois", "RDAP"}, env("LAPSE_FASTLY_KEY", "y"), []string{"whois", "rdap"}, ""},
		{"unknown name", []string{"rdap", "dns"}, env(), nil, `"dns"`},
		{"twice", []string{"rdap", "rdap"}, env(), nil, "twice"},
	}
	for _, c := range cases {
		cfg.Providers.Chain = c.chain
		got, err := Order(cfg, Deps{Getenv: c.env})
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, config.ErrConfig) {
				t.Errorf("%s: err %v, want config error with %s", c.name, err, c.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}

func TestBuildNeedsKeys(t *testing.T) {
	for _, only := range []string{"domainr", "fastly"} {
		_, err := Build(config.Default(), Deps{Only: only, Getenv: env()})
		if !errors.Is(err, config.ErrConfig) || !strings.Contains(err.Error(), "LAPSE_") {
			t.Errorf("%s without key: %v", only, err)
		}
	}
	if _, err := Build(config.Default(), Deps{Only: "dns"}); !errors.Is(err, config.ErrConfig) {
		t.Errorf("unknown source: %v", err)
	}
}

// world is a loopback Domainr, RDAP and WHOIS with scripted answers.
type world struct {
	domainr, rdap *httptest.Server
	whoisAddr     string
	rdapHits      atomic.Int64
	domainrHits   atomic.Int64
	whoisHits     atomic.Int64
	domainrStatus func(d string) (int, string)
	rdapStatus    func(d string) int
	whoisText     func(d string) string
}

func newWorld(t *testing.T) *world {
	w := &world{
		domainrStatus: func(string) (int, string) { return 200, "active" },
		rdapStatus:    func(string) int { return 200 },
		whoisText:     func(d string) string { return "No match for \"" + strings.ToUpper(d) + "\".\r\n" },
	}
	w.domainr = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.domainrHits.Add(1)
		d := r.URL.Query().Get("domain")
		code, st := w.domainrStatus(d)
		if code != 200 {
			http.Error(rw, `{"message":"nope"}`, code)
			return
		}
		fmt.Fprintf(rw, `{"status":[{"domain":%q,"zone":"com","status":%q,"summary":"x"}]}`, d, st)
	}))
	t.Cleanup(w.domainr.Close)
	w.rdap = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/dns.json" {
			fmt.Fprint(rw, `{"version":"1.0","publication":"2026-01-01T00:00:00Z","services":[]}`)
			return
		}
		w.rdapHits.Add(1)
		d := strings.TrimPrefix(r.URL.Path, "/domain/")
		rw.Header().Set("Content-Type", "application/rdap+json")
		switch code := w.rdapStatus(d); code {
		case 200:
			fmt.Fprintf(rw, `{"objectClassName":"domain","ldhName":%q,"status":["active"],"events":[{"eventAction":"registration","eventDate":"2010-01-01T00:00:00Z"},{"eventAction":"expiration","eventDate":"2030-01-01T00:00:00Z"}]}`, d)
		case 404:
			rw.WriteHeader(404)
			fmt.Fprint(rw, `{"errorCode":404,"title":"Not Found"}`)
		default:
			rw.WriteHeader(code)
		}
	}))
	t.Cleanup(w.rdap.Close)
	w.whoisAddr = providertest.StartPort43(t, func(c net.Conn, q string, _ int64, _ <-chan struct{}) {
		w.whoisHits.Add(1)
		fmt.Fprint(c, w.whoisText(q))
	}).Addr()
	return w
}

func (w *world) config(t *testing.T) config.Config {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Providers.Domainr.BaseURL = w.domainr.URL
	cfg.Providers.RDAP.BootstrapURL = w.rdap.URL + "/dns.json"
	cfg.Providers.RDAP.Servers = map[string]string{"com": w.rdap.URL + "/"}
	cfg.Providers.WHOIS.Servers = map[string]string{"com": w.whoisAddr}
	for _, l := range []*config.Limits{&cfg.Providers.Domainr.Limits, &cfg.Providers.RDAP.Limits, &cfg.Providers.WHOIS.Limits} {
		l.RatePerSecond = 1000
		l.Burst = 100
		l.Retries = 1
		l.Timeout = config.Duration(5 * time.Second)
	}
	return cfg
}

var noSleep = func(ctx context.Context, d time.Duration) error { return ctx.Err() }

func TestBuildEndToEnd(t *testing.T) {
	w := newWorld(t)
	cfg := w.config(t)
	now := time.Date(2026, 5, 1, 3, 0, 0, 0, time.UTC)
	p, err := Build(cfg, Deps{Now: func() time.Time { return now }, Sleep: noSleep, Getenv: env("LAPSE_DOMAINR_CLIENT_ID", "cid-sekrit-9")})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// Domainr says gone, RDAP agrees → corroborated available, from RDAP.
	w.domainrStatus = func(string) (int, string) { return 200, "undelegated inactive" }
	w.rdapStatus = func(string) int { return 404 }
	lc, err := p.Lookup(ctx, "gone.com")
	if err != nil {
		t.Fatal(err)
	}
	if lc.State != lifecycle.Available || lc.Source != lifecycle.SourceRDAP || !lc.Corroborated || len(lc.Evidence) != 2 {
		t.Errorf("gone.com: %+v", lc)
	}

	// Domainr says gone, RDAP says registered → RDAP wins.
	w.rdapStatus = func(string) int { return 200 }
	lc, _ = p.Lookup(ctx, "held.com")
	if lc.State != lifecycle.Registered || lc.Source != lifecycle.SourceRDAP {
		t.Errorf("held.com: %+v", lc)
	}

	// Domainr says gone, RDAP fails → WHOIS corroborates (no match).
	w.rdapStatus = func(string) int { return 503 }
	lc, _ = p.Lookup(ctx, "whoisonly.com")
	if lc.State != lifecycle.Available || lc.Source != lifecycle.SourceWHOIS || !lc.Corroborated || len(lc.Evidence) != 3 {
		t.Errorf("whoisonly.com: %+v", lc)
	}

	// Everything throttled: unknown with every error, never available.
	w.domainrStatus = func(string) (int, string) { return 429, "" }
	w.whoisText = func(string) string { return "WHOIS LIMIT EXCEEDED - SEE WWW.PIR.ORG/WHOIS FOR DETAILS\r\n" }
	lc, _ = p.Lookup(ctx, "busy.com")
	if lc.State != lifecycle.Unknown || lc.Error == "" || len(lc.Evidence) != 3 {
		t.Errorf("busy.com: %+v", lc)
	}
	for _, e := range lc.Evidence {
		if e.Error == "" || e.State != lifecycle.Unknown {
			t.Errorf("busy.com evidence %+v", e)
		}
	}

	// 401 stops Domainr for the run with a message naming the setting.
	w.domainrStatus = func(string) (int, string) { return 401, "" }
	w.rdapStatus = func(string) int { return 200 }
	before := w.domainrHits.Load()
	for _, d := range []string{"a.com", "b.com", "c.com"} {
		lc, _ = p.Lookup(ctx, d)
		if lc.State != lifecycle.Registered || lc.Source != lifecycle.SourceRDAP {
			t.Errorf("%s after 401: %+v", d, lc)
		}
	}
	if n := w.domainrHits.Load() - before; n != 1 {
		t.Errorf("domainr asked %d times after a 401, want 1", n)
	}
	if !strings.Contains(lc.Evidence[0].Error, "LAPSE_DOMAINR_CLIENT_ID; provider stopped for this run") {
		t.Errorf("401 evidence: %q", lc.Evidence[0].Error)
	}
	if strings.Contains(fmt.Sprintf("%+v", lc), "cid-sekrit-9") {
		t.Errorf("client_id leaked: %+v", lc)
	}
}

func TestBuildOnlyOne(t *testing.T) {
	w := newWorld(t)
	cfg := w.config(t)
	p, err := Build(cfg, Deps{Only: "whois", Sleep: noSleep})
	if err != nil {
		t.Fatal(err)
	}
	c, ok := p.(*status.Chain)
	if !ok || !slices.Equal(c.Providers(), []lifecycle.Source{lifecycle.SourceWHOIS}) {
		t.Fatalf("providers %v", c.Providers())
	}
	lc, err := p.Lookup(context.Background(), "free.com")
	if err != nil || lc.State != lifecycle.Available || lc.Source != lifecycle.SourceWHOIS || w.rdapHits.Load() != 0 {
		t.Errorf("whois only: %+v, %v, rdap hits %d", lc, err, w.rdapHits.Load())
	}
}

// The breaker settings of a provider's section reach its breaker: with
// breaker_threshold 2 the third lookup against a failing RDAP server is
// refused without a request, until breaker_cooldown has passed.
func TestBreakerSettingsApply(t *testing.T) {
	w := newWorld(t)
	cfg := w.config(t)
	cfg.Providers.RDAP.Retries = 0
	cfg.Providers.RDAP.BreakerThreshold = 2
	cfg.Providers.RDAP.BreakerCooldown = config.Duration(10 * time.Minute)
	w.rdapStatus = func(string) int { return 503 }
	now := time.Date(2026, 5, 1, 3, 0, 0, 0, time.UTC)
	p, err := Build(cfg, Deps{Only: "rdap", Sleep: noSleep, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 4 {
		lc, err := p.Lookup(ctx, fmt.Sprintf("x%d.com", i))
		if err != nil || lc.State != lifecycle.Unknown {
			t.Fatalf("lookup %d: %+v %v, want unknown", i, lc, err)
		}
		if i == 3 && !strings.Contains(lc.Error, "circuit breaker open") {
			t.Errorf("lookup %d error %q, want the breaker", i, lc.Error)
		}
	}
	if n := w.rdapHits.Load(); n != 2 {
		t.Errorf("RDAP asked %d times, want 2 (threshold 2)", n)
	}
	now = now.Add(11 * time.Minute)
	if _, err := p.Lookup(ctx, "y.com"); err != nil || w.rdapHits.Load() != 3 {
		t.Errorf("after the cool-down: %v, %d requests, want a probe (3)", err, w.rdapHits.Load())
	}
	bad := config.Default()
	bad.DataDir = t.TempDir()
	bad.Providers.WHOIS.BreakerCooldown = config.Duration(-time.Second)
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "providers.whois.breaker_threshold") {
		t.Errorf("negative cool-down: %v", err)
	}
}
