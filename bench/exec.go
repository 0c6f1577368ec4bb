package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// progressCmd runs cmd, keeping its output, and prints a progress line
// every interval (elapsed time, and the last line the command printed, or
// what status returns) so a case of minutes is never silent. It returns
// the combined output.
func progressCmd(ctx context.Context, what string, cmd *exec.Cmd, every time.Duration, status func() string) (string, error) {
	procGroup(cmd)
	var mu sync.Mutex
	var all bytes.Buffer
	var last string
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			mu.Lock()
			all.Write(sc.Bytes())
			all.WriteByte('\n')
			if t := strings.TrimSpace(sc.Text()); t != "" {
				last = t
			}
			mu.Unlock()
		}
		io.Copy(io.Discard, pr)
	}()
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		pw.Close()
		<-done
		return "", err
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	tick := time.NewTicker(every)
	defer tick.Stop()
	var err error
wait:
	for {
		select {
		case err = <-waited:
			break wait
		case <-tick.C:
			mu.Lock()
			l := last
			mu.Unlock()
			if status != nil {
				if s := status(); s != "" {
					l = s
				}
			}
			if len(l) > 110 {
				l = l[:110] + "…"
			}
			fmt.Printf("    … %s: %s elapsed  %s\n", what, round(time.Since(t0)), l)
		}
	}
	pw.Close()
	<-done
	mu.Lock()
	defer mu.Unlock()
	out := all.String()
	if err != nil {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		return out, fmt.Errorf("%s: %w\n%s", what, err, lastLines(out, 40))
	}
	return out, nil
}

// benchLine is one result line of `go test -bench`: the name, the
// iterations and the metrics (ns/op and every b.ReportMetric unit).
var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.+)$`)

// parseBench returns the metrics of every result line of name in out, one
// map per line (one per -test.count).
func parseBench(out, name string) []map[string]float64 {
	var res []map[string]float64
	for _, l := range strings.Split(out, "\n") {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil || m[1] != name {
			continue
		}
		f := strings.Fields(m[3])
		metrics := map[string]float64{}
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			metrics[f[i+1]] = v
		}
		res = append(res, metrics)
	}
	return res
}

// runBench runs benchmark name of a test binary count times, benchtime
// each (e.g. "1x"), in pkgDir with env added, and returns each run's
// metrics.
func (h *harness) runBench(ctx context.Context, pkg, name, benchtime string, count int, env []string, status func() string) ([]map[string]float64, error) {
	bin, ok := h.tests[pkg]
	if !ok {
		return nil, fmt.Errorf("no test binary for %s", pkg)
	}
	cmd := exec.CommandContext(ctx, bin, "-test.run", "^$", "-test.bench", "^"+name+"$",
		"-test.benchtime", benchtime, "-test.count", strconv.Itoa(count), "-test.timeout", "4h")
	cmd.Dir = h.cfg.repo + "/" + strings.TrimPrefix(pkg, "./")
	cmd.Env = cleanEnv(env...)
	out, err := progressCmd(ctx, name, cmd, 30*time.Second, status)
	if err != nil {
		return nil, err
	}
	runs := parseBench(out, name)
	if len(runs) != count {
		return nil, fmt.Errorf("%s: %d result lines, want %d:\n%s", name, len(runs), count, lastLines(out, 40))
	}
	return runs, nil
}
