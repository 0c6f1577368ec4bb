package pipeline

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/lapse-dev/lapse/cache"
	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/duck"
	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sources/dns"
)

// mZone is a loopback DNS server for the mail path's tests: RD=1 queries
// answered as a recursive resolver would from the zone's records, RD=0
// queries for a domain's NS as its parent (a referral). Domains in lame
// are dangling delegations (SERVFAIL); in drop, never answered (timeout).
type mZone struct {
	mu    sync.Mutex
	mx    map[string][]string // domain → MX hosts ("." for null MX)
	ns    map[string][]string // domain → name servers
	lame  map[string]bool
	drop  map[string]bool
	asked map[string]int // "qtype name" → queries
	total atomic.Int64
	addr  string
}

func newMZone(t *testing.T) *mZone {
	t.Helper()
	z := &mZone{mx: map[string][]string{}, ns: map[string][]string{}, lame: map[string]bool{}, drop: map[string]bool{}, asked: map[string]int{}}
	// UDP and TCP on one port: the UDP port the OS picks may be taken
	// for TCP by another process; pick again.
	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	for range 20 {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	z.addr = pc.LocalAddr().String()
	for _, s := range []*mdns.Server{{PacketConn: pc, Handler: z}, {Listener: ln, Handler: z}} {
		go s.ActivateAndServe()
		t.Cleanup(func() { s.Shutdown() })
	}
	return z
}

func (z *mZone) port() int {
	_, p, _ := net.SplitHostPort(z.addr)
	var n int
	fmt.Sscan(p, &n)
	return n
}

func (z *mZone) set(domain string, mx, ns []string) {
	z.mu.Lock()
	z.mx[domain], z.ns[domain] = mx, ns
	z.mu.Unlock()
}

// owner is the zone's domain a name lies in ("" when none).
func (z *mZone) owner(name string) string {
	for n := name; n != ""; {
		if _, ok := z.ns[n]; ok {
			return n
		}
		i := strings.IndexByte(n, '.')
		if i < 0 {
			break
		}
		n = n[i+1:]
	}
	return ""
}

func (z *mZone) ServeDNS(w mdns.ResponseWriter, r *mdns.Msg) {
	z.total.Add(1)
	q := r.Question[0]
	name := strings.TrimSuffix(strings.ToLower(q.Name), ".")
	z.mu.Lock()
	z.asked[mdns.TypeToString[q.Qtype]+" "+name]++
	d := z.owner(name)
	lame, drop := z.lame[d], z.drop[d]
	mx, ns := z.mx[d], z.ns[d]
	z.mu.Unlock()
	m := new(mdns.Msg)
	m.SetReply(r)
	if drop {
		return // a timeout
	}
	if !r.RecursionDesired {
		// The parent zone: a referral to the domain's name servers.
		if d == "" || d != name || q.Qtype != mdns.TypeNS {
			m.Rcode = mdns.RcodeNameError
		}
		for _, h := range ns {
			m.Ns = append(m.Ns, &mdns.NS{Hdr: mdns.RR_Header{Name: d + ".", Rrtype: mdns.TypeNS, Class: mdns.ClassINET, Ttl: 300}, Ns: h + "."})
		}
		w.WriteMsg(m)
		return
	}
	hdr := func(t uint16) mdns.RR_Header {
		return mdns.RR_Header{Name: q.Name, Rrtype: t, Class: mdns.ClassINET, Ttl: 300}
	}
	switch {
	case q.Qtype == mdns.TypeNS && !strings.Contains(name, "."):
		// A TLD: its server is this one (on the test's referral port).
		m.Answer = append(m.Answer, &mdns.NS{Hdr: hdr(mdns.TypeNS), Ns: "a.nic." + name + "."})
	case q.Qtype == mdns.TypeA && strings.HasPrefix(name, "a.nic."):
		m.Answer = append(m.Answer, &mdns.A{Hdr: hdr(mdns.TypeA), A: net.IPv4(127, 0, 0, 1)})
	case d == "":
		m.Rcode = mdns.RcodeNameError
	case lame:
		m.Rcode = mdns.RcodeServerFailure
	case q.Qtype == mdns.TypeMX && name == d:
		for i, h := range mx {
			m.Answer = append(m.Answer, &mdns.MX{Hdr: hdr(mdns.TypeMX), Preference: uint16(10 * i), Mx: strings.TrimSuffix(h, ".") + "."})
		}
	case q.Qtype == mdns.TypeNS && name == d:
		for _, h := range ns {
			m.Answer = append(m.Answer, &mdns.NS{Hdr: hdr(mdns.TypeNS), Ns: h + "."})
		}
	case q.Qtype == mdns.TypeA:
		m.Answer = append(m.Answer, &mdns.A{Hdr: hdr(mdns.TypeA), A: net.IPv4(127, 0, 0, 2)})
	}
	w.WriteMsg(m)
}

func (z *mZone) queries(key string) int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.asked[key]
}

