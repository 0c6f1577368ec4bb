package sim

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lapse-dev/lapse/lifecycle"
)

// The mail layer (issue 12): every domain's zone names MX hosts and name
// servers, most on a few big shared hosting providers that never lapse,
// some on small hosts whose own domains lapse like personal domains, some
// in the domain itself. Whoever registers a lapsed host domain receives
// (MX) or answers (NS) the mail of every domain that names it: those
// addresses are at risk though their own domain is healthy.
//
// The layer is drawn after everything else from a PCG stream of its own
// (mailStream), and its host domains are appended after every other
// domain, so the rest of the world is the same with or without it.

// mailStream seeds the mail layer's PCG stream ("mail").
const mailStream = 0x6d61696c

// MX is one mail exchanger record of a zone.
type MX struct {
	Pref uint16
	Host string // host name, lowercase, no trailing dot
}

// CNAME is one alias of a zone: Host is an alias of Target.
type CNAME struct {
	Host, Target string
}

// MailSetup is what one domain's zone publishes for its mail: its name
// servers, MX records and aliases. A null MX (RFC 7505: "MX 0 .", the
// domain accepts no mail) has NullMX set and no MX.
type MailSetup struct {
	NS     []string
	MX     []MX
	CNAMEs []CNAME
	NullMX bool
}

// cname returns the target host is an alias of, "" when none.
func (m *MailSetup) cname(host string) string {
	for _, c := range m.CNAMEs {
		if c.Host == host {
			return c.Target
		}
	}
	return ""
}

// mailDep is one dependency domain of a domain's setup.
type mailDep struct {
	mx     bool  // an MX host's (or its CNAME target's) domain; false: a name server's
	domain int32 // index into World.Domains
}

// via renders the dependency as AddressTruth.MailVia does.
func (w *World) via(d mailDep) string {
	if d.mx {
		return "mx:" + w.Domains[d.domain].Name
	}
	return "ns:" + w.Domains[d.domain].Name
}

// The big shared hosting providers: they never lapse. Most domains' MX
// hosts are mx1/mx2.<bigMailHosts> and name servers ns1/ns2.<bigDNSHosts>.
var (
	bigMailHosts = []string{"mailroute.net", "inboxhost.com", "postrelay.net"}
	bigDNSHosts  = []string{"dnsanchor.net", "zoneserve.com", "nsgrid.net"}
	mailTails    = []string{"mail", "mx", "post", "relay", "inbox", "mailer"}
	dnsTails     = []string{"dns", "ns", "zone", "hosting", "host", "names"}
)

// smallHostEvery: one small mail host and one small DNS host per this many
// company and personal domains (at least minSmallHosts of each). Small
// hosts lapse like personal domains (a yearly hazard of smallHazard to stop
// renewing, half of the dropped names registered again by someone else),
// their first holders deciding from smallQuitFrom on: a year before the
// clock starts, so the hosts are in the steady state of their hazard (a
// personal domain's first holder decides from four months before).
const (
	smallHostEvery = 150
	minSmallHosts  = 4
	smallHazard    = 0.3
	smallQuitFrom  = -365
)

// The mixture of company and personal domains' setups, in per mille.
const (
	nsInBailiwick = 100 // ns1/ns2.<domain>
	nsSmallHost   = 80  // ns1/ns2.<small DNS host>
	mxNull        = 20  // MX 0 .
	mxCNAME       = 30  // MX mail.<domain>, a CNAME to mx.<small mail host>
	mxSmallHost   = 100 // MX mx.<small mail host>
	mxSelf        = 40  // MX mail.<domain> (an A record: self-hosted)
)

