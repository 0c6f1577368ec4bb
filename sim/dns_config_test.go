package sim_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/sim"
)

// TestConfigDNSSection: lapse's config package reads the sim's [dns]
// section.
func TestConfigDNSSection(t *testing.T) {
	w := sim.NewWorld(sim.Params{Seed: 1, Start: itStart, Emails: 500})
	srv, err := sim.Start(context.Background(), w, sim.ServerOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "lapse.toml")
	if err := os.WriteFile(path, []byte(srv.Config()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, true, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, srv.Config())
	}
	cfg.DataDir = t.TempDir()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d := cfg.DNS
	port := srv.Endpoints().DNS[strings.LastIndexByte(srv.Endpoints().DNS, ':')+1:]
	if !d.Enabled || len(d.Servers) != 1 || d.Servers[0] != srv.Endpoints().DNS || strconv.Itoa(d.ReferralPort) != port ||
		d.RatePerSecond != 2000 || d.Burst != 200 || d.Concurrency != 16 || d.Timeout.Std() != 2*time.Second || d.Retries != 2 {
		t.Errorf("dns config %+v from\n%s", d, srv.Config())
	}
}
