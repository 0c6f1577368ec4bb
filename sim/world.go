package sim

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/idna"

	"github.com/lapse-dev/lapse/lifecycle"
)

// Params are the world flags: the same Params build the same world in every
// `lapse sim` command and test.
type Params struct {
	// Seed drives every random choice (math/rand/v2 PCG).
	Seed uint64
	// Start is day 0 of the clock; it is truncated to midnight UTC.
	Start time.Time
	// Emails is the number of addresses; 0 derives it from Domains (×5),
	// and when both are 0 the default is 20,000.
	Emails int
	// Domains is the number of registrable domains (mail providers
	// included); 0 derives it from Emails.
	Domains int
}

// DefaultEmails is the size of the default demo world.
const DefaultEmails = 20000

// never is a day far beyond any simulated date.
const never = math.MaxInt32 / 4

// Kind is what a domain is used for.
type Kind uint8

// Domain kinds.
const (
	KindProvider Kind = iota // large mail provider: never lapses
	KindCompany              // company: rarely lapses, often re-registered
	KindPersonal             // personal or project domain: lapses most
	// KindMailHost and KindDNSHost are the mail layer's hosting domains
	// (mail.go): the MX hosts and name servers other domains depend on.
	// They hold no addresses and come after every other domain.
	KindMailHost // a mail hosting provider's domain (MX hosts)
	KindDNSHost  // a DNS hosting provider's domain (name servers)
)

func (k Kind) String() string {
	switch k {
	case KindProvider:
		return "provider"
	case KindCompany:
		return "company"
	case KindMailHost:
		return "mail_host"
	case KindDNSHost:
		return "dns_host"
	default:
		return "personal"
	}
}

// Epoch is one holder's registration of a name. Days count from Params.Start.
type Epoch struct {
	// Registered is the day the holder registered the name.
	Registered int32
	// Expiry is the anniversary the holder did not renew (never when the
	// holder keeps it for the whole simulation).
	Expiry int32
	// Grace is the days between Expiry and deletion (see registryPolicy).
	Grace int16
	// Hold: the registrar put the name on clientHold during grace (out of
	// the zone).
	Hold bool
}

// Domain is one registrable domain and its registration history.
type Domain struct {
	Name    string // A-label, lowercase
	Unicode string // U-label form (equal to Name unless IDN)
	Kind    Kind
	// Epochs are the successive registrations, oldest first; each starts
	// after the previous one became available (a resurrection).
	Epochs []Epoch
	// NoDNS: registered but never delegated (no name servers).
	NoDNS bool
	// RenewLead is how many days before the anniversary the registrar
	// renews a name its holder keeps.
	RenewLead int16
	policy    uint8 // index into policies
	registrar uint8 // index into registrars
	id        int64 // registry object id
}

// Suffix returns the public suffix the domain is registered under.
func (d *Domain) Suffix() string { return policies[d.policy].suffix }

// Address is one row of the account table over its whole life.
type Address struct {
	ID     int64
	User   int32 // index of the user; UserID renders it
	Email  string
	Domain int32 // index into World.Domains, -1 for a malformed address
	// Owner is the epoch of Domain whose holder the address belongs to.
	Owner int8
	// Switch: when the user adds this address it becomes primary.
	Switch bool
	// Added, VerifiedAt and Removed are days from Start (never when not).
	Added, VerifiedAt, Removed int32
}

// World is a seeded population of users, addresses and domains with a
// clock. Everything but the clock and the un-verifications is fixed at
// NewWorld; the truth at any date is a pure function of it.
type World struct {
	Params  Params
	Start   time.Time
	Domains []Domain
	// Emails are every address ever present, grouped by user, each user's in the order added.
	Emails []Address
	// Mail is each domain's mail and DNS setup (mail.go), parallel to
	// Domains.
	Mail   []MailSetup
	byName map[string]int32
	// deps are each domain's dependency domains (out-of-bailiwick MX
	// hosts, CNAME targets and name servers), parallel to Domains.
	deps [][]mailDep
	// hosts are the indexes of the mail and DNS host domains.
	hosts []int32

	day atomic.Int32

	mu         sync.Mutex
	unverified map[int64]unverification // email id → its un-verification
	byID       map[int64]int32          // email id → index into Emails, built on first use
}

