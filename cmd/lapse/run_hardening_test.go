package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/pipeline"
	"github.com/lapse-dev/lapse/sim"
)

// Dates that cannot be a real night are usage errors; tomorrow (UTC) is
// the latest accepted without --allow-future.
func TestRunRefusesImpossibleDates(t *testing.T) {
	dir := t.TempDir()
	ahead := time.Now().UTC().AddDate(0, 3, 0).Format(time.DateOnly)
	for date, want := range map[string]string{
		"9999-12-31": "in the future",
		ahead:        "in the future",
		"0000-01-01": "before 2000",
		"1999-12-31": "before 2000",
	} {
		code, _, errs := runLapse(t, "", []string{"LAPSE_SOURCE=jsonl:x"}, "--data-dir", dir, "run", "--date", date)
		if code != exitUsage || !strings.Contains(errs, want) || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
			t.Errorf("--date %s: exit %d, stderr %q (want exit 2 and one line saying %q)", date, code, errs, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "lapse.lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused date touched the data dir (%v)", err)
	}
	now := time.Date(2026, 12, 2, 0, 49, 0, 0, time.UTC)
	for _, c := range []struct {
		date  string
		allow bool
		ok    bool
	}{
		{"2026-12-02", false, true}, {"2026-12-03", false, true}, {"2026-12-04", false, false},
		{"2026-12-04", true, true}, {"9999-12-31", true, true}, {"1999-12-31", true, false}, {"2000-01-01", false, true},
	} {
		if err := checkNightDate(c.date, now, c.allow); (err == nil) != c.ok || (err != nil && exitCode(err) != exitUsage) {
			t.Errorf("checkNightDate(%s, allow future %v) = %v, want ok %v", c.date, c.allow, err, c.ok)
		}
	}
}

func TestDegradedExitCode(t *testing.T) {
	err := fmt.Errorf("night 2026-01-01: %w", pipeline.ErrDegraded)
	if code := exitCode(err); code != exitDegraded || exitDegraded != 4 {
		t.Errorf("degraded night: exit %d", code)
	}
	if code := exitCode(fmt.Errorf("wrapped: %w", err)); code != exitDegraded {
		t.Errorf("wrapped degraded night: exit %d", code)
	}
}

// With most lookups failing the night publishes its changeset, says how
// many domains are unknown and exits 4.
func TestRunMostlyFailedLookupsExitsFour(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	flaky := sim.Faults{ErrorRate: 0.7}
	s := newSimSetupWith(t, data, "", sim.ServerOptions{RDAP: flaky, WHOIS: flaky})
	env := append(s.export("2026-01-01"),
		"LAPSE_PROVIDERS_RDAP_RETRIES=0", "LAPSE_PROVIDERS_WHOIS_RETRIES=0",
		"LAPSE_PROVIDERS_RDAP_BREAKER_THRESHOLD=1000000", "LAPSE_PROVIDERS_WHOIS_BREAKER_THRESHOLD=1000000")
	code, out, errs := runLapse(t, "", env, "--config", s.config, "run", "--date", "2026-01-01")
	if code != exitDegraded || !strings.Contains(out, "DEGRADED") || !strings.Contains(out, "domains unknown (") ||
		!strings.Contains(errs, "resolve.max_unknown_fraction") {
		t.Fatalf("flaky providers: exit %d\n%s\n%s", code, out, errs)
	}
	sum, err := os.ReadFile(filepath.Join(data, "changesets", "2026-01-01", "summary.md"))
	if err != nil || !strings.Contains(string(sum), "Degraded night") {
		t.Errorf("summary.md: %v\n%s", err, sum)
	}
	prom, _ := os.ReadFile(filepath.Join(data, "metrics.prom"))
	if !strings.Contains(string(prom), "lapse_run_degraded 1\n") {
		t.Errorf("metrics.prom:\n%s", prom)
	}
	// Re-run: already finished, still degraded.
	if code, _, _ := runLapse(t, "", env, "--config", s.config, "run", "--date", "2026-01-01"); code != exitDegraded {
		t.Errorf("re-run of a degraded night: exit %d", code)
	}
}

// A header-only CSV after a real night stops the night (exit 1) with a
// clear message, unless --accept-shrink.
func TestRunEmptyExportStops(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	s := newSimSetup(t, data, "")
	env := s.export("2026-01-01")
	if code, out, errs := runLapse(t, "", env, "--config", s.config, "run", "--date", "2026-01-01"); code != exitOK {
		t.Fatalf("night 1: exit %d\n%s\n%s", code, out, errs)
	}
	empty := filepath.Join(s.dir, "empty.csv")
	if err := os.WriteFile(empty, []byte("id,user_id,email,verified,primary\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env = []string{"LAPSE_SOURCE=csv:" + empty, "LAPSE_BRAKE_MAX_FRACTION=1"}
	code, out, errs := runLapse(t, "", env, "--config", s.config, "run", "--date", "2026-01-02")
	if code != exitFailure || !strings.Contains(errs, "0 verified addresses tonight") || !strings.Contains(errs, "--accept-shrink") || out != "" {
		t.Errorf("empty export: exit %d\n%s\n%s", code, out, errs)
	}
	if strings.Contains(errs, "@") {
		t.Errorf("an address in the output:\n%s", errs)
	}
	code, out, errs = runLapse(t, "", env, "--config", s.config, "run", "--date", "2026-01-02", "--accept-shrink")
	if code != exitOK || !strings.Contains(out, "0 addresses") {
		t.Errorf("accepted shrink: exit %d\n%s\n%s", code, out, errs)
	}
}

// Less free space than run.min_free_bytes is a clean failure (exit 1),
// not a crash.
func TestRunNoFreeSpace(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	s := newSimSetup(t, data, "")
	env := append(s.export("2026-01-01"), fmt.Sprintf("LAPSE_RUN_MIN_FREE_BYTES=%d", int64(1)<<62))
	code, out, errs := runLapse(t, "", env, "--config", s.config, "run", "--date", "2026-01-01")
	if code != exitFailure || !strings.Contains(errs, "no space left on "+data+" (") || !strings.Contains(errs, "run.min_free_bytes is") ||
		!strings.Contains(errs, "free space and re-run") || strings.Contains(errs, "goroutine") {
		t.Errorf("no free space: exit %d\n%s\n%s", code, out, errs)
	}
	prom, _ := os.ReadFile(filepath.Join(data, "metrics.prom"))
	if !strings.Contains(string(prom), "lapse_run_success 0\n") {
		t.Errorf("metrics.prom:\n%s", prom)
	}
}
