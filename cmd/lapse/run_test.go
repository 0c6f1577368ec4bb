package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/pipeline/demo"
	"github.com/lapse-dev/lapse/sim"
)

// simSetup is a simulated world with its servers, a lapse.toml pointing at
// them and a JSONL export of the accounts for each night asked.
type simSetup struct {
	t      *testing.T
	dir    string
	world  *sim.World
	srv    *sim.Servers
	config string
}

var simStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newSimSetup(t *testing.T, dataDir string, extra string) *simSetup {
	return newSimSetupWith(t, dataDir, extra, sim.ServerOptions{})
}

// newSimSetupWith is newSimSetup with the servers' options (faults).
func newSimSetupWith(t *testing.T, dataDir, extra string, opts sim.ServerOptions) *simSetup {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := sim.NewWorld(sim.Params{Seed: 1, Start: simStart, Emails: 2000})
	srv, err := sim.Start(ctx, w, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(); cancel() })
	s := &simSetup{t: t, dir: t.TempDir(), world: w, srv: srv}
	s.config = s.configFor(dataDir, extra)
	return s
}

// configFor writes a lapse.toml for another data dir over the same
// servers and returns its path.
func (s *simSetup) configFor(dataDir, extra string) string {
	s.t.Helper()
	cfg, err := demo.SimConfig(s.srv, dataDir, demo.PolicyDefault, 8)
	if err != nil {
		s.t.Fatal(err)
	}
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(cfg); err != nil {
		s.t.Fatal(err)
	}
	b.WriteString(extra)
	p := filepath.Join(s.dir, filepath.Base(dataDir)+".toml")
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return p
}

// export writes the accounts of a night and returns the env pointing the
// source at it.
func (s *simSetup) export(date string) []string {
	s.t.Helper()
	d, _ := night.Parse(date)
	p := filepath.Join(s.dir, "accounts-"+date+".jsonl")
	if err := demo.WriteAccounts(p, s.world.Addresses(d)); err != nil {
		s.t.Fatal(err)
	}
	s.world.SetDate(d)
	return []string{"LAPSE_SOURCE=jsonl:" + p, "LAPSE_BRAKE_MAX_FRACTION=1"}
}

// treeSums hashes every file under dir (but the run log and locks).
func treeSums(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		out[p] = fmt.Sprintf("%x", sha256.Sum256(b))
		return nil
	})
	return out
}

func TestRunUsageErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[brake]\nmax_fractoin = 0.1\n"), 0o600)
	for _, c := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--config", bad, "run"}, nil, "max_fractoin"},
		{[]string{"--data-dir", dir, "run", "--date", "2026-13-01"}, []string{"LAPSE_SOURCE=jsonl:x"}, "--date"},
		{[]string{"--data-dir", dir, "run"}, nil, "no source"},
		{[]string{"--data-dir", dir, "run", "--bogus"}, nil, "bogus"},
		{[]string{"--data-dir", dir, "run"}, []string{"LAPSE_SOURCE=jsonl:x", "LAPSE_POLICY_NAME=strict"}, "policy.name"},
		{[]string{"--data-dir", dir, "run"}, []string{"LAPSE_SOURCE=mysql://db/accounts"}, "mysql"},
		// --source, as lapse snapshot's, wins over LAPSE_SOURCE.
		{[]string{"--data-dir", dir, "run", "--source", "mysql://db/flag"}, []string{"LAPSE_SOURCE=jsonl:x"}, "mysql://db/flag"},
	} {
		code, _, errs := runLapse(t, "", c.env, c.args...)
		if code != exitUsage || !strings.Contains(errs, c.want) || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q (want exit 2 and one line naming %q)", c.args, code, errs, c.want)
		}
	}
}

func TestRunNightsOverSimulator(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	s := newSimSetup(t, data, "")
	env := s.export("2026-01-01")
	code, out, errs := runLapse(t, "", env, "--config", s.config, "run", "--date", "2026-01-01")
	if code != exitOK || !strings.Contains(out, "night 2026-01-01 done") {
		t.Fatalf("night 1: exit %d\n%s\n%s", code, out, errs)
	}
	prom, err := os.ReadFile(filepath.Join(data, "metrics.prom"))
	if err != nil || !bytes.Contains(prom, []byte("lapse_domains ")) {
		t.Errorf("metrics.prom: %v\n%s", err, prom)
	}
	code, out, _ = runLapse(t, "", env, "--config", s.config, "run", "--date", "2026-01-01")
	if code != exitOK || !strings.Contains(out, "already finished") {
		t.Errorf("re-run: exit %d %s", code, out)
	}
	code, out, errs = runLapse(t, "", env, "--config", s.config, "--log-format", "json", "run", "--date", "2026-01-01", "--force")
	if code != exitOK || !strings.Contains(out, "night 2026-01-01 done") || !strings.Contains(errs, `"msg":"stage finished"`) {
		t.Errorf("forced re-run: exit %d %s %s", code, out, errs)
	}

	// A month later the providers are unreachable: the night fails
	// clearly, and the previous night's files stay as they were.
	before := treeSums(t, filepath.Join(data, "changesets"))
	env = s.export("2026-02-05")
	s.srv.Close()
	code, out, errs = runLapse(t, "", env, "--config", s.config, "run", "--date", "2026-02-05")
	if code != exitFailure || !strings.Contains(errs, "lookups failed") {
		t.Errorf("unreachable providers: exit %d\n%s\n%s", code, out, errs)
	}
	after := treeSums(t, filepath.Join(data, "changesets"))
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("previous changesets changed:\n%v\n%v", before, after)
	}
	if _, err := os.Stat(filepath.Join(data, "changesets", "2026-02-05")); err == nil {
		t.Error("a failed night published a changeset")
	}
}