// unverification is an address un-verified from day from (through Unverify
// or UnverifyAccount) until day until (RestoreAccount; never when not
// restored), with the reason the account table shows.
type unverification struct {
	from, until int32
	reason      string
	// byOwner: the owner verified the address again on day until
	// (OwnerReverify), rather than a revert restoring it.
	byOwner bool
}

// unverifyReason is the reason Unverify records: PyPI's
// UnverifyReasons.DomainInvalid.
const unverifyReason = "domain invalid"

// on reports whether u makes the address unverified on day.
func (u unverification) on(day int32) bool { return u.from <= day && day < u.until }

// NewWorld builds the world for p. It is deterministic: the same Params give
// the same world, byte for byte.
func NewWorld(p Params) *World { return newWorld(p, true) }

// newWorld builds the world for p, with its mail layer (the host domains
// and every domain's mail setup) when mail is set. The mail layer draws
// from a stream of its own after everything else, so the domains and
// addresses are the same without it.
func newWorld(p Params, mail bool) *World {
	if p.Emails <= 0 && p.Domains <= 0 {
		p.Emails = DefaultEmails
	}
	if p.Emails <= 0 {
		p.Emails = p.Domains * 5
	}
	if p.Start.IsZero() {
		p.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	start := time.Date(p.Start.Year(), p.Start.Month(), p.Start.Day(), 0, 0, 0, 0, time.UTC)
	p.Start = start
	w := &World{Params: p, Start: start, unverified: map[int64]unverification{}}
	g := &gen{w: w, rng: rand.New(rand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15)), used: map[string]struct{}{}}
	g.domains()
	g.addresses()
	if mail {
		g.mail()
	}
	w.byName = make(map[string]int32, len(w.Domains))
	for i := range w.Domains {
		w.byName[w.Domains[i].Name] = int32(i)
	}
	return w
}

// Date returns the simulated day.
func (w *World) Date() time.Time { return w.dayTime(w.day.Load()) }

// Day returns the simulated day as days since Start.
func (w *World) Day() int { return int(w.day.Load()) }

// Advance moves the clock by days (which may be negative) and returns the
// new date.
func (w *World) Advance(days int) time.Time {
	return w.dayTime(w.day.Add(int32(days)))
}

// SetDate moves the clock to date (truncated to its day).
func (w *World) SetDate(date time.Time) { w.day.Store(w.dayOf(date)) }

func (w *World) dayTime(d int32) time.Time { return w.Start.AddDate(0, 0, int(d)) }

// dayOf returns the day number of t (rounded down to its UTC day).
func (w *World) dayOf(t time.Time) int32 {
	t = t.UTC()
	t = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	return int32(math.Round(t.Sub(w.Start).Hours() / 24))
}

// Lookup returns the domain named name (A-label, lowercase).
func (w *World) Lookup(name string) (*Domain, bool) {
	i, ok := w.byName[name]
	if !ok {
		return nil, false
	}
	return &w.Domains[i], true
}

// Unverify records that the addresses with these ids were un-verified on
// date (the apply step of a changeset): Addresses from that date on shows
// them unverified.
func (w *World) Unverify(emailIDs []int64, date time.Time) {
	d := w.dayOf(date)
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range emailIDs {
		old, ok := w.unverified[id]
		switch {
		case !ok || old.until <= d:
			w.unverified[id] = unverification{from: d, until: never, reason: unverifyReason}
		case d < old.from:
			old.from = d
			w.unverified[id] = old
		}
	}
}

// Account returns the row of the account table with this id on the
// world's date (Date): its address, whether it is verified and its
// un-verify reason ("" when none). ok is false when no address with this
// id exists on that date (never added, or removed: a deleted row).
func (w *World) Account(id int64) (email string, verified bool, reason string, ok bool) {
	day := w.day.Load()
	w.mu.Lock()
	defer w.mu.Unlock()
	a, ok := w.addressLocked(id, day)
	if !ok {
		return "", false, "", false
	}
	verified = a.VerifiedAt <= day
	if u, has := w.unverified[id]; has && u.on(day) {
		verified, reason = false, u.reason
	}
	return a.Email, verified, reason, true
}

