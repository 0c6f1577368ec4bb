package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/lapse-dev/lapse/internal/pgtest"
)

// harness holds one bench run's state.
type harness struct {
	cfg       config
	started   time.Time
	loadStart string
	// commit and dirty are HEAD's when the binaries were built: others
	// commit to the tree while a full run takes half an hour.
	commit  string
	dirty   bool
	lapse   string // the lapse binary measured
	tests   map[string]string
	cluster *pgtest.Cluster
	pgUsers int // groups still to run that need the cluster

	cases   []Case
	info    []Info
	skipped []string
	// nightS are the warm night's seconds (after the snapshot) per run, by
	// size: the scaling's figures.
	nightS   map[int][]float64
	nightCPU map[int]float64 // their CPU medians
}

// Case is one target of the results file.
type Case struct {
	Name string `json:"name"`
	// Value is lapse's figure (the median of its runs; the largest run's
	// for peak memory), Baseline the baseline's median (null without one).
	Value    float64  `json:"value"`
	Baseline *float64 `json:"baseline"`
	// Ratio is the median of the per-run ratios (each run's lapse and
	// baseline measured back to back), null without a baseline.
	Ratio  *float64 `json:"ratio"`
	Target float64  `json:"target"`
	// Op compares Ratio (Value when there is no baseline) with Target.
	Op   string `json:"op"`
	Unit string `json:"unit"`
	// BaselineUnit is the baseline's unit when it is not Unit (a count of
	// lookups against a count of domains).
	BaselineUnit string `json:"baseline_unit,omitempty"`
	Runs         int    `json:"runs"`
	// Spread is (largest − smallest) / median of the compared figure over
	// the runs (0 for one run).
	Spread float64 `json:"spread"`
	Met    bool    `json:"met"`
	// Samples are the judged figure of each run (the ratio, or the value).
	Samples []float64 `json:"samples"`
	// Seconds is the wall time of the measurement the case came from
	// (cases measured together share it).
	Seconds float64 `json:"seconds"`
	Note    string  `json:"note,omitempty"`
	Error   string  `json:"error,omitempty"`
}

// Info is a figure measured beside the targets (CPU time, file size, the
// memory curve): printed and kept, never judged.
type Info struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	Runs  int     `json:"runs"`
	// Largest: Value is the largest run's (a peak), not the median.
	Largest bool `json:"largest,omitempty"`
}

// group is one measurement producing one or more cases.
type group struct {
	key   string
	quick bool // part of bench-quick
	pg    bool // needs the throwaway PostgreSQL
	// names are the cases it produces (for error rows and skips).
	names func(h *harness) []string
	run   func(ctx context.Context, h *harness) ([]Case, error)
}

func groupKeys() []string {
	var k []string
	for _, g := range groups {
		k = append(k, g.key)
	}
	return k
}

func isGroup(k string) bool { return slices.Contains(groupKeys(), k) }

