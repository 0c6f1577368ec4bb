// Package applytest builds what apply's tests and benchmarks need: a
// reviewed changeset folder written by the real changeset writer and
// approved, and a PyPI-like account table in PostgreSQL holding its rows.
package applytest

import (
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/duck"
	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/sinks/apply"
	"github.com/lapse-dev/lapse/sinks/changeset"
)

// Rows returns n changeset rows with ids 1..n over 1000 domains, their
// state looked up on checked.
func Rows(n int, checked string) []apply.Row {
	out := make([]apply.Row, n)
	t, _ := night.Parse(checked)
	for i := range out {
		id := int64(i + 1)
		d := fmt.Sprintf("d%d.test", id%1000)
		out[i] = apply.Row{EmailID: id, UserID: fmt.Sprintf("u%d", (id+1)/2), Email: fmt.Sprintf("a%d@%s", id, d), Domain: d,
			State: "available", Reason: "domain_available", Evidence: "rdap:available checked " + checked, Checked: t}
	}
	return out
}

// Changeset writes the changeset folder of night date under dataDir
// (DATA/changesets/D) from rows, with the real writer, approves it as
// "reviewer" and returns the folder.
func Changeset(tb testing.TB, dataDir, date string, rows []apply.Row) string {
	tb.Helper()
	dir := WriteChangeset(tb, dataDir, date, rows)
	if _, _, err := changeset.Approve(dir, changeset.ApproveOptions{By: "reviewer", Now: time.Now()}); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// WriteChangeset is Changeset without the approval.
func WriteChangeset(tb testing.TB, dataDir, date string, rows []apply.Row) string {
	tb.Helper()
	ctx := context.Background()
	work := tb.TempDir()
	src := filepath.Join(work, "rows.csv")
	f, err := os.Create(src)
	if err != nil {
		tb.Fatal(err)
	}
	w := csv.NewWriter(f)
	w.Write([]string{"email_id", "user_id", "email", "domain", "state", "reason", "evidence"})
	for _, r := range rows {
		w.Write([]string{strconv.FormatInt(r.EmailID, 10), r.UserID, r.Email, r.Domain, r.State, r.Reason, r.Evidence})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	db, err := duck.OpenMemory()
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	read := fmt.Sprintf(`read_csv(%s, header = true, all_varchar = true)`, duck.String(src))
	dec, snap := filepath.Join(work, "decisions.parquet"), filepath.Join(work, "emails.parquet")
	if err := duck.CopyParquet(ctx, db, `SELECT CAST(email_id AS BIGINT) AS email_id, user_id, email, true AS verified,
		false AS "primary", NULL::TIMESTAMPTZ AS created, NULL::TIMESTAMPTZ AS verified_at, domain,
		regexp_extract(domain, '[^.]+$') AS tld, state, reason, 'unverify' AS action, evidence FROM `+read, dec, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := duck.CopyParquet(ctx, db, `SELECT CAST(email_id AS BIGINT) AS email_id, user_id, email, true AS verified,
		false AS "primary" FROM `+read, snap, 0o600); err != nil {
		tb.Fatal(err)
	}
	dir := night.Dir(dataDir).Night(date).Changeset()
	if _, err := changeset.Write(ctx, db, changeset.Spec{Dir: dir, Date: date, Decisions: dec, Snapshot: snap,
		Verified: int64(2 * len(rows)), Policy: "corroborated", Brake: config.BrakeConfig{}}); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// TableOptions shape the account table.
type TableOptions struct {
	// Table defaults to user_emails; "schema.table" creates the schema.
	Table string
	// EnumReason makes unverify_reason an enum, as warehouse has it.
	EnumReason bool
	// TextStatus makes domain_last_status text instead of varchar[].
	TextStatus bool
	// Extra verified rows not in the changeset, ids after the rows'.
	Extra int
}

// CreateTable creates PyPI's user_emails (id, user_id, email, "primary",
// verified, unverify_reason, domain_last_checked, domain_last_status)
// holding rows, verified, and returns a connection to the database.
func CreateTable(tb testing.TB, dsn string, rows []apply.Row, o TableOptions) *pgx.Conn {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	if o.Table == "" {
		o.Table = "user_emails"
	}
	reasonType, statusType := "text", "varchar[]"
	if o.EnumReason {
		reasonType = "unverifyreasons"
		if _, err := conn.Exec(ctx, `CREATE TYPE unverifyreasons AS ENUM ('spam complaint', 'hard bounce', 'soft bounce', 'domain status invalid')`); err != nil {
			tb.Fatal(err)
		}
	}
	if o.TextStatus {
		statusType = "text"
	}
	ident := pgx.Identifier(splitTable(o.Table))
	if len(ident) == 2 {
		if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{ident[0]}.Sanitize()); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s (
		id bigint PRIMARY KEY,
		user_id text NOT NULL,
		email varchar(254) NOT NULL UNIQUE,
		"primary" boolean NOT NULL DEFAULT false,
		verified boolean NOT NULL,
		unverify_reason %s,
		domain_last_checked timestamp without time zone,
		domain_last_status %s
	)`, ident.Sanitize(), reasonType, statusType)); err != nil {
		tb.Fatal(err)
	}
	src := make([][]any, 0, len(rows)+o.Extra)
	var last int64
	for _, r := range rows {
		src = append(src, []any{r.EmailID, r.UserID, r.Email, true})
		last = max(last, r.EmailID)
	}
	for i := range o.Extra {
		id := last + int64(i) + 1
		src = append(src, []any{id, fmt.Sprintf("x%d", id), fmt.Sprintf("x%d@fine.example", id), true})
	}
	if _, err := conn.CopyFrom(ctx, ident, []string{"id", "user_id", "email", "verified"}, pgx.CopyFromRows(src)); err != nil {
		tb.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "ANALYZE "+ident.Sanitize()); err != nil {
		tb.Fatal(err)
	}
	return conn
}

func splitTable(t string) []string {
	for i := 0; i < len(t); i++ {
		if t[i] == '.' {
			return []string{t[:i], t[i+1:]}
		}
	}
	return []string{t}
}
