package pipeline

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/internal/flock"
	"github.com/lapse-dev/lapse/internal/night"
)

// Whatever fails — the lifecycle database, the cache, the lock — the
// night's metrics say so.
func TestFailedNightAlwaysRewritesMetrics(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, h *hNight) func()
	}{
		{"corrupt lapse.duckdb", func(t *testing.T, h *hNight) func() {
			if err := os.WriteFile(night.Dir(h.cfg.DataDir).DB(), bytes.Repeat([]byte("not a database "), 1000), 0o640); err != nil {
				t.Fatal(err)
			}
			return func() {}
		}},
		{"cache unusable", func(t *testing.T, h *hNight) func() {
			dir := night.CacheDir(h.cfg)
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dir, []byte("a file where the cache goes"), 0o640); err != nil {
				t.Fatal(err)
			}
			return func() {}
		}},
		{"lock held", func(t *testing.T, h *hNight) func() {
			l, err := flock.Acquire(night.Dir(h.cfg.DataDir).Lock())
			if err != nil {
				t.Fatal(err)
			}
			return l.Release
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHNight(t, hEmails...)
			if _, err := RunNight(ctx, h.opts("2026-03-01")); err != nil {
				t.Fatal(err)
			}
			if m := kMetrics(t, h.cfg.DataDir); !strings.Contains(m, "lapse_run_success 1\n") {
				t.Fatalf("first night's metrics:\n%s", m)
			}
			h.clk.Add(24 * time.Hour)
			undo := c.damage(t, h)
			_, err := RunNight(ctx, h.opts("2026-03-02"))
			undo()
			if err == nil {
				t.Fatal("the damaged night succeeded")
			}
			m := kMetrics(t, h.cfg.DataDir)
			d, _ := night.Parse("2026-03-02")
			for _, want := range []string{"lapse_run_success 0\n", "lapse_night_date_seconds " + strconv.FormatFloat(float64(d.Unix()), 'g', -1, 64) + "\n"} {
				if !strings.Contains(m, want) {
					t.Errorf("metrics after %v lack %q:\n%s", err, want, m)
				}
			}
		})
	}
}

// A night most of whose domains are unknown publishes its changeset but
// finishes degraded: its error wraps ErrDegraded, its summary, manifest
// and metrics say how many domains and addresses are unknown.
func TestMostlyUnknownNightIsDegraded(t *testing.T) {
	ctx := context.Background()
	h := newHNight(t, "a@fail.io", "b@fail.net", "c@fail.org", "d@fail.dev", "e@one.com", "f@gone.net")
	date := "2026-03-01"
	res, err := RunNight(ctx, h.opts(date))
	if !errors.Is(err, ErrDegraded) || errors.Is(err, ErrBlocked) || res.Outcome != night.OutcomeDegraded {
		t.Fatalf("mostly unknown night: %v (%s)", err, res.Outcome)
	}
	f := res.Figures()
	if f.UnknownDomains != 4 || f.Domains != 6 || f.UnknownAddresses != 4 || !f.Degraded || f.ChangesetStatus != "proposed" {
		t.Errorf("figures: %+v", f)
	}
	if !strings.Contains(err.Error(), "4 of 6 domains (66.7%) are unknown") {
		t.Errorf("error: %v", err)
	}
	p := night.Paths{DataDir: h.cfg.DataDir, Date: date}
	sum, err := os.ReadFile(filepath.Join(p.Changeset(), "summary.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Degraded night: 4 of 6 domains (66.7%) are unknown", "Unknown tonight: 4 of 6 domains (66.7%), 4 addresses decided `unknown`"} {
		if !strings.Contains(string(sum), want) {
			t.Errorf("summary.md lacks %q:\n%s", want, sum)
		}
	}
	m := kMetrics(t, h.cfg.DataDir)
	for _, want := range []string{"lapse_run_degraded 1\n", "lapse_unknown_domains 4\n", "lapse_run_success 1\n", "lapse_changeset_blocked 0\n"} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, m)
		}
	}
	if n := kCount(t, h.cfg.DataDir, `SELECT count(*) FROM runs WHERE outcome = 'degraded'`); n != 1 {
		t.Errorf("runs degraded: %d", n)
	}
	// Finished all the same: a re-run does nothing and says degraded again.
	res, err = RunNight(ctx, h.opts(date))
	if !errors.Is(err, ErrDegraded) || !res.Skipped {
		t.Errorf("re-run of a degraded night: %v %+v", err, res)
	}

	// Under the limit, or with the check off, the same night is healthy,
	// and its summary still gives the unknown count.
	for _, max := range []float64{0.7, 0} {
		h := newHNight(t, "a@fail.io", "b@fail.net", "c@fail.org", "d@fail.dev", "e@one.com", "f@gone.net")
		h.cfg.Resolve.MaxUnknownFraction = max
		res, err := RunNight(ctx, h.opts(date))
		if err != nil || res.Outcome != night.OutcomeOK {
			t.Errorf("max_unknown_fraction %v: %v (%s)", max, err, res.Outcome)
		}
		sum, _ := os.ReadFile(filepath.Join(h.cfg.DataDir, "changesets", date, "summary.md"))
		if !strings.Contains(string(sum), "Unknown tonight: 4 of 6 domains") || strings.Contains(string(sum), "Degraded") {
			t.Errorf("max_unknown_fraction %v: summary.md:\n%s", max, sum)
		}
		if m := kMetrics(t, h.cfg.DataDir); !strings.Contains(m, "lapse_run_degraded 0\n") {
			t.Errorf("max_unknown_fraction %v: metrics:\n%s", max, m)
		}
	}
}

