package dns

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	mdns "github.com/miekg/dns"
)

// fakeDNS is a small DNS server over loopback UDP and TCP on one port. It
// answers RD=1 queries like a recursive resolver over its records and
// RD=0 queries like the parent (TLD) server: a referral for the names in
// deleg, NXDOMAIN for the rest.
type fakeDNS struct {
	addr string // 127.0.0.1:port, UDP and TCP

	mu       sync.Mutex
	rrs      map[string][]mdns.RR // owner → records
	deleg    map[string][]string  // RD=0: domain → NS hosts
	servfail map[string]bool      // RD=1: names at or under these SERVFAIL (their servers are gone)
	refuse   map[string]bool      // RD=1: REFUSED
	truncate map[string]bool      // UDP: TC set, nothing else
	allFail  bool                 // SERVFAIL everything
	gen      func(name string) []mdns.RR
	counts   map[string]int // "udp|tcp rd0|rd1 TYPE name" → queries
	total    int
}

func newFake(t *testing.T) *fakeDNS {
	t.Helper()
	f := &fakeDNS{
		rrs: map[string][]mdns.RR{}, deleg: map[string][]string{}, servfail: map[string]bool{},
		refuse: map[string]bool{}, truncate: map[string]bool{}, counts: map[string]int{},
	}
	f.addr = serve(t, f)
	return f
}

// serve starts UDP and TCP servers for h on one loopback port.
func serve(t *testing.T, h mdns.Handler) string {
	t.Helper()
	for range 50 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := pc.LocalAddr().String()
		l, err := net.Listen("tcp", addr)
		if err != nil {
			pc.Close()
			continue
		}
		for _, s := range []*mdns.Server{{PacketConn: pc, Handler: h}, {Listener: l, Handler: h}} {
			started := make(chan struct{})
			s.NotifyStartedFunc = func() { close(started) }
			go s.ActivateAndServe()
			<-started
			t.Cleanup(func() { s.Shutdown() })
		}
		return addr
	}
	t.Fatal("no loopback port free for both UDP and TCP")
	return ""
}

// add adds records in zone-file syntax.
func (f *fakeDNS) add(t *testing.T, lines ...string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, line := range lines {
		rr, err := mdns.NewRR(line)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		o := norm(rr.Header().Name)
		f.rrs[o] = append(f.rrs[o], rr)
	}
}

func (f *fakeDNS) count(network string, rd bool, qtype uint16, name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[countKey(network, rd, qtype, name)]
}

func (f *fakeDNS) queries() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.total
}

func countKey(network string, rd bool, qtype uint16, name string) string {
	r := "rd0"
	if rd {
		r = "rd1"
	}
	return fmt.Sprintf("%s %s %s %s", network, r, mdns.TypeToString[qtype], name)
}

func (f *fakeDNS) ServeDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	m := new(mdns.Msg)
	m.SetReply(req)
	if len(req.Question) != 1 {
		m.Rcode = mdns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := norm(q.Name)
	network := w.LocalAddr().Network()
	f.mu.Lock()
	f.counts[countKey(network, req.RecursionDesired, q.Qtype, name)]++
	f.total++
	if req.RecursionDesired {
		m.RecursionAvailable = true
		f.recurse(m, name, q.Qtype, network == "udp")
	} else {
		f.parent(m, name)
	}
	f.mu.Unlock()
	if o := req.IsEdns0(); o != nil {
		m.SetEdns0(o.UDPSize(), false)
	}
	w.WriteMsg(m)
}

func (f *fakeDNS) records(name string) []mdns.RR {
	if rs, ok := f.rrs[name]; ok {
		return rs
	}
	if f.gen != nil {
		return f.gen(name)
	}
	return nil
}

func (f *fakeDNS) exists(name string) bool {
	if len(f.records(name)) > 0 {
		return true
	}
	for o := range f.rrs {
		if strings.HasSuffix(o, "."+name) {
			return true
		}
	}
	return false
}

func (f *fakeDNS) failing(name string) bool {
	for s := range f.servfail {
		if name == s || strings.HasSuffix(name, "."+s) {
			return true
		}
	}
	return false
}

// recurse answers like a recursive resolver: follows CNAMEs, keeps the
// chain whatever the end.
func (f *fakeDNS) recurse(m *mdns.Msg, name string, qtype uint16, udp bool) {
	switch {
	case f.allFail:
		m.Rcode = mdns.RcodeServerFailure
		return
	case f.refuse[name]:
		m.Rcode = mdns.RcodeRefused
		return
	case f.truncate[name] && udp:
		m.Truncated = true
		return
	}
	cur := name
	for range 10 {
		if f.failing(cur) {
			m.Rcode = mdns.RcodeServerFailure
			return
		}
		rs := f.records(cur)
		var cname mdns.RR
		found := false
		for _, rr := range rs {
			switch rr.Header().Rrtype {
			case qtype:
				m.Answer = append(m.Answer, rr)
				found = true
			case mdns.TypeCNAME:
				cname = rr
			}
		}
		if found {
			return
		}
		if cname != nil {
			m.Answer = append(m.Answer, cname)
			cur = norm(cname.(*mdns.CNAME).Target)
			continue
		}
		if !f.exists(cur) {
			m.Rcode = mdns.RcodeNameError
		}
		return
	}
	m.Rcode = mdns.RcodeServerFailure
}

// parent answers RD=0 like the TLD's server: a referral or NXDOMAIN.
func (f *fakeDNS) parent(m *mdns.Msg, name string) {
	hosts, ok := f.deleg[name]
	if !ok {
		m.Rcode = mdns.RcodeNameError
		soa, _ := mdns.NewRR("example. 900 IN SOA a.nic.example. hostmaster.example. 1 1800 900 604800 86400")
		m.Ns = append(m.Ns, soa)
		return
	}
	for _, h := range hosts {
		m.Ns = append(m.Ns, &mdns.NS{Hdr: mdns.RR_Header{Name: mdns.Fqdn(name), Rrtype: mdns.TypeNS, Class: mdns.ClassINET, Ttl: 172800}, Ns: mdns.Fqdn(h)})
	}
}

// silentServer is a UDP socket that reads queries and never answers.
func silentServer(t *testing.T) (string, func() int) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			mu.Lock()
			n++
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return pc.LocalAddr().String(), func() int { mu.Lock(); defer mu.Unlock(); return n }
}
