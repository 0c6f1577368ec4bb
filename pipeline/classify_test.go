package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/internal/duck"
	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/lifecycle"
)

var (
	gRDAP    = lifecycle.SourceRDAP
	gWHOIS   = lifecycle.SourceWHOIS
	gDomainr = lifecycle.SourceDomainr
	gFastly  = lifecycle.SourceFastly
)

// gPolicyCases are the documented rules of the corroborated policy, one
// case at least per rule.
func gPolicyCases() []gCase {
	unverify, watch, keep, unknown := lifecycle.ActionUnverify, lifecycle.ActionWatch, lifecycle.ActionKeep, lifecycle.ActionUnknown
	cases := []gCase{
		{name: "invalid address", invalid: true, want: gDec(unknown, lifecycle.ReasonInvalidAddr)},
		{name: "never checked", unchecked: true, want: gDec(unknown, lifecycle.ReasonNotChecked)},
		{name: "unknown state", state: lifecycle.Unknown, source: gRDAP, want: gDec(unknown, lifecycle.ReasonUnknown)},
		{name: "unknown with a newer registration never un-verifies", state: lifecycle.Unknown, source: gRDAP,
			registeredAt: gT("2026-06-01"), firstNight: "2026-01-01", want: gDec(unknown, lifecycle.ReasonUnknown)},
		{name: "rdap available", state: lifecycle.Available, source: gRDAP, want: gDec(unverify, lifecycle.ReasonAvailable)},
		{name: "whois pending delete", state: lifecycle.PendingDelete, source: gWHOIS, want: gDec(unverify, lifecycle.ReasonPendingDelete)},
		{name: "rdap redemption", state: lifecycle.Redemption, source: gRDAP, want: gDec(unverify, lifecycle.ReasonRedemption)},
		{name: "domainr expiring flag, one night", state: lifecycle.Redemption, source: gDomainr, statuses: []string{"expiring"},
			decisiveNights: 1, want: gDec(watch, lifecycle.ReasonAwaitConfirm)},
		{name: "domainr redemption, second night", state: lifecycle.Redemption, source: gDomainr, statuses: []string{"expiring"},
			decisiveNights: 2, want: gDec(unverify, lifecycle.ReasonRedemption)},
		{name: "fastly inactive corroborated by rdap", state: lifecycle.Available, source: gFastly, corroborated: true,
			statuses: []string{"inactive"}, want: gDec(unverify, lifecycle.ReasonAvailable)},
		{name: "domainr deleting, unconfirmed", state: lifecycle.PendingDelete, source: gDomainr, statuses: []string{"deleting"},
			want: gDec(watch, lifecycle.ReasonAwaitConfirm)},
		{name: "expiring", state: lifecycle.Expiring, source: gRDAP, expiresAt: gT("2026-06-20"), want: gDec(watch, lifecycle.ReasonExpiring)},
		{name: "grace", state: lifecycle.Grace, source: gRDAP, want: gDec(watch, lifecycle.ReasonGrace)},
		{name: "registered, expiry inside the watch window", state: lifecycle.Registered, source: gRDAP,
			expiresAt: gT("2026-07-01"), want: gDec(watch, lifecycle.ReasonExpiring)},
		{name: "registered, expiry far", state: lifecycle.Registered, source: gRDAP,
			expiresAt: gT("2027-07-01"), registeredAt: gT("2010-01-01"), want: gDec(keep, lifecycle.ReasonRegistered)},
		{name: "reserved", state: lifecycle.Reserved, source: gDomainr, statuses: []string{"reserved"}, want: gDec(keep, lifecycle.ReasonReserved)},
		{name: "invalid name", state: lifecycle.Invalid, source: gDomainr, want: gDec(keep, lifecycle.ReasonInvalidName)},
		{name: "unheard-of state", state: "bogus", source: gRDAP, want: gDec(unknown, lifecycle.ReasonUnknown)},
		// Re-registration, from registered_at against first seen.
		{name: "registered after the first snapshot", state: lifecycle.Registered, source: gRDAP,
			registeredAt: gT("2026-05-01"), firstNight: "2026-03-01", want: gDec(unverify, lifecycle.ReasonReregistered)},
		{name: "registered after created (no history)", state: lifecycle.Registered, source: gRDAP,
			registeredAt: gT("2025-05-01"), created: gT("2024-01-01"), want: gDec(unverify, lifecycle.ReasonReregistered)},
		{name: "registered after verified_at", state: lifecycle.Registered, source: gWHOIS,
			registeredAt: gT("2025-05-01"), verifiedAt: gT("2025-02-01"), want: gDec(unverify, lifecycle.ReasonReregistered)},
		{name: "registered before first seen", state: lifecycle.Registered, source: gRDAP,
			registeredAt: gT("2020-05-01"), created: gT("2024-01-01"), firstNight: "2026-01-01", want: gDec(keep, lifecycle.ReasonRegistered)},
		{name: "registered the day of the first snapshot (conservative)", state: lifecycle.Registered, source: gRDAP,
			registeredAt: gT(gNight), want: gDec(keep, lifecycle.ReasonRegistered)},
		{name: "registered the instant the address was created", state: lifecycle.Registered, source: gRDAP,
			registeredAt: gT("2024-01-01"), created: gT("2024-01-01"), want: gDec(keep, lifecycle.ReasonRegistered)},
		{name: "re-registration outranks expiring", state: lifecycle.Expiring, source: gRDAP,
			registeredAt: gT("2026-04-01"), firstNight: "2026-02-01", want: gDec(unverify, lifecycle.ReasonReregistered)},
		// Re-registration, from a registration date that changed.
		{name: "registration date changed after first seen", state: lifecycle.Registered, source: gRDAP,
			registeredAt: gT("2019-01-01"), prevRegAt: gT("2018-01-01"), regChangedAt: gT("2026-05-20"),
			firstNight: "2026-01-01", want: gDec(unverify, lifecycle.ReasonReregistered)},
		{name: "registration date changed before first seen", state: lifecycle.Registered, source: gRDAP,
			registeredAt: gT("2019-01-01"), prevRegAt: gT("2018-01-01"), regChangedAt: gT("2025-05-20"),
			firstNight: "2026-01-01", want: gDec(keep, lifecycle.ReasonRegistered)},
		{name: "unchanged registration date", state: lifecycle.Registered, source: gRDAP,
			registeredAt: gT("2019-01-01"), regChangedAt: gT("2026-05-20"), firstNight: "2026-01-01", want: gDec(keep, lifecycle.ReasonRegistered)},
		// Re-verification by the owner after an applied un-verify
		// (pypi/warehouse#18356 is the loop these rules prevent).
		{name: "re-verified after the re-registration: proof of control", state: lifecycle.Registered, source: gRDAP,
			registeredAt: gT("2026-05-01"), firstNight: "2026-01-01", reverifiedAt: gT("2026-05-20"),
			expiresAt: gT("2027-05-01"), want: gDec(keep, lifecycle.ReasonRegistered)},
		{name: "registered again after the re-verification", state: lifecycle.Registered, source: gRDAP,
			registeredAt: gT("2026-06-01"), firstNight: "2026-01-01", reverifiedAt: gT("2026-05-20"),
			want: gDec(unverify, lifecycle.ReasonReregistered)},
		{name: "registration change noticed after the re-verification", state: lifecycle.Registered, source: gRDAP,
			registeredAt: gT("2019-01-01"), prevRegAt: gT("2018-01-01"), regChangedAt: gT("2026-06-01"),
			firstNight: "2026-01-01", reverifiedAt: gT("2026-05-20"), want: gDec(unverify, lifecycle.ReasonReregistered)},
		{name: "re-verified, decisive state looked up before it: stale", state: lifecycle.Redemption, source: gRDAP,
			checkedAt: gT("2026-06-01"), reverifiedAt: gT("2026-06-09"), want: gDec(watch, lifecycle.ReasonAwaitLookup)},
		{name: "re-verified, never-confirmed state looked up before it: stale", state: lifecycle.Available, source: gDomainr,
			decisiveNights: 5, checkedAt: gT("2026-06-01"), reverifiedAt: gT("2026-06-09"), want: gDec(watch, lifecycle.ReasonAwaitLookup)},
		{name: "re-verified, decisive state looked up tonight", state: lifecycle.Redemption, source: gRDAP,
			reverifiedAt: gT("2026-06-10"), want: gDec(unverify, lifecycle.ReasonRedemption)},
		{name: "re-verified, tonight's best-effort answer still needs confirming", state: lifecycle.PendingDelete, source: gDomainr,
			reverifiedAt: gT("2026-06-10"), want: gDec(watch, lifecycle.ReasonAwaitConfirm)},
	}
	return append(cases, gMailPolicyCases()...)
}

