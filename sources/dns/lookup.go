package dns

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
	"golang.org/x/net/idna"
)

// Lookup finds the mail path of domain. Its error is only ctx's (the
// lookup was cancelled or ran out of time) or an invalid domain name; DNS
// failures are Outcomes in the Answer.
func (r *Resolver) Lookup(ctx context.Context, domain string) (Answer, error) {
	d, err := normalizeDomain(domain)
	if err != nil {
		return Answer{}, err
	}
	if err := ctx.Err(); err != nil {
		return Answer{Domain: d}, err
	}
	l := &lookup{r: r}
	a, err := l.run(ctx, d)
	a.Queries = int(l.queries.Load())
	if err != nil {
		return a, err
	}
	if !a.MX.Conclusive() || !a.NS.Conclusive() {
		r.log.Debug("dns: non-conclusive mail path", "domain", d, "mx", a.MX, "ns", a.NS, "error", a.Error, "queries", a.Queries)
	}
	return a, nil
}

// lookup is one Lookup: it counts the messages sent on its behalf.
type lookup struct {
	r       *Resolver
	queries atomic.Int64
}

// records is the end of a question about the domain: its outcome, the
// records of the type asked owned by the domain (or its CNAME chain's
// end), and what went wrong.
type records struct {
	outcome Outcome
	rrs     []mdns.RR
	problem string
}

