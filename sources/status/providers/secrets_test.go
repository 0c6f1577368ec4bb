package providers

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lapse-dev/lapse/config"
)

// A 401 names where the refused key came from: the file setting and its
// path, or the environment variable actually read; never the key.
func TestUnauthorizedNamesTheKeysSource(t *testing.T) {
	w := newWorld(t)
	w.domainrStatus = func(string) (int, string) { return 401, "" }
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("file-sekrit-7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, only string
		mod        func(*config.Config)
		env        []string
		want       string
	}{
		{"domainr client_id_file", "domainr", func(c *config.Config) { c.Providers.Domainr.ClientIDFile = keyFile }, nil,
			"check providers.domainr.client_id_file (" + keyFile + ")"},
		{"domainr client_id_env", "domainr", func(c *config.Config) { c.Providers.Domainr.ClientIDEnv = "MY_DOMAINR_ID" },
			[]string{"MY_DOMAINR_ID", "env-sekrit-7"}, "check MY_DOMAINR_ID;"},
		{"domainr env over file", "domainr", func(c *config.Config) { c.Providers.Domainr.ClientIDFile = keyFile },
			[]string{"LAPSE_DOMAINR_CLIENT_ID", "env-sekrit-7"}, "check LAPSE_DOMAINR_CLIENT_ID;"},
		{"domainr mashape_key_file", "domainr", func(c *config.Config) { c.Providers.Domainr.MashapeKeyFile = keyFile }, nil,
			"check providers.domainr.mashape_key_file (" + keyFile + ")"},
		{"fastly key_file", "fastly", func(c *config.Config) {
			c.Providers.Fastly.BaseURL = w.domainr.URL
			c.Providers.Fastly.KeyFile = keyFile
		}, nil, "check providers.fastly.key_file (" + keyFile + ")"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := w.config(t)
			c.mod(&cfg)
			p, err := Build(cfg, Deps{Only: c.only, Sleep: noSleep, Getenv: env(c.env...)})
			if err != nil {
				t.Fatal(err)
			}
			lc, err := p.Lookup(context.Background(), "a.com")
			if err != nil || len(lc.Evidence) != 1 {
				t.Fatalf("lookup: %+v %v", lc, err)
			}
			msg := lc.Evidence[0].Error
			if !strings.Contains(msg, c.want) || strings.Contains(msg, "sekrit") {
				t.Errorf("401 message %q, want it to name %q and no key", msg, c.want)
			}
			if c.want[len("check "):] != "LAPSE_DOMAINR_CLIENT_ID;" && strings.Contains(msg, "LAPSE_DOMAINR_CLIENT_ID") {
				t.Errorf("401 message %q names LAPSE_DOMAINR_CLIENT_ID, which was not read", msg)
			}
		})
	}
}
