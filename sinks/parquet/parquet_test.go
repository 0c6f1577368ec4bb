package parquet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

var schema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

func batch(mem memory.Allocator, from, n int) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	for i := from; i < from+n; i++ {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		if i%3 == 0 {
			b.Field(1).(*array.StringBuilder).AppendNull()
		} else {
			b.Field(1).(*array.StringBuilder).Append("v" + string(rune('a'+i%26)))
		}
	}
	return b.NewRecordBatch()
}

func TestWriteCommit(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	path := filepath.Join(t.TempDir(), "sub", "x.parquet")
	w, err := Create(path, schema, Options{RowGroupRows: 100, Alloc: mem, Plain: []string{"id"}, NoStats: []string{"s"}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	for i := 0; i < 250; i += 50 {
		rec := batch(mem, i, 50)
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("file visible before Commit: %v", err)
	}
	res, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	w.Abort() // no-op after Commit
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if res.Rows != 250 || res.Bytes != int64(len(data)) || res.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("result %+v for %d bytes", res, len(data))
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	rdr, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Close()
	if rdr.NumRowGroups() != 3 || rdr.NumRows() != 250 {
		t.Errorf("%d row groups, %d rows; want 3, 250", rdr.NumRowGroups(), rdr.NumRows())
	}
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	if tbl.NumRows() != 250 || tbl.Column(1).Data().Chunk(0).NullN() == 0 {
		t.Errorf("read back %d rows", tbl.NumRows())
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.parquet")
	if err := os.WriteFile(path, []byte("previous"), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := Create(path, schema, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec := batch(memory.DefaultAllocator, 0, 10)
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	rec.Release()
	w.Abort()
	w.Abort()
	if _, err := w.Commit(); err == nil {
		t.Error("Commit after Abort succeeded")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("files after Abort: %v", ents)
	}
	if b, _ := os.ReadFile(path); string(b) != "previous" {
		t.Errorf("previous content replaced: %q", b)
	}
}

// TestDataPageSize checks that a column chunk larger than a page is cut
// into pages of about dataPageBytes (the encoder's buffers stay in cache),
// and that the pages hold every value.
func TestDataPageSize(t *testing.T) {
	const rows = 400_000
	path := filepath.Join(t.TempDir(), "pages.parquet")
	w, err := Create(path, schema, Options{RowGroupRows: rows, Plain: []string{"id"}, Uncompressed: []string{"id"}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	rec := batch(memory.DefaultAllocator, 0, rows)
	defer rec.Release()
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	rdr, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Close()
	// 400k plain int64 ids: 3.2 MB, so 20 pages or more of 128 KB, not
	// the 4 of Arrow's default 1 MB.
	pr, err := rdr.RowGroup(0).GetColumnPageReader(0)
	if err != nil {
		t.Fatal(err)
	}
	var pages, values int
	for pr.Next() {
		p := pr.Page()
		if dp, ok := p.(file.DataPage); ok {
			pages++
			values += int(dp.NumValues())
			if n := len(p.Data()); n > dataPageBytes+64<<10 {
				t.Errorf("page %d holds %d bytes, more than about %d", pages, n, dataPageBytes)
			}
		}
	}
	if err := pr.Err(); err != nil {
		t.Fatal(err)
	}
	if pages < 20 || values != rows {
		t.Errorf("%d pages holding %d values; want 20 or more holding %d", pages, values, rows)
	}
}
