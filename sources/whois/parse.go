// Package whois looks domains up over port-43 WHOIS: the server per TLD is
// found once through an IANA referral and cached, thin-registry referrals to
// the registrar are followed, answers are capped and cleaned, and Parse
// (over likexian/whois-parser) turns the text into a lifecycle.
//
// The port-43 client is our own, over net.Dialer with context deadlines:
// likexian/whois takes no context and reads answers without a size cap.
package whois

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	whoisparser "github.com/likexian/whois-parser"

	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sources/address"
	"github.com/lapse-dev/lapse/sources/status"
)

// Phrases registries use, matched case-insensitively on the cleaned text.
// They are deliberately specific: boilerplate such as "All rights reserved"
// or Verisign's "reserves the right to restrict your access" must not match.
// The rate-limit texts are every provider's, in package status: its
// statements of throttling are checked before anything else when the
// answer holds no record, and its mere mentions of rate limits ("Queries
// to the Whois services are throttled. If too many queries…" is
// boilerplate) only classify an answer that is otherwise unrecognized.
var (
	reservedTexts = []string{
		"reserved domain name", "reserved by the registry", "can not be registered online",
		"cannot be registered", "can not be registered", "is reserved", "has been reserved",
		"reserved name", "domain is reserved", "status: reserved", "reserved for",
		"not available for registration", "is blocked", "blocked domain",
		"dpml brand protection", "subscribes to the uni eps", "subscribes to the adultblock",
		"registry reserved", "prohibited by the registry",
	}
	notFoundTexts = []string{
		"no match for", "no match", "not found", "no data found", "no entries found",
		"nothing found", "no matching record", "object does not exist", "is free",
		"status: free", "status: available", "domain name not known", "not been registered",
		"not registered", "query returned 0 objects", "no object found", "available for registration",
		"domain not found", "no such domain", "is available",
	}
)

// Clean strips control characters other than newline and tab (and turns
// CRLF into LF) so a hostile answer cannot smuggle terminal escapes into
// logs or reports.
func Clean(s string) string {
	s = strings.ToValidUTF8(s, "")
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0:
			// dropped, including \r
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func containsAny(lower string, phrases []string) bool {
	return slices.ContainsFunc(phrases, func(p string) bool { return strings.Contains(lower, p) })
}

// Throttled reports whether text is a rate-limit answer: it holds one of
// status's statements of throttling.
func Throttled(text string) bool { return status.SaysThrottled(text) }

// ErrUnparseable is an answer that is neither a record nor a recognized
// not-found, reserved or rate-limit text.
var ErrUnparseable = errors.New("unrecognized whois answer")

// Parse maps a WHOIS answer for domain to a lifecycle at asOf. An empty
// domain takes the name the answer gives. Rate-limit texts are a
// *status.ThrottledError and unrecognized texts an error: Parse never
// turns them into a state.
func Parse(text, domain string, asOf time.Time) (lifecycle.Lifecycle, error) {
	return parse(lifecycle.DefaultRules, text, domain, asOf)
}

func parse(rules lifecycle.Rules, text, domain string, asOf time.Time) (lifecycle.Lifecycle, error) {
	domain = address.Fold(domain)
	text = Clean(text)
	a, err := Answer(text, domain)
	if err != nil {
		return lifecycle.Lifecycle{}, err
	}
	return rules.FromWHOIS(a, asOf), nil
}

// Answer reads a cleaned WHOIS text into the mapping's input.
func Answer(text, domain string) (lifecycle.WHOISAnswer, error) {
	lower := strings.ToLower(text)
	if strings.TrimSpace(text) == "" {
		return lifecycle.WHOISAnswer{}, fmt.Errorf("whois %s: empty answer", domain)
	}
	info, perr := whoisparser.Parse(text)
	if perr == nil && info.Domain != nil && !recordIsNotFound(info, lower) {
		d := info.Domain
		name := d.Punycode
		if name == "" {
			name = d.Domain
		}
		name = address.Fold(name)
		if domain == "" {
			domain = name
		} else if name != "" && name != domain {
			return lifecycle.WHOISAnswer{}, fmt.Errorf("whois %s: answer is for %q", domain, name)
		}
		return lifecycle.WHOISAnswer{
			Domain:    domain,
			Statuses:  cleanStatuses(d.Status),
			CreatedAt: whoisDate(d.CreatedDate, d.CreatedDateInTime),
			UpdatedAt: whoisDate(d.UpdatedDate, d.UpdatedDateInTime),
			ExpiresAt: whoisDate(d.ExpirationDate, d.ExpirationDateInTime),
			Server:    d.WhoisServer,
		}, nil
	}
	// No record: decide from the text. Throttling first (a throttle text
	// may contain "not available"), then reserved before not found (a
	// reserved text may say "not available for registration").
	switch {
	case errors.Is(perr, whoisparser.ErrDomainLimitExceed) || status.SaysThrottled(lower):
		return lifecycle.WHOISAnswer{}, &status.ThrottledError{Err: fmt.Errorf("whois %s: rate limited: %s", domain, excerpt(text))}
	case errors.Is(perr, whoisparser.ErrReservedDomain), errors.Is(perr, whoisparser.ErrBlockedDomain), containsAny(lower, reservedTexts):
		return lifecycle.WHOISAnswer{Domain: domain, Reserved: true}, nil
	case errors.Is(perr, whoisparser.ErrNotFoundDomain), errors.Is(perr, whoisparser.ErrPremiumDomain), perr == nil, containsAny(lower, notFoundTexts):
		// A premium name is available to anyone who pays; perr == nil
		// here means recordIsNotFound said so.
		return lifecycle.WHOISAnswer{Domain: domain, NotFound: true}, nil
	}
	if status.MentionsThrottling(lower) {
		return lifecycle.WHOISAnswer{}, &status.ThrottledError{Err: fmt.Errorf("whois %s: rate limited: %s", domain, excerpt(text))}
	}
	return lifecycle.WHOISAnswer{}, fmt.Errorf("whois %s: %w: %s", domain, ErrUnparseable, excerpt(text))
}

// recordIsNotFound catches not-found answers that still name the domain
// (".de: Domain: x.de / Status: free"): no dates, no statuses beyond a
// free/available one, and a not-found phrase.
func recordIsNotFound(info whoisparser.WhoisInfo, lower string) bool {
	d := info.Domain
	if d.CreatedDateInTime != nil || d.ExpirationDateInTime != nil || d.CreatedDate != "" || d.ExpirationDate != "" || len(d.NameServers) > 0 {
		return false
	}
	for _, s := range d.Status {
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "free", "available", "no object found", "":
		default:
			return false
		}
	}
	return containsAny(lower, notFoundTexts)
}

