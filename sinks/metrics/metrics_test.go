package metrics

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/internal/night"
)

// metrics.prom holds counts, no address: 0640, readable by node_exporter
// through the group.
func TestWriteMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metrics.prom")
	if err := Write(path, night.Manifest{Date: "2026-11-28", Outcome: night.OutcomeOK}, time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o640 {
		t.Errorf("metrics.prom mode %04o, want 0640", m)
	}
}

func TestWriteFigures(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metrics.prom")
	t0 := time.Date(2026, 11, 28, 2, 15, 0, 0, time.UTC)
	m := night.Manifest{Date: "2026-11-28", Outcome: night.OutcomeBlocked,
		Stages: []night.StageRecord{{Stage: "resolve", StartedAt: t0, FinishedAt: t0.Add(90 * time.Second)}},
		Figures: night.Figures{Addresses: 10, Flagged: 2, FlaggedByReason: map[string]int64{"domain_available": 2},
			LookupOutcomes: map[string]int{"rdap/available": 3, "rdap/error": 1}, Degraded: true}}
	if err := Write(path, m, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	for _, want := range []string{
		"lapse_night_date_seconds 1.795824e+09\n",
		"lapse_run_success 1\n", "lapse_changeset_blocked 1\n", "lapse_run_degraded 1\n",
		"lapse_addresses 10\n",
		`lapse_lookups{provider="rdap",outcome="available"} 3` + "\n",
		`lapse_lookups{provider="rdap",outcome="error"} 1` + "\n",
		`lapse_flagged_by_reason{reason="domain_available"} 2` + "\n",
		`lapse_stage_seconds{stage="resolve"} 90` + "\n",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics.prom lacks %q:\n%s", want, b)
		}
	}
	m.Outcome = night.OutcomeFailed
	Write(path, m, t0)
	b, _ = os.ReadFile(path)
	if !strings.Contains(string(b), "lapse_run_success 0\n") || !strings.Contains(string(b), "lapse_run_degraded 0\n") {
		t.Errorf("failed night:\n%s", b)
	}
}
