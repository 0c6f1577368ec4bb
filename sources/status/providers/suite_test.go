package providers

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/sources/providertest"
	"github.com/lapse-dev/lapse/sources/rdap"
	"github.com/lapse-dev/lapse/sources/status"
)

// TestRDAPSuite runs the provider suite against the RDAP provider, with
// the suite's server as the override for .com.
func TestRDAPSuite(t *testing.T) {
	asOf := time.Date(2026, 5, 1, 3, 0, 0, 0, time.UTC)
	providertest.Run(t, providertest.Fixture{
		New: func(t *testing.T, base string, c *http.Client) status.Provider {
			p, err := rdap.New(rdap.Config{
				BootstrapURL: base + "/no-bootstrap-here",
				Servers:      map[string]string{"com": base + "/"},
				Client:       c,
				Now:          func() time.Time { return asOf },
			})
			if err != nil {
				t.Fatal(err)
			}
			return p
		},
		Query: func(r *http.Request) string { return strings.TrimPrefix(r.URL.Path, "/domain/") },
		Found: func(w http.ResponseWriter, d string) {
			w.Header().Set("Content-Type", "application/rdap+json")
			fmt.Fprintf(w, `{"objectClassName":"domain","ldhName":%q,"status":["active"],"events":[{"eventAction":"registration","eventDate":"2015-01-01T00:00:00Z"},{"eventAction":"expiration","eventDate":"2031-01-01T00:00:00Z"}]}`, d)
		},
		NotFound: func(w http.ResponseWriter, d string) {
			w.Header().Set("Content-Type", "application/rdap+json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"errorCode":404,"title":"Not Found"}`)
		},
		Keyless: true,
	})
}
