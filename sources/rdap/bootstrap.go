package rdap

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/lapse-dev/lapse/sources/address"
)

// embeddedBootstrap is the last-resort copy of IANA's dns.json, used only
// when neither a download nor the cached copy is available (see
// bootstrapdata/README.md for its origin and licence).
//
//go:embed bootstrapdata/iana-dns-bootstrap-2022-07-06.json
var embeddedBootstrap []byte

// Bootstrap maps DNS suffixes (usually TLDs) to RDAP base URLs (RFC 9224).
type Bootstrap struct {
	Publication string
	servers     map[string]string
}

// ParseBootstrap reads an IANA RDAP DNS bootstrap file.
func ParseBootstrap(b []byte) (*Bootstrap, error) {
	var f struct {
		Publication string       `json:"publication"`
		Services    [][][]string `json:"services"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("rdap bootstrap: %w", err)
	}
	bs := &Bootstrap{Publication: f.Publication, servers: map[string]string{}}
	for _, svc := range f.Services {
		if len(svc) != 2 {
			continue
		}
		base := pickURL(svc[1])
		if base == "" {
			continue
		}
		for _, suffix := range svc[0] {
			bs.servers[address.Fold(suffix)] = base
		}
	}
	if len(bs.servers) == 0 {
		return nil, fmt.Errorf("rdap bootstrap: no services")
	}
	return bs, nil
}

// pickURL prefers HTTPS, as RFC 9224 section 3 recommends.
func pickURL(urls []string) string {
	for _, u := range urls {
		if strings.HasPrefix(strings.ToLower(u), "https://") {
			return u
		}
	}
	for _, u := range urls {
		if strings.HasPrefix(strings.ToLower(u), "http://") {
			return u
		}
	}
	return ""
}

// Len is the number of suffixes the file covers.
func (b *Bootstrap) Len() int { return len(b.servers) }

// Lookup returns the base URL for domain by longest-suffix match: for
// a.b.example.com it tries "b.example.com", "example.com", then "com"
// (RFC 9224 section 4).
func (b *Bootstrap) Lookup(domain string) (string, bool) {
	return longestSuffix(b.servers, domain)
}

func longestSuffix(m map[string]string, domain string) (string, bool) {
	d := address.Fold(domain)
	for d != "" {
		if u, ok := m[d]; ok {
			return u, true
		}
		i := strings.IndexByte(d, '.')
		if i < 0 {
			break
		}
		d = d[i+1:]
	}
	return "", false
}
