// Package address normalizes email addresses: the host after the last
// unquoted @, mapped with IDNA UTS-46 to lowercase A-labels, and its
// registrable domain under the ICANN section of the Public Suffix List.
//
// Unknown TLDs: the PSL's implicit "*" rule is kept, so a host under a TLD
// absent from the list (user@a.example) gets a one-label suffix and the
// domain "a.example". Deciding that such a TLD does not exist is the job of
// the lifecycle stage (state invalid), which sees registry answers; here it
// would only freeze the embedded list's idea of which TLDs exist.
package address

import (
	"net/netip"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/weppos/publicsuffix-go/publicsuffix"
	"golang.org/x/net/idna"
)

// Invalid reasons, stable snake_case codes written to snapshots and JSON.
const (
	ReasonNoAt           = "no_at"             // no unquoted @
	ReasonEmptyLocal     = "empty_local_part"  // nothing before the @
	ReasonEmptyHost      = "empty_host"        // nothing after the @
	ReasonControl        = "control_character" // C0/C1 control or DEL anywhere
	ReasonInvalidUTF8    = "invalid_utf8"      // bytes that are not UTF-8
	ReasonAddressLiteral = "address_literal"   // [1.2.3.4], [IPv6:…]
	ReasonIPHost         = "ip_host"           // bare IP address, or all-numeric TLD
	ReasonEmptyLabel     = "empty_label"       // a..b, .a, a..
	ReasonLabelTooLong   = "label_too_long"    // label over 63 octets (A-label form)
	ReasonNameTooLong    = "name_too_long"     // host over 253 octets (A-label form)
	ReasonIDNA           = "idna_disallowed"   // UTS-46 rejects the host
	ReasonPublicSuffix   = "public_suffix"     // host is itself an ICANN public suffix
)

// Result is one normalized address. Domain is empty and InvalidReason set
// when the address has no registrable domain. Host is empty when no host
// could be derived (no @, empty host, control characters, IDNA failure).
type Result struct {
	Email         string
	Host          string
	Domain        string
	InvalidReason string
}

// pslOptions ignores the private section: github.io and uk.com are sold by
// nobody's registry, RDAP and WHOIS answer for github.io and uk.com.
var pslOptions = &publicsuffix.FindOptions{IgnorePrivate: true, DefaultRule: publicsuffix.DefaultRule}

// DefaultCacheSize bounds the host cache of the package-level Normalizer.
const DefaultCacheSize = 1 << 16

var defaultNormalizer = NewNormalizer(DefaultCacheSize)

// Normalize normalizes one address with a shared, concurrency-safe
// Normalizer.
func Normalize(email string) Result { return defaultNormalizer.Normalize(email) }

// hostResult is the cached outcome for one raw host.
type hostResult struct{ host, domain, reason string }

// Normalizer normalizes addresses, caching per raw host (most addresses
// share a few hosts, and IDNA plus PSL lookup is the expensive part).
// It is safe for concurrent use. The cache holds at most 2×size hosts:
// when the current generation fills, it becomes the previous one and the
// older is dropped; hits in the previous generation are promoted.
type Normalizer struct {
	size int

	mu        sync.RWMutex
	cur, prev map[string]hostResult
}

// NewNormalizer returns a Normalizer whose cache keeps about size hosts
// (size <= 0 disables the cache).
func NewNormalizer(size int) *Normalizer {
	n := &Normalizer{size: size}
	if size > 0 {
		n.cur = make(map[string]hostResult)
	}
	return n
}

// Normalize normalizes one address. Result.Email is the input unchanged.
func (n *Normalizer) Normalize(email string) Result {
	r := Result{Email: email}
	s := strings.TrimSpace(email)
	if !utf8.ValidString(s) {
		r.InvalidReason = ReasonInvalidUTF8
		return r
	}
	if hasControl(s) {
		r.InvalidReason = ReasonControl
		return r
	}
	at := lastUnquotedAt(s)
	if at < 0 {
		r.InvalidReason = ReasonNoAt
		return r
	}
	if strings.TrimSpace(s[:at]) == "" {
		r.InvalidReason = ReasonEmptyLocal
		return r
	}
	h := n.host(strings.TrimSpace(s[at+1:]))
	r.Host, r.Domain, r.InvalidReason = h.host, h.domain, h.reason
	return r
}

func (n *Normalizer) host(raw string) hostResult {
	if n.size <= 0 {
		return normalizeHost(raw)
	}
	n.mu.RLock()
	h, ok := n.cur[raw]
	if !ok {
		h, ok = n.prev[raw]
	}
	n.mu.RUnlock()
	if ok {
		return h
	}
	h = normalizeHost(raw)
	n.mu.Lock()
	if len(n.cur) >= n.size {
		n.prev, n.cur = n.cur, make(map[string]hostResult, n.size)
	}
	// Clone: the key, and the host when IDNA returned the input unchanged,
	// would otherwise pin the caller's whole input batch in memory.
	h.host, h.domain = strings.Clone(h.host), strings.Clone(h.domain)
	n.cur[strings.Clone(raw)] = h
	n.mu.Unlock()
	return h
}

// hasControl reports C0/C1 controls and DEL (unicode category Cc).
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return true
		} else if c >= 0x80 {
			// Only multi-byte runes can be C1 controls; decode the rest.
			for _, r := range s[i:] {
				if unicode.IsControl(r) {
					return true
				}
			}
			return false
		}
	}
	return false
}

// lastUnquotedAt returns the index of the last @ outside a quoted string
// ("a@b"@example.com), honouring backslash escapes inside quotes, or -1.
func lastUnquotedAt(s string) int {
	last, quoted := -1, false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if quoted {
				i++
			}
		case '"':
			quoted = !quoted
		case '@':
			if !quoted {
				last = i
			}
		}
	}
	return last
}

// normalizeHost maps a raw host to its A-label form and registrable domain.
func normalizeHost(raw string) hostResult {
	if raw == "" {
		return hostResult{reason: ReasonEmptyHost}
	}
	if raw[0] == '[' {
		return hostResult{reason: ReasonAddressLiteral}
	}
	if _, err := netip.ParseAddr(strings.TrimSuffix(raw, ".")); err == nil {
		return hostResult{reason: ReasonIPHost}
	}
	a, err := idna.Lookup.ToASCII(raw)
	if err != nil {
		return hostResult{reason: ReasonIDNA}
	}
	// After mapping, so ideographic and full-width trailing dots count too.
	a = strings.TrimSuffix(a, ".")
	if a == "" {
		return hostResult{reason: ReasonEmptyHost}
	}
	h := hostResult{host: a}
	if len(a) > 253 {
		h.reason = ReasonNameTooLong
		return h
	}
	lastLabel := a
	for label := range strings.SplitSeq(a, ".") {
		switch {
		case label == "":
			h.reason = ReasonEmptyLabel
			return h
		case len(label) > 63:
			h.reason = ReasonLabelTooLong
			return h
		}
		lastLabel = label
	}
	// No TLD is all-numeric (RFC 3696 §2); such hosts are IPv4 in a short
	// or odd form (127.1, １２７.０.０.１ after mapping).
	if allDigits(lastLabel) {
		h.reason = ReasonIPHost
		return h
	}
	rule := publicsuffix.DefaultList.Find(a, pslOptions)
	parts := rule.Decompose(a)
	left, suffix := parts[0], parts[1]
	if suffix == "" {
		h.reason = ReasonPublicSuffix
		return h
	}
	if i := strings.LastIndexByte(left, '.'); i >= 0 {
		left = left[i+1:]
	}
	h.domain = left + "." + suffix
	return h
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
