package sim

import (
	"context"
	"fmt"
	"hash/fnv"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// DNSFaults are the misbehaviours of the simulated DNS server. Rates are
// fractions of queries in 0..1, drawn deterministically from the world
// seed, the queried name's registrable domain, the day and the query type
// (so every retry of that question fails alike that day). They apply to
// recursive (RD=1) queries only; the parent (RD=0) answers are clean.
type DNSFaults struct {
	// ServFailRate answers SERVFAIL.
	ServFailRate float64
	// TimeoutRate sends no answer at all.
	TimeoutRate float64
	// TruncateRate answers over UDP with TC set and no records; the same
	// question over TCP is answered in full.
	TruncateRate float64
}

// Validate checks the rates.
func (f DNSFaults) Validate() error {
	for _, r := range []struct {
		name string
		v    float64
	}{{"servfail rate", f.ServFailRate}, {"timeout rate", f.TimeoutRate}, {"truncate rate", f.TruncateRate}} {
		if r.v < 0 || r.v > 1 {
			return fmt.Errorf("sim dns faults: %s %v is outside 0..1", r.name, r.v)
		}
	}
	if f.ServFailRate+f.TimeoutRate+f.TruncateRate > 1 {
		return fmt.Errorf("sim dns faults: the fault rates add up to more than 1")
	}
	return nil
}

// ParseDNSFaults reads a DNS fault spec such as
// "servfail=0.02,timeout=0.01,truncate=0.05" over base. An empty spec
// returns base.
func ParseDNSFaults(spec string, base DNSFaults) (DNSFaults, error) {
	f := base
	err := eachSpec(spec, "dns fault", func(k, v string) error {
		var x *float64
		switch k {
		case "servfail":
			x = &f.ServFailRate
		case "timeout":
			x = &f.TimeoutRate
		case "truncate":
			x = &f.TruncateRate
		default:
			return errUnknownKey{"servfail, timeout or truncate"}
		}
		var err error
		*x, err = strconv.ParseFloat(v, 64)
		return err
	})
	return f, err
}

// dnsFault is the fault of one DNS query.
type dnsFault uint8

const (
	dnsFaultNone dnsFault = iota
	dnsFaultServFail
	dnsFaultTimeout
	dnsFaultTruncate
)

// dnsServerKey separates the DNS server's fault draws from the others'.
const dnsServerKey = 0x646e73 // "dns"

// decideDNS returns the fault of an RD=1 query about key (a registrable
// domain, or the name) of type qtype on day.
func (s *Servers) decideDNS(key string, qtype uint16, day int32) dnsFault {
	f := s.opts.DNS
	if f.ServFailRate+f.TimeoutRate+f.TruncateRate == 0 {
		return dnsFaultNone
	}
	h := fnv.New64a()
	h.Write([]byte(key))
	x := mix(mix(s.w.Params.Seed^dnsServerKey, h.Sum64()), uint64(uint32(day))<<16|uint64(qtype))
	u := float64(x>>11) / (1 << 53)
	for _, c := range []struct {
		rate float64
		f    dnsFault
	}{{f.ServFailRate, dnsFaultServFail}, {f.TimeoutRate, dnsFaultTimeout}, {f.TruncateRate, dnsFaultTruncate}} {
		if u < c.rate {
			return c.f
		}
		u -= c.rate
	}
	return dnsFaultNone
}

// startDNS serves the world's DNS on one free 127.0.0.1 port, UDP and TCP.
func (s *Servers) startDNS() error {
	var pc net.PacketConn
	var ln net.Listener
	for attempt := 0; ; attempt++ {
		p, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("sim dns: %w", err)
		}
		l, err := net.Listen("tcp", p.LocalAddr().String())
		if err == nil {
			pc, ln = p, l
			break
		}
		p.Close()
		if attempt == 20 {
			return fmt.Errorf("sim dns: no port free for both UDP and TCP: %w", err)
		}
	}
	s.ep.DNS = pc.LocalAddr().String()
	h := dns.HandlerFunc(s.serveDNS)
	for _, srv := range []*dns.Server{
		{PacketConn: pc, Handler: h, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second},
		{Listener: ln, Handler: h, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, IdleTimeout: func() time.Duration { return 10 * time.Second }},
	} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		s.dns = append(s.dns, srv)
		s.wg.Add(1)
		errc := make(chan error, 1)
		go func() {
			defer s.wg.Done()
			if err := srv.ActivateAndServe(); err != nil {
				s.log.Error("sim dns server", "addr", s.ep.DNS, "err", err)
				errc <- err
			}
		}()
		select {
		case <-started:
		case err := <-errc:
			s.dns = s.dns[:len(s.dns)-1]
			return fmt.Errorf("sim dns: %w", err)
		}
	}
	return nil
}

