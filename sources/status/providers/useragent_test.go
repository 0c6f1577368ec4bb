package providers

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/lapse-dev/lapse/config"
)

// TestUserAgent: every HTTP request of the chain (RDAP's, Domainr's)
// carries config.DefaultUserAgent, or the caller's.
func TestUserAgent(t *testing.T) {
	for _, ua := range []string{"", "lapse-test/1"} {
		w := newWorld(t)
		var mu sync.Mutex
		var seen []string
		record := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			mu.Lock()
			seen = append(seen, r.UserAgent())
			mu.Unlock()
			return http.DefaultTransport.RoundTrip(r)
		})
		cfg := w.config(t)
		cfg.Providers.Chain = []string{"domainr", "rdap"}
		p, err := Build(cfg, Deps{Transport: record, UserAgent: ua, Sleep: noSleep, Getenv: env("LAPSE_DOMAINR_CLIENT_ID", "cid")})
		if err != nil {
			t.Fatal(err)
		}
		w.domainrStatus = func(string) (int, string) { return 200, "undelegated inactive" } // decisive: RDAP is asked too
		if _, err := p.Lookup(context.Background(), "gone.com"); err != nil {
			t.Fatal(err)
		}
		want := ua
		if want == "" {
			want = config.DefaultUserAgent
		}
		if len(seen) != 2 || slices.ContainsFunc(seen, func(s string) bool { return s != want }) {
			t.Errorf("UserAgent %q: requests sent with %q, want each with %q", ua, seen, want)
		}
	}
}
