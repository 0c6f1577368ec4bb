package sim

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/lapse-dev/lapse/lifecycle"
)

// serveWHOIS accepts port-43 connections on ln: read one query line, write
// the answer, close. registrar selects the registrar (thick) answers the
// thin registry refers to.
func (s *Servers) serveWHOIS(ln net.Listener, in *injector, registrar bool) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				select {
				case <-s.done:
				default:
					s.log.Error("sim whois accept", "err", err)
				}
				return
			}
			s.conns.Store(c, struct{}{})
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer s.conns.Delete(c)
				s.whoisConn(c, in, registrar)
			}()
		}
	}()
}

func (s *Servers) whoisConn(c net.Conn, in *injector, registrar bool) {
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReaderSize(c, 1024).ReadString('\n')
	if err != nil && line == "" {
		return
	}
	raw := whoisQueryName(line)
	day := s.w.day.Load()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := in.decide(strings.ToLower(raw), day)
	if !in.delay(ctx) {
		return
	}
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	switch f {
	case faultThrottle:
		fmt.Fprint(c, "WHOIS LIMIT EXCEEDED - SEE WWW.PIR.ORG/WHOIS FOR DETAILS (simulated)\r\n")
		return
	case faultReset:
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		return
	case faultTimeout:
		// hang until the client gives up (closes), the servers close or
		// HangMax passes
		c.SetReadDeadline(time.Time{})
		go func() {
			io.Copy(io.Discard, c)
			cancel()
		}()
		in.hang(ctx)
		return
	case faultError:
		fmt.Fprint(c, "% Temporary failure: the service is busy, try again later.\r\n")
		return
	case faultMalformed:
		c.Write([]byte{0x1f, 0x8b, 0x08, 0x00, 0xfe, 0xff, '\r', '\n', 0x00, 0x9c, '=', '='})
		return
	}
	fmt.Fprint(c, strings.ReplaceAll(s.whoisAnswer(raw, registrar, day), "\n", "\r\n"))
}

// whoisQueryName strips the query syntax registries accept around a name:
// Verisign's "domain X" and "=X", DENIC's "-T dn,ace X", JPRS's "X/e".
func whoisQueryName(line string) string {
	f := strings.Fields(line)
	if len(f) == 0 {
		return ""
	}
	q := f[len(f)-1]
	q = strings.TrimPrefix(q, "=")
	q = strings.TrimSuffix(q, "/e")
	return q
}

func (s *Servers) whoisAnswer(raw string, registrar bool, day int32) string {
	q, err := s.w.parseQuery(raw)
	if err != nil || q.name == "" {
		return "% Error: invalid query (simulated registry)\n"
	}
	if q.bare || !strings.Contains(q.name, ".") {
		return s.ianaAnswer(q)
	}
	if q.suffix == "" {
		return fmt.Sprintf("%% This simulated registry does not serve %s\n", q.name)
	}
	ph, _ := s.phase(q)
	style := policies[policyIndex(q.suffix)].style
	if registrar {
		style = styleICANN
	}
	now := s.w.dayTime(day).Add(6 * time.Hour)
	switch style {
	case styleNominet:
		return s.nominet(q, ph, now)
	case styleDENIC:
		return s.denic(q, ph)
	case styleJPRS:
		return s.jprs(q, ph)
	}
	return s.icann(q, ph, now, style == styleVerisign, registrar)
}

// ianaAnswer is whois.iana.org's answer for a TLD: it refers to the sim's
// registry WHOIS for every suffix the sim sells.
func (s *Servers) ianaAnswer(q query) string {
	tld := q.name[strings.LastIndexByte(q.name, '.')+1:]
	known := false
	for _, p := range policies {
		if p.suffix == tld || strings.HasSuffix(p.suffix, "."+tld) {
			known = true
		}
	}
	if !known {
		return "% IANA WHOIS server (lapse registry simulator)\n\n% This query returned 0 objects.\n"
	}
	return fmt.Sprintf(`%% IANA WHOIS server (lapse registry simulator)
%% for more information on IANA, visit http://www.iana.org

refer:        %[1]s

domain:       %[2]s

organisation: Simulated Registry for .%[3]s
status:       ACTIVE

whois:        %[1]s

source:       IANA
`, s.ep.WHOIS, strings.ToUpper(tld), tld)
}

