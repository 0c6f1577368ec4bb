package lifecycle

import (
	"slices"
	"testing"
	"time"
)

func tp(s string) *time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return &t
}

func TestPolicyDecide(t *testing.T) {
	asOf := time.Date(2026, 6, 10, 3, 0, 0, 0, time.UTC)
	seen := tp("2026-01-01")
	p := DefaultPolicy
	for _, tc := range []struct {
		name string
		f    Facts
		want Decision
	}{
		{"invalid address", Facts{InvalidAddress: true, Checked: true, State: Available, Source: SourceRDAP}, Decision{ActionUnknown, ReasonInvalidAddr}},
		{"not checked", Facts{}, Decision{ActionUnknown, ReasonNotChecked}},
		{"unknown", Facts{Checked: true, State: Unknown, Source: SourceRDAP, RegisteredAt: tp("2026-05-01"), FirstSeen: seen}, Decision{ActionUnknown, ReasonUnknown}},
		{"empty state", Facts{Checked: true}, Decision{ActionUnknown, ReasonUnknown}},
		{"rdap available", Facts{Checked: true, State: Available, Source: SourceRDAP}, Decision{ActionUnverify, ReasonAvailable}},
		{"whois pending delete", Facts{Checked: true, State: PendingDelete, Source: SourceWHOIS}, Decision{ActionUnverify, ReasonPendingDelete}},
		{"domainr redemption unconfirmed", Facts{Checked: true, State: Redemption, Source: SourceDomainr, DecisiveNights: 1}, Decision{ActionWatch, ReasonAwaitConfirm}},
		{"domainr redemption second night", Facts{Checked: true, State: Redemption, Source: SourceDomainr, DecisiveNights: 2}, Decision{ActionUnverify, ReasonRedemption}},
		{"fastly available corroborated", Facts{Checked: true, State: Available, Source: SourceFastly, Corroborated: true}, Decision{ActionUnverify, ReasonAvailable}},
		{"expiring", Facts{Checked: true, State: Expiring, Source: SourceRDAP}, Decision{ActionWatch, ReasonExpiring}},
		{"grace", Facts{Checked: true, State: Grace, Source: SourceRDAP}, Decision{ActionWatch, ReasonGrace}},
		{"registered near expiry", Facts{Checked: true, State: Registered, Source: SourceRDAP, ExpiresAt: tp("2026-07-09")}, Decision{ActionWatch, ReasonExpiring}},
		{"registered just past the window", Facts{Checked: true, State: Registered, Source: SourceRDAP, ExpiresAt: tp("2026-07-11")}, Decision{ActionKeep, ReasonRegistered}},
		{"reserved", Facts{Checked: true, State: Reserved}, Decision{ActionKeep, ReasonReserved}},
		{"invalid name", Facts{Checked: true, State: Invalid}, Decision{ActionKeep, ReasonInvalidName}},
		{"unheard-of state", Facts{Checked: true, State: "bogus"}, Decision{ActionUnknown, ReasonUnknown}},
		{"reregistered after first seen", Facts{Checked: true, State: Registered, Source: SourceRDAP, RegisteredAt: tp("2026-03-01"), FirstSeen: seen}, Decision{ActionUnverify, ReasonReregistered}},
		{"registered at first seen", Facts{Checked: true, State: Registered, Source: SourceRDAP, RegisteredAt: seen, FirstSeen: seen}, Decision{ActionKeep, ReasonRegistered}},
		{"no first seen: no re-registration", Facts{Checked: true, State: Registered, Source: SourceRDAP, RegisteredAt: tp("2026-03-01")}, Decision{ActionKeep, ReasonRegistered}},
		{"registration date changed after first seen", Facts{Checked: true, State: Registered, Source: SourceRDAP, RegisteredAt: tp("2000-01-01"),
			PreviousRegisteredAt: tp("1999-01-01"), RegisteredAtChangedAt: tp("2026-02-01"), FirstSeen: seen}, Decision{ActionUnverify, ReasonReregistered}},
		{"registration date changed before first seen", Facts{Checked: true, State: Registered, Source: SourceRDAP, RegisteredAt: tp("2000-01-01"),
			PreviousRegisteredAt: tp("1999-01-01"), RegisteredAtChangedAt: tp("2025-02-01"), FirstSeen: seen}, Decision{ActionKeep, ReasonRegistered}},
		{"changed_at without a previous date", Facts{Checked: true, State: Registered, Source: SourceRDAP, RegisteredAt: tp("2000-01-01"),
			RegisteredAtChangedAt: tp("2026-02-01"), FirstSeen: seen}, Decision{ActionKeep, ReasonRegistered}},
		{"reregistered outranks decisive", Facts{Checked: true, State: Redemption, Source: SourceDomainr, RegisteredAt: tp("2026-03-01"), FirstSeen: seen}, Decision{ActionUnverify, ReasonReregistered}},
	} {
		if got := p.Decide(tc.f, asOf); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestPolicyConfirmNightsAndWindow(t *testing.T) {
	asOf := time.Date(2026, 6, 10, 0, 0, 0, 0, time.UTC)
	p := Policy{Name: PolicyCorroborated, WatchWindow: 7 * 24 * time.Hour, ConfirmNights: 3}
	f := Facts{Checked: true, State: Available, Source: SourceDomainr, DecisiveNights: 2}
	if d := p.Decide(f, asOf); d.Action != ActionWatch {
		t.Errorf("2 of 3 nights: %v", d)
	}
	f.DecisiveNights = 3
	if d := p.Decide(f, asOf); d.Action != ActionUnverify {
		t.Errorf("3 of 3 nights: %v", d)
	}
	reg := Facts{Checked: true, State: Registered, Source: SourceRDAP, ExpiresAt: tp("2026-06-20")}
	if d := p.Decide(reg, asOf); d.Action != ActionKeep {
		t.Errorf("expiry 10 days out, 7-day window: %v", d)
	}
	reg.ExpiresAt = tp("2026-06-17")
	if d := p.Decide(reg, asOf); d.Action != ActionWatch {
		t.Errorf("expiry 7 days out, 7-day window: %v", d)
	}
}

func TestPolicyPyPI(t *testing.T) {
	p := Policy{Name: PolicyPyPI, ConfirmNights: 1}
	asOf := time.Now()
	for _, tc := range []struct {
		flags []string
		want  Decision
	}{
		{nil, Decision{ActionUnknown, ReasonNotChecked}},
		{[]string{"active"}, Decision{ActionKeep, ReasonRegistered}},
		{[]string{"active", "undelegated"}, Decision{ActionUnverify, ReasonAvailable}},
		{[]string{"inactive"}, Decision{ActionUnverify, ReasonAvailable}},
		{[]string{"expiring"}, Decision{ActionUnverify, ReasonRedemption}},
		{[]string{"deleting", "inactive"}, Decision{ActionUnverify, ReasonPendingDelete}},
		{[]string{"unknown"}, Decision{ActionUnverify, ReasonAvailable}},
		{[]string{"reserved"}, Decision{ActionKeep, ReasonRegistered}},
	} {
		f := Facts{Checked: true, State: Registered, Source: SourceDomainr, Flags: tc.flags}
		if got := p.Decide(f, asOf); got != tc.want {
			t.Errorf("flags %v: %v, want %v", tc.flags, got, tc.want)
		}
	}
	// Invalid addresses are never un-verified, whatever the preset.
	if d := p.Decide(Facts{InvalidAddress: true, Flags: []string{"inactive"}}, asOf); d.Action != ActionUnknown {
		t.Errorf("invalid address under pypi: %v", d)
	}
}

func TestBestEffortFlags(t *testing.T) {
	got := BestEffortFlags(SourceRDAP, []string{"inactive"}, []Evidence{
		{Source: SourceDomainr, Statuses: []string{"UNDELEGATED  active", "active"}},
		{Source: SourceFastly, Statuses: []string{"parked"}},
		{Source: SourceWHOIS, Statuses: []string{"deleting"}},
	})
	want := []string{"active", "parked", "undelegated"}
	if !slices.Equal(got, want) {
		t.Errorf("flags %v, want %v (RDAP/WHOIS statuses are not Domainr flags)", got, want)
	}
	if got := BestEffortFlags(SourceDomainr, []string{"expiring"}, nil); !slices.Equal(got, []string{"expiring"}) {
		t.Errorf("best-effort source's own statuses: %v", got)
	}
}

func TestPolicyValidate(t *testing.T) {
	for _, p := range []Policy{{Name: "strict", ConfirmNights: 1}, {Name: PolicyPyPI}, {Name: PolicyCorroborated, ConfirmNights: 1, WatchWindow: -1}} {
		if err := p.Validate(); err == nil {
			t.Errorf("%+v validated", p)
		}
	}
	if err := DefaultPolicy.Validate(); err != nil {
		t.Error(err)
	}
}
