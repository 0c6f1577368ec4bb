package cache

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

func TestRecordMailPath(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	c := openTest(t, t.TempDir(), clk)
	every := 90 * Day
	ok := MailObservation{Domain: "Example.ORG", CheckedAt: t0, MX: "ok", NS: "ok", MXConclusive: true, NSConclusive: true,
		Links: []MailLink{{Role: "ns", Host: "ns1.tinydns.com", Dep: "tinydns.com"}, {Role: "mx", Host: "mx1.small.net", Dep: "small.net", Pref: 10}}}
	e, err := c.RecordMailPath(ctx, ok, every)
	if err != nil {
		t.Fatal(err)
	}
	if e.Domain != "example.org" || len(e.Links) != 2 || e.Links[0].Role != "mx" || !e.Links[0].FirstSeen.Equal(t0) {
		t.Fatalf("first record: %+v", e)
	}
	if want := t0.Add(every - NightSlack); !e.NextCheck.Equal(want) || e.Failures != 0 {
		t.Fatalf("next check %v failures %d, want %v 0", e.NextCheck, e.Failures, want)
	}

	// A SERVFAIL on NS keeps the NS link (never evidence of anything) and
	// backs off; MX answered again, so its link keeps its first sighting.
	t1 := t0.Add(Day)
	fail := MailObservation{Domain: "example.org", CheckedAt: t1, MX: "ok", NS: "servfail", MXConclusive: true,
		Links: []MailLink{{Role: "mx", Host: "mx1.small.net", Dep: "small.net", Pref: 10}, {Role: "mx", Host: "mx2.other.net", Dep: "other.net", Pref: 20}}, Error: "ns: servfail"}
	e, err = c.RecordMailPath(ctx, fail, every)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Links) != 3 || e.Failures != 1 || !e.NextCheck.Equal(days(t1, 1)) {
		t.Fatalf("after servfail: %+v", e)
	}
	for _, l := range e.Links {
		want := t0
		if l.Host == "mx2.other.net" {
			want = t1
		}
		if !l.FirstSeen.Equal(want) {
			t.Errorf("%s first seen %v, want %v", l.Host, l.FirstSeen, want)
		}
	}
	if e.NSAt == nil || !e.NSAt.Equal(t0) || e.MXAt == nil || !e.MXAt.Equal(t1) {
		t.Errorf("conclusive times mx %v ns %v", e.MXAt, e.NSAt)
	}
	// Two failures in a row: two nights.
	e, err = c.RecordMailPath(ctx, MailObservation{Domain: "example.org", CheckedAt: t1.Add(Day), MX: "timeout", NS: "timeout"}, every)
	if err != nil || e.Failures != 2 || len(e.Links) != 3 || !e.NextCheck.Equal(days(t1.Add(Day), 2)) {
		t.Fatalf("after timeouts: %+v %v", e, err)
	}
	// A conclusive answer without the NS host drops it.
	e, err = c.RecordMailPath(ctx, MailObservation{Domain: "example.org", CheckedAt: t1.Add(2 * Day), MX: "nxdomain", NS: "nxdomain", MXConclusive: true, NSConclusive: true}, every)
	if err != nil || len(e.Links) != 0 || e.Failures != 0 {
		t.Fatalf("after nxdomain: %+v %v", e, err)
	}
	if _, err := c.RecordMailPath(ctx, ok, every); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RecordMailPath(ctx, MailObservation{Domain: "nolinks.example", CheckedAt: t0, MX: "ok", NS: "ok", MXConclusive: true, NSConclusive: true, NullMX: true}, every); err != nil {
		t.Fatal(err)
	}
	got, found, err := c.MailPathOf(ctx, "EXAMPLE.org")
	if err != nil || !found || len(got.Links) != 2 {
		t.Fatalf("MailPathOf: %+v %v %v", got, found, err)
	}

	path := filepath.Join(t.TempDir(), "links.parquet")
	n, err := ExportLinks(ctx, c, path)
	if err != nil || n != 3 {
		t.Fatalf("export: %d rows, %v", n, err)
	}
	// Read back with Arrow (the cache package links no DuckDB).
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tbl, err := pqarrow.ReadTable(ctx, f, parquet.NewReaderProperties(memory.DefaultAllocator), pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	if tbl.NumCols() != int64(len(LinksSchema.Fields())) || tbl.NumRows() != 3 {
		t.Fatalf("links copy: %d rows, schema %v", tbl.NumRows(), tbl.Schema())
	}
	var noLink, mxPref int
	var nullMX bool
	rr := array.NewTableReader(tbl, 0)
	defer rr.Release()
	for rr.Next() {
		rec := rr.RecordBatch()
		role := rec.Column(7).(*array.String)
		pref := rec.Column(10).(*array.Int32)
		nm := rec.Column(5).(*array.Boolean)
		for i := 0; i < int(rec.NumRows()); i++ {
			switch {
			case role.IsNull(i):
				noLink++
			case role.Value(i) == "mx":
				mxPref += int(pref.Value(i))
			}
			nullMX = nullMX || nm.Value(i)
		}
	}
	if noLink != 1 || mxPref != 10 || !nullMX {
		t.Fatalf("links copy: no-link rows %d, mx pref %d, null mx %v", noLink, mxPref, nullMX)
	}
}
