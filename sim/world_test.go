package sim

import (
	"fmt"
	"hash/fnv"
	"strings"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/lifecycle"
)

var testStart = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func TestDemoWorldShape(t *testing.T) {
	w := NewWorld(Params{Seed: 1, Start: testStart, Emails: 20000})
	reached := map[string]bool{}
	avail, resurrected := 0, 0
	for day := 0; day <= 60; day++ {
		for i := range w.Domains {
			d := &w.Domains[i]
			if isHost(d) {
				continue // the mail layer's hosts are counted in TestMailLayerShape
			}
			ph := w.PhaseAt(d, int32(day))
			if ph.State == lifecycle.Redemption || ph.State == lifecycle.PendingDelete || ph.State == lifecycle.Available {
				reached[d.Name] = true
			}
		}
	}
	for i := range w.Domains {
		d := &w.Domains[i]
		if isHost(d) {
			continue
		}
		if d.Kind != KindProvider && w.PhaseAt(d, 60).State == lifecycle.Available {
			avail++
		}
		for k := 1; k < len(d.Epochs); k++ {
			if r := d.Epochs[k].Registered; r >= 0 && r <= 60 {
				resurrected++
			}
		}
	}
	atRisk0 := 0
	for _, a := range w.AddressTruth(testStart) {
		if a.ShouldFlag {
			atRisk0++
		}
	}
	n0 := len(w.AddressTruth(testStart))
	t.Logf("domains %d (mail layer's hosts included), reached redemption+ %d, available at day 60 %d, resurrections in window %d, flag at day 0 %d of %d",
		len(w.Domains), len(reached), avail, resurrected, atRisk0, n0)
	// the demo needs dozens of lapses, several resurrections, and a first
	// night that does not flag a large share of the table
	if len(reached) < 24 || avail < 12 || resurrected < 3 {
		t.Errorf("too quiet a world: %d reached redemption or later, %d available, %d resurrections", len(reached), avail, resurrected)
	}
	if atRisk0*100 > n0 {
		t.Errorf("%d of %d addresses already lapsed on day 0", atRisk0, n0)
	}
}

// worldDigest hashes everything NewWorld decided.
func worldDigest(w *World) uint64 {
	h := fnv.New64a()
	for _, d := range w.Domains {
		fmt.Fprintf(h, "%s|%s|%d|%v|%d|%d|%d|%v\n", d.Name, d.Unicode, d.Kind, d.NoDNS, d.RenewLead, d.policy, d.registrar, d.Epochs)
	}
	for _, a := range w.Emails {
		fmt.Fprintf(h, "%+v\n", a)
	}
	return h.Sum64()
}

func TestWorldReproducible(t *testing.T) {
	p := Params{Seed: 42, Start: testStart, Emails: 5000}
	a, b := NewWorld(p), NewWorld(p)
	if worldDigest(a) != worldDigest(b) {
		t.Fatal("same params built different worlds")
	}
	if a.UserID(7) != b.UserID(7) || len(a.UserID(7)) != 36 {
		t.Errorf("user ids %q %q", a.UserID(7), b.UserID(7))
	}
	p.Seed = 43
	if worldDigest(NewWorld(p)) == worldDigest(a) {
		t.Fatal("a different seed built the same world")
	}
	if len(a.Emails) != 5000 {
		t.Errorf("%d addresses, want 5000", len(a.Emails))
	}
	// the truth at a date is a pure function of the world and the date
	d := testStart.AddDate(0, 0, 30)
	ta, tb := a.DomainTruth(d), b.DomainTruth(d)
	for i := range ta {
		if ta[i].Domain != tb[i].Domain || ta[i].State != tb[i].State {
			t.Fatalf("truth differs at %d: %+v %+v", i, ta[i], tb[i])
		}
	}
}

