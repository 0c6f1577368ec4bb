package whois

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sources/providertest"
	"github.com/lapse-dev/lapse/sources/status"
)

var testNow = time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)

func record(domain, expires string, statuses ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Domain Name: %s\r\nRegistry Domain ID: 123_DOMAIN_TEST-VRSN\r\n", strings.ToUpper(domain))
	fmt.Fprintf(&b, "Creation Date: 2015-03-01T10:00:00Z\r\n")
	if expires != "" {
		fmt.Fprintf(&b, "Registry Expiry Date: %s\r\n", expires)
	}
	for _, st := range statuses {
		fmt.Fprintf(&b, "Domain Status: %s https://icann.org/epp#%s\r\n", st, st)
	}
	b.WriteString("Name Server: NS1.EXAMPLE.NET\r\n>>> Last update of whois database: 2026-06-15T00:00:00Z <<<\r\n")
	return b.String()
}

func registry(t *testing.T, registrarAddr string) *providertest.Port43Server {
	return providertest.StartPort43(t, func(c net.Conn, q string, _ int64, _ <-chan struct{}) {
		name, _, _ := strings.Cut(q, ".")
		name = strings.TrimRight(name, "0123456789")
		switch name {
		case "found":
			fmt.Fprint(c, record(q, "2030-03-01T10:00:00Z", "clientTransferProhibited"))
		case "expiring":
			fmt.Fprint(c, record(q, "2026-06-20T00:00:00Z", "ok"))
		case "redeem":
			fmt.Fprint(c, record(q, "2026-05-01T00:00:00Z", "redemptionPeriod", "pendingDelete"))
		case "thin":
			fmt.Fprintf(c, "Domain Name: %s\r\nRegistrar WHOIS Server: %s\r\nDomain Status: ok\r\nName Server: NS1.EXAMPLE.NET\r\n", strings.ToUpper(q), registrarAddr)
		case "free":
			fmt.Fprintf(c, "No match for \"%s\".\r\n>>> Last update of whois database: 2026-06-15T00:00:00Z <<<\r\n", strings.ToUpper(q))
		case "busy":
			fmt.Fprint(c, "% Temporary failure: the service is busy, try again later.\r\n")
		case "reserved":
			fmt.Fprint(c, "Not available for registration.\r\nSecond level domain name is reserved.\r\n")
		case "escape":
			fmt.Fprint(c, "\x1b[2J\x1b]0;pwned\x07"+record(q, "2030-01-01T00:00:00Z", "ok\x00\x1b[31m"))
		case "huge":
			fmt.Fprint(c, "No match for \"HUGE.TEST\".\r\n")
			pad := strings.Repeat("% terms of use, again and again and again.\r\n", 1000)
			for i := 0; i < 20; i++ { // ~880 KB
				if _, err := fmt.Fprint(c, pad); err != nil {
					return
				}
			}
		case "reset":
			fmt.Fprint(c, "No match for \"RES")
			c.(*net.TCPConn).SetLinger(0) // RST, not FIN
		case "garbage":
			c.Write([]byte{0x1f, 0x8b, 0x08, 0x00, 0xfe, 0xff, '\r', '\n', 0x00, 0x9c, '=', '='})
		case "other":
			fmt.Fprint(c, record("somebody-else.test", "2030-01-01T00:00:00Z", "ok"))
		}
	})
}

func iana(t *testing.T, registryAddr string) *providertest.Port43Server {
	return providertest.StartPort43(t, func(c net.Conn, q string, _ int64, _ <-chan struct{}) {
		switch q {
		case "test":
			fmt.Fprintf(c, "%% IANA WHOIS server\r\n\r\nrefer:        %s\r\n\r\ndomain:       TEST\r\n\r\nwhois:        %s\r\n\r\nstatus:       ACTIVE\r\n", registryAddr, registryAddr)
		case "nowhois":
			fmt.Fprint(c, "% IANA WHOIS server\r\n\r\ndomain:       NOWHOIS\r\n\r\nstatus:       ACTIVE\r\n")
		case "garbled":
			fmt.Fprint(c, "\x00\x17 garbage, not an IANA record")
		default:
			fmt.Fprint(c, "% IANA WHOIS server\r\n\r\n% This query returned 0 objects.\r\n")
		}
	})
}

