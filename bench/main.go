// Command bench is `make bench` and `make bench-quick`: every performance
// target of the nightly run, side by side in one run, each case measured
// several times against a baseline measured in the same run (these
// machines are shared and noisy, so every figure is a ratio against that
// baseline, or a count that does not depend on speed). It prints one table
// (median and spread of each case), writes bench/results/DATE-COMMIT.json
// and exits 1 when a target is missed (or a case failed).
//
// The cases, and what each one runs:
//
//   - snapshot, 1M rows from PostgreSQL: `lapse snapshot` against `psql -c
//     "COPY (same query) TO STDOUT" > /dev/null` on a throwaway cluster
//     (bench/internal/snapbench), and lapse's peak RSS;
//   - warm night (nothing due) at 1M addresses: BenchmarkWarmNight
//     (pipeline/demo), the night after its snapshot against one
//     hand-written DuckDB query over the same Parquet files, and the peak
//     RSS of the whole `lapse run`; at 10M (full run only) the same, the
//     scaling being the 10M night over the 1M night;
//   - cold night on a simulated world of 1M addresses: `lapse demo
//     --nights 1 --policies default`, lookups spent against the distinct
//     registrable domains of its snapshot (counted by DuckDB);
//   - a simulated year: `lapse demo --nights 365`, the default policy's
//     lookups against the pypi preset's, at equal or better recall;
//   - resolver politeness: BenchmarkPoliteness
//     (sources/status/providers), 100 ms answers, limit R;
//   - apply, 100k rows: BenchmarkApply100k (sinks/apply) against one
//     UPDATE … FROM a temp table, on the same throwaway cluster.
//
// The benchmarks run from test binaries built here (go test -c) and report
// through b.ReportMetric; lapse itself is built into the bench folder, so
// another `make build` in the tree cannot swap it mid-run. The data (the
// warm-night fixtures, the demo worlds, the binaries) lives in the bench
// folder, $TMPDIR/lapse-bench by default (-data, LAPSE_BENCH_DIR).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is what the flags set.
type config struct {
	quick      bool
	repo       string // module root
	data       string // bench folder
	out        string // results folder
	lapse      string // lapse binary ("" builds one)
	runs       int    // overrides every timed case's runs when > 0
	sizes      []int  // warm-night sizes; the first is the baseline of the scaling
	only       map[string]bool
	yearEmails int
	yearNights int
	coldEmails int
	// quickSkips are the full run's warm-night cases bench-quick leaves out.
	quickSkips []string
}

func main() {
	var c config
	var sizes, only string
	flag.BoolVar(&c.quick, "quick", false, "the 1M cases only, fewer runs (a few minutes)")
	flag.StringVar(&c.data, "data", "", "bench folder for fixtures, worlds and binaries (default $LAPSE_BENCH_DIR, else $TMPDIR/lapse-bench)")
	flag.StringVar(&c.out, "out", "", "results folder (default bench/results in the module)")
	flag.StringVar(&c.lapse, "lapse", "", "lapse binary to measure (default: build one from this tree into the bench folder)")
	flag.IntVar(&c.runs, "runs", 0, "runs of every timed case (default: 5 full, 3 quick; the 10M night 3)")
	flag.StringVar(&sizes, "sizes", "", "warm-night sizes, comma-separated; the first is the scaling's baseline (default 1000000,10000000; quick 1000000)")
	flag.StringVar(&only, "only", "", "run only these groups, comma-separated: "+strings.Join(groupKeys(), ","))
	flag.IntVar(&c.yearEmails, "year-emails", 20000, "addresses of the simulated year's world")
	flag.IntVar(&c.yearNights, "year-nights", 365, "nights of the simulated year")
	flag.IntVar(&c.coldEmails, "cold-emails", 1_000_000, "addresses of the cold night's world")
	flag.Parse()
	if flag.NArg() > 0 {
		fail(2, "unexpected arguments %q", flag.Args())
	}
	if sizes == "" {
		sizes = "1000000,10000000"
		if c.quick {
			sizes = "1000000"
			c.quickSkips = []string{caseScaling(10_000_000, 1_000_000), caseWarmRSS(10_000_000)}
		}
	}
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fail(2, "-sizes %q: want comma-separated address counts", sizes)
		}
		c.sizes = append(c.sizes, n)
	}
	if only != "" {
		c.only = map[string]bool{}
		for _, k := range strings.Split(only, ",") {
			if !isGroup(k) {
				fail(2, "-only %q: groups are %s", k, strings.Join(groupKeys(), ", "))
			}
			c.only[k] = true
		}
	}
	var err error
	if c.repo, err = moduleRoot(); err != nil {
		fail(2, "%v", err)
	}
	if c.data == "" {
		c.data = os.Getenv("LAPSE_BENCH_DIR")
	}
	if c.data == "" {
		c.data = filepath.Join(os.TempDir(), "lapse-bench")
	}
	if c.data, err = filepath.Abs(c.data); err != nil {
		fail(2, "%v", err)
	}
	if c.out == "" {
		c.out = filepath.Join(c.repo, "bench", "results")
	}
	if c.lapse != "" {
		if c.lapse, err = filepath.Abs(c.lapse); err != nil {
			fail(2, "%v", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := run(ctx, c)
	stop()
	os.Exit(code)
}

func fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(code)
}

// moduleRoot is the folder of go.mod, from the working directory up.
func moduleRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		p := filepath.Dir(d)
		if p == d {
			return "", fmt.Errorf("no go.mod above the working directory: run from the lapse tree")
		}
		d = p
	}
}

func run(ctx context.Context, c config) int {
	h := &harness{cfg: c, started: time.Now(), loadStart: loadavg()}
	mode := "full"
	if c.quick {
		mode = "quick"
	}
	fmt.Printf("lapse bench (%s): bench folder %s\n", mode, c.data)
	if err := h.prepare(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer h.cleanup()
	if c.only == nil || c.only["warm"] {
		h.skipped = append(h.skipped, c.quickSkips...)
	}
	for _, g := range groups {
		if c.only != nil && !c.only[g.key] {
			continue
		}
		if c.quick && !g.quick {
			for _, n := range g.names(h) {
				h.skipped = append(h.skipped, n)
			}
			continue
		}
		if ctx.Err() != nil {
			break
		}
		h.runGroup(ctx, g)
	}
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "bench: interrupted; the table holds the cases measured so far and no results file is written")
		h.printTable(os.Stdout)
		return 130
	}
	h.printTable(os.Stdout)
	path, err := h.writeResults(mode)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	fmt.Printf("results: %s\n", path)
	missed := h.missed()
	if len(missed) > 0 {
		fmt.Printf("\n%d TARGET(S) MISSED: %s\n", len(missed), strings.Join(missed, "; "))
		return 1
	}
	fmt.Println("\nevery target met")
	return 0
}
