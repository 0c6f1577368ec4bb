package sim

import (
	"time"

	"github.com/lapse-dev/lapse/lifecycle"
)

// watchWindowDays is ARCHITECTURE.md's watch window: a registered name
// expiring within it is expiring.
const watchWindowDays = 30

// Phase is what a registry knows about a domain on one day. It is a pure
// function of the domain and the day.
type Phase struct {
	// State is the true state in ARCHITECTURE.md's names.
	State lifecycle.State
	// Epoch is the registration covering the day, or the last one that
	// ended before it (-1 before the first registration).
	Epoch int
	// Listed: the registry has an object for the name (RDAP 200, WHOIS
	// record); false means available.
	Listed bool
	// Registered and Expires are the days the registry publishes
	// (Expires is never for DENIC, which publishes none).
	Registered, Expires int32
	// Changed is the day of the last status change.
	Changed int32
	// Delegated: the name is in the zone.
	Delegated bool
	// Hold: clientHold during grace.
	Hold bool
	// Registrable is the day the holder's epoch became available to
	// others (never if it does not end).
	Registrable int32
}

// ends returns the days a lapsing epoch enters redemption, pending delete
// and availability.
func (e Epoch) ends(p registryPolicy) (redemption, pendingDelete, available int32) {
	if e.Expiry >= never {
		return never, never, never
	}
	redemption = e.Expiry + int32(e.Grace)
	pendingDelete = redemption + int32(p.redemption)
	available = pendingDelete + int32(p.pendingDelete)
	return
}

// RiskStart is the day the epoch's holder lost the name for lapse's
// purpose: redemption or later (availability where the registry has no
// redemption state).
func (d *Domain) RiskStart(epoch int) int32 {
	r, _, _ := d.Epochs[epoch].ends(policies[d.policy])
	return r
}

// Registrable is the day the epoch's name became available to others.
func (d *Domain) Registrable(epoch int) int32 {
	_, _, a := d.Epochs[epoch].ends(policies[d.policy])
	return a
}

// PhaseAt returns what the registry knows about d on day day.
func (w *World) PhaseAt(d *Domain, day int32) Phase {
	p := policies[d.policy]
	k := -1
	for i := range d.Epochs {
		if d.Epochs[i].Registered <= day {
			k = i
		}
	}
	ph := Phase{State: lifecycle.Available, Epoch: k, Registered: never, Expires: never, Changed: never, Registrable: never}
	if k < 0 {
		return ph
	}
	e := d.Epochs[k]
	red, pd, avail := e.ends(p)
	ph.Registrable = avail
	if day >= avail {
		ph.Changed = avail
		return ph
	}
	ph.Listed = true
	ph.Registered = e.Registered
	ph.Changed = e.Registered
	ph.Delegated = !d.NoDNS
	switch {
	case day < e.Expiry:
		ph.State = lifecycle.Registered
		ph.Expires = w.publishedExpiry(d, e, day)
		if p.publishesExpiry && ph.Expires-day <= watchWindowDays {
			ph.State = lifecycle.Expiring
		}
		if last := w.lastRenewal(d, e, day); last > ph.Changed {
			ph.Changed = last
		}
	case day < red:
		ph.State = lifecycle.Grace
		ph.Expires = e.Expiry
		if p.autoRenew {
			ph.Expires = w.addYears(e.Expiry, 1)
		}
		ph.Changed = e.Expiry
		ph.Hold = e.Hold
		if e.Hold {
			ph.Delegated = false
		}
	case day < pd:
		ph.State = lifecycle.Redemption
		ph.Expires = e.Expiry
		if p.autoRenew {
			ph.Expires = w.addYears(e.Expiry, 1)
		}
		ph.Changed = red
		ph.Delegated = false
	default:
		ph.State = lifecycle.PendingDelete
		ph.Expires = e.Expiry
		if p.autoRenew {
			ph.Expires = w.addYears(e.Expiry, 1)
		}
		ph.Changed = pd
		ph.Delegated = false
	}
	if !p.publishesExpiry {
		ph.Expires = never
	}
	return ph
}

func (w *World) addYears(day int32, years int) int32 {
	return w.dayOf(w.dayTime(day).AddDate(years, 0, 0))
}

// publishedExpiry is the expiry the registry shows on day while the holder
// still holds the name: the next anniversary not yet renewed, renewals
// happening RenewLead days before each anniversary, never past the
// anniversary the holder lets lapse.
func (w *World) publishedExpiry(d *Domain, e Epoch, day int32) int32 {
	lead := int32(d.RenewLead)
	n := max(int((day-e.Registered)/366), 1)
	for {
		x := w.addYears(e.Registered, n)
		if x >= e.Expiry {
			return e.Expiry
		}
		if day < x-lead {
			return x
		}
		n++
	}
}

// lastRenewal is the day of the last renewal before day (the registry's
// "last changed"), or e.Registered when none.
func (w *World) lastRenewal(d *Domain, e Epoch, day int32) int32 {
	x := w.publishedExpiry(d, e, day)
	prev := w.addYears(x, -1)
	if prev <= e.Registered {
		return e.Registered
	}
	r := prev - int32(d.RenewLead)
	if r > day || r < e.Registered {
		return e.Registered
	}
	return r
}

// timeOf returns the UTC time of a day number, nil for never.
func (w *World) timeOf(day int32) *time.Time {
	if day >= never {
		return nil
	}
	t := w.dayTime(day)
	return &t
}
