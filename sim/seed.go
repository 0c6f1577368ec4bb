package sim

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/atomicfile"
)

// SeedOptions configure Seed.
type SeedOptions struct {
	// Table is the PostgreSQL table to create (default user_emails).
	Table string
	// Replace drops an existing table first; without it an existing table
	// is an error.
	Replace bool
}

// seedColumns are PyPI warehouse's user_emails columns the sim fills
// (plus created and verified_at, which warehouse lacks but lapse can read).
var seedColumns = []string{"id", "user_id", "email", "verified", "primary", "unverify_reason", "domain_last_checked", "domain_last_status", "created", "verified_at"}

// Seed writes rows (the account table, see World.Addresses) to to:
// "postgres://…" (a new table, filled with COPY FROM), "csv:PATH" or
// "jsonl:PATH" (0600 files, same field names).
func Seed(ctx context.Context, to string, rows []Row, opts SeedOptions) error {
	switch kind, target := config.ParseSource(to); kind {
	case config.SourcePostgres:
		return seedPostgres(ctx, target, rows, opts)
	case config.SourceCSV:
		return seedFile(target, rows, writeAccountsCSV)
	case config.SourceJSONL:
		return seedFile(target, rows, writeAccountsJSONL)
	}
	return fmt.Errorf("sim seed: target %q: want postgres://…, csv:PATH or jsonl:PATH", to)
}

func seedFile(path string, rows []Row, write func(io.Writer, []Row) error) error {
	if path == "" {
		return fmt.Errorf("sim seed: empty file path")
	}
	if err := atomicfile.WriteFrom(path, 0o600, func(w io.Writer) error { return write(w, rows) }); err != nil {
		return fmt.Errorf("sim seed %s: %w", path, err)
	}
	return nil
}

func tsText(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func writeAccountsCSV(w io.Writer, rows []Row) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	cw := csv.NewWriter(bw)
	if err := cw.Write(seedColumns); err != nil {
		return err
	}
	rec := make([]string, len(seedColumns))
	for i := range rows {
		r := &rows[i]
		c := r.Created
		rec[0], rec[1], rec[2] = strconv.FormatInt(r.ID, 10), r.UserID, r.Email
		rec[3], rec[4], rec[5] = strconv.FormatBool(r.Verified), strconv.FormatBool(r.Primary), r.UnverifyReason
		rec[6], rec[7], rec[8], rec[9] = "", "", tsText(&c), tsText(r.VerifiedAt)
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return bw.Flush()
}

type accountJSON struct {
	ID                int64    `json:"id"`
	UserID            string   `json:"user_id"`
	Email             string   `json:"email"`
	Verified          bool     `json:"verified"`
	Primary           bool     `json:"primary"`
	UnverifyReason    *string  `json:"unverify_reason"`
	DomainLastChecked *string  `json:"domain_last_checked"`
	DomainLastStatus  []string `json:"domain_last_status"`
	Created           string   `json:"created"`
	VerifiedAt        *string  `json:"verified_at"`
}

func writeAccountsJSONL(w io.Writer, rows []Row) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	enc := json.NewEncoder(bw)
	for i := range rows {
		r := &rows[i]
		a := accountJSON{ID: r.ID, UserID: r.UserID, Email: r.Email, Verified: r.Verified, Primary: r.Primary, Created: tsText(&r.Created)}
		if r.UnverifyReason != "" {
			a.UnverifyReason = &r.UnverifyReason
		}
		if r.VerifiedAt != nil {
			v := tsText(r.VerifiedAt)
			a.VerifiedAt = &v
		}
		if err := enc.Encode(a); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func seedPostgres(ctx context.Context, dsn string, rows []Row, opts SeedOptions) error {
	table := opts.Table
	if table == "" {
		table = "user_emails"
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("sim seed: connect: %w", err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("sim seed: begin: %w", err)
	}
	defer tx.Rollback(context.Background())
	ident := pgx.Identifier{table}.Sanitize()
	if opts.Replace {
		if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+ident); err != nil {
			return fmt.Errorf("sim seed: drop %s: %w", table, err)
		}
	}
	// warehouse's user_emails, with bigint ids and the created column
	ddl := `CREATE TABLE ` + ident + ` (
	id bigint PRIMARY KEY,
	user_id uuid NOT NULL,
	email varchar(254) NOT NULL UNIQUE,
	"primary" boolean NOT NULL,
	verified boolean NOT NULL,
	public boolean NOT NULL DEFAULT false,
	unverify_reason text,
	domain_last_checked timestamptz,
	domain_last_status varchar[],
	created timestamptz,
	verified_at timestamptz
)`
	if _, err := tx.Exec(ctx, ddl); err != nil {
		return fmt.Errorf("sim seed: create table %s (use --replace to drop an existing one): %w", table, err)
	}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{table}, []string{"id", "user_id", "email", "primary", "verified", "unverify_reason", "created", "verified_at"},
		pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			r := &rows[i]
			var reason any
			if r.UnverifyReason != "" {
				reason = r.UnverifyReason
			}
			var verifiedAt any
			if r.VerifiedAt != nil {
				verifiedAt = *r.VerifiedAt
			}
			return []any{r.ID, r.UserID, r.Email, r.Primary, r.Verified, reason, r.Created, verifiedAt}, nil
		}))
	if err != nil {
		return fmt.Errorf("sim seed: copy into %s: %w", table, err)
	}
	if int(n) != len(rows) {
		return fmt.Errorf("sim seed: copied %d of %d rows", n, len(rows))
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("sim seed: commit: %w", err)
	}
	return nil
}
