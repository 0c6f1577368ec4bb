package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/jackc/pgx/v5"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/internal/pgtest"
	"github.com/lapse-dev/lapse/sources/address"
	"github.com/lapse-dev/lapse/sources/emails"
)

// snapRow is one source row of the test data set, with what the snapshot
// must hold for it ("" = null for the optional strings).
type snapRow struct {
	id                   int64
	user, email          string
	verified, primary    bool
	created              string // RFC 3339 or ""
	host, domain, reason string
}

var snapRows = []snapRow{
	{1, "u1", "Alice@Example.COM", true, true, "2024-01-02T03:04:05.123456Z", "example.com", "example.com", ""},
	{2, "", "bob@Mail.Bücher.de", true, false, "", "mail.xn--bcher-kva.de", "xn--bcher-kva.de", ""},
	{3, "u3", "nobody", true, false, "2023-06-01T00:00:00Z", "", "", "no_at"},
	{4, "u4", "x@[192.0.2.1]", true, false, "", "", "", "address_literal"},
	{5, "u5", "someone@co.uk", true, false, "", "co.uk", "", "public_suffix"},
	{6, "u6", "carol@sub.example.co.uk.", true, true, "", "sub.example.co.uk", "example.co.uk", ""},
	{7, "u7", "dave@unverified.example", false, false, "", "unverified.example", "unverified.example", ""},
	{8, "u8", "erin@ＥＸＡＭＰＬＥ。org", true, false, "", "example.org", "example.org", ""},
}

const snapDate = "2026-11-28"

func fixedNow() time.Time { return time.Date(2026, 11, 28, 2, 0, 0, 0, time.UTC) }

func seedSnapPG(t *testing.T, dsn string, rows []snapRow) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE user_emails (
		id integer PRIMARY KEY, user_id text, email varchar(254) NOT NULL,
		"primary" boolean NOT NULL, verified boolean NOT NULL,
		unverify_reason text, domain_last_checked timestamp, domain_last_status varchar[],
		created timestamptz)`); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		var user, created any
		if r.user != "" {
			user = r.user
		}
		if r.created != "" {
			created, _ = time.Parse(time.RFC3339Nano, r.created)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO user_emails (id, user_id, email, "primary", verified, created) VALUES ($1, $2, $3, $4, $5, $6)`,
			r.id, user, r.email, r.primary, r.verified, created); err != nil {
			t.Fatal(err)
		}
	}
}

