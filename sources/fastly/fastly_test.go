package fastly

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

const key = "fastly-sekrit-token"

var asOf = time.Date(2026, 5, 1, 3, 0, 0, 0, time.UTC)

func body(domain, st string) string {
	b, _ := json.Marshal(map[string]string{"domain": domain, "zone": "com", "status": st, "scope": "registrar", "tags": "generic"})
	return string(b)
}

func TestSuite(t *testing.T) {
	providertest.Run(t, providertest.Fixture{
		New: func(t *testing.T, base string, c *http.Client) status.Provider {
			p, err := New(Config{BaseURL: base, Key: key, Client: c, Now: func() time.Time { return asOf }})
			if err != nil {
				t.Fatal(err)
			}
			return p
		},
		Query:    func(r *http.Request) string { return r.URL.Query().Get("domain") },
		Found:    func(w http.ResponseWriter, d string) { fmt.Fprint(w, body(d, "active")) },
		NotFound: func(w http.ResponseWriter, d string) { fmt.Fprint(w, body(d, "undelegated inactive")) },
		Check: func(t *testing.T, r *http.Request) {
			if r.URL.Path != "/domain-management/v1/tools/status" || r.Header.Get("Fastly-Key") != key {
				t.Errorf("request %s lacks the path or Fastly-Key", r.URL.Path)
			}
			if strings.Contains(r.URL.RawQuery, key) {
				t.Errorf("key in the query")
			}
		},
	})
}

func TestParseBody(t *testing.T) {
	cases := []struct {
		body, domain, want, errHas string
	}{
		{body("a.com", "undelegated inactive"), "a.com", "undelegated inactive", ""},
		{body("A.COM", "deleting"), "a.com", "deleting", ""},
		{`{"domain":"a.com","status":"active","offers":[{"vendor":"x","currency":"USD","price":"10"}]}`, "a.com", "active", ""},
		{body("b.com", "active"), "a.com", "", "not a.com"},
		{`{"msg":"Provided credentials are missing or invalid","detail":""}`, "a.com", "", "credentials"},
		{`{"errors":[{"title":"Bad request","detail":"domain is required"}]}`, "a.com", "", "domain is required"},
		{`{"domain":"a.com"}`, "a.com", "", "no status"},
		{`nope`, "a.com", "", "unreadable"},
	}
	for _, c := range cases {
		got, err := ParseBody([]byte(c.body), c.domain)
		if got != c.want || (c.errHas == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.errHas)) {
			t.Errorf("ParseBody(%s) = %q, %v; want %q, error with %q", c.body, got, err, c.want, c.errHas)
		}
	}
}

func TestLookupMapsState(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("scope") != "estimate" {
			t.Errorf("scope %q", r.URL.Query().Get("scope"))
		}
		fmt.Fprint(w, body(r.URL.Query().Get("domain"), "deleting"))
	}))
	defer srv.Close()
	p, err := New(Config{BaseURL: srv.URL, Key: key, Scope: "estimate", Now: func() time.Time { return asOf }})
	if err != nil {
		t.Fatal(err)
	}
	lc, err := p.Lookup(context.Background(), "gone.com")
	if err != nil || lc.State != lifecycle.PendingDelete || lc.Source != lifecycle.SourceFastly || !lc.CheckedAt.Equal(asOf) {
		t.Fatalf("got %+v, %v", lc, err)
	}
}

func TestKeyNeverInErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A server echoing the key back in an error body.
		http.Error(w, `{"msg":"bad key `+r.Header.Get("Fastly-Key")+`"}`, http.StatusBadRequest)
	}))
	defer srv.Close()
	p, _ := New(Config{BaseURL: srv.URL, Key: key})
	_, err := p.Lookup(context.Background(), "a.com")
	var pe *status.PermanentError
	if !errors.As(err, &pe) || strings.Contains(err.Error(), key) {
		t.Fatalf("err %v: want a permanent error without the key", err)
	}
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "LAPSE_FASTLY_KEY") {
		t.Errorf("no key: %v", err)
	}
}
