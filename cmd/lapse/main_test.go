package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// runLapse runs the CLI in-process and returns its exit code and output.
func runLapse(t *testing.T, stdin string, env []string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb, env)
	return code, out.String(), errb.String()
}

func TestExitCodes(t *testing.T) {
	if code, _, _ := runLapse(t, "", nil, "--help"); code != exitOK {
		t.Errorf("--help exit %d", code)
	}
	if code, _, errs := runLapse(t, "", nil, "no-such-command"); code != exitUsage {
		t.Errorf("unknown command exit %d (%s)", code, errs)
	}
	if code, _, errs := runLapse(t, "", nil, "config", "example", "--bogus"); code != exitUsage {
		t.Errorf("unknown flag exit %d (%s)", code, errs)
	}
	if code, _, errs := runLapse(t, "", nil, "rnu"); code != exitUsage || !strings.Contains(errs, `unknown command "rnu" for "lapse"`) || !strings.Contains(errs, "Did you mean this?\n\trun") {
		t.Errorf("misspelt command: exit %d (%s)", code, errs)
	}
	if code, _, errs := runLapse(t, "", nil, "cache", "get"); code != exitUsage || !strings.Contains(errs, "accepts 1 arg") {
		t.Errorf("missing argument: exit %d (%s)", code, errs)
	}
	if code, _, errs := runLapse(t, "", nil, "run", "extra"); code != exitUsage || !strings.Contains(errs, `unknown command "extra" for "lapse run"`) {
		t.Errorf("extra argument: exit %d (%s)", code, errs)
	}
	if code, out, _ := runLapse(t, "", nil, "help", "run"); code != exitOK || !strings.Contains(out, "lapse run") {
		t.Errorf("help run: exit %d", code)
	}
	if code, _, errs := runLapse(t, "", nil, "--log-format", "yaml", "config", "example"); code != exitUsage {
		t.Errorf("bad --log-format: exit %d (%s)", code, errs)
	}
	if code, _, errs := runLapse(t, "", nil, "--config", "/nonexistent/lapse.toml", "config", "show"); code != exitUsage || !strings.Contains(errs, "/nonexistent/lapse.toml") {
		t.Errorf("missing config: exit %d, %q", code, errs)
	}
	if code, out, _ := runLapse(t, "", nil, "config", "example"); code != exitOK || !strings.Contains(out, "[providers.rdap]") {
		t.Errorf("config example: exit %d", code)
	}
}
