package pipeline

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/sinks/lifecycledb"
)

// kLogs sends a night's logs to a buffer.
func kLogs(o *Options) *bytes.Buffer {
	var b bytes.Buffer
	o.Log = slog.New(slog.NewTextHandler(&b, nil))
	return &b
}

// kMetrics reads metrics.prom.
func kMetrics(t *testing.T, dataDir string) string {
	t.Helper()
	b, err := os.ReadFile(night.Dir(dataDir).Metrics())
	if err != nil {
		t.Fatalf("metrics.prom: %v", err)
	}
	return string(b)
}

// kCount runs a count query over the lifecycle database.
func kCount(t *testing.T, dataDir, q string, args ...any) int {
	t.Helper()
	db, err := lifecycledb.Open(night.Dir(dataDir).DB())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.SQL().QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// kParquetCount counts the rows of a Parquet file.
func kParquetCount(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM read_parquet(?)`, path).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A finished night run again with --force keeps the night's lookups: its
// domains.parquet, journal and domain_observations, and its figures say
// what was looked up. What the forced run asks again replaces the earlier
// answer of that domain.
func TestForcedRerunKeepsTheNightsLookups(t *testing.T) {
	ctx := context.Background()
	h := newHNight(t, hEmails...)
	date := "2026-03-01"
	p := night.Paths{DataDir: h.cfg.DataDir, Date: date}
	res, err := RunNight(ctx, h.opts(date))
	if err != nil {
		t.Fatal(err)
	}
	want := res.Figures()
	journal1, err := os.ReadFile(p.Journal())
	if err != nil {
		t.Fatal(err)
	}
	obsQ := `SELECT count(*) FROM domain_observations WHERE date = CAST(? AS DATE)`
	if n := kParquetCount(t, p.Domains()); n != 8 || kCount(t, h.cfg.DataDir, obsQ, date) != 8 || want.LookedUp != 8 {
		t.Fatalf("first run: %d domains looked up, figures %+v", n, want)
	}

	check := func(when string, wantJournalLines int) night.Figures {
		t.Helper()
		o := h.opts(date)
		o.Force = true
		res, err := RunNight(ctx, o)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		f := res.Figures()
		if n := kParquetCount(t, p.Domains()); n != 8 {
			t.Errorf("%s: domains.parquet has %d rows, want the night's 8", when, n)
		}
		if n := kCount(t, h.cfg.DataDir, obsQ, date); n != 8 {
			t.Errorf("%s: domain_observations has %d rows of the night, want 8", when, n)
		}
		if f.LookedUp != 8 || f.TotalLookups() != want.TotalLookups() {
			t.Errorf("%s: figures say %d looked up, %d lookups; want 8 and %d", when, f.LookedUp, f.TotalLookups(), want.TotalLookups())
		}
		j, err := os.ReadFile(p.Journal())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(j, journal1) {
			t.Errorf("%s: the journal lost the first run's lookups:\n%s", when, j)
		}
		if n := bytes.Count(j, []byte("\n")); n != wantJournalLines {
			t.Errorf("%s: journal has %d lines, want %d:\n%s", when, n, wantJournalLines, j)
		}
		return f
	}
	// Nothing is due: nothing asked, everything kept (8 lookups + a mark).
	if f := check("forced, nothing due", 9); f.Planned != 0 {
		t.Errorf("forced re-run planned %d", f.Planned)
	}

	// A day later the failed and the available domains are due again: the
	// forced run asks them, and their new answers win.
	h.clk.Add(24 * time.Hour)
	before := h.calls()
	f := check("forced, two due", 8+1+2)
	if f.Planned != 2 || h.calls()-before != 2 {
		t.Errorf("planned %d, asked %d; want 2", f.Planned, h.calls()-before)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var checked time.Time
	if err := db.QueryRow(`SELECT checked_at FROM read_parquet(?) WHERE domain = 'gone.net'`, p.Domains()).Scan(&checked); err != nil {
		t.Fatal(err)
	}
	if !checked.Equal(h.clk.Now()) {
		t.Errorf("gone.net checked at %v, want the forced run's %v", checked, h.clk.Now())
	}
}

// A plan made again before its resolve asked anything replaces its lone
// mark; a torn last line is ended before the mark.
func TestJournalSegmentMarks(t *testing.T) {
	dir := t.TempDir()
	j := filepath.Join(dir, "lookups.jsonl")
	p := Plan{AsOf: time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC), Lookups: []string{"a.com"}}
	if err := StartJournalSegment(j, p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(j); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a missing journal got a mark: %v", err)
	}
	one := `{"domain":"a.com","state":"registered","source":"rdap","checked_at":"2026-03-01T03:00:00Z"}`
	os.WriteFile(j, []byte(one+"\n"+`{"domain":"b.c`), 0o640)
	for range 2 {
		if err := StartJournalSegment(j, p); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(j)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 3 || lines[0] != one || !strings.HasPrefix(lines[2], planMark) {
		t.Fatalf("journal after two marks:\n%s", b)
	}
	jr, err := readJournal(j)
	if err != nil {
		t.Fatal(err)
	}
	if len(jr.current) != 0 || len(jr.earlier) != 1 || jr.prefix != int64(len(b)) {
		t.Errorf("read back: current %d earlier %d prefix %d of %d", len(jr.current), len(jr.earlier), jr.prefix, len(b))
	}
}

// An empty export after a real night stops before plan with a clear
// message (nothing published, metrics say failed), unless the shrink is
// accepted; and the first-seen history survives the nights an address is
// absent.
func TestEmptyExportStopsAndHistoryCarriesForward(t *testing.T) {
	ctx := context.Background()
	h := newHNight(t, hEmails...)
	src := strings.TrimPrefix(h.cfg.Source, "jsonl:")
	full, _ := os.ReadFile(src)
	if _, err := RunNight(ctx, h.opts("2026-03-01")); err != nil {
		t.Fatal(err)
	}
	h.clk.Add(24 * time.Hour)
	if err := os.WriteFile(src, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := RunNight(ctx, h.opts("2026-03-02"))
	if !errors.Is(err, ErrShrunk) || res.Outcome != night.OutcomeFailed {
		t.Fatalf("empty export: %v (%s)", err, res.Outcome)
	}
	for _, want := range []string{"0 verified addresses tonight", "10 on night 2026-03-01", "run.min_verified_fraction", "--accept-shrink"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	p2 := night.Paths{DataDir: h.cfg.DataDir, Date: "2026-03-02"}
	for _, f := range []string{p2.Plan(), p2.Changeset()} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a stopped night wrote %s (%v)", f, err)
		}
	}
	if m := kMetrics(t, h.cfg.DataDir); !strings.Contains(m, "lapse_run_success 0\n") {
		t.Errorf("metrics after the stop:\n%s", m)
	}

	o := h.opts("2026-03-02")
	o.AcceptShrink = true
	if res, err := RunNight(ctx, o); err != nil || res.Resumed != "" || res.Figures().Verified != 0 {
		t.Fatalf("accepted shrink: %v %+v", err, res)
	}
	if n := kParquetCount(t, night.Paths{DataDir: h.cfg.DataDir, Date: "2026-03-02"}.FirstSeen()); n != len(hEmails) {
		t.Errorf("first_seen.parquet of the empty night holds %d rows, want the %d of the history", n, len(hEmails))
	}

	// The accounts are back: their first sighting is still the first night.
	h.clk.Add(24 * time.Hour)
	os.WriteFile(src, full, 0o600)
	if _, err := RunNight(ctx, h.opts("2026-03-03")); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	var first, last time.Time
	if err := db.QueryRow(`SELECT count(*), min(first_seen), max(first_seen) FROM read_parquet(?)`,
		night.Paths{DataDir: h.cfg.DataDir, Date: "2026-03-03"}.FirstSeen()).Scan(&n, &first, &last); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC); n != len(hEmails) || !first.Equal(want) || !last.Equal(want) {
		t.Errorf("first_seen after the gap: %d rows from %v to %v, want %d at %v", n, first, last, len(hEmails), want)
	}
}

// A night dated after today prunes nothing: the real nights before it
// stay, and a later real night deletes only by its own date, never
// counting the later-dated folders.
func TestFutureNightNeverPrunesRealNights(t *testing.T) {
	ctx := context.Background()
	h := newHNight(t, hEmails...)
	h.cfg.Retention.Nights = 2
	for _, d := range []string{"2026-03-01", "2026-03-02"} {
		if _, err := RunNight(ctx, h.opts(d)); err != nil {
			t.Fatal(err)
		}
		h.clk.Add(24 * time.Hour)
	}
	// The clock is at 2026-03-03 03:00.
	for _, d := range []string{"2026-09-01", "9999-12-31"} {
		if _, err := RunNight(ctx, h.opts(d)); err != nil {
			t.Fatal(err)
		}
	}
	exists := func(d string) bool {
		_, err := os.Stat(night.Paths{DataDir: h.cfg.DataDir, Date: d}.SnapshotDir())
		return err == nil
	}
	for _, d := range []string{"2026-03-01", "2026-03-02"} {
		if !exists(d) {
			t.Errorf("a future-dated night deleted the real night %s", d)
		}
	}
	if _, err := RunNight(ctx, h.opts("2026-03-03")); err != nil {
		t.Fatal(err)
	}
	for d, want := range map[string]bool{"2026-03-01": false, "2026-03-02": true, "2026-03-03": true} {
		if exists(d) != want {
			t.Errorf("after the real night 2026-03-03: %s kept %v, want %v", d, exists(d), want)
		}
	}
	now := time.Date(2026, 3, 3, 23, 0, 0, 0, time.UTC)
	for date, want := range map[string]bool{"2026-03-01": true, "2026-03-04": true, "2026-03-05": false, "9999-12-31": false} {
		if got := RetentionApplies(date, now); got != want {
			t.Errorf("RetentionApplies(%s) = %v, want %v", date, got, want)
		}
	}
}
