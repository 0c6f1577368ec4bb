package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lapse-dev/lapse/internal/atomicfile"
)

func median(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	s := slices.Clone(x)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func maxOf(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	return slices.Max(x)
}

// spread is (largest − smallest) / median.
func spread(x []float64) float64 {
	if len(x) < 2 {
		return 0
	}
	m := median(x)
	if m == 0 {
		return 0
	}
	return (slices.Max(x) - slices.Min(x)) / m
}

func ptr(v float64) *float64 { return &v }

func compare(v float64, op string, target float64) bool {
	switch op {
	case "<=":
		return v <= target
	case ">=":
		return v >= target
	}
	return false
}

// withRatios is a case over paired runs: lapse's figures, the baseline's,
// and each run's ratio (the benchmark's own, or lapse[i]/base[i]).
func withRatios(name, unit string, lapse, base, ratios []float64, op string, target float64) Case {
	c := Case{Name: name, Value: median(lapse), Baseline: ptr(median(base)), Ratio: ptr(median(ratios)),
		Op: op, Target: target, Unit: unit, Runs: len(ratios), Spread: spread(ratios), Samples: ratios}
	c.Met = compare(*c.Ratio, op, target)
	return c
}

// ratioCase pairs lapse[i] with base[i].
func ratioCase(name, unit string, lapse, base []float64, op string, target float64) Case {
	r := make([]float64, len(lapse))
	for i := range lapse {
		r[i] = lapse[i] / base[i]
	}
	return withRatios(name, unit, lapse, base, r, op, target)
}

// metricRatioCase reads a benchmark's per-run metrics.
func metricRatioCase(name, unit string, runs []map[string]float64, lapse, base, ratio, op string, target float64) Case {
	var l, b, r []float64
	for _, m := range runs {
		l, b, r = append(l, m[lapse]), append(b, m[base]), append(r, m[ratio])
	}
	return withRatios(name, unit, l, b, r, op, target)
}

// peakCase judges the largest of the runs (a peak must hold every night).
func peakCase(name, unit string, v []float64, op string, target float64) Case {
	c := Case{Name: name, Value: maxOf(v), Op: op, Target: target, Unit: unit, Runs: len(v), Spread: spread(v), Samples: v}
	c.Met = compare(c.Value, op, target)
	return c
}

// countCase is one run's count against its baseline.
func countCase(name, unit string, v, base float64, op string, target float64) Case {
	c := Case{Name: name, Value: v, Baseline: ptr(base), Ratio: ptr(v / base), Op: op, Target: target, Unit: unit, Runs: 1, Samples: []float64{v / base}}
	c.Met = compare(*c.Ratio, op, target)
	return c
}

func verdict(c Case) string {
	switch {
	case c.Error != "":
		return "FAILED: " + c.Error
	case c.Met:
		return "met"
	}
	return "MISSED"
}

func num(v float64) string {
	a := v
	if a < 0 {
		a = -a
	}
	switch {
	case a == 0:
		return "0"
	case a >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

func (h *harness) printTable(w io.Writer) {
	fmt.Fprintf(w, "\nlapse bench, %s, commit %s, load average now %s\n", time.Now().UTC().Format(time.DateOnly), h.commit, loadavg())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "case\tlapse\tbaseline\tratio\ttarget\truns\tspread\ttook\tresult")
	for _, c := range h.cases {
		if c.Error != "" {
			fmt.Fprintf(tw, "%s\t\t\t\t\t\t\t%s\tFAILED: %s\n", c.Name, secs(c.Seconds), trunc(c.Error, 80))
			continue
		}
		base, ratio, target := "—", "—", c.Op+" "+num(c.Target)+" "+c.Unit
		if c.Baseline != nil {
			bu := c.Unit
			if c.BaselineUnit != "" {
				bu = c.BaselineUnit
			}
			base = num(*c.Baseline) + " " + bu
			ratio = num(*c.Ratio) + "x"
			target = c.Op + " " + num(c.Target) + "x"
		}
		fmt.Fprintf(tw, "%s\t%s %s\t%s\t%s\t%s\t%d\t%.0f%%\t%s\t%s\n", c.Name, num(c.Value), c.Unit, base, ratio, target,
			c.Runs, 100*c.Spread, secs(c.Seconds), verdict(c))
	}
	for _, n := range h.skipped {
		fmt.Fprintf(tw, "%s\t\t\t\t\t\t\t\tskipped (bench-quick)\n", n)
	}
	tw.Flush()
	if len(h.info) > 0 {
		fmt.Fprintln(w, "\nbeside the targets (not judged):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, i := range h.info {
			runs := fmt.Sprintf("(median of %d runs)", i.Runs)
			if i.Largest {
				runs = fmt.Sprintf("(largest of %d runs)", i.Runs)
			}
			if i.Runs == 1 {
				runs = "(1 run)"
			}
			fmt.Fprintf(tw, "  %s\t%s %s\t%s\n", i.Name, num(i.Value), i.Unit, runs)
		}
		tw.Flush()
	}
	var notes []string
	for _, c := range h.cases {
		if c.Note != "" {
			notes = append(notes, "  "+c.Name+": "+c.Note)
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w, "\nnotes:\n"+strings.Join(notes, "\n"))
	}
	fmt.Fprintln(w, "\nlapse and baseline are medians (peak RSS: the largest run); ratio is the median of the per-run ratios;")
	fmt.Fprintln(w, "spread is (largest − smallest) / median of the judged figure over the runs.")
}

func secs(s float64) string { return round(time.Duration(s * float64(time.Second))).String() }

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// commitOf is the short commit of HEAD and whether tracked files differ
// from it.
func commitOf(repo string) (string, bool) {
	c := strings.TrimSpace(gitOut(repo, "rev-parse", "--short", "HEAD"))
	if c == "" {
		c = "unknown"
	}
	return c, strings.TrimSpace(gitOut(repo, "status", "--porcelain", "--untracked-files=no")) != ""
}

// results is the results file.
type results struct {
	Machine machine  `json:"machine"`
	Commit  string   `json:"commit"`
	Dirty   bool     `json:"dirty"`
	Mode    string   `json:"mode"`
	Date    string   `json:"date"`
	Started string   `json:"started"`
	Seconds float64  `json:"seconds"`
	Cases   []Case   `json:"cases"`
	Info    []Info   `json:"info"`
	Skipped []string `json:"skipped"`
}

type machine struct {
	CPUs      int     `json:"cpus"`
	CPUModel  string  `json:"cpu_model"`
	MemoryGB  float64 `json:"memory_gb"`
	OS        string  `json:"os"`
	Go        string  `json:"go"`
	LoadStart string  `json:"load_average_start"`
	LoadEnd   string  `json:"load_average_end"`
}

func (h *harness) writeResults(mode string) (string, error) {
	date := time.Now().UTC().Format(time.DateOnly)
	r := results{
		Machine: machine{CPUs: runtime.NumCPU(), CPUModel: cpuModel(), MemoryGB: memGB(), OS: runtime.GOOS + "/" + runtime.GOARCH,
			Go: strings.TrimSpace(gitOutCmd(goBin(), "env", "GOVERSION")), LoadStart: h.loadStart, LoadEnd: loadavg()},
		Commit: h.commit, Dirty: h.dirty, Mode: mode, Date: date, Started: h.started.UTC().Format(time.RFC3339),
		Seconds: time.Since(h.started).Seconds(), Cases: h.cases, Info: h.info, Skipped: h.skipped,
	}
	if r.Info == nil {
		r.Info = []Info{}
	}
	if r.Skipped == nil {
		r.Skipped = []string{}
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(h.cfg.out, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(h.cfg.out, date+"-"+r.Commit+".json")
	return p, atomicfile.WriteFile(p, append(b, '\n'), 0o644)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func memGB() float64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return float64(int(kb/(1<<20)*10+0.5)) / 10
		}
	}
	return 0
}

func gitOutCmd(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return ""
	}
	return string(out)
}
