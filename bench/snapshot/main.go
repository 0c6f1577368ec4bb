// Command snapshot is `make bench-snapshot`: it starts a throwaway
// PostgreSQL (internal/pgtest), seeds a PyPI-shaped user_emails table, then
// times `lapse snapshot` against `psql -c "COPY (same query) TO STDOUT" >
// /dev/null`, several runs each, and prints the ratio of the medians and
// lapse's peak RSS.
//
// The seeded mix: 55% of addresses on ten large mail providers, 40% on
// about 150,000 custom domains under common TLDs (some on subdomains, some
// under two-level suffixes such as co.uk), 3% with IDN hosts, 2% invalid;
// 90% verified. That is what a registry's account table looks like: few
// hosts carry most addresses, and a long tail of custom domains.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

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

const seedSQL = `
DROP TABLE IF EXISTS user_emails;
CREATE TABLE user_emails (
	id serial PRIMARY KEY,
	user_id uuid NOT NULL,
	email varchar(254) NOT NULL,
	"primary" boolean NOT NULL,
	verified boolean NOT NULL,
	public boolean NOT NULL DEFAULT false,
	unverify_reason text,
	domain_last_checked timestamp,
	domain_last_status varchar[]
);
INSERT INTO user_emails (user_id, email, "primary", verified)
SELECT md5(g::text)::uuid,
	CASE
	WHEN h % 100 < 55 THEN 'user' || g || '@' || (ARRAY['gmail.com','yahoo.com','hotmail.com','outlook.com','protonmail.com','icloud.com','qq.com','163.com','gmx.de','mail.ru'])[1 + h % 10]
	WHEN h % 100 < 90 THEN 'dev' || g || '@' || 'site' || (h / 100) % 150000 || (ARRAY['.com','.org','.net','.io','.dev','.co.uk','.de','.fr','.com.au','.nl'])[1 + (h / 7) % 10]
	WHEN h % 100 < 95 THEN 'ops' || g || '@mail.team' || (h / 100) % 20000 || (ARRAY['.com','.io','.co.jp','.org.uk'])[1 + (h / 7) % 4]
	WHEN h % 100 < 98 THEN 'ü' || g || '@' || (ARRAY['bücher','café','straße','日本語','пример'])[1 + (h / 7) % 5] || (h / 100) % 3000 || (ARRAY['.de','.com','.org'])[1 + (h / 11) % 3]
	ELSE (ARRAY['nobody' || g, 'x' || g || '@[192.0.2.1]', 'y' || g || '@co.uk', 'z' || g || '@a..b.com'])[1 + (h / 7) % 4]
	END,
	h % 3 = 0,
	h % 10 <> 0
FROM (SELECT g, hashint4(g)::int8 + 2147483648 AS h FROM generate_series(1, $ROWS) g) s;
VACUUM ANALYZE user_emails;
`

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
	heapDone := false
	so.Progress = func(rows int64) {
		// A heap profile mid-run shows what the peak is made of.
		if rows >= 600_000 && !heapDone {
			heapDone = true
			if hf, err := os.Create(cpuProfile + ".heap"); err == nil {
				pprof.WriteHeapProfile(hf)
				hf.Close()
			}
		}
	}
	res, err := pipeline.Snapshot(ctx, so)
	pprof.StopCPUProfile()
	if err != nil {
		return err
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("in-process snapshot: %d rows in %s, heap sys %d MB, total alloc %d MB, %d GCs; profile in %s\n",
		res.Manifest.Rows.Read, time.Since(t0).Round(time.Millisecond), ms.HeapSys>>20, ms.TotalAlloc>>20, ms.NumGC, cpuProfile)
	return nil
}

type sample struct {
	wall  time.Duration
	cpu   time.Duration // user + system time of the process
	rssKB int64
}