func writeSnapCSV(t *testing.T, rows []snapRow, extra string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("id,user_id,email,verified,primary,created\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "%d,%s,\"%s\",%t,%t,%s\n", r.id, r.user, strings.ReplaceAll(r.email, `"`, `""`), r.verified, r.primary, r.created)
	}
	b.WriteString(extra)
	p := filepath.Join(t.TempDir(), "emails.csv")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeSnapJSONL(t *testing.T, rows []snapRow, extra string) string {
	t.Helper()
	var b bytes.Buffer
	for _, r := range rows {
		m := map[string]any{"id": r.id, "email": r.email, "verified": r.verified, "primary": r.primary}
		if r.user != "" {
			m["user_id"] = r.user
		}
		if r.created != "" {
			m["created"] = r.created
		}
		line, _ := json.Marshal(m)
		b.Write(append(line, '\n'))
	}
	b.WriteString(extra)
	p := filepath.Join(t.TempDir(), "emails.jsonl")
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// readSnapshot reads emails.parquet back with DuckDB.
func readSnapshot(t *testing.T, path string) []snapRow {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The contract's column types.
	types := map[string]string{}
	trows, err := db.Query(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(?, hive_partitioning = false))`, path)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for trows.Next() {
		var n, ty string
		if err := trows.Scan(&n, &ty); err != nil {
			t.Fatal(err)
		}
		types[n] = ty
		names = append(names, n)
	}
	trows.Close()
	wantTypes := map[string]string{"email_id": "BIGINT", "user_id": "VARCHAR", "email": "VARCHAR", "verified": "BOOLEAN",
		"primary": "BOOLEAN", "created": "TIMESTAMP WITH TIME ZONE", "verified_at": "TIMESTAMP WITH TIME ZONE",
		"host": "VARCHAR", "domain": "VARCHAR", "invalid_reason": "VARCHAR"}
	if !reflect.DeepEqual(types, wantTypes) {
		t.Errorf("snapshot columns %v, want %v", types, wantTypes)
	}
	rows, err := db.Query(`SELECT email_id, user_id, email, verified, "primary", epoch_us(created), verified_at IS NULL,
		host, domain, invalid_reason FROM read_parquet(?, hive_partitioning = false) ORDER BY email_id`, path)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []snapRow
	for rows.Next() {
		var r snapRow
		var user, host, domain, reason sql.NullString
		var created sql.NullInt64
		var vaNull bool
		if err := rows.Scan(&r.id, &user, &r.email, &r.verified, &r.primary, &created, &vaNull, &host, &domain, &reason); err != nil {
			t.Fatal(err)
		}
		if !vaNull {
			t.Errorf("row %d: verified_at is not null", r.id)
		}
		r.user, r.host, r.domain, r.reason = user.String, host.String, domain.String, reason.String
		if created.Valid {
			r.created = time.UnixMicro(created.Int64).UTC().Format(time.RFC3339Nano)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func verifiedOnly(rows []snapRow) []snapRow {
	var out []snapRow
	for _, r := range rows {
		if r.verified {
			out = append(out, r)
		}
	}
	return out
}

func checkFiles(t *testing.T, res SnapshotResult, secrets ...string) SnapshotManifest {
	t.Helper()
	for _, p := range []string{res.Path, res.ManifestPath} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
	data, err := os.ReadFile(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := os.ReadFile(res.ManifestPath)
	if err != nil {
		t.Fatal(err)
	}
	var m SnapshotManifest
	if err := json.Unmarshal(mb, &m); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if m.SHA256 != hex.EncodeToString(sum[:]) || m.Bytes != int64(len(data)) || m.File != "emails.parquet" {
		t.Errorf("manifest sha256/bytes/file %s %d %s do not match the file", m.SHA256, m.Bytes, m.File)
	}
	for _, s := range secrets {
		if bytes.Contains(mb, []byte(s)) || bytes.Contains(data, []byte(s)) {
			t.Errorf("secret %q written to the snapshot or its manifest", s)
		}
	}
	// No temp files left behind.
	ents, _ := os.ReadDir(filepath.Dir(res.Path))
	for _, e := range ents {
		if e.Name() != filepath.Base(res.Path) && e.Name() != filepath.Base(res.ManifestPath) {
			t.Errorf("stray file %s in the snapshot folder", e.Name())
		}
	}
	return m
}

func TestSnapshotPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	seedSnapPG(t, dsn, snapRows)
	// The test cluster trusts loopback, so any password is accepted: it
	// stands for a real one that must never be written anywhere.
	dsn = strings.Replace(dsn, "postgres@", "postgres:Sup3rSecretPW@", 1)
	c := config.Default()
	c.DataDir, c.Source = t.TempDir(), dsn
	c.Postgres.CreatedColumn = "created"
	o := SnapshotOptionsFromConfig(c, snapDate)
	o.Now, o.Version = fixedNow, "test"
	res, err := Snapshot(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(c.DataDir, "snapshots", "date="+snapDate, "emails.parquet"); res.Path != want {
		t.Errorf("path %s, want %s", res.Path, want)
	}
	got := readSnapshot(t, res.Path)
	if want := verifiedOnly(snapRows); !reflect.DeepEqual(got, want) {
		t.Errorf("snapshot rows\n got %+v\nwant %+v", got, want)
	}
	m := checkFiles(t, res, "Sup3rSecretPW")
	want := SnapshotRows{Addresses: 7, Verified: 7, Invalid: 3, Domains: 4}
	if m.Rows != want || !strings.Contains(m.Source, "redacted") || m.LapseVersion != "test" ||
		!m.Started.Equal(fixedNow()) || m.InvalidReasons["no_at"] != 1 || len(m.InvalidReasons) != 3 {
		t.Errorf("manifest %+v", m)
	}

	// --all includes the unverified address.
	o.Read.All = true
	res, err = Snapshot(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if got := readSnapshot(t, res.Path); !reflect.DeepEqual(got, snapRows) {
		t.Errorf("--all rows\n got %+v\nwant %+v", got, snapRows)
	}
	if m := checkFiles(t, res); m.Rows.Addresses != 8 || m.Rows.Verified != 7 || !m.All {
		t.Errorf("--all manifest rows %+v", m.Rows)
	}
}

func TestSnapshotFiles(t *testing.T) {
	// Broken lines after the good ones: counted, listed, not in the snapshot.
	csvExtra := "9,u9,\"broken@example.com,true,false,\n10,u10,x@example.com,true\n"
	jsonExtra := "{\"id\": 9, \"email\": \"broken@example.com\"\n{\"id\": \"x\", \"email\": \"a@b.example\", \"verified\": true}\n"
	for _, c := range []struct {
		name, spec string
		line       int64 // of the first broken line
	}{
		{"csv", "csv:" + writeSnapCSV(t, snapRows, csvExtra), 10},
		{"jsonl", "jsonl:" + writeSnapJSONL(t, snapRows, jsonExtra), 9},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.DataDir, cfg.Source = t.TempDir(), c.spec
			o := SnapshotOptionsFromConfig(cfg, snapDate)
			o.Now = fixedNow
			res, err := Snapshot(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := readSnapshot(t, res.Path), verifiedOnly(snapRows); !reflect.DeepEqual(got, want) {
				t.Errorf("rows\n got %+v\nwant %+v", got, want)
			}
			m := checkFiles(t, res, "broken@example.com")
			if m.Rows.Addresses != 7 || m.Rows.Malformed != 2 || m.Rows.SkippedUnverified != 1 || len(m.Problems) != 2 ||
				m.Problems[0].Line != c.line || m.Problems[1].Line != c.line+1 {
				t.Errorf("manifest rows %+v problems %+v", m.Rows, m.Problems)
			}
		})
	}
}

// Re-running a date replaces its snapshot; a failed or interrupted run
// leaves the previous one exactly as it was, with no temp files.
func TestSnapshotAtomic(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	run := func(spec string, progress Progress) (SnapshotResult, error) {
		c := config.Default()
		c.DataDir, c.Source = dataDir, spec
		o := SnapshotOptionsFromConfig(c, snapDate)
		o.Now, o.Progress, o.Read.BatchSize = fixedNow, progress, 2
		return Snapshot(ctx, o)
	}
	first, err := run("csv:"+writeSnapCSV(t, snapRows[:3], ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	before := snapshotFiles(t, first)

	// A bad source fails before anything is written.
	var ce *emails.ConfigError
	if _, err := run("csv:"+writeFileT(t, "id,mail,verified\n1,a@b.c,t\n"), nil); !errors.As(err, &ce) {
		t.Errorf("missing column: %v", err)
	}
	if _, err := run("csv:"+filepath.Join(t.TempDir(), "missing.csv"), nil); err == nil {
		t.Error("unreadable file: no error")
	}
	// Interrupted after the first batch of a good source.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := config.Default()
	c.DataDir, c.Source = dataDir, "csv:"+writeSnapCSV(t, snapRows, "")
	o := SnapshotOptionsFromConfig(c, snapDate)
	o.Read.BatchSize, o.Progress = 2, onAdd(func() { cancel() })
	if _, err := Snapshot(cctx, o); !errors.Is(err, context.Canceled) {
		t.Errorf("interrupted run: %v", err)
	}
	if after := snapshotFiles(t, first); !reflect.DeepEqual(before, after) {
		t.Error("a failed run changed the previous snapshot")
	}
	checkFiles(t, first)

	// A failure on a date with no snapshot leaves no folder behind.
	o2 := SnapshotOptionsFromConfig(c, "2026-11-29")
	o2.Read.BatchSize, o2.Progress = o.Read.BatchSize, o.Progress
	o = o2
	cctx, cancel = context.WithCancel(ctx)
	defer cancel()
	if _, err := Snapshot(cctx, o); !errors.Is(err, context.Canceled) {
		t.Errorf("interrupted run: %v", err)
	}
	if _, err := os.Stat(night.Paths{DataDir: dataDir, Date: "2026-11-29"}.SnapshotDir()); !os.IsNotExist(err) {
		t.Errorf("failed first run left %s: %v", night.Paths{DataDir: dataDir, Date: "2026-11-29"}.SnapshotDir(), err)
	}

	// A good re-run replaces it.
	second, err := run("csv:"+writeSnapCSV(t, snapRows, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := readSnapshot(t, second.Path); len(got) != 7 {
		t.Errorf("re-run has %d rows", len(got))
	}
	checkFiles(t, second)

	if _, err := run("csv:x", nil); err == nil || !strings.Contains(err.Error(), "x") {
		t.Errorf("bad date/source: %v", err)
	}
	o.Date = "28-11-2026"
	if _, err := Snapshot(ctx, o); !errors.Is(err, config.ErrConfig) {
		t.Errorf("bad date: %v", err)
	}
}

func snapshotFiles(t *testing.T, r SnapshotResult) [2][]byte {
	t.Helper()
	a, err := os.ReadFile(r.Path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(r.ManifestPath)
	if err != nil {
		t.Fatal(err)
	}
	return [2][]byte{a, b}
}

func writeFileT(t *testing.T, content string) string {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Row groups hold about 256k rows, written as batches stream in.
func TestSnapshotRowGroups(t *testing.T) {
	var b strings.Builder
	b.WriteString("id,email,verified\n")
	const n = 300_000
	for i := range n {
		fmt.Fprintf(&b, "%d,u%d@d%d.com,t\n", i, i, i%5000)
	}
	p := writeFileT(t, b.String())
	c := config.Default()
	c.DataDir, c.Source = t.TempDir(), "csv:"+p
	res, err := Snapshot(context.Background(), SnapshotOptionsFromConfig(c, snapDate))
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.Rows.Addresses != n || res.Manifest.Rows.Domains != 5000 {
		t.Errorf("rows %+v", res.Manifest.Rows)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var groups, maxRows int64
	var codec string
	if err := db.QueryRow(`SELECT count(DISTINCT row_group_id), max(row_group_num_rows), any_value(compression)
		FROM parquet_metadata(?)`, res.Path).Scan(&groups, &maxRows, &codec); err != nil {
		t.Fatal(err)
	}
	if groups != 2 || maxRows != 256<<10 || codec != "ZSTD" {
		t.Errorf("%d row groups, largest %d rows, codec %s; want 2, 262144, ZSTD", groups, maxRows, codec)
	}
}

// One byte that is not UTF-8 in an email and one in a user_id, from every
// source: the snapshot stores them escaped, the email is invalid_utf8, the
// Parquet file reads back in DuckDB (which refuses strings that are not
// UTF-8, naming them) and no log line or manifest names the address.
func TestSnapshotNotUTF8(t *testing.T) {
	const secret = "secret.person"
	want := []snapRow{
		{id: 1, user: `u\xFF1`, email: secret + `\xFF@ex1.com`, verified: true, reason: address.ReasonInvalidUTF8},
		{id: 2, user: "u2", email: "ok@ex1.com", verified: true, host: "ex1.com", domain: "ex1.com"},
		{id: 3, user: `u\xFE\\3`, email: "fine@ex1.com", verified: true, host: "ex1.com", domain: "ex1.com"},
		{id: 4, email: `back\slash@ex1.com`, verified: true, host: "ex1.com", domain: "ex1.com"},
	}
	csvPath := writeFileT(t, "id,user_id,email,verified\n"+
		"1,u\xff1,"+secret+"\xff@ex1.com,t\n2,u2,ok@ex1.com,t\n3,u\xfe\\3,fine@ex1.com,t\n4,,back\\slash@ex1.com,t\n")
	jsonlPath := writeFileT(t, ""+
		"{\"id\":1,\"user_id\":\"u\xff1\",\"email\":\""+secret+"\xff@ex1.com\",\"verified\":true}\n"+
		`{"id":2,"user_id":"u2","email":"ok@ex1.com","verified":true}`+"\n"+
		"{\"id\":3,\"user_id\":\"u\xfe\\\\3\",\"email\":\"fine@ex1.com\",\"verified\":true}\n"+
		`{"id":4,"email":"back\\slash@ex1.com","verified":true}`+"\n")
	sources := []struct{ name, spec string }{{"csv", "csv:" + csvPath}, {"jsonl", "jsonl:" + jsonlPath}}
	for _, s := range append(sources, struct{ name, spec string }{"postgres", ""}) {
		t.Run(s.name, func(t *testing.T) {
			if s.name == "postgres" {
				s.spec = sqlASCIIDB(t, `CREATE TABLE user_emails (id int8, user_id text, email text, verified boolean, "primary" boolean);
					INSERT INTO user_emails VALUES (1, E'u\xff1', E'`+secret+`\xff@ex1.com', true, false),
					(2, 'u2', 'ok@ex1.com', true, false), (3, E'u\xfe\\3', 'fine@ex1.com', true, false),
					(4, NULL, E'back\\slash@ex1.com', true, false)`)
			}
			var logs bytes.Buffer
			c := config.Default()
			c.DataDir, c.Source = t.TempDir(), s.spec
			o := SnapshotOptionsFromConfig(c, snapDate)
			o.Now, o.Log = fixedNow, slog.New(slog.NewTextHandler(&logs, nil)).With("date", snapDate)
			res, err := Snapshot(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			db, err := sql.Open("duckdb", "")
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			rows, err := db.Query(`SELECT * FROM read_parquet(?)`, res.Path)
			if err != nil {
				t.Fatalf("DuckDB reads the snapshot: %v", err)
			}
			n := 0
			for rows.Next() {
				n++
			}
			if err := rows.Err(); err != nil || n != 4 {
				t.Fatalf("DuckDB read %d rows: %v", n, err)
			}
			rows.Close()
			if got := readSnapshot(t, res.Path); !reflect.DeepEqual(got, want) {
				t.Errorf("rows\n got %+v\nwant %+v", got, want)
			}
			m := checkFiles(t, res, secret)
			if m.Rows.NotUTF8 != 2 || m.Rows.Invalid != 1 || m.InvalidReasons[address.ReasonInvalidUTF8] != 1 || m.Rows.Malformed != 0 {
				t.Errorf("manifest rows %+v, reasons %v", m.Rows, m.InvalidReasons)
			}
			if strings.Contains(logs.String(), secret) || !strings.Contains(logs.String(), "not UTF-8") {
				t.Errorf("logs:\n%s", logs.String())
			}
			// The caller's logger has the date: the stage does not repeat it.
			for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
				if n := strings.Count(l, " date="); n != 1 {
					t.Errorf("log line names the date %d times: %s", n, l)
				}
			}
		})
	}
}

// sqlASCIIDB returns the DSN of a new database in the SQL_ASCII encoding
// (the server stores and sends any bytes, UTF-8 or not), set up by setup.
func sqlASCIIDB(t *testing.T, setup string) string {
	t.Helper()
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var name string
	if err := admin.QueryRow(ctx, "SELECT current_database() || '_ascii'").Scan(&name); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, err := pgx.Connect(ctx, dsn); err == nil {
			c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
			c.Close(ctx)
		}
	})
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u := strings.Replace(dsn, "/"+cfg.Database, "/"+name, 1)
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, setup); err != nil {
		t.Fatal(err)
	}
	return u
}

// Three rows with id 1: the snapshot keeps the first, and the manifest
// counts and lists the later ones as malformed.
func TestSnapshotDuplicateIDs(t *testing.T) {
	p := writeFileT(t, "id,email,verified\n1,first@ex1.com,t\n1,second@ex1.com,t\n2,b@ex2.com,t\n1,third@ex1.com,t\n")
	c := config.Default()
	c.DataDir, c.Source = t.TempDir(), "csv:"+p
	o := SnapshotOptionsFromConfig(c, snapDate)
	o.Now = fixedNow
	res, err := Snapshot(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	got := readSnapshot(t, res.Path)
	if len(got) != 2 || got[0].id != 1 || got[0].email != "first@ex1.com" || got[1].id != 2 {
		t.Errorf("rows %+v", got)
	}
	m := checkFiles(t, res, "second@", "third@")
	const reason = "duplicate id 1: an earlier line has the same id (the first one is kept)"
	if m.Rows.Addresses != 2 || m.Rows.Malformed != 2 || !reflect.DeepEqual(m.Problems, []emails.Problem{{Line: 3, Reason: reason}, {Line: 5, Reason: reason}}) {
		t.Errorf("manifest rows %+v problems %+v", m.Rows, m.Problems)
	}
}

// onAdd is a Progress calling f at each Add (a test's Ctrl-C after the
// first batch).
type onAdd func()

func (onAdd) Start(int) {}
func (f onAdd) Add(int) { f() }
func (onAdd) Done()     {}