// gMailPolicyCases are the mail path's rules (issue 12): an address
// domain healthy on its own, whose MX or NS host's domain is not.
func gMailPolicyCases() []gCase {
	unverify, watch, keep, unknown := lifecycle.ActionUnverify, lifecycle.ActionWatch, lifecycle.ActionKeep, lifecycle.ActionUnknown
	mx, ns := lifecycle.RoleMX, lifecycle.RoleNS
	healthy := func(c gCase) gCase {
		c.state, c.source, c.registeredAt, c.expiresAt = lifecycle.Registered, gRDAP, gT("2010-01-01"), gT("2027-07-01")
		return c
	}
	link := func(role, host, dep string, st lifecycle.State, src lifecycle.Source) gLink {
		return gLink{role: role, host: host, dep: dep, state: st, source: src, registeredAt: gT("2012-01-01"), expiresAt: gT("2027-01-01")}
	}
	rereg := func(l gLink, at string) gLink { l.registeredAt = gT(at); return l }
	corr := func(l gLink) gLink { l.corroborated = true; return l }
	checkedOn := func(l gLink, at string) gLink { l.checkedAt = gT(at); return l }
	expiresOn := func(l gLink, at string) gLink { l.expiresAt = gT(at); return l }
	return []gCase{
		healthy(gCase{name: "NS domain re-registered after the link and the address", firstNight: "2026-03-01",
			links: []gLink{rereg(link(ns, "ns1.p1.com", "p1.com", lifecycle.Registered, gRDAP), "2026-05-01")},
			want:  gDec(unverify, lifecycle.ReasonNSReregistered)}),
		healthy(gCase{name: "MX domain re-registered after the link and the address", firstNight: "2026-03-01",
			links: []gLink{rereg(link(mx, "mx1.p2.net", "p2.net", lifecycle.Registered, gWHOIS), "2026-05-01")},
			want:  gDec(unverify, lifecycle.ReasonMXReregistered)}),
		healthy(gCase{name: "MX domain re-registered after the link, before the address", firstNight: "2026-03-01",
			links: []gLink{rereg(link(mx, "mx1.p3.net", "p3.net", lifecycle.Registered, gRDAP), "2026-02-01")},
			want:  gDec(keep, lifecycle.ReasonRegistered)}),
		healthy(gCase{name: "MX domain registered before the link was first seen (a move)",
			links: []gLink{rereg(link(mx, "mx1.p4.net", "p4.net", lifecycle.Registered, gRDAP), "2025-12-01")},
			want:  gDec(keep, lifecycle.ReasonRegistered)}),
		healthy(gCase{name: "NS domain available", links: []gLink{link(ns, "ns1.p5.com", "p5.com", lifecycle.Available, gRDAP)},
			want: gDec(unverify, lifecycle.ReasonNSAvailable)}),
		healthy(gCase{name: "NS domain pending delete", links: []gLink{link(ns, "ns1.p6.com", "p6.com", lifecycle.PendingDelete, gWHOIS)},
			want: gDec(unverify, lifecycle.ReasonNSPendingDelete)}),
		healthy(gCase{name: "NS domain in redemption, corroborated", links: []gLink{corr(link(ns, "ns1.p7.com", "p7.com", lifecycle.Redemption, gDomainr))},
			want: gDec(unverify, lifecycle.ReasonNSRedemption)}),
		healthy(gCase{name: "MX domain available", links: []gLink{link(mx, "mx1.p8.net", "p8.net", lifecycle.Available, gRDAP)},
			want: gDec(unverify, lifecycle.ReasonMXAvailable)}),
		healthy(gCase{name: "MX domain pending delete, and a healthy one", links: []gLink{
			link(mx, "mx1.p9.net", "p9.net", lifecycle.PendingDelete, gRDAP), link(mx, "mx2.p10.net", "p10.net", lifecycle.Registered, gRDAP)},
			want: gDec(unverify, lifecycle.ReasonMXPendingDelete)}),
		healthy(gCase{name: "MX domain in redemption outranked by an available one", links: []gLink{
			link(mx, "mx1.p11.net", "p11.net", lifecycle.Redemption, gRDAP), corr(link(mx, "mx2.p12.net", "p12.net", lifecycle.Available, gFastly))},
			want: gDec(unverify, lifecycle.ReasonMXAvailable)}),
		healthy(gCase{name: "MX domain in redemption", links: []gLink{link(mx, "mx1.p13.net", "p13.net", lifecycle.Redemption, gWHOIS)},
			want: gDec(unverify, lifecycle.ReasonMXRedemption)}),
		healthy(gCase{name: "NS outranks MX", links: []gLink{
			link(mx, "mx1.p8.net", "p8.net", lifecycle.Available, gRDAP), link(ns, "ns1.p13.net", "p13.net", lifecycle.Redemption, gWHOIS)},
			want: gDec(unverify, lifecycle.ReasonNSRedemption)}),
		healthy(gCase{name: "NS domain available on a best-effort answer only: watch",
			links: []gLink{link(ns, "ns1.p14.com", "p14.com", lifecycle.Available, gDomainr)}, want: gDec(watch, lifecycle.ReasonNSWatch)}),
		healthy(gCase{name: "MX domain expiring inside the watch window",
			links: []gLink{expiresOn(link(mx, "mx1.p15.net", "p15.net", lifecycle.Registered, gRDAP), "2026-06-20")}, want: gDec(watch, lifecycle.ReasonMXWatch)}),
		healthy(gCase{name: "MX domain in grace", links: []gLink{link(mx, "mx1.p16.net", "p16.net", lifecycle.Grace, gRDAP)},
			want: gDec(watch, lifecycle.ReasonMXWatch)}),
		healthy(gCase{name: "re-verified after the NS domain's lookup: stale", reverifiedAt: gT("2026-06-09"),
			links: []gLink{checkedOn(link(ns, "ns1.p17.com", "p17.com", lifecycle.Available, gRDAP), "2026-06-01")}, want: gDec(watch, lifecycle.ReasonNSWatch)}),
		healthy(gCase{name: "re-verified before the MX domain's lookup", reverifiedAt: gT("2026-06-09"),
			links: []gLink{link(mx, "mx1.p18.net", "p18.net", lifecycle.Available, gRDAP)}, want: gDec(unverify, lifecycle.ReasonMXAvailable)}),
		healthy(gCase{name: "MX domain of unknown state", links: []gLink{rereg(link(mx, "mx1.p19.net", "p19.net", lifecycle.Unknown, gRDAP), "2026-05-01")},
			want: gDec(keep, lifecycle.ReasonRegistered)}),
		healthy(gCase{name: "MX domain without a state row", links: []gLink{{role: mx, host: "mx1.p20.net", dep: "p20.net", noState: true}},
			want: gDec(keep, lifecycle.ReasonRegistered)}),
		{name: "own domain unknown, MX domain available", state: lifecycle.Unknown, source: gRDAP,
			links: []gLink{link(mx, "mx1.p8.net", "p8.net", lifecycle.Available, gRDAP)}, want: gDec(unknown, lifecycle.ReasonUnknown)},
		{name: "own domain never checked, NS domain available", unchecked: true,
			links: []gLink{link(ns, "ns1.p5.com", "p5.com", lifecycle.Available, gRDAP)}, want: gDec(unknown, lifecycle.ReasonNotChecked)},
		{name: "own domain unconfirmed outranks a watched MX domain", state: lifecycle.Available, source: gDomainr,
			links: []gLink{link(mx, "mx1.p16.net", "p16.net", lifecycle.Grace, gRDAP)}, want: gDec(watch, lifecycle.ReasonAwaitConfirm)},
	}
}