// eppStatuses are the EPP statuses of a phase (RFC 5731, RFC 3915).
func eppStatuses(d *Domain, ph Phase) []string {
	var out []string
	for _, st := range rdapStatuses(d, ph) {
		switch st {
		case "active":
			out = append(out, "ok")
		case "redemption period":
			out = append(out, "redemptionPeriod")
		default:
			// "client transfer prohibited" → clientTransferProhibited
			parts := strings.Fields(st)
			for i := 1; i < len(parts); i++ {
				parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
			}
			out = append(out, strings.Join(parts, ""))
		}
	}
	return out
}

const whoisNotice = `
NOTICE: This answer comes from the lapse registry simulator. The names,
dates and statuses above are simulated; no real registry was asked.
`

func whoisTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// icann writes the ICANN registry format: Verisign's thin registry (with
// the registrar referral) or a thick registry / registrar answer.
func (s *Servers) icann(q query, ph Phase, now time.Time, thin, registrar bool) string {
	var b strings.Builder
	if !ph.Listed {
		if thin {
			fmt.Fprintf(&b, "No match for \"%s\".\n", strings.ToUpper(q.name))
		} else {
			fmt.Fprintf(&b, "Domain not found.\n")
		}
		fmt.Fprintf(&b, ">>> Last update of whois database: %s <<<\n%s", whoisTime(now), whoisNotice)
		return b.String()
	}
	d := q.domain
	p := policies[d.policy]
	rg := registrars[d.registrar]
	name := d.Name
	if thin {
		name = strings.ToUpper(name)
	}
	w := s.w
	fmt.Fprintf(&b, "   Domain Name: %s\n", name)
	fmt.Fprintf(&b, "   Registry Domain ID: %d_DOMAIN_%s-SIM\n", d.id, strings.ToUpper(strings.ReplaceAll(p.suffix, ".", "_")))
	if thin {
		fmt.Fprintf(&b, "   Registrar WHOIS Server: %s\n", s.ep.WHOISRegistrar)
	}
	fmt.Fprintf(&b, "   Registrar URL: %s\n", rg.url)
	fmt.Fprintf(&b, "   Updated Date: %s\n", whoisTime(w.dayTime(ph.Changed)))
	fmt.Fprintf(&b, "   Creation Date: %s\n", whoisTime(w.dayTime(ph.Registered)))
	if ph.Expires < never {
		if registrar {
			fmt.Fprintf(&b, "   Registrar Registration Expiration Date: %s\n", whoisTime(w.dayTime(ph.Expires)))
		} else {
			fmt.Fprintf(&b, "   Registry Expiry Date: %s\n", whoisTime(w.dayTime(ph.Expires)))
		}
	}
	fmt.Fprintf(&b, "   Registrar: %s\n   Registrar IANA ID: %d\n", rg.name, rg.ianaID)
	fmt.Fprintf(&b, "   Registrar Abuse Contact Email: abuse@%s\n   Registrar Abuse Contact Phone: +1.5555550100\n", strings.TrimPrefix(rg.url, "https://"))
	for _, st := range eppStatuses(d, ph) {
		fmt.Fprintf(&b, "   Domain Status: %s https://icann.org/epp#%s\n", st, st)
	}
	if registrar {
		b.WriteString("   Registrant Organization: REDACTED FOR PRIVACY\n   Registrant Country: DE\n")
	}
	if ph.Delegated {
		b.WriteString("   Name Server: NS1.SIM-DNS.EXAMPLE\n   Name Server: NS2.SIM-DNS.EXAMPLE\n")
	}
	b.WriteString("   DNSSEC: unsigned\n   URL of the ICANN Whois Inaccuracy Complaint Form: https://www.icann.org/wicf/\n")
	fmt.Fprintf(&b, ">>> Last update of whois database: %s <<<\n%s", whoisTime(now), whoisNotice)
	return b.String()
}

func nominetDate(t time.Time) string { return t.Format("02-Jan-2006") }

