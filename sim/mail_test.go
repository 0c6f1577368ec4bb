package sim

import (
	"fmt"
	"hash/fnv"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/lifecycle"
)

// mailStart is the demo's first night.
var mailStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// isHost reports whether d is one of the mail layer's host domains.
func isHost(d *Domain) bool { return d.Kind == KindMailHost || d.Kind == KindDNSHost }

// baseDigest is worldDigest over everything but the mail layer's host
// domains: what the world was before the mail layer existed.
func baseDigest(w *World) uint64 {
	h := fnv.New64a()
	for _, d := range w.Domains {
		if isHost(&d) {
			continue
		}
		fmt.Fprintf(h, "%s|%s|%d|%v|%d|%d|%d|%v\n", d.Name, d.Unicode, d.Kind, d.NoDNS, d.RenewLead, d.policy, d.registrar, d.Epochs)
	}
	for _, a := range w.Emails {
		fmt.Fprintf(h, "%+v\n", a)
	}
	return h.Sum64()
}

// TestMailLayerLeavesWorldUnchanged: the mail layer draws from a stream of
// its own and appends its domains: every existing domain, address and id
// is what it was before it (golden digests computed at f784e9c, before the
// mail layer), and the same as a world built without it.
func TestMailLayerLeavesWorldUnchanged(t *testing.T) {
	for _, c := range []struct {
		p      Params
		golden uint64
	}{
		{Params{Seed: 1, Emails: 20000}, 0xd362a798c92be8e9},
		{Params{Seed: 42, Start: testStart, Emails: 5000}, 0xde582a877ff8d986},
		{Params{Seed: 7, Domains: 3000}, 0x3b2324a0c749c0a9},
	} {
		w, plain := NewWorld(c.p), newWorld(c.p, false)
		if got := baseDigest(w); got != c.golden {
			t.Errorf("seed %d: digest without the host domains %#x, want %#x (the world before the mail layer)", c.p.Seed, got, c.golden)
		}
		if got := worldDigest(plain); got != c.golden {
			t.Errorf("seed %d: the world without the mail layer has digest %#x, want %#x", c.p.Seed, got, c.golden)
		}
		if len(plain.Mail) != 0 || len(plain.HostDomains()) != 0 {
			t.Errorf("seed %d: mail layer built though disabled", c.p.Seed)
		}
		n := len(plain.Domains)
		if len(w.Domains) <= n || len(w.Mail) != len(w.Domains) {
			t.Fatalf("seed %d: %d domains (%d setups), %d without the mail layer", c.p.Seed, len(w.Domains), len(w.Mail), n)
		}
		for i := range n {
			a, b := &w.Domains[i], &plain.Domains[i]
			if a.Name != b.Name || a.id != b.id || !reflect.DeepEqual(a.Epochs, b.Epochs) || isHost(a) {
				t.Fatalf("seed %d: domain %d is %s %v, %s %v without the mail layer", c.p.Seed, i, a.Name, a.Epochs, b.Name, b.Epochs)
			}
		}
		for i := n; i < len(w.Domains); i++ {
			if !isHost(&w.Domains[i]) {
				t.Fatalf("seed %d: domain %d (%s) after the existing ones is a %s", c.p.Seed, i, w.Domains[i].Name, w.Domains[i].Kind)
			}
		}
		if !reflect.DeepEqual(w.Emails, plain.Emails) {
			t.Fatalf("seed %d: the addresses changed", c.p.Seed)
		}
	}
}

func TestMailLayerDeterministic(t *testing.T) {
	p := Params{Seed: 42, Start: testStart, Emails: 5000}
	a, b := NewWorld(p), NewWorld(p)
	if !reflect.DeepEqual(a.Mail, b.Mail) || !reflect.DeepEqual(a.deps, b.deps) || !slices.Equal(a.HostDomains(), b.HostDomains()) {
		t.Fatal("same params built different mail setups")
	}
	for i := range a.Domains {
		if !reflect.DeepEqual(a.Domains[i], b.Domains[i]) {
			t.Fatalf("domain %d differs: %+v %+v", i, a.Domains[i], b.Domains[i])
		}
	}
	p.Seed = 43
	if reflect.DeepEqual(NewWorld(p).Mail, a.Mail) {
		t.Fatal("a different seed built the same mail setups")
	}
}