func cleanStatuses(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func excerpt(text string) string {
	s := strings.Join(strings.Fields(text), " ")
	if r := []rune(s); len(r) > 160 {
		s = string(r[:160]) + "…"
	}
	return fmt.Sprintf("%q", s)
}

// dateLayouts are the registry date forms whois-parser leaves unparsed
// (its *InTime fields are nil for them), after dropDateNoise.
var dateLayouts = []string{
	"2006-01-02T15:04:05-0700",
	"2006-01-02T15:04:05Z07:00",
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02-T15:04:05Z",
	"2006-01-02 15:04:05 -07:00",
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05 MST",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04:05",
	"2006-01-02",
	"2006/01/02 15:04:05",
	"2006/01/02",
	"2006.01.02 15:04:05",
	"2006.01.02",
	"02.01.2006 15:04:05",
	"02.01.2006",
	"02-Jan-2006",
	"2-Jan-2006",
	"2 January 2006",
	"2 Jan 2006",
	"January 2 2006",
	"Mon Jan 2 15:04:05 MST 2006",
	"20060102",
}

// dropDateNoise removes what registries append to dates: "(YYYY-MM-DD)",
// "(GMT+0:00)", "#24302".
func dropDateNoise(s string) string {
	if i := strings.IndexAny(s, "(#"); i > 0 {
		s = s[:i]
	}
	return strings.Join(strings.Fields(s), " ")
}

// ParseDate reads a WHOIS date string; ok is false when no known form fits.
// Dates without a zone are read as UTC.
func ParseDate(raw string) (time.Time, bool) {
	s := dropDateNoise(raw)
	if s == "" {
		return time.Time{}, false
	}
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// whoisDate prefers whois-parser's parse, else ours; nil when neither can.
func whoisDate(raw string, parsed *time.Time) *time.Time {
	if parsed != nil && !parsed.IsZero() {
		t := parsed.UTC()
		return &t
	}
	if t, ok := ParseDate(raw); ok {
		return &t
	}
	return nil
}
