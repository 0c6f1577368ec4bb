package changeset

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

// SQLString quotes s as a SQL string literal. DuckDB's COPY takes no bind
// parameters, so paths and dates are written into the statement.
func SQLString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// CopyParquet runs `COPY (query) TO dest (FORMAT parquet)` atomically: DuckDB
// writes into a private temp folder beside dest (mode 0700, so addresses are
// never readable by others), the file gets mode, is fsynced and renamed
// into place.
func CopyParquet(ctx context.Context, db *sql.DB, query, dest string, mode os.FileMode) error {
	return CopyTo(ctx, db, query, dest, "FORMAT parquet, COMPRESSION zstd", mode)
}

// CopyTo is CopyParquet with other COPY options (e.g. "FORMAT csv, HEADER").
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
	q := fmt.Sprintf("COPY (%s) TO %s (%s)", query, SQLString(tmp), options)
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