func (l *lookup) run(ctx context.Context, d string) (Answer, error) {
	a := Answer{Domain: d, CheckedAt: l.r.now()}
	var (
		wg           sync.WaitGroup
		mx, ns       records
		mxErr, nsErr error
	)
	wg.Go(func() { mx, mxErr = l.question(ctx, d, mdns.TypeMX, roleMX) })
	ns, nsErr = l.question(ctx, d, mdns.TypeNS, roleNS)
	wg.Wait()
	if err := cmp.Or(mxErr, nsErr); err != nil {
		return a, err
	}
	var problems []string

	// MX: the hosts, or the null MX.
	a.MX = mx.outcome
	mxPref := map[string]int{}
	null := false
	for _, rr := range mx.rrs {
		m := rr.(*mdns.MX)
		h := norm(m.Mx)
		if h == "" {
			null = true
			continue
		}
		if p, ok := mxPref[h]; !ok || int(m.Preference) < p {
			mxPref[h] = int(m.Preference)
		}
	}
	if a.MX == OK && len(mxPref) == 0 {
		if null {
			a.NullMX = true
		} else {
			a.MX = NoData
		}
	}
	if mx.problem != "" {
		problems = append(problems, mx.problem)
	}

	// NS: from the resolver, or from the parent's referral when the
	// domain's own servers do not answer.
	a.NS = ns.outcome
	nsHosts := map[string]bool{}
	for _, rr := range ns.rrs {
		if h := norm(rr.(*mdns.NS).Ns); h != "" {
			nsHosts[h] = true
		}
	}
	if a.NS == OK && len(nsHosts) == 0 {
		a.NS = NoData
	}
	if ns.problem != "" {
		problems = append(problems, ns.problem)
	}
	if !a.NS.Conclusive() && (dangling(a.NS) || dangling(a.MX)) {
		out, hosts, problem, err := l.referral(ctx, d)
		if err != nil {
			return a, err
		}
		if problem != "" {
			problems = append(problems, problem)
		}
		switch out {
		case OK:
			a.NS, a.NSFromReferral = OK, true
			for _, h := range hosts {
				nsHosts[h] = true
			}
		case NXDomain:
			a.NS, a.NSFromReferral = NXDomain, true
		}
	}

	// The hosts' CNAME chains, remembered over the night.
	var links []Link
	for h, p := range mxPref {
		links = append(links, Link{Role: roleMX, Host: h, Pref: p})
	}
	for h := range nsHosts {
		links = append(links, Link{Role: roleNS, Host: h})
	}
	slices.SortFunc(links, func(x, y Link) int {
		return cmp.Or(cmp.Compare(roleRank(x.Role), roleRank(y.Role)), cmp.Compare(x.Pref, y.Pref), strings.Compare(x.Host, y.Host))
	})
	infos := make([]hostInfo, len(links))
	errs := make([]error, len(links))
	for i := range links {
		wg.Go(func() { infos[i], errs[i] = l.host(ctx, links[i].Host) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return a, cmp.Or(ctx.Err(), err)
	}
	for i := range links {
		links[i].CNAMEs = infos[i].chain
	}
	a.Links = links
	a.Error = strings.Join(problems, "; ")
	return a, nil
}

// dangling: the outcomes that usually mean the domain's own name servers
// do not answer.
func dangling(o Outcome) bool { return o == ServFail || o == Timeout }

func roleRank(role string) int {
	if role == roleMX {
		return 0
	}
	return 1
}

// question asks the resolver for the records of type qtype of the domain.
func (l *lookup) question(ctx context.Context, d string, qtype uint16, label string) (records, error) {
	rep, err := l.ask(ctx, d, qtype, true, l.r.servers)
	if err != nil {
		return records{}, err
	}
	res := records{outcome: rep.outcome}
	if rep.outcome != OK {
		if !rep.outcome.Conclusive() {
			res.problem = label + ": " + rep.describe()
		}
		return res, nil
	}
	owners := map[string]bool{d: true}
	for _, t := range follow(d, rep.msg.Answer) {
		owners[t] = true
	}
	for _, rr := range rep.msg.Answer {
		if rr.Header().Rrtype == qtype && owners[norm(rr.Header().Name)] {
			res.rrs = append(res.rrs, rr)
		}
	}
	if len(res.rrs) == 0 {
		res.outcome = NoData
	}
	return res, nil
}

// referral asks the parent zone's servers for the delegation of d: the
// NS outcome (OK with the hosts, NXDomain, or a non-conclusive one) and
// what went wrong.
func (l *lookup) referral(ctx context.Context, d string) (Outcome, []string, string, error) {
	labels := strings.Split(d, ".")
	for i := 1; i < len(labels); i++ {
		z := strings.Join(labels[i:], ".")
		zi, err := l.zone(ctx, z)
		if err != nil {
			return "", nil, "", err
		}
		if zi.problem != "" {
			return Failed, nil, "ns referral: parent " + z + ": " + zi.problem, nil
		}
		if !zi.isZone {
			continue
		}
		rep, err := l.ask(ctx, d, mdns.TypeNS, false, zi.addrs)
		if err != nil {
			return "", nil, "", err
		}
		switch rep.outcome {
		case OK:
			var hosts []string
			for _, rr := range slices.Concat(rep.msg.Ns, rep.msg.Answer) {
				if n, ok := rr.(*mdns.NS); ok && norm(n.Hdr.Name) == d {
					if h := norm(n.Ns); h != "" {
						hosts = append(hosts, h)
					}
				}
			}
			if len(hosts) == 0 {
				return Failed, nil, fmt.Sprintf("ns referral: parent %s gave no delegation (from %s)", z, rep.server), nil
			}
			return OK, hosts, "", nil
		case NXDomain:
			return NXDomain, nil, "", nil
		default:
			return rep.outcome, nil, "ns referral: parent " + z + ": " + rep.describe(), nil
		}
	}
	return Failed, nil, "ns referral: no parent zone found for " + d, nil
}

// zoneInfo is what the resolver said of a candidate parent zone.
type zoneInfo struct {
	isZone  bool     // it has NS records
	addrs   []string // its servers' addresses, "ip:ReferralPort"
	problem string   // non-empty: no conclusive answer
}

// maxParentAddrs is how many addresses of a parent zone's servers are
// looked up: the referral is asked of them in turn, Retries+1 times.
const maxParentAddrs = 4

func (l *lookup) zone(ctx context.Context, z string) (zoneInfo, error) {
	return l.r.zones.do(ctx, z, func() (zoneInfo, bool, error) {
		rep, err := l.ask(ctx, z, mdns.TypeNS, true, l.r.servers)
		if err != nil {
			return zoneInfo{}, false, err
		}
		switch rep.outcome {
		case NXDomain:
			return zoneInfo{}, true, nil
		case OK:
		default:
			return zoneInfo{problem: rep.describe()}, false, nil
		}
		var names []string
		for _, rr := range rep.msg.Answer {
			if n, ok := rr.(*mdns.NS); ok && norm(n.Hdr.Name) == z && norm(n.Ns) != "" {
				names = append(names, norm(n.Ns))
			}
		}
		if len(names) == 0 {
			return zoneInfo{}, true, nil
		}
		slices.Sort(names)
		names = slices.Compact(names)
		zi := zoneInfo{isZone: true}
		port := strconv.Itoa(l.r.referralPort)
		for _, n := range names {
			hi, err := l.host(ctx, n)
			if err != nil {
				return zoneInfo{}, false, err
			}
			for _, ip := range hi.addrs {
				zi.addrs = append(zi.addrs, net.JoinHostPort(ip, port))
			}
			if len(zi.addrs) >= maxParentAddrs {
				break
			}
		}
		if len(zi.addrs) == 0 {
			zi.problem = "no address for its servers " + strings.Join(names, ", ")
			return zi, false, nil
		}
		return zi, true, nil
	})
}

// hostInfo is a host's address lookup: the CNAME chain it followed and
// the A records at its end.
type hostInfo struct {
	chain []string
	addrs []string
}

func (l *lookup) host(ctx context.Context, h string) (hostInfo, error) {
	return l.r.hosts.do(ctx, h, func() (hostInfo, bool, error) {
		rep, err := l.ask(ctx, h, mdns.TypeA, true, l.r.servers)
		if err != nil {
			return hostInfo{}, false, err
		}
		var hi hostInfo
		if rep.msg != nil { // whatever the rcode: CNAME + NXDOMAIN is the lapsed target
			hi.chain = follow(h, rep.msg.Answer)
			end := h
			if len(hi.chain) > 0 {
				end = hi.chain[len(hi.chain)-1]
			}
			for _, rr := range rep.msg.Answer {
				if a, ok := rr.(*mdns.A); ok && norm(a.Hdr.Name) == end {
					hi.addrs = append(hi.addrs, a.A.String())
				}
			}
		}
		if !rep.outcome.Conclusive() {
			l.r.log.Debug("dns: host address lookup", "host", h, "outcome", rep.outcome, "detail", rep.describe())
		}
		return hi, rep.outcome.Conclusive(), nil
	})
}

// follow is the CNAME chain from name in rrs, targets only, in order.
func follow(name string, rrs []mdns.RR) []string {
	var chain []string
	seen := map[string]bool{name: true}
	for cur := name; len(chain) < maxChain; {
		next := ""
		for _, rr := range rrs {
			if c, ok := rr.(*mdns.CNAME); ok && norm(c.Hdr.Name) == cur {
				next = norm(c.Target)
				break
			}
		}
		if next == "" || seen[next] {
			break
		}
		chain = append(chain, next)
		seen[next] = true
		cur = next
	}
	return chain
}

// reply is how a question ended after the retries.
type reply struct {
	msg      *mdns.Msg // the last reply received, if any
	outcome  Outcome   // OK stands for NOERROR
	server   string    // the server of the last attempt
	attempts int
	detail   string // the error or rcode behind Failed
}

func (rep reply) describe() string {
	s := fmt.Sprintf("%s from %s", rep.outcome, rep.server)
	if rep.attempts > 1 {
		s += fmt.Sprintf(" (%d attempts)", rep.attempts)
	}
	if rep.detail != "" {
		s += ": " + rep.detail
	}
	return s
}

// ask sends the question to servers, retrying after a timeout, SERVFAIL
// or network error on the next server. Its error is only ctx's.
func (l *lookup) ask(ctx context.Context, name string, qtype uint16, rd bool, servers []string) (reply, error) {
	var rep reply
	for attempt := 0; attempt <= l.r.retries; attempt++ {
		server := servers[attempt%len(servers)]
		msg, err := l.exchange(ctx, name, qtype, rd, server)
		if ctxErr := ctx.Err(); ctxErr != nil {
			return reply{}, ctxErr
		}
		rep = reply{server: server, attempts: attempt + 1}
		if msg != nil {
			rep.msg = msg
		}
		switch {
		case err != nil && isTimeout(err):
			rep.outcome = Timeout
			continue
		case err != nil:
			rep.outcome, rep.detail = Failed, err.Error()
			continue
		case msg.Rcode == mdns.RcodeSuccess:
			rep.outcome = OK
		case msg.Rcode == mdns.RcodeNameError:
			rep.outcome = NXDomain
		case msg.Rcode == mdns.RcodeServerFailure:
			rep.outcome = ServFail
			continue
		case msg.Rcode == mdns.RcodeRefused:
			rep.outcome = Refused
		default:
			rep.outcome, rep.detail = Failed, "rcode "+rcodeName(msg.Rcode)
		}
		return rep, nil
	}
	return rep, nil
}

func rcodeName(rc int) string {
	if s, ok := mdns.RcodeToString[rc]; ok {
		return s
	}
	return strconv.Itoa(rc)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// exchange sends one question over UDP, and over TCP when the reply is
// truncated. A reply is returned with its error only when it could be
// read (the rcode is the caller's).
func (l *lookup) exchange(ctx context.Context, name string, qtype uint16, rd bool, server string) (*mdns.Msg, error) {
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), qtype)
	m.RecursionDesired = rd
	m.SetEdns0(ednsSize, false)
	resp, err := l.send(ctx, l.r.udp, m, server)
	if err == nil && resp.Truncated {
		resp, err = l.send(ctx, l.r.tcp, m, server)
	}
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// send waits for the rate limit and sends m once, within Timeout. A
// cancelled ctx closes the connection at once (ExchangeContext only
// obeys deadlines, so the client's parts are used directly).
func (l *lookup) send(ctx context.Context, c *mdns.Client, m *mdns.Msg, server string) (*mdns.Msg, error) {
	if lim := l.r.limiter; lim != nil {
		if err := lim.Wait(ctx); err != nil {
			if ctx.Err() == nil { // the wait would outlast ctx's deadline
				<-ctx.Done()
			}
			return nil, ctx.Err()
		}
	}
	actx, cancel := context.WithTimeout(ctx, l.r.timeout)
	defer cancel()
	conn, err := c.DialContext(actx, server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(actx, func() { conn.Close() })
	defer stop()
	l.queries.Add(1)
	resp, _, err := c.ExchangeWithConnContext(actx, m, conn)
	if err != nil && actx.Err() != nil && ctx.Err() == nil {
		err = fmt.Errorf("%w after %s", os.ErrDeadlineExceeded, l.r.timeout)
	}
	return resp, err
}

// norm is a name as lapse stores it: lowercase, no trailing dot; "" for
// the root.
func norm(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }

// normalizeDomain checks and normalizes the domain asked about.
func normalizeDomain(s string) (string, error) {
	d := norm(strings.TrimSpace(s))
	if d == "" {
		return "", errors.New("dns: empty domain name")
	}
	for i := 0; i < len(d); i++ {
		if d[i] >= 0x80 {
			a, err := idna.Lookup.ToASCII(d)
			if err != nil {
				return "", fmt.Errorf("dns: domain %q is not a valid name: %w", s, err)
			}
			d = a
			break
		}
	}
	ok := !strings.HasPrefix(d, ".")
	for i := 0; ok && i < len(d); i++ {
		c := d[i]
		ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
	}
	if _, valid := mdns.IsDomainName(d + "."); !ok || !valid {
		return "", fmt.Errorf("dns: domain %q is not a valid DNS name", s)
	}
	return d, nil
}

// memo remembers a value per key; concurrent callers of a key being
// computed wait for it. A value computed from a non-conclusive answer is
// remembered for failTTL only; one whose computation was cancelled is
// not remembered at all.
type memo[V any] struct {
	mu sync.Mutex
	m  map[string]*memoEntry[V]
}

type memoEntry[V any] struct {
	done    chan struct{}
	v       V
	expires time.Time // zero: never
	dead    bool      // cancelled: ask again
}

func (m *memo[V]) do(ctx context.Context, key string, f func() (V, bool, error)) (V, error) {
	for {
		m.mu.Lock()
		if m.m == nil {
			m.m = map[string]*memoEntry[V]{}
		}
		e, ok := m.m[key]
		if ok {
			select {
			case <-e.done:
				if !e.expires.IsZero() && time.Now().After(e.expires) {
					delete(m.m, key)
					ok = false
				}
			default:
			}
		}
		if !ok {
			e = &memoEntry[V]{done: make(chan struct{})}
			m.m[key] = e
			m.mu.Unlock()
			v, conclusive, err := f()
			if err != nil {
				m.mu.Lock()
				if m.m[key] == e {
					delete(m.m, key)
				}
				m.mu.Unlock()
				e.dead = true
				close(e.done)
				return v, err
			}
			e.v = v
			if !conclusive {
				e.expires = time.Now().Add(failTTL)
			}
			close(e.done)
			return v, nil
		}
		m.mu.Unlock()
		select {
		case <-e.done:
			if !e.dead {
				return e.v, nil
			}
		case <-ctx.Done():
			var zero V
			return zero, ctx.Err()
		}
	}
}