func TestWorldMix(t *testing.T) {
	w := NewWorld(Params{Seed: 1, Start: testStart, Emails: 20000})
	var provider, malformed, idn, sub, unicodeHost int
	suffixes := map[string]int{}
	for _, a := range w.Emails {
		if a.Domain < 0 {
			malformed++
			continue
		}
		d := &w.Domains[a.Domain]
		suffixes[d.Suffix()]++
		if d.Kind == KindProvider {
			provider++
		}
		if d.Unicode != d.Name {
			idn++
		}
		if strings.HasSuffix(a.Email, "@mail."+d.Name) {
			sub++
		}
		if strings.HasSuffix(a.Email, "@"+d.Unicode) && d.Unicode != d.Name {
			unicodeHost++
		}
	}
	n := len(w.Emails)
	if provider < n/2 || provider > n*6/10 {
		t.Errorf("providers hold %d of %d addresses, want about 55%%", provider, n)
	}
	if malformed == 0 || malformed > n/100 || idn == 0 || sub == 0 || unicodeHost == 0 {
		t.Errorf("malformed %d, idn %d, subdomain hosts %d, unicode hosts %d: want a few of each", malformed, idn, sub, unicodeHost)
	}
	for _, s := range []string{"com", "net", "org", "io", "dev", "app", "co", "de", "co.uk", "uk", "fr", "nl", "eu", "jp"} {
		if suffixes[s] == 0 {
			t.Errorf("no address under .%s", s)
		}
	}
	if d, ok := w.Lookup("gmail.com"); !ok || d.Kind != KindProvider {
		t.Error("gmail.com is not a provider")
	}
	// providers never lapse
	for i := range w.Domains {
		d := &w.Domains[i]
		if d.Kind == KindProvider && (len(d.Epochs) != 1 || d.Epochs[0].Expiry != never) {
			t.Errorf("provider %s lapses", d.Name)
		}
	}
}

// TestLifecycleTimings checks each registry's timings on a hand-made
// domain: registered 2020-03-10, not renewed at the 2026-03-10 anniversary
// with 10 days of grace, released and re-registered 20 days later.
func TestLifecycleTimings(t *testing.T) {
	w := NewWorld(Params{Seed: 1, Start: testStart, Emails: 10})
	day := func(s string) int32 {
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			t.Fatal(err)
		}
		return w.dayOf(d)
	}
	mk := func(suffix string) *Domain {
		d := &Domain{Name: "x." + suffix, Unicode: "x." + suffix, Kind: KindPersonal, policy: uint8(policyIndex(suffix)), RenewLead: 0}
		pol := policies[d.policy]
		e := Epoch{Registered: day("2020-03-10"), Expiry: day("2026-03-10"), Grace: int16(min(max(10, pol.graceMin), pol.graceMax))}
		_, _, avail := e.ends(pol)
		d.Epochs = []Epoch{e, {Registered: avail + 20, Expiry: never}}
		return d
	}
	type check struct {
		date    string
		state   lifecycle.State
		expires string // published expiry, "" for none
	}
	cases := map[string][]check{
		// Verisign: 10 days auto-renew grace with expiry +1y, 30 redemption, 5 pending delete
		"com": {
			{"2026-02-01", lifecycle.Registered, "2026-03-10"},
			{"2026-02-08", lifecycle.Expiring, "2026-03-10"},
			{"2026-01-01", lifecycle.Registered, "2026-03-10"},
			{"2026-03-09", lifecycle.Expiring, "2026-03-10"},
			{"2026-03-10", lifecycle.Grace, "2027-03-10"},
			{"2026-03-19", lifecycle.Grace, "2027-03-10"},
			{"2026-03-20", lifecycle.Redemption, "2027-03-10"},
			{"2026-04-18", lifecycle.Redemption, "2027-03-10"},
			{"2026-04-19", lifecycle.PendingDelete, "2027-03-10"},
			{"2026-04-23", lifecycle.PendingDelete, "2027-03-10"},
			{"2026-04-24", lifecycle.Available, ""},
			{"2026-05-13", lifecycle.Available, ""},
			{"2026-05-14", lifecycle.Registered, "2027-05-14"},
		},
		// Nominet: renewable 90 days after expiry, then released
		"co.uk": {
			{"2026-03-10", lifecycle.Grace, "2026-03-10"},
			{"2026-06-07", lifecycle.Grace, "2026-03-10"},
			{"2026-06-08", lifecycle.Available, ""},
		},
		// DENIC: no expiry published; 10 days to deletion, 30 of redemption, then free
		"de": {
			{"2026-03-01", lifecycle.Registered, ""},
			{"2026-03-15", lifecycle.Grace, ""},
			{"2026-03-20", lifecycle.Redemption, ""},
			{"2026-04-18", lifecycle.Redemption, ""},
			{"2026-04-19", lifecycle.Available, ""},
		},
		// EURid: 10 days to deletion, 40 of quarantine
		"eu": {
			{"2026-03-20", lifecycle.Redemption, "2026-03-10"},
			{"2026-04-28", lifecycle.Redemption, "2026-03-10"},
			{"2026-04-29", lifecycle.Available, ""},
		},
		// JPRS: deleted after 10 days, straight to available
		"jp": {
			{"2026-03-19", lifecycle.Grace, "2026-03-10"},
			{"2026-03-20", lifecycle.Available, ""},
		},
	}
	for suffix, checks := range cases {
		d := mk(suffix)
		for _, c := range checks {
			ph := w.PhaseAt(d, day(c.date))
			exp := ""
			if ph.Expires < never {
				exp = w.dayTime(ph.Expires).Format(time.DateOnly)
			}
			if ph.State != c.state || exp != c.expires {
				t.Errorf(".%s on %s: %s expiring %q, want %s expiring %q", suffix, c.date, ph.State, exp, c.state, c.expires)
			}
		}
	}
	// the address truth follows the holder's epoch
	d := mk("com")
	if rs, ra := w.dayTime(d.RiskStart(0)), w.dayTime(d.Registrable(0)); rs.Format(time.DateOnly) != "2026-03-20" || ra.Format(time.DateOnly) != "2026-04-24" {
		t.Errorf("risk start %v, registrable %v", rs, ra)
	}
}

