package status

import "testing"

// TestThrottleTexts holds the one rate-limit list to what the providers
// need from it: HTTP error bodies (RDAP's, Domainr's, Fastly's 403 and 422)
// and WHOIS answers, where only statements count in a text that may carry
// terms of use.
func TestThrottleTexts(t *testing.T) {
	for _, tt := range []struct {
		text               string
		statement, mention bool
	}{
		// HTTP error bodies.
		{`{"errorCode":403,"description":["Rate limit exceeded"]}`, true, true},
		{`{"errorCode":403,"title":"Too many requests from your IP"}`, true, true},
		{"query limit reached", false, true},
		{"quota exhausted", false, true},
		{"Rate limit exceeded. Too many requests, try again later.", true, true},
		{"RateLimit: slow down", false, true},
		{`{"errorCode":403,"title":"Forbidden"}`, false, false},
		{"Access denied", false, false},
		{"invalid domain name", false, false},
		// WHOIS answers.
		{"WHOIS LIMIT EXCEEDED - SEE WWW.PIR.ORG/WHOIS FOR DETAILS", true, true},
		{"% Temporary failure: the service is busy, try again later.", true, true},
		{"Number of allowed queries exceeded.", true, true},
		{"%% Too many queries from your IP, access denied", false, true},
		{"Queries to the Whois services are throttled. If too many queries are sent, access is restricted.", false, true},
		{"No match for \"EXAMPLE.COM\".", false, false},
		{"% This simulated registry does not serve example.zz", false, false},
	} {
		if got := SaysThrottled(tt.text); got != tt.statement {
			t.Errorf("SaysThrottled(%q) = %v, want %v", tt.text, got, tt.statement)
		}
		if got := MentionsThrottling(tt.text); got != tt.mention {
			t.Errorf("MentionsThrottling(%q) = %v, want %v", tt.text, got, tt.mention)
		}
		if got := LooksThrottled([]byte(tt.text)); got != tt.mention {
			t.Errorf("LooksThrottled(%q) = %v, want %v", tt.text, got, tt.mention)
		}
	}
}