func TestClassifyPolicyRulesAgreeInSQLAndGo(t *testing.T) {
	res := gRunCoversRules(t, lifecycle.DefaultPolicy, gPolicyCases())
	if res.Invalid != 1 {
		t.Errorf("invalid = %d, want 1", res.Invalid)
	}
	if res.Flagged != res.ByAction[lifecycle.ActionUnverify] {
		t.Errorf("flagged %d != unverify %d (all cases verified)", res.Flagged, res.ByAction[lifecycle.ActionUnverify])
	}
}

// TestClassifyPolicyGridAgrees runs SQL and Go over the grid of states,
// sources, corroboration, decisive nights and confirmation settings.
func TestClassifyPolicyGridAgrees(t *testing.T) {
	var cases []gCase
	sources := []lifecycle.Source{gRDAP, gWHOIS, gDomainr, gFastly, "", lifecycle.SourceCache}
	flagsFor := map[lifecycle.State][]string{
		lifecycle.Available: {"inactive"}, lifecycle.PendingDelete: {"deleting"}, lifecycle.Redemption: {"expiring"},
		lifecycle.Registered: {"active parked"}, lifecycle.Unknown: {"undelegated"}, lifecycle.Reserved: {"claimed"},
	}
	for _, st := range append(lifecycle.States, "bogus") {
		for _, src := range sources {
			for _, corr := range []bool{false, true} {
				for _, n := range []int{0, 1, 2, 3} {
					c := gCase{name: fmt.Sprintf("%s/%s/%v/%d", st, src, corr, n), state: st, source: src, corroborated: corr,
						decisiveNights: n, statuses: flagsFor[st], expiresAt: gT("2026-06-25")}
					if n == 3 {
						c.expiresAt = gT("2027-01-01")
						c.evidence = []lifecycle.Evidence{{Source: gDomainr, State: st, Statuses: []string{"UNDELEGATED inactive"}}}
					}
					cases = append(cases, c)
				}
			}
		}
	}
	for _, p := range []lifecycle.Policy{
		lifecycle.DefaultPolicy,
		{Name: lifecycle.PolicyCorroborated, WatchWindow: 7 * 24 * time.Hour, ConfirmNights: 3},
		{Name: lifecycle.PolicyCorroborated, WatchWindow: 0, ConfirmNights: 1},
		{Name: lifecycle.PolicyPyPI, WatchWindow: 30 * 24 * time.Hour, ConfirmNights: 2},
	} {
		t.Run(fmt.Sprintf("%s-%v-%d", p.Name, p.WatchWindow, p.ConfirmNights), func(t *testing.T) { gRun(t, p, cases) })
	}
}

