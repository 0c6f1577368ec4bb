package pipeline

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/flock"
	"github.com/lapse-dev/lapse/internal/night"
)

// hNight is a data dir with a JSONL account export and a provider that
// answers from the domain names (gone.* available, fail.* throttled).
type hNight struct {
	dir  string
	cfg  config.Config
	clk  *hClock
	prov *hProvider
}

func newHNight(t *testing.T, emails ...string) *hNight {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "accounts.jsonl")
	var b strings.Builder
	for i, e := range emails {
		fmt.Fprintf(&b, `{"id":%d,"user_id":"u%d","email":%q,"verified":true,"primary":true}`+"\n", i+1, i+1, e)
	}
	if err := os.WriteFile(src, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Source = "jsonl:" + src
	cfg.Brake.MaxFraction = 1
	clk := &hClock{t: time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)}
	return &hNight{dir: dir, cfg: cfg, clk: clk, prov: &hProvider{calls: map[string]int{}, now: clk.Now}}
}

func (h *hNight) opts(date string) Options {
	return Options{Config: h.cfg, Date: date, Now: h.clk.Now, Provider: h.prov}
}

func (h *hNight) calls() int {
	n := 0
	for _, c := range h.prov.calls {
		n += c
	}
	return n
}

var hEmails = []string{
	"a@one.com", "b@one.com", "c@two.org", "d@gone.net", "e@fail.io", "f@three.dev", "g@four.co",
	"h@five.de", "no-at-sign", "i@six.eu",
}

func TestRunNightFinishesAndReRunIsNoop(t *testing.T) {
	ctx := context.Background()
	h := newHNight(t, hEmails...)
	res, err := RunNight(ctx, h.opts("2026-03-01"))
	if err != nil {
		t.Fatal(err)
	}
	f := res.Figures()
	if res.Outcome != night.OutcomeOK || f.Addresses != 10 || f.Invalid != 1 || f.VerifiedDomains != 8 || f.Planned != 8 || f.Flagged != 1 || f.ChangesetStatus != "proposed" {
		t.Errorf("night: %+v", res)
	}
	p := night.Paths{DataDir: h.cfg.DataDir, Date: "2026-03-01"}
	for _, fn := range []string{p.Snapshot(), p.Plan(), p.Domains(), p.States(), p.Manifest(), night.Dir(h.cfg.DataDir).Metrics(),
		filepath.Join(p.Changeset(), "changeset.csv"), night.Paths{DataDir: h.cfg.DataDir, Date: "2026-03-01"}.Report()} {
		if _, err := os.Stat(fn); err != nil {
			t.Errorf("missing %v", err)
		}
	}
	prom, _ := os.ReadFile(night.Dir(h.cfg.DataDir).Metrics())
	for _, want := range []string{"lapse_flagged 1\n", `lapse_lookups{provider="rdap",outcome="available"} 1`, "lapse_run_success 1\n"} {
		if !bytes.Contains(prom, []byte(want)) {
			t.Errorf("metrics.prom lacks %q:\n%s", want, prom)
		}
	}
	before := h.calls()
	csv1, _ := os.ReadFile(filepath.Join(p.Changeset(), "changeset.csv"))

	res, err = RunNight(ctx, h.opts("2026-03-01"))
	if err != nil || !res.Skipped || h.calls() != before {
		t.Errorf("re-run of a finished night: skipped %v, err %v, lookups %d → %d", res.Skipped, err, before, h.calls())
	}
	o := h.opts("2026-03-01")
	o.Force = true
	res, err = RunNight(ctx, o)
	if err != nil || res.Skipped || res.Outcome != night.OutcomeOK {
		t.Errorf("forced re-run: %+v %v", res, err)
	}
	csv2, _ := os.ReadFile(filepath.Join(p.Changeset(), "changeset.csv"))
	if !bytes.Equal(csv1, csv2) {
		t.Errorf("forced re-run changed the changeset:\n%s\n---\n%s", csv1, csv2)
	}

	// The next night: registered domains are fresh, the rest asked again.
	h.clk.Add(24 * time.Hour)
	before = h.calls()
	res, err = RunNight(ctx, h.opts("2026-03-02"))
	if err != nil {
		t.Fatal(err)
	}
	if f := res.Figures(); f.Fresh != 6 || f.Planned != 2 || h.calls()-before != 2 {
		t.Errorf("second night: fresh %d planned %d lookups %d", f.Fresh, f.Planned, h.calls()-before)
	}
}

