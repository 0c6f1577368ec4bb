package lifecycle

import (
	"errors"
	"slices"
	"testing"
	"time"
)

var asOf = time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)

func at(days float64) *time.Time {
	t := asOf.Add(time.Duration(days * 24 * float64(time.Hour)))
	return &t
}

func TestFromDomainr(t *testing.T) {
	tests := []struct {
		status    string
		want      State
		delegated *bool
		wantErr   bool
	}{
		{"active", Registered, nil, false},
		{"marketed priced transferable active", Registered, nil, false},
		{"parked active", Registered, nil, false},
		{"undelegated inactive", Available, new(false), false},
		{"inactive", Available, nil, false},
		{"premium inactive", Available, nil, false},
		{"deleting", PendingDelete, nil, false},
		{"undelegated deleting", PendingDelete, new(false), false},
		{"active deleting", PendingDelete, nil, false},                 // deleting before active
		{"expiring", Redemption, nil, false},                           // Domainr expiring = redemption
		{"undelegated active expiring", Redemption, new(false), false}, // expiring before active
		{"deleting expiring", PendingDelete, nil, false},               // deleting before expiring
		{"inactive active", Available, nil, false},                     // inactive before active
		{"reserved", Reserved, nil, false},
		{"undelegated reserved", Reserved, new(false), false},
		{"disallowed", Reserved, nil, false},
		{"claimed", Reserved, nil, false},
		{"dpml", Reserved, nil, false},
		{"active reserved", Registered, nil, false}, // active before reserved
		{"invalid", Invalid, nil, false},
		{"suffix", Invalid, nil, false},
		{"tld", Invalid, nil, false},
		{"zone", Invalid, nil, false},
		{"reserved zone", Reserved, nil, false}, // reserved before invalid
		{"unknown", Unknown, nil, false},
		{"undelegated", Unknown, new(false), false},
		{"undelegated unknown", Unknown, new(false), false},
		{"parked premium", Unknown, nil, false}, // annotations alone decide nothing
		{"", Unknown, nil, true},
		{"bogus", Unknown, nil, true},
		{"  ACTIVE  Parked ", Registered, nil, false}, // case and spacing
	}
	for _, tt := range tests {
		t.Run(tt.status, func(t *testing.T) {
			for _, src := range []Source{SourceDomainr, SourceFastly} {
				l := DefaultRules.FromDomainr("example.com", tt.status, src, asOf.In(time.FixedZone("X", 3600)))
				if l.State != tt.want {
					t.Errorf("%s %q: state %s, want %s", src, tt.status, l.State, tt.want)
				}
				if (l.Delegated == nil) != (tt.delegated == nil) || l.Delegated != nil && *l.Delegated != *tt.delegated {
					t.Errorf("%s %q: delegated %v, want %v", src, tt.status, l.Delegated, tt.delegated)
				}
				if (l.Error != "") != tt.wantErr {
					t.Errorf("%s %q: error %q, want error %v", src, tt.status, l.Error, tt.wantErr)
				}
				if l.Source != src || l.Domain != "example.com" || !l.AsOf.Equal(asOf) || l.AsOf.Location() != time.UTC {
					t.Errorf("%s %q: bad record %+v", src, tt.status, l)
				}
				if l.Statuses == nil {
					t.Errorf("Statuses is nil; want raw flags")
				}
			}
		})
	}
	l := DefaultRules.FromDomainr("example.com", "Marketed  active", SourceDomainr, asOf)
	if !slices.Equal(l.Statuses, []string{"Marketed", "active"}) {
		t.Errorf("Statuses = %q, want the raw flags", l.Statuses)
	}
}

func TestNormStatus(t *testing.T) {
	for _, s := range []string{"client hold", "clientHold", "clientHold https://icann.org/epp#clientHold",
		"CLIENT HOLD", "clientHold (https://www.icann.org/epp#clientHold)", "client-hold", " client_hold "} {
		if got := normStatus(s); got != "clienthold" {
			t.Errorf("normStatus(%q) = %q, want clienthold", s, got)
		}
	}
}

