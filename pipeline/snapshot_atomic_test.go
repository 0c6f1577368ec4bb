package pipeline

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/sources/emails"
)

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

// Row groups hold SnapshotRowGroupRows rows (the last one the rest),
// written as batches stream in.
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
	if err := db.QueryRow(`SELECT count(DISTINCT row_group_id), max(row_group_num_rows)
		FROM parquet_metadata(?)`, res.Path).Scan(&groups, &maxRows); err != nil {
		t.Fatal(err)
	}
	if want := int64(n+SnapshotRowGroupRows-1) / SnapshotRowGroupRows; groups != want || maxRows != SnapshotRowGroupRows {
		t.Errorf("%d row groups, largest %d rows; want %d, %d", groups, maxRows, want, SnapshotRowGroupRows)
	}
	// Each column's codec and encoding: LZ4 for the text columns, delta
	// for the ids, zstd for the rest (a file's user ids are text).
	rows, err := db.Query(`SELECT path_in_schema, string_agg(DISTINCT compression, ',' ORDER BY compression),
		bool_or(encodings LIKE '%DELTA_BINARY_PACKED%') FROM parquet_metadata(?) GROUP BY 1`, res.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var col, codec string
		var delta bool
		if err := rows.Scan(&col, &codec, &delta); err != nil {
			t.Fatal(err)
		}
		want := "ZSTD"
		switch col {
		case "email", "host", "domain":
			want = "LZ4_RAW"
		}
		if codec != want || delta != (col == "email_id") {
			t.Errorf("column %s: codec %s, delta %v; want %s, %v", col, codec, delta, want, col == "email_id")
		}
	}
}

// onAdd is a Progress calling f at each Add (a test's Ctrl-C after the
// first batch).
type onAdd func()

func (onAdd) Start(int) {}
func (f onAdd) Add(int) { f() }
func (onAdd) Done()     {}
