package demo

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/pipeline"
	"github.com/lapse-dev/lapse/sim"
)

// nightDecisions are the decisions of a night's verified addresses on
// domain, as "action/reason" by email id (keep rows are not written).
func nightDecisions(t *testing.T, db *sql.DB, p night.Paths, domain string) map[int64]string {
	t.Helper()
	rows, err := db.Query(`SELECT s.email_id, coalesce(d.action || '/' || d.reason, 'keep')
		FROM read_parquet(?) s LEFT JOIN read_parquet(?) d USING (email_id)
		WHERE s.verified AND s.domain = ?`, p.Snapshot(), p.Decisions(), domain)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var id int64
		var v string
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		out[id] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Issue 11: with Domainr first, a name dropped and registered again
// before lapse first saw it (seed 7, night 2026-11-01: zoeschmidt.com,
// registered again on 2026-10-16, two verified addresses whose owners
// predate it) looks "active" to Domainr. Its addresses are proposed
// domain_reregistered on the night its authoritative refresh runs: the
// first night when RDAP's budget reaches it, the second when the first
// night's RDAP budget was spent on other domains.
func TestDomainrFirstCatchesReregisteredBeforeFirstNight(t *testing.T) {
	ctx := context.Background()
	first := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const domain = "zoeschmidt.com"
	for _, budget := range []int{0, 5} {
		t.Run(fmt.Sprintf("rdap budget %d", budget), func(t *testing.T) {
			// The default (RDAP-first) policy beside it: what the registries'
			// registration dates can tell.
			o := Options{Nights: 2, Emails: 3000, Seed: 7, Start: first, Dir: t.TempDir(), Policies: []string{PolicyDefault, PolicyDomainrFirst}}
			o.tweak = func(policy string, n int, ro *pipeline.Options) {
				if n == 1 && policy == PolicyDomainrFirst {
					ro.Config.Providers.RDAP.BudgetPerNight = budget
				}
			}
			sc, err := Run(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(o.Dir, PolicyDomainrFirst)
			p1 := night.Paths{DataDir: dir, Date: "2026-11-01"}
			p2 := night.Paths{DataDir: dir, Date: "2026-11-02"}
			plan1, err := pipeline.ReadPlan(p1.Plan())
			if err != nil {
				t.Fatal(err)
			}
			refreshed := slices.Contains(plan1.Authoritative, domain)
			if refreshed != (budget == 0) || !slices.Contains(plan1.Lookups, domain) {
				t.Fatalf("night 1: %s looked up %v, with RDAP %v (budget %d)", domain, slices.Contains(plan1.Lookups, domain), refreshed, budget)
			}
			if budget > 0 {
				if r := plan1.Refresh; r == nil || r.Planned != budget || r.NoDatesLeft != r.NoDates-budget || r.BacklogNights < 2 {
					t.Errorf("night 1 refresh: %+v", r)
				}
			}
			d1 := nightDecisions(t, db, p1, domain)
			if len(d1) < 2 {
				t.Fatalf("night 1: %d verified addresses on %s, want 2: the world changed", len(d1), domain)
			}
			want1 := "unverify/" + string(lifecycle.ReasonReregistered)
			if budget > 0 {
				want1 = "keep" // Domainr said active, RDAP was not asked yet
			}
			for id, v := range d1 {
				if v != want1 {
					t.Errorf("night 1: address %d on %s decided %s, want %s", id, domain, v, want1)
				}
			}
			if budget > 0 {
				plan2, err := pipeline.ReadPlan(p2.Plan())
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Contains(plan2.Authoritative, domain) || plan2.ByRisk["no_dates"] == 0 {
					t.Fatalf("night 2: the refresh of %s was not planned: %v", domain, plan2.ByRisk)
				}
				for id, v := range nightDecisions(t, db, p2, domain) {
					if v != "unverify/"+string(lifecycle.ReasonReregistered) {
						t.Errorf("night 2: address %d on %s decided %s, want unverify/domain_reregistered", id, domain, v)
					}
				}
			}
			// Every one the RDAP-first chain catches (those on .de, whose
			// WHOIS publishes no registration date, neither can).
			s, d := sc[PolicyDomainrFirst], sc[PolicyDefault]
			if s.ResurrectionsBeforeStartCaught < 2 || s.ResurrectionsBeforeStartCaught != d.ResurrectionsBeforeStartCaught ||
				s.ResurrectionsBeforeStart != d.ResurrectionsBeforeStart || s.Precision != 1 {
				t.Errorf("score: %d of %d resurrections before the first night caught (RDAP first: %d of %d), precision %v (missed %v, false positives %v)",
					s.ResurrectionsBeforeStartCaught, s.ResurrectionsBeforeStart, d.ResurrectionsBeforeStartCaught, d.ResurrectionsBeforeStart,
					s.Precision, s.MissedBeforeStartSample, s.FalsePositiveSample)
			}
			if budget > 0 && (s.LookupsBySource["rdap"] == 0 || s.LookupsBySource["domainr"] == 0) {
				t.Errorf("lookups by source %v: want Domainr and RDAP", s.LookupsBySource)
			}
		})
	}
}

// Issue 11: with Domainr first, whose "active" says nothing of expiry or
// grace, every verified address of a domain the registry shows expiring
// or in grace is watched on each such night (the kept expiry date
// schedules the RDAP lookups and marks the registration as expiring).
// The domains counted were registered (not yet in grace) on the first
// night, so they reach their expiry under lapse's watch.
func TestDomainrFirstWatchesExpiringAndGrace(t *testing.T) {
	ctx := context.Background()
	const nights = 40
	o := Options{Nights: nights, Emails: 2000, Seed: 1, Start: start, Dir: t.TempDir(), Policies: []string{PolicyDomainrFirst}}
	if _, err := Run(ctx, o); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w := sim.NewWorld(sim.Params{Seed: o.Seed, Start: start, Emails: o.Emails})
	far := map[string]bool{}
	for _, d := range w.DomainTruth(start) {
		// A registry that publishes no expiry (DENIC) shows no grace
		// either: no source can tell.
		if (d.State == lifecycle.Registered || d.State == lifecycle.Expiring) && d.ExpiresAt != nil {
			far[d.Domain] = true
		}
	}
	seen := map[lifecycle.State]int{}
	for n := 1; n < nights; n++ {
		date := start.AddDate(0, 0, n)
		p := night.Paths{DataDir: filepath.Join(o.Dir, PolicyDomainrFirst), Date: date.Format(time.DateOnly)}
		for _, d := range w.DomainTruth(date) {
			if !far[d.Domain] || (d.State != lifecycle.Expiring && d.State != lifecycle.Grace) {
				continue
			}
			for id, v := range nightDecisions(t, db, p, d.Domain) {
				seen[d.State]++
				if len(v) < 6 || v[:6] != "watch/" {
					t.Errorf("%s: %s is %s, address %d decided %s, want watch", p.Date, d.Domain, d.State, id, v)
				}
			}
		}
	}
	t.Logf("address-nights checked: %v", seen)
	if seen[lifecycle.Expiring] == 0 || seen[lifecycle.Grace] == 0 {
		t.Errorf("addresses checked: %v: the world has none expiring or in grace to watch: the test proves nothing", seen)
	}
}
