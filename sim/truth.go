package sim

import (
	"time"

	"github.com/lapse-dev/lapse/lifecycle"
)

// DomainTruth is the true state of one domain on a date.
type DomainTruth struct {
	Domain string
	Suffix string
	Kind   string // provider, company, personal, mail_host or dns_host
	State  lifecycle.State
	// RegisteredAt and ExpiresAt are what the registry publishes on the
	// date (nil when it publishes none: available names, DENIC expiry).
	RegisteredAt *time.Time
	ExpiresAt    *time.Time
	// Epoch is the registration covering the date (0 = the first holder),
	// or the last one that ended; -1 when never registered.
	Epoch     int
	Delegated bool
}

// DomainTruth returns every domain's true state on date, in world order.
func (w *World) DomainTruth(date time.Time) []DomainTruth {
	day := w.dayOf(date)
	out := make([]DomainTruth, len(w.Domains))
	for i := range w.Domains {
		d := &w.Domains[i]
		ph := w.PhaseAt(d, day)
		out[i] = DomainTruth{
			Domain: d.Name, Suffix: d.Suffix(), Kind: d.Kind.String(), State: ph.State,
			RegisteredAt: w.timeOf(ph.Registered), ExpiresAt: w.timeOf(ph.Expires),
			Epoch: ph.Epoch, Delegated: ph.Delegated,
		}
	}
	return out
}

// AddressTruth is whether one address is at risk on a date.
type AddressTruth struct {
	EmailID int64
	UserID  string
	Email   string
	// Domain is empty for a malformed address.
	Domain string
	// OwnerEpoch is the registration whose holder the address belongs to.
	OwnerEpoch int
	// State is the domain's true state on the date.
	State lifecycle.State
	// ShouldFlag: the holder's registration has reached redemption or
	// later (RiskStart ≤ date): lapse should have flagged the address.
	ShouldFlag bool
	// AtRisk: the name can be, or has been, registered by someone other
	// than the holder (RegistrableAt ≤ date).
	AtRisk bool
	// RiskStart, RegistrableAt, ReregisteredAt are the days the holder's
	// name entered redemption (or later), became available and was
	// registered by someone else; nil until they happen (on or before the
	// date).
	RiskStart      *time.Time
	RegistrableAt  *time.Time
	ReregisteredAt *time.Time
	// MailAtRisk: the address's own domain is not ShouldFlag, but a
	// dependency domain of its mail setup (an out-of-bailiwick MX host's,
	// an MX alias's target's or a name server's registrable domain; no MX
	// one with a null MX) is at risk on the date: its holder lost it
	// (redemption, pending delete or available) or another holder
	// registered it on a day from the address's addition (or day 0 of
	// the simulation, if later) to the date. Whoever holds the dependency
	// receives the address's mail (MX) or answers its domain's DNS (NS).
	MailAtRisk bool
	// MailRiskStart is the first day of that risk (the lapsing holder's
	// redemption or later, not before the address was added; the earliest
	// over its dependencies); MailRegistrableAt the day a dependency at
	// risk became registrable by others, when that happened by the date.
	// Both are nil unless MailAtRisk.
	MailRiskStart     *time.Time
	MailRegistrableAt *time.Time
	// MailVia names the dependencies at risk: "mx:<domain>", "ns:<domain>".
	MailVia []string
}

// AddressTruth returns the truth for every address present in the account
// table on date, in table order.
func (w *World) AddressTruth(date time.Time) []AddressTruth {
	day := w.dayOf(date)
	var out []AddressTruth
	for i := range w.Emails {
		a := &w.Emails[i]
		if a.Added > day || a.Removed <= day {
			continue
		}
		t := AddressTruth{EmailID: a.ID, UserID: w.UserID(a.User), Email: a.Email, OwnerEpoch: int(a.Owner)}
		if a.Domain >= 0 {
			d := &w.Domains[a.Domain]
			t.Domain = d.Name
			t.State = w.PhaseAt(d, day).State
			k := int(a.Owner)
			if rs := d.RiskStart(k); rs <= day {
				t.ShouldFlag = true
				t.RiskStart = w.timeOf(rs)
			}
			if ra := d.Registrable(k); ra <= day {
				t.AtRisk = true
				t.RegistrableAt = w.timeOf(ra)
			}
			if k+1 < len(d.Epochs) && d.Epochs[k+1].Registered <= day {
				t.ReregisteredAt = w.timeOf(d.Epochs[k+1].Registered)
			}
			if !t.ShouldFlag {
				if mr := w.mailRiskOf(a, day); mr.atRisk {
					t.MailAtRisk, t.MailVia = true, mr.via
					t.MailRiskStart, t.MailRegistrableAt = w.timeOf(mr.start), w.timeOf(mr.registrable)
				}
			}
		} else {
			t.State = lifecycle.Invalid
		}
		out = append(out, t)
	}
	return out
}

// Row is one row of the account table (PyPI's user_emails) on a date.
type Row struct {
	ID             int64
	UserID         string
	Email          string
	Verified       bool
	Primary        bool
	UnverifyReason string // "" when none
	Created        time.Time
	VerifiedAt     *time.Time
}

// Addresses returns the account table as it stands on date: the addresses
// added and not removed by then, verified when verified by then and not
// un-verified through Unverify on or before date.
func (w *World) Addresses(date time.Time) []Row {
	day := w.dayOf(date)
	w.mu.Lock()
	unv := make(map[int64]unverification, len(w.unverified))
	for id, u := range w.unverified {
		unv[id] = u
	}
	w.mu.Unlock()
	var out []Row
	for i := 0; i < len(w.Emails); {
		j := i
		for j < len(w.Emails) && w.Emails[j].User == w.Emails[i].User {
			j++
		}
		// primary: the first present address, unless a later present one
		// was added as a switch (then the latest such one).
		prim := -1
		for k := i; k < j; k++ {
			a := &w.Emails[k]
			if a.Added > day || a.Removed <= day {
				continue
			}
			if prim < 0 || a.Switch {
				prim = k
			}
		}
		for k := i; k < j; k++ {
			a := &w.Emails[k]
			if a.Added > day || a.Removed <= day {
				continue
			}
			tod := time.Duration(a.ID%72000) * time.Second // time of day, before 20:00
			r := Row{ID: a.ID, UserID: w.UserID(a.User), Email: a.Email, Primary: k == prim,
				Created: w.dayTime(a.Added).Add(tod)}
			if a.VerifiedAt <= day {
				r.Verified = true
				v := w.dayTime(a.VerifiedAt).Add(tod + time.Hour)
				r.VerifiedAt = &v
			}
			if u, ok := unv[a.ID]; ok && u.on(day) {
				r.Verified = false
				r.UnverifyReason = u.reason
			} else if ok && u.byOwner && u.until <= day && r.Verified {
				// Verified again by its owner early on that day.
				v := w.dayTime(u.until).Add(time.Duration(a.ID%3600) * time.Second)
				r.VerifiedAt = &v
			}
			out = append(out, r)
		}
		i = j
	}
	return out
}