func TestFromRDAP(t *testing.T) {
	ev := func(action string, days float64) Event { return Event{Action: action, Date: *at(days)} }
	tests := []struct {
		name     string
		a        RDAPAnswer
		want     State
		reg, exp *time.Time
	}{
		{"404 available", RDAPAnswer{HTTPStatus: 404}, Available, nil, nil},
		{"404 wins over statuses", RDAPAnswer{HTTPStatus: 404, Statuses: []string{"active"}}, Available, nil, nil},
		{"active far expiry", RDAPAnswer{HTTPStatus: 200, Statuses: []string{"active"},
			Events: []Event{ev("registration", -1000), ev("expiration", 200)}}, Registered, at(-1000), at(200)},
		{"status 0 means 200", RDAPAnswer{Statuses: []string{"active"}}, Registered, nil, nil},
		{"no statuses no events", RDAPAnswer{HTTPStatus: 200}, Registered, nil, nil},
		{"expiring within window", RDAPAnswer{HTTPStatus: 200, Statuses: []string{"client transfer prohibited"},
			Events: []Event{ev("expiration", 29)}}, Expiring, nil, at(29)},
		{"expiring at window edge", RDAPAnswer{HTTPStatus: 200, Events: []Event{ev("expiration", 30)}}, Expiring, nil, at(30)},
		{"beyond window", RDAPAnswer{HTTPStatus: 200, Events: []Event{ev("expiration", 30.01)}}, Registered, nil, at(30.01)},
		{"expires exactly at as_of", RDAPAnswer{HTTPStatus: 200, Events: []Event{ev("expiration", 0)}}, Expiring, nil, at(0)},
		{"expiration passed", RDAPAnswer{HTTPStatus: 200, Statuses: []string{"active"},
			Events: []Event{ev("expiration", -1)}}, Grace, nil, at(-1)},
		{"auto renew period", RDAPAnswer{HTTPStatus: 200, Statuses: []string{"auto renew period"},
			Events: []Event{ev("expiration", 300)}}, Grace, nil, at(300)},
		{"hold with expiry passed", RDAPAnswer{HTTPStatus: 200, Statuses: []string{"client hold"},
			Events: []Event{ev("expiration", -10)}}, Grace, nil, at(-10)},
		{"hold before expiry is not grace", RDAPAnswer{HTTPStatus: 200, Statuses: []string{"server hold"},
			Events: []Event{ev("expiration", 100)}}, Registered, nil, at(100)},
		{"redemption period", RDAPAnswer{HTTPStatus: 200, Statuses: []string{"redemption period", "pending delete"},
			Events: []Event{ev("expiration", -40)}}, Redemption, nil, at(-40)},
		{"pending restore", RDAPAnswer{HTTPStatus: 200, Statuses: []string{"pending restore"}}, Redemption, nil, nil},
		{"pending delete alone", RDAPAnswer{HTTPStatus: 200, Statuses: []string{"pending delete"},
			Events: []Event{ev("expiration", -70)}}, PendingDelete, nil, at(-70)},
		{"pending delete beats auto renew", RDAPAnswer{HTTPStatus: 200, Statuses: []string{"auto renew period", "pending delete"}}, PendingDelete, nil, nil},
		{"EPP style statuses", RDAPAnswer{HTTPStatus: 200, Statuses: []string{"redemptionPeriod"}}, Redemption, nil, nil},
		{"latest registration event", RDAPAnswer{HTTPStatus: 200, Events: []Event{
			ev("registration", -3000), ev("reregistration", -20), ev("reinstantiation", -100), ev("expiration", 345)}},
			Registered, at(-20), at(345)},
		{"reinstantiation latest", RDAPAnswer{HTTPStatus: 200, Events: []Event{
			ev("registration", -3000), ev("reinstantiation", -5)}}, Registered, at(-5), nil},
		{"other HTTP status", RDAPAnswer{HTTPStatus: 500}, Unknown, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.a.Domain = "example.com"
			l := DefaultRules.FromRDAP(tt.a, asOf)
			if l.State != tt.want {
				t.Errorf("state %s, want %s", l.State, tt.want)
			}
			if !eqTime(l.RegisteredAt, tt.reg) {
				t.Errorf("registered_at %v, want %v", l.RegisteredAt, tt.reg)
			}
			if !eqTime(l.ExpiresAt, tt.exp) {
				t.Errorf("expires_at %v, want %v", l.ExpiresAt, tt.exp)
			}
			if l.Source != SourceRDAP || (l.State == Unknown) != (l.Error != "") {
				t.Errorf("record %+v", l)
			}
		})
	}
	// last changed, and times forced to UTC.
	lc := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("Y", -5*3600))
	l := DefaultRules.FromRDAP(RDAPAnswer{Domain: "x.com", Events: []Event{{"last changed", lc}, {"expiration", lc.AddDate(1, 0, 0)}}}, asOf)
	if l.LastChanged == nil || !l.LastChanged.Equal(lc) || l.LastChanged.Location() != time.UTC || l.ExpiresAt.Location() != time.UTC {
		t.Errorf("last_changed = %v, want %v in UTC", l.LastChanged, lc)
	}
}

