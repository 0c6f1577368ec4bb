package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/cache"
	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sim"
	"github.com/lapse-dev/lapse/sources/providertest"
)

// checkWorld is a loopback RDAP server (404 for names starting with
// "gone", 429 for "busy", registered otherwise), a WHOIS server that always
// throttles, and a lapse.toml pointing at them.
type checkWorld struct {
	config   string
	dataDir  string
	rdapHits atomic.Int64
}

func newCheckWorld(t *testing.T) *checkWorld {
	t.Helper()
	w := &checkWorld{dataDir: t.TempDir()}
	rdap := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/dns.json" {
			fmt.Fprint(rw, `{"version":"1.0","services":[]}`)
			return
		}
		w.rdapHits.Add(1)
		d := strings.TrimPrefix(r.URL.Path, "/domain/")
		switch {
		case strings.HasPrefix(d, "gone"):
			rw.WriteHeader(404)
			fmt.Fprint(rw, `{"errorCode":404}`)
		case strings.HasPrefix(d, "busy"):
			rw.Header().Set("Retry-After", "1")
			rw.WriteHeader(429)
		default:
			fmt.Fprintf(rw, `{"objectClassName":"domain","ldhName":%q,"status":["active"],"events":[{"eventAction":"registration","eventDate":"2015-03-01T00:00:00Z"},{"eventAction":"expiration","eventDate":"2031-03-01T00:00:00Z"}]}`, d)
		}
	}))
	t.Cleanup(rdap.Close)
	whois := providertest.StartPort43(t, func(c net.Conn, _ string, _ int64, _ <-chan struct{}) {
		fmt.Fprint(c, "WHOIS LIMIT EXCEEDED - try again later\r\n")
	})
	w.config = filepath.Join(t.TempDir(), "lapse.toml")
	toml := fmt.Sprintf(`data_dir = %q
[providers.rdap]
bootstrap_url = "%s/dns.json"
retries = 0
rate_per_second = 100.0
burst = 10
[providers.rdap.servers]
com = "%s/"
[providers.whois]
retries = 0
rate_per_second = 100.0
burst = 10
[providers.whois.servers]
com = %q
[dns]
enabled = false
`, w.dataDir, rdap.URL, rdap.URL, whois.Addr())
	if err := os.WriteFile(w.config, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

func decodeLines(t *testing.T, out string) []lifecycle.Lifecycle {
	t.Helper()
	var lcs []lifecycle.Lifecycle
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var lc lifecycle.Lifecycle
		if err := json.Unmarshal([]byte(line), &lc); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		lcs = append(lcs, lc)
	}
	return lcs
}

func TestCheck(t *testing.T) {
	w := newCheckWorld(t)
	code, out, errs := runLapse(t, "", nil, "--config", w.config, "check", "--no-cache", "gone-example.com", "www.held.com", "busy.com")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lcs := decodeLines(t, out)
	if len(lcs) != 3 {
		t.Fatalf("%d lines: %s", len(lcs), out)
	}
	if lc := lcs[0]; lc.Domain != "gone-example.com" || lc.State != lifecycle.Available || lc.Source != lifecycle.SourceRDAP || len(lc.Evidence) != 1 {
		t.Errorf("gone: %+v", lc)
	}
	if lc := lcs[1]; lc.Domain != "held.com" || lc.State != lifecycle.Registered || lc.RegisteredAt == nil {
		t.Errorf("held: %+v", lc)
	}
	// Throttled by RDAP and WHOIS: unknown with both errors, never available.
	if lc := lcs[2]; lc.State != lifecycle.Unknown || lc.Error == "" || len(lc.Evidence) != 2 || lc.Evidence[1].Source != lifecycle.SourceWHOIS {
		t.Errorf("busy: %+v", lc)
	}
	if _, err := os.Stat(filepath.Join(w.dataDir, "cache")); err == nil {
		t.Errorf("--no-cache created the cache")
	}
}

