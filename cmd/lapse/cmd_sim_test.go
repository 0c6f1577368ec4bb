package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/sim"
)

func TestSimHelpSaysSimulation(t *testing.T) {
	for _, args := range [][]string{{"sim", "--help"}, {"sim", "serve", "--help"}, {"sim", "truth", "--help"}, {"sim", "seed", "--help"}} {
		code, out, _ := runLapse(t, "", nil, args...)
		if code != exitOK || !strings.Contains(out, "SIMULATION") {
			t.Errorf("%v: exit %d, help does not say it is a simulation:\n%s", args, code, out)
		}
	}
}

func TestSimTruthAndSeed(t *testing.T) {
	dir := t.TempDir()
	world := []string{"--seed", "4", "--start", "2026-03-01", "--emails", "2000"}
	out, addr := filepath.Join(dir, "d.csv"), filepath.Join(dir, "a.parquet")
	code, _, errs := runLapse(t, "", nil, append([]string{"sim", "truth", "--date", "2026-04-01", "--out", out, "--addresses", addr}, world...)...)
	if code != exitOK {
		t.Fatalf("truth: exit %d: %s", code, errs)
	}
	b, err := os.ReadFile(out)
	if err != nil || !strings.HasPrefix(string(b), "domain,suffix,kind,state,registered_at,expires_at") {
		t.Errorf("truth csv: %v %.80s", err, b)
	}
	if _, err := os.Stat(addr); err != nil {
		t.Error(err)
	}
	// the same world flags give the same truth
	out2 := filepath.Join(dir, "d2.csv")
	runLapse(t, "", nil, append([]string{"sim", "truth", "--date", "2026-04-01", "--out", out2}, world...)...)
	if b2, _ := os.ReadFile(out2); string(b2) != string(b) {
		t.Error("same world flags, different truth")
	}
	seed := filepath.Join(dir, "u.jsonl")
	if code, _, errs := runLapse(t, "", nil, append([]string{"sim", "seed", "--to", "jsonl:" + seed}, world...)...); code != exitOK {
		t.Fatalf("seed: exit %d: %s", code, errs)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"sim", "truth", "--out", filepath.Join(dir, "x.txt")}, ".csv or .parquet"},
		{[]string{"sim", "truth"}, "--out"},
		{[]string{"sim", "truth", "--out", out, "--start", "March"}, "--start"},
		{[]string{"sim", "seed", "--to", "mysql://x"}, "--to"},
		{[]string{"sim", "serve"}, "--endpoints-file"},
		{[]string{"sim", "serve", "--endpoints-file", filepath.Join(dir, "e.json"), "--faults", "error=2"}, "outside 0..1"},
		{[]string{"sim", "serve", "--endpoints-file", filepath.Join(dir, "e.json"), "--faults-rdap", "bogus=1"}, "--faults-rdap"},
	} {
		code, _, errs := runLapse(t, "", nil, c.args...)
		if code != exitUsage || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, %q; want usage error naming %q", c.args, code, errs, c.want)
		}
	}
}

func TestSimServe(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g := &globalOptions{stdout: io.Discard, stderr: io.Discard, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	o := simServeOptions{world: worldOptions{seed: 2, start: "2026-03-01", emails: 1000}, endpointsFile: filepath.Join(dir, "endpoints.json"), faults: "latency=1ms"}
	var checked bool
	o.ready = func(ep sim.Endpoints) {
		defer cancel()
		b, err := os.ReadFile(o.endpointsFile)
		if err != nil {
			t.Error(err)
			return
		}
		var got map[string]string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Error(err)
			return
		}
		for _, k := range []string{"domainr", "fastly", "rdap_bootstrap", "rdap", "whois", "control", "config"} {
			if got[k] == "" {
				t.Errorf("endpoints file lacks %q", k)
			}
		}
		cfgPath := filepath.Join(dir, "lapse.toml")
		os.WriteFile(cfgPath, []byte(got["config"]), 0o600)
		cfg, err := config.Load(cfgPath, true, nil)
		if err != nil {
			t.Errorf("config does not load: %v", err)
			return
		}
		if cfg.Providers.RDAP.BootstrapURL != ep.RDAPBootstrap || cfg.Providers.WHOIS.Servers["de"] != ep.WHOIS {
			t.Errorf("config does not point at the sim: %+v", cfg.Providers)
		}
		key, err := config.ReadSecret("domainr", "", cfg.Providers.Domainr.ClientIDFile)
		if err != nil || key == "" {
			t.Errorf("domainr key file: %v", err)
		}
		resp, err := http.Get(ep.Domainr + "/v2/status?domain=gmail.com&client_id=" + key.Reveal())
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("domainr with the written key: %v %v", resp, err)
		} else {
			resp.Body.Close()
		}
		checked = true
	}
	err := runSimServe(ctx, g, o)
	if !errors.Is(err, context.Canceled) || !checked {
		t.Errorf("serve returned %v (checked %v), want context.Canceled after the checks", err, checked)
	}
}