// TestMailLayerShape checks the seed-1 demo world: the host domains, the
// mixture of setups, and that a 60-night demo from 2026-01-01 sees small
// hosts lapse with addresses at risk through them.
func TestMailLayerShape(t *testing.T) {
	w := NewWorld(Params{Seed: 1, Start: mailStart, Emails: 20000})
	hosts := w.HostDomains()
	var bigMail, bigDNS, smallMail, smallDNS int
	for _, h := range hosts {
		d, ok := w.Lookup(h)
		if !ok {
			t.Fatalf("host domain %s: Lookup does not find it", h)
		}
		if _, _, ok := splitSuffix(h); !ok {
			t.Errorf("host domain %s is not under a sim suffix", h)
		}
		switch {
		case d.Kind == KindMailHost && d.SmallHost():
			smallMail++
		case d.Kind == KindMailHost:
			bigMail++
		case d.Kind == KindDNSHost && d.SmallHost():
			smallDNS++
		case d.Kind == KindDNSHost:
			bigDNS++
		default:
			t.Errorf("host domain %s is a %s", h, d.Kind)
		}
		if !d.SmallHost() && (len(d.Epochs) != 1 || d.Epochs[0].Expiry != never) {
			t.Errorf("big host %s lapses: %v", h, d.Epochs)
		}
		m, _ := w.MailSetupOf(h)
		if len(w.MailDependencies(h)) != 0 || len(m.NS) == 0 || len(m.MX) == 0 {
			t.Errorf("host %s does not run its own mail and DNS: %+v", h, m)
		}
	}
	if KindMailHost.String() != "mail_host" || KindDNSHost.String() != "dns_host" {
		t.Errorf("kind names %q %q", KindMailHost, KindDNSHost)
	}
	custom := 0
	shapes := map[string]int{}
	for i := range w.Domains {
		d := &w.Domains[i]
		m, ok := w.MailSetupOf(d.Name)
		if !ok {
			t.Fatalf("%s has no mail setup", d.Name)
		}
		if d.Kind == KindProvider {
			if deps := w.MailDependencies(d.Name); len(deps) != 0 {
				t.Errorf("provider %s depends on %v", d.Name, deps)
			}
			continue
		}
		if d.Kind != KindCompany && d.Kind != KindPersonal {
			continue
		}
		custom++
		for _, ns := range m.NS {
			switch reg := registrableOf(ns); {
			case reg == d.Name:
				shapes["ns in-bailiwick"]++
			case slices.Contains(bigDNSHosts, reg):
				shapes["ns big"]++
			default:
				shapes["ns small"]++
			}
			break
		}
		switch {
		case m.NullMX:
			shapes["mx null"]++
			if len(m.MX) != 0 {
				t.Errorf("%s: null MX with MX records %v", d.Name, m.MX)
			}
		case len(m.CNAMEs) > 0:
			shapes["mx cname"]++
		case registrableOf(m.MX[0].Host) == d.Name:
			shapes["mx self"]++
		case slices.Contains(bigMailHosts, registrableOf(m.MX[0].Host)):
			shapes["mx big"]++
		default:
			shapes["mx small"]++
		}
	}
	t.Logf("hosts: %d big mail, %d big DNS, %d small mail, %d small DNS for %d custom domains; setups %v", bigMail, bigDNS, smallMail, smallDNS, custom, shapes)
	if bigMail != 3 || bigDNS != 3 || smallMail < custom/200 || smallDNS < custom/200 || smallMail < minSmallHosts {
		t.Errorf("hosts: %d big mail, %d big DNS, %d small mail, %d small DNS", bigMail, bigDNS, smallMail, smallDNS)
	}
	share := func(k string) float64 { return float64(shapes[k]) / float64(custom) }
	for k, want := range map[string]float64{"ns in-bailiwick": .10, "ns small": .08, "mx null": .02, "mx cname": .03, "mx small": .10, "mx big": .77} {
		if got := share(k); got < want*0.6 || got > want*1.4 {
			t.Errorf("%s: %.3f of custom domains, want about %.2f", k, got, want)
		}
	}

	// the demo's 60 nights
	const nights = 60
	var lapsed []string
	for _, h := range hosts {
		d, _ := w.Lookup(h)
		if !d.SmallHost() {
			continue
		}
		for day := int32(0); day < nights; day++ {
			ph := w.PhaseAt(d, day)
			reReg := ph.Epoch > 0 && d.Epochs[ph.Epoch].Registered == day
			if ph.State == lifecycle.Redemption || ph.State == lifecycle.PendingDelete || ph.State == lifecycle.Available || reReg {
				lapsed = append(lapsed, fmt.Sprintf("%s (%s on day %d)", h, ph.State, day))
				break
			}
		}
	}
	last := mailStart.AddDate(0, 0, nights-1)
	atRisk, onFirst, viaMX, viaNS := 0, 0, 0, 0
	for _, a := range w.AddressTruth(mailStart) {
		if a.MailAtRisk {
			onFirst++
		}
	}
	for _, a := range w.AddressTruth(last) {
		if !a.MailAtRisk {
			if a.MailRiskStart != nil || a.MailVia != nil {
				t.Fatalf("%s: not at risk, with %v %v", a.Email, a.MailRiskStart, a.MailVia)
			}
			continue
		}
		atRisk++
		if a.ShouldFlag || a.MailRiskStart == nil || a.MailRiskStart.After(last) || len(a.MailVia) == 0 {
			t.Fatalf("%s: mail at risk with should_flag %v, start %v, via %v", a.Email, a.ShouldFlag, a.MailRiskStart, a.MailVia)
		}
		if a.MailRegistrableAt != nil && a.MailRegistrableAt.Before(*a.MailRiskStart) {
			t.Errorf("%s: registrable %v before the risk %v", a.Email, a.MailRegistrableAt, a.MailRiskStart)
		}
		for _, v := range a.MailVia {
			switch {
			case strings.HasPrefix(v, "mx:"):
				viaMX++
			case strings.HasPrefix(v, "ns:"):
				viaNS++
			default:
				t.Fatalf("%s: via %q", a.Email, v)
			}
		}
	}
	t.Logf("small hosts lapsing or re-registered in %d nights from %s: %d %v", nights, mailStart.Format(time.DateOnly), len(lapsed), lapsed)
	t.Logf("addresses mail at risk: %d on the first night, %d on night %d (via mx %d, via ns %d)", onFirst, atRisk, nights, viaMX, viaNS)
	if len(lapsed) < 3 || atRisk == 0 || viaMX == 0 || viaNS == 0 {
		t.Errorf("too quiet a mail layer: %d small hosts lapse, %d addresses at risk (mx %d, ns %d)", len(lapsed), atRisk, viaMX, viaNS)
	}
	mt := w.MailTruth(last)
	n := 0
	for _, m := range mt {
		n += m.AtRiskAddresses
		if m.AtRiskAddresses > 0 && (!m.AtRisk || !m.Small) {
			t.Errorf("%+v", m)
		}
	}
	if len(mt) != len(hosts) || n != viaMX+viaNS {
		t.Errorf("MailTruth: %d hosts, %d addresses at risk through them; want %d, %d", len(mt), n, len(hosts), viaMX+viaNS)
	}
}