type fixture struct {
	iana, registry, registrar *providertest.Port43Server
	p                         *Provider
}

func setup(t *testing.T, mod func(*Config)) *fixture {
	f := &fixture{}
	f.registrar = providertest.StartPort43(t, func(c net.Conn, q string, _ int64, _ <-chan struct{}) {
		fmt.Fprint(c, record(q, "2031-01-01T00:00:00Z", "clientTransferProhibited"))
	})
	f.registry = registry(t, f.registrar.Addr())
	f.iana = iana(t, f.registry.Addr())
	cfg := Config{IANAServer: f.iana.Addr(), Timeout: 10 * time.Second, MaxBytes: 256 << 10, Now: func() time.Time { return testNow }}
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.p = p
	return f
}

func TestLookupStates(t *testing.T) {
	f := setup(t, nil)
	ctx := context.Background()
	for _, tt := range []struct {
		domain string
		want   lifecycle.State
	}{
		{"found.test", lifecycle.Registered},
		{"expiring.test", lifecycle.Expiring},
		{"redeem.test", lifecycle.Redemption},
		{"free.test", lifecycle.Available},
		{"reserved.test", lifecycle.Reserved},
		{"Escape.Test.", lifecycle.Registered},
	} {
		l, err := f.p.Lookup(ctx, tt.domain)
		if err != nil {
			t.Errorf("%s: %v", tt.domain, err)
			continue
		}
		if l.State != tt.want || l.Source != lifecycle.SourceWHOIS || !l.CheckedAt.Equal(testNow) {
			t.Errorf("%s: %s, want %s (%+v)", tt.domain, l.State, tt.want, l)
		}
		// The evidence names the registry that answered, not its port.
		if len(l.Evidence) != 1 || l.Evidence[0].Server != "127.0.0.1" || l.Evidence[0].State != tt.want {
			t.Errorf("%s: evidence %+v, want one entry from server 127.0.0.1", tt.domain, l.Evidence)
		}
		for _, s := range l.Statuses {
			if strings.ContainsAny(s, "\x1b\x00\x07") {
				t.Errorf("%s: control characters kept in status %q", tt.domain, s)
			}
		}
	}
	if n := f.iana.Hits(); n != 1 {
		t.Errorf("IANA asked %d times for one TLD, want 1", n)
	}
	// A thin registry: dates come from the registrar it names.
	l, err := f.p.Lookup(ctx, "thin.test")
	if err != nil {
		t.Fatal(err)
	}
	if l.ExpiresAt == nil || !l.ExpiresAt.Equal(time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)) || f.registrar.Hits() != 1 {
		t.Errorf("thin: expires %v after %d registrar queries", l.ExpiresAt, f.registrar.Hits())
	}
	// A thick answer does not send us to the registrar.
	f.p.Lookup(ctx, "found.test")
	if n := f.registrar.Hits(); n != 1 {
		t.Errorf("registrar asked %d times, want 1", n)
	}
}

