package cache

import (
	"time"

	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sources/status"
)

// The schedule of issue 3. Intervals are whole days minus NightSlack, so a
// nightly run at about the same hour finds a domain due on the intended
// night even when it starts a few hours earlier than the night before.
const (
	Day = 24 * time.Hour
	// NightSlack is taken off every interval: "next night" is now+24h-4h,
	// so tomorrow's run, even one started up to 4 hours earlier than
	// tonight's, finds the domain due.
	NightSlack = 4 * time.Hour
	// RegisteredEvery re-checks a registered (or reserved, invalid) domain
	// whose expiry is unknown.
	RegisteredEvery = 30 * Day
	// RegisteredDatedEvery re-checks a registered domain whose expiry is
	// known and further away: the registry's date bounds when it can lapse
	// (an early delete still spends 30 days in redemption and 5 pending
	// delete, and a re-registration in between is caught by its date).
	RegisteredDatedEvery = 60 * Day
	// ExpiryLead moves a registered domain's check to this long before its
	// expires_at when that comes sooner than RegisteredEvery.
	ExpiryLead = 14 * Day
	// ExpiringEvery re-checks an expiring domain until its expiry date.
	ExpiringEvery = 7 * Day
	// UnverifiedEvery re-checks an available domain whose addresses were
	// already un-verified, to catch a re-registration.
	UnverifiedEvery = 7 * Day
	// MaxErrorBackoff caps the doubling back-off after failed lookups.
	MaxErrorBackoff = 7 * Day
)

// days returns the instant n nights after now.
func days(now time.Time, n int) time.Time {
	return now.Add(time.Duration(n)*Day - NightSlack)
}

// NextCheck is the schedule: when the domain of e should be looked up again,
// judged at now (the time of its latest lookup). It is pure.
//
//   - registered: 30 days without an expiry date; with one, 60 days or 14
//     days before expires_at if that is sooner, but never before the next
//     night;
//   - expiring: weekly, or at expires_at if sooner, never before the next
//     night (a deviation from issue 3's "daily": an expiring domain cannot
//     reach a decisive state before it expires unless its registrar deletes
//     it early, and a week's delay then still leaves the 30-day redemption);
//   - grace, redemption, pending_delete: the next night;
//   - available: the next night until its addresses are un-verified
//     (e.Unverified), then weekly to catch a re-registration;
//   - reserved, invalid: 30 days;
//   - the latest lookup failed (e.LastError set, or nothing known yet): the
//     next night, doubling with each consecutive error up to 7 days, and
//     never later than the last known state's own schedule, so a failing
//     lookup of a domain in redemption is still retried nightly.
func NextCheck(e Entry, now time.Time) time.Time {
	next := knownNext(e, now)
	if e.LastError != "" || e.Lifecycle.State == lifecycle.Unknown || e.Lifecycle.State == "" {
		backoff := days(now, backoffNights(e.ConsecutiveErrors))
		if next.IsZero() || backoff.Before(next) {
			next = backoff
		}
	}
	return next
}

// backoffNights is the wait after n consecutive failures: 1, 2, 4, then
// 7 nights (MaxErrorBackoff).
func backoffNights(n int) int {
	nights := int(MaxErrorBackoff / Day)
	if n = max(n, 1); n <= 3 {
		nights = min(1<<(n-1), nights)
	}
	return nights
}

// knownNext is the schedule of the last known state, or zero when there is
// none.
func knownNext(e Entry, now time.Time) time.Time {
	switch e.Lifecycle.State {
	case lifecycle.Registered:
		next := days(now, int(RegisteredEvery/Day))
		if x := e.Lifecycle.ExpiresAt; x != nil {
			next = days(now, int(RegisteredDatedEvery/Day))
			if lead := x.Add(-ExpiryLead); lead.Before(next) {
				next = lead
			}
		}
		if tomorrow := days(now, 1); next.Before(tomorrow) {
			next = tomorrow
		}
		return next
	case lifecycle.Expiring:
		// Nothing decisive is expected before the expiry date, so weekly
		// until then and nightly from it on (grace and later).
		next := days(now, int(ExpiringEvery/Day))
		if x := e.Lifecycle.ExpiresAt; x != nil && x.Before(next) {
			next = *x
		}
		if tomorrow := days(now, 1); next.Before(tomorrow) {
			next = tomorrow
		}
		return next
	case lifecycle.Grace, lifecycle.Redemption, lifecycle.PendingDelete:
		return days(now, 1)
	case lifecycle.Available:
		if e.Unverified {
			return days(now, 7)
		}
		return days(now, 1)
	case lifecycle.Reserved, lifecycle.Invalid:
		return days(now, 30)
	default:
		return time.Time{}
	}
}

