// Package snapbench measures `lapse snapshot` against the raw COPY of the
// same query: it seeds a PyPI-shaped user_emails table in a PostgreSQL
// database, then times `psql -c "COPY (same query) TO STDOUT" > /dev/null`
// and `lapse snapshot` back to back, several runs each. Both `make
// bench-snapshot` (bench/snapshot) and `make bench` (bench) use it.
//
// The seeded mix: 55% of addresses on ten large mail providers, 40% on
// about 150,000 custom domains under common TLDs (some on subdomains, some
// under two-level suffixes such as co.uk), 3% with IDN hosts, 2% invalid;
// 90% verified. That is what a registry's account table looks like: few
// hosts carry most addresses, and a long tail of custom domains. The
// table is the same for the same row count (md5 and hashint4 of the row
// number, no randomness).
package snapbench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/sources/emails"
)

// SeedSQL creates and fills user_emails; $ROWS is the row count.
const SeedSQL = `
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

// Seed replaces dsn's user_emails with rows seeded rows and returns how
// many are verified.
func Seed(ctx context.Context, dsn string, rows int) (verified int64, err error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	// One statement at a time: VACUUM cannot run in the implicit
	// transaction of a multi-statement string.
	for _, q := range strings.Split(strings.ReplaceAll(SeedSQL, "$ROWS", fmt.Sprint(rows)), ";\n") {
		if strings.TrimSpace(q) == "" {
			continue
		}
		if _, err := conn.Exec(ctx, q); err != nil {
			return 0, fmt.Errorf("seed: %w", err)
		}
	}
	err = conn.QueryRow(ctx, "SELECT count(*) FROM user_emails WHERE verified").Scan(&verified)
	return verified, err
}

// Sample is one timed run of a command.
type Sample struct {
	Wall  time.Duration
	CPU   time.Duration // user + system time of the process
	RSSKB int64         // peak resident set size
}

// Options configure Measure.
type Options struct {
	Lapse string // lapse binary
	DSN   string // database holding the seeded user_emails
	Runs  int
	// Work is a scratch folder (HOME of both commands, lapse's data dir);
	// a temp dir when empty.
	Work string
	// Run, when set, is called after each timed run of the three.
	Run func(i int, psql, lapse, psqlBinary Sample)
}

// Result holds every timed run.
type Result struct {
	PSQL, Lapse []Sample
	// PSQLBinary is psql's COPY of the same query in binary format, the
	// format lapse reads: not the target's baseline, but the stricter
	// one (the server formats nothing as text).
	PSQLBinary []Sample
	// FileBytes is the size of the snapshot's emails.parquet.
	FileBytes int64
}

// Measure runs one untimed warm-up of each command, then o.Runs rounds:
// psql's COPY into /dev/null, lapse snapshot, then psql's binary COPY into
// /dev/null.
func Measure(ctx context.Context, o Options) (Result, error) {
	var res Result
	lapse, err := filepath.Abs(o.Lapse)
	if err != nil {
		return res, err
	}
	if _, err := os.Stat(lapse); err != nil {
		return res, fmt.Errorf("lapse binary: %w (run make build)", err)
	}
	psql, err := exec.LookPath("psql")
	if err != nil {
		return res, errors.New("psql is not on PATH: install the PostgreSQL client")
	}
	work := o.Work
	if work == "" {
		if work, err = os.MkdirTemp("", "lapse-bench-snapshot-"); err != nil {
			return res, err
		}
		defer os.RemoveAll(work)
	}
	// The seeded user_id is a uuid: this is the SELECT lapse runs.
	query := "COPY (" + emails.Query(config.Default().Postgres, false, true) + ") TO STDOUT"
	binQuery := query + " (FORMAT binary)"
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + work}
	data := filepath.Join(work, "data")
	psqlCmd := func(query string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, psql, "-X", "-q", "-d", o.DSN, "-c", query)
		cmd.Env = env
		return cmd
	}
	lapseCmd := func() *exec.Cmd {
		cmd := exec.CommandContext(ctx, lapse, "snapshot", "--source", o.DSN, "--data-dir", data, "--date", "2026-01-01", "--log-level", "warn")
		cmd.Env, cmd.Dir = env, work
		return cmd
	}
	// One untimed run of each warms the caches (and checks they work).
	if _, err := timeCmd(psqlCmd(query), true); err != nil {
		return res, err
	}
	if _, err := timeCmd(lapseCmd(), false); err != nil {
		return res, err
	}
	for i := range o.Runs {
		p, err := timeCmd(psqlCmd(query), true)
		if err != nil {
			return res, err
		}
		l, err := timeCmd(lapseCmd(), false)
		if err != nil {
			return res, err
		}
		b, err := timeCmd(psqlCmd(binQuery), true)
		if err != nil {
			return res, err
		}
		res.PSQL, res.Lapse, res.PSQLBinary = append(res.PSQL, p), append(res.Lapse, l), append(res.PSQLBinary, b)
		if o.Run != nil {
			o.Run(i, p, l, b)
		}
	}
	if fi, err := os.Stat(filepath.Join(data, "snapshots", "date=2026-01-01", "emails.parquet")); err == nil {
		res.FileBytes = fi.Size()
	}
	return res, nil
}

func timeCmd(cmd *exec.Cmd, devnull bool) (Sample, error) {
	if devnull {
		f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			return Sample{}, err
		}
		defer f.Close()
		cmd.Stdout = f
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	t0 := time.Now()
	rss, err := RunPeakRSS(cmd)
	wall := time.Since(t0)
	if err != nil {
		return Sample{}, fmt.Errorf("%s: %w: %s", filepath.Base(cmd.Path), err, stderr.String())
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return Sample{Wall: wall, CPU: cpu, RSSKB: rss}, nil
}

// RunPeakRSS runs cmd and returns its peak RSS in KiB: the high-water mark
// of its own memory (VmHWM in /proc/PID/status), polled every 10 ms until
// it exits. Not the wait status's Maxrss: os/exec starts the child sharing
// the parent's memory until its exec (vfork), and Linux then reports the
// larger of the parent's peak and the child's. Without /proc it falls back
// to that.
func RunPeakRSS(cmd *exec.Cmd) (int64, error) {
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var peak int64
	for {
		peak = max(peak, vmHWM(status))
		select {
		case err := <-done:
			if peak == 0 && cmd.ProcessState != nil {
				if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
					peak = ru.Maxrss // kilobytes on Linux
				}
			}
			return peak, err
		case <-tick.C:
		}
	}
}

// vmHWM reads the VmHWM line of a /proc/PID/status file (0 if none).
func vmHWM(status string) int64 {
	b, err := os.ReadFile(status)
	if err != nil {
		return 0
	}
	_, v, ok := strings.Cut(string(b), "VmHWM:")
	if !ok {
		return 0
	}
	v, _, _ = strings.Cut(v, "kB")
	kb, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	return kb
}