// TestLookupFaults: no fault may end as available, or as any state, and
// the error says what went wrong. The port-43 provider suite (TestSuite)
// holds the rest: throttling, also with a reset, timeouts and the caller's
// deadline, resets, garbage, a huge answer.
func TestLookupFaults(t *testing.T) {
	f := setup(t, func(c *Config) { c.MaxBytes = 64 << 10 })
	for _, tt := range []struct {
		domain    string
		throttled bool
		contains  string
	}{
		{"busy.test", true, "try again later"},
		{"huge.test", false, "larger than 65536 bytes"},
		{"reset.test", false, "reading"},
		{"garbage.test", false, "unrecognized"},
		{"other.test", false, "somebody-else.test"},
	} {
		t.Run(tt.domain, func(t *testing.T) {
			l, err := f.p.Lookup(context.Background(), tt.domain)
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
			if !status.Retryable(err) {
				t.Errorf("not retryable: %v", err)
			}
			if !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("error %q, want it to mention %q", err, tt.contains)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.p.Lookup(ctx, "found.test"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestReferrals(t *testing.T) {
	dir := t.TempDir()
	f := setup(t, func(c *Config) { c.CacheDir = dir })
	ctx := context.Background()
	// Unknown TLD: invalid, an answer not an error.
	l, err := f.p.Lookup(ctx, "example.zzz")
	if err != nil || l.State != lifecycle.Invalid {
		t.Errorf("unknown TLD: %s %v, want invalid", l.State, err)
	}
	// A TLD without a WHOIS server: ErrNoServer, so the chain falls back.
	if _, err := f.p.Lookup(ctx, "example.nowhois"); !errors.Is(err, status.ErrNoServer) {
		t.Errorf("no server: %v, want ErrNoServer", err)
	}
	// A garbled referral is transient, not "no server": a faulty answer
	// must not disable a whole TLD for the night.
	if _, err := f.p.Lookup(ctx, "example.garbled"); err == nil || errors.Is(err, status.ErrNoServer) || !status.Retryable(err) {
		t.Errorf("garbled referral: %v, want a retryable error", err)
	}
	// Concurrent lookups in one TLD ask IANA once.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if l, err := f.p.Lookup(ctx, fmt.Sprintf("found%d.test", i)); err != nil || l.State != lifecycle.Registered {
				t.Errorf("found%d.test: %s %v", i, l.State, err)
			}
		})
	}
	wg.Wait()
	if n := f.iana.Hits(); n != 4 {
		t.Errorf("IANA asked %d times for 4 TLDs, want 4", n)
	}
	// The referral cache holds TLDs and servers: 0640.
	if fi, err := os.Stat(filepath.Join(dir, "whois-servers.json")); err != nil {
		t.Fatal(err)
	} else if m := fi.Mode().Perm(); m != 0o640 {
		t.Errorf("whois-servers.json mode %04o, want 0640", m)
	}
	// A new process reads the referral from disk.
	p2, err := New(Config{IANAServer: f.iana.Addr(), CacheDir: dir, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if srv, err := p2.Server(ctx, "x.test"); err != nil || srv != f.registry.Addr() || f.iana.Hits() != 4 {
		t.Errorf("cached referral: %q %v after %d IANA queries", srv, err, f.iana.Hits())
	}
	// An override wins over IANA, longest suffix first.
	p3, err := New(Config{IANAServer: "127.0.0.1:1", Servers: map[string]string{"test": "a:43", "co.test": "b:4343"}})
	if err != nil {
		t.Fatal(err)
	}
	for d, want := range map[string]string{"x.test": "a:43", "x.co.test": "b:4343", "co.test": "b:4343"} {
		if srv, err := p3.Server(ctx, d); srv != want || err != nil {
			t.Errorf("override %s: %q %v, want %q", d, srv, err, want)
		}
	}
	// IANA down: an error, retried by the next lookup (not cached).
	down := setup(t, func(c *Config) { c.IANAServer = "127.0.0.1:1" })
	if _, err := down.p.Lookup(ctx, "found.test"); err == nil || errors.Is(err, status.ErrNoServer) || !status.Retryable(err) {
		t.Errorf("IANA down: %v, want a retryable error", err)
	}
	if _, ok := down.p.tlds["test"]; ok {
		t.Errorf("failed referral cached")
	}
	if _, err := New(Config{Servers: map[string]string{"de": "https://whois.denic.de/"}}); err == nil {
		t.Error("URL accepted as a WHOIS server")
	}
}

func TestClean(t *testing.T) {
	in := "Domain: x\r\n\x1b[31mStatus:\tok\x00\x07\x7f\u0085 é\xff\n"
	if got, want := Clean(in), "Domain: x\n[31mStatus:\tok é\n"; got != want {
		t.Errorf("Clean = %q, want %q", got, want)
	}
}

func TestParseDate(t *testing.T) {
	for raw, want := range map[string]string{
		"1997-09-15T00:00:00-0700":       "1997-09-15T07:00:00Z",
		"2001-06-14-T10:32:43Z":          "2001-06-14T10:32:43Z",
		"2011-01-23 00:00:07 +02:00":     "2011-01-22T22:00:07Z",
		"2008-05-23 (YYYY-MM-DD)":        "2008-05-23T00:00:00Z",
		"1999-06-07 13:01:43 (GMT+0:00)": "1999-06-07T13:01:43Z",
		"19961206 #24302":                "1996-12-06T00:00:00Z",
		"31 May 1999":                    "1999-05-31T00:00:00Z",
		"2004/06/15":                     "2004-06-15T00:00:00Z",
		"15.06.2004":                     "2004-06-15T00:00:00Z",
		"before 1 January 1996":          "",
		"":                               "",
	} {
		got, ok := ParseDate(raw)
		if want == "" {
			if ok {
				t.Errorf("ParseDate(%q) = %v, want no date", raw, got)
			}
			continue
		}
		if !ok || got.Format(time.RFC3339) != want {
			t.Errorf("ParseDate(%q) = %v %v, want %s", raw, got, ok, want)
		}
	}
}

func TestParseTexts(t *testing.T) {
	for _, tt := range []struct {
		text      string
		want      lifecycle.State
		throttled bool
	}{
		{"Domain: example.de\nStatus: free\n", lifecycle.Available, false},
		{"No match for \"EXAMPLE.COM\".\n", lifecycle.Available, false},
		{"Query rate limit exceeded. Domain not found? Try again later.\n", "", true},
		{"Your connection limit exceeded. Please slow down and try again later.\n", "", true},
		{"%% Too many queries from your IP, access denied\n", "", true},
		{"This name is reserved by the registry.\n", lifecycle.Reserved, false},
		{"The domain is blocked due to DPML Brand Protection.\n", lifecycle.Reserved, false},
		{"hello world\n", "", false},
		{"", "", false},
	} {
		l, err := Parse(tt.text, "example.com", testNow)
		var te *status.ThrottledError
		if errors.As(err, &te) != tt.throttled {
			t.Errorf("%q: throttled %v, want %v (%v)", tt.text, !tt.throttled, tt.throttled, err)
		}
		if tt.want == "" {
			if err == nil {
				t.Errorf("%q: %s, want an error", tt.text, l.State)
			}
			continue
		}
		if err != nil || l.State != tt.want {
			t.Errorf("%q: %s %v, want %s", tt.text, l.State, err, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(record("found.test", "2030-01-01T00:00:00Z", "ok"))
	f.Add("No match for \"X.COM\".\n")
	f.Add("Domain: x.de\nStatus: free\n")
	f.Add("WHOIS LIMIT EXCEEDED\n")
	f.Add("Not available for registration.\nSecond level domain name is reserved.\n")
	f.Add("Domain Name: x.test\nDomain Status: pendingDelete\nRegistry Expiry Date: 19961206 #1\n")
	f.Fuzz(func(t *testing.T, text string) {
		l, err := Parse(text, "", testNow)
		if err != nil {
			if l.State != "" {
				t.Fatalf("error %v with state %s", err, l.State)
			}
			return
		}
		if _, perr := lifecycle.ParseState(string(l.State)); perr != nil {
			t.Fatalf("bad state %q", l.State)
		}
		if l.State == lifecycle.Available && Throttled(text) {
			t.Fatalf("throttle text read as available: %q", text)
		}
		for _, s := range l.Statuses {
			if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 && r != '\t' }) {
				t.Fatalf("control character in status %q", s)
			}
		}
	})
}