// UnverifyAccount un-verifies the address with this id from the world's
// date on, with reason, when it exists, still reads email and is
// verified (apply's guard); it reports whether it did.
func (w *World) UnverifyAccount(id int64, email, reason string) bool {
	day := w.day.Load()
	w.mu.Lock()
	defer w.mu.Unlock()
	a, ok := w.addressLocked(id, day)
	if !ok || a.Email != email || a.VerifiedAt > day {
		return false
	}
	if u, has := w.unverified[id]; has && u.on(day) {
		return false
	}
	w.unverified[id] = unverification{from: day, until: never, reason: reason}
	return true
}

// RestoreAccount undoes UnverifyAccount from the world's date on: the
// address with this id is verified again when it exists, still reads
// email and is un-verified with reason (revert's guard); it reports
// whether it did.
func (w *World) RestoreAccount(id int64, email, reason string) bool {
	day := w.day.Load()
	w.mu.Lock()
	defer w.mu.Unlock()
	a, ok := w.addressLocked(id, day)
	if !ok || a.Email != email || a.VerifiedAt > day {
		return false
	}
	u, has := w.unverified[id]
	if !has || !u.on(day) || u.reason != reason {
		return false
	}
	if u.from >= day {
		delete(w.unverified, id)
	} else {
		u.until = day
		w.unverified[id] = u
	}
	return true
}

// addressLocked finds the address with this id present on day; w.mu is
// held.
func (w *World) addressLocked(id int64, day int32) (*Address, bool) {
	if w.byID == nil {
		w.byID = make(map[int64]int32, len(w.Emails))
		for i := range w.Emails {
			w.byID[w.Emails[i].ID] = int32(i)
		}
	}
	i, ok := w.byID[id]
	if !ok {
		return nil, false
	}
	a := &w.Emails[i]
	if a.Added > day || a.Removed <= day {
		return nil, false
	}
	return a, true
}

// Owners who get their address back: the share of owners who verify an
// un-verified address again while they still hold its domain, and the
// longest they take to notice (days).
const (
	reverifyPercent = 60
	reverifyMaxDays = 5
)