// mProvider answers each domain with the state set for it (registered
// by default), from RDAP.
type mProvider struct {
	mu     sync.Mutex
	states map[string]lifecycle.Lifecycle
	calls  map[string]int
	now    func() time.Time
}

func (p *mProvider) Name() lifecycle.Source { return lifecycle.SourceRDAP }

func (p *mProvider) Lookup(ctx context.Context, d string) (lifecycle.Lifecycle, error) {
	p.mu.Lock()
	p.calls[d]++
	lc, ok := p.states[d]
	p.mu.Unlock()
	if !ok {
		reg := time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)
		exp := p.now().AddDate(2, 0, 0)
		lc = lifecycle.Lifecycle{State: lifecycle.Registered, RegisteredAt: &reg, ExpiresAt: &exp}
	}
	now := p.now()
	lc.Domain, lc.Source, lc.CheckedAt, lc.AsOf = d, lifecycle.SourceRDAP, now, now
	lc.Evidence = []lifecycle.Evidence{{Source: lifecycle.SourceRDAP, State: lc.State, CheckedAt: now}}
	return lc, nil
}

func (p *mProvider) set(d string, lc lifecycle.Lifecycle) {
	p.mu.Lock()
	p.states[d] = lc
	p.mu.Unlock()
}

// mNight is a night over emails with the mail path on, against z.
func mNight(t *testing.T, z *mZone, emails []string) (*hNight, *mProvider) {
	t.Helper()
	h := newHNight(t, emails...)
	h.cfg.DNS = config.DNSConfig{Enabled: true, Servers: []string{z.addr}, ReferralPort: z.port(), Every: config.Duration(90 * 24 * time.Hour),
		Limits: config.Limits{Concurrency: 8, Timeout: config.Duration(300 * time.Millisecond), Retries: 1}}
	return h, &mProvider{states: map[string]lifecycle.Lifecycle{}, calls: map[string]int{}, now: h.clk.Now}
}

