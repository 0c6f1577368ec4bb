package pipeline

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/internal/pgtest"
)

// A database whose user ids are a uuid column is snapshotted with user_id
// as a Parquet UUID (16 bytes, not 36 characters of text), and every file
// the night writes from it is byte for byte what the same rows with a text
// column give: the decisions, the changeset (changeset.csv and notify.csv
// print user_id as text) and first_seen.
func TestUUIDUserIDKeepsTheNightsFiles(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// Users with one to three addresses, some on a gone domain (flagged,
	// with the user's other verified addresses in notify.csv), one user id
	// in upper case (PostgreSQL writes a uuid in lower case: the text
	// column is given the same), one null.
	var vals []string
	for i := 1; i <= 60; i++ {
		user := fmt.Sprintf("'%08x-0000-4000-8000-%012x'", i/3, i*7919)
		switch i {
		case 7:
			user = "NULL"
		}
		dom := []string{"one.com", "gone.net", "two.org", "gone.io", "three.dev"}[i%5]
		vals = append(vals, fmt.Sprintf("(%d, %s, 'user%d@%s', %t, %t)", i, user, i, dom, i%3 == 0, i%11 != 0))
	}
	for _, table := range []string{"emails_uuid", "emails_text"} {
		typ := "uuid"
		if table == "emails_text" {
			typ = "text"
		}
		for _, q := range []string{
			fmt.Sprintf(`CREATE TABLE %s (id int8 PRIMARY KEY, user_id %s, email text NOT NULL, "primary" boolean NOT NULL, verified boolean NOT NULL)`, table, typ),
			fmt.Sprintf(`INSERT INTO %s VALUES %s`, table, strings.Join(vals, ", ")),
		} {
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	const date = "2026-03-01"
	nights := map[string]*hNight{}
	for _, table := range []string{"emails_uuid", "emails_text"} {
		h := newHNight(t)
		h.cfg.Source = dsn
		h.cfg.Postgres.Table = table
		if _, err := RunNight(ctx, h.opts(date)); err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		nights[table] = h
	}
	pu := night.Paths{DataDir: nights["emails_uuid"].cfg.DataDir, Date: date}
	pt := night.Paths{DataDir: nights["emails_text"].cfg.DataDir, Date: date}

	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for p, want := range map[string]string{pu.Snapshot(): "UUID", pt.Snapshot(): "VARCHAR"} {
		var typ string
		if err := db.QueryRow(`SELECT typeof(user_id) FROM read_parquet(?) LIMIT 1`, p).Scan(&typ); err != nil {
			t.Fatal(err)
		}
		if typ != want {
			t.Errorf("%s: user_id is %s, want %s", p, typ, want)
		}
	}
	var same bool
	if err := db.QueryRow(`SELECT count(*) = 0 FROM (
		SELECT email_id, CAST(user_id AS VARCHAR), email, host, domain FROM read_parquet(?)
		EXCEPT SELECT email_id, user_id, email, host, domain FROM read_parquet(?))`, pu.Snapshot(), pt.Snapshot()).Scan(&same); err != nil || !same {
		t.Errorf("the snapshots' rows differ (%v)", err)
	}

	files := []string{pu.Decisions(), pu.FirstSeen()}
	cs := pu.Changeset()
	entries, err := os.ReadDir(cs)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		switch filepath.Ext(e.Name()) {
		case ".csv", ".parquet", ".md":
			files = append(files, filepath.Join(cs, e.Name()))
		}
	}
	flagged := false
	for _, f := range files {
		rel, _ := filepath.Rel(pu.DataDir, f)
		a, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(pt.DataDir, rel))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between the uuid and the text user_id", rel)
		}
		if filepath.Base(f) == "notify.csv" && bytes.Contains(a, []byte("-0000-4000-8000-")) {
			flagged = true
		}
	}
	if !flagged {
		t.Error("notify.csv names no user: the test flags nothing")
	}
}
