package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// lastTwo is the tests' registrable function: the last two labels;
// single labels and names under .arpa are rejected.
func lastTwo(host string) (string, bool) {
	labels := strings.Split(host, ".")
	if len(labels) < 2 || labels[len(labels)-1] == "arpa" {
		return "", false
	}
	return strings.Join(labels[len(labels)-2:], "."), true
}

// world is a fake holding every shape of the tests.
func world(t *testing.T) *fakeDNS {
	t.Helper()
	f := newFake(t)
	f.add(t,
		// the parent zone "example." and its server
		"example. 3600 IN NS a.nic.example.",
		"a.nic.example. 3600 IN A 127.0.0.1",

		// plain MX + NS, one of each in bailiwick
		"example.org. 300 IN MX 20 mx2.mailhost.net.",
		"example.org. 300 IN MX 10 mx1.example.org.",
		"example.org. 300 IN NS ns2.dnshost.com.",
		"example.org. 300 IN NS NS1.Example.ORG.",
		"mx1.example.org. 300 IN A 192.0.2.1",
		"ns1.example.org. 300 IN A 192.0.2.2",
		"mx2.mailhost.net. 300 IN A 192.0.2.3",
		"ns2.dnshost.com. 300 IN A 192.0.2.4",

		// an MX host with a CNAME chain into two other domains
		"cname.example. 300 IN MX 10 mail.cname.example.",
		"cname.example. 300 IN NS ns.dnshost.com.",
		"mail.cname.example. 300 IN CNAME mx.hoster.net.",
		"mx.hoster.net. 300 IN CNAME MX7.bighoster.com.",
		"mx7.bighoster.com. 300 IN A 192.0.2.5",
		"ns.dnshost.com. 300 IN A 192.0.2.6",

		// a CNAME chain ending in NXDOMAIN: the target's domain lapsed
		"lapsedtarget.example. 300 IN MX 10 mail.lapsedtarget.example.",
		"lapsedtarget.example. 300 IN NS ns.dnshost.com.",
		"mail.lapsedtarget.example. 300 IN CNAME mx.gone-mail.net.",

		// null MX
		"nullmx.example. 300 IN MX 0 .",
		"nullmx.example. 300 IN NS ns.dnshost.com.",

		// no MX at all
		"nomx.example. 300 IN NS ns.dnshost.com.",
		"nomx.example. 300 IN A 192.0.2.7",

		// a big answer, truncated over UDP
		"big.example. 300 IN NS ns.dnshost.com.",
	)
	for i := range 40 {
		f.add(t, fmt.Sprintf("big.example. 300 IN MX %d mx%02d.a-rather-long-mail-host-name.example.net.", i, i))
	}
	f.mu.Lock() // the handlers read these under f.mu
	defer f.mu.Unlock()
	f.truncate["big.example"] = true

	// dangling delegations: the resolver SERVFAILs, the parent refers
	f.servfail["dangling.example"] = true
	f.deleg["dangling.example"] = []string{"ns1.lapseddns.net", "NS2.lapseddns.net."}
	f.servfail["gonechild.example"] = true // and the parent says NXDOMAIN

	f.refuse["refused.example"] = true
	return f
}

