// Package duck is lapse's DuckDB plumbing: a scratch in-memory database for
// one stage's work over Parquet files, quoting of literals and identifiers
// (DuckDB's COPY takes no bind parameters), an atomic COPY … TO a file, and
// the columns of a Parquet file with "the column or NULL" for readers that
// tolerate files written by an older lapse.
package duck

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	_ "github.com/duckdb/duckdb-go/v2" // database/sql driver "duckdb"

	"github.com/lapse-dev/lapse/internal/atomicfile"
)

// OpenMemory opens an in-memory DuckDB with UTC timestamps, for one stage's
// work over Parquet files.
func OpenMemory() (*sql.DB, error) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, fmt.Errorf("open duckdb: %w", err)
	}
	// One connection, so the session setting holds for every statement.
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("SET TimeZone = 'UTC'"); err != nil {
		db.Close()
		return nil, fmt.Errorf("duckdb: set time zone: %w", err)
	}
	return db, nil
}

// String quotes s as a SQL string literal. DuckDB's COPY takes no bind
// parameters, so paths and dates are written into the statement.
func String(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// Ident quotes s as a SQL identifier (a column or table name).
func Ident(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// ParquetOptions are CopyParquet's COPY options.
const ParquetOptions = "FORMAT parquet, COMPRESSION zstd"

// CopyParquet runs `COPY (query) TO dest (FORMAT parquet)` atomically: DuckDB
// writes into a private temp folder beside dest (mode 0700, so addresses are
// never readable by others), the file gets mode, is fsynced and renamed
// into place.
func CopyParquet(ctx context.Context, db *sql.DB, query, dest string, mode os.FileMode) error {
	return CopyTo(ctx, db, query, dest, ParquetOptions, mode)
}

// CopyTo is CopyParquet with other COPY options (e.g. "FORMAT csv, HEADER").
// Its temp folder is named like internal/atomicfile's temp files
// (".NAME.tmp-DIGITS"), so a run killed mid-copy leaves what the runner's
// clean-up recognizes.
func CopyTo(ctx context.Context, db *sql.DB, query, dest, options string, mode os.FileMode) error {
	dir := filepath.Dir(dest)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create folder %s: %w", dir, err)
	}
	tmpDir, err := os.MkdirTemp(dir, "."+filepath.Base(dest)+".tmp-")
	if err != nil {
		return fmt.Errorf("temp folder for %s: %w", dest, err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, filepath.Base(dest))
	q := fmt.Sprintf("COPY (%s) TO %s (%s)", query, String(tmp), options)
	if _, err := db.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("write %s: %w", dest, err)
	}
	f, err := os.Open(tmp)
	if err != nil {
		return fmt.Errorf("write %s: %w", dest, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("chmod %s: %w", dest, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", dest, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", dest, err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		return fmt.Errorf("rename into %s: %w", dest, err)
	}
	return atomicfile.SyncDir(dir)
}

// Querier is what Columns needs of a database: *sql.DB, *sql.Conn, *sql.Tx.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Columns is the set of the top-level column names of a Parquet file.
func Columns(ctx context.Context, q Querier, file string) (Cols, error) {
	rows, err := q.QueryContext(ctx, `SELECT name FROM parquet_schema(?)`, file)
	if err != nil {
		return nil, fmt.Errorf("read schema of %s: %w", file, err)
	}
	defer rows.Close()
	cols := Cols{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("read schema of %s: %w", file, err)
		}
		cols[n] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema of %s: %w", file, err)
	}
	return cols, nil
}

// Cols is a Parquet file's column names (Columns).
type Cols map[string]bool

// Has reports whether the file has column name.
func (c Cols) Has(name string) bool { return c[name] }

// Or is column name cast to typ when the file has it, else NULL cast to typ:
// readers of files written by an older lapse (or a cache export with fewer
// columns) see the same shape.
func (c Cols) Or(name, typ string) string {
	if c[name] {
		return fmt.Sprintf("CAST(%s AS %s)", Ident(name), typ)
	}
	return Null(typ)
}

// Null is NULL cast to typ.
func Null(typ string) string { return fmt.Sprintf("CAST(NULL AS %s)", typ) }

// StrftimeUTC is SQL formatting the TIMESTAMPTZ column col with strftime's
// format (a Go string; '%' need not be doubled) in UTC, whatever the
// session's time zone: from the instant's microseconds as a plain
// timestamp, about three times cheaper than strftime on a TIMESTAMPTZ,
// which goes through ICU. Infinities, which have no microseconds, go
// through ICU.
func StrftimeUTC(col, format string) string {
	f := String(format)
	return fmt.Sprintf(`coalesce(strftime(make_timestamp(epoch_us(%[1]s)), %[2]s), strftime(%[1]s AT TIME ZONE 'UTC', %[2]s))`, col, f)
}
