package sim_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sim"
	"github.com/lapse-dev/lapse/sources/status"
	"github.com/lapse-dev/lapse/sources/status/providers"
	"github.com/lapse-dev/lapse/sources/whois"
)

// noRDAP are the suffixes the sim's bootstrap leaves out.
var noRDAP = map[string]bool{"de": true, "jp": true}

var itStart = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// sample picks up to n domains per true state on the world's date, in
// world order, so every decisive state and the registered family are asked.
func sample(w *sim.World, n int) []sim.DomainTruth {
	per := map[lifecycle.State]int{}
	var out []sim.DomainTruth
	for _, d := range w.DomainTruth(w.Date()) {
		if per[d.State] < n {
			per[d.State]++
			out = append(out, d)
		}
	}
	return out
}

func buildProvider(t *testing.T, srv *sim.Servers, w *sim.World, only string) status.Provider {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lapse.toml")
	if err := os.WriteFile(path, []byte(srv.Config()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, true, nil)
	if err != nil {
		t.Fatalf("the sim's config does not load: %v\n%s", err, srv.Config())
	}
	cfg.DataDir = t.TempDir()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := providers.Build(cfg, providers.Deps{
		Only:   only,
		Now:    func() time.Time { return w.Date().Add(12 * time.Hour) },
		Sleep:  func(ctx context.Context, _ time.Duration) error { return ctx.Err() },
		Getenv: func(string) (string, bool) { return "", false },
	})
	if err != nil {
		t.Fatalf("build %s: %v", only, err)
	}
	return p
}

// TestProvidersAgreeWithTruth asks lapse's own providers (each alone, then
// the chain) about a sample of domains on several days, with and without
// injected faults: every decisive answer must match the truth, faults may
// only turn answers into unknown, and without faults every decisive truth
// must be found.
func TestProvidersAgreeWithTruth(t *testing.T) {
	faulty := sim.Faults{RatePerSecond: 400, Burst: 60, ErrorRate: 0.1, ResetRate: 0.05, TimeoutRate: 0.03, HangMax: 100 * time.Millisecond, MalformedRate: 0.05}
	best := faulty
	best.UnknownRate = 0.1
	for _, c := range []struct {
		name string
		opts sim.ServerOptions
	}{
		{"clean", sim.ServerOptions{}},
		{"faults", sim.ServerOptions{Domainr: best, Fastly: best, RDAP: faulty, WHOIS: faulty}},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := sim.NewWorld(sim.Params{Seed: 11, Start: itStart, Emails: 20000})
			srv, err := sim.Start(context.Background(), w, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			for _, only := range []string{"rdap", "whois", "whois-direct", "domainr", "fastly", "chain"} {
				t.Run(only, func(t *testing.T) { askProvider(t, c.name, only, w, srv) })
			}
		})
	}
}

// askProvider checks one provider (or the chain) against the truth.
func askProvider(t *testing.T, faults, only string, w *sim.World, srv *sim.Servers) {
	var p status.Provider
	if only == "whois-direct" {
		// the WHOIS client alone, straight from sources/whois,
		// finding servers through the sim's IANA referral
		wp, err := whois.New(whois.Config{IANAServer: srv.Endpoints().WHOIS, Timeout: 5 * time.Second, Now: func() time.Time { return w.Date().Add(12 * time.Hour) }})
		if err != nil {
			t.Fatal(err)
		}
		p = wp
	} else {
		p = buildProvider(t, srv, w, only)
	}
	w.SetDate(itStart)
	var asked, unknown, decisive int
	for _, day := range []int{0, 25, 50} {
		w.SetDate(itStart.AddDate(0, 0, day))
		for _, tr := range sample(w, 12) {
			got, err := p.Lookup(context.Background(), tr.Domain)
			if only == "whois-direct" && err != nil && faults == "faults" {
				// the bare client has no retry wrapper: a fault is an error
				unknown++
				continue
			}
			if only == "rdap" && noRDAP[tr.Suffix] {
				// the bootstrap names no RDAP server here, like reality
				if got.State != lifecycle.Unknown {
					t.Errorf("rdap answered %s for .%s, which has no RDAP server", got.State, tr.Suffix)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s %s: %v", only, tr.Domain, err)
			}
			asked++
			switch {
			case got.State == lifecycle.Unknown:
				unknown++
				if faults == "clean" && tr.State.Decisive() {
					t.Errorf("%s day %d %s: unknown (%s), truth %s", only, day, tr.Domain, got.Error, tr.State)
				}
			case got.State.Decisive() || tr.State.Decisive():
				decisive++
				if got.State != tr.State {
					t.Errorf("%s day %d %s (.%s): got %s, truth %s (%v)", only, day, tr.Domain, tr.Suffix, got.State, tr.State, got.Statuses)
				}
			}
		}
	}
	t.Logf("%s: %d asked, %d decisive agreed or checked, %d unknown", only, asked, decisive, unknown)
	if faults == "clean" && unknown > 0 {
		t.Errorf("%s: %d unknown answers without faults", only, unknown)
	}
}