// lapse run --source snapshots the source it names (LAPSE_SOURCE names a
// missing file), like lapse snapshot --source.
func TestRunSourceFlag(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	s := newSimSetup(t, data, "")
	env := s.export("2026-01-01")
	source := strings.TrimPrefix(env[0], "LAPSE_SOURCE=")
	env[0] = "LAPSE_SOURCE=jsonl:" + filepath.Join(t.TempDir(), "missing.jsonl")
	code, out, errs := runLapse(t, "", env, "--config", s.config, "run", "--date", "2026-01-01", "--source", source)
	if code != exitOK || !strings.Contains(out, "night 2026-01-01 done: ") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
}

func TestRunBlockedExitsThree(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	s := newSimSetup(t, data, "")
	env := append(s.export("2026-01-01"), "LAPSE_BRAKE_MAX_FRACTION=0.0001")
	code, out, errs := runLapse(t, "", env, "--config", s.config, "run", "--date", "2026-01-01")
	if code != exitBlocked || !strings.Contains(errs, "safety brake") || !strings.Contains(out, "changeset blocked") {
		t.Errorf("brake: exit %d\n%s\n%s", code, out, errs)
	}
}

// TestRunFullDisk runs the second night on a data dir whose disk is full:
// the night fails cleanly (the free-space check, or the system's message)
// and the first night's files stay intact, with no temp files left behind.
func TestRunFullDisk(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("SKIPPED: full-disk test needs a tmpfs mount (root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	data := filepath.Join(mnt, "data")
	s := newSimSetup(t, data, "")
	// The default run.min_free_bytes (256 MiB) is more than this disk.
	minFree := "LAPSE_RUN_MIN_FREE_BYTES=4194304"
	env := append(s.export("2026-01-01"), minFree)
	if code, out, errs := runLapse(t, "", env, "--config", s.config, "run", "--date", "2026-01-01"); code != exitOK {
		t.Fatalf("night 1: exit %d\n%s\n%s", code, out, errs)
	}
	before := treeSums(t, filepath.Join(data, "changesets", "2026-01-01"))
	snapBefore := treeSums(t, filepath.Join(data, "snapshots", "date=2026-01-01"))
	env = append(s.export("2026-01-02"), minFree)
	// Fill the disk.
	f, err := os.Create(filepath.Join(mnt, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	for {
		if _, err := f.Write(chunk[:4096]); err != nil {
			break
		}
	}
	f.Close()
	code, out, errs := runLapse(t, "", env, "--config", s.config, "run", "--date", "2026-01-02")
	if code != exitFailure || !strings.Contains(errs, "no space left on "+data+" (0 MB free, run.min_free_bytes is 4 MB): free space and re-run") {
		t.Errorf("full disk: exit %d\n%s\n%s", code, out, errs)
	}
	check := func(when string) {
		t.Helper()
		if a := treeSums(t, filepath.Join(data, "changesets", "2026-01-01")); fmt.Sprint(a) != fmt.Sprint(before) {
			t.Errorf("%s: the first night's changeset changed", when)
		}
		if a := treeSums(t, filepath.Join(data, "snapshots", "date=2026-01-01")); fmt.Sprint(a) != fmt.Sprint(snapBefore) {
			t.Errorf("%s: the first night's snapshot changed", when)
		}
		filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.Contains(d.Name(), ".tmp-") {
				t.Errorf("%s: temp file left behind: %s", when, p)
			}
			return nil
		})
	}
	check("disk full")
	// Free a little room at a time: each attempt either fails cleanly where
	// the disk filled up again, or resumes and finishes the night.
	fi, _ := os.Stat(filepath.Join(mnt, "filler"))
	size := fi.Size()
	for free := int64(64 << 10); ; free *= 2 {
		if free > size {
			t.Fatalf("the night never finished, even with the whole filler removed")
		}
		if err := os.Truncate(filepath.Join(mnt, "filler"), size-free); err != nil {
			t.Fatal(err)
		}
		code, out, errs = runLapse(t, "", env, "--config", s.config, "run", "--date", "2026-01-02")
		if code == exitOK {
			t.Logf("night 2 finished with %d KiB freed", free>>10)
			break
		}
		if code != exitFailure {
			t.Fatalf("%d KiB free: exit %d\n%s\n%s", free>>10, code, out, errs)
		}
		t.Logf("%d KiB free: %s", free>>10, lastLine(errs))
		check(fmt.Sprintf("%d KiB free", free>>10))
	}
	if _, err := os.Stat(filepath.Join(data, "changesets", "2026-01-02", "changeset.csv")); err != nil {
		t.Errorf("night 2 finished without its changeset: %v", err)
	}
}

func lastLine(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return l[len(l)-1]
}
