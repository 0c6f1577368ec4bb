package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/lapse-dev/lapse/internal/pgtest"
)

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// oneLineError checks a failed run printed exactly one line naming want.
func oneLineError(t *testing.T, what string, code, wantCode int, stderr, want string) {
	t.Helper()
	if code != wantCode || !strings.Contains(stderr, want) || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "lapse: ") {
		t.Errorf("%s: exit %d (want %d), stderr %q (want one line containing %q)", what, code, wantCode, stderr, want)
	}
}

func TestSnapshotCmdFiles(t *testing.T) {
	data := t.TempDir()
	good := writeTemp(t, "e.csv", "id,user_id,email,verified,primary\n1,u1,a@example.com,t,t\n2,u2,b@example.org,t,f\n3,u3,\"broken@example.org,t,f\n4,u4,nope,t,f\n5,u5,c@example.net,f,f\n")
	code, out, errs := runLapse(t, "", nil, "snapshot", "--data-dir", data, "--source", "csv:"+good, "--date", "2026-11-28")
	want := "snapshot 2026-11-28: 3 addresses (3 verified, 1 invalid), 2 domains, 1 malformed lines → " + filepath.Join(data, "snapshots", "date=2026-11-28", "emails.parquet")
	if code != exitOK || strings.TrimSpace(out) != want {
		t.Fatalf("exit %d\nout %q\nwant %q\nerr %s", code, out, want, errs)
	}
	if !strings.Contains(errs, "malformed source lines") || !strings.Contains(errs, "first_line=4") {
		t.Errorf("no warning about the malformed line: %q", errs)
	}
	// The date once per line: the command's logger has it, the stage does
	// not add it again.
	for _, l := range strings.Split(strings.TrimSpace(errs), "\n") {
		if n := strings.Count(l, " date="); n != 1 {
			t.Errorf("log line names the date %d times: %s", n, l)
		}
	}
	// --all from the config file, --source from the environment.
	cfg := writeTemp(t, "lapse.toml", "all = true\n")
	code, out, errs = runLapse(t, "", []string{"LAPSE_SOURCE=csv:" + good}, "--config", cfg, "snapshot", "--data-dir", data, "--date", "2026-11-28")
	if code != exitOK || !strings.Contains(out, ": 4 addresses (3 verified") {
		t.Errorf("--all via config: exit %d %q %s", code, out, errs)
	}
	before, err := os.ReadFile(filepath.Join(data, "snapshots", "date=2026-11-28", "emails.parquet"))
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no source", []string{}, exitUsage, "no source: set --source"},
		{"bad source", []string{"--source", "mysql://u:pw@h/db"}, exitUsage, "want postgres://…, postgresql://…, csv:PATH or jsonl:PATH"},
		{"bad date", []string{"--source", "csv:" + good, "--date", "28/11/2026"}, exitUsage, `--date "28/11/2026": want YYYY-MM-DD`},
		{"missing column", []string{"--source", "csv:" + writeTemp(t, "m.csv", "id,mail,verified\n1,a@b.c,t\n")}, exitUsage, `header has no "email" column: set csv.email`},
		{"broken header", []string{"--source", "csv:" + writeTemp(t, "h.csv", "id,\"email,verified\n")}, exitUsage, "line 1 (header): broken quoting"},
		{"unreadable file", []string{"--source", "csv:" + filepath.Join(dir, "missing.csv")}, exitFailure, filepath.Join(dir, "missing.csv") + ": no such file"},
		{"folder", []string{"--source", "jsonl:" + dir}, exitFailure, dir + " is a folder"},
	} {
		code, _, errs := runLapse(t, "", nil, append([]string{"snapshot", "--data-dir", data, "--date", "2026-11-28"}, c.args...)...)
		oneLineError(t, c.name, code, c.code, errs, c.want)
	}
	after, err := os.ReadFile(filepath.Join(data, "snapshots", "date=2026-11-28", "emails.parquet"))
	if err != nil || string(after) != string(before) {
		t.Errorf("failed runs changed the previous snapshot (%v)", err)
	}
}

func TestSnapshotCmdPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE user_emails (id serial PRIMARY KEY, user_id integer NOT NULL, email text NOT NULL, verified boolean NOT NULL, "primary" boolean NOT NULL, unverify_reason text, domain_last_checked timestamp, domain_last_status varchar[])`,
		`INSERT INTO user_emails (user_id, email, verified, "primary") SELECT g, 'user' || g || '@d' || (g % 7) || '.com', g % 10 <> 0, true FROM generate_series(1, 1000) g`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close(ctx)
	data := t.TempDir()
	secret := "Pa55wordThatMustNotLeak"
	withPW := strings.Replace(dsn, "postgres@", "postgres:"+secret+"@", 1)
	code, out, errs := runLapse(t, "", nil, "snapshot", "--data-dir", data, "--source", withPW, "--date", "2026-11-28")
	if code != exitOK || !strings.Contains(out, ": 900 addresses (900 verified, 0 invalid), 7 domains, 0 malformed lines") {
		t.Fatalf("exit %d %q %s", code, out, errs)
	}
	manifest, _ := os.ReadFile(filepath.Join(data, "snapshots", "date=2026-11-28", "manifest.json"))
	if strings.Contains(string(manifest), secret) || strings.Contains(out+errs, secret) {
		t.Error("password written to the manifest or the output")
	}
	for _, c := range []struct {
		name string
		env  []string
		src  string
		code int
		want string
	}{
		{"missing table", []string{"LAPSE_POSTGRES_TABLE=accounts"}, withPW, exitUsage, `table "accounts" does not exist or is not visible to this user: set postgres.table (LAPSE_POSTGRES_TABLE)`},
		{"missing column", []string{"LAPSE_POSTGRES_VERIFIED_COLUMN=is_verified"}, withPW, exitUsage, `has no column "is_verified": set postgres.verified_column`},
		{"wrong DSN", nil, "postgres://postgres:" + secret + "@127.0.0.1:1/nope?sslmode=disable&connect_timeout=5", exitFailure, "postgres postgres://postgres:redacted@127.0.0.1:1/nope"},
	} {
		code, _, errs := runLapse(t, "", c.env, "snapshot", "--data-dir", data, "--source", c.src, "--date", "2026-11-28")
		oneLineError(t, c.name, code, c.code, errs, c.want)
		if strings.Contains(errs, secret) {
			t.Errorf("%s: password in the error: %s", c.name, errs)
		}
	}
	after, _ := os.ReadFile(filepath.Join(data, "snapshots", "date=2026-11-28", "manifest.json"))
	if string(after) != string(manifest) {
		t.Error("failed runs changed the previous snapshot's manifest")
	}
}
