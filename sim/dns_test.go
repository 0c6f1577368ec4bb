package sim

import (
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/lapse-dev/lapse/lifecycle"
)

// ask sends one query to the sim's DNS server over network (udp or tcp).
func ask(t *testing.T, addr, network, name string, qtype uint16, rd bool) *dns.Msg {
	t.Helper()
	r, err := askErr(addr, network, name, qtype, rd, 3*time.Second)
	if err != nil {
		t.Fatalf("dns %s %s %s rd=%v: %v", network, name, dns.TypeToString[qtype], rd, err)
	}
	return r
}

func askErr(addr, network, name string, qtype uint16, rd bool, timeout time.Duration) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: timeout}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = rd
	r, _, err := c.Exchange(m, addr)
	return r, err
}

// records renders a section's records of one type as "name value" strings.
func records(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		switch x := rr.(type) {
		case *dns.MX:
			out = append(out, "MX "+strings.TrimSuffix(x.Hdr.Name, ".")+" "+dns.Fqdn(x.Mx))
		case *dns.NS:
			out = append(out, "NS "+strings.TrimSuffix(x.Hdr.Name, ".")+" "+x.Ns)
		case *dns.CNAME:
			out = append(out, "CNAME "+strings.TrimSuffix(x.Hdr.Name, ".")+" "+x.Target)
		case *dns.A:
			out = append(out, "A "+strings.TrimSuffix(x.Hdr.Name, ".")+" "+x.A.String())
		}
	}
	return out
}

// mailWorld is the seed-1 demo world from 2026-01-01, served.
func mailWorld(t *testing.T, opts ServerOptions) (*World, *Servers) {
	return startTest(t, Params{Seed: 1, Start: mailStart, Emails: 20000}, opts)
}

// findSetup returns a company or personal domain delegated on day whose
// setup satisfies ok, and its setup.
func findSetup(t *testing.T, w *World, day int32, what string, ok func(d *Domain, m *MailSetup) bool) (*Domain, *MailSetup) {
	t.Helper()
	for i := range w.Domains {
		d := &w.Domains[i]
		if (d.Kind != KindCompany && d.Kind != KindPersonal) || !w.PhaseAt(d, day).Delegated {
			continue
		}
		if ok(d, &w.Mail[i]) {
			return d, &w.Mail[i]
		}
	}
	t.Fatalf("no domain with %s on day %d", what, day)
	return nil, nil
}

// hostOf returns the host domain a host name lies in.
func hostOf(w *World, host string) *Domain {
	d, _ := w.Lookup(registrableOf(host))
	return d
}