// A data dir with less free space than run.min_free_bytes stops the night
// before a stage with a clear message, never mid-write.
func TestLowFreeSpaceStopsCleanly(t *testing.T) {
	ctx := context.Background()
	h := newHNight(t, hEmails...)
	h.cfg.Run.MinFreeBytes = 1 << 62 // more than any disk has free
	res, err := RunNight(ctx, h.opts("2026-03-01"))
	if !errors.Is(err, ErrNoSpace) || res.Outcome != night.OutcomeFailed {
		t.Fatalf("no space: %v (%s)", err, res.Outcome)
	}
	for _, want := range []string{"no space left on " + h.cfg.DataDir + " (", "MB free, run.min_free_bytes is 4398046511104 MB): free space and re-run"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, err := os.Stat(night.Paths{DataDir: h.cfg.DataDir, Date: "2026-03-01"}.SnapshotDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the night wrote its snapshot regardless (%v)", err)
	}

	// Space running out between stages stops the night before the next.
	h = newHNight(t, hEmails...)
	real := freeBytes
	t.Cleanup(func() { freeBytes = real })
	calls := 0
	freeBytes = func(p string) (uint64, error) {
		calls++
		if calls > 4 { // the start, then before snapshot, dns and plan
			return 1 << 20, nil
		}
		return real(p)
	}
	_, err = RunNight(ctx, h.opts("2026-03-01"))
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "before resolve") {
		t.Fatalf("space gone before resolve: %v", err)
	}
	freeBytes = real
	res, err = RunNight(ctx, h.opts("2026-03-01"))
	if err != nil || res.Resumed != StagePlan {
		t.Errorf("after freeing space: %v, resumed after %q", err, res.Resumed)
	}
}

// A resumed night whose snapshot was deleted, truncated or scrambled takes
// it again from the source and starts over, saying so, and publishes what
// an undamaged night publishes.
func TestDamagedSnapshotIsTakenAgain(t *testing.T) {
	ctx := context.Background()
	date := "2026-03-01"
	straight := newHNight(t, hEmails...)
	if _, err := RunNight(ctx, straight.opts(date)); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(filepath.Join(straight.cfg.DataDir, "changesets", date, "changeset.csv"))
	for name, damage := range map[string]func(path string) error{
		"deleted":   os.Remove,
		"truncated": func(p string) error { fi, _ := os.Stat(p); return os.Truncate(p, fi.Size()/2) },
		"scrambled": func(p string) error {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for i := len(b) / 3; i < len(b)/3+64 && i < len(b); i++ {
				b[i] ^= 0x5a
			}
			return os.WriteFile(p, b, 0o600)
		},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHNight(t, hEmails...)
			o := h.opts(date)
			o.AfterStage = func(s string) error {
				if s == StageSnapshot {
					return errors.New("killed")
				}
				return nil
			}
			if _, err := RunNight(ctx, o); err == nil || !strings.Contains(err.Error(), "killed") {
				t.Fatalf("killed after snapshot: %v", err)
			}
			p := night.Paths{DataDir: h.cfg.DataDir, Date: date}
			if err := damage(p.Snapshot()); err != nil {
				t.Fatal(err)
			}
			o = h.opts(date)
			logs := kLogs(&o)
			res, err := RunNight(ctx, o)
			if err != nil || res.Resumed != "" || res.Figures().Addresses != int64(len(hEmails)) {
				t.Fatalf("resumed over a %s snapshot: %v %+v\n%s", name, err, res, logs)
			}
			if !strings.Contains(logs.String(), "snapshot damaged: taking it again from the source, the night starts over") {
				t.Errorf("no word of the damaged snapshot:\n%s", logs)
			}
			got, _ := os.ReadFile(filepath.Join(p.Changeset(), "changeset.csv"))
			if !bytes.Equal(got, want) {
				t.Errorf("changeset differs from the undamaged night's:\n%s\n---\n%s", got, want)
			}
		})
	}
}