func TestAddressesAndUnverify(t *testing.T) {
	w := NewWorld(Params{Seed: 5, Start: testStart, Emails: 3000})
	rows := w.Addresses(testStart)
	if len(rows) == 0 || len(rows) > 3000 {
		t.Fatalf("%d rows", len(rows))
	}
	later := w.Addresses(testStart.AddDate(0, 0, 200))
	if len(later) == len(rows) {
		t.Errorf("no address added or removed in 200 days")
	}
	primaries := map[string]int{}
	var verified []int64
	for _, r := range rows {
		if r.Primary {
			primaries[r.UserID]++
		}
		if r.Verified {
			verified = append(verified, r.ID)
			if r.VerifiedAt == nil || r.VerifiedAt.Before(r.Created) {
				t.Fatalf("row %d verified at %v, created %v", r.ID, r.VerifiedAt, r.Created)
			}
		}
	}
	for u, n := range primaries {
		if n != 1 {
			t.Fatalf("user %s has %d primaries", u, n)
		}
	}
	ids := verified[:10]
	w.Unverify(ids, testStart.AddDate(0, 0, 5))
	gone := map[int64]bool{}
	for _, id := range ids {
		gone[id] = true
	}
	for _, c := range []struct {
		days int
		want bool
	}{{4, true}, {5, false}, {30, false}} {
		for _, r := range w.Addresses(testStart.AddDate(0, 0, c.days)) {
			if gone[r.ID] && r.Verified != c.want {
				t.Errorf("day %d: %d verified=%v, want %v", c.days, r.ID, r.Verified, c.want)
			}
			if gone[r.ID] && !c.want && r.UnverifyReason == "" {
				t.Errorf("no unverify reason")
			}
		}
	}
}

