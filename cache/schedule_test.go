package cache

import (
	"testing"
	"time"

	"github.com/lapse-dev/lapse/lifecycle"
)

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func tp(s string) *time.Time { t := ts(s); return &t }

func TestNextCheckTable(t *testing.T) {
	now := ts("2026-03-10T02:00:00Z")
	night := ts("2026-03-10T22:00:00Z") // now + 24h - NightSlack
	entry := func(st lifecycle.State) Entry { return Entry{Lifecycle: lifecycle.Lifecycle{State: st}} }
	withExpiry := func(x string) Entry {
		e := entry(lifecycle.Registered)
		e.Lifecycle.ExpiresAt = tp(x)
		return e
	}
	failing := func(st lifecycle.State, n int) Entry {
		e := entry(st)
		e.LastError, e.ConsecutiveErrors = "timeout", n
		return e
	}
	expiringAt := func(x string) Entry {
		e := entry(lifecycle.Expiring)
		t := ts(x)
		e.Lifecycle.ExpiresAt = &t
		return e
	}
	unverified := entry(lifecycle.Available)
	unverified.Unverified = true

	cases := []struct {
		name string
		e    Entry
		want time.Time
	}{
		{"registered, no expiry: 30 days", entry(lifecycle.Registered), ts("2026-04-08T22:00:00Z")},
		{"registered, expiry far: 60 days", withExpiry("2027-03-10T00:00:00Z"), ts("2026-05-08T22:00:00Z")},
		{"registered, expiry in 70 days: 14 days before it, under 60 days", withExpiry("2026-05-19T12:00:00Z"), ts("2026-05-05T12:00:00Z")},
		{"registered, expiry in 40 days: 14 days before it", withExpiry("2026-04-19T12:00:00Z"), ts("2026-04-05T12:00:00Z")},
		{"registered, expiry in 20 days: 6 days", withExpiry("2026-03-30T02:00:00Z"), ts("2026-03-16T02:00:00Z")},
		{"registered, expiry in 10 days: never in the past, next night", withExpiry("2026-03-20T00:00:00Z"), night},
		{"registered, expiry passed: next night", withExpiry("2026-01-01T00:00:00Z"), night},
		{"expiring, no expiry date: weekly", entry(lifecycle.Expiring), ts("2026-03-16T22:00:00Z")},
		{"expiring, expiry in 10 days: weekly", expiringAt("2026-03-20T00:00:00Z"), ts("2026-03-16T22:00:00Z")},
		{"expiring, expiry in 3 days: at expiry", expiringAt("2026-03-13T12:00:00Z"), ts("2026-03-13T12:00:00Z")},
		{"expiring, expiry in a few hours: next night", expiringAt("2026-03-10T10:00:00Z"), night},
		{"grace: next night", entry(lifecycle.Grace), night},
		{"redemption: next night", entry(lifecycle.Redemption), night},
		{"pending_delete: next night", entry(lifecycle.PendingDelete), night},
		{"available: next night", entry(lifecycle.Available), night},
		{"available, addresses un-verified: weekly", unverified, ts("2026-03-16T22:00:00Z")},
		{"reserved: 30 days", entry(lifecycle.Reserved), ts("2026-04-08T22:00:00Z")},
		{"invalid: 30 days", entry(lifecycle.Invalid), ts("2026-04-08T22:00:00Z")},
		{"unknown, first error: next night", failing(lifecycle.Unknown, 1), night},
		{"unknown, zero count counts as one", failing(lifecycle.Unknown, 0), night},
		{"unknown, 2 errors: 2 nights", failing(lifecycle.Unknown, 2), ts("2026-03-11T22:00:00Z")},
		{"unknown, 3 errors: 4 nights", failing(lifecycle.Unknown, 3), ts("2026-03-13T22:00:00Z")},
		{"unknown, 4 errors: capped at 7 nights", failing(lifecycle.Unknown, 4), ts("2026-03-16T22:00:00Z")},
		{"unknown, 60 errors: capped, no overflow", failing(lifecycle.Unknown, 60), ts("2026-03-16T22:00:00Z")},
		{"nothing known yet, no error text", entry(""), night},
		{"known registered, 5 errors: 7 nights (sooner than 30 days)", failing(lifecycle.Registered, 5), ts("2026-03-16T22:00:00Z")},
		{"known redemption, 5 errors: still nightly", failing(lifecycle.Redemption, 5), night},
		{"known available+unverified, 3 errors: 4 nights", func() Entry { e := failing(lifecycle.Available, 3); e.Unverified = true; return e }(), ts("2026-03-13T22:00:00Z")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := NextCheck(c.e, now)
			if !got.Equal(c.want) {
				t.Errorf("NextCheck = %s, want %s", got.Format(time.RFC3339), c.want.Format(time.RFC3339))
			}
			if !got.After(now) {
				t.Errorf("NextCheck %s is not after now", got)
			}
		})
	}
}

