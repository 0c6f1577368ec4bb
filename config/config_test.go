package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestExampleIsTheDefault(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "lapse.toml")
	if err := os.WriteFile(p, []byte(Example()), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Load(p, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	// The example spells empty maps and lists; normalize nil vs empty.
	got.Providers.RDAP.Servers, got.Providers.WHOIS.Servers = nil, nil
	got.Providers.Chain, got.Brake.Protected = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("example.toml differs from Default():\n got %+v\nwant %+v", got, want)
	}
}

func TestPrecedenceFileThenEnv(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "lapse.toml")
	os.WriteFile(p, []byte("data_dir = \"/from/file\"\n[providers.rdap]\nrate_per_second = 7.5\n[policy]\nwatch_window = \"10d\"\n"), 0o600)
	c, err := Load(p, true, []string{"LAPSE_DATA_DIR=/from/env", "LAPSE_BRAKE_PROTECTED=a.com, b.org", "HOME=/x"})
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/from/env" {
		t.Errorf("data_dir = %q, want env to win", c.DataDir)
	}
	if c.Providers.RDAP.RatePerSecond != 7.5 {
		t.Errorf("rdap rate = %v, want 7.5 from file", c.Providers.RDAP.RatePerSecond)
	}
	if c.Policy.WatchWindow.Std() != 10*24*time.Hour {
		t.Errorf("watch window = %v", c.Policy.WatchWindow.Std())
	}
	if !reflect.DeepEqual(c.Brake.Protected, []string{"a.com", "b.org"}) {
		t.Errorf("protected = %q", c.Brake.Protected)
	}
}

func TestBadConfigNamesTheKey(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "lapse.toml")
	os.WriteFile(p, []byte("data_dri = \"x\"\n"), 0o600)
	if _, err := Load(p, true, nil); err == nil || !strings.Contains(err.Error(), "data_dri") {
		t.Fatalf("unknown key: err = %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.toml"), true, nil); err == nil {
		t.Fatal("a missing named config file must be an error")
	}
	if _, err := Load(filepath.Join(dir, "missing.toml"), false, nil); err != nil {
		t.Fatalf("a missing default config file is fine: %v", err)
	}
	if _, err := Load("", false, []string{"LAPSE_RESOLVE_CONCURRENCY=many"}); err == nil || !strings.Contains(err.Error(), "LAPSE_RESOLVE_CONCURRENCY") {
		t.Fatalf("bad env value: err = %v", err)
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	t.Setenv("LAPSE_TEST_SECRET", "hunter2")
	s, err := ReadSecret("domainr client_id", "LAPSE_TEST_SECRET", "")
	if err != nil || s.Reveal() != "hunter2" {
		t.Fatalf("ReadSecret = %v, %v", s, err)
	}
	for _, out := range []string{s.String(), strings.TrimSpace(strings.ReplaceAll(fmtAll(s), "\n", ""))} {
		if strings.Contains(out, "hunter2") {
			t.Fatalf("secret printed: %q", out)
		}
	}
	for in, bad := range map[string]string{
		"postgres://lapse:hunter2@db:5432/warehouse?sslmode=disable": "hunter2",
		"postgres://db/warehouse?password=hunter2":                   "hunter2",
		"host=db user=lapse password=hunter2 dbname=w":               "hunter2",
	} {
		if out := RedactSource(in); strings.Contains(out, bad) {
			t.Errorf("RedactSource(%q) = %q", in, out)
		}
	}
}

// resolve.authoritative_every: 90 days by default, set in days from the
// file or LAPSE_RESOLVE_AUTHORITATIVE_EVERY, never negative.
func TestAuthoritativeEvery(t *testing.T) {
	if got := Default().Resolve.AuthoritativeEvery.Std(); got != 90*24*time.Hour {
		t.Errorf("default %v, want 90 days", got)
	}
	c, err := Load("", false, []string{"LAPSE_RESOLVE_AUTHORITATIVE_EVERY=30d"})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Resolve.AuthoritativeEvery.Std(); got != 30*24*time.Hour {
		t.Errorf("from the environment: %v, want 30 days", got)
	}
	c = Default()
	c.DataDir = "x"
	c.Resolve.AuthoritativeEvery = Duration(-time.Hour)
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "resolve.authoritative_every") {
		t.Errorf("negative: %v", err)
	}
}
