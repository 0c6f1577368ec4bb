package status

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/lifecycle"
)

func TestChain(t *testing.T) {
	const (
		R  = lifecycle.Registered
		A  = lifecycle.Available
		PD = lifecycle.PendingDelete
		U  = lifecycle.Unknown
	)
	throttled := &ThrottledError{RetryAfter: time.Second, Err: errors.New("HTTP 429")}
	type prov struct {
		name lifecycle.Source
		s    step
	}
	cases := []struct {
		name         string
		ps           []prov
		state        lifecycle.State
		source       lifecycle.Source
		corroborated bool
		asked        int // providers asked (evidence entries)
		errHas       string
	}{
		{"rdap answers", []prov{{"rdap", step{state: R}}, {"whois", step{state: A}}}, R, "rdap", true, 1, ""},
		{"no rdap server → whois", []prov{{"rdap", step{err: ErrNoServer}}, {"whois", step{state: A}}}, A, "whois", true, 2, ""},
		{"rdap fails → whois", []prov{{"rdap", step{err: errReset}}, {"whois", step{state: R}}}, R, "whois", true, 2, ""},
		{"all fail → unknown", []prov{{"rdap", step{err: throttled}}, {"whois", step{err: errReset}}}, U, "rdap", false, 2, "throttled"},
		{"domainr decisive corroborated", []prov{{"domainr", step{state: A}}, {"rdap", step{state: A}}, {"whois", step{state: R}}}, A, "rdap", true, 2, ""},
		{"domainr decisive overruled", []prov{{"domainr", step{state: A}}, {"rdap", step{state: R}}}, R, "rdap", true, 2, ""},
		{"domainr decisive, authority fails", []prov{{"domainr", step{state: PD}}, {"rdap", step{err: errReset}}, {"whois", step{err: throttled}}}, PD, "domainr", false, 3, ""},
		{"domainr decisive, rdap no server, whois agrees", []prov{{"domainr", step{state: A}}, {"rdap", step{err: ErrNoServer}}, {"whois", step{state: A}}}, A, "whois", true, 3, ""},
		{"domainr decisive skips fastly", []prov{{"domainr", step{state: A}}, {"fastly", step{state: R}}, {"rdap", step{state: A}}}, A, "rdap", true, 2, ""},
		{"domainr registered ends chain", []prov{{"domainr", step{state: R}}, {"rdap", step{state: A}}}, R, "domainr", false, 1, ""},
		{"domainr fails → rdap", []prov{{"domainr", step{err: ErrUnauthorized}}, {"rdap", step{state: R}}}, R, "rdap", true, 2, ""},
		{"domainr unknown → rdap", []prov{{"domainr", step{state: U}}, {"rdap", step{state: PD}}}, PD, "rdap", true, 2, ""},
		{"fastly fails, domainr answers", []prov{{"fastly", step{err: errReset}}, {"domainr", step{state: R}}, {"rdap", step{state: A}}}, R, "domainr", false, 2, ""},
		{"only unknown answers", []prov{{"domainr", step{state: U}}}, U, "domainr", false, 1, ""},
	}
	at := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ps []Provider
			var sp []*scripted
			for _, p := range tc.ps {
				s := &scripted{name: p.name, steps: []step{p.s}}
				ps = append(ps, s)
				sp = append(sp, s)
			}
			c, err := NewChain(ps, ChainOptions{Now: func() time.Time { return at }})
			if err != nil {
				t.Fatal(err)
			}
			lc, err := c.Lookup(context.Background(), "example.com")
			if err != nil {
				t.Fatalf("lookup: %v", err)
			}
			if lc.State != tc.state || lc.Source != tc.source || lc.Corroborated != tc.corroborated {
				t.Errorf("got %s from %s corroborated=%v, want %s from %s corroborated=%v", lc.State, lc.Source, lc.Corroborated, tc.state, tc.source, tc.corroborated)
			}
			if len(lc.Evidence) != tc.asked {
				t.Errorf("evidence %d entries, want %d: %+v", len(lc.Evidence), tc.asked, lc.Evidence)
			}
			asked := 0
			for _, s := range sp {
				asked += s.Calls()
			}
			if asked != tc.asked {
				t.Errorf("asked %d providers, want %d", asked, tc.asked)
			}
			for _, e := range lc.Evidence {
				if e.Source == "" || e.CheckedAt.IsZero() {
					t.Errorf("evidence without source or time: %+v", e)
				}
				if e.Error != "" && e.State != lifecycle.Unknown {
					t.Errorf("failed source recorded as %s", e.State)
				}
			}
			if tc.errHas != "" && !strings.Contains(lc.Error, tc.errHas) {
				t.Errorf("error %q lacks %q", lc.Error, tc.errHas)
			}
			if lc.State == lifecycle.Unknown && tc.errHas != "" && lc.Error == "" {
				t.Errorf("unknown without error")
			}
		})
	}
}

func TestChainCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c, _ := NewChain([]Provider{&scripted{name: "rdap", steps: []step{{block: true}}}}, ChainOptions{})
	if _, err := c.Lookup(ctx, "a.com"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want canceled", err)
	}
	if _, err := NewChain(nil, ChainOptions{}); err == nil {
		t.Fatal("empty chain accepted")
	}
}
