package duck

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestQuote(t *testing.T) {
	if got := String("it's"); got != "'it''s'" {
		t.Errorf("String: %s", got)
	}
	if got := Ident(`a"b`); got != `"a""b"` {
		t.Errorf("Ident: %s", got)
	}
}

func TestCopyToFailureLeavesPreviousFile(t *testing.T) {
	ctx := context.Background()
	db, err := OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dir := t.TempDir()
	dest := filepath.Join(dir, "x.parquet")
	if err := CopyParquet(ctx, db, "SELECT 1 AS a", dest, 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(dest)
	if err := CopyParquet(ctx, db, "SELECT * FROM no_such_table", dest, 0o600); err == nil {
		t.Fatal("copy of a bad query succeeded")
	}
	after, _ := os.ReadFile(dest)
	if string(before) != string(after) {
		t.Error("a failed copy changed the file")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("%d entries left beside the file, want 1", len(ents))
	}
	fi, _ := os.Stat(dest)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
}

// TestColumnsOr: a column the file lacks reads as a typed NULL.
func TestColumnsOr(t *testing.T) {
	ctx := context.Background()
	db, err := OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p := filepath.Join(t.TempDir(), "x.parquet")
	if err := CopyParquet(ctx, db, "SELECT 'a.com' AS domain, 1 AS n", p, 0o600); err != nil {
		t.Fatal(err)
	}
	cols, err := Columns(ctx, db, p)
	if err != nil {
		t.Fatal(err)
	}
	if !cols.Has("domain") || cols.Has("state") {
		t.Fatalf("columns %v", cols)
	}
	var n int64
	var state *string
	q := "SELECT " + cols.Or("n", "BIGINT") + ", " + cols.Or("state", "VARCHAR") + " FROM read_parquet(" + String(p) + ")"
	if err := db.QueryRowContext(ctx, q).Scan(&n, &state); err != nil {
		t.Fatal(err)
	}
	if n != 1 || state != nil {
		t.Errorf("n %d state %v", n, state)
	}
	if _, err := Columns(ctx, db, filepath.Join(t.TempDir(), "missing.parquet")); err == nil {
		t.Error("schema of a missing file read")
	}
}
