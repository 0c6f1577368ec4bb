package pipeline

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/pgtest"
	"github.com/lapse-dev/lapse/sources/address"
	"github.com/lapse-dev/lapse/sources/emails"
)

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
			// The address is a row of the snapshot (escaped): only the
			// manifest must not name it. (The data file is not checked for
			// it: its text columns are LZ4, which keeps short literals as
			// they are.)
			m := checkFiles(t, res)
			if mb, err := os.ReadFile(res.ManifestPath); err != nil || bytes.Contains(mb, []byte(secret)) {
				t.Errorf("manifest names the address (%v)", err)
			}
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
