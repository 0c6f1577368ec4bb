package demo

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/pipeline"
	"github.com/lapse-dev/lapse/sim"
)

// Nights against a simulator whose DNS answers SERVFAIL, times out or
// truncates a good share of its answers: the mail path still flags only
// addresses truly at risk (SERVFAIL and timeouts are never evidence), and
// the failed lookups are asked again on later nights until the at-risk
// addresses are caught.
func TestMailPathUnderDNSFaults(t *testing.T) {
	ctx := context.Background()
	o := Options{Nights: 12, Emails: 6000, Seed: 1, Start: start, Dir: filepath.Join(t.TempDir(), "demo"),
		Policies:  []string{PolicyDefault},
		dnsFaults: sim.DNSFaults{ServFailRate: 0.25, TimeoutRate: 0.05, TruncateRate: 0.3},
		tweak: func(_ string, _ int, no *pipeline.Options) {
			// A timeout costs Timeout × (Retries+1) per question: keep the
			// nights short.
			no.Config.DNS.Timeout = config.Duration(150 * time.Millisecond)
		},
	}
	s, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	m := s[PolicyDefault].MailPath
	t.Logf("mail path under DNS faults: %+v", m)
	if m.Flagged == 0 || m.AtRisk == 0 {
		t.Fatalf("the world put nothing at risk through its mail path: %+v", m)
	}
	if m.FalseFlags != 0 || m.Precision != 1 {
		t.Errorf("mail-path flags on DNS failures: %d false of %d (samples %v)", m.FalseFlags, m.Flagged, m.FalseFlagSample)
	}
	if m.Missed != 0 {
		t.Errorf("missed %d of %d at-risk addresses (samples %v)", m.Missed, m.AtRisk, m.MissedSample)
	}
	if d := s[PolicyDefault]; d.Precision != 1 {
		t.Errorf("overall precision %.3f under DNS faults", d.Precision)
	}
}
