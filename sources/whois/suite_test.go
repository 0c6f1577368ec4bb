package whois

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/sources/providertest"
	"github.com/lapse-dev/lapse/sources/status"
)

// TestSuite runs the port-43 provider suite against the WHOIS provider,
// with the suite's server as the override for .com.
func TestSuite(t *testing.T) {
	const maxBytes = 64 << 10
	providertest.RunPort43(t, providertest.Port43Fixture{
		New: func(t *testing.T, addr string, timeout time.Duration) status.Provider {
			p, err := New(Config{
				Servers:  map[string]string{"com": addr},
				Timeout:  timeout,
				MaxBytes: maxBytes,
				Now:      func() time.Time { return testNow },
			})
			if err != nil {
				t.Fatal(err)
			}
			return p
		},
		Query:     strings.TrimSpace,
		Found:     func(d string) string { return record(d, "2030-03-01T10:00:00Z", "clientTransferProhibited") },
		NotFound:  func(d string) string { return fmt.Sprintf("No match for \"%s\".\r\n", strings.ToUpper(d)) },
		Throttled: "WHOIS LIMIT EXCEEDED - SEE WWW.PIR.ORG/WHOIS FOR DETAILS\r\n",
		MaxBytes:  maxBytes,
	})
}