// mail builds the mail layer: the host domains (appended to w.Domains)
// and every domain's setup.
func (g *gen) mail() {
	w := g.w
	seed := w.Params.Seed
	mg := &gen{w: w, rng: rand.New(rand.NewPCG(mix(seed, mailStream), mix(seed, mailStream+1))), used: g.used}
	r := mg.rng
	custom := len(g.companies) + len(g.personals)
	nSmall := max(custom/smallHostEvery, minSmallHosts)

	base := int32(len(w.Domains))
	var bigMail, bigDNS, smallMail, smallDNS []int32
	add := func(d Domain) int32 {
		i := int32(len(w.Domains))
		d.id = int64(1_000_000 + int64(mix(seed, uint64(i))%8_000_000_000))
		w.Domains = append(w.Domains, d)
		w.hosts = append(w.hosts, i)
		return i
	}
	big := func(name string, kind Kind, k int) int32 {
		label, suffix, _ := splitSuffix(name)
		name = mg.uniqueHost(label, suffix)
		reg := mg.days(time.Date(2001+k, time.Month(3+k), 10+k, 0, 0, 0, 0, time.UTC))
		return add(Domain{Name: name, Unicode: name, Kind: kind,
			Epochs:    []Epoch{{Registered: reg, Expiry: never}},
			RenewLead: 300, policy: uint8(policyIndex(suffix)), registrar: 3})
	}
	for k, n := range bigMailHosts {
		bigMail = append(bigMail, big(n, KindMailHost, k))
	}
	for k, n := range bigDNSHosts {
		bigDNS = append(bigDNS, big(n, KindDNSHost, k+len(bigMailHosts)))
	}
	small := func(kind Kind, tails []string) int32 {
		suffix := mg.pickSuffix()
		var label string
		if r.IntN(4) == 0 {
			label = lastNames[r.IntN(len(lastNames))] + tails[r.IntN(len(tails))]
		} else {
			label = words[r.IntN(len(words))] + tails[r.IntN(len(tails))]
		}
		name := mg.uniqueHost(label, suffix)
		d := Domain{Name: name, Unicode: name, Kind: kind, policy: uint8(policyIndex(suffix)), registrar: uint8(r.IntN(3))}
		d.RenewLead = int16(r.IntN(61))
		// small hosts lapse like personal domains
		d.Epochs = mg.epochs(policies[d.policy], smallHazard, 0.002, 0.5, -12*365, -60, smallQuitFrom)
		return add(d)
	}
	for range nSmall {
		smallMail = append(smallMail, small(KindMailHost, mailTails))
	}
	for range nSmall {
		smallDNS = append(smallDNS, small(KindDNSHost, dnsTails))
	}

	w.Mail = make([]MailSetup, len(w.Domains))
	pick := func(s []int32) string { return w.Domains[s[r.IntN(len(s))]].Name }
	for i := range w.Domains {
		d := &w.Domains[i]
		self := func(labels ...string) []string {
			out := make([]string, len(labels))
			for j, l := range labels {
				out[j] = l + "." + d.Name
			}
			return out
		}
		m := &w.Mail[i]
		if int32(i) >= base || d.Kind == KindProvider {
			// providers and the hosts themselves run their own
			m.NS = self("ns1", "ns2")
			if d.Kind == KindDNSHost {
				m.MX = []MX{{10, "mail." + d.Name}}
			} else if d.Kind == KindMailHost && !slices.Contains(bigMail, int32(i)) {
				m.MX = []MX{{10, "mx." + d.Name}}
			} else {
				m.MX = []MX{{5, "mx1." + d.Name}, {10, "mx2." + d.Name}}
			}
			continue
		}
		switch x := r.IntN(1000); {
		case x < nsInBailiwick:
			m.NS = self("ns1", "ns2")
		case x < nsInBailiwick+nsSmallHost:
			h := pick(smallDNS)
			m.NS = []string{"ns1." + h, "ns2." + h}
		default:
			h := pick(bigDNS)
			m.NS = []string{"ns1." + h, "ns2." + h}
		}
		switch x := r.IntN(1000); {
		case x < mxNull:
			m.NullMX = true
		case x < mxNull+mxCNAME:
			m.MX = []MX{{10, "mail." + d.Name}}
			m.CNAMEs = []CNAME{{"mail." + d.Name, "mx." + pick(smallMail)}}
		case x < mxNull+mxCNAME+mxSmallHost:
			m.MX = []MX{{10, "mx." + pick(smallMail)}}
		case x < mxNull+mxCNAME+mxSmallHost+mxSelf:
			m.MX = []MX{{10, "mail." + d.Name}}
		default:
			h := pick(bigMail)
			m.MX = []MX{{5, "mx1." + h}, {10, "mx2." + h}}
		}
	}
	// byName is built after generation; the dependencies need it now.
	names := make(map[string]int32, len(w.Domains))
	for i := range w.Domains {
		names[w.Domains[i].Name] = int32(i)
	}
	w.deps = make([][]mailDep, len(w.Domains))
	for i := range w.Domains {
		w.deps[i] = w.Mail[i].deps(w.Domains[i].Name, names)
	}
}