// AuthoritativeEvery is resolve.authoritative_every's default: a
// status-API-first chain asks RDAP/WHOIS about a domain at least this
// often, however long the status API keeps saying "active".
const AuthoritativeEvery = 90 * Day

// Refresh is the schedule of the authoritative facts of a
// status-API-first chain (issue 11): when RDAP/WHOIS are asked about a
// domain although a status API could answer. The zero value takes the
// defaults (AuthoritativeEvery, a 30-day watch window).
type Refresh struct {
	// Every: the latest authoritative answer is refreshed once older
	// (AuthoritativeEvery when 0).
	Every time.Duration
	// Window is the watch window: a known expiry within it, or passed,
	// wants the authoritative answer (30 days when 0).
	Window time.Duration
}

func (r Refresh) every() time.Duration {
	if r.Every > 0 {
		return r.Every
	}
	return AuthoritativeEvery
}

func (r Refresh) window() time.Duration {
	if r.Window > 0 {
		return r.Window
	}
	return 30 * Day
}

// backingOff reports whether a failed refresh still waits at now.
func backingOff(e Entry, now time.Time) bool {
	return e.AuthRetryAt != nil && now.Before(*e.AuthRetryAt)
}

// Due reports whether the domain's authoritative refresh is due at now,
// whether or not its status lookup is: the domain has no entry or no
// authoritative answer yet, or its latest one is Every old (less
// NightSlack, like every interval: the night it falls on finds it due).
// Never while a failed refresh backs off. The plan looks such a domain up
// tonight even when the cache's NextCheck says it is fresh.
func (r Refresh) Due(e Entry, found bool, now time.Time) bool {
	switch {
	case !found:
		return true
	case backingOff(e, now):
		return false
	case e.AuthCheckedAt == nil:
		return true
	}
	return !now.Before(r.DueAt(e))
}

// DueAt is when the refresh of an entry with an authoritative answer falls
// due on age (zero when it has none: now).
func (r Refresh) DueAt(e Entry) time.Time {
	if e.AuthCheckedAt == nil {
		return time.Time{}
	}
	return e.AuthCheckedAt.Add(r.MaxAge())
}

// MaxAge is the age at which an authoritative answer is refreshed: Every
// less NightSlack.
func (r Refresh) MaxAge() time.Duration { return r.every() - NightSlack }

// Wanted reports whether a lookup of the domain at now should ask the
// authoritative providers: the refresh is Due, or the latest authoritative
// answer said the name is lapsing (expiring, grace, redemption, pending
// delete: a status API says "active" through grace), or its expiry date is
// within the watch window or passed. Never while a failed refresh backs
// off.
func (r Refresh) Wanted(e Entry, found bool, now time.Time) bool {
	if r.Due(e, found, now) {
		return true
	}
	if backingOff(e, now) {
		return false
	}
	switch e.AuthState {
	case lifecycle.Expiring, lifecycle.Grace, lifecycle.Redemption, lifecycle.PendingDelete:
		return true
	}
	return e.AuthExpiresAt != nil && !e.AuthExpiresAt.After(now.Add(r.window()))
}

// Want is what the chain needs of the entry for a lookup at now:
// Authoritative as Wanted, and the status API's flags the last night it
// was asked (nil when never).
func (r Refresh) Want(e Entry, found bool, now time.Time) status.Want {
	w := status.Want{Authoritative: r.Wanted(e, found, now)}
	if found && e.StatusCheckedAt != nil {
		w.PrevFlags = e.StatusFlags
	}
	return w
}