func newResolver(t *testing.T, cfg Config) *Resolver {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustLookup(t *testing.T, r *Resolver, domain string) Answer {
	t.Helper()
	a, err := r.Lookup(context.Background(), domain)
	if err != nil {
		t.Fatalf("Lookup(%s): %v", domain, err)
	}
	return a
}

func worldResolver(t *testing.T, f *fakeDNS) *Resolver {
	_, port, _ := strings.Cut(f.addr, ":")
	p, _ := strconv.Atoi(port)
	return newResolver(t, Config{Servers: []string{f.addr}, ReferralPort: p})
}

func TestShapes(t *testing.T) {
	f := world(t)
	r := worldResolver(t, f)

	cases := []struct {
		domain string
		want   Answer // CheckedAt, Queries and Error are checked apart
		errHas []string
	}{
		{domain: "Example.ORG.", want: Answer{Domain: "example.org", MX: OK, NS: OK, Links: []Link{
			{Role: "mx", Host: "mx1.example.org", Pref: 10},
			{Role: "mx", Host: "mx2.mailhost.net", Pref: 20},
			{Role: "ns", Host: "ns1.example.org"},
			{Role: "ns", Host: "ns2.dnshost.com"},
		}}},
		{domain: "cname.example", want: Answer{Domain: "cname.example", MX: OK, NS: OK, Links: []Link{
			{Role: "mx", Host: "mail.cname.example", Pref: 10, CNAMEs: []string{"mx.hoster.net", "mx7.bighoster.com"}},
			{Role: "ns", Host: "ns.dnshost.com"},
		}}},
		{domain: "lapsedtarget.example", want: Answer{Domain: "lapsedtarget.example", MX: OK, NS: OK, Links: []Link{
			{Role: "mx", Host: "mail.lapsedtarget.example", Pref: 10, CNAMEs: []string{"mx.gone-mail.net"}},
			{Role: "ns", Host: "ns.dnshost.com"},
		}}},
		{domain: "nullmx.example", want: Answer{Domain: "nullmx.example", MX: OK, NS: OK, NullMX: true, Links: []Link{
			{Role: "ns", Host: "ns.dnshost.com"},
		}}},
		{domain: "nosuch.example", want: Answer{Domain: "nosuch.example", MX: NXDomain, NS: NXDomain}},
		{domain: "nomx.example", want: Answer{Domain: "nomx.example", MX: NoData, NS: OK, Links: []Link{
			{Role: "ns", Host: "ns.dnshost.com"},
		}}},
		{domain: "dangling.example", want: Answer{Domain: "dangling.example", MX: ServFail, NS: OK, NSFromReferral: true, Links: []Link{
			{Role: "ns", Host: "ns1.lapseddns.net"},
			{Role: "ns", Host: "ns2.lapseddns.net"},
		}}, errHas: []string{"mx: servfail from " + f.addr, "(3 attempts)"}},
		{domain: "gonechild.example", want: Answer{Domain: "gonechild.example", MX: ServFail, NS: NXDomain, NSFromReferral: true},
			errHas: []string{"mx: servfail from " + f.addr}},
		{domain: "refused.example", want: Answer{Domain: "refused.example", MX: Refused, NS: Refused},
			errHas: []string{"mx: refused from " + f.addr, "ns: refused from " + f.addr}},
	}
	for _, c := range cases {
		t.Run(c.domain, func(t *testing.T) {
			before := time.Now()
			a := mustLookup(t, r, c.domain)
			if a.CheckedAt.Before(before) || a.CheckedAt.After(time.Now()) {
				t.Errorf("CheckedAt %v", a.CheckedAt)
			}
			if a.Queries < 2 {
				t.Errorf("Queries %d", a.Queries)
			}
			for _, s := range c.errHas {
				if !strings.Contains(a.Error, s) {
					t.Errorf("Error %q lacks %q", a.Error, s)
				}
			}
			if len(c.errHas) == 0 && a.Error != "" {
				t.Errorf("Error %q for a conclusive answer", a.Error)
			}
			got := a
			got.CheckedAt, got.Queries, got.Error = time.Time{}, 0, ""
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}

	// The plain shape's queries: MX, NS and the four hosts' A.
	if a := mustLookup(t, newResolver(t, Config{Servers: []string{f.addr}}), "example.org"); a.Queries != 6 {
		t.Errorf("example.org: %d queries, want 6", a.Queries)
	}
	// The referral went to the parent with RD=0, after the retries.
	if n := f.count("udp", false, mdns.TypeNS, "dangling.example"); n != 1 {
		t.Errorf("referral queries %d, want 1", n)
	}
	if n := f.count("udp", true, mdns.TypeNS, "dangling.example"); n != 3 {
		t.Errorf("NS queries to the resolver %d, want 3 (Retries 2)", n)
	}
}

func TestTruncationRetriesOverTCP(t *testing.T) {
	f := world(t)
	r := newResolver(t, Config{Servers: []string{f.addr}})
	a := mustLookup(t, r, "big.example")
	var mx int
	for i, l := range a.Links {
		if l.Role != "mx" {
			continue
		}
		if want := fmt.Sprintf("mx%02d.a-rather-long-mail-host-name.example.net", mx); l.Host != want || l.Pref != mx {
			t.Errorf("link %d: %+v, want %s pref %d", i, l, want, mx)
		}
		mx++
	}
	if a.MX != OK || mx != 40 {
		t.Fatalf("MX %s with %d links, want ok with 40", a.MX, mx)
	}
	if u, c := f.count("udp", true, mdns.TypeMX, "big.example"), f.count("tcp", true, mdns.TypeMX, "big.example"); u != 1 || c != 1 {
		t.Errorf("MX over udp %d, tcp %d; want 1 and 1", u, c)
	}
	// MX and NS each over UDP then TCP (the fake truncates every type of
	// the name), and the 41 hosts' A.
	if a.Queries != 4+41 {
		t.Errorf("Queries %d, want %d", a.Queries, 4+41)
	}
}

func TestRetriesRotateServers(t *testing.T) {
	bad := newFake(t)
	bad.mu.Lock()
	bad.allFail = true
	bad.mu.Unlock()
	good := world(t)
	r := newResolver(t, Config{Servers: []string{bad.addr, good.addr}, Retries: 1})
	a := mustLookup(t, r, "example.org")
	if a.MX != OK || a.NS != OK || len(a.Links) != 4 || a.Error != "" {
		t.Fatalf("%+v", a)
	}
	if n := bad.count("udp", true, mdns.TypeMX, "example.org"); n != 1 {
		t.Errorf("first server asked MX %d times, want 1", n)
	}
	if n := good.count("udp", true, mdns.TypeMX, "example.org"); n != 1 {
		t.Errorf("second server asked MX %d times, want 1", n)
	}
	// Each of the 6 questions: SERVFAIL from the first, the answer from the second.
	if a.Queries != 12 {
		t.Errorf("Queries %d, want 12", a.Queries)
	}

	// With no retries the SERVFAIL stands; and it is never conclusive.
	r0 := newResolver(t, Config{Servers: []string{bad.addr, good.addr}, Retries: -1})
	a = mustLookup(t, r0, "example.org")
	if a.MX != ServFail || a.MX.Conclusive() || !strings.Contains(a.Error, "mx: servfail from "+bad.addr) {
		t.Errorf("no retries: %+v", a)
	}
}

func TestParentUnreachable(t *testing.T) {
	f := world(t)
	closed := closedPort(t)
	r := newResolver(t, Config{Servers: []string{f.addr}, ReferralPort: closed})
	a := mustLookup(t, r, "dangling.example")
	if a.MX != ServFail || a.NS != ServFail || a.NSFromReferral || len(a.Links) != 0 {
		t.Fatalf("%+v", a)
	}
	if a.NS.Conclusive() || !strings.Contains(a.Error, "ns: servfail from "+f.addr) ||
		!strings.Contains(a.Error, "ns referral: parent example: error from 127.0.0.1:"+strconv.Itoa(closed)) {
		t.Errorf("Error %q", a.Error)
	}

	// A parent whose servers have no address.
	g := newFake(t)
	g.add(t, "example. 3600 IN NS a.nic.example.")
	g.mu.Lock()
	g.servfail["dangling.example"] = true
	g.mu.Unlock()
	a = mustLookup(t, newResolver(t, Config{Servers: []string{g.addr}}), "dangling.example")
	if a.NS != ServFail || len(a.Links) != 0 || !strings.Contains(a.Error, "no address for its servers a.nic.example") {
		t.Errorf("%+v", a)
	}
}

// closedPort is a loopback UDP port nothing listens on (a socket closed
// at once): queries to it are refused.
func closedPort(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	return port
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestTimeoutAfterRetries(t *testing.T) {
	addr, received := silentServer(t)
	const timeout = 150 * time.Millisecond
	r := newResolver(t, Config{Servers: []string{addr}, Timeout: timeout, Retries: 2})
	per := timeout * 3 // Timeout × (Retries+1)

	start := time.Now()
	a := mustLookup(t, r, "slow.example")
	elapsed := time.Since(start)
	if a.MX != Timeout || a.NS != Timeout || a.MX.Conclusive() || len(a.Links) != 0 {
		t.Fatalf("%+v", a)
	}
	if !strings.Contains(a.Error, "mx: timeout from "+addr+" (3 attempts)") || !strings.Contains(a.Error, "ns: timeout from "+addr) {
		t.Errorf("Error %q", a.Error)
	}
	// MX and NS are asked side by side (3 attempts each), then the
	// parent zone "example." once more (3 attempts).
	if a.Queries != 9 {
		t.Errorf("Queries %d, want 9", a.Queries)
	}
	if elapsed < per || elapsed > 2*per+per/2 {
		t.Errorf("first lookup took %v; want about 2 × %v", elapsed, per)
	}
	// The parent zone's failure is remembered a while: the next domain
	// costs one Timeout × (Retries+1).
	start = time.Now()
	a = mustLookup(t, r, "slow2.example")
	elapsed = time.Since(start)
	if a.MX != Timeout || a.NS != Timeout || a.Queries != 6 {
		t.Errorf("%+v", a)
	}
	if elapsed < per || elapsed > per+per/2 {
		t.Errorf("second lookup took %v; want about %v", elapsed, per)
	}
	if n := received(); n != 15 {
		t.Errorf("server received %d queries, want 15", n)
	}
}

func TestHostMemo(t *testing.T) {
	f := newFake(t)
	mx, _ := mdns.NewRR("x. 300 IN MX 10 mx.bigmail.example.")
	ns, _ := mdns.NewRR("x. 300 IN NS ns.bigmail.example.")
	f.mu.Lock()
	f.gen = func(name string) []mdns.RR {
		if !strings.HasSuffix(name, ".bulk.example") {
			return nil
		}
		m, n := mdns.Copy(mx), mdns.Copy(ns)
		m.Header().Name, n.Header().Name = name+".", name+"."
		return []mdns.RR{m, n}
	}
	for _, line := range []string{"mx.bigmail.example. 300 IN A 192.0.2.10", "ns.bigmail.example. 300 IN A 192.0.2.11"} {
		rr, _ := mdns.NewRR(line)
		f.rrs[norm(rr.Header().Name)] = []mdns.RR{rr}
	}
	f.mu.Unlock()
	r := newResolver(t, Config{Servers: []string{f.addr}})

	const n = 10000
	jobs := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	queries, bad := 0, 0
	for range 16 {
		wg.Go(func() {
			for i := range jobs {
				a, err := r.Lookup(context.Background(), fmt.Sprintf("d%d.bulk.example", i))
				mu.Lock()
				queries += a.Queries
				if err != nil || a.MX != OK || a.NS != OK || len(a.Links) != 2 || a.Links[0].Host != "mx.bigmail.example" {
					bad++
				}
				mu.Unlock()
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if bad != 0 {
		t.Errorf("%d lookups went wrong", bad)
	}
	if c := f.count("udp", true, mdns.TypeA, "mx.bigmail.example"); c != 1 {
		t.Errorf("A mx.bigmail.example asked %d times, want 1", c)
	}
	if c := f.count("udp", true, mdns.TypeA, "ns.bigmail.example"); c != 1 {
		t.Errorf("A ns.bigmail.example asked %d times, want 1", c)
	}
	if want := 2*n + 2; queries != want || f.queries() != want {
		t.Errorf("Queries summed %d, server saw %d, want %d", queries, f.queries(), want)
	}
}

func TestRateLimit(t *testing.T) {
	f := world(t)
	r := newResolver(t, Config{Servers: []string{f.addr}, RatePerSecond: 50})
	start := time.Now()
	q := 0
	for q < 20 {
		// nomx.example costs MX, NS and its one host's A the first
		// time, MX and NS after (the host is remembered).
		q += mustLookup(t, r, "nomx.example").Queries
	}
	// 20 queries at 50/s with a burst of 1: at least 19 intervals of 20ms.
	if elapsed := time.Since(start); elapsed < 350*time.Millisecond {
		t.Errorf("%d queries took %v; want ≥ 0.35s at 50 qps", q, elapsed)
	}
}

func TestCancel(t *testing.T) {
	addr, _ := silentServer(t)
	r := newResolver(t, Config{Servers: []string{addr}, Timeout: 5 * time.Second})

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Lookup(ctx, "example.org"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled before: %v", err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err := r.Lookup(ctx, "example.org")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled during: %v", err)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("cancelled lookup returned after %v", elapsed)
	}

	// Waiting on the rate limit is cancelled too.
	rl := newResolver(t, Config{Servers: []string{addr}, RatePerSecond: 0.01, Timeout: 50 * time.Millisecond, Retries: -1})
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := rl.Lookup(ctx, "example.org"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("rate-limited: %v", err)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("rate-limited lookup returned after %v", elapsed)
	}
}

func TestInvalidDomain(t *testing.T) {
	r := newResolver(t, Config{Servers: []string{"127.0.0.1:1"}})
	for _, d := range []string{"", ".", "  ", "a..b", "exa mple.org", `ex\046ample.org`, strings.Repeat("a", 64) + ".org", ".example.org"} {
		if _, err := r.Lookup(context.Background(), d); err == nil || !strings.Contains(err.Error(), "domain") {
			t.Errorf("Lookup(%q): %v", d, err)
		} else if d != "" && strings.TrimSpace(d) != "" && d != "." && !strings.Contains(err.Error(), strconv.Quote(d)) {
			t.Errorf("Lookup(%q): error %q does not name it", d, err)
		}
	}
	if d, err := normalizeDomain("Bücher.Example."); err != nil || d != "xn--bcher-kva.example" {
		t.Errorf("IDN: %q %v", d, err)
	}
}

func TestConfig(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "resolv.conf")
	_, err := New(Config{ResolvConf: missing})
	if err == nil || !strings.Contains(err.Error(), "[dns] servers") || !strings.Contains(err.Error(), missing) {
		t.Errorf("unreadable resolv.conf: %v", err)
	}

	empty := filepath.Join(t.TempDir(), "resolv.conf")
	writeFile(t, empty, "search example.org\n")
	if _, err := New(Config{ResolvConf: empty}); err == nil || !strings.Contains(err.Error(), "[dns] servers") {
		t.Errorf("resolv.conf without nameserver: %v", err)
	}

	conf := filepath.Join(t.TempDir(), "resolv.conf")
	writeFile(t, conf, "nameserver 192.0.2.53\nnameserver 2001:db8::53\noptions timeout:1\n")
	r, err := New(Config{ResolvConf: conf})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.Servers(), []string{"192.0.2.53:53", "[2001:db8::53]:53"}; !reflect.DeepEqual(got, want) {
		t.Errorf("servers from resolv.conf %v, want %v", got, want)
	}

	r, err = New(Config{Servers: []string{"127.0.0.1", "127.0.0.1:5353", "[::1]:5300", "[::1]", "resolver.internal"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.Servers(), []string{"127.0.0.1:53", "127.0.0.1:5353", "[::1]:5300", "[::1]:53", "resolver.internal:53"}; !reflect.DeepEqual(got, want) {
		t.Errorf("servers %v, want %v", got, want)
	}
	if r.timeout != 3*time.Second || r.retries != 2 || r.referralPort != 53 || r.limiter != nil {
		t.Errorf("defaults: timeout %v retries %d referral port %d limiter %v", r.timeout, r.retries, r.referralPort, r.limiter)
	}
	r, _ = New(Config{Servers: []string{"127.0.0.1"}, RatePerSecond: 10})
	if r.limiter == nil || r.limiter.Burst() != 1 {
		t.Errorf("rate without burst: %v", r.limiter)
	}

	for _, s := range []string{"", "127.0.0.1:0", "127.0.0.1:99999", "127.0.0.1:dns", "bad host", "[::1]:x"} {
		if _, err := New(Config{Servers: []string{s}}); err == nil || !strings.Contains(err.Error(), "[dns] servers") {
			t.Errorf("server %q: %v", s, err)
		}
	}
	if _, err := New(Config{Servers: []string{"127.0.0.1"}, RatePerSecond: -1}); err == nil {
		t.Error("negative rate accepted")
	}
	if _, err := New(Config{Servers: []string{"127.0.0.1"}, ReferralPort: 70000}); err == nil {
		t.Error("referral port 70000 accepted")
	}
}

func TestDependencies(t *testing.T) {
	a := Answer{Domain: "example.org", MX: OK, NS: OK, Links: []Link{
		{Role: "mx", Host: "mx1.example.org", Pref: 5},                                                        // in bailiwick
		{Role: "mx", Host: "mail.example.org", Pref: 10, CNAMEs: []string{"mx.hoster.net", "x.in-addr.arpa"}}, // in bailiwick, CNAME out; arpa rejected
		{Role: "mx", Host: "mx2.mailhost.net", Pref: 20},
		{Role: "mx", Host: "mx3.mailhost.net", Pref: 20},
		{Role: "mx", Host: "backup.example.org.mx.other.com", Pref: 30},
		{Role: "mx", Host: "localhost", Pref: 40}, // rejected
		{Role: "ns", Host: "ns1.example.org"},     // in bailiwick
		{Role: "ns", Host: "ns2.dnshost.com", CNAMEs: []string{"ns.example.org"}},
		{Role: "ns", Host: "ns.hoster.net"},
		{Role: "ns", Host: "a.example.org.evil.org"},
	}}
	got := Dependencies(a, lastTwo)
	want := []Dependency{
		{Domain: "example.org", Role: "mx", Host: "mx.hoster.net", Dep: "hoster.net", Pref: 10},
		{Domain: "example.org", Role: "mx", Host: "mx2.mailhost.net", Dep: "mailhost.net", Pref: 20},
		{Domain: "example.org", Role: "mx", Host: "mx3.mailhost.net", Dep: "mailhost.net", Pref: 20},
		{Domain: "example.org", Role: "mx", Host: "backup.example.org.mx.other.com", Dep: "other.com", Pref: 30},
		{Domain: "example.org", Role: "ns", Host: "a.example.org.evil.org", Dep: "evil.org"},
		{Domain: "example.org", Role: "ns", Host: "ns.hoster.net", Dep: "hoster.net"},
		{Domain: "example.org", Role: "ns", Host: "ns2.dnshost.com", Dep: "dnshost.com"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}

	// A registrable function that makes a host's domain the address domain.
	same := func(string) (string, bool) { return "example.org", true }
	if d := Dependencies(a, same); len(d) != 0 {
		t.Errorf("hosts whose registrable domain is the address domain: %+v", d)
	}
	if d := Dependencies(Answer{Domain: "nullmx.example", NullMX: true}, lastTwo); d != nil {
		t.Errorf("no links: %+v", d)
	}

	// Over a real lookup: the CNAME targets' domains are in, the
	// in-bailiwick host is out.
	f := world(t)
	r := newResolver(t, Config{Servers: []string{f.addr}})
	got = Dependencies(mustLookup(t, r, "cname.example"), lastTwo)
	want = []Dependency{
		{Domain: "cname.example", Role: "mx", Host: "mx.hoster.net", Dep: "hoster.net", Pref: 10},
		{Domain: "cname.example", Role: "mx", Host: "mx7.bighoster.com", Dep: "bighoster.com", Pref: 10},
		{Domain: "cname.example", Role: "ns", Host: "ns.dnshost.com", Dep: "dnshost.com"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("cname.example: got\n%+v\nwant\n%+v", got, want)
	}
	got = Dependencies(mustLookup(t, r, "lapsedtarget.example"), lastTwo)
	if len(got) != 2 || got[0].Dep != "gone-mail.net" || got[0].Host != "mx.gone-mail.net" {
		t.Errorf("lapsedtarget.example: %+v", got)
	}
}

func TestOutcomeConclusive(t *testing.T) {
	for o, want := range map[Outcome]bool{OK: true, NoData: true, NXDomain: true, ServFail: false, Timeout: false, Refused: false, Failed: false, "": false} {
		if o.Conclusive() != want {
			t.Errorf("%q.Conclusive() = %v", o, !want)
		}
	}
}