// OwnerReverify plays the owners who find their address un-verified
// while they still hold its domain (a false alarm, or a name they renewed
// in time): on the world's date, each address un-verified at least a few
// days (1 to 5, fixed per address) whose owner's registration is still
// registered or expiring, not lapsing, is verified again by its owner
// (for about 60% of owners; the others never come back). The account
// table then shows it verified, with verified_at early that day. It
// returns the ids verified again today.
func (w *World) OwnerReverify() []int64 {
	day := w.day.Load()
	w.mu.Lock()
	defer w.mu.Unlock()
	var ids []int64
	for id, u := range w.unverified {
		if !u.on(day) || u.until != never {
			continue
		}
		h := mix(w.Params.Seed^0x7f4a7c15, uint64(id))
		if h%100 >= reverifyPercent || day-u.from < 1+int32(h/100%reverifyMaxDays) {
			continue
		}
		a, ok := w.addressLocked(id, day)
		if !ok || a.Domain < 0 {
			continue
		}
		if !w.ownerHolds(a, day) {
			continue
		}
		u.until, u.byOwner = day, true
		w.unverified[id] = u
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// ownerHolds reports whether a's owner holds its domain on day, registered
// or about to renew (not in grace or later), and receives its mail: an
// address whose MX host's or name server's domain lapsed or changed hands
// (its mail path at risk) cannot be verified again by its owner, whose
// mail bounces or goes to the new holder.
func (w *World) ownerHolds(a *Address, day int32) bool {
	ph := w.PhaseAt(&w.Domains[a.Domain], day)
	if ph.Epoch != int(a.Owner) || (ph.State != lifecycle.Registered && ph.State != lifecycle.Expiring) {
		return false
	}
	return !w.mailRiskOf(a, day).atRisk
}

// OwnerHolds reports whether the owner of the address with this id holds
// its domain on the world's date (registered or expiring): un-verifying
// it then is a false alarm.
func (w *World) OwnerHolds(id int64) bool {
	day := w.day.Load()
	w.mu.Lock()
	defer w.mu.Unlock()
	a, ok := w.addressLocked(id, day)
	return ok && a.Domain >= 0 && w.ownerHolds(a, day)
}

// ReverifiedByOwner reports whether the owner verified the address with
// this id again (OwnerReverify) on or before the world's date.
func (w *World) ReverifiedByOwner(id int64) bool {
	day := w.day.Load()
	w.mu.Lock()
	defer w.mu.Unlock()
	u, ok := w.unverified[id]
	return ok && u.byOwner && u.until <= day
}

// UserID renders user u as a UUID-like string, stable for the seed.
func (w *World) UserID(u int32) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], mix(w.Params.Seed^0x5bd1e995, uint64(u)))
	binary.BigEndian.PutUint64(b[8:], mix(w.Params.Seed^0x27d4eb2f, uint64(u)))
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// mix is splitmix64 over two words: a stateless hash for per-item choices
// that must not depend on generation order.
func mix(a, b uint64) uint64 {
	z := a ^ (b+0x9e3779b97f4a7c15)*0xbf58476d1ce4e5b9
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// gen holds the state of one world build.
type gen struct {
	w    *World
	rng  *rand.Rand
	used map[string]struct{}
	// per-kind domain indexes, to draw an address's domain
	providers, companies, personals []int32
	providerWeights                 []int
	providerTotal                   int
	seq                             int
}

func (g *gen) days(t time.Time) int32 { return g.w.dayOf(t) }

// anniversary returns the first anniversary of reg that is after reg and
// at or after q.
func (g *gen) anniversary(reg, q int32) int32 {
	rt := g.w.dayTime(reg)
	years := 1
	if q > reg {
		years = int((q-reg)/366) + 1
	}
	for {
		a := g.days(rt.AddDate(years, 0, 0))
		if a >= q {
			// step back while the previous anniversary still qualifies
			for years > 1 {
				b := g.days(rt.AddDate(years-1, 0, 0))
				if b < q {
					break
				}
				years--
				a = b
			}
			return a
		}
		years++
	}
}

func (g *gen) between(lo, hi int32) int32 {
	if hi <= lo {
		return lo
	}
	return lo + int32(g.rng.IntN(int(hi-lo)))
}

func (g *gen) unique(name string) string {
	if _, ok := g.used[name]; !ok {
		g.used[name] = struct{}{}
		return name
	}
	for {
		g.seq++
		label, suffix, _ := splitSuffix(name)
		n := label + strconv.Itoa(g.seq%997+1) + "." + suffix
		if _, ok := g.used[n]; !ok {
			g.used[n] = struct{}{}
			return n
		}
	}
}

// sizes returns how many company and personal domains to build.
func (g *gen) sizes() (companies, personals int) {
	p := g.w.Params
	if p.Domains > 0 {
		custom := max(p.Domains-len(mailProviders), 2)
		companies = max(custom/10, 1)
		return companies, custom - companies
	}
	// providers take 55% of addresses; companies 15% at ~6 per domain,
	// personal domains 30% at ~1.3 per domain.
	companies = max(p.Emails*15/100/6, 1)
	personals = max(p.Emails*30/100*10/13, 1)
	return companies, personals
}

func (g *gen) domains() {
	w := g.w
	for i, mp := range mailProviders {
		label, suffix, _ := splitSuffix(mp.name)
		_ = label
		reg := g.days(time.Date(1995+i%10, time.Month(1+i%12), 1+i%27, 0, 0, 0, 0, time.UTC))
		g.used[mp.name] = struct{}{}
		w.Domains = append(w.Domains, Domain{
			Name: mp.name, Unicode: mp.name, Kind: KindProvider,
			Epochs:    []Epoch{{Registered: reg, Expiry: never}},
			RenewLead: 330, policy: uint8(policyIndex(suffix)), registrar: 3,
		})
		g.providers = append(g.providers, int32(i))
		g.providerWeights = append(g.providerWeights, mp.weight)
		g.providerTotal += mp.weight
	}
	nc, np := g.sizes()
	for range nc {
		g.companies = append(g.companies, g.custom(KindCompany))
	}
	for range np {
		g.personals = append(g.personals, g.custom(KindPersonal))
	}
	for i := range w.Domains {
		w.Domains[i].id = int64(1_000_000 + int64(mix(w.Params.Seed, uint64(i))%8_000_000_000))
	}
}

func (g *gen) pickSuffix() string {
	n := g.rng.IntN(1000)
	for _, s := range customSuffixes {
		if n < s.weight {
			return s.suffix
		}
		n -= s.weight
	}
	return "com"
}

// custom builds one company or personal domain with its epochs.
func (g *gen) custom(kind Kind) int32 {
	w := g.w
	r := g.rng
	var name, uni string
	suffix := g.pickSuffix()
	switch {
	case kind == KindPersonal && r.IntN(100) < 3:
		iw := idnWords[r.IntN(len(idnWords))]
		suffix = iw.suffix
		u := iw.word + strconv.Itoa(r.IntN(900)+10) + "." + suffix
		a, err := idna.Lookup.ToASCII(u)
		if err != nil {
			panic(fmt.Sprintf("sim: idn word %q: %v", u, err)) // fixed list: a bug, not input
		}
		if _, dup := g.used[a]; dup {
			return g.custom(kind)
		}
		g.used[a] = struct{}{}
		name, uni = a, u
	case kind == KindCompany:
		name = g.unique(words[r.IntN(len(words))] + companyTails[r.IntN(len(companyTails))] + "." + suffix)
	default:
		var label string
		switch r.IntN(3) {
		case 0:
			label = firstNames[r.IntN(len(firstNames))] + lastNames[r.IntN(len(lastNames))]
		case 1:
			label = words[r.IntN(len(words))] + words[r.IntN(len(words))]
		default:
			label = words[r.IntN(len(words))] + projectWords[r.IntN(len(projectWords))]
		}
		if r.IntN(10) == 0 {
			label = label[:len(label)/2] + "-" + label[len(label)/2:]
		}
		name = g.unique(label + "." + suffix)
	}
	if uni == "" {
		uni = name
	}
	d := Domain{Name: name, Unicode: uni, Kind: kind, policy: uint8(policyIndex(suffix)), registrar: uint8(r.IntN(3))}
	d.RenewLead = int16(r.IntN(61))
	if kind == KindPersonal && r.IntN(100) < 4 {
		d.NoDNS = true
	}
	// hazard: yearly chance the holder stops renewing; stale: the share
	// already given up before the clock starts.
	hazard, stale, resurrect := 0.3, 0.002, 0.5
	regLo, regHi := int32(-12*365), int32(-60)
	if kind == KindCompany {
		hazard, stale, resurrect = 0.03, 0.002, 0.5
		regLo, regHi = -20*365, -365
	}
	d.Epochs = g.epochs(policies[d.policy], hazard, stale, resurrect, regLo, regHi, -120)
	w.Domains = append(w.Domains, d)
	return int32(len(w.Domains) - 1)
}

// epochs draws a lapsing domain's registrations: the first holder
// registers between regLo and regHi, stops renewing at a yearly hazard
// (stale: already given up before the clock starts), and an available
// name is registered again by someone else with probability resurrect,
// up to four holders. The first holder's decision to quit comes at the
// hazard's rate from day quitFrom on.
func (g *gen) epochs(pol registryPolicy, hazard, stale, resurrect float64, regLo, regHi, quitFrom int32) []Epoch {
	r := g.rng
	var out []Epoch
	reg := g.between(regLo, regHi)
	for e := 0; e < 4; e++ {
		var quit int32
		switch {
		case e == 0 && r.Float64() < stale:
			quit = g.between(-3*365, 0)
		case e == 0:
			// holders decide to quit at a steady rate from quitFrom
			// (four months before the clock starts for company and
			// personal domains, so lapses already run at the start)
			quit = quitFrom + int32(r.ExpFloat64()/hazard*365)
		default:
			quit = reg + int32(r.ExpFloat64()/hazard*365)
		}
		ep := Epoch{Registered: reg, Expiry: never}
		if quit < 30*365 {
			ep.Expiry = g.anniversary(reg, quit)
			ep.Grace = int16(pol.graceMin + r.IntN(pol.graceMax-pol.graceMin+1))
			ep.Hold = r.IntN(100) < 30
		}
		out = append(out, ep)
		if ep.Expiry == never || r.Float64() >= resurrect {
			break
		}
		avail := ep.Expiry + int32(ep.Grace) + int32(pol.redemption+pol.pendingDelete)
		gap := int32(r.IntN(3))
		if r.IntN(100) >= 25 { // most are not drop-caught
			gap = 3 + int32(r.ExpFloat64()*120)
		}
		reg = avail + gap
	}
	return out
}

func (g *gen) addresses() {
	w := g.w
	r := g.rng
	n := w.Params.Emails
	w.Emails = make([]Address, 0, n)
	var id int64 = 1000
	for u := int32(0); len(w.Emails) < n; u++ {
		k := 1
		switch x := r.IntN(100); {
		case x < 4:
			k = 3
		case x < 22:
			k = 2
		}
		k = min(k, n-len(w.Emails))
		join := g.between(-8*365, 120)
		first := firstNames[r.IntN(len(firstNames))]
		last := lastNames[r.IntN(len(lastNames))]
		block := len(w.Emails)
		for j := range k {
			id += 1 + int64(r.IntN(3))
			a := g.address(u, id, first, last, join)
			if j > 0 {
				a.Switch = r.IntN(100) < 35
			}
			w.Emails = append(w.Emails, a)
		}
		// keep the user's addresses in the order added, then retire some
		// of those a switch replaced.
		us := w.Emails[block:]
		sortByAdded(us)
		for j := 1; j < len(us); j++ {
			if us[j].Switch && r.IntN(2) == 0 {
				us[j-1].Removed = max(us[j].Added, us[j-1].Added+1)
			}
		}
	}
}

func sortByAdded(a []Address) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j].Added < a[j-1].Added; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// address builds one address of user u.
func (g *gen) address(u int32, id int64, first, last string, join int32) Address {
	w := g.w
	r := g.rng
	a := Address{ID: id, User: u, Domain: -1, Removed: never, VerifiedAt: never}
	g.seq++
	local := first + "." + last
	switch r.IntN(4) {
	case 1:
		local = first
	case 2:
		local = first[:1] + last
	case 3:
		local = first + "_" + last
	}
	x := r.IntN(1000)
	switch {
	case x < 3: // malformed
		a.Email = g.malformed(local)
		a.Added = join
	case x < 553: // mail provider
		n := r.IntN(g.providerTotal)
		var di int32
		for i, wt := range g.providerWeights {
			if n < wt {
				di = g.providers[i]
				break
			}
			n -= wt
		}
		a.Domain = di
		a.Email = local + strconv.Itoa(g.seq) + "@" + w.Domains[di].Name
		if r.IntN(50) == 0 {
			a.Email = upperFirst(a.Email)
		}
		a.Added = join
	default:
		var di int32
		if x < 703 {
			di = g.companies[r.IntN(len(g.companies))]
		} else {
			di = g.personals[r.IntN(len(g.personals))]
		}
		d := &w.Domains[di]
		a.Domain = di
		if len(d.Epochs) > 1 && d.Epochs[1].Registered < -30 && r.IntN(100) < 30 {
			a.Owner = 1 // the new holder of a resurrected name uses it too
		}
		ep := d.Epochs[a.Owner]
		lo, hi := ep.Registered+1, min(ep.Expiry-1, int32(365))
		a.Added = join
		if a.Added < lo || a.Added > hi {
			a.Added = g.between(lo, hi)
		}
		host := d.Name
		switch {
		case d.Unicode != d.Name && r.IntN(10) < 7:
			host = d.Unicode
		case d.Kind == KindCompany && r.IntN(10) == 0:
			host = "mail." + d.Name
		}
		a.Email = local + "." + strconv.Itoa(g.seq) + "@" + host
		if d.Kind == KindPersonal && r.IntN(3) == 0 {
			a.Email = first + strconv.Itoa(g.seq) + "@" + host
		}
	}
	if r.IntN(100) < 88 {
		a.VerifiedAt = a.Added + int32(r.IntN(3))
	}
	return a
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// malformed returns an address no registrable domain can be read from.
func (g *gen) malformed(local string) string {
	s := strconv.Itoa(g.seq)
	switch g.rng.IntN(5) {
	case 0:
		return local + s + "gmail.com" // no @
	case 1:
		return local + s + "@[192.0.2." + strconv.Itoa(g.seq%250+1) + "]" // address literal
	case 2:
		return local + s + "@198.51.100." + strconv.Itoa(g.seq%250+1) // IP host
	case 3:
		return "@" + local + s + ".example.com" // empty local part
	default:
		return local + s + "@com" // a public suffix
	}
}