func TestDNSShapes(t *testing.T) {
	w, s := mailWorld(t, ServerOptions{})
	addr := s.Endpoints().DNS
	healthy := func(d *Domain) bool { return d != nil && w.PhaseAt(d, 0).Delegated }
	before := s.DNSQueries()

	t.Run("big shared", func(t *testing.T) {
		d, m := findSetup(t, w, 0, "big shared MX and NS", func(d *Domain, m *MailSetup) bool {
			return len(m.MX) == 2 && slices.Contains(bigMailHosts, registrableOf(m.MX[0].Host)) && slices.Contains(bigDNSHosts, registrableOf(m.NS[0]))
		})
		r := ask(t, addr, "udp", d.Name, dns.TypeMX, true)
		want := []string{"MX " + d.Name + " " + m.MX[0].Host + ".", "MX " + d.Name + " " + m.MX[1].Host + "."}
		if r.Rcode != dns.RcodeSuccess || !slices.Equal(records(r.Answer), want) || !r.RecursionAvailable {
			t.Errorf("MX %s: %s %v, want %v", d.Name, dns.RcodeToString[r.Rcode], records(r.Answer), want)
		}
		r = ask(t, addr, "tcp", d.Name, dns.TypeNS, true)
		if got := records(r.Answer); len(got) != 2 || got[0] != "NS "+d.Name+" "+m.NS[0]+"." {
			t.Errorf("NS %s: %v, want %v", d.Name, got, m.NS)
		}
		r = ask(t, addr, "udp", m.MX[0].Host, dns.TypeA, true)
		if got := records(r.Answer); len(got) != 1 || !strings.HasPrefix(got[0], "A "+m.MX[0].Host+" 127.0.0.") {
			t.Errorf("A %s: %v", m.MX[0].Host, got)
		}
	})

	t.Run("small host", func(t *testing.T) {
		d, m := findSetup(t, w, 0, "MX on a small host", func(d *Domain, m *MailSetup) bool {
			h := hostOf(w, m.MX[0].Host)
			return len(m.MX) == 1 && h != nil && h.SmallHost() && healthy(h) && len(m.CNAMEs) == 0
		})
		r := ask(t, addr, "udp", d.Name, dns.TypeMX, true)
		if got := records(r.Answer); len(got) != 1 || got[0] != "MX "+d.Name+" "+m.MX[0].Host+"." {
			t.Errorf("MX %s: %v, want %s", d.Name, got, m.MX[0].Host)
		}
		deps := w.MailDependencies(d.Name)
		if !slices.Contains(deps, "mx:"+registrableOf(m.MX[0].Host)) {
			t.Errorf("%s depends on %v", d.Name, deps)
		}
	})

	t.Run("in-bailiwick NS", func(t *testing.T) {
		d, _ := findSetup(t, w, 0, "in-bailiwick name servers", func(d *Domain, m *MailSetup) bool {
			return m.NS[0] == "ns1."+d.Name
		})
		r := ask(t, addr, "udp", d.Name, dns.TypeNS, true)
		want := []string{"NS " + d.Name + " ns1." + d.Name + ".", "NS " + d.Name + " ns2." + d.Name + "."}
		if !slices.Equal(records(r.Answer), want) {
			t.Errorf("NS %s: %v, want %v", d.Name, records(r.Answer), want)
		}
		// the parent refers with glue
		r = ask(t, addr, "udp", d.Name, dns.TypeNS, false)
		if r.Rcode != dns.RcodeSuccess || r.Authoritative || len(r.Answer) != 0 || !slices.Equal(records(r.Ns), want) || len(r.Extra) != 2 {
			t.Errorf("referral for %s: %v", d.Name, r)
		}
		for _, dep := range w.MailDependencies(d.Name) {
			if strings.HasPrefix(dep, "ns:") {
				t.Errorf("%s: in-bailiwick name servers listed as a dependency %s", d.Name, dep)
			}
		}
	})

	t.Run("CNAME'd MX", func(t *testing.T) {
		d, m := findSetup(t, w, 0, "a CNAME'd MX host", func(d *Domain, m *MailSetup) bool {
			return len(m.CNAMEs) > 0 && healthy(hostOf(w, m.CNAMEs[0].Target))
		})
		c := m.CNAMEs[0]
		r := ask(t, addr, "udp", d.Name, dns.TypeMX, true)
		if got := records(r.Answer); len(got) != 1 || got[0] != "MX "+d.Name+" mail."+d.Name+"." {
			t.Errorf("MX %s: %v", d.Name, got)
		}
		r = ask(t, addr, "udp", c.Host, dns.TypeA, true)
		got := records(r.Answer)
		if r.Rcode != dns.RcodeSuccess || len(got) != 2 || got[0] != "CNAME "+c.Host+" "+c.Target+"." || !strings.HasPrefix(got[1], "A "+c.Target+" 127.0.0.") {
			t.Errorf("A %s: %s %v, want the chain to %s", c.Host, dns.RcodeToString[r.Rcode], got, c.Target)
		}
		if deps := w.MailDependencies(d.Name); !slices.Contains(deps, "mx:"+registrableOf(c.Target)) {
			t.Errorf("%s depends on %v, want the CNAME target's domain", d.Name, deps)
		}
		// a CNAME whose target's domain dropped: the chain, then NXDOMAIN
		var day int32 = -1
		_, m2 := findSetup(t, w, 0, "a CNAME'd MX host whose target lapses", func(d *Domain, m *MailSetup) bool {
			if len(m.CNAMEs) == 0 {
				return false
			}
			h := hostOf(w, m.CNAMEs[0].Target)
			for x := int32(0); x < 400; x++ {
				if !w.PhaseAt(h, x).Delegated && w.PhaseAt(d, x).Delegated {
					day = x
					return true
				}
			}
			return false
		})
		w.SetDate(w.dayTime(day))
		defer w.SetDate(mailStart)
		c = m2.CNAMEs[0]
		r = ask(t, addr, "udp", c.Host, dns.TypeA, true)
		if got := records(r.Answer); r.Rcode != dns.RcodeNameError || len(got) != 1 || got[0] != "CNAME "+c.Host+" "+c.Target+"." {
			t.Errorf("A %s on day %d (%s %s): %s %v, want the CNAME and NXDOMAIN", c.Host, day, registrableOf(c.Target), w.PhaseAt(hostOf(w, c.Target), day).State, dns.RcodeToString[r.Rcode], got)
		}
	})

	t.Run("null MX", func(t *testing.T) {
		d, _ := findSetup(t, w, 0, "a null MX", func(d *Domain, m *MailSetup) bool { return m.NullMX })
		r := ask(t, addr, "udp", d.Name, dns.TypeMX, true)
		if len(r.Answer) != 1 || r.Answer[0].(*dns.MX).Preference != 0 || r.Answer[0].(*dns.MX).Mx != "." {
			t.Errorf("MX %s: %v, want MX 0 .", d.Name, r.Answer)
		}
		for _, dep := range w.MailDependencies(d.Name) {
			if strings.HasPrefix(dep, "mx:") {
				t.Errorf("%s: null MX with an MX dependency %s", d.Name, dep)
			}
		}
	})

	t.Run("NXDOMAIN", func(t *testing.T) {
		var dropped *Domain
		for i := range w.Domains {
			d := &w.Domains[i]
			if d.Kind == KindPersonal && w.PhaseAt(d, 0).State == lifecycle.Available {
				dropped = d
				break
			}
		}
		if dropped == nil {
			t.Fatal("no dropped domain")
		}
		for _, rd := range []bool{true, false} {
			r := ask(t, addr, "udp", dropped.Name, dns.TypeMX, rd)
			if r.Rcode != dns.RcodeNameError || len(r.Answer) != 0 || r.Authoritative == rd {
				t.Errorf("MX %s (available) rd=%v: %s aa=%v", dropped.Name, rd, dns.RcodeToString[r.Rcode], r.Authoritative)
			}
		}
		for _, n := range []string{"never-registered-zz.com", "mx.never-registered-zz.com", "example.invalid"} {
			if r := ask(t, addr, "udp", n, dns.TypeA, true); r.Rcode != dns.RcodeNameError {
				t.Errorf("A %s: %s", n, dns.RcodeToString[r.Rcode])
			}
		}
		d, _ := findSetup(t, w, 0, "any", func(d *Domain, m *MailSetup) bool { return true })
		if r := ask(t, addr, "udp", "nosuchhost."+d.Name, dns.TypeA, true); r.Rcode != dns.RcodeNameError {
			t.Errorf("A nosuchhost.%s: %s", d.Name, dns.RcodeToString[r.Rcode])
		}
	})

	t.Run("suffixes", func(t *testing.T) {
		for _, p := range policies {
			r := ask(t, addr, "udp", p.suffix, dns.TypeNS, true)
			if got := records(r.Answer); len(got) != 1 || got[0] != "NS "+p.suffix+" a.nic."+p.suffix+"." {
				t.Errorf("NS %s: %v", p.suffix, got)
			}
			r = ask(t, addr, "udp", "a.nic."+p.suffix, dns.TypeA, false)
			if got := records(r.Answer); len(got) != 1 || got[0] != "A a.nic."+p.suffix+" 127.0.0.1" {
				t.Errorf("A a.nic.%s: %v", p.suffix, got)
			}
		}
	})
	if n := s.DNSQueries() - before; n < 20 {
		t.Errorf("%d queries counted", n)
	}
}