// A nightly run at the same hour, even a few hours early, finds a
// next-night domain due; a second run the same night does not.
func TestNextNightIsDueTomorrow(t *testing.T) {
	now := ts("2026-03-10T02:00:00Z")
	e := Entry{Lifecycle: lifecycle.Lifecycle{State: lifecycle.Redemption}}
	e.NextCheck = NextCheck(e, now)
	for _, run := range []string{"2026-03-11T02:00:00Z", "2026-03-10T22:00:00Z", "2026-03-11T05:30:00Z"} {
		if !Due(e, ts(run)) {
			t.Errorf("not due at %s (next check %s)", run, e.NextCheck)
		}
	}
	for _, run := range []string{"2026-03-10T02:00:00Z", "2026-03-10T06:00:00Z", "2026-03-10T21:59:59Z"} {
		if Due(e, ts(run)) {
			t.Errorf("due again the same night at %s", run)
		}
	}
	if !Due(Entry{}, now) {
		t.Error("an entry without a next check must be due")
	}
}

// Issue 11: the authoritative refresh's own schedule.
func TestRefresh(t *testing.T) {
	checked := ts("2026-01-01T03:00:00Z")
	r := Refresh{}
	base := func() Entry {
		return Entry{Domain: "ex.com", AuthCheckedAt: &checked, AuthState: lifecycle.Registered, AuthExpiresAt: tp("2027-06-01T00:00:00Z"),
			StatusFlags: []string{"active"}, StatusCheckedAt: &checked, Lifecycle: lifecycle.Lifecycle{State: lifecycle.Registered}}
	}
	// The 90th night after the answer finds it due, the 89th does not,
	// even when it runs a few hours earlier.
	if r.Due(base(), true, ts("2026-03-31T03:00:00Z")) {
		t.Error("due on night 89")
	}
	for _, run := range []string{"2026-04-01T03:00:00Z", "2026-04-01T00:00:00Z"} {
		if !r.Due(base(), true, ts(run)) {
			t.Errorf("not due at %s (90 days)", run)
		}
	}
	if !(Refresh{Every: 30 * Day}).Due(base(), true, ts("2026-01-31T03:00:00Z")) {
		t.Error("resolve.authoritative_every = 30d not honoured")
	}
	if !r.Due(Entry{}, false, checked) {
		t.Error("a domain never checked: refresh not due")
	}
	noAuth := base()
	noAuth.AuthCheckedAt = nil
	if !r.Due(noAuth, true, checked) || !r.Wanted(noAuth, true, checked) {
		t.Error("no authoritative answer yet: refresh not due")
	}
	now := ts("2026-02-01T03:00:00Z")
	if r.Wanted(base(), true, now) {
		t.Error("a fresh registration far from expiry wants RDAP")
	}
	near := base()
	near.AuthExpiresAt = tp("2026-02-20T00:00:00Z")
	passed := base()
	passed.AuthExpiresAt = tp("2026-01-20T00:00:00Z")
	grace := base()
	grace.AuthState, grace.AuthExpiresAt = lifecycle.Grace, tp("2027-01-20T00:00:00Z") // auto-renew grace shows next year's expiry
	for name, e := range map[string]Entry{"expiry near": near, "expiry passed": passed, "grace": grace} {
		if r.Due(e, true, now) {
			t.Errorf("%s: planned on its own (the status schedule plans it)", name)
		}
		if !r.Wanted(e, true, now) {
			t.Errorf("%s: RDAP not wanted", name)
		}
		backoff := e
		backoff.AuthRetryAt = tp("2026-02-02T23:00:00Z")
		if r.Wanted(backoff, true, now) {
			t.Errorf("%s: wanted while a failed refresh backs off", name)
		}
	}
	if !(Refresh{Window: 60 * Day}).Wanted(func() Entry { e := base(); e.AuthExpiresAt = tp("2026-03-20T00:00:00Z"); return e }(), true, now) {
		t.Error("the watch window is not honoured")
	}
	w := r.Want(base(), true, now)
	if w.Authoritative || len(w.PrevFlags) != 1 || w.PrevFlags[0] != "active" {
		t.Errorf("Want: %+v", w)
	}
	if w := r.Want(Entry{}, false, now); !w.Authoritative || w.PrevFlags != nil {
		t.Errorf("Want of a new domain: %+v", w)
	}
}