func TestFromWHOIS(t *testing.T) {
	tests := []struct {
		name string
		a    WHOISAnswer
		want State
	}{
		{"not found", WHOISAnswer{NotFound: true}, Available},
		{"registered", WHOISAnswer{Statuses: []string{"clientTransferProhibited https://icann.org/epp#clientTransferProhibited"},
			CreatedAt: at(-900), ExpiresAt: at(100)}, Registered},
		{"no dates", WHOISAnswer{Statuses: []string{"ok"}}, Registered},
		{"expiring", WHOISAnswer{ExpiresAt: at(10)}, Expiring},
		{"expired", WHOISAnswer{ExpiresAt: at(-10)}, Grace},
		{"autoRenewPeriod", WHOISAnswer{Statuses: []string{"autoRenewPeriod https://icann.org/epp#autoRenewPeriod"}, ExpiresAt: at(360)}, Grace},
		{"clientHold expired", WHOISAnswer{Statuses: []string{"clientHold https://icann.org/epp#clientHold"}, ExpiresAt: at(-2)}, Grace},
		{"redemptionPeriod", WHOISAnswer{Statuses: []string{"redemptionPeriod https://icann.org/epp#redemptionPeriod", "pendingDelete https://icann.org/epp#pendingDelete"}}, Redemption},
		{"pendingRestore", WHOISAnswer{Statuses: []string{"pendingRestore"}}, Redemption},
		{"pendingDelete alone", WHOISAnswer{Statuses: []string{"pendingDelete https://icann.org/epp#pendingDelete"}, ExpiresAt: at(-70)}, PendingDelete},
		{"reserved", WHOISAnswer{Reserved: true}, Reserved},
		{"reserved beats registered dates", WHOISAnswer{Reserved: true, ExpiresAt: at(400)}, Reserved},
		{"pendingDelete beats reserved", WHOISAnswer{Reserved: true, Statuses: []string{"pendingDelete"}}, PendingDelete},
		{"not found beats everything", WHOISAnswer{NotFound: true, Reserved: true, Statuses: []string{"pendingDelete"}}, Available},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.a.Domain = "example.com"
			l := DefaultRules.FromWHOIS(tt.a, asOf)
			if l.State != tt.want {
				t.Errorf("state %s, want %s", l.State, tt.want)
			}
			if l.Source != SourceWHOIS || l.Error != "" {
				t.Errorf("record %+v", l)
			}
			if tt.want != Available && (!eqTime(l.RegisteredAt, tt.a.CreatedAt) || !eqTime(l.ExpiresAt, tt.a.ExpiresAt)) {
				t.Errorf("dates %v %v, want %v %v", l.RegisteredAt, l.ExpiresAt, tt.a.CreatedAt, tt.a.ExpiresAt)
			}
		})
	}
}

func TestWatchWindowConfigurable(t *testing.T) {
	r := Rules{WatchWindow: 60 * 24 * time.Hour}
	if got := r.FromWHOIS(WHOISAnswer{ExpiresAt: at(45)}, asOf).State; got != Expiring {
		t.Errorf("60-day window, 45 days out: %s, want expiring", got)
	}
	if got := DefaultRules.FromWHOIS(WHOISAnswer{ExpiresAt: at(45)}, asOf).State; got != Registered {
		t.Errorf("30-day window, 45 days out: %s, want registered", got)
	}
}

func TestFromError(t *testing.T) {
	l := FromError("example.com", SourceRDAP, errors.New("rdap example.com: timeout"), asOf)
	if l.State != Unknown || l.Error != "rdap example.com: timeout" || l.Source != SourceRDAP {
		t.Errorf("FromError = %+v", l)
	}
}

func eqTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}
