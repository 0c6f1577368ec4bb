package sim_test

import (
	"context"
	"encoding/csv"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/pgtest"
	"github.com/lapse-dev/lapse/sim"
	"github.com/lapse-dev/lapse/sources/emails"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// readBack reads a seeded source with lapse's own email reader.
func readBack(t *testing.T, spec string) (n, verified int, ids map[int64]bool) {
	n, verified, ids, _ = readBackTimes(t, spec)
	return n, verified, ids
}

// readBackTimes is readBack that also counts the rows with a verified_at.
func readBackTimes(t *testing.T, spec string) (n, verified int, ids map[int64]bool, withVerifiedAt int) {
	t.Helper()
	c := config.Default()
	c.Postgres.CreatedColumn, c.Postgres.VerifiedAtColumn = "created", "verified_at"
	r, err := emails.Open(context.Background(), spec, emails.Options{All: true, Postgres: c.Postgres})
	if err != nil {
		t.Fatalf("open %s: %v", spec, err)
	}
	defer r.Close()
	ids = map[int64]bool{}
	for {
		rec, err := r.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read %s: %v", spec, err)
		}
		idc := rec.Column(int(rec.Schema().FieldIndices(emails.ColEmailID)[0])).(*array.Int64)
		vc := rec.Column(int(rec.Schema().FieldIndices("verified")[0])).(*array.Boolean)
		va := rec.Column(int(rec.Schema().FieldIndices("verified_at")[0]))
		for i := 0; i < int(rec.NumRows()); i++ {
			ids[idc.Value(i)] = true
			if vc.Value(i) {
				verified++
			}
			if va.IsValid(i) {
				withVerifiedAt++
			}
		}
		n += int(rec.NumRows())
		rec.Release()
	}
	if p := r.Problems(); p.Malformed > 0 {
		t.Errorf("%s: %d malformed lines: %+v", spec, p.Malformed, p.First)
	}
	return n, verified, ids, withVerifiedAt
}

// withVerifiedAt counts the rows that carry a verified_at.
func withVerifiedAt(rows []sim.Row) int {
	n := 0
	for _, r := range rows {
		if r.VerifiedAt != nil {
			n++
		}
	}
	return n
}

func seedRows(t *testing.T) ([]sim.Row, int) {
	w := sim.NewWorld(sim.Params{Seed: 3, Start: itStart, Emails: 3000})
	rows := w.Addresses(itStart)
	w.Unverify([]int64{rows[0].ID}, itStart)
	rows = w.Addresses(itStart)
	v := 0
	for _, r := range rows {
		if r.Verified {
			v++
		}
	}
	return rows, v
}

func TestSeedFilesReadByLapse(t *testing.T) {
	rows, verified := seedRows(t)
	dir := t.TempDir()
	for _, spec := range []string{"csv:" + filepath.Join(dir, "u.csv"), "jsonl:" + filepath.Join(dir, "u.jsonl")} {
		if err := sim.Seed(context.Background(), spec, rows, sim.SeedOptions{}); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(spec[len("csv:"):])
		if spec[0] == 'j' {
			fi, err = os.Stat(spec[len("jsonl:"):])
		}
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", spec, fi.Mode(), err)
		}
		n, v, ids, va := readBackTimes(t, spec)
		if n != len(rows) || v != verified || !ids[rows[len(rows)-1].ID] {
			t.Errorf("%s: read %d rows (%d verified), wrote %d (%d)", spec, n, v, len(rows), verified)
		}
		if want := withVerifiedAt(rows); va != want || want == 0 {
			t.Errorf("%s: %d rows with verified_at read back, wrote %d", spec, va, want)
		}
	}
	if err := sim.Seed(context.Background(), "mysql://x", rows, sim.SeedOptions{}); err == nil {
		t.Error("unknown target accepted")
	}
}

func TestSeedPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	rows, verified := seedRows(t)
	ctx := context.Background()
	if err := sim.Seed(ctx, dsn, rows, sim.SeedOptions{}); err != nil {
		t.Fatal(err)
	}
	n, v, _, va := readBackTimes(t, dsn)
	if n != len(rows) || v != verified {
		t.Errorf("postgres: read %d rows (%d verified), wrote %d (%d)", n, v, len(rows), verified)
	}
	if want := withVerifiedAt(rows); va != want || want == 0 {
		t.Errorf("postgres: %d rows with verified_at read back, wrote %d", va, want)
	}
	if err := sim.Seed(ctx, dsn, rows, sim.SeedOptions{}); err == nil {
		t.Error("second seed into an existing table did not fail")
	}
	if err := sim.Seed(ctx, dsn, rows[:10], sim.SeedOptions{Replace: true}); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := readBack(t, dsn); n != 10 {
		t.Errorf("after --replace: %d rows, want 10", n)
	}
}

func TestTruthFiles(t *testing.T) {
	w := sim.NewWorld(sim.Params{Seed: 3, Start: itStart, Emails: 3000})
	date := itStart.AddDate(0, 0, 40)
	dom, addr := w.DomainTruth(date), w.AddressTruth(date)
	dir := t.TempDir()
	for _, ext := range []string{".csv", ".parquet"} {
		dp, ap := filepath.Join(dir, "d"+ext), filepath.Join(dir, "a"+ext)
		if err := sim.WriteDomainTruth(dp, dom); err != nil {
			t.Fatal(err)
		}
		if err := sim.WriteAddressTruth(ap, addr); err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(ap); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", ap, fi.Mode())
		}
		for _, c := range []struct {
			path string
			rows int
			col  string
		}{{dp, len(dom), "expires_at"}, {ap, len(addr), "risk_start"}, {ap, len(addr), "mail_via"}} {
			if ext == ".csv" {
				f, _ := os.Open(c.path)
				recs, err := csv.NewReader(f).ReadAll()
				f.Close()
				if err != nil || len(recs) != c.rows+1 || !contains(recs[0], c.col) {
					t.Errorf("%s: %d records, header %v, %v", c.path, len(recs), recs[0], err)
				}
				continue
			}
			pf, err := file.OpenParquetFile(c.path, false)
			if err != nil {
				t.Fatal(err)
			}
			fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
			if err != nil {
				t.Fatal(err)
			}
			tbl, err := fr.ReadTable(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if int(tbl.NumRows()) != c.rows || len(tbl.Schema().FieldIndices(c.col)) != 1 {
				t.Errorf("%s: %d rows, schema %v", c.path, tbl.NumRows(), tbl.Schema())
			}
			tbl.Release()
			pf.Close()
		}
	}
	if err := sim.WriteDomainTruth(filepath.Join(dir, "d.txt"), dom); err == nil {
		t.Error(".txt accepted")
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