// uniqueHost returns label.suffix, or label2.suffix, label3.suffix, …
// when that name is taken, and marks it used.
func (g *gen) uniqueHost(label, suffix string) string {
	name := label + "." + suffix
	for n := 2; ; n++ {
		if _, ok := g.used[name]; !ok {
			g.used[name] = struct{}{}
			return name
		}
		name = label + strconv.Itoa(n) + "." + suffix
	}
}

// deps returns the dependency domains of a setup of domain own: the
// domains of its out-of-bailiwick MX hosts (through their CNAMEs) and name
// servers, each once, MX ones first.
func (m *MailSetup) deps(own string, names map[string]int32) []mailDep {
	var out []mailDep
	addDep := func(mx bool, host string) {
		reg := registrableOf(host)
		if reg == "" || reg == own {
			return
		}
		i, ok := names[reg]
		if !ok {
			return
		}
		dep := mailDep{mx: mx, domain: i}
		if !slices.Contains(out, dep) {
			out = append(out, dep)
		}
	}
	if !m.NullMX {
		for _, x := range m.MX {
			host := x.Host
			for range 8 {
				t := m.cname(host)
				if t == "" {
					break
				}
				host = t
			}
			addDep(true, host)
		}
	}
	for _, ns := range m.NS {
		addDep(false, ns)
	}
	return out
}

// registrableOf returns the registrable domain of a host name under the
// sim's suffixes, "" when none.
func registrableOf(host string) string {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for {
		if _, _, ok := splitSuffix(host); ok {
			return host
		}
		i := strings.IndexByte(host, '.')
		if i < 0 {
			return ""
		}
		host = host[i+1:]
	}
}

// MailSetupOf returns the mail setup of the domain named domain (A-label,
// lowercase).
func (w *World) MailSetupOf(domain string) (MailSetup, bool) {
	i, ok := w.byName[domain]
	if !ok || int(i) >= len(w.Mail) {
		return MailSetup{}, false
	}
	return w.Mail[i], true
}

// HostDomains returns the mail and DNS host domains (big and small), in
// world order.
func (w *World) HostDomains() []string {
	out := make([]string, len(w.hosts))
	for j, i := range w.hosts {
		out[j] = w.Domains[i].Name
	}
	return out
}

// MailDependencies returns the dependency domains of the domain named
// domain: "mx:<domain>" for its out-of-bailiwick MX hosts (a CNAME's
// target for an aliased one; none with a null MX) and "ns:<domain>" for
// its name servers'.
func (w *World) MailDependencies(domain string) []string {
	i, ok := w.byName[domain]
	if !ok || int(i) >= len(w.deps) {
		return nil
	}
	var out []string
	for _, d := range w.deps[i] {
		out = append(out, w.via(d))
	}
	return out
}

// SmallHost reports whether d is a small host domain (one that lapses),
// rather than a big shared provider or any other domain.
func (d *Domain) SmallHost() bool {
	return (d.Kind == KindMailHost || d.Kind == KindDNSHost) && d.registrar != 3
}