// stopDNS shuts the DNS servers down (their goroutines end; s.wg waits).
func (s *Servers) stopDNS() {
	for _, srv := range s.dns {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		srv.ShutdownContext(ctx)
		cancel()
	}
}

// DNSQueries returns how many DNS queries the server received.
func (s *Servers) DNSQueries() int64 { return s.dnsQueries.Load() }

// dnsTTL is every record's TTL.
const dnsTTL = 300

// serveDNS answers one query from the world at its current date.
func (s *Servers) serveDNS(rw dns.ResponseWriter, req *dns.Msg) {
	s.dnsQueries.Add(1)
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = req.RecursionDesired
	if req.Opcode != dns.OpcodeQuery {
		m.Rcode = dns.RcodeNotImplemented
		rw.WriteMsg(m)
		return
	}
	if len(req.Question) != 1 || req.Question[0].Qclass != dns.ClassINET {
		m.Rcode = dns.RcodeFormatError
		rw.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.TrimSuffix(strings.ToLower(q.Name), ".")
	day := s.w.day.Load()
	// Faults hit the world's domains' answers, not the registries' own
	// zones (a TLD's servers and their addresses): a resolver keeps those
	// for days, and a fault there would fail every referral of the TLD.
	_, registry := strings.CutPrefix(name, "a.nic.")
	registry = policyIndex(name) >= 0 || (registry && policyIndex(strings.TrimPrefix(name, "a.nic.")) >= 0)
	if req.RecursionDesired && !registry {
		key := registrableOf(name)
		if key == "" {
			key = name
		}
		switch s.decideDNS(key, q.Qtype, day) {
		case dnsFaultServFail:
			m.Rcode = dns.RcodeServerFailure
			rw.WriteMsg(m)
			return
		case dnsFaultTimeout:
			return // no answer: the client times out
		case dnsFaultTruncate:
			if rw.LocalAddr().Network() == "udp" {
				m.Truncated = true
				rw.WriteMsg(m)
				return
			}
		}
	}
	s.w.dnsAnswer(m, name, q.Qtype, day, req.RecursionDesired)
	if rw.LocalAddr().Network() == "udp" {
		size := dns.MinMsgSize
		if o := req.IsEdns0(); o != nil {
			size = max(int(o.UDPSize()), dns.MinMsgSize)
		}
		m.Truncate(size)
	}
	rw.WriteMsg(m)
}

// fqdn renders a host name as a DNS name.
func fqdn(name string) string { return dns.Fqdn(name) }

func hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: fqdn(name), Rrtype: t, Class: dns.ClassINET, Ttl: dnsTTL}
}

// hostIP is a host's address: 127.0.0.1 for the registries' a.nic
// servers, 127.0.0.2..254 by a hash of the name otherwise.
func hostIP(name string) net.IP {
	h := fnv.New32a()
	h.Write([]byte(name))
	return net.IPv4(127, 0, 0, byte(2+h.Sum32()%253))
}

// soa is the SOA record of zone, whose primary server is primary.
func soa(zone, primary string) dns.RR {
	return &dns.SOA{Hdr: hdr(zone, dns.TypeSOA), Ns: fqdn(primary), Mbox: fqdn("hostmaster." + zone),
		Serial: 2026010101, Refresh: 7200, Retry: 3600, Expire: 1209600, Minttl: dnsTTL}
}

// zoneLabels are the names that exist below every zone apex (www and the
// MX hosts and name servers any setup names); other names are NXDOMAIN.
var zoneLabels = []string{"www", "mail", "mx", "mx1", "mx2", "ns1", "ns2"}

// dnsAnswer fills m with the answer to name/qtype on day: a recursive
// resolver's (recursive) or the TLD servers' (the parent of every world
// domain).
func (w *World) dnsAnswer(m *dns.Msg, name string, qtype uint16, day int32, recursive bool) {
	if name == "" {
		m.Rcode = dns.RcodeRefused
		return
	}
	// the TLD zones themselves: NS <suffix> → a.nic.<suffix>
	if policyIndex(name) >= 0 {
		m.Authoritative = !recursive
		switch qtype {
		case dns.TypeNS:
			m.Answer = append(m.Answer, &dns.NS{Hdr: hdr(name, dns.TypeNS), Ns: fqdn("a.nic." + name)})
			m.Extra = append(m.Extra, &dns.A{Hdr: hdr("a.nic."+name, dns.TypeA), A: net.IPv4(127, 0, 0, 1)})
		case dns.TypeSOA:
			m.Answer = append(m.Answer, soa(name, "a.nic."+name))
		default:
			m.Ns = append(m.Ns, soa(name, "a.nic."+name))
		}
		return
	}
	if sfx, ok := strings.CutPrefix(name, "a.nic."); ok && policyIndex(sfx) >= 0 {
		m.Authoritative = !recursive
		if qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr(name, dns.TypeA), A: net.IPv4(127, 0, 0, 1)})
		} else {
			m.Ns = append(m.Ns, soa(sfx, "a.nic."+sfx))
		}
		return
	}
	reg := registrableOf(name)
	i, known := w.byName[reg]
	if !recursive {
		w.parentAnswer(m, reg, i, known, day)
		return
	}
	w.resolve(m, name, qtype, day, 0)
}