func mOpts(t *testing.T, h *hNight, z *mZone, p *mProvider, date string) Options {
	t.Helper()
	r, err := NewResolver(h.cfg.DNS, nil, h.clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	o := h.opts(date)
	o.Provider, o.DNS = p, r
	return o
}

// mDecisions reads a night's decisions: email → reason.
func mDecisions(t *testing.T, p night.Paths) map[string]string {
	t.Helper()
	db, err := duck.OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT email, reason, evidence FROM read_parquet(?)`, p.Decisions())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var e, r string
		var ev sql.NullString
		if err := rows.Scan(&e, &r, &ev); err != nil {
			t.Fatal(err)
		}
		out[e] = r + " | " + ev.String
	}
	return out
}

// One provider shared by 10,000 domains is one lookup, and its MX host one
// DNS query, however many domains use it.
func TestMailPathSharedDependencyLookedUpOnce(t *testing.T) {
	ctx := context.Background()
	z := newMZone(t)
	const n = 10000
	emails := make([]string, n)
	for i := range n {
		d := fmt.Sprintf("d%05d.org", i)
		emails[i] = "m@" + d
		z.set(d, []string{"mx1.bigmail.net"}, []string{"ns1.bigdns.com", "ns2.bigdns.com"})
	}
	z.set("bigmail.net", []string{"mx1.bigmail.net"}, []string{"ns1.bigmail.net"})
	z.set("bigdns.com", []string{"mx.bigdns.com"}, []string{"ns1.bigdns.com"})
	h, p := mNight(t, z, emails)
	p.set("bigmail.net", lifecycle.Lifecycle{State: lifecycle.Available})
	res, err := RunNight(ctx, mOpts(t, h, z, p, "2026-03-01"))
	if err != nil {
		t.Fatal(err)
	}
	f := res.Figures()
	if f.MailPath == nil || f.MailPath.LookedUp != n || f.MailPath.Dependencies != 2 || f.MailPath.Links != 3*n {
		t.Fatalf("mail path figures: %+v", f.MailPath)
	}
	if p.calls["bigmail.net"] != 1 || p.calls["bigdns.com"] != 1 {
		t.Errorf("dependency lookups: bigmail.net %d, bigdns.com %d, want 1 each", p.calls["bigmail.net"], p.calls["bigdns.com"])
	}
	if q := z.queries("A mx1.bigmail.net"); q != 1 {
		t.Errorf("the shared MX host was asked %d times, want once", q)
	}
	if f.Lookups["dns"] != n || f.Lookups["rdap"] != n+2 {
		t.Errorf("lookups %v, want dns %d and rdap %d", f.Lookups, n, n+2)
	}
	if f.Flagged != n || f.FlaggedByReason[string(lifecycle.ReasonMXAvailable)] != n {
		t.Errorf("flagged %d by %v, want %d mx_domain_available", f.Flagged, f.FlaggedByReason, n)
	}
	dec := mDecisions(t, night.Dir(h.cfg.DataDir).Night("2026-03-01"))
	if ev := dec["m@d00042.org"]; !strings.Contains(ev, "mx1.bigmail.net") || !strings.Contains(ev, "bigmail.net") {
		t.Errorf("evidence does not name the host and its domain: %q", ev)
	}

	// The next night: nothing is due, nothing is asked.
	h.clk.Add(24 * time.Hour)
	before := z.total.Load()
	res, err = RunNight(ctx, mOpts(t, h, z, p, "2026-03-02"))
	if err != nil {
		t.Fatal(err)
	}
	if mp := res.Figures().MailPath; mp.Due != 0 || z.total.Load() != before {
		t.Errorf("second night: %d due, %d DNS queries", mp.Due, z.total.Load()-before)
	}
	// The plan took the dns stage's dependency domains: the same as a
	// plan of its own (a resumed night) reads from the schedule.
	p2, data := night.Dir(h.cfg.DataDir).Night("2026-03-02"), night.Dir(h.cfg.DataDir)
	if pl, err := ReadPlan(p2.Plan()); err != nil || pl.Dependencies != 2 {
		t.Errorf("second night's plan: %d dependencies (%v), want 2", pl.Dependencies, err)
	}
	var mr MailPathResult
	_, deps, err := mailDue(ctx, MailPathOptions{Snapshot: p2.Snapshot(), SnapshotDomains: p2.SnapshotDomains(), SnapshotManifest: p2.SnapshotManifest(),
		LinksCopy: data.LinksCopy(), Schedule: data.MailSchedule(), StatesCopy: data.StatesCopy(), Now: time.Now()}, &mr)
	if err != nil {
		t.Fatal(err)
	}
	sd, err := snapshotDomains(ctx, snapshotDomainsSQL(p2.Snapshot(), p2.SnapshotDomains(), p2.SnapshotManifest()), "",
		depsSource{links: p2.Links(), schedule: data.MailSchedule()}, time.Now(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"bigdns.com", "bigmail.net"}
	if got := slices.Sorted(maps.Keys(sd.depSet)); !slices.Equal(deps, want) || !slices.Equal(got, want) {
		t.Errorf("dependency domains: dns stage %q, plan from the schedule %q, want %q", deps, got, want)
	}
}

// An NS domain lapses while the address domain stays healthy: the address
// is watched while its expiry nears and passes and un-verified once it reaches redemption,
// weeks before anyone can register it.
func TestMailPathNSDomainLapsesAcrossNights(t *testing.T) {
	ctx := context.Background()
	z := newMZone(t)
	z.set("healthy.org", []string{"mx.healthy.org"}, []string{"ns1.tinydns.com", "ns2.tinydns.com"})
	z.set("tinydns.com", []string{"mx.tinydns.com"}, []string{"ns1.tinydns.com"})
	z.set("other.org", []string{"mx.other.org"}, []string{"ns1.other.org"})
	h, p := mNight(t, z, []string{"a@healthy.org", "b@other.org"})
	start := h.clk.Now()
	expiry := start.Add(20 * 24 * time.Hour)
	reg := time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)
	// tinydns.com: expires on day 20, grace until day 30, redemption until
	// day 60, pending delete until day 65, then available.
	stateOn := func(day int) lifecycle.Lifecycle {
		lc := lifecycle.Lifecycle{RegisteredAt: &reg, ExpiresAt: &expiry}
		switch {
		case day < 20:
			lc.State = lifecycle.Registered
		case day < 30:
			lc.State = lifecycle.Grace
		case day < 60:
			lc.State = lifecycle.Redemption
		case day < 65:
			lc.State = lifecycle.PendingDelete
		default:
			lc.State, lc.RegisteredAt, lc.ExpiresAt = lifecycle.Available, nil, nil
		}
		return lc
	}
	caught := -1
	for day := 0; day < 70 && caught < 0; day++ {
		p.set("tinydns.com", stateOn(day))
		// Out of the zone from redemption on: the delegation dangles.
		z.mu.Lock()
		z.lame["healthy.org"] = day >= 30
		z.mu.Unlock()
		date := start.AddDate(0, 0, day).Format(time.DateOnly)
		if _, err := RunNight(ctx, mOpts(t, h, z, p, date)); err != nil {
			t.Fatalf("day %d: %v", day, err)
		}
		dec := mDecisions(t, night.Dir(h.cfg.DataDir).Night(date))
		if _, ok := dec["b@other.org"]; ok {
			t.Fatalf("day %d: other.org decided %q", day, dec["b@other.org"])
		}
		got := dec["a@healthy.org"]
		switch {
		case strings.HasPrefix(got, string(lifecycle.ReasonNSRedemption)):
			caught = day
			if !strings.Contains(got, "ns1.tinydns.com") {
				t.Errorf("evidence %q does not name the name server", got)
			}
		case !strings.HasPrefix(got, string(lifecycle.ReasonNSWatch)):
			// Its expiry is inside the watch window from the first night.
			t.Errorf("day %d: a@healthy.org %q, want on watch (%s)", day, got, lifecycle.ReasonNSWatch)
		}
		h.clk.Add(24 * time.Hour)
	}
	if caught < 30 || caught >= 65 {
		t.Fatalf("caught on day %d, want in redemption (days 30-59), before the name is registrable on day 65", caught)
	}
	t.Logf("caught on day %d, %d days before tinydns.com is registrable; tinydns.com looked up %d times", caught, 65-caught, p.calls["tinydns.com"])
}

// SERVFAIL and timeouts are never evidence: nothing is flagged on them,
// links seen before are kept, and the lookup is retried on the next night.
func TestMailPathFailuresFlagNothing(t *testing.T) {
	ctx := context.Background()
	z := newMZone(t)
	z.set("flaky.org", []string{"mx.smallhost.net"}, []string{"ns1.flaky.org"})
	z.set("slow.org", []string{"mx.smallhost.net"}, []string{"ns1.slow.org"})
	z.set("steady.org", []string{"mx.smallhost.net"}, []string{"ns1.steady.org"})
	z.set("smallhost.net", []string{"mx.smallhost.net"}, []string{"ns1.smallhost.net"})
	h, p := mNight(t, z, []string{"a@flaky.org", "b@slow.org", "c@steady.org"})
	z.lame["flaky.org"], z.drop["slow.org"] = true, true
	// smallhost.net, the MX host of all three, is available: only
	// steady.org, whose MX was seen, is flagged. The referral for
	// flaky.org gives its in-bailiwick NS: no dependency either.
	p.set("smallhost.net", lifecycle.Lifecycle{State: lifecycle.Available})
	res, err := RunNight(ctx, mOpts(t, h, z, p, "2026-03-01"))
	if err != nil {
		t.Fatal(err)
	}
	mp := res.Figures().MailPath
	if mp.Outcomes["mx/servfail"] != 1 || mp.Outcomes["mx/timeout"] != 1 || mp.Outcomes["mx/ok"] != 1 {
		t.Errorf("outcomes %v", mp.Outcomes)
	}
	dec := mDecisions(t, night.Dir(h.cfg.DataDir).Night("2026-03-01"))
	if len(dec) != 1 || !strings.HasPrefix(dec["c@steady.org"], string(lifecycle.ReasonMXAvailable)) {
		t.Errorf("decisions: %v, want only c@steady.org un-verified", dec)
	}
	// The failed ones are asked again the next night; still failing, they
	// still flag nothing.
	h.clk.Add(24 * time.Hour)
	res, err = RunNight(ctx, mOpts(t, h, z, p, "2026-03-02"))
	if err != nil {
		t.Fatal(err)
	}
	if mp := res.Figures().MailPath; mp.Due != 2 || mp.LookedUp != 2 {
		t.Errorf("second night: %d mail paths due, %d looked up, want the 2 that failed", mp.Due, mp.LookedUp)
	}
	dec = mDecisions(t, night.Dir(h.cfg.DataDir).Night("2026-03-02"))
	if len(dec) != 1 || dec["a@flaky.org"] != "" || dec["b@slow.org"] != "" {
		t.Errorf("second night's decisions: %v", dec)
	}
	// steady.org now SERVFAILs: its MX link stands, and so does the flag.
	z.mu.Lock()
	z.lame["steady.org"] = true
	z.mu.Unlock()
	h.clk.Add(91 * 24 * time.Hour)
	if _, err := RunNight(ctx, mOpts(t, h, z, p, "2026-06-01")); err != nil {
		t.Fatal(err)
	}
	dec = mDecisions(t, night.Dir(h.cfg.DataDir).Night("2026-06-01"))
	if !strings.HasPrefix(dec["c@steady.org"], string(lifecycle.ReasonMXAvailable)) || len(dec) != 1 {
		t.Errorf("after a SERVFAIL: %v", dec)
	}
	if _, err := os.Stat(filepath.Join(h.cfg.DataDir, "states", "links.parquet")); err != nil {
		t.Error(err)
	}
}

// The pypi preset ignores the mail path: no DNS stage, no links.
func TestMailPathOffForPyPI(t *testing.T) {
	z := newMZone(t)
	z.set("one.org", []string{"mx.gone.net"}, []string{"ns1.one.org"})
	h, p := mNight(t, z, []string{"a@one.org"})
	h.cfg.Policy.Name = lifecycle.PolicyPyPI
	res, err := RunNight(context.Background(), mOpts(t, h, z, p, "2026-03-01"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Figures().MailPath != nil || z.total.Load() != 0 {
		t.Errorf("pypi night: mail path %+v, %d DNS queries", res.Figures().MailPath, z.total.Load())
	}
	_ = dns.OK
}

// A forced domain (its owner re-verified an address) has its mail path
// looked up again although it is not due.
func TestMailPathForced(t *testing.T) {
	ctx := context.Background()
	z := newMZone(t)
	z.set("moved.org", []string{"mx.newhost.net"}, []string{"ns1.moved.org"})
	z.set("still.org", []string{"mx.newhost.net"}, []string{"ns1.still.org"})
	h, p := mNight(t, z, []string{"a@moved.org", "b@still.org"})
	if _, err := RunNight(ctx, mOpts(t, h, z, p, "2026-03-01")); err != nil {
		t.Fatal(err)
	}
	c, err := cache.Open(night.CacheDir(h.cfg), cache.Options{Now: h.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d := night.Dir(h.cfg.DataDir)
	pp := d.Night("2026-03-02")
	if err := os.MkdirAll(pp.ObservationsDir(), 0o750); err != nil {
		t.Fatal(err)
	}
	r, err := NewResolver(h.cfg.DNS, nil, h.clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	o := MailPathOptions{Snapshot: d.Night("2026-03-01").Snapshot(), LinksCopy: d.LinksCopy(), StatesCopy: d.StatesCopy(),
		NightLinks: pp.Links(), NightDNS: pp.DNS(), Journal: pp.DNSJournal(), Cache: c, Every: 90 * 24 * time.Hour,
		Resolver: func() (MailResolver, error) { return r, nil }, Now: h.clk.Now().Add(24 * time.Hour), Force: []string{"moved.org"}}
	res, err := MailPath(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Due != 1 || res.LookedUp != 1 {
		t.Errorf("forced: %d due, %d looked up, want moved.org alone", res.Due, res.LookedUp)
	}
	deps, err := mailDependenciesOf(ctx, pp.Links(), []string{"moved.org"})
	if err != nil || len(deps) != 1 || deps[0] != "newhost.net" {
		t.Errorf("dependencies of moved.org: %v %v", deps, err)
	}
}

// A resolver that answers nothing stops the night's DNS lookups after
// unreachableAfter of them in a row: the rest wait for tomorrow, and the
// night goes on.
func TestMailPathUnreachableResolverStops(t *testing.T) {
	ctx := context.Background()
	z := newMZone(t)
	const n = 3 * unreachableAfter
	emails := make([]string, n)
	for i := range n {
		d := fmt.Sprintf("dead%04d.org", i)
		emails[i] = "m@" + d
		z.set(d, []string{"mx.host.net"}, []string{"ns1." + d})
		z.drop[d] = true
	}
	h, p := mNight(t, z, emails)
	h.cfg.DNS.Timeout, h.cfg.DNS.Retries = config.Duration(20*time.Millisecond), -1
	res, err := RunNight(ctx, mOpts(t, h, z, p, "2026-03-01"))
	if err != nil {
		t.Fatal(err)
	}
	mp := res.Figures().MailPath
	if !mp.Unreachable || mp.LookedUp >= n || mp.LookedUp < unreachableAfter || mp.Deferred != n-mp.LookedUp {
		t.Fatalf("mail path: %+v", mp)
	}
	if f := res.Figures(); f.Flagged != 0 || f.Planned != n {
		t.Errorf("night: flagged %d, planned %d (the domains' own lookups go on)", f.Flagged, f.Planned)
	}
}