func TestCheckCache(t *testing.T) {
	w := newCheckWorld(t)
	for i := 0; i < 2; i++ {
		code, out, errs := runLapse(t, "", nil, "--config", w.config, "check", "held.com")
		if code != exitOK {
			t.Fatalf("run %d: exit %d: %s", i, code, errs)
		}
		if lcs := decodeLines(t, out); len(lcs) != 1 || lcs[0].State != lifecycle.Registered {
			t.Fatalf("run %d: %s", i, out)
		}
		if i == 1 && !strings.Contains(errs, "answered from the cache") {
			t.Errorf("second run did not say it used the cache: %s", errs)
		}
	}
	if n := w.rdapHits.Load(); n != 1 {
		t.Errorf("RDAP asked %d times, want 1 (second answer from the cache)", n)
	}
	// --no-cache asks again.
	if code, _, errs := runLapse(t, "", nil, "--config", w.config, "check", "--no-cache", "held.com"); code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if n := w.rdapHits.Load(); n != 2 {
		t.Errorf("RDAP asked %d times, want 2", n)
	}
}

func TestCheckUsage(t *testing.T) {
	w := newCheckWorld(t)
	for _, args := range [][]string{
		{"check"},
		{"check", "--source", "dns", "a.com"},
		{"check", "co.uk"},
		{"check", "--source", "domainr", "a.com"},
	} {
		code, _, errs := runLapse(t, "", nil, append([]string{"--config", w.config}, args...)...)
		if code != exitUsage {
			t.Errorf("%v: exit %d (%s), want %d", args, code, errs, exitUsage)
		}
	}
	// With the key in the environment, --source domainr is accepted (and
	// fails to connect: there is no Domainr here, so unknown, exit 0).
	env := []string{"LAPSE_DOMAINR_CLIENT_ID=abc", "LAPSE_PROVIDERS_DOMAINR_BASE_URL=http://127.0.0.1:1", "LAPSE_PROVIDERS_DOMAINR_RETRIES=0"}
	code, out, errs := runLapse(t, "", env, "--config", w.config, "check", "--source", "domainr", "a.com")
	if code != exitOK {
		t.Fatalf("domainr: exit %d: %s", code, errs)
	}
	lcs := decodeLines(t, out)
	if lcs[0].State != lifecycle.Unknown || strings.Contains(out, "abc") {
		t.Errorf("domainr unreachable: %s", out)
	}
}

// Issue 11: with Domainr first in the chain, lapse check asks RDAP too and
// shows both answers: Domainr's flags and RDAP's dates, with their ages;
// the cache keeps them, and a fresh entry shows them without a lookup.
func TestCheckStatusFirstShowsBoth(t *testing.T) {
	w := newCheckWorld(t)
	var domainrHits atomic.Int64
	dr := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		domainrHits.Add(1)
		fmt.Fprintf(rw, `{"status":[{"domain":%q,"zone":"com","status":"active","summary":"active"}]}`, r.URL.Query().Get("domain"))
	}))
	t.Cleanup(dr.Close)
	env := []string{"LAPSE_PROVIDERS_CHAIN=domainr,rdap,whois", "LAPSE_PROVIDERS_DOMAINR_BASE_URL=" + dr.URL,
		"LAPSE_DOMAINR_CLIENT_ID=k", "LAPSE_PROVIDERS_DOMAINR_RETRIES=0"}
	for i, args := range [][]string{{"check", "--no-cache", "held.com"}, {"check", "held.com"}, {"check", "held.com"}} {
		code, out, errs := runLapse(t, "", env, append([]string{"--config", w.config}, args...)...)
		if code != exitOK {
			t.Fatalf("%v: exit %d: %s", args, code, errs)
		}
		var l checkLine
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
		if l.Source != lifecycle.SourceRDAP || l.State != lifecycle.Registered || !l.Corroborated {
			t.Errorf("%v: %s from %s corroborated=%v, want registered from rdap", args, l.State, l.Source, l.Corroborated)
		}
		if s := l.StatusAPI; s == nil || s.Source != lifecycle.SourceDomainr || len(s.Flags) != 1 || s.Flags[0] != "active" || s.AgeDays < 0 || s.AgeDays > 0.1 {
			t.Errorf("%v: status_api %+v", args, s)
		}
		a := l.Authoritative
		if a == nil || a.Source != lifecycle.SourceRDAP || a.RegisteredAt == nil || !a.RegisteredAt.Equal(time.Date(2015, 3, 1, 0, 0, 0, 0, time.UTC)) ||
			a.ExpiresAt == nil || !a.ExpiresAt.Equal(time.Date(2031, 3, 1, 0, 0, 0, 0, time.UTC)) || a.AgeDays < 0 || a.AgeDays > 0.1 {
			t.Errorf("%v: authoritative %+v", args, a)
		}
		if i == 2 && !strings.Contains(errs, "answered from the cache") {
			t.Errorf("third run did not answer from the cache: %s", errs)
		}
	}
	if d, r := domainrHits.Load(), w.rdapHits.Load(); d != 2 || r != 2 {
		t.Errorf("asked Domainr %d and RDAP %d times, want 2 each (the third from the cache)", d, r)
	}
}