// nominet writes Nominet's indented .uk format.
func (s *Servers) nominet(q query, ph Phase, now time.Time) string {
	var b strings.Builder
	if !ph.Listed {
		fmt.Fprintf(&b, "\n    No match for \"%s\".\n\n    This domain name has not been registered.\n\n", q.name)
		fmt.Fprintf(&b, "    WHOIS lookup made at %s\n\n-- \nThis WHOIS information is provided by the lapse registry simulator\n(Nominet style); it is simulated.\n", now.Format("15:04:05 02-Jan-2006"))
		return b.String()
	}
	d := q.domain
	rg := registrars[d.registrar]
	w := s.w
	fmt.Fprintf(&b, "\n    Domain name:\n        %s\n\n", d.Name)
	fmt.Fprintf(&b, "    Registrar:\n        %s [Tag = SIM%d]\n        URL: %s\n\n", rg.name, rg.ianaID, rg.url)
	fmt.Fprintf(&b, "    Relevant dates:\n        Registered on: %s\n", nominetDate(w.dayTime(ph.Registered)))
	if ph.Expires < never {
		fmt.Fprintf(&b, "        Expiry date:  %s\n", nominetDate(w.dayTime(ph.Expires)))
	}
	fmt.Fprintf(&b, "        Last updated:  %s\n\n", nominetDate(w.dayTime(ph.Changed)))
	status := "Registered until expiry date."
	switch {
	case ph.State == lifecycle.Grace && ph.Hold:
		status = "Suspended."
	case ph.State == lifecycle.Grace:
		status = "Renewal required."
	}
	fmt.Fprintf(&b, "    Registration status:\n        %s\n\n", status)
	if ph.Delegated {
		b.WriteString("    Name servers:\n        ns1.sim-dns.example\n        ns2.sim-dns.example\n\n")
	} else {
		b.WriteString("    Name servers:\n        No name servers listed.\n\n")
	}
	fmt.Fprintf(&b, "    WHOIS lookup made at %s\n\n-- \nThis WHOIS information is provided by the lapse registry simulator\n(Nominet style); it is simulated.\n", now.Format("15:04:05 02-Jan-2006"))
	return b.String()
}

// denic writes DENIC's .de format: no expiry date; "free" when available.
func (s *Servers) denic(q query, ph Phase) string {
	if !ph.Listed {
		return fmt.Sprintf("Domain: %s\nStatus: free\n", q.name)
	}
	d := q.domain
	var b strings.Builder
	fmt.Fprintf(&b, "Domain: %s\n", d.Name)
	if ph.Delegated {
		b.WriteString("Nserver: ns1.sim-dns.example\nNserver: ns2.sim-dns.example\n")
	}
	status := "connect"
	if ph.State == lifecycle.Redemption || ph.State == lifecycle.PendingDelete {
		status = "redemptionPeriod"
	}
	fmt.Fprintf(&b, "Status: %s\nChanged: %s\n", status, s.w.dayTime(ph.Changed).Format(time.RFC3339))
	return b.String()
}

const jprsHeader = `[ JPRS database provides information on network administration. Its use is    ]
[ restricted to network administration purposes. This is the lapse registry   ]
[ simulator answering in the JPRS style; the data is simulated.              ]
`

// jprs writes JPRS's .jp format.
func (s *Servers) jprs(q query, ph Phase) string {
	if !ph.Listed {
		return jprsHeader + "\nNo match!!\n\nThe simulated JPRS WHOIS has no record of this name.\n"
	}
	d := q.domain
	w := s.w
	var b strings.Builder
	b.WriteString(jprsHeader)
	fmt.Fprintf(&b, "\nDomain Information:\n[Domain Name]                   %s\n\n", strings.ToUpper(d.Name))
	b.WriteString("[Registrant]                    Simulated Holder\n\n")
	if ph.Delegated {
		b.WriteString("[Name Server]                   ns1.sim-dns.example\n[Name Server]                   ns2.sim-dns.example\n")
	}
	b.WriteString("[Signing Key]\n\n")
	fmt.Fprintf(&b, "[Created on]                    %s\n", w.dayTime(ph.Registered).Format("2006/01/02"))
	if ph.Expires < never {
		fmt.Fprintf(&b, "[Expires on]                    %s\n", w.dayTime(ph.Expires).Format("2006/01/02"))
	}
	fmt.Fprintf(&b, "[Status]                        Active\n[Last Updated]                  %s 00:00:00 (JST)\n", w.dayTime(ph.Changed).Format("2006/01/02"))
	return b.String()
}
