package apply_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/pgtest"
	"github.com/lapse-dev/lapse/sinks/apply"
	"github.com/lapse-dev/lapse/sinks/apply/applytest"
	"github.com/lapse-dev/lapse/sinks/changeset"
	"github.com/lapse-dev/lapse/sinks/lifecycledb"
)

// TestMain stops the throwaway PostgreSQL. With APPLY_TEST_HOLD_DUCKDB=PATH
// the test binary instead holds the lifecycle database at PATH open, as a
// running night does, until its stdin closes.
func TestMain(m *testing.M) {
	if p := os.Getenv("APPLY_TEST_HOLD_DUCKDB"); p != "" {
		db, err := lifecycledb.Open(p)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("holding")
		io.Copy(io.Discard, os.Stdin)
		db.Close()
		os.Exit(0)
	}
	pgtest.Main(m)
}

const night = "2026-03-01"

// nightNow is the clock of the tests: the morning after the night.
var nightNow = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)

func pgOptions(dsn string, mod func(*config.Config)) apply.PostgresOptions {
	c := config.Default()
	if mod != nil {
		mod(&c)
	}
	return apply.PostgresOptions{DSN: dsn, Postgres: c.Postgres, Apply: c.Apply}
}

func openPG(t testing.TB, dsn string, mod func(*config.Config)) *apply.Postgres {
	t.Helper()
	p, err := apply.OpenPostgres(context.Background(), pgOptions(dsn, mod))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func options(dir string, tgt apply.Target) apply.Options {
	c := config.Default()
	return apply.Options{Dir: dir, Target: tgt, By: "ann", MaxAge: c.Apply.MaxAge.Std(), Reason: c.Apply.Reason,
		BatchSize: c.Apply.BatchSize, Now: func() time.Time { return nightNow }}
}

// row is one account row as the test reads it.
type row struct {
	email    string
	verified bool
	reason   *string
	checked  *time.Time
	status   *string // text form
}

func (r row) String() string {
	c := "<nil>"
	if r.checked != nil {
		c = r.checked.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("{%s verified=%v reason=%s checked=%s status=%s}", r.email, r.verified, deref(r.reason), c, deref(r.status))
}

func readTable(t testing.TB, conn *pgx.Conn, table string) map[int64]row {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT id, email, verified, unverify_reason::text, domain_last_checked,
		domain_last_status::text FROM `+table)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]row{}
	for rows.Next() {
		var id int64
		var r row
		if err := rows.Scan(&id, &r.email, &r.verified, &r.reason, &r.checked, &r.status); err != nil {
			t.Fatal(err)
		}
		out[id] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func exec(t testing.TB, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func count(t testing.TB, conn *pgx.Conn, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func skipsOf(r apply.Report) map[int64]string {
	m := map[int64]string{}
	for _, s := range r.SkippedRows {
		m[s.EmailID] = s.Why
	}
	return m
}

// TestApplyRevertPostgres: apply un-verifies exactly the rows that pass the
// guard and reports the others with why; the audit table says what and
// why; re-applying changes nothing; revert restores exactly what apply
// changed, leaving alone a row its owner re-verified; reverting twice is
// a no-op; a reverted changeset is not applied again.
func TestApplyRevertPostgres(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	rows := applytest.Rows(10, night)
	conn := applytest.CreateTable(t, dsn, rows, applytest.TableOptions{Extra: 5})
	// Since the snapshot: row 2's owner changed the address, row 3 was
	// deleted, row 4 was un-verified by the registry for another reason.
	exec(t, conn, `UPDATE user_emails SET email = 'new2@elsewhere.example' WHERE id = 2`)
	exec(t, conn, `DELETE FROM user_emails WHERE id = 3`)
	exec(t, conn, `UPDATE user_emails SET verified = false, unverify_reason = 'hard bounce' WHERE id = 4`)
	before := readTable(t, conn, "user_emails")
	dataDir := t.TempDir()
	dir := applytest.Changeset(t, dataDir, night, rows)
	tgt := openPG(t, dsn, nil)

	res, err := apply.Apply(ctx, options(dir, tgt))
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed != 7 || res.Skipped != 3 || res.ChangedNow != 7 || res.Already || res.Batches != 1 {
		t.Fatalf("apply: changed %d (now %d), skipped %d, batches %d, already %v; want 7, 3, 1 batch", res.Changed, res.ChangedNow, res.Skipped, res.Batches, res.Already)
	}
	want := map[int64]string{2: apply.SkipEmailChanged, 3: apply.SkipDeleted, 4: apply.SkipAlreadyUnverified}
	if got := skipsOf(res.Report); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("skipped %v, want %v", got, want)
	}
	after := readTable(t, conn, "user_emails")
	for id, r := range after {
		b := before[id]
		switch {
		case id >= 1 && id <= 10 && id != 2 && id != 4:
			if r.verified || r.reason == nil || *r.reason != "domain status invalid" || r.email != b.email {
				t.Errorf("row %d after apply: %+v", id, r)
			}
			if r.checked != nil || r.status != nil {
				t.Errorf("row %d: domain status written without write_domain_status", id)
			}
		default:
			if fmt.Sprint(r) != fmt.Sprint(b) {
				t.Errorf("row %d touched: %+v, was %+v", id, r, b)
			}
		}
	}

	// The audit table: one row per change, with why and what revert needs.
	if n := count(t, conn, `SELECT count(*) FROM lapse_audit`); n != 7 {
		t.Errorf("audit rows %d, want 7", n)
	}
	var sha, action, user, email, domain, reason, evidence, by string
	var setReason, prevReason *string
	var at time.Time
	var dateS string
	if err := conn.QueryRow(ctx, `SELECT changeset_sha256, changeset_date::text, action, user_id, email, domain, reason, evidence,
		applied_at, applied_by, set_reason, prev_reason FROM lapse_audit WHERE email_id = 5`).Scan(
		&sha, &dateS, &action, &user, &email, &domain, &reason, &evidence, &at, &by, &setReason, &prevReason); err != nil {
		t.Fatal(err)
	}
	if sha != res.ManifestSHA256 || dateS != night || action != "apply" || user != "u3" || email != rows[4].Email || domain != rows[4].Domain ||
		reason != "domain_available" || !strings.Contains(evidence, "rdap:available") || !at.Equal(nightNow) || by != "ann" ||
		setReason == nil || *setReason != "domain status invalid" || prevReason != nil {
		t.Errorf("audit row of 5: %s %s %s %s %s %s %s %q %v %s %v %v", sha, dateS, action, user, email, domain, reason, evidence, at, by, setReason, prevReason)
	}
	if a, _ := changeset.ReadApproval(dir); sha != a.ManifestSHA256 {
		t.Errorf("audit sha %s, approval pins %s", sha, a.ManifestSHA256)
	}

	// applied.json and notify_applied.csv.
	fi, err := os.Stat(filepath.Join(dir, changeset.FileApplied))
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("applied.json: %v %v", fi, err)
	}
	rep, err := apply.ReadReport(filepath.Join(dir, changeset.FileApplied))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Date != night || rep.Changed != 7 || rep.Skipped != 3 || rep.SkippedByReason[apply.SkipDeleted] != 1 ||
		len(rep.SkippedRows) != 3 || rep.By != "ann" || rep.StartedAt.IsZero() || rep.FinishedAt.IsZero() || rep.ManifestSHA256 != sha {
		t.Errorf("applied.json %+v", rep)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, changeset.FileApplied))
	if bytes.Contains(raw, []byte(rows[0].Email)) || bytes.Contains(raw, []byte(".test")) {
		t.Errorf("applied.json holds an address:\n%s", raw)
	}
	fi, err = os.Stat(filepath.Join(dir, changeset.FileAppliedNotify))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("notify_applied.csv: %v %v", fi, err)
	}
	notify, _ := os.ReadFile(filepath.Join(dir, changeset.FileAppliedNotify))
	if lines := strings.Split(strings.TrimSpace(string(notify)), "\n"); len(lines) != 8 || !strings.HasPrefix(lines[0], "user_id,email_id,email") ||
		strings.Contains(string(notify), rows[1].Email) {
		t.Errorf("notify_applied.csv:\n%s", notify)
	}
	if _, _, err := changeset.Verify(dir); err != nil {
		t.Errorf("the files apply added break the manifest: %v", err)
	}

	// Record into the lifecycle database, twice: the same rows.
	for range 2 {
		if err := apply.Record(ctx, apply.RecordOptions{DataDir: dataDir}, res); err != nil {
			t.Fatal(err)
		}
	}

	// Re-applying changes nothing and says so.
	snap := readTable(t, conn, "user_emails")
	again, err := apply.Apply(ctx, options(dir, tgt))
	if err != nil {
		t.Fatal(err)
	}
	if !again.Already || again.ChangedNow != 0 || again.Changed != 7 || again.Path != "" {
		t.Errorf("re-apply: already %v, changed now %d, total %d, wrote %q", again.Already, again.ChangedNow, again.Changed, again.Path)
	}
	if fmt.Sprint(readTable(t, conn, "user_emails")) != fmt.Sprint(snap) || count(t, conn, `SELECT count(*) FROM lapse_audit`) != 7 {
		t.Error("re-apply changed the table or the audit")
	}
	if err := apply.Record(ctx, apply.RecordOptions{DataDir: dataDir}, again); err != nil {
		t.Fatal(err)
	}

	// Row 5's owner verified it again; row 6 got another reason since.
	exec(t, conn, `UPDATE user_emails SET verified = true, unverify_reason = NULL WHERE id = 5`)
	exec(t, conn, `UPDATE user_emails SET unverify_reason = 'spam complaint' WHERE id = 6`)
	rev, err := apply.Revert(ctx, options(dir, tgt))
	if err != nil {
		t.Fatal(err)
	}
	if rev.Changed != 5 || rev.Skipped != 2 || rev.Rows != 7 {
		t.Fatalf("revert: restored %d, skipped %d of %d; want 5, 2 of 7", rev.Changed, rev.Skipped, rev.Rows)
	}
	if got := skipsOf(rev.Report); got[5] != apply.SkipReverified || got[6] != apply.SkipReasonChanged {
		t.Errorf("revert skipped %v", got)
	}
	final := readTable(t, conn, "user_emails")
	for _, id := range []int64{1, 7, 8, 9, 10} {
		if fmt.Sprint(final[id]) != fmt.Sprint(before[id]) {
			t.Errorf("row %d after revert %+v, before apply %+v", id, final[id], before[id])
		}
	}
	if r := final[6]; r.verified || *r.reason != "spam complaint" {
		t.Errorf("row 6 (reason changed) touched by revert: %+v", r)
	}
	if r := final[5]; !r.verified || r.reason != nil {
		t.Errorf("row 5 (re-verified) touched by revert: %+v", r)
	}
	if n := count(t, conn, `SELECT count(*) FROM lapse_audit WHERE action = 'revert'`); n != 5 {
		t.Errorf("revert audit rows %d, want 5", n)
	}
	if err := apply.Record(ctx, apply.RecordOptions{DataDir: dataDir}, rev); err != nil {
		t.Fatal(err)
	}
	rev2, err := apply.Revert(ctx, options(dir, tgt))
	if err != nil || !rev2.Already || rev2.ChangedNow != 0 || rev2.Changed != 5 {
		t.Errorf("second revert: %+v %v", rev2, err)
	}
	if fmt.Sprint(readTable(t, conn, "user_emails")) != fmt.Sprint(final) {
		t.Error("second revert changed the table")
	}
	if _, err := apply.Apply(ctx, options(dir, tgt)); !errors.Is(err, apply.ErrReverted) {
		t.Errorf("apply after revert: %v, want ErrReverted", err)
	}

	// The lifecycle database: the changes once, and which were reverted.
	db, err := lifecycledb.Open(filepath.Join(dataDir, "lapse.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, reverted, runs int
	if err := db.SQL().QueryRow(`SELECT count(*), count(reverted_at) FROM applied_changes`).Scan(&n, &reverted); err != nil {
		t.Fatal(err)
	}
	if err := db.SQL().QueryRow(`SELECT count(*) FROM applies`).Scan(&runs); err != nil {
		t.Fatal(err)
	}
	if n != 7 || reverted != 5 || runs != 2 {
		t.Errorf("lifecycle db: %d applied, %d reverted, %d runs; want 7, 5, 2 (apply, revert)", n, reverted, runs)
	}
}

// TestApplyDomainStatus: write_domain_status sets domain_last_checked
// from the evidence and domain_last_status to the state (a one-element
// array, or text), with an enum reason column; revert restores the
// previous values exactly.
func TestApplyDomainStatus(t *testing.T) {
	for _, textStatus := range []bool{false, true} {
		t.Run(fmt.Sprintf("text_status=%v", textStatus), func(t *testing.T) {
			ctx := context.Background()
			dsn := pgtest.DSN(t)
			rows := applytest.Rows(3, "2026-02-27")
			conn := applytest.CreateTable(t, dsn, rows, applytest.TableOptions{EnumReason: true, TextStatus: textStatus})
			old := `ARRAY['active']::varchar[]`
			if textStatus {
				old = `'active'`
			}
			exec(t, conn, `UPDATE user_emails SET domain_last_checked = '2026-01-15 12:00:00', domain_last_status = `+old+` WHERE id = 1`)
			before := readTable(t, conn, "user_emails")
			dir := applytest.Changeset(t, t.TempDir(), night, rows)
			mod := func(c *config.Config) { c.Apply.WriteDomainStatus = true }
			tgt := openPG(t, dsn, mod)
			o := options(dir, tgt)
			o.WriteDomainStatus = true
			if res, err := apply.Apply(ctx, o); err != nil || res.Changed != 3 {
				t.Fatalf("apply: %+v %v", res, err)
			}
			wantStatus := "{available}"
			if textStatus {
				wantStatus = "available"
			}
			for id, r := range readTable(t, conn, "user_emails") {
				if r.verified || r.reason == nil || *r.reason != "domain status invalid" || r.checked == nil ||
					!r.checked.Equal(time.Date(2026, 2, 27, 0, 0, 0, 0, time.UTC)) || r.status == nil || *r.status != wantStatus {
					t.Errorf("row %d after apply: %+v (checked %v status %v)", id, r, r.checked, deref(r.status))
				}
			}
			if _, err := apply.Revert(ctx, options(dir, tgt)); err != nil {
				t.Fatal(err)
			}
			if got := readTable(t, conn, "user_emails"); fmt.Sprint(got) != fmt.Sprint(before) {
				t.Errorf("after revert %v, before apply %v", got, before)
			}
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// TestApplyRefusals: an unapproved, tampered or stale changeset is
// refused with a clear message, and the table is not touched.
func TestApplyRefusals(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	rows := applytest.Rows(4, night)
	conn := applytest.CreateTable(t, dsn, rows, applytest.TableOptions{})
	tgt := openPG(t, dsn, nil)
	dataDir := t.TempDir()

	dir := applytest.WriteChangeset(t, dataDir, night, rows)
	_, err := apply.Apply(ctx, options(dir, tgt))
	if !errors.Is(err, changeset.ErrNotApproved) || !strings.Contains(err.Error(), "lapse approve") {
		t.Errorf("unapproved: %v", err)
	}
	if _, _, err := changeset.Approve(dir, changeset.ApproveOptions{By: "reviewer"}); err != nil {
		t.Fatal(err)
	}
	csvPath := filepath.Join(dir, changeset.FileCSV)
	b, _ := os.ReadFile(csvPath)
	if err := os.WriteFile(csvPath, append(b, []byte("99,u,evil@x.test,x.test,available,domain_available,,true,false,,\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = apply.Apply(ctx, options(dir, tgt))
	if !errors.Is(err, changeset.ErrTampered) || !strings.Contains(err.Error(), changeset.FileCSV) {
		t.Errorf("tampered: %v", err)
	}
	if err := os.WriteFile(csvPath, b, 0o600); err != nil {
		t.Fatal(err)
	}

	o := options(dir, tgt)
	o.Now = func() time.Time { return nightNow.AddDate(0, 0, 4) }
	_, err = apply.Apply(ctx, o)
	if !errors.Is(err, apply.ErrStale) || !strings.Contains(err.Error(), "--allow-stale") || !strings.Contains(err.Error(), "apply.max_age") {
		t.Errorf("stale: %v", err)
	}
	if n := count(t, conn, `SELECT count(*) FROM user_emails WHERE NOT verified`); n != 0 {
		t.Fatalf("a refused apply changed %d rows", n)
	}
	if n := count(t, conn, `SELECT count(*) FROM pg_tables WHERE tablename LIKE 'lapse_audit%'`); n != 0 {
		t.Errorf("a refused apply created %d tables", n)
	}
	o.AllowStale = true
	if res, err := apply.Apply(ctx, o); err != nil || res.Changed != 4 {
		t.Errorf("--allow-stale: %+v %v", res, err)
	}
}

// TestApplyDryRunTouchesNothing: a dry run reports the verdicts and
// changes nothing in the account database (not even the audit table) nor
// in the changeset folder.
func TestApplyDryRunTouchesNothing(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	rows := applytest.Rows(6, night)
	conn := applytest.CreateTable(t, dsn, rows, applytest.TableOptions{})
	exec(t, conn, `UPDATE user_emails SET email = 'moved@x.example' WHERE id = 2`)
	exec(t, conn, `UPDATE user_emails SET verified = false WHERE id = 3`)
	before := readTable(t, conn, "user_emails")
	dir := applytest.Changeset(t, t.TempDir(), night, rows)
	tgt := openPG(t, dsn, nil)
	o := options(dir, tgt)
	o.DryRun = true
	var verdicts bytes.Buffer
	o.Verdicts = &verdicts
	res, err := apply.Apply(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	d := res.DryRun
	if d == nil || d.WouldChange != 4 || d.WouldSkip[apply.SkipEmailChanged] != 1 || d.WouldSkip[apply.SkipAlreadyUnverified] != 1 || d.Done != 0 {
		t.Errorf("dry run %+v", d)
	}
	want := "email_id,verdict\n1,unverify\n2,email_changed\n3,already_unverified\n4,unverify\n5,unverify\n6,unverify\n"
	if verdicts.String() != want {
		t.Errorf("verdicts:\n%s\nwant\n%s", verdicts.String(), want)
	}
	if fmt.Sprint(readTable(t, conn, "user_emails")) != fmt.Sprint(before) {
		t.Error("the dry run changed the table")
	}
	if n := count(t, conn, `SELECT count(*) FROM pg_tables WHERE tablename LIKE 'lapse_audit%'`); n != 0 {
		t.Errorf("the dry run created %d tables", n)
	}
	for _, f := range []string{changeset.FileApplied, changeset.FileAppliedNotify} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("the dry run wrote %s", f)
		}
	}
	// After a real apply, a dry run says everything is done.
	if _, err := apply.Apply(ctx, options(dir, tgt)); err != nil {
		t.Fatal(err)
	}
	verdicts.Reset()
	res, err = apply.Apply(ctx, o)
	if err != nil || !res.Already || res.DryRun.Done != 6 || res.DryRun.WouldChange != 0 {
		t.Errorf("dry run after apply: %+v %v", res.DryRun, err)
	}
	if !strings.Contains(verdicts.String(), "1,done\n") || !strings.Contains(verdicts.String(), "2,skipped_earlier:email_changed\n") {
		t.Errorf("verdicts after apply:\n%s", verdicts.String())
	}
	// A revert dry run.
	o.DryRun = true
	o.Verdicts = nil
	rres, err := apply.Revert(ctx, o)
	if err != nil || rres.DryRun.WouldChange != 4 {
		t.Errorf("revert dry run: %+v %v", rres.DryRun, err)
	}
	if n := count(t, conn, `SELECT count(*) FROM user_emails WHERE NOT verified`); n != 5 {
		t.Errorf("revert dry run changed the table: %d unverified, want 5", n)
	}
}

// TestApplyLock: a second apply stops at once while another holds the
// lock, naming it; with Wait it waits and then finishes.
func TestApplyLock(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	rows := applytest.Rows(3, night)
	conn := applytest.CreateTable(t, dsn, rows, applytest.TableOptions{})
	dir := applytest.Changeset(t, t.TempDir(), night, rows)
	tgt := openPG(t, dsn, nil)
	if tgt.AuditTable() != "public.lapse_audit" {
		t.Errorf("audit table %s", tgt.AuditTable())
	}
	holder, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	var pid int
	if err := holder.QueryRow(ctx, `SELECT pg_backend_pid() FROM (SELECT pg_advisory_lock($1)) l`, tgt.LockKey()).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	_, err = apply.Apply(ctx, options(dir, tgt))
	if !errors.Is(err, apply.ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", pid)) || !strings.Contains(err.Error(), "--wait") {
		t.Fatalf("apply while locked: %v", err)
	}
	if n := count(t, conn, `SELECT count(*) FROM user_emails WHERE NOT verified`); n != 0 {
		t.Fatalf("a locked-out apply changed %d rows", n)
	}
	o := options(dir, tgt)
	o.Wait = true
	done := make(chan error, 1)
	go func() {
		_, err := apply.Apply(ctx, o)
		done <- err
	}()
	// Release the lock once the apply waits for it.
	for count(t, conn, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`) == 0 {
		select {
		case err := <-done:
			t.Fatalf("apply --wait returned before the lock was released: %v", err)
		default:
		}
	}
	exec(t, holder, `SELECT pg_advisory_unlock($1)`, tgt.LockKey())
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := count(t, conn, `SELECT count(*) FROM user_emails WHERE NOT verified`); n != 3 {
		t.Errorf("apply --wait un-verified %d rows, want 3", n)
	}
}

// TestApplyResumesAfterFailedBatch: a batch that fails leaves the batches
// before it committed; the next apply resumes with it, and no row is
// changed twice (a trigger logs every update of the table).
func TestApplyResumesAfterFailedBatch(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	rows := applytest.Rows(50, night)
	conn := applytest.CreateTable(t, dsn, rows, applytest.TableOptions{})
	exec(t, conn, `CREATE TABLE updates (id bigint NOT NULL);
		CREATE TABLE fail_on (id bigint);
		CREATE FUNCTION log_update() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF EXISTS (SELECT 1 FROM fail_on WHERE id = NEW.id) THEN RAISE EXCEPTION 'injected failure on row %', NEW.id; END IF;
			INSERT INTO updates VALUES (NEW.id);
			RETURN NEW;
		END $$;
		CREATE TRIGGER log_update BEFORE UPDATE ON user_emails FOR EACH ROW EXECUTE FUNCTION log_update();
		INSERT INTO fail_on VALUES (25);`)
	dir := applytest.Changeset(t, t.TempDir(), night, rows)
	tgt := openPG(t, dsn, nil)
	o := options(dir, tgt)
	o.BatchSize = 10
	_, err := apply.Apply(ctx, o)
	if err == nil || !strings.Contains(err.Error(), "batch 3 of 5") || !strings.Contains(err.Error(), "run lapse apply again") {
		t.Fatalf("apply with a failing batch 3: %v", err)
	}
	if n := count(t, conn, `SELECT count(*) FROM user_emails WHERE NOT verified`); n != 20 {
		t.Fatalf("%d rows un-verified after batch 3 failed, want 20 (batches 1-2)", n)
	}
	exec(t, conn, `DELETE FROM fail_on`)
	res, err := apply.Apply(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed != 50 || res.ChangedNow != 30 || res.Batches != 5 || res.BatchesNow != 3 {
		t.Errorf("resumed apply: changed %d (now %d), batches %d (now %d)", res.Changed, res.ChangedNow, res.Batches, res.BatchesNow)
	}
	if n := count(t, conn, `SELECT count(*) FROM (SELECT id FROM updates GROUP BY id HAVING count(*) > 1) x`); n != 0 {
		t.Errorf("%d rows updated more than once", n)
	}
	if n := count(t, conn, `SELECT count(DISTINCT id) FROM updates`); n != 50 {
		t.Errorf("%d rows updated, want 50", n)
	}
	if n := count(t, conn, `SELECT count(*) FROM lapse_audit`); n != 50 {
		t.Errorf("%d audit rows, want 50", n)
	}
	if n := count(t, conn, `SELECT count(*) FROM lapse_audit_progress`); n != 5 {
		t.Errorf("%d progress rows, want 5", n)
	}
}

// TestApplyLargeChangeset: 100,000 rows in bounded batches.
func TestApplyLargeChangeset(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED in -short: 100,000 rows")
	}
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	rows := applytest.Rows(100_000, night)
	conn := applytest.CreateTable(t, dsn, rows, applytest.TableOptions{Extra: 1000})
	exec(t, conn, `DELETE FROM user_emails WHERE id <= 100000 AND id % 997 = 0`)
	dir := applytest.Changeset(t, t.TempDir(), night, rows)
	tgt := openPG(t, dsn, nil)
	o := options(dir, tgt)
	o.BatchSize = 5000
	res, err := apply.Apply(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	deleted := int64(100_000 / 997)
	if res.Batches != 20 || res.Changed != 100_000-deleted || res.SkippedByReason[apply.SkipDeleted] != deleted {
		t.Errorf("large apply: %d batches, changed %d, skipped %v", res.Batches, res.Changed, res.SkippedByReason)
	}
	if n := count(t, conn, `SELECT count(*) FROM user_emails WHERE NOT verified`); int64(n) != res.Changed {
		t.Errorf("%d rows un-verified, report says %d", n, res.Changed)
	}
	if n := count(t, conn, `SELECT count(*) FROM user_emails WHERE verified AND id > 100000`); n != 1000 {
		t.Errorf("rows outside the changeset: %d verified, want 1000", n)
	}
	if n := count(t, conn, `SELECT max(rows) FROM lapse_audit_progress`); n != 5000 {
		t.Errorf("largest batch %d rows, want 5000", n)
	}
}

// TestApplyConfigErrors: a missing table or column names the setting.
func TestApplyConfigErrors(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	applytest.CreateTable(t, dsn, applytest.Rows(1, night), applytest.TableOptions{})
	for _, c := range []struct {
		mod  func(*config.Config)
		want string
	}{
		{func(c *config.Config) { c.Postgres.Table = "nope" }, "postgres.table"},
		{func(c *config.Config) { c.Postgres.VerifiedCol = "is_verified" }, "postgres.verified_column"},
		{func(c *config.Config) { c.Apply.ReasonColumn = "why" }, "apply.reason_column"},
		{func(c *config.Config) { c.Apply.WriteDomainStatus, c.Apply.DomainStatusColumn = true, "st" }, "apply.domain_status_column"},
	} {
		_, err := apply.OpenPostgres(ctx, pgOptions(dsn, c.mod))
		if !errors.Is(err, config.ErrConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", c.want, err)
		}
	}
}

// TestApplySchemaTable: a schema-qualified table gets its audit table in
// the same schema.
func TestApplySchemaTable(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	rows := applytest.Rows(2, night)
	conn := applytest.CreateTable(t, dsn, rows, applytest.TableOptions{Table: "accounts.user_emails"})
	tgt := openPG(t, dsn, func(c *config.Config) { c.Postgres.Table = "accounts.user_emails" })
	dir := applytest.Changeset(t, t.TempDir(), night, rows)
	if _, err := apply.Apply(ctx, options(dir, tgt)); err != nil {
		t.Fatal(err)
	}
	if n := count(t, conn, `SELECT count(*) FROM accounts.lapse_audit`); n != 2 {
		t.Errorf("accounts.lapse_audit holds %d rows, want 2", n)
	}
	var js []byte
	js, _ = json.Marshal(tgt.String())
	if !strings.Contains(string(js), "accounts.user_emails") {
		t.Errorf("target %s", js)
	}
}
