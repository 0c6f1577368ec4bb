package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/arrow-go/v18/parquet/schema"

	"github.com/lapse-dev/lapse/lifecycle"
)

func TestExportReadBack(t *testing.T) {
	clk := &clock{t: ts("2026-03-10T02:00:00Z")}
	c := openTest(t, t.TempDir(), clk)
	ctx := context.Background()
	reg := answer("reg.com", lifecycle.Registered, clk.Now())
	reg.LastChanged = tp("2025-12-01T00:00:00Z")
	c.Record(ctx, reg)
	c.Record(ctx, failure("err.org", clk.Now(), "rdap err.org: 429 Too Many Requests"))
	avail := answer("avail.net", lifecycle.Available, clk.Now())
	avail.Statuses, avail.RegisteredAt, avail.ExpiresAt, avail.Delegated = nil, nil, nil, nil
	c.Record(ctx, avail)
	c.MarkUnverified(ctx, []string{"avail.net"})

	var buf bytes.Buffer
	if err := c.Export(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	rdr, err := file.NewParquetReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	// Times are TIMESTAMP(us) adjusted to UTC, as every lapse Parquet file.
	col := rdr.MetaData().Schema.Column(rdr.MetaData().Schema.ColumnIndexByName("registered_at"))
	if lt, ok := col.LogicalType().(schema.TimestampLogicalType); !ok || !lt.IsAdjustedToUTC() || lt.TimeUnit() != schema.TimeUnitMicros {
		t.Errorf("registered_at logical type %v", col.LogicalType())
	}
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	if tbl.NumRows() != 3 || tbl.NumCols() != int64(ExportSchema.NumFields()) {
		t.Fatalf("%d rows × %d columns", tbl.NumRows(), tbl.NumCols())
	}
	tr := array.NewTableReader(tbl, -1)
	defer tr.Release()
	if !tr.Next() {
		t.Fatal("no record")
	}
	rec := tr.RecordBatch()
	colOf := func(name string) arrow.Array {
		idx := rec.Schema().FieldIndices(name)
		if len(idx) != 1 {
			t.Fatalf("column %s missing", name)
		}
		return rec.Column(idx[0])
	}
	str := func(name string, row int) string {
		a := colOf(name).(*array.String)
		if a.IsNull(row) {
			return "<null>"
		}
		return a.Value(row)
	}
	tm := func(name string, row int) string {
		a := colOf(name).(*array.Timestamp)
		if a.IsNull(row) {
			return "<null>"
		}
		return time.UnixMicro(int64(a.Value(row))).UTC().Format(time.RFC3339)
	}
	// Rows in domain order: avail.net, err.org, reg.com.
	checks := []struct{ got, want string }{
		{str("domain", 0), "avail.net"}, {str("domain", 1), "err.org"}, {str("domain", 2), "reg.com"},
		{str("state", 0), "available"}, {str("state", 1), "unknown"}, {str("state", 2), "registered"},
		{str("error", 1), "rdap err.org: 429 Too Many Requests"}, {str("error", 2), "<null>"},
		{str("source", 2), "rdap"},
		{tm("registered_at", 2), "2015-06-01T10:00:00Z"}, {tm("registered_at", 0), "<null>"},
		{tm("expires_at", 2), "2027-06-01T10:00:00Z"},
		{tm("last_changed", 2), "2025-12-01T00:00:00Z"},
		{tm("checked_at", 2), "2026-03-10T02:00:00Z"}, {tm("as_of", 2), "2026-03-10T02:00:00Z"},
		{tm("next_check", 2), "2026-04-08T22:00:00Z"}, {tm("next_check", 0), "2026-03-16T22:00:00Z"},
		{tm("previous_registered_at", 2), "<null>"},
	}
	for i, c := range checks {
		if c.got != c.want {
			t.Errorf("check %d: got %q, want %q", i, c.got, c.want)
		}
	}
	statuses := colOf("statuses").(*array.List)
	if !statuses.IsNull(0) || statuses.IsNull(2) {
		t.Errorf("statuses nulls: %v", statuses)
	}
	if s, e := statuses.ValueOffsets(2); e-s != 1 || statuses.ListValues().(*array.String).Value(int(s)) != "client transfer prohibited" {
		t.Errorf("statuses of reg.com: %v", statuses)
	}
	if d := colOf("delegated").(*array.Boolean); !d.IsNull(0) || !d.Value(2) {
		t.Errorf("delegated: %v", d)
	}
	if u := colOf("unverified").(*array.Boolean); !u.Value(0) || u.Value(2) {
		t.Errorf("unverified: %v", u)
	}
	if n := colOf("consecutive_errors").(*array.Int32); n.Value(1) != 1 || n.Value(2) != 0 {
		t.Errorf("consecutive_errors: %v", n)
	}
	if cr := colOf("corroborated").(*array.Boolean); !cr.Value(2) {
		t.Errorf("corroborated: %v", cr)
	}
	var ev []lifecycle.Evidence
	if err := json.Unmarshal([]byte(str("evidence_json", 2)), &ev); err != nil || len(ev) != 1 || ev[0].Server != "rdap.example.net" {
		t.Errorf("evidence_json: %v %+v", err, ev)
	}
}

func TestExportEmptyCache(t *testing.T) {
	c := openTest(t, t.TempDir(), &clock{t: ts("2026-03-10T02:00:00Z")})
	var buf bytes.Buffer
	n, err := c.ExportRows(context.Background(), &buf)
	if err != nil || n != 0 {
		t.Fatalf("empty export: %d rows, %v", n, err)
	}
	tbl, err := pqarrow.ReadTable(context.Background(), bytes.NewReader(buf.Bytes()), nil, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	if tbl.NumRows() != 0 || tbl.NumCols() != int64(ExportSchema.NumFields()) {
		t.Errorf("empty export: %d rows × %d columns", tbl.NumRows(), tbl.NumCols())
	}
}

// Export leaves w open: the caller still has to fsync and rename it.
func TestExportLeavesWriterOpen(t *testing.T) {
	c := openTest(t, t.TempDir(), &clock{t: ts("2026-03-10T02:00:00Z")})
	c.Record(context.Background(), answer("x.com", lifecycle.Registered, ts("2026-03-10T02:00:00Z")))
	f, err := os.Create(filepath.Join(t.TempDir(), "x.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := c.Export(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("writer closed by Export: %v", err)
	}
}