// TestDepRisk checks the mail-path risk of a hand-made .com host:
// registered 2020-03-10, not renewed at the 2026-03-10 anniversary with 10
// days of grace (redemption 2026-03-20, available 2026-04-24), registered
// again by someone else 2026-05-14.
func TestDepRisk(t *testing.T) {
	w := NewWorld(Params{Seed: 1, Start: mailStart, Emails: 10})
	day := func(s string) int32 {
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			t.Fatal(err)
		}
		return w.dayOf(d)
	}
	d := &Domain{Name: "tinydns.com", Unicode: "tinydns.com", Kind: KindDNSHost, policy: uint8(policyIndex("com"))}
	e := Epoch{Registered: day("2020-03-10"), Expiry: day("2026-03-10"), Grace: 10}
	d.Epochs = []Epoch{e, {Registered: day("2026-05-14"), Expiry: never}}
	for _, c := range []struct {
		date, added string
		risk        bool
		start       string
	}{
		{"2026-03-19", "2025-01-01", false, ""},
		{"2026-03-20", "2025-01-01", true, "2026-03-20"},
		{"2026-04-24", "2025-01-01", true, "2026-03-20"},
		{"2026-05-14", "2025-01-01", true, "2026-03-20"}, // re-registered by someone else
		{"2026-09-01", "2025-01-01", true, "2026-03-20"},
		{"2026-09-01", "2026-05-14", true, "2026-03-20"},
		{"2026-09-01", "2026-05-15", false, ""}, // added after the new holder took it
		{"2026-04-30", "2026-04-28", true, "2026-03-20"},
	} {
		st, _, ok := w.depRisk(d, day(c.date), day(c.added))
		got := ""
		if ok {
			got = w.dayTime(st).Format(time.DateOnly)
		}
		if ok != c.risk || got != c.start {
			t.Errorf("on %s, address added %s: risk %v from %q, want %v from %q", c.date, c.added, ok, got, c.risk, c.start)
		}
	}
	// a re-registration before day 0 of the simulation is not a risk
	d.Epochs = []Epoch{{Registered: day("2020-03-10"), Expiry: day("2025-03-10"), Grace: 10}, {Registered: day("2025-06-01"), Expiry: never}}
	if _, _, ok := w.depRisk(d, day("2026-02-01"), day("2024-01-01")); ok {
		t.Error("a host re-registered before the simulation puts addresses at risk")
	}
}

