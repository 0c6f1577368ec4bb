package sim

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/lapse-dev/lapse/internal/atomicfile"
)

// colType is the type of one exported column.
type colType uint8

const (
	colString colType = iota // string; "" is written as null when nullable
	colInt64
	colInt32
	colBool
	colTime // *time.Time, nil is null
)

type column struct {
	name     string
	typ      colType
	nullable bool
}

// table is rows to export: n rows, fill writes row i's values (string,
// int64, int32, bool or *time.Time, in column order) into vals.
type table struct {
	cols []column
	n    int
	fill func(i int, vals []any)
}

var domainTruthCols = []column{
	{"domain", colString, false}, {"suffix", colString, false}, {"kind", colString, false},
	{"state", colString, false}, {"registered_at", colTime, true}, {"expires_at", colTime, true},
	{"epoch", colInt32, false}, {"delegated", colBool, false},
}

func domainTruthTable(rows []DomainTruth) table {
	return table{cols: domainTruthCols, n: len(rows), fill: func(i int, v []any) {
		r := &rows[i]
		v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7] = r.Domain, r.Suffix, r.Kind, string(r.State), r.RegisteredAt, r.ExpiresAt, int32(r.Epoch), r.Delegated
	}}
}

var addressTruthCols = []column{
	{"email_id", colInt64, false}, {"user_id", colString, false}, {"email", colString, false},
	{"domain", colString, true}, {"owner_epoch", colInt32, false}, {"state", colString, false},
	{"should_flag", colBool, false}, {"at_risk", colBool, false},
	{"risk_start", colTime, true}, {"registrable_at", colTime, true}, {"reregistered_at", colTime, true},
	{"mail_at_risk", colBool, false}, {"mail_risk_start", colTime, true}, {"mail_registrable_at", colTime, true},
	{"mail_via", colString, true},
}

func addressTruthTable(rows []AddressTruth) table {
	return table{cols: addressTruthCols, n: len(rows), fill: func(i int, v []any) {
		r := &rows[i]
		v[0], v[1], v[2], v[3], v[4], v[5] = r.EmailID, r.UserID, r.Email, r.Domain, int32(r.OwnerEpoch), string(r.State)
		v[6], v[7], v[8], v[9], v[10] = r.ShouldFlag, r.AtRisk, r.RiskStart, r.RegistrableAt, r.ReregisteredAt
		v[11], v[12], v[13], v[14] = r.MailAtRisk, r.MailRiskStart, r.MailRegistrableAt, strings.Join(r.MailVia, " ")
	}}
}

// WriteDomainTruth writes the domain truth to path as CSV or Parquet, by
// the file's extension (.csv or .parquet).
func WriteDomainTruth(path string, rows []DomainTruth) error {
	return writeTable(path, domainTruthTable(rows), 0o644)
}

// WriteAddressTruth writes the address truth to path (CSV or Parquet). It
// holds email addresses, so the file is 0600.
func WriteAddressTruth(path string, rows []AddressTruth) error {
	return writeTable(path, addressTruthTable(rows), 0o600)
}

func writeTable(path string, t table, mode os.FileMode) error {
	var fill func(w io.Writer) error
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		fill = func(w io.Writer) error { return writeCSV(w, t) }
	case ".parquet":
		fill = func(w io.Writer) error { return writeParquet(w, t) }
	default:
		return fmt.Errorf("sim: %s: want a .csv or .parquet file name", path)
	}
	if err := atomicfile.WriteFrom(path, mode, fill); err != nil {
		return fmt.Errorf("sim: write %s: %w", path, err)
	}
	return nil
}

func csvValue(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case int32:
		return strconv.FormatInt(int64(x), 10)
	case bool:
		return strconv.FormatBool(x)
	case *time.Time:
		if x == nil {
			return ""
		}
		return x.UTC().Format(time.RFC3339)
	}
	panic(fmt.Sprintf("sim: unexported type %T", v))
}

func writeCSV(w io.Writer, t table) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	cw := csv.NewWriter(bw)
	rec := make([]string, len(t.cols))
	for i, c := range t.cols {
		rec[i] = c.name
	}
	if err := cw.Write(rec); err != nil {
		return err
	}
	vals := make([]any, len(t.cols))
	for i := range t.n {
		t.fill(i, vals)
		for j, v := range vals {
			rec[j] = csvValue(v)
		}
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

func arrowType(c colType) arrow.DataType {
	switch c {
	case colInt64:
		return arrow.PrimitiveTypes.Int64
	case colInt32:
		return arrow.PrimitiveTypes.Int32
	case colBool:
		return arrow.FixedWidthTypes.Boolean
	case colTime:
		return &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	}
	return arrow.BinaryTypes.String
}

// writeParquet writes t as Parquet (zstd) in record batches of 64k rows.
func writeParquet(w io.Writer, t table) error {
	fields := make([]arrow.Field, len(t.cols))
	for i, c := range t.cols {
		fields[i] = arrow.Field{Name: c.name, Type: arrowType(c.typ), Nullable: c.nullable}
	}
	schema := arrow.NewSchema(fields, nil)
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd))
	// hide w's Close: the Parquet writer would close the file before the
	// atomic commit syncs it
	fw, err := pqarrow.NewFileWriter(schema, struct{ io.Writer }{w}, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return err
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	vals := make([]any, len(t.cols))
	flush := func() error {
		rec := b.NewRecordBatch()
		defer rec.Release()
		return fw.Write(rec)
	}
	for i := range t.n {
		t.fill(i, vals)
		for j, v := range vals {
			switch x := v.(type) {
			case string:
				sb := b.Field(j).(*array.StringBuilder)
				if x == "" && t.cols[j].nullable {
					sb.AppendNull()
				} else {
					sb.Append(x)
				}
			case int64:
				b.Field(j).(*array.Int64Builder).Append(x)
			case int32:
				b.Field(j).(*array.Int32Builder).Append(x)
			case bool:
				b.Field(j).(*array.BooleanBuilder).Append(x)
			case *time.Time:
				tb := b.Field(j).(*array.TimestampBuilder)
				if x == nil {
					tb.AppendNull()
				} else {
					tb.Append(arrow.Timestamp(x.UnixMicro()))
				}
			}
		}
		if (i+1)%65536 == 0 {
			if err := flush(); err != nil {
				fw.Close()
				return err
			}
		}
	}
	if t.n%65536 != 0 || t.n == 0 {
		if err := flush(); err != nil {
			fw.Close()
			return err
		}
	}
	return fw.Close()
}
