package demo

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/cache"
	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/pipeline"
	"github.com/lapse-dev/lapse/sim"
	"github.com/lapse-dev/lapse/sources/dns"
)

// warmFixture is a data dir whose cache holds a fresh answer for every
// domain of tonight's snapshot: a night with nothing due.
type warmFixture struct {
	cfg     config.Config
	date    string
	now     time.Time
	emails  int
	domains int
}

// newWarmFixture builds (or reuses, per size and day) the fixture under
// the temp dir: the simulator's account table as JSONL, its snapshot, and
// the cache filled with each domain's true state as if RDAP had answered
// an hour ago. Times are the wall clock so `lapse run` in a subprocess
// finds the cache as warm as the in-process runner does.
func newWarmFixture(b *testing.B, n int) warmFixture {
	b.Helper()
	now := time.Now().UTC()
	date := now.Format(time.DateOnly)
	// "-m": the fixture holds every domain's mail path too (issue 12).
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("lapse-warm-night-%d-%s-m", n, date))
	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Source = "jsonl:" + filepath.Join(dir, "accounts.jsonl")
	cfg.Brake.MaxFraction = 1
	f := warmFixture{cfg: cfg, date: date, now: now, emails: n}
	ready := filepath.Join(dir, "ready")
	if data, err := os.ReadFile(ready); err == nil {
		f.domains, _ = strconv.Atoi(string(data))
		currentStates(b, f.cfg, now)
		return f
	}
	os.RemoveAll(dir)
	d0, _ := night.Parse(date)
	w := sim.NewWorld(sim.Params{Seed: 1, Start: d0.AddDate(0, 0, -30), Emails: n})
	w.SetDate(d0)
	if err := WriteAccounts(filepath.Join(dir, "accounts.jsonl"), w.Addresses(d0)); err != nil {
		b.Fatal(err)
	}
	c, err := cache.Open(night.CacheDir(cfg), cache.Options{Now: func() time.Time { return now.Add(-time.Hour) }})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	at := now.Add(-time.Hour)
	for _, t := range w.DomainTruth(d0) {
		lc := lifecycle.Lifecycle{Domain: t.Domain, State: t.State, RegisteredAt: t.RegisteredAt, ExpiresAt: t.ExpiresAt,
			Source: lifecycle.SourceRDAP, CheckedAt: at, AsOf: at, Corroborated: true}
		if _, err := c.Record(ctx, lc); err != nil {
			b.Fatal(err)
		}
		f.domains++
		// Its mail path, as the DNS stage would have recorded it: the
		// warm night finds nothing due there either.
		if ms, ok := w.MailSetupOf(t.Domain); ok {
			if _, err := c.RecordMailPath(ctx, pipeline.MailObservation(simAnswer(t.Domain, ms, at)), cfg.DNS.Every.Std()); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := c.Close(); err != nil {
		b.Fatal(err)
	}
	currentStates(b, f.cfg, now)
	if err := os.WriteFile(ready, []byte(strconv.Itoa(f.domains)), 0o600); err != nil {
		b.Fatal(err)
	}
	return f
}

// currentStates leaves the fixture as a finished night leaves its data
// dir: the cache's states copy current (resolve rewrites it after the
// night's lookups). Without it the first timed night would pay for
// writing the copy of a cache the fixture filled outside any night.
func currentStates(b *testing.B, cfg config.Config, now time.Time) {
	b.Helper()
	c, err := cache.Open(night.CacheDir(cfg), cache.Options{Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, err := pipeline.CurrentStates(context.Background(), c, night.Dir(cfg.DataDir).StatesCopy()); err != nil {
		b.Fatal(err)
	}
	// The links copy only when it is missing: a warm night's copy is the
	// one the last night left (a new one is folded and joined again, the
	// cost of a night whose DNS stage looked something up).
	if links := night.Dir(cfg.DataDir).LinksCopy(); !exists(links) {
		if _, err := cache.ExportLinks(context.Background(), c, links); err != nil {
			b.Fatal(err)
		}
	}
}

// simAnswer is the DNS answer the simulator's zone gives for a domain.
func simAnswer(domain string, ms sim.MailSetup, at time.Time) dns.Answer {
	a := dns.Answer{Domain: domain, CheckedAt: at, MX: dns.OK, NS: dns.OK, NullMX: ms.NullMX}
	for _, mx := range ms.MX {
		l := dns.Link{Role: "mx", Host: mx.Host, Pref: int(mx.Pref)}
		for _, c := range ms.CNAMEs {
			if c.Host == mx.Host {
				l.CNAMEs = append(l.CNAMEs, c.Target)
			}
		}
		a.Links = append(a.Links, l)
	}
	for _, h := range ms.NS {
		a.Links = append(a.Links, dns.Link{Role: "ns", Host: h})
	}
	return a
}

// BenchmarkWarmNight times a warm night (nothing due) over 1,000,000
// addresses after its snapshot — plan, resolve, classify and publish — and
// one hand-written DuckDB query doing the same join and policy over the
// same Parquet files, and reports the ratio. With LAPSE_BENCH_BIN set to a
// lapse binary it also runs the whole night (snapshot included) as
// `lapse run --force` in a subprocess and reports its peak RSS.
// LAPSE_BENCH_ADDRESSES changes the size.
func BenchmarkWarmNight(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("LAPSE_BENCH_ADDRESSES"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	f := newWarmFixture(b, n)
	ctx := context.Background()
	paths := night.Paths{DataDir: f.cfg.DataDir, Date: f.date}
	var night, query, nightCPU, queryCPU, noMail, noMailCPU time.Duration
	var lookups int
	// The night without the mail path too, at the sizes the harness
	// compares (LAPSE_BENCH_MAILPATH=0 skips it).
	mailBaseline := os.Getenv("LAPSE_BENCH_MAILPATH") != "0"
	// One night untimed first: the process's first DuckDB, Badger and
	// heap warm-up would otherwise fall on the first timed night alone
	// (the one with the mail path, measured before its pair and the hand
	// query), not on the figures it is compared with.
	b.StopTimer()
	if _, err := pipeline.RunNight(ctx, pipeline.Options{Config: f.cfg, Date: f.date, Force: true}); err != nil {
		b.Fatal(err)
	}
	// The baseline must decide what the night decides, or the ratio
	// compares two different jobs.
	if err := handAgrees(ctx, paths, filepath.Join(b.TempDir(), "decisions.parquet"), f.cfg.DNS.Enabled); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	for range b.N {
		b.StopTimer()
		wall, cpu, res, err := nightAfterSnapshot(ctx, f.cfg, f.date, b.StartTimer)
		if err != nil {
			b.Fatal(err)
		}
		night += wall
		nightCPU += cpu
		lookups += res.Figures().TotalLookups()
		b.StopTimer()
		// The hand query before the night without the mail path: that
		// night removes the links, and the baseline must apply the same
		// policy as the night it is compared with, the mail path included.
		t0, c0 := time.Now(), cpuTime()
		if err := handQuery(ctx, paths, filepath.Join(b.TempDir(), "decisions.parquet"), f.cfg.DNS.Enabled); err != nil {
			b.Fatal(err)
		}
		query += time.Since(t0)
		queryCPU += cpuTime() - c0
		if mailBaseline {
			// The same night without the mail path: its cost, paired
			// with the run above on the same machine load.
			off := f.cfg
			off.DNS.Enabled = false
			wall, cpu, _, err := nightAfterSnapshot(ctx, off, f.date, nil)
			if err != nil {
				b.Fatal(err)
			}
			noMail += wall
			noMailCPU += cpu
		}
	}
	if lookups != 0 {
		b.Errorf("a warm night made %d lookups", lookups)
	}
	b.ReportMetric(night.Seconds()/float64(b.N), "night-s")
	b.ReportMetric(query.Seconds()/float64(b.N), "query-s")
	b.ReportMetric(float64(night)/float64(query), "ratio")
	if mailBaseline {
		b.ReportMetric(noMail.Seconds()/float64(b.N), "night-nomail-s")
		b.ReportMetric(float64(night)/float64(noMail), "mail-ratio")
		b.ReportMetric(float64(nightCPU)/float64(noMailCPU), "mail-cpu-ratio")
	}
	// CPU (user+system, every thread of the process, DuckDB's included):
	// on a shared machine wall time swings with the neighbours' load.
	b.ReportMetric(nightCPU.Seconds()/float64(b.N), "night-cpu-s")
	b.ReportMetric(queryCPU.Seconds()/float64(b.N), "query-cpu-s")
	b.ReportMetric(float64(f.domains), "domains")
	if bin := os.Getenv("LAPSE_BENCH_BIN"); bin != "" {
		cmd := exec.Command(bin, "run", "--date", f.date, "--force", "--log-level", "warn")
		cmd.Env = append(os.Environ(), "LAPSE_DATA_DIR="+f.cfg.DataDir, "LAPSE_SOURCE="+f.cfg.Source, "LAPSE_BRAKE_MAX_FRACTION=1")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		t0 := time.Now()
		peakKB, err := runPeakRSS(cmd)
		if err != nil {
			b.Fatalf("lapse run: %v\n%s", err, out.Bytes())
		}
		b.ReportMetric(float64(peakKB)/1024, "run-peak-RSS-MB")
		b.ReportMetric((cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds(), "run-with-snapshot-cpu-s")
		b.ReportMetric(time.Since(t0).Seconds(), "run-with-snapshot-s")
	}
}

// nightAfterSnapshot runs the night in full (forced: its snapshot taken
// again) and returns the wall and CPU time from the end of its snapshot
// stage to the end of the night: what a `lapse run` spends after its
// snapshot. Not a second RunNight resuming after the snapshot: a resumed
// night opens the data dir again and checks the snapshot's sha256, which
// a run going on from its own snapshot never does (0.045 s at 1M).
// started, when set, is called where the timing starts.
func nightAfterSnapshot(ctx context.Context, cfg config.Config, date string, started func()) (wall, cpu time.Duration, res pipeline.NightResult, err error) {
	var t0 time.Time
	var c0 time.Duration
	res, err = pipeline.RunNight(ctx, pipeline.Options{Config: cfg, Date: date, Force: true,
		AfterStage: func(s string) error {
			if s == pipeline.StageSnapshot {
				if started != nil {
					started()
				}
				t0, c0 = time.Now(), cpuTime()
			}
			return nil
		}})
	if err != nil {
		return 0, 0, res, err
	}
	if t0.IsZero() {
		return 0, 0, res, errors.New("the night ran no snapshot stage")
	}
	return time.Since(t0), cpuTime() - c0, res, nil
}

// runPeakRSS runs cmd and returns its peak RSS in KiB: the high-water mark
// of its own memory (VmHWM in /proc/PID/status), polled every 10 ms until
// it exits. Not the wait status's Maxrss: os/exec starts the child sharing
// this process's memory until its exec (vfork), and Linux then reports the
// larger of this process's peak and the child's (this benchmark's own
// in-process night, not lapse run's). Without /proc it falls back to that.
func runPeakRSS(cmd *exec.Cmd) (int64, error) {
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
		if b, err := os.ReadFile(status); err == nil {
			if _, v, ok := bytes.Cut(b, []byte("VmHWM:")); ok {
				v, _, _ = bytes.Cut(v, []byte("kB"))
				if kb, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64); err == nil {
					peak = max(peak, kb)
				}
			}
		}
		select {
		case err := <-done:
			if peak == 0 && cmd.ProcessState != nil {
				if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
					peak = ru.Maxrss
				}
			}
			return peak, err
		case <-tick.C:
		}
	}
}

// handQuery is the baseline: one DuckDB query joining the snapshot with
// the domain states and, with mail set, the mail path's links, applying
// the default policy, written to Parquet. With mail set the links file
// must be there: a baseline without the mail path's join would flatter
// the night it is compared with.
func handQuery(ctx context.Context, p night.Paths, out string, mail bool) error {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return err
	}
	defer db.Close()
	m := `SELECT NULL::VARCHAR AS domain, false AS mail_unverify, false AS mail_watch WHERE false`
	if mail {
		if _, err := os.Stat(p.Links()); err != nil {
			return fmt.Errorf("hand query with the mail path: %w", err)
		}
		// Each address domain's dependencies' states, folded per domain:
		// decisive and confirmed, or registered after the link was first
		// seen, un-verifies; expiring, grace or decisive watches.
		m = fmt.Sprintf(`SELECT l.domain,
				bool_or(d.state IN ('available', 'pending_delete', 'redemption') AND (d.source IN ('rdap', 'whois') OR d.corroborated)
					OR d.registered_at > l.first_seen) AS mail_unverify,
				bool_or(d.state IN ('expiring', 'grace', 'available', 'pending_delete', 'redemption')
					OR (d.state = 'registered' AND d.expires_at <= now() + INTERVAL 30 DAY)) AS mail_watch
			FROM read_parquet('%s') l JOIN read_parquet('%s') d ON d.domain = l.dep
			WHERE l.role IS NOT NULL GROUP BY l.domain`, p.Links(), p.States())
	}
	q := fmt.Sprintf(`COPY (
		WITH m AS (%s)
		SELECT e.email_id, e.user_id, e.email, e.domain, s.state,
			CASE
				WHEN e.domain IS NULL OR s.state IS NULL OR s.state = 'unknown' THEN 'unknown'
				WHEN s.registered_at > least(e.created, e.verified_at) THEN 'unverify'
				WHEN s.state IN ('available', 'pending_delete', 'redemption')
					AND (s.source IN ('rdap', 'whois') OR s.corroborated OR s.decisive_nights >= 2) THEN 'unverify'
				WHEN m.mail_unverify THEN 'unverify'
				WHEN s.state IN ('expiring', 'grace', 'available', 'pending_delete', 'redemption') OR m.mail_watch
					OR (s.state = 'registered' AND s.expires_at <= now() + INTERVAL 30 DAY) THEN 'watch'
				ELSE 'keep' END AS action
		FROM read_parquet('%s') e LEFT JOIN read_parquet('%s') s USING (domain) LEFT JOIN m USING (domain)
	) TO '%s' (FORMAT parquet)`, m, p.Snapshot(), p.States(), out)
	_, err = db.ExecContext(ctx, q)
	return err
}

// handAgrees runs the hand query into out and checks that it picks the
// same action as the night's decisions for every address the night did
// not keep, and keeps every other.
func handAgrees(ctx context.Context, p night.Paths, out string, mail bool) error {
	if err := handQuery(ctx, p, out, mail); err != nil {
		return err
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return err
	}
	defer db.Close()
	var onlyHand, onlyNight int64
	err = db.QueryRowContext(ctx, fmt.Sprintf(`WITH h AS (SELECT email_id, action FROM read_parquet('%s') WHERE action <> 'keep'),
			n AS (SELECT email_id, action FROM read_parquet('%s'))
		SELECT (SELECT count(*) FROM (FROM h EXCEPT ALL FROM n)), (SELECT count(*) FROM (FROM n EXCEPT ALL FROM h))`,
		out, p.Decisions())).Scan(&onlyHand, &onlyNight)
	if err != nil {
		return err
	}
	if onlyHand != 0 || onlyNight != 0 {
		return fmt.Errorf("the hand query and the night disagree: %d decisions only the hand query makes, %d only the night (mail path %v)", onlyHand, onlyNight, mail)
	}
	return nil
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
