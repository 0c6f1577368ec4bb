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
	ReasonNoAt           = "no_at"               // no unquoted @
	ReasonEmptyLocal     = "empty_local_part"    // nothing before the @
	ReasonLocalTooLong   = "local_part_too_long" // local part over 64 octets (RFC 5321 §4.5.3.1.1)
	ReasonEmptyHost      = "empty_host"          // nothing after the @
	ReasonControl        = "control_character"   // C0/C1 control or DEL anywhere
	ReasonInvalidUTF8    = "invalid_utf8"        // bytes that are not UTF-8
	ReasonAddressLiteral = "address_literal"     // [1.2.3.4], [IPv6:…]
	ReasonIPHost         = "ip_host"             // bare IP address, or all-numeric TLD
	ReasonEmptyLabel     = "empty_label"         // a..b, .a, a..
	ReasonLabelTooLong   = "label_too_long"      // label over 63 octets (A-label form)
	ReasonNameTooLong    = "name_too_long"       // host over 253 octets (A-label form)
	ReasonIDNA           = "idna_disallowed"     // UTS-46 rejects the host
	ReasonPublicSuffix   = "public_suffix"       // host is itself an ICANN public suffix
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
	raw, reason := Split(email)
	if reason != "" {
		r.InvalidReason = reason
		return r
	}
	h := n.host(raw)
	r.Host, r.Domain, r.InvalidReason = h.host, h.domain, h.reason
	return r
}

// Split returns the raw host of an address (the text after its last
// unquoted @, trimmed of white space, not yet normalized), or the invalid
// reason when the address has none. Split then NormalizeHost is Normalize
// without the cache, for callers that cache per host themselves; rawHost is
// a substring of email.
func Split(email string) (rawHost, reason string) {
	s := strings.TrimSpace(email)
	if !utf8.ValidString(s) {
		return "", ReasonInvalidUTF8
	}
	if hasControl(s) {
		return "", ReasonControl
	}
	at := lastUnquotedAt(s)
	if at < 0 {
		return "", ReasonNoAt
	}
	local := strings.TrimSpace(s[:at])
	if local == "" {
		return "", ReasonEmptyLocal
	}
	if len(local) > MaxLocalPart {
		return "", ReasonLocalTooLong
	}
	return strings.TrimSpace(s[at+1:]), ""
}

// MaxLocalPart is the longest local part, in octets, that SMTP carries
// (RFC 5321 §4.5.3.1.1); a longer one is no deliverable address.
const MaxLocalPart = 64

// AppendEscaped appends the text b to dst with every byte that is not part of valid
// UTF-8 written as \xHH (\xFF) and every backslash as \\, so that the
// result is valid UTF-8 and the original bytes can be read back from it.
// It is meant for text that utf8.Valid rejected; valid text should be
// stored as it is.
func AppendEscaped(dst []byte, b string) []byte {
	const hex = "0123456789ABCDEF"
	for len(b) > 0 {
		c := b[0]
		if c < utf8.RuneSelf {
			if c == '\\' {
				dst = append(dst, '\\')
			}
			dst = append(dst, c)
			b = b[1:]
			continue
		}
		r, n := utf8.DecodeRuneInString(b)
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, '\\', 'x', hex[c>>4], hex[c&0xf])
		} else {
			dst = append(dst, b[:n]...)
		}
		b = b[n:]
	}
	return dst
}

// NormalizeHost normalizes a raw host as Split returns it, without any
// cache: its A-label form, registrable domain and invalid reason (Host,
// Domain and InvalidReason of Result). The results may share memory with
// raw.
func NormalizeHost(raw string) (host, domain, reason string) {
	h := normalizeHost(raw)
	return h.host, h.domain, h.reason
}

// Host is NormalizeHost through the Normalizer's cache; the results never
// share memory with raw.
func (n *Normalizer) Host(raw string) (host, domain, reason string) {
	h := n.host(raw)
	if n.size <= 0 {
		h.host, h.domain = strings.Clone(h.host), strings.Clone(h.domain)
	}
	return h.host, h.domain, h.reason
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
	a, letters := raw, plainLetters(raw)
	// IPv4 is digits and dots and IPv6 has colons: a plain host with a
	// letter is neither, and skips the parse.
	if letters != plainWithLetter {
		if _, err := netip.ParseAddr(strings.TrimSuffix(raw, ".")); err == nil {
			return hostResult{reason: ReasonIPHost}
		}
	}
	if letters == notPlain {
		// UTS-46 maps lowercase letters, digits and dots to themselves
		// and has no rule that rejects them (no hyphen, no xn-- label, no
		// right-to-left text, no length check in the lookup profile): only
		// other hosts need the IDNA work.
		var err error
		if a, err = idna.Lookup.ToASCII(raw); err != nil {
			return hostResult{reason: ReasonIDNA}
		}
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

// Kinds of host for plainLetters.
const (
	notPlain        = iota // has a byte outside [a-z0-9.]
	plainNoLetter          // digits and dots only
	plainWithLetter        // [a-z0-9.] with at least one letter
)

func plainLetters(s string) int {
	letter := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z':
			letter = true
		case '0' <= c && c <= '9', c == '.':
		default:
			return notPlain
		}
	}
	if letter {
		return plainWithLetter
	}
	return plainNoLetter
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
