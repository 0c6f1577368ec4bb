package cache

import (
	"time"

	"github.com/lapse-dev/lapse/lifecycle"
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
	// RegisteredEvery re-checks a registered (or reserved, invalid) domain.
	RegisteredEvery = 30 * Day
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
//   - registered: 30 days, or 14 days before
//     expires_at if that is sooner, but never before the next night;
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
		// 1, 2, 4, then 7 nights (MaxErrorBackoff).
		nights := int(MaxErrorBackoff / Day)
		if n := max(e.ConsecutiveErrors, 1); n <= 3 {
			nights = min(1<<(n-1), nights)
		}
		backoff := days(now, nights)
		if next.IsZero() || backoff.Before(next) {
			next = backoff
		}
	}
	return next
}

// knownNext is the schedule of the last known state, or zero when there is
// none.
func knownNext(e Entry, now time.Time) time.Time {
	switch e.Lifecycle.State {
	case lifecycle.Registered:
		next := days(now, 30)
		if x := e.Lifecycle.ExpiresAt; x != nil {
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
