package pipeline

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// metrics.prom holds counts, no address: 0640, readable by node_exporter
// through the group.
func TestWriteMetricsMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metrics.prom")
	if err := WriteMetrics(path, NightManifest{Date: "2026-11-28", Outcome: OutcomeOK}, time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC)); err != nil {
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
