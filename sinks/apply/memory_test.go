package apply_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/sim"
	"github.com/lapse-dev/lapse/sinks/apply"
	"github.com/lapse-dev/lapse/sinks/apply/applytest"
	"github.com/lapse-dev/lapse/sinks/lifecycledb"
)

// TestMemoryTargetOverWorld runs the driver over the simulator's account
// table, as `lapse demo` does: the same guard, batches, idempotence and
// revert as PostgreSQL.
func TestMemoryTargetOverWorld(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w := sim.NewWorld(sim.Params{Seed: 3, Start: start, Emails: 500})
	day := start.AddDate(0, 0, 59)
	w.SetDate(day)
	date := day.Format(time.DateOnly)
	var rows []apply.Row
	for _, r := range w.Addresses(day) {
		if r.Verified && len(rows) < 12 {
			rows = append(rows, apply.Row{EmailID: r.ID, UserID: r.UserID, Email: r.Email, Domain: "x.test", State: "available",
				Reason: "domain_available", Evidence: "rdap:available checked " + date})
		}
	}
	// Since the snapshot: the first address reads differently, the second
	// was un-verified by the registry, and a row that no longer exists.
	rows[0].Email = "someone.else@x.test"
	w.Unverify([]int64{rows[1].EmailID}, day)
	rows = append(rows, apply.Row{EmailID: 1 << 40, UserID: "gone", Email: "gone@x.test", Domain: "x.test", State: "available", Reason: "domain_available"})
	dataDir := t.TempDir()
	dir := applytest.Changeset(t, dataDir, date, rows)
	tgt := apply.NewMemoryTarget(w)
	o := apply.Options{Dir: dir, Target: tgt, By: "demo", Reason: "domain status invalid", BatchSize: 5,
		MaxAge: 72 * time.Hour, Now: func() time.Time { return day.Add(3 * time.Hour) }}
	res, err := apply.Apply(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed != 10 || res.Skipped != 3 || res.Batches != 3 {
		t.Fatalf("apply: changed %d, skipped %d, batches %d; want 10, 3, 3", res.Changed, res.Skipped, res.Batches)
	}
	want := map[int64]string{rows[0].EmailID: apply.SkipEmailChanged, rows[1].EmailID: apply.SkipAlreadyUnverified, 1 << 40: apply.SkipDeleted}
	if got := skipsOf(res.Report); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("skipped %v, want %v", got, want)
	}
	unverified := func() map[int64]string {
		m := map[int64]string{}
		for _, r := range w.Addresses(day) {
			if !r.Verified && r.UnverifyReason != "" {
				m[r.ID] = r.UnverifyReason
			}
		}
		return m
	}
	u := unverified()
	for _, r := range rows[2:12] {
		if u[r.EmailID] != "domain status invalid" {
			t.Errorf("%d not un-verified with apply's reason: %q", r.EmailID, u[r.EmailID])
		}
	}
	if len(u) != 11 {
		t.Errorf("%d addresses un-verified, want 11 (10 applied, 1 by the registry)", len(u))
	}
	if err := apply.Record(ctx, apply.RecordOptions{DataDir: dataDir, CacheDir: filepath.Join(dataDir, "cache")}, res); err != nil {
		t.Fatal(err)
	}
	again, err := apply.Apply(ctx, o)
	if err != nil || !again.Already || again.ChangedNow != 0 {
		t.Errorf("re-apply: %+v %v", again, err)
	}
	// A dry run of revert, then revert the next day: the simulator's
	// owners never verify again, so all ten are restored.
	o.DryRun = true
	d, err := apply.Revert(ctx, o)
	if err != nil || d.DryRun.WouldChange != 10 {
		t.Fatalf("revert dry run: %+v %v", d.DryRun, err)
	}
	o.DryRun = false
	w.SetDate(day.AddDate(0, 0, 1))
	rev, err := apply.Revert(ctx, o)
	if err != nil || rev.Changed != 10 || rev.Skipped != 0 {
		t.Fatalf("revert: %+v %v", rev.Report, err)
	}
	if err := apply.Record(ctx, apply.RecordOptions{DataDir: dataDir}, rev); err != nil {
		t.Fatal(err)
	}
	for _, r := range w.Addresses(day.AddDate(0, 0, 1)) {
		for _, c := range rows[2:12] {
			if r.ID == c.EmailID && !r.Verified {
				t.Errorf("%d not restored", r.ID)
			}
		}
	}
	if rev2, err := apply.Revert(ctx, o); err != nil || !rev2.Already {
		t.Errorf("second revert: %+v %v", rev2, err)
	}
	if _, err := apply.Apply(ctx, o); !errors.Is(err, apply.ErrReverted) {
		t.Errorf("apply after revert: %v", err)
	}
	db, err := lifecycledb.Open(filepath.Join(dataDir, "lapse.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, reverted int
	if err := db.SQL().QueryRow(`SELECT count(*), count(reverted_at) FROM applied_changes`).Scan(&n, &reverted); err != nil || n != 10 || reverted != 10 {
		t.Errorf("lifecycle db: %d applied, %d reverted (%v); want 10, 10", n, reverted, err)
	}
}

func TestMemoryTargetLock(t *testing.T) {
	ctx := context.Background()
	tgt := apply.NewMemoryTarget(nil)
	unlock, err := tgt.Lock(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tgt.Lock(ctx, false); !errors.Is(err, apply.ErrLocked) {
		t.Errorf("second lock: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := tgt.Lock(cctx, true); !errors.Is(err, context.Canceled) {
		t.Errorf("waiting lock on a canceled context: %v", err)
	}
	unlock()
	unlock()
	again, err := tgt.Lock(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	again()
}

// TestRecordWhileNightRuns: while another process holds lapse.duckdb, Record says the account table is changed and that a
// re-run records it.
func TestRecordWhileNightRuns(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w := sim.NewWorld(sim.Params{Seed: 3, Start: start, Emails: 200})
	w.SetDate(start.AddDate(0, 0, 30))
	date := w.Date().Format(time.DateOnly)
	var rows []apply.Row
	for _, r := range w.Addresses(w.Date()) {
		if r.Verified && len(rows) < 3 {
			rows = append(rows, apply.Row{EmailID: r.ID, UserID: r.UserID, Email: r.Email, Domain: "x.test", State: "available", Reason: "domain_available"})
		}
	}
	dataDir := t.TempDir()
	dir := applytest.Changeset(t, dataDir, date, rows)
	res, err := apply.Apply(ctx, apply.Options{Dir: dir, Target: apply.NewMemoryTarget(w), By: "demo", Reason: "r",
		Now: func() time.Time { return w.Date().Add(3 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	// Another process holds lapse.duckdb, as a running night does.
	if err := apply.Record(ctx, apply.RecordOptions{DataDir: dataDir}, res); err != nil { // creates it
		t.Fatal(err)
	}
	hold := osexec.Command(os.Args[0])
	hold.Env = append(os.Environ(), "APPLY_TEST_HOLD_DUCKDB="+filepath.Join(dataDir, "lapse.duckdb"))
	stdin, err := hold.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := hold.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := hold.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if line != "holding\n" {
		stdin.Close()
		hold.Wait()
		t.Fatalf("the holder did not open lapse.duckdb: %q", line)
	}
	err = apply.Record(ctx, apply.RecordOptions{DataDir: dataDir}, res)
	stdin.Close()
	if werr := hold.Wait(); werr != nil {
		t.Fatal(werr)
	}
	if !errors.Is(err, lifecycledb.ErrInUse) || !strings.Contains(err.Error(), "changed and audited") || !strings.Contains(err.Error(), "run lapse apply again") {
		t.Errorf("Record while lapse.duckdb is in use: %v", err)
	}
	if err := apply.Record(ctx, apply.RecordOptions{DataDir: dataDir}, res); err != nil {
		t.Errorf("Record once it is free: %v", err)
	}
}

// TestApplyEmptyChangeset: a changeset with no rows is applied once (one
// empty batch recorded), then is already applied; revert has nothing to do.
func TestApplyEmptyChangeset(t *testing.T) {
	ctx := context.Background()
	w := sim.NewWorld(sim.Params{Seed: 3, Emails: 50})
	dir := applytest.Changeset(t, t.TempDir(), night, nil)
	o := apply.Options{Dir: dir, Target: apply.NewMemoryTarget(w), By: "demo", Now: func() time.Time { return nightNow }}
	res, err := apply.Apply(ctx, o)
	if err != nil || res.Changed != 0 || res.Batches != 1 || res.Already {
		t.Fatalf("apply: %+v %v", res.Report, err)
	}
	if res, err := apply.Apply(ctx, o); err != nil || !res.Already {
		t.Errorf("re-apply: %+v %v", res.Report, err)
	}
	if res, err := apply.Revert(ctx, o); err != nil || !res.Already || res.Changed != 0 {
		t.Errorf("revert: %+v %v", res.Report, err)
	}
}
