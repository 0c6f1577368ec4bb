package lifecycle

import (
	"strings"
	"testing"
	"time"
)

// ruleCase is one address's facts, the rule of the table that must decide
// it, and the decision written out by hand (not read from the table).
type ruleCase struct {
	name string
	f    Facts
	rule string
	want Decision
}

// TestRules checks each policy's table against hand-written expectations:
// every case is decided by the rule named and makes the decision given,
// and every rule of the table decides at least one case.
func TestRules(t *testing.T) {
	asOf := time.Date(2026, 6, 10, 3, 0, 0, 0, time.UTC)
	seen := tp("2026-01-01")
	checked := func(f Facts) Facts { f.Checked = true; return f }
	corroborated := []ruleCase{
		{"invalid address, decisive domain", Facts{InvalidAddress: true, Checked: true, State: Available, Source: SourceRDAP},
			"invalid_address", Decision{ActionUnknown, ReasonInvalidAddr}},
		{"never looked up", Facts{State: Available, Source: SourceRDAP}, "not_checked", Decision{ActionUnknown, ReasonNotChecked}},
		{"unknown with a newer registration", checked(Facts{State: Unknown, RegisteredAt: tp("2026-05-01"), FirstSeen: seen}),
			"unknown_state", Decision{ActionUnknown, ReasonUnknown}},
		{"no state", checked(Facts{}), "unknown_state", Decision{ActionUnknown, ReasonUnknown}},
		{"registered after first seen", checked(Facts{State: Registered, Source: SourceRDAP, RegisteredAt: tp("2026-03-01"), FirstSeen: seen}),
			"reregistered", Decision{ActionUnverify, ReasonReregistered}},
		{"registration date changed after first seen", checked(Facts{State: Registered, RegisteredAt: tp("2000-01-01"),
			PreviousRegisteredAt: tp("1999-01-01"), RegisteredAtChangedAt: tp("2026-02-01"), FirstSeen: seen}),
			"reregistered", Decision{ActionUnverify, ReasonReregistered}},
		{"re-registration outranks a stale decisive state", checked(Facts{State: Redemption, Source: SourceRDAP,
			RegisteredAt: tp("2026-06-01"), FirstSeen: seen, ReverifiedAt: tp("2026-05-01"), CheckedAt: tp("2026-04-01")}),
			"reregistered", Decision{ActionUnverify, ReasonReregistered}},
		{"registered before the re-verification", checked(Facts{State: Registered, Source: SourceRDAP,
			RegisteredAt: tp("2026-03-01"), FirstSeen: seen, ReverifiedAt: tp("2026-04-01")}),
			"registered", Decision{ActionKeep, ReasonRegistered}},
		{"decisive, looked up before the re-verification", checked(Facts{State: Available, Source: SourceRDAP,
			CheckedAt: tp("2026-06-01"), ReverifiedAt: tp("2026-06-05")}),
			"reverified_awaiting_lookup", Decision{ActionWatch, ReasonAwaitLookup}},
		{"decisive, never looked up since the re-verification", checked(Facts{State: PendingDelete, Source: SourceWHOIS,
			ReverifiedAt: tp("2026-06-05")}), "reverified_awaiting_lookup", Decision{ActionWatch, ReasonAwaitLookup}},
		{"rdap available", checked(Facts{State: Available, Source: SourceRDAP}), "confirmed_available", Decision{ActionUnverify, ReasonAvailable}},
		{"available, looked up after the re-verification", checked(Facts{State: Available, Source: SourceRDAP,
			CheckedAt: tp("2026-06-06"), ReverifiedAt: tp("2026-06-05")}), "confirmed_available", Decision{ActionUnverify, ReasonAvailable}},
		{"whois pending delete", checked(Facts{State: PendingDelete, Source: SourceWHOIS}),
			"confirmed_pending_delete", Decision{ActionUnverify, ReasonPendingDelete}},
		{"fastly pending delete corroborated", checked(Facts{State: PendingDelete, Source: SourceFastly, Corroborated: true}),
			"confirmed_pending_delete", Decision{ActionUnverify, ReasonPendingDelete}},
		{"domainr redemption, second night", checked(Facts{State: Redemption, Source: SourceDomainr, DecisiveNights: 2}),
			"confirmed_redemption", Decision{ActionUnverify, ReasonRedemption}},
		{"domainr redemption, first night", checked(Facts{State: Redemption, Source: SourceDomainr, DecisiveNights: 1}),
			"awaiting_confirmation", Decision{ActionWatch, ReasonAwaitConfirm}},
		{"cache answer, no source", checked(Facts{State: Available, Source: SourceCache}),
			"awaiting_confirmation", Decision{ActionWatch, ReasonAwaitConfirm}},
		{"expiring", checked(Facts{State: Expiring, Source: SourceRDAP}), "expiring", Decision{ActionWatch, ReasonExpiring}},
		{"grace", checked(Facts{State: Grace, Source: SourceRDAP}), "grace", Decision{ActionWatch, ReasonGrace}},
		// The mail path.
		{"own domain unknown, MX domain available", checked(Facts{State: Unknown, MX: MailFacts{State: Available}}),
			"unknown_state", Decision{ActionUnknown, ReasonUnknown}},
		{"own domain re-registered outranks the mail path", checked(Facts{State: Registered, RegisteredAt: tp("2026-03-01"), FirstSeen: seen,
			NS: MailFacts{State: Available}}), "reregistered", Decision{ActionUnverify, ReasonReregistered}},
		{"own domain available outranks the mail path", checked(Facts{State: Available, Source: SourceRDAP, MX: MailFacts{State: Redemption}}),
			"confirmed_available", Decision{ActionUnverify, ReasonAvailable}},
		{"NS domain re-registered after first seen", checked(Facts{State: Registered, FirstSeen: seen,
			NS: MailFacts{ReregisteredAt: tp("2026-02-01")}, MX: MailFacts{State: Available}}),
			"ns_reregistered", Decision{ActionUnverify, ReasonNSReregistered}},
		{"NS domain re-registered before first seen", checked(Facts{State: Registered, FirstSeen: seen,
			NS: MailFacts{ReregisteredAt: tp("2025-12-01")}}), "registered", Decision{ActionKeep, ReasonRegistered}},
		{"NS domain re-registered, no first sighting", checked(Facts{State: Registered, NS: MailFacts{ReregisteredAt: tp("2026-02-01")}}),
			"registered", Decision{ActionKeep, ReasonRegistered}},
		{"NS domain re-registered before the re-verification", checked(Facts{State: Registered, FirstSeen: seen, ReverifiedAt: tp("2026-03-01"),
			NS: MailFacts{ReregisteredAt: tp("2026-02-01")}}), "registered", Decision{ActionKeep, ReasonRegistered}},
		{"NS domain available", checked(Facts{State: Registered, NS: MailFacts{State: Available, StateCheckedAt: tp("2026-06-09")}}),
			"ns_available", Decision{ActionUnverify, ReasonNSAvailable}},
		{"NS domain pending delete", checked(Facts{State: Registered, NS: MailFacts{State: PendingDelete}}),
			"ns_pending_delete", Decision{ActionUnverify, ReasonNSPendingDelete}},
		{"NS domain in redemption outranks the MX domain", checked(Facts{State: Registered, NS: MailFacts{State: Redemption},
			MX: MailFacts{State: Available, ReregisteredAt: tp("2026-05-01")}, FirstSeen: seen}),
			"ns_redemption", Decision{ActionUnverify, ReasonNSRedemption}},
		{"MX domain re-registered", checked(Facts{State: Expiring, FirstSeen: seen, MX: MailFacts{ReregisteredAt: tp("2026-05-01")}}),
			"mx_reregistered", Decision{ActionUnverify, ReasonMXReregistered}},
		{"MX domain available, looked up after the re-verification", checked(Facts{State: Registered, ReverifiedAt: tp("2026-06-05"),
			MX: MailFacts{State: Available, StateCheckedAt: tp("2026-06-05")}}), "mx_available", Decision{ActionUnverify, ReasonMXAvailable}},
		{"MX domain pending delete", checked(Facts{State: Registered, MX: MailFacts{State: PendingDelete}}),
			"mx_pending_delete", Decision{ActionUnverify, ReasonMXPendingDelete}},
		{"MX domain in redemption", checked(Facts{State: Grace, MX: MailFacts{State: Redemption}}),
			"mx_redemption", Decision{ActionUnverify, ReasonMXRedemption}},
		{"own domain unconfirmed outranks a watched dependency", checked(Facts{State: Available, Source: SourceDomainr, NS: MailFacts{Watch: true}}),
			"awaiting_confirmation", Decision{ActionWatch, ReasonAwaitConfirm}},
		{"NS domain on watch", checked(Facts{State: Registered, NS: MailFacts{Watch: true}, MX: MailFacts{Watch: true}}),
			"ns_watch", Decision{ActionWatch, ReasonNSWatch}},
		{"NS domain available, looked up before the re-verification", checked(Facts{State: Registered, ReverifiedAt: tp("2026-06-05"),
			NS: MailFacts{State: Available, StateCheckedAt: tp("2026-06-01")}}), "ns_watch", Decision{ActionWatch, ReasonNSWatch}},
		{"MX domain on watch outranks the own expiry", checked(Facts{State: Expiring, MX: MailFacts{Watch: true}}),
			"mx_watch", Decision{ActionWatch, ReasonMXWatch}},
		{"MX domain available, never looked up since the re-verification", checked(Facts{State: Registered, ReverifiedAt: tp("2026-06-05"),
			MX: MailFacts{State: Available}}), "mx_watch", Decision{ActionWatch, ReasonMXWatch}},
		{"registered, expiry inside the window", checked(Facts{State: Registered, ExpiresAt: tp("2026-07-09")}),
			"registered_expiring", Decision{ActionWatch, ReasonExpiring}},
		{"registered, expiry at the horizon", checked(Facts{State: Registered, ExpiresAt: ptr(asOf.Add(30 * 24 * time.Hour))}),
			"registered_expiring", Decision{ActionWatch, ReasonExpiring}},
		{"registered, expiry just past the window", checked(Facts{State: Registered, ExpiresAt: tp("2026-07-11")}),
			"registered", Decision{ActionKeep, ReasonRegistered}},
		{"registered, no expiry", checked(Facts{State: Registered}), "registered", Decision{ActionKeep, ReasonRegistered}},
		{"reserved", checked(Facts{State: Reserved}), "reserved", Decision{ActionKeep, ReasonReserved}},
		{"invalid name", checked(Facts{State: Invalid}), "invalid_name", Decision{ActionKeep, ReasonInvalidName}},
		{"unheard-of state", checked(Facts{State: "bogus"}), "otherwise", Decision{ActionUnknown, ReasonUnknown}},
	}
	flags := func(fl ...string) Facts {
		return Facts{Checked: true, State: Registered, Source: SourceDomainr, Flags: fl}
	}
	pypi := []ruleCase{
		{"invalid address", Facts{InvalidAddress: true, Flags: []string{"inactive"}}, "invalid_address", Decision{ActionUnknown, ReasonInvalidAddr}},
		{"never looked up", Facts{Flags: []string{"inactive"}}, "not_checked", Decision{ActionUnknown, ReasonNotChecked}},
		{"no best-effort answer", Facts{Checked: true, State: Available, Source: SourceRDAP}, "no_best_effort_answer", Decision{ActionUnknown, ReasonNotChecked}},
		{"deleting outranks inactive", flags("deleting", "inactive"), "flag_deleting", Decision{ActionUnverify, ReasonPendingDelete}},
		{"expiring", flags("expiring"), "flag_expiring", Decision{ActionUnverify, ReasonRedemption}},
		{"inactive", flags("inactive"), "flag_inactive", Decision{ActionUnverify, ReasonAvailable}},
		{"active undelegated", flags("active", "undelegated"), "flag_undelegated", Decision{ActionUnverify, ReasonAvailable}},
		{"unknown", flags("unknown"), "flag_unknown", Decision{ActionUnverify, ReasonAvailable}},
		{"active, MX domain available: PyPI does not look", Facts{Checked: true, State: Registered, Source: SourceDomainr, Flags: []string{"active"},
			MX: MailFacts{State: Available}, NS: MailFacts{ReregisteredAt: tp("2026-05-01")}, FirstSeen: seen}, "no_flag", Decision{ActionKeep, ReasonRegistered}},
		{"active, re-registered: PyPI does not see it", Facts{Checked: true, State: Registered, Source: SourceDomainr, Flags: []string{"active"},
			RegisteredAt: tp("2026-05-01"), FirstSeen: seen}, "no_flag", Decision{ActionKeep, ReasonRegistered}},
	}
	for _, tc := range []struct {
		p     Policy
		cases []ruleCase
	}{
		{DefaultPolicy, corroborated},
		{NewPolicy(PolicyPyPI, 0, 1), pypi},
	} {
		rules := tc.p.Rules(asOf)
		hit := map[string]bool{}
		for _, c := range tc.cases {
			r := tc.p.DecidingRule(c.f, asOf)
			hit[r.Name] = true
			if r.Name != c.rule || r.Decision != c.want {
				t.Errorf("%s: %q: rule %s %v, want rule %s %v", tc.p.Name, c.name, r.Name, r.Decision, c.rule, c.want)
			}
			if d := tc.p.Decide(c.f, asOf); d != c.want {
				t.Errorf("%s: %q: Decide %v, want %v", tc.p.Name, c.name, d, c.want)
			}
		}
		for _, r := range rules {
			if !hit[r.Name] {
				t.Errorf("%s: rule %s decides no case", tc.p.Name, r.Name)
			}
		}
	}
}