// TestClassifyPyPIOverlapRule: the pypi preset un-verifies exactly when the
// Domainr/Fastly flags overlap undelegated, inactive, expiring, deleting or
// unknown, whatever RDAP or WHOIS say.
func TestClassifyPyPIOverlapRule(t *testing.T) {
	unverify, keep, unknown := lifecycle.ActionUnverify, lifecycle.ActionKeep, lifecycle.ActionUnknown
	cases := []gCase{
		{name: "invalid address", invalid: true, want: gDec(unknown, lifecycle.ReasonInvalidAddr)},
		{name: "never checked", unchecked: true, want: gDec(unknown, lifecycle.ReasonNotChecked)},
		{name: "active", state: lifecycle.Registered, source: gDomainr, statuses: []string{"active"}, want: gDec(keep, lifecycle.ReasonRegistered)},
		{name: "active parked marketed", state: lifecycle.Registered, source: gDomainr, statuses: []string{"active parked marketed"}, want: gDec(keep, lifecycle.ReasonRegistered)},
		{name: "undelegated", state: lifecycle.Unknown, source: gDomainr, statuses: []string{"undelegated"}, want: gDec(unverify, lifecycle.ReasonAvailable)},
		{name: "undelegated active (PyPI un-verifies)", state: lifecycle.Registered, source: gDomainr, statuses: []string{"undelegated active"}, want: gDec(unverify, lifecycle.ReasonAvailable)},
		{name: "inactive", state: lifecycle.Available, source: gFastly, statuses: []string{"inactive"}, want: gDec(unverify, lifecycle.ReasonAvailable)},
		{name: "expiring", state: lifecycle.Redemption, source: gDomainr, statuses: []string{"expiring"}, want: gDec(unverify, lifecycle.ReasonRedemption)},
		{name: "deleting", state: lifecycle.PendingDelete, source: gDomainr, statuses: []string{"deleting"}, want: gDec(unverify, lifecycle.ReasonPendingDelete)},
		{name: "unknown", state: lifecycle.Unknown, source: gDomainr, statuses: []string{"unknown"}, want: gDec(unverify, lifecycle.ReasonAvailable)},
		{name: "deleting outranks inactive", state: lifecycle.PendingDelete, source: gDomainr, statuses: []string{"inactive", "deleting"}, want: gDec(unverify, lifecycle.ReasonPendingDelete)},
		{name: "reserved", state: lifecycle.Reserved, source: gDomainr, statuses: []string{"reserved"}, want: gDec(keep, lifecycle.ReasonRegistered)},
		{name: "rdap says available, no Domainr answer", state: lifecycle.Available, source: gRDAP, want: gDec(unknown, lifecycle.ReasonNotChecked)},
		{name: "rdap decided, Domainr evidence inactive", state: lifecycle.Available, source: gRDAP, statuses: []string{"inactive"},
			evidence: []lifecycle.Evidence{{Source: gDomainr, State: lifecycle.Available, Statuses: []string{"inactive"}}, {Source: gRDAP, State: lifecycle.Available}},
			want:     gDec(unverify, lifecycle.ReasonAvailable)},
		{name: "rdap statuses are not Domainr flags", state: lifecycle.Grace, source: gRDAP, statuses: []string{"inactive"},
			evidence: []lifecycle.Evidence{{Source: gDomainr, State: lifecycle.Registered, Statuses: []string{"active"}}},
			want:     gDec(keep, lifecycle.ReasonRegistered)},
		{name: "re-registered but active: PyPI does not see it", state: lifecycle.Registered, source: gDomainr, statuses: []string{"active"},
			registeredAt: gT("2026-05-01"), firstNight: "2026-01-01", want: gDec(keep, lifecycle.ReasonRegistered)},
	}
	gRunCoversRules(t, lifecycle.NewPolicy(lifecycle.PolicyPyPI, 30*24*time.Hour, 2), cases)
}

