package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/sinks/changeset"
	"github.com/lapse-dev/lapse/sinks/lifecycledb"
)

var approveClock = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)

// approveIn runs runApprove with a fixed clock over data dir data and
// returns its exit code and output (stdout, then the error).
func approveIn(t *testing.T, data string, o approveOptions) (int, string, string) {
	t.Helper()
	var out bytes.Buffer
	g := &globalOptions{stdout: &out, stderr: io.Discard, environ: []string{"LAPSE_DATA_DIR=" + data},
		log: slog.New(slog.DiscardHandler)}
	if o.now == nil {
		o.now = func() time.Time { return approveClock }
	}
	err := runApprove(context.Background(), g, o)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	for _, s := range []string{out.String(), msg} {
		if a := reviewAddress.FindString(s); a != "" {
			t.Errorf("approve printed the address %q", a)
		}
	}
	return exitCode(err), out.String(), msg
}

// approvalRows are the rows of the approvals table.
func approvalRows(t *testing.T, data string) []string {
	t.Helper()
	db, err := lifecycledb.Open(filepath.Join(data, "lapse.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.SQL().Query(`SELECT strftime(date, '%Y-%m-%d'), manifest_sha256, status, flagged, approved_by, coalesce(note, ''), override_brake, approved_at
		FROM approvals ORDER BY approved_at`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var date, sha, status, by, note string
		var flagged int64
		var override bool
		var at time.Time
		if err := rows.Scan(&date, &sha, &status, &flagged, &by, &note, &override, &at); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %s %s %d %s %q %v %s", date, sha, status, flagged, by, note, override, at.UTC().Format(time.RFC3339)))
	}
	return out
}

func TestApprove(t *testing.T) {
	data := t.TempDir()
	dir := writeTestChangeset(t, data, "2026-03-02", config.BrakeConfig{}, reviewRows()...)
	_, sum, err := changeset.Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	code, out, msg := approveIn(t, data, approveOptions{dir: dir, by: "alice", note: "looked at gone.com", sha256: sum[:12]})
	if code != exitOK {
		t.Fatalf("approve: exit %d %s", code, msg)
	}
	for _, want := range []string{"approved changeset " + dir + " (night 2026-03-02, proposed, 6 addresses to un-verify) by alice at 2026-03-02T09:30:00Z",
		"pinned manifest sha256 " + sum, "next: lapse apply " + dir} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	a, err := changeset.ReadApproval(dir)
	if err != nil || a.By != "alice" || a.ManifestSHA256 != sum || !a.ApprovedAt.Equal(approveClock) || a.Note != "looked at gone.com" {
		t.Fatalf("approval.json %+v, %v", a, err)
	}
	if _, _, err := changeset.CheckApproved(dir); err != nil {
		t.Errorf("apply's check: %v", err)
	}
	want := []string{"2026-03-02 " + sum + ` proposed 6 alice "looked at gone.com" false 2026-03-02T09:30:00Z`}
	if got := approvalRows(t, data); !slices.Equal(got, want) {
		t.Errorf("approvals %q, want %q", got, want)
	}

	// Approving the same manifest again (someone else, later) changes
	// nothing.
	before, _ := os.ReadFile(filepath.Join(dir, changeset.FileApproval))
	code, out, msg = approveIn(t, data, approveOptions{dir: dir, by: "bob", now: func() time.Time { return approveClock.Add(time.Hour) }})
	if code != exitOK || !strings.Contains(out, "already approved by alice at 2026-03-02T09:30:00Z; nothing changed") ||
		!strings.Contains(out, "pinned manifest sha256 "+sum) {
		t.Errorf("re-approve: exit %d %s\n%s", code, msg, out)
	}
	after, _ := os.ReadFile(filepath.Join(dir, changeset.FileApproval))
	if !bytes.Equal(before, after) {
		t.Error("re-approve rewrote approval.json")
	}
	if got := approvalRows(t, data); !slices.Equal(got, want) {
		t.Errorf("approvals after re-approve %q, want %q", got, want)
	}

	// With no argument it approves the newest changeset.
	newer := writeTestChangeset(t, data, "2026-03-03", config.BrakeConfig{}, reviewRows()[:1]...)
	code, out, msg = approveIn(t, data, approveOptions{by: "carol"})
	if code != exitOK || !strings.Contains(out, "approved changeset "+newer+" ") {
		t.Errorf("approve newest: exit %d %s\n%s", code, msg, out)
	}
	if n := len(approvalRows(t, data)); n != 2 {
		t.Errorf("%d approval rows, want 2", n)
	}
}

// TestApproveRefused: nothing is written for a changeset that changed, a
// blocked one without the override, or another manifest than reviewed.
func TestApproveRefused(t *testing.T) {
	data := t.TempDir()
	dir := writeTestChangeset(t, data, "2026-03-02", config.BrakeConfig{}, reviewRows()...)
	_, sum, _ := changeset.Verify(dir)
	blocked := writeTestChangeset(t, data, "2026-03-03", config.BrakeConfig{MaxCount: 2}, reviewRows()...)
	other := filepath.Join(t.TempDir(), "changesets", "2026-03-02")
	os.MkdirAll(other, 0o750)

	for _, c := range []struct {
		name string
		o    approveOptions
		code int
		want string
	}{
		{"no --by", approveOptions{dir: dir, by: "  "}, exitUsage, "--by NAME is required"},
		{"override without note", approveOptions{dir: blocked, by: "a", overrideBrake: true}, exitUsage, "--override-brake needs a --note"},
		{"bad sha", approveOptions{dir: dir, by: "a", sha256: "xyz"}, exitUsage, `--sha256 "xyz"`},
		{"short sha", approveOptions{dir: dir, by: "a", sha256: sum[:8]}, exitUsage, "12 to 64 hex digits"},
		{"missing folder", approveOptions{dir: filepath.Join(data, "changesets", "2026-01-01"), by: "a"}, exitUsage, "does not exist"},
		{"other data dir", approveOptions{dir: other, by: "a"}, exitUsage, "is not in " + filepath.Join(data, "changesets")},
		{"blocked", approveOptions{dir: blocked, by: "a"}, exitFailure,
			"changeset is blocked by the safety brake (would un-verify 6 addresses, more than brake.max_count 2): approve it with --override-brake and a --note"},
		{"blocked, note only", approveOptions{dir: blocked, by: "a", note: "fine"}, exitFailure, "blocked by the safety brake"},
		{"another manifest", approveOptions{dir: dir, by: "a", sha256: strings.Repeat("0", 64)}, exitFailure, "not the one reviewed"},
	} {
		code, _, msg := approveIn(t, data, c.o)
		if code != c.code || !strings.Contains(msg, c.want) {
			t.Errorf("%s: exit %d %q; want %d with %q", c.name, code, msg, c.code, c.want)
		}
	}

	// A file changed since the night: refused, naming it.
	notify := filepath.Join(dir, changeset.FileNotify)
	b, _ := os.ReadFile(notify)
	os.WriteFile(notify, append(b, "9,9,,x.org,domain_available,false,\n"...), 0o600)
	code, _, msg := approveIn(t, data, approveOptions{dir: dir, by: "a"})
	if code != exitFailure || !errors.Is(runApproveErr(t, data, dir), changeset.ErrTampered) ||
		!strings.Contains(msg, "notify.csv changed since the night wrote it") {
		t.Errorf("tampered: exit %d %q", code, msg)
	}

	for _, d := range []string{dir, blocked} {
		if _, err := os.Stat(filepath.Join(d, changeset.FileApproval)); err == nil {
			t.Errorf("%s: approval.json written by a refused approval", d)
		}
	}
	if rows := approvalRows(t, data); len(rows) != 0 {
		t.Errorf("refused approvals recorded: %q", rows)
	}

	// Blocked, with --override-brake and a note: approved, and said so.
	code, out, msg := approveIn(t, data, approveOptions{dir: blocked, by: "alice", overrideBrake: true, note: "a registry-wide lapse, checked by hand"})
	if code != exitOK || !strings.Contains(out, "(night 2026-03-03, blocked, 6 addresses to un-verify)") || !strings.Contains(out, "the safety brake is overridden") {
		t.Fatalf("override: exit %d %s\n%s", code, msg, out)
	}
	a, err := changeset.ReadApproval(blocked)
	if err != nil || !a.OverrideBrake || a.Status != changeset.StatusBlocked || a.Note != "a registry-wide lapse, checked by hand" {
		t.Errorf("approval.json %+v %v", a, err)
	}
	if rows := approvalRows(t, data); len(rows) != 1 || !strings.Contains(rows[0], ` blocked 6 alice "a registry-wide lapse, checked by hand" true `) {
		t.Errorf("approvals %q", rows)
	}
}

func runApproveErr(t *testing.T, data, dir string) error {
	t.Helper()
	g := &globalOptions{stdout: io.Discard, stderr: io.Discard, environ: []string{"LAPSE_DATA_DIR=" + data}, log: slog.New(slog.DiscardHandler)}
	return runApprove(context.Background(), g, approveOptions{dir: dir, by: "a", now: func() time.Time { return approveClock }})
}

// TestApproveFlagsThroughCLI: the flags reach runApprove and its exit
// codes reach the process.
func TestApproveFlagsThroughCLI(t *testing.T) {
	data := t.TempDir()
	dir := writeTestChangeset(t, data, "2026-03-03", config.BrakeConfig{MaxCount: 1}, reviewRows()...)
	env := []string{"LAPSE_DATA_DIR=" + data}
	if code, _, errs := runLapse(t, "", env, "approve", dir); code != exitUsage || !strings.Contains(errs, "--by NAME is required") {
		t.Errorf("no --by: exit %d %s", code, errs)
	}
	if code, _, errs := runLapse(t, "", env, "approve", dir, "--by", "alice"); code != exitFailure || !strings.Contains(errs, "--override-brake") {
		t.Errorf("blocked: exit %d %s", code, errs)
	}
	code, out, errs := runLapse(t, "", env, "approve", dir, "--by", "alice", "--override-brake", "--note", "checked")
	if code != exitOK || !strings.Contains(out, "next: lapse apply "+dir) {
		t.Errorf("override: exit %d %s\n%s", code, errs, out)
	}
}

// TestHelperHoldLapseDB holds a lifecycle database open until its stdin
// closes, as a night does (run by TestApproveWhileRunHoldsDB).
func TestHelperHoldLapseDB(t *testing.T) {
	path := os.Getenv("LAPSE_TEST_HOLD_LAPSE_DB")
	if path == "" {
		t.Skip("helper process only: run by TestApproveWhileRunHoldsDB")
	}
	db, err := lifecycledb.Open(path)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	db.Close()
	os.Exit(0)
}

func TestApproveWhileRunHoldsDB(t *testing.T) {
	data := t.TempDir()
	dir := writeTestChangeset(t, data, "2026-03-02", config.BrakeConfig{}, reviewRows()...)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldLapseDB$")
	cmd.Env = append(os.Environ(), "LAPSE_TEST_HOLD_LAPSE_DB="+filepath.Join(data, "lapse.duckdb"))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("helper: %q %v", line, err)
	}
	code, _, msg := approveIn(t, data, approveOptions{dir: dir, by: "alice"})
	if code != exitFailure || !strings.Contains(msg, "a lapse run is using "+data+"; approve after it finishes") {
		t.Errorf("while held: exit %d %q", code, msg)
	}
	if _, err := os.Stat(filepath.Join(dir, changeset.FileApproval)); err == nil {
		t.Error("approval.json written while a run holds the data dir")
	}
}
