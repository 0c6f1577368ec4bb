package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/lapse-dev/lapse/internal/atomicfile"
	"github.com/lapse-dev/lapse/lifecycle"
)

// The cache's entries as Parquet: the states copy (DATA/states/
// states.parquet, what plan and classify read with DuckDB), a night's
// lookups (observations/date=D/domains.parquet) and `lapse cache export`'s
// file all have the columns of StateColumns, written by one writer.

// StateRow is one row of a states file: a domain's lifecycle with its
// cache schedule and history.
type StateRow struct {
	Lifecycle             lifecycle.Lifecycle
	LastError             string
	ConsecutiveErrors     int
	FirstCheckedAt        time.Time
	LastCheckedAt         time.Time
	NextCheck             time.Time
	PreviousRegisteredAt  *time.Time
	RegisteredAtChangedAt *time.Time
	DecisiveSince         *time.Time
	DecisiveNights        int
	Unverified            bool
	// The authoritative and status API facts (Entry's Auth* and Status*).
	AuthCheckedAt    *time.Time
	AuthSource       lifecycle.Source
	AuthState        lifecycle.State
	AuthRegisteredAt *time.Time
	AuthExpiresAt    *time.Time
	AuthFailures     int
	AuthRetryAt      *time.Time
	StatusSource     lifecycle.Source
	StatusFlags      []string
	StatusCheckedAt  *time.Time
}

// RowFromEntry is a cache entry as a state row.
func RowFromEntry(e Entry) StateRow {
	lc := e.Lifecycle
	if lc.Domain == "" {
		lc.Domain = e.Domain
	}
	if lc.State == "" {
		lc.State = lifecycle.Unknown
	}
	return StateRow{
		Lifecycle: lc, LastError: e.LastError, ConsecutiveErrors: e.ConsecutiveErrors,
		FirstCheckedAt: e.FirstCheckedAt, LastCheckedAt: e.LastCheckedAt, NextCheck: e.NextCheck,
		PreviousRegisteredAt: e.PreviousRegisteredAt, RegisteredAtChangedAt: e.RegisteredAtChangedAt,
		DecisiveSince: e.DecisiveSince, DecisiveNights: e.DecisiveNights, Unverified: e.Unverified,
		AuthCheckedAt: e.AuthCheckedAt, AuthSource: e.AuthSource, AuthState: e.AuthState,
		AuthRegisteredAt: e.AuthRegisteredAt, AuthExpiresAt: e.AuthExpiresAt, AuthFailures: e.AuthFailures, AuthRetryAt: e.AuthRetryAt,
		StatusSource: e.StatusSource, StatusFlags: e.StatusFlags, StatusCheckedAt: e.StatusCheckedAt,
	}
}

// StateColumn is one column of the states files: its name, the DuckDB type
// its readers cast it to (a file of an older lapse may lack it: they read
// NULL of that type), and, for the writer, its Arrow field and how a row
// fills it.
type StateColumn struct {
	Name string
	SQL  string
	// Arrow is the column's field in StateSchema.
	Arrow arrow.Field
	put   func(b array.Builder, r *StateRow)
}

// ColDomain is the column every states file has: the registrable domain.
const ColDomain = "domain"

var tsUS = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}

