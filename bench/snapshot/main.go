// Command snapshot is `make bench-snapshot`: it starts a throwaway
// PostgreSQL (internal/pgtest), seeds a PyPI-shaped user_emails table
// (bench/internal/snapbench), then times `lapse snapshot` against `psql -c
// "COPY (same query) TO STDOUT" > /dev/null`, several runs each, and prints
// the ratio of the medians and lapse's peak RSS. `make bench` runs the same
// measurement as one of its cases.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/lapse-dev/lapse/bench/internal/snapbench"
	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/pgtest"
	"github.com/lapse-dev/lapse/pipeline"
	"github.com/lapse-dev/lapse/sources/emails"
)

func main() {
	lapse := flag.String("lapse", "bin/lapse", "lapse binary to time")
	rows := flag.Int("rows", 1_000_000, "rows to seed")
	runs := flag.Int("runs", 5, "timed runs of each command")
	dsn := flag.String("dsn", "", "use this database instead of a throwaway cluster (its user_emails table is replaced)")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "instead of timing, run the snapshot stage in-process and write a CPU profile here")
	flag.IntVar(&batchSize, "batch", 0, "rows per batch with -cpuprofile (0: the stage's default)")
	flag.Parse()
	if err := run(*lapse, *rows, *runs, *dsn); err != nil {
		fmt.Fprintln(os.Stderr, "bench-snapshot:", err)
		os.Exit(1)
	}
}

var (
	cpuProfile string
	batchSize  int
)

// profile runs the snapshot stage in this process under the CPU profiler.
func profile(ctx context.Context, dsn string) error {
	dir, err := os.MkdirTemp("", "lapse-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	c := config.Default()
	c.DataDir, c.Source = dir, dsn
	// The source alone, for comparison.
	for range 2 {
		t0 := time.Now()
		r, err := emails.Open(ctx, dsn, emails.Options{Postgres: c.Postgres})
		if err != nil {
			return err
		}
		var n int64
		for {
			b, err := r.Next(ctx)
			if err != nil {
				break
			}
			n += b.NumRows()
			b.Release()
		}
		r.Close()
		fmt.Printf("source only: %d rows in %s\n", n, time.Since(t0).Round(time.Millisecond))
	}
	f, err := os.Create(cpuProfile)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	t0 := time.Now()
	so := pipeline.SnapshotOptionsFromConfig(c, "2026-01-01")
	so.Read.BatchSize = batchSize
	so.Progress = &heapAt{rows: 600_000, path: cpuProfile + ".heap"}
	res, err := pipeline.Snapshot(ctx, so)
	pprof.StopCPUProfile()
	if err != nil {
		return err
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("in-process snapshot: %d rows in %s, heap sys %d MB, total alloc %d MB, %d GCs; profile in %s\n",
		res.Manifest.Rows.Addresses, time.Since(t0).Round(time.Millisecond), ms.HeapSys>>20, ms.TotalAlloc>>20, ms.NumGC, cpuProfile)
	return nil
}

func run(lapse string, rows, runs int, dsn string) error {
	ctx := context.Background()
	if dsn == "" {
		c, err := pgtest.Start(ctx)
		if err != nil {
			return err
		}
		defer c.Stop()
		if dsn, err = c.CreateDB(ctx, "lapse_bench"); err != nil {
			return err
		}
	}
	fmt.Printf("seeding %d rows…\n", rows)
	t0 := time.Now()
	verified, err := snapbench.Seed(ctx, dsn, rows)
	if err != nil {
		return err
	}
	fmt.Printf("seeded in %s (%d verified)\n", time.Since(t0).Round(time.Millisecond), verified)
	if cpuProfile != "" {
		return profile(ctx, dsn)
	}
	res, err := snapbench.Measure(ctx, snapbench.Options{Lapse: lapse, DSN: dsn, Runs: runs,
		Run: func(i int, p, l, b snapbench.Sample) {
			fmt.Printf("run %d: psql COPY %6.3fs (cpu %5.2fs)   lapse snapshot %6.3fs (cpu %5.2fs, peak RSS %d MB)   psql binary COPY %6.3fs\n",
				i+1, p.Wall.Seconds(), p.CPU.Seconds(), l.Wall.Seconds(), l.CPU.Seconds(), l.RSSKB/1024, b.Wall.Seconds())
		}})
	if err != nil {
		return err
	}
	ps, ls := res.PSQL, res.Lapse
	pm, lm := median(ps, wallOf), median(ls, wallOf)
	pc, lc := median(ps, cpuOf), median(ls, cpuOf)
	var peak int64
	for _, l := range ls {
		peak = max(peak, l.RSSKB)
	}
	fmt.Printf("\n%d rows (%d verified), %d runs each, medians:\n", rows, verified, runs)
	fmt.Printf("  psql COPY … TO STDOUT > /dev/null  %7.3fs\n", pm.Seconds())
	fmt.Printf("  lapse snapshot                     %7.3fs  (%.2fx; target <= 1.5x)\n", lm.Seconds(), lm.Seconds()/pm.Seconds())
	bm := median(res.PSQLBinary, wallOf)
	fmt.Printf("  psql binary COPY (lapse's format)  %7.3fs  (lapse %.2fx of it; not the target's baseline)\n", bm.Seconds(), lm.Seconds()/bm.Seconds())
	fmt.Printf("  client CPU (user+sys): psql %.2fs, lapse %.2fs (lapse asks for binary, which costs the server less)\n", pc.Seconds(), lc.Seconds())
	fmt.Printf("  machine load average at the end: %s\n", loadavg())
	fmt.Printf("  lapse peak RSS                     %7d MB (target < 300 MB)\n", peak/1024)
	fmt.Printf("  emails.parquet                     %7.1f MB\n", float64(res.FileBytes)/(1<<20))
	return nil
}

func median(s []snapbench.Sample, f func(snapbench.Sample) time.Duration) time.Duration {
	d := make([]time.Duration, len(s))
	for i := range s {
		d[i] = f(s[i])
	}
	slices.Sort(d)
	return d[len(d)/2]
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func wallOf(s snapbench.Sample) time.Duration { return s.Wall }
func cpuOf(s snapbench.Sample) time.Duration  { return s.CPU }

// heapAt writes a heap profile once the snapshot has read rows rows: a heap
// profile mid-run shows what the peak is made of.
type heapAt struct {
	rows, seen int
	path       string
	done       bool
}

func (h *heapAt) Start(int) {}
func (h *heapAt) Done()     {}
func (h *heapAt) Add(n int) {
	h.seen += n
	if h.seen >= h.rows && !h.done {
		h.done = true
		if hf, err := os.Create(h.path); err == nil {
			pprof.WriteHeapProfile(hf)
			hf.Close()
		}
	}
}