// TestRuleTablesWellFormed: names unique, every rule complete, the last
// rule always true in Go and SQL (classify's CASE has no ELSE), and no
// table beyond what classify's rule number holds.
func TestRuleTablesWellFormed(t *testing.T) {
	asOf := time.Date(2026, 6, 10, 3, 0, 0, 0, time.UTC)
	for _, p := range []Policy{DefaultPolicy, NewPolicy(PolicyPyPI, time.Hour, 3)} {
		rules := p.Rules(asOf)
		if len(rules) > MaxRules {
			t.Errorf("%s: %d rules, at most %d", p.Name, len(rules), MaxRules)
		}
		names := map[string]bool{}
		for _, r := range rules {
			if r.Name == "" || r.SQL == "" || r.Holds == nil || r.Action == "" || r.Reason == "" {
				t.Errorf("%s: incomplete rule %+v", p.Name, r)
			}
			if names[r.Name] {
				t.Errorf("%s: rule name %s twice", p.Name, r.Name)
			}
			names[r.Name] = true
		}
		last := rules[len(rules)-1]
		if last.SQL != "true" || !last.Holds(Facts{}) {
			t.Errorf("%s: the last rule %s does not always hold", p.Name, last.Name)
		}
	}
}

// TestRuleSQL: conditions are rendered from the constants and the
// policy's parameters.
func TestRuleSQL(t *testing.T) {
	asOf := time.Date(2026, 6, 10, 3, 0, 0, 0, time.UTC)
	p := NewPolicy(PolicyCorroborated, 7*24*time.Hour, 3)
	sql := map[string]string{}
	for _, r := range p.Rules(asOf) {
		sql[r.Name] = r.SQL
	}
	for name, want := range map[string]string{
		"unknown_state":         "state IS NULL OR state IN ('', 'unknown')",
		"awaiting_confirmation": "state IN ('available', 'pending_delete', 'redemption')",
		"confirmed_redemption":  "state = 'redemption' AND (source IN ('rdap', 'whois') OR coalesce(corroborated, false) OR coalesce(decisive_nights, 0) >= 3)",
		"registered_expiring":   "state = 'registered' AND expires_at IS NOT NULL AND expires_at <= TIMESTAMPTZ '2026-06-17 03:00:00+00'",
	} {
		if sql[name] != want {
			t.Errorf("%s: %s, want %s", name, sql[name], want)
		}
	}
	for name, want := range map[string]string{
		"ns_reregistered":   "anchor IS NOT NULL AND ns_rereg_at > anchor",
		"mx_pending_delete": "mx_state = 'pending_delete' AND (reverified_at IS NULL OR mx_state_checked_at >= reverified_at)",
		"ns_watch": "coalesce(ns_watch, false) OR (ns_state IN ('available', 'pending_delete', 'redemption') AND reverified_at IS NOT NULL" +
			" AND (ns_state_checked_at IS NULL OR ns_state_checked_at < reverified_at))",
	} {
		if sql[name] != want {
			t.Errorf("%s: %s, want %s", name, sql[name], want)
		}
	}
	dep := p.MailDepSQL(asOf)
	if want := "CASE WHEN state IN ('available', 'pending_delete', 'redemption') AND (coalesce(source IN ('rdap', 'whois'), false) OR coalesce(corroborated, false)) THEN state END"; dep.ConfirmedState != want {
		t.Errorf("MailDepSQL.ConfirmedState: %s, want %s", dep.ConfirmedState, want)
	}
	if !strings.Contains(dep.Watch, "expires_at <= TIMESTAMPTZ '2026-06-17 03:00:00+00'") {
		t.Errorf("MailDepSQL.Watch does not bind the horizon: %s", dep.Watch)
	}
	if got := SQLString("it's"); got != "'it''s'" {
		t.Errorf("SQLString: %s", got)
	}
	if got := SQLTimestamp(time.Date(2026, 1, 2, 3, 4, 5, 6789000, time.FixedZone("x", 3600))); got != "TIMESTAMPTZ '2026-01-02 02:04:05.006789+00'" {
		t.Errorf("SQLTimestamp: %s", got)
	}
}

