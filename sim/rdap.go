package sim

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/lapse-dev/lapse/lifecycle"
)

const rdapType = "application/rdap+json"

var rdapConformance = []string{"rdap_level_0", "icann_rdap_response_profile_0", "icann_rdap_technical_implementation_guide_0"}

// rdapHandler serves the bootstrap file at /rdap/bootstrap/dns.json and
// RFC 9083 domain objects at /rdap/domain/NAME.
func (s *Servers) rdapHandler(in *injector) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /rdap/bootstrap/dns.json", func(rw http.ResponseWriter, r *http.Request) {
		var tlds []string
		seen := map[string]bool{}
		for _, p := range policies {
			tld := p.suffix[strings.LastIndexByte(p.suffix, '.')+1:]
			if p.rdap && !seen[tld] {
				seen[tld] = true
				tlds = append(tlds, tld)
			}
		}
		writeJSON(rw, http.StatusOK, "application/json", map[string]any{
			"description": "RDAP bootstrap file for Domain Name System registrations (lapse registry simulator)",
			"publication": s.w.Start.Format(time.RFC3339),
			"version":     "1.0",
			"services":    [][][]string{{tlds, {s.ep.RDAP}}},
		})
	})
	mux.HandleFunc("GET /rdap/domain/{name}", func(rw http.ResponseWriter, r *http.Request) {
		q, err := s.w.parseQuery(r.PathValue("name"))
		if err != nil || q.bare || !strings.Contains(q.name, ".") {
			rdapError(rw, http.StatusBadRequest, "Bad Request", "not a domain name")
			return
		}
		f := in.decide(q.name, s.w.day.Load())
		if !in.delay(r.Context()) || httpFault(rw, r, in, f) {
			return
		}
		if f == faultMalformed {
			rw.Header().Set("Content-Type", rdapType)
			io.WriteString(rw, `{"objectClassName":"domain","ldhName":"`+q.name+`","status":["act`)
			return
		}
		ph, day := s.phase(q)
		if q.suffix == "" || !ph.Listed {
			rdapError(rw, http.StatusNotFound, "Not Found", fmt.Sprintf("The domain name %s is not registered (simulated registry).", q.name))
			return
		}
		writeJSON(rw, http.StatusOK, rdapType, s.rdapDomain(q, ph, day))
	})
	mux.HandleFunc("/", func(rw http.ResponseWriter, r *http.Request) {
		rdapError(rw, http.StatusNotFound, "Not Found", "no such RDAP path in the simulator")
	})
	return mux
}

func rdapError(rw http.ResponseWriter, code int, title, desc string) {
	writeJSON(rw, code, rdapType, map[string]any{
		"errorCode": code, "title": title, "description": []string{desc},
		"rdapConformance": []string{"rdap_level_0"},
	})
}

type rdapEvent struct {
	Action string `json:"eventAction"`
	Date   string `json:"eventDate"`
}

// rdapStatuses are the RFC 8056 statuses the registry shows in a phase.
func rdapStatuses(d *Domain, ph Phase) []string {
	p := policies[d.policy]
	switch ph.State {
	case lifecycle.Redemption:
		return []string{"redemption period", "pending delete"}
	case lifecycle.PendingDelete:
		return []string{"pending delete"}
	case lifecycle.Grace:
		st := []string{"active"}
		if p.autoRenew {
			st = []string{"auto renew period", "client transfer prohibited"}
		}
		if ph.Hold {
			st = append(st, "client hold")
		}
		return st
	}
	if d.Kind == KindProvider || (d.Kind == KindMailHost || d.Kind == KindDNSHost) && !d.SmallHost() {
		return []string{"client delete prohibited", "client transfer prohibited", "client update prohibited", "server delete prohibited", "server transfer prohibited", "server update prohibited"}
	}
	if d.id%3 == 0 {
		return []string{"active"}
	}
	return []string{"client transfer prohibited"}
}

func (s *Servers) rdapDomain(q query, ph Phase, day int32) map[string]any {
	d := q.domain
	p := policies[d.policy]
	w := s.w
	ts := func(day int32) string { return w.dayTime(day).Format(time.RFC3339) }
	ldh := d.Name
	if p.style == styleVerisign {
		ldh = strings.ToUpper(ldh) // Verisign answers in upper case
	}
	events := []rdapEvent{{"registration", ts(ph.Registered)}}
	if ph.Expires < never {
		events = append(events, rdapEvent{"expiration", ts(ph.Expires)})
	}
	events = append(events, rdapEvent{"last changed", ts(ph.Changed)}, rdapEvent{"last update of RDAP database", w.dayTime(day).Add(6 * time.Hour).Format(time.RFC3339)})
	rg := registrars[d.registrar]
	obj := map[string]any{
		"objectClassName": "domain",
		"handle":          fmt.Sprintf("%d_DOMAIN_%s-SIM", d.id, strings.ToUpper(strings.ReplaceAll(p.suffix, ".", "_"))),
		"ldhName":         ldh,
		"status":          rdapStatuses(d, ph),
		"events":          events,
		"entities": []any{map[string]any{
			"objectClassName": "entity",
			"handle":          fmt.Sprint(rg.ianaID),
			"roles":           []string{"registrar"},
			"publicIds":       []any{map[string]string{"type": "IANA Registrar ID", "identifier": fmt.Sprint(rg.ianaID)}},
			"vcardArray":      []any{"vcard", []any{[]any{"version", map[string]any{}, "text", "4.0"}, []any{"fn", map[string]any{}, "text", rg.name}}},
		}},
		"secureDNS":       map[string]bool{"delegationSigned": false},
		"notices":         []any{map[string]any{"title": "Simulation", "description": []string{"This answer comes from the lapse registry simulator, not a real registry."}}},
		"rdapConformance": rdapConformance,
	}
	if d.Unicode != d.Name {
		obj["unicodeName"] = d.Unicode
	}
	if ph.Delegated {
		obj["nameservers"] = []any{
			map[string]string{"objectClassName": "nameserver", "ldhName": "ns1.sim-dns.example"},
			map[string]string{"objectClassName": "nameserver", "ldhName": "ns2.sim-dns.example"},
		}
	}
	return obj
}
