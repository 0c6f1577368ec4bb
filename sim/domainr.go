package sim

import (
	"io"
	"net/http"

	"github.com/lapse-dev/lapse/lifecycle"
)

// bestEffortStatus is the Domainr (and Fastly) status of q on the day:
// space-separated flags and the summary flag.
func (s *Servers) bestEffortStatus(q query) (status, summary string) {
	switch {
	case q.suffix == "":
		return "unknown", "unknown" // a zone the sim does not know
	case q.bare:
		return "zone", "zone"
	}
	ph, _ := s.phase(q)
	if !ph.Listed {
		return "undelegated inactive", "inactive"
	}
	switch ph.State {
	case lifecycle.Redemption:
		return "undelegated expiring", "expiring"
	case lifecycle.PendingDelete:
		return "undelegated deleting", "deleting"
	}
	// registered, expiring and grace: the registry still lists the name
	if !ph.Delegated {
		return "undelegated active", "active"
	}
	return "active", "active"
}

type domainrStatus struct {
	Domain  string `json:"domain"`
	Zone    string `json:"zone"`
	Status  string `json:"status"`
	Summary string `json:"summary"`
}

type domainrError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Detail  string `json:"detail,omitempty"`
}

// domainrHandler serves Domainr v2 GET /v2/status?domain=D&client_id=K
// (or mashape-key=K, or the X-Mashape-Key / X-RapidAPI-Key header).
func (s *Servers) domainrHandler(in *injector) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/status", func(rw http.ResponseWriter, r *http.Request) {
		v := r.URL.Query()
		key := v.Get("client_id")
		ok := key != "" && key == s.opts.DomainrClientID
		for _, k := range []string{v.Get("mashape-key"), r.Header.Get("X-Mashape-Key"), r.Header.Get("X-RapidAPI-Key")} {
			ok = ok || (k != "" && k == s.opts.DomainrMashapeKey)
		}
		if !ok {
			writeJSON(rw, http.StatusUnauthorized, "application/json", map[string]string{"message": "Invalid or missing client_id or mashape-key"})
			return
		}
		raw := v.Get("domain")
		q, err := s.w.parseQuery(raw)
		if err != nil || raw == "" {
			msg := "missing parameter: domain"
			if err != nil {
				msg = err.Error()
			}
			writeJSON(rw, http.StatusBadRequest, "application/json", map[string][]domainrError{"errors": {{Code: 400, Message: "Invalid parameter: domain", Detail: msg}}})
			return
		}
		f := in.decide(q.name, s.w.day.Load())
		if !in.delay(r.Context()) || httpFault(rw, r, in, f) {
			return
		}
		if f == faultMalformed {
			rw.Header().Set("Content-Type", "application/json")
			io.WriteString(rw, `{"status":[{"domain":"`+q.name+`","zone":`)
			return
		}
		st, sum := s.bestEffortStatus(q)
		if f == faultUnknown {
			st, sum = "unknown", "unknown"
		}
		writeJSON(rw, http.StatusOK, "application/json", map[string][]domainrStatus{"status": {{Domain: q.name, Zone: zoneOf(q), Status: st, Summary: sum}}})
	})
	return mux
}

func zoneOf(q query) string {
	if q.suffix != "" {
		return q.suffix
	}
	for i := len(q.name) - 1; i >= 0; i-- {
		if q.name[i] == '.' {
			return q.name[i+1:]
		}
	}
	return q.name
}

// fastlyHandler serves Fastly's GET /domain-management/v1/tools/status?domain=D
// with the Fastly-Key header.
func (s *Servers) fastlyHandler(in *injector) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /domain-management/v1/tools/status", func(rw http.ResponseWriter, r *http.Request) {
		if k := r.Header.Get("Fastly-Key"); k == "" || k != s.opts.FastlyKey {
			writeJSON(rw, http.StatusUnauthorized, "application/json", map[string]string{"msg": "Provided credentials are missing or invalid", "detail": "Fastly-Key"})
			return
		}
		raw := r.URL.Query().Get("domain")
		q, err := s.w.parseQuery(raw)
		if err != nil || raw == "" {
			writeJSON(rw, http.StatusBadRequest, "application/json", map[string]string{"msg": "Bad request", "detail": "invalid domain"})
			return
		}
		f := in.decide(q.name, s.w.day.Load())
		if !in.delay(r.Context()) || httpFault(rw, r, in, f) {
			return
		}
		if f == faultMalformed {
			rw.Header().Set("Content-Type", "application/json")
			io.WriteString(rw, `{"domain":"`+q.name+`","status":`)
			return
		}
		st, _ := s.bestEffortStatus(q)
		if f == faultUnknown {
			st = "unknown"
		}
		scope := r.URL.Query().Get("scope")
		if scope == "" {
			scope = "global"
		}
		writeJSON(rw, http.StatusOK, "application/json", map[string]string{"domain": q.name, "zone": zoneOf(q), "status": st, "scope": scope})
	})
	return mux
}