// depRisk reports whether the dependency domain d puts an address at
// risk on day, the address having been added on day added: d is in
// redemption, pending delete or available (its current holder lost it),
// or another holder registered it on a day in [max(added, 0), day]. start
// is the day the risk began (the lapsing holder's RiskStart), registrable
// the day the lapsing holder's name became registrable by others.
func (w *World) depRisk(d *Domain, day, added int32) (start, registrable int32, ok bool) {
	ph := w.PhaseAt(d, day)
	if ph.Epoch >= 0 && (ph.State == lifecycle.Redemption || ph.State == lifecycle.PendingDelete || ph.State == lifecycle.Available) {
		return d.RiskStart(ph.Epoch), d.Registrable(ph.Epoch), true
	}
	from := max(added, 0)
	for j := 1; j < len(d.Epochs); j++ {
		if r := d.Epochs[j].Registered; r >= from && r <= day {
			return d.RiskStart(j - 1), d.Registrable(j - 1), true
		}
	}
	return never, never, false
}

// mailRisk is an address's mail-path truth on a day.
type mailRisk struct {
	atRisk             bool
	start, registrable int32 // earliest over the dependencies at risk
	via                []string
}

// mailRiskOf computes the mail-path truth of address a (whose own domain
// is not ShouldFlag) on day.
func (w *World) mailRiskOf(a *Address, day int32) mailRisk {
	mr := mailRisk{start: never, registrable: never}
	if a.Domain < 0 || int(a.Domain) >= len(w.deps) || w.Domains[a.Domain].NoDNS {
		return mr
	}
	for _, dep := range w.deps[a.Domain] {
		st, reg, ok := w.depRisk(&w.Domains[dep.domain], day, a.Added)
		if !ok {
			continue
		}
		mr.atRisk = true
		mr.via = append(mr.via, w.via(dep))
		mr.start = min(mr.start, max(st, a.Added))
		if reg <= day {
			mr.registrable = min(mr.registrable, max(reg, a.Added))
		}
	}
	return mr
}

// MailTruth is one dependency domain's mail-path truth on a date.
type MailTruth struct {
	// Domain is the host domain; Kind mail_host or dns_host.
	Domain string
	Kind   string
	State  lifecycle.State
	// Small: a small host (lapses); false: a big shared provider.
	Small bool
	// Delegated: the domain is in its TLD's zone on the date.
	Delegated bool
	// Dependents are the domains that name it (MX host or name server);
	// Addresses the addresses on them present on the date.
	Dependents, Addresses int
	// AtRisk: the holder lost the name (redemption or later) or another
	// holder registered it during the simulation (on or after day 0, by
	// the date); AtRiskAddresses are the addresses MailAtRisk through it.
	AtRisk          bool
	AtRiskAddresses int
}

// MailTruth returns every host domain's mail-path truth on date, in world
// order.
func (w *World) MailTruth(date time.Time) []MailTruth {
	day := w.dayOf(date)
	idx := make(map[int32]int, len(w.hosts))
	out := make([]MailTruth, len(w.hosts))
	for j, i := range w.hosts {
		d := &w.Domains[i]
		ph := w.PhaseAt(d, day)
		_, _, risk := w.depRisk(d, day, 0)
		out[j] = MailTruth{Domain: d.Name, Kind: d.Kind.String(), State: ph.State, Small: d.SmallHost(), Delegated: ph.Delegated, AtRisk: risk}
		idx[i] = j
	}
	for i := range w.deps {
		for _, dep := range w.deps[i] {
			out[idx[dep.domain]].Dependents++
		}
	}
	for _, t := range w.AddressTruth(date) {
		if t.Domain == "" {
			continue
		}
		i := w.byName[t.Domain]
		for _, dep := range w.deps[i] {
			out[idx[dep.domain]].Addresses++
		}
		for _, v := range t.MailVia {
			_, name, _ := strings.Cut(v, ":")
			if j, ok := idx[w.byName[name]]; ok {
				out[j].AtRiskAddresses++
			}
		}
	}
	return out
}
