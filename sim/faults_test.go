package sim

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	whoisparser "github.com/likexian/whois-parser"
)

func TestParseFaults(t *testing.T) {
	f, err := ParseFaults("latency=20ms, rate=50,burst=10,error=0.02,reset=0.01,timeout=0.01,hang=5s,malformed=0.01,unknown=0.05,retry_after=2s", Faults{})
	want := Faults{Latency: 20 * time.Millisecond, RatePerSecond: 50, Burst: 10, ErrorRate: 0.02, ResetRate: 0.01, TimeoutRate: 0.01, HangMax: 5 * time.Second, MalformedRate: 0.01, UnknownRate: 0.05, RetryAfter: 2 * time.Second}
	if err != nil || f != want {
		t.Fatalf("got %+v, %v", f, err)
	}
	for _, bad := range []string{"latency", "speed=1", "error=x", "hang=5"} {
		if _, err := ParseFaults(bad, Faults{}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if err := (Faults{ErrorRate: 0.7, ResetRate: 0.5}).Validate("rdap"); err == nil {
		t.Error("rates over 1 accepted")
	}
}

func TestFaultsDeterministic(t *testing.T) {
	f := Faults{ErrorRate: 0.2, ResetRate: 0.2, MalformedRate: 0.2}
	a, b := newInjector(f, 9, "rdap", nil), newInjector(f, 9, "rdap", nil)
	c := newInjector(f, 10, "rdap", nil)
	same, differ := true, false
	counts := map[fault]int{}
	for i := 0; i < 300; i++ {
		k := "d" + string(rune('a'+i%26)) + ".com"
		x, y, z := a.decide(k, 3), b.decide(k, 3), c.decide(k, 3)
		same = same && x == y
		differ = differ || x != z
		counts[x]++
	}
	if !same || !differ {
		t.Errorf("same seed same faults %v, other seed differs %v", same, differ)
	}
	if counts[faultNone] < 60 || counts[faultError] < 20 || counts[faultReset] < 20 || counts[faultMalformed] < 20 {
		t.Errorf("fault mix %v far from 40/20/20/20 per 100", counts)
	}
}

func TestHTTPFaults(t *testing.T) {
	get := func(s *Servers, timeout time.Duration) (*http.Response, []byte, error) {
		c := &http.Client{Timeout: timeout}
		resp, err := c.Get(s.Endpoints().RDAP + "domain/gmail.com")
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	p := Params{Seed: 2, Start: testStart, Emails: 500}

	_, s := startTest(t, p, ServerOptions{RDAP: Faults{RatePerSecond: 0.001, Burst: 1, RetryAfter: 7 * time.Second}})
	if resp, _, err := get(s, 5*time.Second); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first request: %v %v", resp, err)
	}
	resp, body, err := get(s, 5*time.Second)
	if err != nil || resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "7" {
		t.Errorf("over the rate: %v %s %v", resp, body, err)
	}

	_, s = startTest(t, p, ServerOptions{RDAP: Faults{ErrorRate: 1}})
	if resp, _, err := get(s, 5*time.Second); err != nil || resp.StatusCode < 500 {
		t.Errorf("error rate 1: %v %v", resp, err)
	}

	_, s = startTest(t, p, ServerOptions{RDAP: Faults{MalformedRate: 1}})
	resp, body, err = get(s, 5*time.Second)
	var v any
	if err != nil || resp.StatusCode != 200 || json.Unmarshal(body, &v) == nil {
		t.Errorf("malformed rate 1: %v %q %v", resp, body, err)
	}

	_, s = startTest(t, p, ServerOptions{RDAP: Faults{ResetRate: 1}})
	if _, _, err := get(s, 5*time.Second); err == nil {
		t.Error("reset rate 1: request succeeded")
	}

	// a hang outlives the client, which gives up; Close ends the hang
	_, s = startTest(t, p, ServerOptions{RDAP: Faults{TimeoutRate: 1, HangMax: time.Minute}})
	_, _, err = get(s, 200*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("timeout rate 1: %v, want a client timeout", err)
	}
	s.Close()

	// best-effort unknown
	_, s = startTest(t, p, ServerOptions{Domainr: Faults{UnknownRate: 1}})
	r, err := http.Get(s.Endpoints().Domainr + "/v2/status?domain=gmail.com&client_id=" + s.opts.DomainrClientID)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(r.Body)
	r.Body.Close()
	if !strings.Contains(string(body), `"status":"unknown"`) {
		t.Errorf("unknown rate 1: %s", body)
	}
}

func TestWHOISFaults(t *testing.T) {
	p := Params{Seed: 2, Start: testStart, Emails: 500}
	_, s := startTest(t, p, ServerOptions{WHOIS: Faults{RatePerSecond: 0.001, Burst: 1}})
	rawWHOIS(t, s.Endpoints().WHOIS, "gmail.com")
	out := rawWHOIS(t, s.Endpoints().WHOIS, "gmail.com")
	if _, err := whoisparser.Parse(out); err != whoisparser.ErrDomainLimitExceed {
		t.Errorf("throttled answer %q parsed as %v, want limit exceeded", out, err)
	}
	_, s = startTest(t, p, ServerOptions{WHOIS: Faults{MalformedRate: 1}})
	out = rawWHOIS(t, s.Endpoints().WHOIS, "gmail.com")
	if _, err := whoisparser.Parse(out); err == nil || err == whoisparser.ErrNotFoundDomain {
		t.Errorf("malformed answer parsed as %v", err)
	}
	_, s = startTest(t, p, ServerOptions{WHOIS: Faults{ErrorRate: 1}})
	out = rawWHOIS(t, s.Endpoints().WHOIS, "gmail.com")
	if _, err := whoisparser.Parse(out); err == nil || err == whoisparser.ErrNotFoundDomain {
		t.Errorf("error answer %q parsed as %v", out, err)
	}

	// a hang: the client gives up; Close does not wait for HangMax
	_, s = startTest(t, p, ServerOptions{WHOIS: Faults{TimeoutRate: 1, HangMax: time.Minute}})
	c, err := net.Dial("tcp", s.Endpoints().WHOIS)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "gmail.com\r\n")
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	_, err = io.ReadAll(c)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("hung whois: %v, want a read timeout", err)
	}
	c.Close()
	s.Close()
}
