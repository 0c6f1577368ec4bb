package status

import (
	"slices"
	"strings"
)

// The rate-limit texts: one list for every provider, HTTP error bodies and
// WHOIS answers alike, matched case-insensitively as substrings. It has two
// strengths, because WHOIS terms of use talk about rate limits too ("Queries
// to the Whois services are throttled. If too many queries…") in answers
// that are records.
var (
	// throttleStatements say "slow down" and nothing else: no registry's
	// boilerplate uses them, so they mark any answer that holds no record
	// as throttling.
	throttleStatements = []string{
		"limit exceeded", "quota exceeded", "server too busy", "try again later",
		"please try again", "temporarily unavailable", "too many requests",
		"exceeded the maximum allowable", "exceeded your query limit",
		"restricted due to excessive queries", "due to query limit controls",
		"you have exceeded", "maximum daily connection limit", "maximum query rate",
		"number of allowed queries exceeded", "queries exceeded", "rate exceeded",
	}
	// throttleWords talk about rate limits but also stand in boilerplate:
	// they mark a short error body (an HTTP 403 or 422) or a WHOIS answer
	// that nothing else recognizes as throttling.
	throttleWords = []string{
		"rate limit", "rate-limit", "ratelimit", "too many", "quota", "throttl",
		"slow down", "query rate", "query limit", "request limit", "limit reached",
		"excessive quer",
	}
)

// SaysThrottled reports whether text holds a statement of throttling
// ("limit exceeded", "try again later"): enough to call an answer without a
// record throttled, even when it also carries terms of use.
func SaysThrottled(text string) bool {
	return containsAny(strings.ToLower(text), throttleStatements)
}

// MentionsThrottling reports whether text holds a statement of throttling
// or talks about rate limits at all ("quota", "throttled", "rate limit"):
// what an error body or an otherwise unrecognized answer says when it
// means "slow down".
func MentionsThrottling(text string) bool {
	low := strings.ToLower(text)
	return containsAny(low, throttleStatements) || containsAny(low, throttleWords)
}

// LooksThrottled reports whether an HTTP error body talks about rate
// limits (MentionsThrottling): a 403 or 422 saying so means 429.
func LooksThrottled(body []byte) bool { return MentionsThrottling(string(body)) }

func containsAny(lower string, phrases []string) bool {
	return slices.ContainsFunc(phrases, func(p string) bool { return strings.Contains(lower, p) })
}
