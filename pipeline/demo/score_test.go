package demo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/sim"
	"github.com/lapse-dev/lapse/sinks/changeset"
)

// TestScoreMailPath scores a hand-made run over the seed-1 demo world:
// flags with mail-path and domain reasons on addresses at risk through
// their mail path, through their domain, and on a healthy one.
func TestScoreMailPath(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	o := Options{Start: start, Nights: 60}
	w := sim.NewWorld(sim.Params{Seed: 1, Start: start, Emails: 20000})
	last := start.AddDate(0, 0, o.Nights-1)
	r := &policyRun{dir: t.TempDir(), flagged: map[int64]time.Time{}, world: w, bySource: map[string]int{}}
	verified := func(id int64, d time.Time) bool {
		for _, row := range w.Addresses(d) {
			if row.ID == id {
				return row.Verified
			}
		}
		return false
	}
	later := func(a, b time.Time) time.Time {
		if a.After(b) {
			return a
		}
		return b
	}
	type flag struct {
		id     int64
		at     time.Time
		reason string
	}
	var flags []flag
	var caught, caught2, missed, healthy, domain *sim.AddressTruth
	truth := w.AddressTruth(last)
	for i := range truth {
		a := &truth[i]
		switch {
		case a.MailAtRisk && a.MailRegistrableAt != nil && !a.MailRegistrableAt.Before(start):
			d0 := later(*a.MailRiskStart, start)
			if !verified(a.EmailID, d0) || a.MailRegistrableAt.Before(d0) {
				continue
			}
			switch {
			case caught == nil:
				caught = a
				flags = append(flags, flag{a.EmailID, d0, "mx_domain_redemption"})
			case caught2 == nil:
				caught2 = a
				flags = append(flags, flag{a.EmailID, d0, "domain_redemption"}) // the right address, the wrong reason
			case missed == nil && !a.MailRegistrableAt.After(last):
				missed = a
			}
		case healthy == nil && a.Domain != "" && !a.ShouldFlag && !a.MailAtRisk && verified(a.EmailID, start):
			healthy = a
			flags = append(flags, flag{a.EmailID, start, "ns_domain_available"})
		case domain == nil && a.ShouldFlag && a.RiskStart != nil && a.RegistrableAt != nil && !a.RegistrableAt.Before(start):
			domain = a
			flags = append(flags, flag{a.EmailID, later(*a.RiskStart, start), "domain_redemption"})
		}
	}
	if caught == nil || caught2 == nil || missed == nil || healthy == nil || domain == nil {
		t.Fatalf("the world lacks a case: %v %v %v %v %v", caught, caught2, missed, healthy, domain)
	}
	// one changeset.csv per flag night, as the night writes it
	byNight := map[time.Time][]flag{}
	for _, f := range flags {
		r.flagged[f.id] = f.at
		byNight[f.at] = append(byNight[f.at], f)
	}
	for at, fs := range byNight {
		dir := night.Paths{DataDir: r.dir, Date: at.Format(time.DateOnly)}.Changeset()
		if err := os.MkdirAll(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		b.WriteString("email_id,user_id,email,domain,state,reason,evidence\n")
		for _, f := range fs {
			fmt.Fprintf(&b, "%d,u,x@y,y,redemption,%s,\"{\"\"a\"\": 1}\"\n", f.id, f.reason)
		}
		if err := os.WriteFile(filepath.Join(dir, changeset.FileCSV), []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := scorePolicy(context.Background(), o, r)
	if err != nil {
		t.Fatal(err)
	}
	mp := s.MailPath
	t.Logf("mail path: %+v", mp)
	t.Logf("overall: flagged %d, true %d, false %d (%v)", s.Flagged, s.TruePositives, s.FalsePositives, s.FalsePositiveSample)
	if mp.Flagged != 2 || mp.TrueFlags != 1 || mp.FalseFlags != 1 || mp.Precision != 0.5 || len(mp.FalseFlagSample) != 1 ||
		!strings.HasPrefix(mp.FalseFlagSample[0], fmt.Sprint(healthy.EmailID)+"@") {
		t.Errorf("mail-path flags: %d flagged, %d true, %d false (%v), precision %v; want 2, 1, 1 (%d), 0.5",
			mp.Flagged, mp.TrueFlags, mp.FalseFlags, mp.FalseFlagSample, mp.Precision, healthy.EmailID)
	}
	if mp.Caught != 2 || mp.Missed != mp.AtRisk-2 || mp.Missed < 1 || mp.Recall != 2/float64(mp.AtRisk) {
		t.Errorf("mail-path recall: %d of %d caught, %d missed, recall %v", mp.Caught, mp.AtRisk, mp.Missed, mp.Recall)
	}
	if mp.LeadDaysMedian < 0 || !strings.Contains(strings.Join(mp.MissedSample, " "), " via ") {
		t.Errorf("lead %v, missed sample %v", mp.LeadDaysMedian, mp.MissedSample)
	}
	// overall precision: the mail-path flag on a mail-path risk and the
	// domain flag are right; the healthy address and the domain reason on
	// a mail-path risk are not
	if s.Flagged != 4 || s.TruePositives != 2 || s.FalsePositives != 2 {
		t.Errorf("overall: %d flagged, %d true, %d false; want 4, 2, 2", s.Flagged, s.TruePositives, s.FalsePositives)
	}
	// a night with no changeset file gives no reason: not a mail-path flag
	os.RemoveAll(filepath.Join(r.dir, "changesets"))
	s, err = scorePolicy(context.Background(), o, r)
	if err != nil {
		t.Fatal(err)
	}
	if s.MailPath.Flagged != 0 || s.MailPath.Precision != 1 || s.MailPath.Caught != 2 {
		t.Errorf("without changesets: %+v", s.MailPath)
	}
}