// TestDNSDanglingAndReregistered: a domain whose name servers' domain
// dropped fails to resolve (SERVFAIL) while its TLD still refers to them;
// once someone registers the name servers' domain again, it answers again.
func TestDNSDanglingAndReregistered(t *testing.T) {
	w, s := mailWorld(t, ServerOptions{})
	addr := s.Endpoints().DNS
	var host *Domain
	var gone, back int32
	for _, h := range w.HostDomains() {
		d, _ := w.Lookup(h)
		if d.Kind != KindDNSHost || !d.SmallHost() || len(d.Epochs) < 2 {
			continue
		}
		re := d.Epochs[1].Registered
		if re < 0 || re > 400 {
			continue
		}
		for x := max(d.RiskStart(0), 0); x < re; x++ {
			if !w.PhaseAt(d, x).Delegated {
				host, gone, back = d, x, re
				break
			}
		}
		if host != nil {
			break
		}
	}
	if host == nil {
		t.Fatal("no small DNS host dropped and registered again")
	}
	d, m := findSetup(t, w, gone, "name servers on "+host.Name, func(d *Domain, m *MailSetup) bool {
		return registrableOf(m.NS[0]) == host.Name && w.PhaseAt(d, back).Delegated
	})
	t.Logf("%s on %s: dropped on day %d (%s), registered again on day %d", d.Name, host.Name, gone, w.PhaseAt(host, gone).State, back)

	w.SetDate(w.dayTime(gone))
	if r := ask(t, addr, "udp", d.Name, dns.TypeMX, true); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("MX %s (name servers' domain %s): %s, want SERVFAIL", d.Name, w.PhaseAt(host, gone).State, dns.RcodeToString[r.Rcode])
	}
	r := ask(t, addr, "udp", d.Name, dns.TypeNS, false)
	want := []string{"NS " + d.Name + " " + m.NS[0] + ".", "NS " + d.Name + " " + m.NS[1] + "."}
	if r.Rcode != dns.RcodeSuccess || r.Authoritative || len(r.Answer) != 0 || !slices.Equal(records(r.Ns), want) {
		t.Errorf("referral for %s: %s aa=%v answer %v authority %v, want %v", d.Name, dns.RcodeToString[r.Rcode], r.Authoritative, r.Answer, records(r.Ns), want)
	}
	if r := ask(t, addr, "udp", host.Name, dns.TypeNS, false); r.Rcode != dns.RcodeNameError || !r.Authoritative {
		t.Errorf("NS %s (dropped) rd=0: %s aa=%v", host.Name, dns.RcodeToString[r.Rcode], r.Authoritative)
	}
	// the truth agrees
	for _, a := range w.AddressTruth(w.Date()) {
		if a.Domain == d.Name && !a.ShouldFlag && (!a.MailAtRisk || !slices.Contains(a.MailVia, "ns:"+host.Name)) {
			t.Errorf("%s: mail at risk %v via %v", a.Email, a.MailAtRisk, a.MailVia)
		}
	}

	w.SetDate(w.dayTime(back))
	if r := ask(t, addr, "udp", d.Name, dns.TypeMX, true); r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
		t.Errorf("MX %s after %s was registered again: %s %v", d.Name, host.Name, dns.RcodeToString[r.Rcode], r.Answer)
	}
	if r := ask(t, addr, "udp", host.Name, dns.TypeNS, true); r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
		t.Errorf("NS %s registered again: %s", host.Name, dns.RcodeToString[r.Rcode])
	}
	for _, a := range w.AddressTruth(w.Date()) {
		if a.Domain == d.Name && !a.ShouldFlag && w.dayOf(w.Date()) >= 0 {
			// added before the new holder took the name: still at risk
			if added := w.addedOf(a.EmailID); added <= back && !slices.Contains(a.MailVia, "ns:"+host.Name) {
				t.Errorf("%s (added day %d): not at risk via %s after its re-registration: %v", a.Email, added, host.Name, a.MailVia)
			}
		}
	}
}