// parentAnswer is the TLD servers' answer about a name under reg: a
// referral to reg's name servers when reg is in the TLD's zone on day
// (registered, not on hold, whatever became of its name servers),
// NXDOMAIN otherwise.
func (w *World) parentAnswer(m *dns.Msg, reg string, i int32, known bool, day int32) {
	_, sfx, _ := splitSuffix(reg)
	if reg == "" || !known || !w.PhaseAt(&w.Domains[i], day).Delegated || int(i) >= len(w.Mail) {
		m.Authoritative = true
		m.Rcode = dns.RcodeNameError
		if sfx != "" {
			m.Ns = append(m.Ns, soa(sfx, "a.nic."+sfx))
		}
		return
	}
	for _, ns := range w.Mail[i].NS {
		m.Ns = append(m.Ns, &dns.NS{Hdr: hdr(reg, dns.TypeNS), Ns: fqdn(ns)})
		if registrableOf(ns) == reg { // glue for in-bailiwick servers
			m.Extra = append(m.Extra, &dns.A{Hdr: hdr(ns, dns.TypeA), A: hostIP(ns)})
		}
	}
}

// delegated reports whether the registrable domain reg is in its TLD's
// zone on day.
func (w *World) delegated(reg string, day int32) bool {
	i, ok := w.byName[reg]
	return ok && w.PhaseAt(&w.Domains[i], day).Delegated
}

// resolve adds a recursive resolver's answer about name/qtype to m,
// following CNAMEs (depth counts them).
func (w *World) resolve(m *dns.Msg, name string, qtype uint16, day int32, depth int) {
	reg := registrableOf(name)
	i, known := w.byName[reg]
	if !known || int(i) >= len(w.Mail) || !w.PhaseAt(&w.Domains[i], day).Delegated {
		m.Rcode = dns.RcodeNameError
		if _, sfx, ok := splitSuffix(reg); ok {
			m.Ns = append(m.Ns, soa(sfx, "a.nic."+sfx))
		}
		return
	}
	setup := &w.Mail[i]
	// a dangling delegation: no name server of reg can be reached
	dangling := len(setup.NS) > 0
	for _, ns := range setup.NS {
		if nr := registrableOf(ns); nr == reg || w.delegated(nr, day) {
			dangling = false
			break
		}
	}
	if dangling {
		m.Rcode = dns.RcodeServerFailure
		return
	}
	if t := setup.cname(name); t != "" {
		m.Answer = append(m.Answer, &dns.CNAME{Hdr: hdr(name, dns.TypeCNAME), Target: fqdn(t)})
		if qtype == dns.TypeCNAME {
			return
		}
		if depth >= 8 {
			m.Rcode = dns.RcodeServerFailure
			return
		}
		w.resolve(m, t, qtype, day, depth+1)
		return
	}
	primary := "ns1." + reg
	if len(setup.NS) > 0 {
		primary = setup.NS[0]
	}
	nodata := func() { m.Ns = append(m.Ns, soa(reg, primary)) }
	if name != reg {
		label, ok := strings.CutSuffix(name, "."+reg)
		if !ok || strings.Contains(label, ".") || !slices.Contains(zoneLabels, label) {
			m.Rcode = dns.RcodeNameError
			nodata()
			return
		}
		if qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr(name, dns.TypeA), A: hostIP(name)})
		} else {
			nodata()
		}
		return
	}
	switch qtype {
	case dns.TypeMX:
		if setup.NullMX {
			m.Answer = append(m.Answer, &dns.MX{Hdr: hdr(name, dns.TypeMX), Preference: 0, Mx: "."})
		}
		for _, x := range setup.MX {
			m.Answer = append(m.Answer, &dns.MX{Hdr: hdr(name, dns.TypeMX), Preference: x.Pref, Mx: fqdn(x.Host)})
		}
	case dns.TypeNS:
		for _, ns := range setup.NS {
			m.Answer = append(m.Answer, &dns.NS{Hdr: hdr(name, dns.TypeNS), Ns: fqdn(ns)})
		}
	case dns.TypeA:
		m.Answer = append(m.Answer, &dns.A{Hdr: hdr(name, dns.TypeA), A: hostIP(name)})
	case dns.TypeSOA:
		m.Answer = append(m.Answer, soa(reg, primary))
	}
	if len(m.Answer) == 0 {
		nodata()
	}
}