// Temp files of the atomic writers left by a killed run in tonight's
// folders and states/ are deleted at the start of the next run; nothing
// else is.
func TestStaleTempFilesRemoved(t *testing.T) {
	ctx := context.Background()
	h := newHNight(t, hEmails...)
	date := "2026-03-01"
	data := h.cfg.DataDir
	stale := []string{
		filepath.Join(night.Paths{DataDir: data, Date: date}.SnapshotDir(), ".emails.parquet.tmp-123456"),
		filepath.Join(data, "states", ".states.parquet.tmp-42"),
		filepath.Join(data, ".metrics.prom.tmp-7"),
		filepath.Join(data, "decisions", "date="+date, ".classify-spill", "spill.tmp"),
		filepath.Join(data, "decisions", "date="+date, ".decisions.parquet.tmp-99", "decisions.parquet"),
		filepath.Join(night.Paths{DataDir: data, Date: date}.ObservationsDir(), "states.parquet.link"),
	}
	kept := []string{
		filepath.Join(night.Paths{DataDir: data, Date: "2026-02-01"}.SnapshotDir(), ".emails.parquet.tmp-1"), // not tonight's
		filepath.Join(night.Paths{DataDir: data, Date: date}.SnapshotDir(), "notes.tmp-1"),                   // not a temp name
		filepath.Join(night.Paths{DataDir: data, Date: date}.SnapshotDir(), ".emails.parquet.tmp-x1"),
	}
	for _, p := range append(append([]string{}, stale...), kept...) {
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	o := h.opts(date)
	logs := kLogs(&o)
	if _, err := RunNight(ctx, o); err != nil {
		t.Fatal(err)
	}
	for _, p := range stale {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stale %s left (%v)", p, err)
		}
	}
	for _, p := range kept {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s deleted: %v", p, err)
		}
	}
	if !strings.Contains(logs.String(), "removed temp files left by an interrupted run") || !strings.Contains(logs.String(), "files=6") {
		t.Errorf("logs:\n%s", logs)
	}
}

// A lapse.duckdb or cache deleted from a data dir with earlier nights is
// rebuilt with a warning naming what was lost, once; a new data dir is
// rebuilt silently.
func TestMissingDatabaseAndCacheWarn(t *testing.T) {
	ctx := context.Background()
	h := newHNight(t, hEmails...)
	o := h.opts("2026-03-01")
	logs := kLogs(&o)
	if _, err := RunNight(ctx, o); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "missing") {
		t.Errorf("first night warned:\n%s", logs)
	}
	os.Remove(night.Dir(h.cfg.DataDir).DB())
	os.RemoveAll(night.CacheDir(h.cfg))
	for i, d := range []string{"2026-03-02", "2026-03-03"} {
		h.clk.Add(24 * time.Hour)
		o := h.opts(d)
		logs := kLogs(&o)
		if _, err := RunNight(ctx, o); err != nil {
			t.Fatal(err)
		}
		db := strings.Count(logs.String(), "lapse.duckdb was missing: the lifecycle history starts anew")
		ca := strings.Count(logs.String(), "the domain cache was missing: every domain of the snapshot is looked up again")
		if want := 1 - i; db != want || ca != want || (want == 1 && !strings.Contains(logs.String(), "level=WARN")) {
			t.Errorf("night %s: %d database and %d cache warnings, want %d each:\n%s", d, db, ca, want, logs)
		}
	}
}