// TestMailTruthFollowsHosts: an address is MailAtRisk exactly when a
// dependency of its domain is at risk and its own domain is not
// ShouldFlag; its start is not before the address was added.
func TestMailTruthFollowsHosts(t *testing.T) {
	w := NewWorld(Params{Seed: 4, Start: mailStart, Emails: 20000})
	for _, n := range []int{0, 30, 59} {
		date := mailStart.AddDate(0, 0, n)
		day := w.dayOf(date)
		byID := map[int64]*Address{}
		for i := range w.Emails {
			byID[w.Emails[i].ID] = &w.Emails[i]
		}
		risky := 0
		for _, tr := range w.AddressTruth(date) {
			a := byID[tr.EmailID]
			want := false
			if a.Domain >= 0 && !tr.ShouldFlag && !w.Domains[a.Domain].NoDNS {
				for _, dep := range w.deps[a.Domain] {
					if _, _, ok := w.depRisk(&w.Domains[dep.domain], day, a.Added); ok {
						want = true
					}
				}
			}
			if tr.MailAtRisk != want {
				t.Fatalf("night %d %s: mail at risk %v, want %v (via %v)", n, tr.Email, tr.MailAtRisk, want, w.MailDependencies(tr.Domain))
			}
			if want {
				risky++
				if w.dayOf(*tr.MailRiskStart) < a.Added {
					t.Errorf("%s: risk from %v, before it was added (day %d)", tr.Email, tr.MailRiskStart, a.Added)
				}
			}
		}
		if n == 59 && risky == 0 {
			t.Error("seed 4: no address at risk through the mail path on night 60")
		}
	}
}

// TestHostDomainsServed: the registry servers answer about host domains
// like any other.
func TestHostDomainsServed(t *testing.T) {
	w, s := startTest(t, Params{Seed: 1, Start: mailStart, Emails: 20000}, ServerOptions{})
	checked := 0
	for _, h := range w.HostDomains() {
		d, _ := w.Lookup(h)
		if d.Suffix() != "com" && d.Suffix() != "net" {
			continue
		}
		for _, day := range []int32{0, 59} {
			w.SetDate(w.dayTime(day))
			ph := w.PhaseAt(d, day)
			resp, _ := httpGet(t, s.Endpoints().RDAP+"domain/"+h, nil)
			if want := map[bool]int{true: 200, false: 404}[ph.Listed]; resp.StatusCode != want {
				t.Errorf("rdap %s on day %d (%s): %d, want %d", h, day, ph.State, resp.StatusCode, want)
			}
			text := rawWHOIS(t, s.Endpoints().WHOIS, h)
			if ph.Listed != strings.Contains(strings.ToLower(text), "domain name: "+h) {
				t.Errorf("whois %s on day %d (%s):\n%s", h, day, ph.State, text)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no .com/.net host domain")
	}
}
