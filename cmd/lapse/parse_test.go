package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	const whoisDir = "../../testdata/whois"
	const rdapDir = "../../testdata/rdap"
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  map[string]any
	}{
		{"whois not found", "", []string{"--kind", "whois", "--domain", "likexian-have-no-money-to-register.com", whoisDir + "/notfound/com_likexian-have-no-money-to-register.com"},
			map[string]any{"state": "available", "source": "whois", "domain": "likexian-have-no-money-to-register.com", "registered_at": nil, "error": ""}},
		{"whois record", "", []string{"--kind", "whois", "--as-of", "2020-07-01T00:00:00Z", whoisDir + "/noterror/com_google.com"},
			map[string]any{"state": "registered", "domain": "google.com", "registered_at": "1997-09-15T07:00:00Z", "expires_at": "2028-09-13T07:00:00Z"}},
		{"whois throttled", "WHOIS LIMIT EXCEEDED\n", []string{"--kind", "whois", "--domain", "x.org", "-"},
			map[string]any{"state": "unknown", "domain": "x.org"}},
		{"rdap sample", "", []string{"--kind", "rdap", "--as-of", "2019-09-10T00:00:00+02:00", rdapDir + "/openrdap_domain-example.cz.json"},
			map[string]any{"state": "grace", "domain": "example.cz", "registered_at": "2004-08-30T22:55:00Z", "expires_at": "2019-08-30T12:00:00Z", "as_of": "2019-09-09T22:00:00Z"}},
		{"rdap errorCode 404", `{"errorCode":404,"title":"Not Found"}`, []string{"--kind", "rdap", "--domain", "Free.Example.", "-"},
			map[string]any{"state": "available", "domain": "free.example", "source": "rdap"}},
		{"rdap http 404", ``, []string{"--kind", "rdap", "--domain", "free.example", "--http-status", "404", "-"},
			map[string]any{"state": "available"}},
		{"rdap 429", `{"errorCode":429}`, []string{"--kind", "rdap", "--domain", "x.example", "-"},
			map[string]any{"state": "unknown"}},
		{"domainr", `{"status":[{"domain":"lapsed.com","zone":"com","status":"undelegated inactive","summary":"inactive"}]}`, []string{"--kind", "domainr", "-"},
			map[string]any{"state": "available", "domain": "lapsed.com", "source": "domainr", "delegated": false, "statuses": []any{"undelegated", "inactive"}}},
		{"domainr errors", `{"errors":[{"code":400,"message":"bad domain"}]}`, []string{"--kind", "domainr", "--domain", "x.com", "-"},
			map[string]any{"state": "unknown", "domain": "x.com"}},
		{"fastly", `{"domain":"held.com","zone":"com","status":"deleting","scope":"registry"}`, []string{"--kind", "fastly", "-"},
			map[string]any{"state": "pending_delete", "domain": "held.com", "source": "fastly"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runLapse(t, tt.stdin, nil, append([]string{"parse"}, tt.args...)...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errs)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("output %q: %v", out, err)
			}
			for _, k := range []string{"domain", "state", "statuses", "registered_at", "expires_at", "source", "error"} {
				if _, ok := got[k]; !ok {
					t.Errorf("output lacks %q: %s", k, out)
				}
			}
			for k, v := range tt.want {
				if g, _ := json.Marshal(got[k]); string(g) != mustJSON(v) {
					t.Errorf("%s = %s, want %s", k, g, mustJSON(v))
				}
			}
			if got["state"] == "unknown" && got["error"] == "" {
				t.Errorf("unknown without an error: %s", out)
			}
		})
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestParseCommandUsage(t *testing.T) {
	for _, args := range [][]string{
		{"parse", "-"},
		{"parse", "--kind", "dns", "-"},
		{"parse", "--kind", "whois", "--as-of", "yesterday", "-"},
		{"parse", "--kind", "rdap", "--http-status", "42", "-"},
		{"parse", "--kind", "whois", "/nonexistent/capture.txt"},
		{"parse", "--kind", "whois"},
	} {
		code, _, errs := runLapse(t, "", nil, args...)
		if code != exitUsage || strings.Count(strings.TrimSpace(errs), "\n") > 1 {
			t.Errorf("%q: exit %d, stderr %q; want exit %d and a one-line error", args, code, errs, exitUsage)
		}
	}
}