func run(lapse string, rows, runs int, dsn string) error {
	ctx := context.Background()
	lapse, err := filepath.Abs(lapse)
	if err != nil {
		return err
	}
	if _, err := os.Stat(lapse); err != nil {
		return fmt.Errorf("lapse binary: %w (run make build)", err)
	}
	psql, err := exec.LookPath("psql")
	if err != nil {
		return errors.New("psql is not on PATH: install the PostgreSQL client")
	}
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
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	// One statement at a time: VACUUM cannot run in the implicit
	// transaction of a multi-statement string.
	for _, q := range strings.Split(strings.ReplaceAll(seedSQL, "$ROWS", fmt.Sprint(rows)), ";\n") {
		if strings.TrimSpace(q) == "" {
			continue
		}
		if _, err := conn.Exec(ctx, q); err != nil {
			conn.Close(ctx)
			return fmt.Errorf("seed: %w", err)
		}
	}
	var verified int64
	conn.QueryRow(ctx, "SELECT count(*) FROM user_emails WHERE verified").Scan(&verified)
	conn.Close(ctx)
	fmt.Printf("seeded in %s (%d verified)\n", time.Since(t0).Round(time.Millisecond), verified)

	if cpuProfile != "" {
		return profile(ctx, dsn)
	}
	query := "COPY (" + emails.Query(config.Default().Postgres, false) + ") TO STDOUT"
	work, err := os.MkdirTemp("", "lapse-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + work}
	psqlCmd := func() *exec.Cmd {
		cmd := exec.Command(psql, "-X", "-q", "-d", dsn, "-c", query)
		cmd.Env = env
		return cmd
	}
	lapseCmd := func() *exec.Cmd {
		cmd := exec.Command(lapse, "snapshot", "--source", dsn, "--data-dir", filepath.Join(work, "data"), "--date", "2026-01-01", "--log-level", "warn")
		cmd.Env, cmd.Dir = env, work
		return cmd
	}
	// One untimed run of each warms the caches (and checks they work).
	if _, err := timeCmd(psqlCmd(), true); err != nil {
		return err
	}
	if _, err := timeCmd(lapseCmd(), false); err != nil {
		return err
	}
	var ps, ls []sample
	for i := range runs {
		p, err := timeCmd(psqlCmd(), true)
		if err != nil {
			return err
		}
		l, err := timeCmd(lapseCmd(), false)
		if err != nil {
			return err
		}
		ps, ls = append(ps, p), append(ls, l)
		fmt.Printf("run %d: psql COPY %6.3fs (cpu %5.2fs)   lapse snapshot %6.3fs (cpu %5.2fs, peak RSS %d MB)\n",
			i+1, p.wall.Seconds(), p.cpu.Seconds(), l.wall.Seconds(), l.cpu.Seconds(), l.rssKB/1024)
	}
	pm, lm := median(ps, wallOf), median(ls, wallOf)
	pc, lc := median(ps, cpuOf), median(ls, cpuOf)
	var peak int64
	for _, l := range ls {
		peak = max(peak, l.rssKB)
	}
	fi, _ := os.Stat(filepath.Join(work, "data", "snapshots", "date=2026-01-01", "emails.parquet"))
	var size int64
	if fi != nil {
		size = fi.Size()
	}
	fmt.Printf("\n%d rows (%d verified), %d runs each, medians:\n", rows, verified, runs)
	fmt.Printf("  psql COPY … TO STDOUT > /dev/null  %7.3fs\n", pm.Seconds())
	fmt.Printf("  lapse snapshot                     %7.3fs  (%.2fx; target <= 1.5x)\n", lm.Seconds(), lm.Seconds()/pm.Seconds())
	fmt.Printf("  client CPU (user+sys): psql %.2fs, lapse %.2fs (the server's COPY work is the same for both)\n", pc.Seconds(), lc.Seconds())
	fmt.Printf("  machine load average at the end: %s\n", loadavg())
	fmt.Printf("  lapse peak RSS                     %7d MB (target < 300 MB)\n", peak/1024)
	fmt.Printf("  emails.parquet                     %7.1f MB\n", float64(size)/(1<<20))
	return nil
}

func timeCmd(cmd *exec.Cmd, devnull bool) (sample, error) {
	if devnull {
		f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			return sample{}, err
		}
		defer f.Close()
		cmd.Stdout = f
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	t0 := time.Now()
	err := cmd.Run()
	wall := time.Since(t0)
	if err != nil {
		return sample{}, fmt.Errorf("%s: %w: %s", filepath.Base(cmd.Path), err, stderr.String())
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss // kilobytes on Linux
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return sample{wall: wall, cpu: cpu, rssKB: rss}, nil
}

func median(s []sample, f func(sample) time.Duration) time.Duration {
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

func wallOf(s sample) time.Duration { return s.wall }
func cpuOf(s sample) time.Duration  { return s.cpu }