// StateColumns are the states files' columns, in file order: the one list
// the schema, the writer and the readers' SQL (classify's states
// relation, the lifecycle database's observations) are made from.
var StateColumns = []StateColumn{
	strCol(ColDomain, false, func(r *StateRow) string { return r.Lifecycle.Domain }),
	strCol("state", false, func(r *StateRow) string { return string(r.Lifecycle.State) }),
	listCol("statuses", func(r *StateRow) []string { return r.Lifecycle.Statuses }),
	tsCol("registered_at", func(r *StateRow) *time.Time { return r.Lifecycle.RegisteredAt }),
	tsCol("expires_at", func(r *StateRow) *time.Time { return r.Lifecycle.ExpiresAt }),
	tsCol("last_changed", func(r *StateRow) *time.Time { return r.Lifecycle.LastChanged }),
	{Name: "delegated", SQL: "BOOLEAN", Arrow: arrow.Field{Name: "delegated", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		put: func(b array.Builder, r *StateRow) {
			if r.Lifecycle.Delegated == nil {
				b.AppendNull()
				return
			}
			b.(*array.BooleanBuilder).Append(*r.Lifecycle.Delegated)
		}},
	strCol("source", true, func(r *StateRow) string { return string(r.Lifecycle.Source) }),
	tsCol("checked_at", func(r *StateRow) *time.Time { return &r.Lifecycle.CheckedAt }),
	tsCol("as_of", func(r *StateRow) *time.Time { return &r.Lifecycle.AsOf }),
	strCol("error", true, func(r *StateRow) string { return r.Lifecycle.Error }),
	boolCol("corroborated", func(r *StateRow) bool { return r.Lifecycle.Corroborated }),
	{Name: "evidence_json", SQL: "VARCHAR", Arrow: arrow.Field{Name: "evidence_json", Type: arrow.BinaryTypes.String, Nullable: true},
		put: func(b array.Builder, r *StateRow) {
			if len(r.Lifecycle.Evidence) == 0 {
				b.AppendNull()
				return
			}
			ev, _ := json.Marshal(r.Lifecycle.Evidence)
			b.(*array.StringBuilder).Append(string(ev))
		}},
	tsCol("next_check", func(r *StateRow) *time.Time { return &r.NextCheck }),
	intCol("consecutive_errors", func(r *StateRow) int { return r.ConsecutiveErrors }),
	boolCol("unverified", func(r *StateRow) bool { return r.Unverified }),
	tsCol("previous_registered_at", func(r *StateRow) *time.Time { return r.PreviousRegisteredAt }),
	tsCol("registered_at_changed_at", func(r *StateRow) *time.Time { return r.RegisteredAtChangedAt }),
	tsCol("decisive_since", func(r *StateRow) *time.Time { return r.DecisiveSince }),
	intCol("decisive_nights", func(r *StateRow) int { return r.DecisiveNights }),
	strCol("last_error", true, func(r *StateRow) string { return r.LastError }),
	tsCol("first_checked_at", func(r *StateRow) *time.Time { return &r.FirstCheckedAt }),
	tsCol("last_checked_at", func(r *StateRow) *time.Time { return &r.LastCheckedAt }),
	// The latest authoritative answer (RDAP, WHOIS) and the status API's
	// latest flags (issue 11): registered_at and expires_at above keep the
	// authoritative dates through status answers; these say how old they
	// are, and the plan reads auth_checked_at and auth_retry_at for a
	// status-API-first chain's refresh schedule.
	tsCol("auth_checked_at", func(r *StateRow) *time.Time { return r.AuthCheckedAt }),
	strCol("auth_source", true, func(r *StateRow) string { return string(r.AuthSource) }),
	strCol("auth_state", true, func(r *StateRow) string { return string(r.AuthState) }),
	tsCol("auth_registered_at", func(r *StateRow) *time.Time { return r.AuthRegisteredAt }),
	tsCol("auth_expires_at", func(r *StateRow) *time.Time { return r.AuthExpiresAt }),
	intCol("auth_failures", func(r *StateRow) int { return r.AuthFailures }),
	tsCol("auth_retry_at", func(r *StateRow) *time.Time { return r.AuthRetryAt }),
	strCol("status_source", true, func(r *StateRow) string { return string(r.StatusSource) }),
	listCol("status_flags", func(r *StateRow) []string { return r.StatusFlags }),
	tsCol("status_checked_at", func(r *StateRow) *time.Time { return r.StatusCheckedAt }),
}

// StateSchema is the Arrow schema of the states files (StateColumns).
var StateSchema = func() *arrow.Schema {
	fields := make([]arrow.Field, len(StateColumns))
	for i, c := range StateColumns {
		fields[i] = c.Arrow
	}
	return arrow.NewSchema(fields, nil)
}()

// strCol is a string column; nullEmpty writes "" as NULL.
func strCol(name string, nullEmpty bool, get func(*StateRow) string) StateColumn {
	return StateColumn{Name: name, SQL: "VARCHAR", Arrow: arrow.Field{Name: name, Type: arrow.BinaryTypes.String, Nullable: nullEmpty},
		put: func(b array.Builder, r *StateRow) {
			s := get(r)
			if nullEmpty && s == "" {
				b.AppendNull()
				return
			}
			b.(*array.StringBuilder).Append(s)
		}}
}

// listCol is a list of strings column; nil is NULL.
func listCol(name string, get func(*StateRow) []string) StateColumn {
	return StateColumn{Name: name, SQL: "VARCHAR[]", Arrow: arrow.Field{Name: name, Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
		put: func(b array.Builder, r *StateRow) {
			lb := b.(*array.ListBuilder)
			ss := get(r)
			if ss == nil {
				lb.AppendNull()
				return
			}
			lb.Append(true)
			vb := lb.ValueBuilder().(*array.StringBuilder)
			for _, s := range ss {
				vb.Append(s)
			}
		}}
}

// tsCol is a timestamp column (microseconds, UTC); nil and the zero time
// are NULL.
func tsCol(name string, get func(*StateRow) *time.Time) StateColumn {
	return StateColumn{Name: name, SQL: "TIMESTAMPTZ", Arrow: arrow.Field{Name: name, Type: tsUS, Nullable: true},
		put: func(b array.Builder, r *StateRow) {
			t := get(r)
			if t == nil || t.IsZero() {
				b.AppendNull()
				return
			}
			b.(*array.TimestampBuilder).Append(arrow.Timestamp(t.UTC().UnixMicro()))
		}}
}

func boolCol(name string, get func(*StateRow) bool) StateColumn {
	return StateColumn{Name: name, SQL: "BOOLEAN", Arrow: arrow.Field{Name: name, Type: arrow.FixedWidthTypes.Boolean},
		put: func(b array.Builder, r *StateRow) { b.(*array.BooleanBuilder).Append(get(r)) }}
}

func intCol(name string, get func(*StateRow) int) StateColumn {
	return StateColumn{Name: name, SQL: "INTEGER", Arrow: arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Int64},
		put: func(b array.Builder, r *StateRow) { b.(*array.Int64Builder).Append(int64(get(r))) }}
}

// StateScanner is what ExportStates reads: every entry of the cache from
// one consistent view (*Cache).
type StateScanner interface {
	ScanToken(ctx context.Context, fn func(Entry) error) (string, error)
}

// ExportStates writes every entry of the cache, in domain order and from
// one consistent view, to path as Parquet (StateSchema), atomically. It
// returns the rows written and the cache's change token of that view. It
// writes the states copy and `lapse cache export`'s file alike.
func ExportStates(ctx context.Context, c StateScanner, path string) (rows int, token string, err error) {
	rows, err = writeStates(path, func(add func(StateRow) error) error {
		var err error
		token, err = c.ScanToken(ctx, func(e Entry) error { return add(RowFromEntry(e)) })
		return err
	})
	return rows, token, err
}

// WriteStates writes rows (sorted by domain by the caller) to path as
// Parquet, atomically. The file holds no addresses.
func WriteStates(path string, rows []StateRow) error {
	_, err := writeStates(path, func(add func(StateRow) error) error {
		for _, r := range rows {
			if err := add(r); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}

// noClose hides Close from pqarrow, which would close the atomic file
// before it is committed.
type noClose struct{ io.Writer }

// writeStates writes the rows that each calls add with, in batches, to
// path as Parquet, atomically, and returns how many there were.
func writeStates(path string, each func(add func(StateRow) error) error) (int, error) {
	n := 0
	err := writeParquet(path, StateSchema, func(b *array.RecordBuilder, row func() error) error {
		return each(func(r StateRow) error {
			for i, c := range StateColumns {
				c.put(b.Field(i), &r)
			}
			n++
			return row()
		})
	})
	return n, err
}

// batchRows is how many rows writeParquet buffers before it writes them.
const batchRows = 64 << 10

// writeParquet writes the rows fill appends to b to path as Parquet of
// schema (zstd), atomically: fill calls row after each row it appended,
// which writes a batch every batchRows rows. The states files and the
// links files share it.
func writeParquet(path string, schema *arrow.Schema, fill func(b *array.RecordBuilder, row func() error) error) error {
	return atomicfile.WriteFrom(path, 0o640, func(w io.Writer) error {
		props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithMaxRowGroupLength(256<<10))
		fw, err := pqarrow.NewFileWriter(schema, noClose{w}, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
		if err != nil {
			return fmt.Errorf("parquet %s: %w", path, err)
		}
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		defer b.Release()
		flush := func() error {
			rec := b.NewRecordBatch()
			defer rec.Release()
			if err := fw.WriteBuffered(rec); err != nil {
				return fmt.Errorf("parquet %s: %w", path, err)
			}
			return nil
		}
		rows := 0
		err = fill(b, func() error {
			if rows++; rows%batchRows == 0 {
				return flush()
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := flush(); err != nil {
			return err
		}
		if err := fw.Close(); err != nil {
			return fmt.Errorf("parquet %s: %w", path, err)
		}
		return nil
	})
}
