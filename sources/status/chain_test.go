package status

import (
	"context"
	"errors"
	"slices"
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

// flagged answers with fixed status flags (a status API) or dates (an
// authoritative provider), or fails with err.
type flagged struct {
	name  lifecycle.Source
	state lifecycle.State
	flags []string
	err   error
	calls int
}

func (f *flagged) Name() lifecycle.Source { return f.name }

func (f *flagged) Lookup(_ context.Context, domain string) (lifecycle.Lifecycle, error) {
	f.calls++
	if f.err != nil {
		return lifecycle.Lifecycle{}, f.err
	}
	lc := lifecycle.Lifecycle{Domain: domain, State: f.state, Source: f.name, Statuses: f.flags}
	if f.name.Authoritative() {
		reg := time.Date(2026, 10, 16, 0, 0, 0, 0, time.UTC)
		lc.RegisteredAt = &reg
	}
	return lc, nil
}

// Issue 11: a Domainr-first chain asks RDAP/WHOIS when the caller wants
// the authoritative facts (and then only them, unless they all fail), or
// when Domainr's flags changed since the last night it was asked.
func TestChainLookupWith(t *testing.T) {
	const (
		R  = lifecycle.Registered
		A  = lifecycle.Available
		RD = lifecycle.Redemption
	)
	active := []string{"active"}
	cases := []struct {
		name           string
		domainr, rdap  flagged
		whoisErr       error
		want           Want
		state          lifecycle.State
		source         lifecycle.Source
		corroborated   bool
		domainrCalls   int
		rdapCalls      int
		evidence       int
		registeredDate bool
	}{
		{"plain: active ends the chain", flagged{state: R, flags: active}, flagged{state: R}, nil, Want{}, R, "domainr", false, 1, 0, 1, false},
		{"same flags: active ends the chain", flagged{state: R, flags: []string{"ACTIVE"}}, flagged{state: R}, nil, Want{PrevFlags: active}, R, "domainr", false, 1, 0, 1, false},
		{"authoritative wanted: rdap only", flagged{state: R, flags: active}, flagged{state: R}, nil, Want{Authoritative: true}, R, "rdap", true, 0, 1, 1, true},
		{"authoritative wanted, rdap and whois fail: domainr answers", flagged{state: R, flags: active}, flagged{err: errReset}, errReset, Want{Authoritative: true}, R, "domainr", false, 1, 1, 3, false},
		{"authoritative wanted, all fail but domainr decisive: not asked twice", flagged{state: A, flags: []string{"inactive"}}, flagged{err: errReset}, errReset, Want{Authoritative: true}, A, "domainr", false, 1, 1, 3, false},
		{"flags changed: rdap asked, its answer wins", flagged{state: R, flags: active}, flagged{state: R}, nil, Want{PrevFlags: []string{"undelegated", "inactive"}}, R, "rdap", true, 1, 1, 2, true},
		{"flags changed, rdap overrules", flagged{state: R, flags: active}, flagged{state: RD}, nil, Want{PrevFlags: []string{"undelegated", "active"}}, RD, "rdap", true, 1, 1, 2, true},
		{"flags changed, authority fails: domainr stands", flagged{state: R, flags: active}, flagged{err: errReset}, errReset, Want{PrevFlags: []string{"inactive"}}, R, "domainr", false, 1, 1, 3, false},
		{"corroborate: both asked, rdap wins", flagged{state: R, flags: active}, flagged{state: R}, nil, Want{Corroborate: true}, R, "rdap", true, 1, 1, 2, true},
		{"decisive, flags unchanged: still corroborated", flagged{state: A, flags: []string{"inactive"}}, flagged{state: A}, nil, Want{PrevFlags: []string{"inactive"}}, A, "rdap", true, 1, 1, 2, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, r := tc.domainr, tc.rdap
			d.name, r.name = lifecycle.SourceDomainr, lifecycle.SourceRDAP
			w := &flagged{name: lifecycle.SourceWHOIS, state: R, err: tc.whoisErr}
			c, err := NewChain([]Provider{&d, &r, w}, ChainOptions{Now: func() time.Time { return time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC) }})
			if err != nil {
				t.Fatal(err)
			}
			lc, err := LookupWith(context.Background(), c, "zoeschmidt.com", tc.want)
			if err != nil {
				t.Fatal(err)
			}
			if lc.State != tc.state || lc.Source != tc.source || lc.Corroborated != tc.corroborated {
				t.Errorf("got %s from %s corroborated=%v, want %s from %s corroborated=%v", lc.State, lc.Source, lc.Corroborated, tc.state, tc.source, tc.corroborated)
			}
			if d.calls != tc.domainrCalls || r.calls != tc.rdapCalls {
				t.Errorf("asked domainr %d, rdap %d times; want %d, %d", d.calls, r.calls, tc.domainrCalls, tc.rdapCalls)
			}
			if len(lc.Evidence) != tc.evidence {
				t.Errorf("evidence %d entries, want %d: %+v", len(lc.Evidence), tc.evidence, lc.Evidence)
			}
			if (lc.RegisteredAt != nil) != tc.registeredDate {
				t.Errorf("registered_at %v, want set=%v", lc.RegisteredAt, tc.registeredDate)
			}
		})
	}
	// A plain provider takes no Want: LookupWith is its Lookup.
	p := &flagged{name: lifecycle.SourceDomainr, state: R, flags: active}
	if lc, err := LookupWith(context.Background(), p, "a.com", Want{Authoritative: true}); err != nil || lc.Source != lifecycle.SourceDomainr || p.calls != 1 {
		t.Errorf("plain provider: %+v %v (calls %d)", lc, err, p.calls)
	}
}

func TestStatusFirst(t *testing.T) {
	for _, tc := range []struct {
		chain []lifecycle.Source
		want  bool
	}{
		{[]lifecycle.Source{"domainr", "rdap", "whois"}, true},
		{[]lifecycle.Source{"fastly", "domainr", "whois"}, true},
		{[]lifecycle.Source{"rdap", "whois"}, false},
		{[]lifecycle.Source{"rdap", "domainr"}, false},
		{[]lifecycle.Source{"domainr"}, false},
		{nil, false},
	} {
		if got := StatusFirst(tc.chain); got != tc.want {
			t.Errorf("StatusFirst(%v) = %v, want %v", tc.chain, got, tc.want)
		}
	}
	if got := NormalFlags([]string{"Active", " undelegated", "active", ""}); !slices.Equal(got, []string{"active", "undelegated"}) {
		t.Errorf("NormalFlags: %q", got)
	}
}