func TestClassifyWritesAtomically0600(t *testing.T) {
	dir := t.TempDir()
	paths := gWriteFixtures(t, dir, gPolicyCases())
	o := ClassifyOptionsFor(paths, lifecycle.DefaultPolicy, gAsOf)
	if _, err := Classify(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	files := map[string]os.FileMode{
		night.Paths{DataDir: dir, Date: gNight}.Decisions(): 0o600, night.Paths{DataDir: dir, Date: gNight}.FirstSeen(): 0o600, night.Paths{DataDir: dir, Date: gNight}.Counts(): 0o640,
	}
	before := map[string]string{}
	for p, mode := range files {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", filepath.Base(p), fi.Mode().Perm(), mode)
		}
		b, _ := os.ReadFile(p)
		before[p] = string(b)
	}
	ents, _ := os.ReadDir(filepath.Dir(o.Out))
	if len(ents) != 3 {
		t.Errorf("decisions folder holds %d entries (temp files left?), want 3", len(ents))
	}
	// A failing classify (states file garbage) leaves the earlier files intact.
	if err := os.WriteFile(o.States, []byte("not parquet"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Classify(context.Background(), o); err == nil {
		t.Fatal("classify over a garbage states file succeeded")
	}
	for p := range files {
		if after, _ := os.ReadFile(p); string(after) != before[p] {
			t.Errorf("a failed classify changed %s", filepath.Base(p))
		}
	}
	ents, _ = os.ReadDir(filepath.Dir(o.Out))
	if len(ents) != 3 {
		t.Errorf("a failed classify left %d entries", len(ents))
	}
}

func TestClassifyWithoutStatesFile(t *testing.T) {
	dir := t.TempDir()
	paths := gWriteFixtures(t, dir, []gCase{{name: "a", state: lifecycle.Registered, source: gRDAP}})
	if err := os.Remove(paths.States()); err != nil {
		t.Fatal(err)
	}
	res, err := Classify(context.Background(), ClassifyOptionsFor(paths, lifecycle.DefaultPolicy, gAsOf))
	if err != nil {
		t.Fatal(err)
	}
	if res.ByAction[lifecycle.ActionUnknown] != 1 {
		t.Errorf("by action %v, want one unknown (never checked)", res.ByAction)
	}
}

// gHistoryNights writes the fixture of the first-seen tests: one address
// on a domain registered at noon on the 9th, first in the snapshot of the
// 8th (so first seen by the end of the 8th: re-registered), and again in
// those of the 9th and tonight (the 10th).
func gHistoryNights(t *testing.T, dir string) night.Paths {
	t.Helper()
	cases := []gCase{{name: "rereg", state: lifecycle.Registered, source: gRDAP,
		registeredAt: hTP(time.Date(2026, 6, 9, 12, 0, 0, 0, time.UTC)), firstNight: "2026-06-08"}}
	paths := gWriteFixtures(t, dir, cases)
	mid := night.Paths{DataDir: dir, Date: "2026-06-09"}
	b, err := os.ReadFile(paths.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(mid.Snapshot()), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mid.Snapshot(), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return paths
}

// gClassifyNight classifies night in dir over tonight's states and
// returns the address's decision (keep included).
func gClassifyNight(t *testing.T, dir string, states string, date string) lifecycle.Decision {
	t.Helper()
	o := ClassifyOptionsFor(night.Paths{DataDir: dir, Date: date}, lifecycle.DefaultPolicy, gAsOf)
	o.States = states
	if _, err := Classify(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	d, ok := gAllDecisions(t, o)[0]
	if !ok {
		t.Fatalf("night %s: no decision for the address", date)
	}
	if _, inFile := gDecisions(t, o.Out)[0]; inFile != (d.Action != lifecycle.ActionKeep) {
		t.Errorf("night %s: decision %v, in the decisions file: %v", date, d, inFile)
	}
	return d
}

var (
	gRereg = lifecycle.Decision{Action: lifecycle.ActionUnverify, Reason: lifecycle.ReasonReregistered}
	gKeep  = lifecycle.Decision{Action: lifecycle.ActionKeep, Reason: lifecycle.ReasonRegistered}
)

// TestClassifyFirstSeenCarriedByHistoryFile: first-seen comes from the
// latest earlier first_seen.parquet plus newer snapshots, the same as
// reading every snapshot; an old snapshot can be pruned once a later night
// classified. A keep address is in first_seen.parquet, not in decisions.
func TestClassifyFirstSeenCarriedByHistoryFile(t *testing.T) {
	dir := t.TempDir()
	paths := gHistoryNights(t, dir)
	states := paths.States()
	if d := gClassifyNight(t, dir, states, gNight); d != gRereg {
		t.Fatalf("from every snapshot: %v, want %v", d, gRereg)
	}
	gClassifyNight(t, dir, states, "2026-06-08")
	gClassifyNight(t, dir, states, "2026-06-09")
	if fs := gFirstSeen(t, night.Paths{DataDir: dir, Date: "2026-06-09"}.FirstSeen())[0]; !fs.Equal(time.Date(2026, 6, 9, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("first_seen of the 9th: %v, want the end of the 8th", fs)
	}
	// The first snapshot is gone: first_seen.parquet of the 9th remembers it.
	if err := os.RemoveAll(filepath.Dir(night.Paths{DataDir: dir, Date: "2026-06-08"}.Snapshot())); err != nil {
		t.Fatal(err)
	}
	if d := gClassifyNight(t, dir, states, gNight); d != gRereg {
		t.Fatalf("from first_seen.parquet of the 9th: %v, want %v", d, gRereg)
	}
	// Without first_seen.parquet of the 9th, its decisions (non-keep rows
	// only) are not history: the 8th's file and the snapshots after it are.
	if err := os.Remove(night.Paths{DataDir: dir, Date: "2026-06-09"}.FirstSeen()); err != nil {
		t.Fatal(err)
	}
	if d := gClassifyNight(t, dir, states, gNight); d != gRereg {
		t.Fatalf("from first_seen.parquet of the 8th: %v, want %v", d, gRereg)
	}
	// Without earlier history files either, the history starts on the 9th
	// and the registration no longer looks later than the address.
	for _, n := range []string{"2026-06-08", "2026-06-09"} {
		if err := os.RemoveAll(filepath.Dir(night.Paths{DataDir: dir, Date: n}.Decisions())); err != nil {
			t.Fatal(err)
		}
	}
	if d := gClassifyNight(t, dir, states, gNight); d != gKeep {
		t.Fatalf("history from the 9th only: %v, want %v", d, gKeep)
	}
}

// TestClassifyHistoryFromOldLayoutDecisions: a night classified by an older
// lapse left decisions.parquet with every address and its first_seen and no
// first_seen.parquet; the next night reads its history from it. A file of
// the current layout (marked) is never read as history.
func TestClassifyHistoryFromOldLayoutDecisions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	paths := gHistoryNights(t, dir)
	// The 8th's snapshot is gone (pruned): only the old decisions of the
	// 9th know the address was there on the 8th.
	if err := os.RemoveAll(filepath.Dir(night.Paths{DataDir: dir, Date: "2026-06-08"}.Snapshot())); err != nil {
		t.Fatal(err)
	}
	db, err := duck.OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	old := night.Paths{DataDir: dir, Date: "2026-06-09"}.Decisions()
	writeOld := func(options string) {
		t.Helper()
		q := `SELECT 0::BIGINT AS email_id, 'u0' AS user_id, 'user0@case0.test' AS email, true AS verified, true AS "primary",
			NULL::TIMESTAMPTZ AS created, NULL::TIMESTAMPTZ AS verified_at, 'case0.test' AS domain, 'test' AS tld,
			NULL::VARCHAR AS invalid_reason, 'registered' AS state, 'rdap' AS source, 'keep' AS action,
			'domain_registered' AS reason, NULL::VARCHAR AS evidence, TIMESTAMPTZ '2026-06-09 00:00:00+00' AS first_seen`
		if err := duck.CopyTo(ctx, db, q, old, "FORMAT parquet"+options, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeOld("")
	if d := gClassifyNight(t, dir, paths.States(), gNight); d != gRereg {
		t.Fatalf("from the old-layout decisions of the 9th: %v, want %v", d, gRereg)
	}
	if fs := gFirstSeen(t, night.Paths{DataDir: dir, Date: gNight}.FirstSeen())[0]; !fs.Equal(time.Date(2026, 6, 9, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("tonight's first_seen %v, want the end of the 8th carried from the old decisions", fs)
	}
	// The same file marked as holding non-keep rows only is not history.
	writeOld(", KV_METADATA {" + decisionsMarker + ": 'non_keep'}")
	if d := gClassifyNight(t, dir, paths.States(), gNight); d != gKeep {
		t.Fatalf("a marked decisions file was read as history: %v, want %v", d, gKeep)
	}
}