// addedOf returns the day the address with this id was added.
func (w *World) addedOf(id int64) int32 {
	for i := range w.Emails {
		if w.Emails[i].ID == id {
			return w.Emails[i].Added
		}
	}
	return never
}

func TestDNSFaults(t *testing.T) {
	probe := func(w *World) (*Domain, *MailSetup) {
		return findSetup(t, w, 0, "big shared", func(d *Domain, m *MailSetup) bool { return len(m.MX) == 2 })
	}
	t.Run("servfail", func(t *testing.T) {
		w, s := mailWorld(t, ServerOptions{DNS: DNSFaults{ServFailRate: 1}})
		d, _ := probe(w)
		if r := ask(t, s.Endpoints().DNS, "udp", d.Name, dns.TypeMX, true); r.Rcode != dns.RcodeServerFailure {
			t.Errorf("MX %s: %s, want SERVFAIL", d.Name, dns.RcodeToString[r.Rcode])
		}
		// the parent's referrals are clean
		if r := ask(t, s.Endpoints().DNS, "udp", d.Name, dns.TypeNS, false); r.Rcode != dns.RcodeSuccess || len(r.Ns) != 2 {
			t.Errorf("referral for %s under faults: %v", d.Name, r)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		w, s := mailWorld(t, ServerOptions{DNS: DNSFaults{TimeoutRate: 1}})
		d, _ := probe(w)
		for _, network := range []string{"udp", "tcp"} {
			_, err := askErr(s.Endpoints().DNS, network, d.Name, dns.TypeMX, true, 300*time.Millisecond)
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("MX %s over %s: %v, want a timeout", d.Name, network, err)
			}
		}
		if s.DNSQueries() != 2 {
			t.Errorf("%d queries counted, want 2", s.DNSQueries())
		}
	})
	t.Run("truncate", func(t *testing.T) {
		w, s := mailWorld(t, ServerOptions{DNS: DNSFaults{TruncateRate: 1}})
		d, m := probe(w)
		r := ask(t, s.Endpoints().DNS, "udp", d.Name, dns.TypeMX, true)
		if !r.Truncated || len(r.Answer) != 0 || r.Rcode != dns.RcodeSuccess {
			t.Errorf("MX %s over UDP: tc=%v %v, want TC and no records", d.Name, r.Truncated, r.Answer)
		}
		r = ask(t, s.Endpoints().DNS, "tcp", d.Name, dns.TypeMX, true)
		if r.Truncated || len(r.Answer) != len(m.MX) {
			t.Errorf("MX %s over TCP: tc=%v %v, want %v", d.Name, r.Truncated, r.Answer, m.MX)
		}
	})
	t.Run("validate", func(t *testing.T) {
		for _, f := range []DNSFaults{{ServFailRate: -0.1}, {TimeoutRate: 1.5}, {ServFailRate: 0.6, TruncateRate: 0.6}} {
			if f.Validate() == nil {
				t.Errorf("%+v validated", f)
			}
		}
		f, err := ParseDNSFaults("servfail=0.1, timeout=0.2,truncate=0.3", DNSFaults{})
		if err != nil || f != (DNSFaults{0.1, 0.2, 0.3}) {
			t.Errorf("ParseDNSFaults: %+v %v", f, err)
		}
		if _, err := ParseDNSFaults("lag=1", DNSFaults{}); err == nil {
			t.Error("ParseDNSFaults took an unknown key")
		}
	})
	t.Run("partial rate is deterministic", func(t *testing.T) {
		w, s := mailWorld(t, ServerOptions{DNS: DNSFaults{ServFailRate: 0.5}})
		_, s2 := mailWorld(t, ServerOptions{DNS: DNSFaults{ServFailRate: 0.5}})
		fails := 0
		for i := range 40 {
			d := &w.Domains[i]
			a := ask(t, s.Endpoints().DNS, "udp", d.Name, dns.TypeMX, true)
			b := ask(t, s2.Endpoints().DNS, "udp", d.Name, dns.TypeMX, true)
			again := ask(t, s.Endpoints().DNS, "udp", d.Name, dns.TypeMX, true)
			if a.Rcode != b.Rcode || a.Rcode != again.Rcode {
				t.Fatalf("MX %s: %s, %s on a second server, %s asked again", d.Name, dns.RcodeToString[a.Rcode], dns.RcodeToString[b.Rcode], dns.RcodeToString[again.Rcode])
			}
			if a.Rcode == dns.RcodeServerFailure {
				fails++
			}
		}
		if fails < 8 || fails > 32 {
			t.Errorf("%d of 40 failed at rate 0.5", fails)
		}
	})
}

func TestDNSConfigSection(t *testing.T) {
	_, s := mailWorld(t, ServerOptions{})
	ep := s.Endpoints()
	if !strings.HasPrefix(ep.DNS, "127.0.0.1:") {
		t.Fatalf("dns endpoint %q", ep.DNS)
	}
	_, port, _ := net.SplitHostPort(ep.DNS)
	for _, line := range []string{"[dns]", "enabled = true", `servers = ["` + ep.DNS + `"]`, "referral_port = " + port, "rate_per_second = 2000.0", "burst = 200", "concurrency = 16", `timeout = "2s"`, "retries = 2"} {
		if !strings.Contains(s.Config(), "\n"+line+"\n") {
			t.Errorf("config lacks %q:\n%s", line, s.Config())
		}
	}
	// UDP and TCP on the same port
	for _, network := range []string{"udp", "tcp"} {
		if r := ask(t, ep.DNS, network, "com", dns.TypeNS, true); r.Rcode != dns.RcodeSuccess {
			t.Errorf("%s: %s", network, dns.RcodeToString[r.Rcode])
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := askErr(ep.DNS, "tcp", "com", dns.TypeNS, true, 300*time.Millisecond); err == nil {
		t.Error("the DNS server still answers after Close")
	}
}