// The ages are days since each answer, to a tenth; an answer never given
// is null.
func TestCheckLineAges(t *testing.T) {
	now := time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)
	st, auth := now.Add(-36*time.Hour), now.Add(-100*24*time.Hour)
	l := newCheckLine(lifecycle.Lifecycle{Domain: "a.com"}, cache.Entry{StatusCheckedAt: &st, StatusFlags: []string{"active"}, AuthCheckedAt: &auth}, now)
	if l.StatusAPI == nil || l.StatusAPI.AgeDays != 1.5 || l.Authoritative == nil || l.Authoritative.AgeDays != 100 {
		t.Errorf("ages: %+v %+v", l.StatusAPI, l.Authoritative)
	}
	b, _ := json.Marshal(newCheckLine(lifecycle.Lifecycle{Domain: "a.com"}, cache.Entry{}, now))
	if !strings.Contains(string(b), `"status_api":null`) || !strings.Contains(string(b), `"authoritative":null`) || !strings.Contains(string(b), `"domain":"a.com"`) {
		t.Errorf("never asked: %s", b)
	}
}

// lapse check shows the mail path: every MX host and name server outside
// the domain, with its registrable domain and that domain's state, as the
// simulator's zone publishes them.
func TestCheckMailPath(t *testing.T) {
	s := newSimSetup(t, filepath.Join(t.TempDir(), "data"), "")
	// A company or personal domain with hosts outside itself.
	var domain string
	var want []string
	for _, d := range s.world.Domains {
		if d.Kind != sim.KindCompany && d.Kind != sim.KindPersonal {
			continue
		}
		if deps := s.world.MailDependencies(d.Name); len(deps) >= 2 {
			domain, want = d.Name, deps
			break
		}
	}
	if domain == "" {
		t.Fatal("no domain with a mail path in the world")
	}
	code, out, errs := runLapse(t, "", nil, "--config", s.config, "check", "--no-cache", domain)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var line struct {
		Domain   string
		MailPath *struct {
			MX, NS string
			Hosts  []struct {
				Role, Host, Domain string
				State              lifecycle.State
			}
		} `json:"mail_path"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &line); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if line.MailPath == nil || line.MailPath.MX != "ok" || line.MailPath.NS != "ok" {
		t.Fatalf("%s: mail path %+v", domain, line.MailPath)
	}
	var got []string
	for _, h := range line.MailPath.Hosts {
		if h.State == "" || h.State == lifecycle.Unknown || !strings.HasSuffix(h.Host, h.Domain) {
			t.Errorf("host %+v", h)
		}
		got = append(got, h.Role+":"+h.Domain)
	}
	slices.Sort(got)
	got = slices.Compact(got)
	slices.Sort(want)
	if !slices.Equal(got, slices.Compact(want)) {
		t.Errorf("%s: mail path domains %v, the simulator's %v", domain, got, want)
	}
	// --no-mail-path leaves it out.
	_, out, _ = runLapse(t, "", nil, "--config", s.config, "check", "--no-cache", "--no-mail-path", domain)
	if strings.Contains(out, "mail_path") {
		t.Errorf("--no-mail-path: %s", out)
	}
}