// The same night run straight through and killed twice (after a stage, and
// mid-resolve) then resumed must leave the same files.
func TestKilledNightResumesToTheSameFiles(t *testing.T) {
	ctx := context.Background()
	var many []string
	for i := range 60 {
		many = append(many, fmt.Sprintf("x%d@d%02d.com", i, i%30))
	}
	many = append(many, "y@gone.org", "z@gone.net")
	straight := newHNight(t, many...)
	if _, err := RunNight(ctx, straight.opts("2026-03-01")); err != nil {
		t.Fatal(err)
	}

	h := newHNight(t, many...)
	o := h.opts("2026-03-01")
	o.AfterStage = func(s string) error {
		if s == StagePlan {
			return errors.New("killed")
		}
		return nil
	}
	if _, err := RunNight(ctx, o); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("killed after plan: %v", err)
	}
	o = h.opts("2026-03-01")
	o.StopAfterLookups = 7
	o.Config.Resolve.Concurrency = 2
	res, err := RunNight(ctx, o)
	if !errors.Is(err, context.Canceled) || res.Outcome != night.OutcomeFailed {
		t.Fatalf("interrupted resolve: %v %+v", err, res)
	}
	res, err = RunNight(ctx, h.opts("2026-03-01"))
	if err != nil || res.Resumed != StagePlan {
		t.Fatalf("resumed: %v %+v", err, res)
	}
	for d, n := range h.prov.calls {
		// One lookup may be cut by the interruption and asked again.
		if n > 2 {
			t.Errorf("%s asked %d times", d, n)
		}
	}
	sp := night.Paths{DataDir: straight.cfg.DataDir, Date: "2026-03-01"}
	rp := night.Paths{DataDir: h.cfg.DataDir, Date: "2026-03-01"}
	for _, q := range []string{
		"SELECT * FROM read_parquet(%s) ORDER BY domain",
	} {
		for _, pair := range [][2]string{{sp.States(), rp.States()}, {sp.Domains(), rp.Domains()}} {
			a, b := hQueryText(t, fmt.Sprintf(q, "'"+pair[0]+"'")), hQueryText(t, fmt.Sprintf(q, "'"+pair[1]+"'"))
			if a != b {
				t.Errorf("%s differs from the uninterrupted night:\n%s\n---\n%s", filepath.Base(pair[0]), a, b)
			}
		}
	}
	for _, fn := range []string{"changeset.csv", "notify.csv", "summary.md"} {
		a, _ := os.ReadFile(filepath.Join(sp.Changeset(), fn))
		b, _ := os.ReadFile(filepath.Join(rp.Changeset(), fn))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from the uninterrupted night", fn)
		}
	}
	m, err := ReadManifest(night.Paths{DataDir: h.cfg.DataDir, Date: "2026-03-01"})
	if err != nil || m.Attempts != 3 || m.Figures.TotalLookups() != 32 {
		t.Errorf("manifest: attempts %d lookups %d (%v)", m.Attempts, m.Figures.TotalLookups(), err)
	}
}

func TestBrakeBlocksAndSecondRunIsRefused(t *testing.T) {
	ctx := context.Background()
	h := newHNight(t, hEmails...)
	h.cfg.Brake.MaxFraction = 0.005
	res, err := RunNight(ctx, h.opts("2026-03-01"))
	if !errors.Is(err, ErrBlocked) || res.Outcome != night.OutcomeBlocked || res.Figures().ChangesetStatus != "blocked" {
		t.Fatalf("brake: %v %+v", err, res)
	}
	// Finished all the same: a re-run does nothing and says blocked again.
	res, err = RunNight(ctx, h.opts("2026-03-01"))
	if !errors.Is(err, ErrBlocked) || !res.Skipped {
		t.Errorf("re-run of a blocked night: %v %+v", err, res)
	}

	lock, err := flock.Acquire(night.Dir(h.cfg.DataDir).Lock())
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	_, err = RunNight(ctx, h.opts("2026-03-02"))
	if !errors.Is(err, flock.ErrRunning) || !strings.Contains(err.Error(), "lapse.lock") {
		t.Errorf("second run at once: %v", err)
	}
}

// hQueryText renders a DuckDB query's rows as text for comparison.
func hQueryText(t *testing.T, q string) string {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var b strings.Builder
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		j, _ := json.Marshal(vals)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// With retention.nights the snapshots and decisions of older nights are
// deleted once a night finishes, and nothing else: the first-seen history
// still reaches back to the first night through first_seen.parquet.
func TestRetentionDeletesOldAddressFiles(t *testing.T) {
	ctx := context.Background()
	h := newHNight(t, hEmails...)
	h.cfg.Retention.Nights = 2
	dates := []string{"2026-03-01", "2026-03-02", "2026-03-03", "2026-03-05"}
	for _, d := range dates {
		if _, err := RunNight(ctx, h.opts(d)); err != nil {
			t.Fatalf("night %s: %v", d, err)
		}
		h.clk.Add(24 * time.Hour)
	}
	data := h.cfg.DataDir
	for _, sub := range []string{"snapshots", "decisions"} {
		for _, d := range dates {
			_, err := os.Stat(filepath.Join(data, sub, "date="+d))
			// Two nights kept, tonight (03-05) included: 03-04 and 03-05.
			if gone := d < "2026-03-04"; gone != errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s/date=%s: stat %v, want deleted %v", sub, d, err, gone)
			}
		}
	}
	for _, d := range dates {
		for _, p := range []string{filepath.Join("changesets", d), filepath.Join("observations", "date="+d)} {
			if _, err := os.Stat(filepath.Join(data, p)); err != nil {
				t.Errorf("%s deleted by retention: %v", p, err)
			}
		}
	}
	// Every address was first seen on the first night, whose files are gone.
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	var first time.Time
	q := `SELECT count(*), min(first_seen) FROM read_parquet(?) HAVING max(first_seen) = min(first_seen)`
	if err := db.QueryRow(q, filepath.Join(data, "decisions", "date=2026-03-05", "first_seen.parquet")).Scan(&n, &first); err != nil {
		t.Fatalf("first_seen of the last night: %v", err)
	}
	if want := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC); n != len(hEmails) || !first.Equal(want) {
		t.Errorf("last night's first_seen: %d addresses first seen %v, want %d at %v", n, first, len(hEmails), want)
	}
	if rm, err := Prune(night.Dir(data), "2026-03-05", 0); err != nil || len(rm) != 0 {
		t.Errorf("retention 0 deleted %v (%v)", rm, err)
	}
}
