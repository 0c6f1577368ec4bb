package domainr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sources/providertest"
	"github.com/lapse-dev/lapse/sources/status"
)

const secretID = "sekrit-client-id-4711"

var asOf = time.Date(2026, 5, 1, 3, 0, 0, 0, time.UTC)

func body(domain, st string) string {
	b, _ := json.Marshal(map[string]any{"status": []map[string]string{{"domain": domain, "zone": "com", "status": st, "summary": "x"}}})
	return string(b)
}

func TestSuite(t *testing.T) {
	providertest.Run(t, providertest.Fixture{
		New: func(t *testing.T, base string, c *http.Client) status.Provider {
			p, err := New(Config{BaseURL: base, ClientID: secretID, Client: c, Now: func() time.Time { return asOf }})
			if err != nil {
				t.Fatal(err)
			}
			return p
		},
		Query:    func(r *http.Request) string { return r.URL.Query().Get("domain") },
		Found:    func(w http.ResponseWriter, d string) { fmt.Fprint(w, body(d, "active")) },
		NotFound: func(w http.ResponseWriter, d string) { fmt.Fprint(w, body(d, "undelegated inactive")) },
		Check: func(t *testing.T, r *http.Request) {
			if r.URL.Path != "/v2/status" || r.URL.Query().Get("client_id") != secretID {
				t.Errorf("request %s lacks the path or client_id", r.URL.Path)
			}
		},
	})
}

func TestParseBody(t *testing.T) {
	cases := []struct {
		body, domain, want, errHas string
	}{
		{body("a.com", "active registrar"), "a.com", "active registrar", ""},
		{body("A.com", "inactive"), "a.com", "inactive", ""},
		{`{"status":[{"domain":"b.com","status":"active"},{"domain":"a.com","status":"deleting"}]}`, "a.com", "deleting", ""},
		{`{"errors":[{"code":404,"message":"Not Found","detail":"unknown zone"}]}`, "a.com", "", "Not Found: unknown zone (code 404)"},
		{`{"status":[]}`, "a.com", "", "no status for a.com"},
		{body("b.com", "active"), "a.com", "", "no status for a.com"},
		{body("a.com", ""), "a.com", "", "empty status"},
		{`<html>`, "a.com", "", "unreadable"},
	}
	for _, c := range cases {
		got, err := ParseBody([]byte(c.body), c.domain)
		if got != c.want || (c.errHas == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.errHas)) {
			t.Errorf("ParseBody(%s) = %q, %v; want %q, error with %q", c.body, got, err, c.want, c.errHas)
		}
	}
}

func TestErrorsBodyIsError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"errors":[{"code":"400","message":"invalid client_id `+r.URL.Query().Get("client_id")+`"}]}`)
	}))
	defer srv.Close()
	p, _ := New(Config{BaseURL: srv.URL, ClientID: secretID})
	lc, err := p.Lookup(context.Background(), "a.com")
	var ae *APIError
	if !errors.As(err, &ae) || lc.State != "" {
		t.Fatalf("got %v, %v; want an APIError", lc.State, err)
	}
	if strings.Contains(err.Error(), secretID) {
		t.Errorf("secret in error: %v", err)
	}
}

func TestSecretNeverInErrors(t *testing.T) {
	// A server that hangs up: the transport's url.Error carries the URL.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, _ := http.NewResponseController(w).Hijack()
		c.Close()
	}))
	defer srv.Close()
	p, _ := New(Config{BaseURL: srv.URL, ClientID: secretID})
	_, err := p.Lookup(context.Background(), "a.com")
	if err == nil || strings.Contains(err.Error(), secretID) || !strings.Contains(err.Error(), "[redacted]") {
		t.Fatalf("err %v: want an error with the query redacted", err)
	}
	// Unreachable server: the dial error carries the URL as well.
	srv.Close()
	_, err = p.Lookup(context.Background(), "a.com")
	if err == nil || strings.Contains(err.Error(), secretID) {
		t.Fatalf("err %v", err)
	}
}

func TestRapidAPIKey(t *testing.T) {
	var gotHeader, gotQuery string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHeader, gotQuery = r.Header.Get("X-RapidAPI-Key"), r.URL.Query().Get("mashape-key")
		fmt.Fprint(w, body("a.com", "expiring"))
	}))
	defer srv.Close()
	p, err := New(Config{BaseURL: srv.URL, MashapeKey: "rapid-key", Now: func() time.Time { return asOf }})
	if err != nil {
		t.Fatal(err)
	}
	lc, err := p.Lookup(context.Background(), "a.com")
	if err != nil || lc.State != lifecycle.Redemption || lc.Source != lifecycle.SourceDomainr {
		t.Fatalf("got %+v, %v", lc, err)
	}
	if gotHeader != "rapid-key" || gotQuery != "rapid-key" {
		t.Errorf("header %q query %q", gotHeader, gotQuery)
	}
}

func TestNewNeedsKey(t *testing.T) {
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "LAPSE_DOMAINR_CLIENT_ID") {
		t.Errorf("err %v", err)
	}
	if _, err := New(Config{ClientID: "x", BaseURL: "ftp://x"}); err == nil {
		t.Error("ftp base accepted")
	}
}