func TestAccountGuardedUnverifyRestore(t *testing.T) {
	w := NewWorld(Params{Seed: 5, Start: testStart, Emails: 3000})
	day := testStart.AddDate(0, 0, 10)
	w.SetDate(day)
	var r Row
	for _, x := range w.Addresses(day) {
		if x.Verified {
			r = x
			break
		}
	}
	email, verified, reason, ok := w.Account(r.ID)
	if !ok || email != r.Email || !verified || reason != "" {
		t.Fatalf("Account(%d) = %q %v %q %v; want %q verified", r.ID, email, verified, reason, ok, r.Email)
	}
	if _, _, _, ok := w.Account(-1); ok {
		t.Error("Account(-1) exists")
	}
	if w.UnverifyAccount(r.ID, "other@example.com", "x") {
		t.Error("un-verified although the address differs")
	}
	if !w.UnverifyAccount(r.ID, r.Email, "domain status invalid") {
		t.Fatal("UnverifyAccount refused a verified address")
	}
	if w.UnverifyAccount(r.ID, r.Email, "domain status invalid") {
		t.Error("un-verified twice")
	}
	if _, verified, reason, _ := w.Account(r.ID); verified || reason != "domain status invalid" {
		t.Errorf("after UnverifyAccount: verified %v reason %q", verified, reason)
	}
	for _, x := range w.Addresses(day) {
		if x.ID == r.ID && (x.Verified || x.UnverifyReason != "domain status invalid") {
			t.Errorf("Addresses after UnverifyAccount: %+v", x)
		}
	}
	if w.RestoreAccount(r.ID, r.Email, "another reason") {
		t.Error("restored although the reason differs")
	}
	w.SetDate(day.AddDate(0, 0, 3))
	if !w.RestoreAccount(r.ID, r.Email, "domain status invalid") {
		t.Fatal("RestoreAccount refused")
	}
	if _, verified, reason, _ := w.Account(r.ID); !verified || reason != "" {
		t.Errorf("after RestoreAccount: verified %v reason %q", verified, reason)
	}
	// The history stays: on the days between, the address was unverified.
	for _, c := range []struct {
		days int
		want bool
	}{{9, true}, {10, false}, {12, false}, {13, true}} {
		for _, x := range w.Addresses(testStart.AddDate(0, 0, c.days)) {
			if x.ID == r.ID && x.Verified != c.want {
				t.Errorf("day %d: verified %v, want %v", c.days, x.Verified, c.want)
			}
		}
	}
}

// TestOwnerReverify: an owner who still holds the domain verifies the
// address again after a few days (for most owners); one whose domain
// lapsed never does, and a reverted row is not an owner's re-verification.
func TestOwnerReverify(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w := NewWorld(Params{Seed: 3, Start: start, Emails: 3000})
	w.SetDate(start.AddDate(0, 0, 10))
	var held, lapsed []int64
	for _, a := range w.Emails {
		if a.Domain < 0 || a.Added > 10 || a.Removed <= 40 || a.VerifiedAt > 10 {
			continue
		}
		d := &w.Domains[a.Domain]
		if d.Kind == KindProvider {
			continue
		}
		if w.ownerHolds(&a, 10) && w.ownerHolds(&a, 40) && len(held) < 40 {
			held = append(held, a.ID)
		} else if !w.ownerHolds(&a, 11) && len(lapsed) < 10 {
			lapsed = append(lapsed, a.ID)
		}
	}
	if len(held) < 40 || len(lapsed) == 0 {
		t.Fatalf("world too small: %d held, %d lapsed", len(held), len(lapsed))
	}
	for _, id := range append(append([]int64{}, held...), lapsed...) {
		email, _, _, _ := w.Account(id)
		if !w.UnverifyAccount(id, email, "domain status invalid") {
			t.Fatalf("could not un-verify %d", id)
		}
	}
	if got := w.OwnerReverify(); len(got) != 0 {
		t.Fatalf("re-verified the same day: %v", got)
	}
	back := map[int64]time.Time{}
	for day := 11; day <= 20; day++ {
		w.SetDate(start.AddDate(0, 0, day))
		for _, id := range w.OwnerReverify() {
			back[id] = w.Date()
		}
	}
	for _, id := range lapsed {
		if _, ok := back[id]; ok {
			t.Errorf("address %d re-verified though its owner lost the domain", id)
		}
	}
	n := 0
	for _, id := range held {
		if d, ok := back[id]; ok {
			n++
			if days := int(d.Sub(start.AddDate(0, 0, 10)).Hours() / 24); days < 1 || days > reverifyMaxDays {
				t.Errorf("address %d re-verified after %d days", id, days)
			}
			if !w.ReverifiedByOwner(id) {
				t.Errorf("address %d: ReverifiedByOwner false", id)
			}
		}
	}
	if n < 12 || n > 36 {
		t.Errorf("%d of %d owners re-verified; want about %d%%", n, len(held), reverifyPercent)
	}
	// The account table shows them verified again, verified_at that day.
	rows := map[int64]Row{}
	for _, r := range w.Addresses(w.Date()) {
		rows[r.ID] = r
	}
	for id, d := range back {
		r := rows[id]
		if !r.Verified || r.VerifiedAt == nil || r.VerifiedAt.Before(d) || r.VerifiedAt.After(d.Add(24*time.Hour)) {
			t.Errorf("address %d after re-verification: verified %v at %v, want that day %v", id, r.Verified, r.VerifiedAt, d)
		}
	}
}