// prepare builds lapse and the test binaries and cleans the bench folder.
func (h *harness) prepare(ctx context.Context) error {
	h.tests = map[string]string{}
	h.nightS, h.nightCPU = map[int][]float64{}, map[int]float64{}
	bin := filepath.Join(h.cfg.data, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	var pkgs []string
	for _, g := range groups {
		if h.selected(g) {
			h.pgUsers += b2i(g.pg)
			if p := testPackage(g.key); p != "" && !slices.Contains(pkgs, p) {
				pkgs = append(pkgs, p)
			}
		}
	}
	h.commit, h.dirty = commitOf(h.cfg.repo)
	h.lapse = h.cfg.lapse
	if h.lapse == "" {
		h.lapse = filepath.Join(bin, "lapse")
		version := strings.TrimSpace(gitOut(h.cfg.repo, "describe", "--always", "--dirty"))
		fmt.Printf("building lapse (%s) into %s…\n", version, h.lapse)
		if err := h.goCmd(ctx, "build", "-ldflags", "-X main.version="+version, "-o", h.lapse, "./cmd/lapse"); err != nil {
			return err
		}
	}
	for _, p := range pkgs {
		out := filepath.Join(bin, strings.ReplaceAll(strings.TrimPrefix(p, "./"), "/", "_")+".test")
		fmt.Printf("building the benchmarks of %s…\n", p)
		if err := h.goCmd(ctx, "test", "-c", "-o", out, p); err != nil {
			return err
		}
		h.tests[p] = out
	}
	return nil
}

func (h *harness) selected(g group) bool {
	if h.cfg.only != nil && !h.cfg.only[g.key] {
		return false
	}
	return !h.cfg.quick || g.quick
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// goCmd runs the go command in the module root.
func (h *harness) goCmd(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, goBin(), args...)
	cmd.Dir = h.cfg.repo
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func goBin() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	return "go"
}

// cleanEnv is this process's environment without LAPSE_* settings: a
// data dir, source or provider key in the caller's shell must not change
// what the cases measure. The cases add what they set.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "LAPSE_") {
			env = append(env, e)
		}
	}
	return append(env, extra...)
}

func gitOut(dir string, args ...string) string {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return string(out)
}

// pg returns the admin DSN of the throwaway cluster, starting it once.
func (h *harness) pg(ctx context.Context) (*pgtest.Cluster, error) {
	if h.cluster != nil {
		return h.cluster, nil
	}
	fmt.Println("starting a throwaway PostgreSQL…")
	c, err := pgtest.Start(ctx)
	if err != nil {
		return nil, err
	}
	h.cluster = c
	return c, nil
}

func (h *harness) stopPG() {
	if h.cluster != nil {
		if err := h.cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "bench: stop PostgreSQL:", err)
		}
		h.cluster = nil
	}
}

func (h *harness) cleanup() { h.stopPG() }

// runGroup runs one group and keeps its cases (error rows when it failed).
func (h *harness) runGroup(ctx context.Context, g group) {
	t0 := time.Now()
	cases, err := func() (cs []Case, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
			}
		}()
		return g.run(ctx, h)
	}()
	took := time.Since(t0).Seconds()
	if g.pg {
		if h.pgUsers--; h.pgUsers == 0 {
			h.stopPG()
		}
	}
	if err != nil {
		msg := err.Error()
		if errors.Is(err, context.Canceled) {
			msg = "interrupted"
		}
		fmt.Printf("  %s: FAILED: %s\n", g.key, firstLine(msg))
		if msg != firstLine(msg) {
			fmt.Println(indent(lastLines(msg, 30), "    "))
		}
		for _, n := range g.names(h) {
			cases = append(cases, Case{Name: n, Error: firstLine(msg), Seconds: took})
		}
	}
	for i := range cases {
		if cases[i].Seconds == 0 {
			cases[i].Seconds = took
		}
		c := cases[i]
		if c.Error == "" {
			fmt.Printf("  %-58s %s\n", c.Name, verdict(c))
		}
	}
	fmt.Printf("  (%s took %s)\n", g.key, round(time.Since(t0)))
	h.cases = append(h.cases, cases...)
}

func (h *harness) missed() []string {
	var m []string
	for _, c := range h.cases {
		if !c.Met {
			m = append(m, c.Name)
		}
	}
	return m
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func indent(s, p string) string { return p + strings.ReplaceAll(s, "\n", "\n"+p) }

func round(d time.Duration) time.Duration {
	if d > time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

// procGroup makes cmd the leader of its own process group, and a canceled
// context stop the whole group (a test binary's own `lapse run`
// subprocesses included): SIGTERM, then SIGKILL 10 s later.
func procGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
}

// testPackage is the package whose benchmark a group runs ("" for none).
func testPackage(group string) string {
	switch group {
	case "apply":
		return "./sinks/apply"
	case "politeness":
		return "./sources/status/providers"
	case "warm":
		return "./pipeline/demo"
	}
	return ""
}
