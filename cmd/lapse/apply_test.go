package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/lapse-dev/lapse/internal/pgtest"
	"github.com/lapse-dev/lapse/sinks/apply"
	"github.com/lapse-dev/lapse/sinks/apply/applytest"
	"github.com/lapse-dev/lapse/sinks/changeset"
	"github.com/lapse-dev/lapse/sinks/lifecycledb"
)

// applyFixture is an account table in a fresh database, a data dir with
// an approved changeset of its rows for tonight, and a lapse.toml.
type applyFixture struct {
	dsn, dataDir, dir, config string
	conn                      *pgx.Conn
	rows                      []apply.Row
}

func newApplyFixture(t *testing.T, n int, extra string) *applyFixture {
	t.Helper()
	f := &applyFixture{dsn: pgtest.DSN(t), dataDir: t.TempDir()}
	date := time.Now().UTC().Format(time.DateOnly)
	f.rows = applytest.Rows(n, date)
	f.conn = applytest.CreateTable(t, f.dsn, f.rows, applytest.TableOptions{Extra: 3})
	f.dir = applytest.Changeset(t, f.dataDir, date, f.rows)
	f.config = filepath.Join(t.TempDir(), "lapse.toml")
	toml := fmt.Sprintf("data_dir = %q\n\n[apply]\ndsn = %q\n%s", f.dataDir, f.dsn, extra)
	if err := os.WriteFile(f.config, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *applyFixture) count(t *testing.T, sql string) int {
	t.Helper()
	var n int
	if err := f.conn.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func (f *applyFixture) exec(t *testing.T, sql string) {
	t.Helper()
	if _, err := f.conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// TestApplyCommand: apply, apply again, a dry run of revert, revert and
// revert again through the CLI.
func TestApplyCommand(t *testing.T) {
	f := newApplyFixture(t, 6, "")
	f.exec(t, `UPDATE user_emails SET email = 'moved@x.example' WHERE id = 2`)
	code, out, errs := runLapse(t, "", nil, "--config", f.config, "apply", f.dir, "--dry-run", "--verdicts", "-")
	if code != exitOK || !strings.Contains(out, "would change 5 of 6 rows, skip 1 (email_changed 1)") || !strings.Contains(out, "2,email_changed\n") {
		t.Fatalf("dry run: exit %d\n%s\n%s", code, out, errs)
	}
	if n := f.count(t, `SELECT count(*) FROM user_emails WHERE NOT verified`); n != 0 {
		t.Fatalf("the dry run un-verified %d rows", n)
	}
	code, out, errs = runLapse(t, "", nil, "--config", f.config, "apply", f.dir, "--by", "ann")
	if code != exitOK || !strings.Contains(out, "applied changeset") || !strings.Contains(out, "5 un-verified, 1 skipped (email_changed 1) in 1 batches") ||
		!strings.Contains(out, changeset.FileApplied) || strings.Contains(out, f.rows[0].Email) {
		t.Fatalf("apply: exit %d\n%s\n%s", code, out, errs)
	}
	if n := f.count(t, `SELECT count(*) FROM lapse_audit WHERE applied_by = 'ann'`); n != 5 {
		t.Errorf("%d audit rows by ann, want 5", n)
	}
	code, out, errs = runLapse(t, "", nil, "--config", f.config, "apply", f.dir, "--by", "ann")
	if code != exitOK || !strings.Contains(out, "was already applied") || !strings.Contains(out, "nothing changed") {
		t.Fatalf("re-apply: exit %d\n%s\n%s", code, out, errs)
	}
	f.exec(t, `UPDATE user_emails SET verified = true, unverify_reason = NULL WHERE id = 3`)
	code, out, errs = runLapse(t, "", nil, "--config", f.config, "revert", f.dir, "--dry-run", "--by", "bob")
	if code != exitOK || !strings.Contains(out, "would change 4 of 5 rows, skip 1 (reverified 1)") {
		t.Fatalf("revert dry run: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = runLapse(t, "", nil, "--config", f.config, "revert", f.dir, "--by", "bob")
	if code != exitOK || !strings.Contains(out, "reverted changeset") || !strings.Contains(out, "4 restored, 1 skipped (reverified 1)") {
		t.Fatalf("revert: exit %d\n%s\n%s", code, out, errs)
	}
	if n := f.count(t, `SELECT count(*) FROM user_emails WHERE NOT verified`); n != 0 {
		t.Errorf("%d rows still un-verified after revert", n)
	}
	code, out, errs = runLapse(t, "", nil, "--config", f.config, "revert", f.dir, "--by", "bob")
	if code != exitOK || !strings.Contains(out, "was already reverted") {
		t.Fatalf("second revert: exit %d\n%s\n%s", code, out, errs)
	}
	code, _, errs = runLapse(t, "", nil, "--config", f.config, "apply", f.dir, "--by", "ann")
	if code != exitFailure || !strings.Contains(errs, "changeset was reverted") {
		t.Errorf("apply after revert: exit %d %s", code, errs)
	}
	for _, name := range []string{changeset.FileApplied, changeset.FileReverted} {
		if fi, err := os.Stat(filepath.Join(f.dir, name)); err != nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("%s: %v %v", name, fi, err)
		}
	}
	db, err := lifecycledb.Open(filepath.Join(f.dataDir, "lapse.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var applies, approvals, changes, reverted int
	if err := db.SQL().QueryRow(`SELECT (SELECT count(*) FROM applies), (SELECT count(*) FROM approvals),
		(SELECT count(*) FROM applied_changes), (SELECT count(reverted_at) FROM applied_changes)`).Scan(&applies, &approvals, &changes, &reverted); err != nil {
		t.Fatal(err)
	}
	if applies != 2 || approvals != 1 || changes != 5 || reverted != 4 {
		t.Errorf("lapse.duckdb: %d runs, %d approvals, %d changes, %d reverted; want 2, 1, 5, 4", applies, approvals, changes, reverted)
	}
}

// TestApplyCommandRefusals: unapproved, tampered and stale changesets are
// refused (exit 1) with messages naming the fix; a missing or
// password-bearing DSN is a usage error (exit 2). Nothing is changed.
func TestApplyCommandRefusals(t *testing.T) {
	f := newApplyFixture(t, 3, "")
	stale := applytest.Changeset(t, f.dataDir, time.Now().UTC().AddDate(0, 0, -5).Format(time.DateOnly), f.rows)
	unapproved := applytest.WriteChangeset(t, t.TempDir(), time.Now().UTC().Format(time.DateOnly), f.rows)
	tampered := applytest.Changeset(t, t.TempDir(), time.Now().UTC().Format(time.DateOnly), f.rows)
	if err := os.WriteFile(filepath.Join(tampered, changeset.FileSummary), []byte("all fine, approve\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := "S3cretInTheDSN"
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unapproved", []string{"apply", unapproved}, exitFailure, "run lapse approve"},
		{"tampered", []string{"apply", tampered}, exitFailure, "summary.md changed since the night wrote it"},
		{"stale", []string{"apply", stale}, exitFailure, "more than apply.max_age 3.0 days"},
		{"password in --dsn", []string{"apply", f.dir, "--dsn", strings.Replace(f.dsn, "postgres@", "postgres:"+secret+"@", 1)}, exitUsage, "holds a password"},
		{"not a folder", []string{"apply", filepath.Join(f.dir, "nope")}, exitUsage, "is not a changeset folder"},
		{"verdicts without dry run", []string{"apply", f.dir, "--verdicts", "-"}, exitUsage, "--verdicts is for --dry-run"},
		{"revert unapplied", []string{"revert", f.dir}, exitFailure, "changeset was never applied"},
	} {
		code, out, errs := runLapse(t, "", nil, append([]string{"--config", f.config}, c.args...)...)
		if code != c.code || !strings.Contains(errs, c.want) || strings.Contains(out+errs, secret) {
			t.Errorf("%s: exit %d (want %d), stderr %q does not say %q (or shows the password)", c.name, code, c.code, errs, c.want)
		}
	}
	if code, _, errs := runLapse(t, "", nil, "--config", f.config, "apply", stale, "--allow-stale", "--dry-run"); code != exitOK {
		t.Errorf("--allow-stale --dry-run: exit %d %s", code, errs)
	}
	if n := f.count(t, `SELECT count(*) FROM user_emails WHERE NOT verified`); n != 0 {
		t.Errorf("refused applies un-verified %d rows", n)
	}
	noDSN := filepath.Join(t.TempDir(), "lapse.toml")
	os.WriteFile(noDSN, []byte(fmt.Sprintf("data_dir = %q\nsource = \"jsonl:/x.jsonl\"\n", f.dataDir)), 0o600)
	if code, _, errs := runLapse(t, "", nil, "--config", noDSN, "apply", f.dir); code != exitUsage || !strings.Contains(errs, "set apply.dsn") {
		t.Errorf("no DSN: exit %d %s", code, errs)
	}
	badCol := filepath.Join(t.TempDir(), "lapse.toml")
	os.WriteFile(badCol, []byte(fmt.Sprintf("data_dir = %q\n[apply]\ndsn = %q\nreason_column = \"why\"\n", f.dataDir, f.dsn)), 0o600)
	if code, _, errs := runLapse(t, "", nil, "--config", badCol, "apply", f.dir); code != exitUsage || !strings.Contains(errs, "apply.reason_column") {
		t.Errorf("missing reason column: exit %d %s", code, errs)
	}
}

// fakePostgres accepts connections, asks for a cleartext password, keeps
// it and refuses it as PostgreSQL does.
func fakePostgres(t *testing.T) (addr string, got chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got = make(chan string, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				be := pgproto3.NewBackend(c, c)
				if _, err := be.ReceiveStartupMessage(); err != nil {
					return
				}
				be.Send(&pgproto3.AuthenticationCleartextPassword{})
				if err := be.Flush(); err != nil {
					return
				}
				if err := be.SetAuthType(pgproto3.AuthTypeCleartextPassword); err != nil {
					return
				}
				msg, err := be.Receive()
				if err != nil {
					return
				}
				if pm, ok := msg.(*pgproto3.PasswordMessage); ok {
					got <- pm.Password
				}
				be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28P01", Message: `password authentication failed for user "alice"`})
				be.Flush()
			}()
		}
	}()
	return ln.Addr().String(), got
}

// TestApplyWrongPassword: a refused password is a clear error; the
// password (from PGPASSWORD or postgres.password_file) is sent to the
// server and appears nowhere in the output or the files.
func TestApplyWrongPassword(t *testing.T) {
	addr, got := fakePostgres(t)
	dataDir := t.TempDir()
	date := time.Now().UTC().Format(time.DateOnly)
	dir := applytest.Changeset(t, dataDir, date, applytest.Rows(2, date))
	secret := "Wr0ngPassw0rdNeverShown"
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte(secret+"\n"), 0o600)
	dsn := "postgres://alice@" + addr + "/registry?sslmode=disable&connect_timeout=10"
	cfg := filepath.Join(t.TempDir(), "lapse.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("data_dir = %q\n[postgres]\npassword_file = %q\n", dataDir, pwFile)), 0o600)
	for _, c := range []struct {
		name string
		env  string
	}{{"PGPASSWORD", secret}, {"password_file", ""}} {
		t.Setenv("PGPASSWORD", c.env)
		if c.env == "" {
			os.Unsetenv("PGPASSWORD")
		}
		code, out, errs := runLapse(t, "", nil, "--config", cfg, "apply", dir, "--dsn", dsn, "--by", "ann")
		if code != exitFailure || !strings.Contains(errs, "password authentication failed") || !strings.Contains(errs, "the password was refused: check PGPASSWORD") ||
			!strings.Contains(errs, "postgres://alice@"+addr) {
			t.Errorf("%s: exit %d\n%s\n%s", c.name, code, out, errs)
		}
		if strings.Contains(out+errs, secret) {
			t.Errorf("%s: the password is in the output:\n%s\n%s", c.name, out, errs)
		}
		select {
		case pw := <-got:
			if pw != secret {
				t.Errorf("%s: the server got password %q", c.name, pw)
			}
		default:
			t.Errorf("%s: no password reached the server", c.name)
		}
	}
	filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(secret)) {
				t.Errorf("the password is in %s", p)
			}
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(dir, changeset.FileApplied)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed apply wrote %s", changeset.FileApplied)
	}
}

// TestApplyKilledNineResumes kills `lapse apply` with SIGKILL while it is
// blocked inside batch 3 (another connection holds a row of that batch
// FOR UPDATE) after batches 1 and 2 committed. A second apply meanwhile
// is refused (the advisory lock). Once the row is released, apply again
// (--wait, for the killed process's backend to go) finishes: every row
// changed exactly once (a trigger logs every update), one audit row per
// change.
func TestApplyKilledNineResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED in -short: runs lapse apply as a subprocess")
	}
	ctx := context.Background()
	f := newApplyFixture(t, 50, "batch_size = 10\n")
	f.exec(t, `CREATE TABLE updates (id bigint NOT NULL);
		CREATE FUNCTION log_update() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN INSERT INTO updates VALUES (NEW.id); RETURN NEW; END $$;
		CREATE TRIGGER log_update BEFORE UPDATE ON user_emails FOR EACH ROW EXECUTE FUNCTION log_update();`)
	holder, err := pgx.Connect(ctx, f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM user_emails WHERE id = 25 FOR UPDATE`); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "--config", f.config, "--log-format", "json", "apply", f.dir, "--by", "killed")
	cmd.Env = append(os.Environ(), "LAPSE_TEST_AS_CLI=1")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until batches 1 and 2 are committed and the apply waits for
	// the row lock inside batch 3.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var committed, waiting int
		var exists bool
		if err := f.conn.QueryRow(ctx, `SELECT to_regclass('lapse_audit_progress') IS NOT NULL,
			(SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'lapse apply' AND wait_event_type = 'Lock')`).Scan(&exists, &waiting); err != nil {
			t.Fatal(err)
		}
		if exists {
			committed = f.count(t, `SELECT count(*) FROM lapse_audit_progress`)
		}
		if committed == 2 && waiting == 1 {
			break
		}
		if committed > 2 || time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("apply never blocked in batch 3 (%d batches committed, %d waiting)\n%s", committed, waiting, logs.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
	// A second apply while the first runs: refused at once.
	code, _, errs := runLapse(t, "", nil, "--config", f.config, "apply", f.dir, "--by", "second")
	if code != exitFailure || !strings.Contains(errs, "another lapse apply or revert is running") || !strings.Contains(errs, "lapse apply") || !strings.Contains(errs, "--wait") {
		t.Errorf("concurrent apply: exit %d %s", code, errs)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("apply was not killed (%v)\n%s", err, logs.String())
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.count(t, `SELECT count(*) FROM user_emails WHERE NOT verified`); n != 20 {
		t.Errorf("%d rows un-verified after the kill, want 20 (batches 1 and 2)", n)
	}

	code, out, errs := runLapse(t, "", nil, "--config", f.config, "apply", f.dir, "--by", "again", "--wait")
	if code != exitOK || !strings.Contains(out, "50 un-verified, 0 skipped in 5 batches") {
		t.Fatalf("apply after the kill: exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(errs, "resuming an interrupted apply") {
		t.Errorf("the apply did not resume:\n%s", errs)
	}
	for _, c := range []struct {
		sql  string
		want int
	}{
		{`SELECT count(*) FROM user_emails WHERE NOT verified`, 50},
		{`SELECT count(*) FROM (SELECT id FROM updates GROUP BY id HAVING count(*) > 1) x`, 0},
		{`SELECT count(DISTINCT id) FROM updates`, 50},
		{`SELECT count(*) FROM lapse_audit`, 50},
		{`SELECT count(DISTINCT email_id) FROM lapse_audit`, 50},
		{`SELECT count(*) FROM lapse_audit WHERE applied_by = 'killed'`, 20},
		{`SELECT count(*) FROM lapse_audit_progress`, 5},
		{`SELECT max(batch) FROM lapse_audit_progress`, 5},
	} {
		if n := f.count(t, c.sql); n != c.want {
			t.Errorf("%s = %d, want %d", c.sql, n, c.want)
		}
	}
	rep, err := apply.ReadReport(filepath.Join(f.dir, changeset.FileApplied))
	if err != nil || rep.Changed != 50 || rep.Batches != 5 {
		t.Errorf("applied.json after the resume: %+v %v", rep, err)
	}
	db, err := lifecycledb.Open(filepath.Join(f.dataDir, "lapse.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.SQL().QueryRow(`SELECT count(*) FROM applied_changes`).Scan(&n); err != nil || n != 50 {
		t.Errorf("lapse.duckdb holds %d applied changes (%v), want 50 (the killed run's too, from the audit table)", n, err)
	}
}
