package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDemoCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	code, out, errs := runLapse(t, "", nil, "demo", "--nights", "2", "--emails", "600", "--seed", "2", "--dir", dir)
	if code != exitOK || !strings.Contains(out, "precision") || !strings.Contains(out, "simulat") {
		t.Fatalf("demo: exit %d\n%s\n%s", code, out, errs)
	}
	b, err := os.ReadFile(filepath.Join(dir, "score.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"default", "pypi"} {
		for _, k := range []string{"precision", "recall", "lead_days_median", "resurrections", "resurrections_caught", "lookups"} {
			if _, ok := s[p][k]; !ok {
				t.Errorf("score.json %s lacks %s", p, k)
			}
		}
	}
	// The same command again: everything is already done.
	code, out2, _ := runLapse(t, "", nil, "demo", "--nights", "2", "--emails", "600", "--seed", "2", "--dir", dir)
	b2, _ := os.ReadFile(filepath.Join(dir, "score.json"))
	// The policies run side by side: their lines interleave differently.
	if code != exitOK || string(b2) != string(b) || sortedLines(out2) != sortedLines(out) {
		t.Errorf("re-run: exit %d, score or table changed", code)
	}
}

func TestDemoUsage(t *testing.T) {
	for _, args := range [][]string{
		{"demo", "--start", "yesterday"},
		{"demo", "--nights", "0"},
		{"demo", "--policies", "strict"},
		{"demo", "--dir", ""},
	} {
		if code, _, errs := runLapse(t, "", nil, args...); code != exitUsage || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
			t.Errorf("%v: exit %d %q", args, code, errs)
		}
	}
}

func sortedLines(s string) string {
	l := strings.Split(s, "\n")
	slices.Sort(l)
	return strings.Join(l, "\n")
}