func ptr[T any](v T) *T { return &v }

// TestMailFactsOf: the mail facts of one role, folded from its links.
func TestMailFactsOf(t *testing.T) {
	asOf := time.Date(2026, 6, 10, 3, 0, 0, 0, time.UTC)
	p := DefaultPolicy
	link := tp("2026-01-02")
	dep := func(role, host, dom string, st State, src Source) MailDep {
		return MailDep{Role: role, Host: host, Dep: dom, FirstSeen: link, State: st, Source: src, CheckedAt: tp("2026-06-09")}
	}
	for _, tc := range []struct {
		name string
		role string
		deps []MailDep
		want MailFacts
	}{
		{"none", RoleMX, nil, MailFacts{}},
		{"rdap available", RoleMX, []MailDep{dep(RoleMX, "mx1.smallmailhost.net", "smallmailhost.net", Available, SourceRDAP)},
			MailFacts{State: Available, StateCheckedAt: tp("2026-06-09"), Host: "mx1.smallmailhost.net", Dep: "smallmailhost.net"}},
		{"other role ignored", RoleNS, []MailDep{dep(RoleMX, "mx1.smallmailhost.net", "smallmailhost.net", Available, SourceRDAP)}, MailFacts{}},
		{"most severe wins", RoleNS, []MailDep{
			dep(RoleNS, "ns1.a.com", "a.com", Redemption, SourceWHOIS),
			func() MailDep {
				d := dep(RoleNS, "ns2.b.com", "b.com", PendingDelete, SourceDomainr)
				d.Corroborated = true
				return d
			}(),
			dep(RoleNS, "ns3.c.com", "c.com", Available, SourceDomainr),
		}, MailFacts{State: PendingDelete, StateCheckedAt: tp("2026-06-09"), Watch: true, Host: "ns2.b.com", Dep: "b.com"}},
		{"unknown says nothing", RoleMX, []MailDep{func() MailDep {
			d := dep(RoleMX, "mx.x.net", "x.net", Unknown, SourceRDAP)
			d.RegisteredAt = tp("2026-05-01")
			return d
		}()}, MailFacts{}},
		{"registered before the link", RoleMX, []MailDep{func() MailDep {
			d := dep(RoleMX, "mx.x.net", "x.net", Registered, SourceRDAP)
			d.RegisteredAt = tp("2025-05-01")
			return d
		}()}, MailFacts{}},
		{"registered after the link, the change noticed later: the registry's date", RoleMX, []MailDep{func() MailDep {
			d := dep(RoleMX, "mx.x.net", "x.net", Registered, SourceRDAP)
			d.RegisteredAt, d.PreviousRegisteredAt, d.RegisteredAtChangedAt = tp("2026-01-20"), tp("2020-01-01"), tp("2026-01-22")
			return d
		}()}, MailFacts{ReregisteredAt: tp("2026-01-20"), Host: "mx.x.net", Dep: "x.net"}},
		{"registered, expiring inside the window", RoleNS, []MailDep{func() MailDep {
			d := dep(RoleNS, "ns.x.net", "x.net", Registered, SourceRDAP)
			d.ExpiresAt = tp("2026-06-30")
			return d
		}()}, MailFacts{Watch: true, Host: "ns.x.net", Dep: "x.net"}},
		{"grace", RoleNS, []MailDep{dep(RoleNS, "ns.x.net", "x.net", Grace, SourceRDAP)}, MailFacts{Watch: true, Host: "ns.x.net", Dep: "x.net"}},
	} {
		got := p.MailFactsOf(tc.role, tc.deps, asOf)
		if got.State != tc.want.State || got.Watch != tc.want.Watch || got.Host != tc.want.Host || got.Dep != tc.want.Dep || !sameTime(got.StateCheckedAt, tc.want.StateCheckedAt) || !sameTime(got.ReregisteredAt, tc.want.ReregisteredAt) {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func sameTime(a, b *time.Time) bool { return (a == nil) == (b == nil) && (a == nil || a.Equal(*b)) }
