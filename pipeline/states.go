package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/lapse-dev/lapse/cache"
	"github.com/lapse-dev/lapse/internal/atomicfile"
	"github.com/lapse-dev/lapse/lifecycle"
)

// The cache's states as Parquet (DATA/states/states.parquet): every entry of
// the cache, with the change token it was written at beside it
// (states.json). Plan and classify read the domains' states from it with
// DuckDB instead of decoding every Badger entry every night; it is
// rewritten only when the cache changed since (cache.ChangeToken), which a
// warm night never does. Each night keeps the copy its classify read as
// observations/date=D/states.parquet (a hard link: the copy is replaced by
// rename, never written in place).

// StatesPath is the cache's states copy under dataDir.
func StatesPath(dataDir string) string { return filepath.Join(dataDir, "states", "states.parquet") }

// statesMeta is states.json: what the copy beside it holds.
type statesMeta struct {
	// Token is the cache's change token the copy was read at.
	Token     string    `json:"token"`
	Rows      int       `json:"rows"`
	WrittenAt time.Time `json:"written_at"`
}

func statesMetaPath(path string) string {
	return path[:len(path)-len(filepath.Ext(path))] + ".json"
}

// StatesCache is what the states copy needs of the cache (*cache.Cache).
type StatesCache interface {
	ChangeToken(ctx context.Context) (string, error)
	ScanToken(ctx context.Context, fn func(cache.Entry) error) (string, error)
}

// StatesCopy is a current copy of the cache's states.
type StatesCopy struct {
	Path string
	Rows int
	// Reused: the copy was already current; nothing was written.
	Reused bool
}

// CurrentStates returns the states copy at path, rewriting it first from
// the cache when the cache changed since it was written (or it is missing
// or unreadable). The copy is written before its states.json, so a crash
// between the two leaves a token that no longer matches: it is rewritten.
func CurrentStates(ctx context.Context, c StatesCache, path string) (StatesCopy, error) {
	out := StatesCopy{Path: path}
	tok, err := c.ChangeToken(ctx)
	if err != nil {
		return out, fmt.Errorf("states: %w", err)
	}
	if m, ok := readStatesMeta(path); ok && tok != "" && m.Token == tok {
		if _, err := os.Stat(path); err == nil {
			out.Rows, out.Reused = m.Rows, true
			return out, nil
		}
	}
	return rewriteStates(ctx, c, path)
}

// rewriteStates writes the states copy at path from the cache, then its
// states.json, whatever the token says.
func rewriteStates(ctx context.Context, c StatesCache, path string) (StatesCopy, error) {
	out := StatesCopy{Path: path}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return out, fmt.Errorf("states: %w", err)
	}
	n, read, err := ExportStates(ctx, c, path)
	if err != nil {
		return out, fmt.Errorf("states: %w", err)
	}
	b, err := json.Marshal(statesMeta{Token: read, Rows: n, WrittenAt: time.Now().UTC()})
	if err != nil {
		return out, err
	}
	if err := atomicfile.WriteFile(statesMetaPath(path), append(b, '\n'), 0o640); err != nil {
		return out, fmt.Errorf("states: %w", err)
	}
	out.Rows = n
	return out, nil
}

// ExportStates writes every entry of the cache, in domain order and from
// one consistent view, to path as Parquet (StateSchema), atomically. It
// returns the rows written and the cache's change token of that view. It
// writes the states copy and `lapse cache export`'s file alike.
func ExportStates(ctx context.Context, c StatesCache, path string) (rows int, token string, err error) {
	rows, err = writeStates(path, func(add func(StateRow) error) error {
		var err error
		token, err = c.ScanToken(ctx, func(e cache.Entry) error { return add(RowFromEntry(e)) })
		return err
	})
	return rows, token, err
}

func readStatesMeta(path string) (statesMeta, bool) {
	var m statesMeta
	b, err := os.ReadFile(statesMetaPath(path))
	if err != nil || json.Unmarshal(b, &m) != nil {
		return m, false
	}
	return m, true
}

// linkStates makes dst the same file as the states copy src (a hard link,
// replacing dst atomically), or a copy where links are not possible.
func linkStates(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return fmt.Errorf("states: %w", err)
	}
	tmp := dst + ".link"
	os.Remove(tmp)
	if err := os.Link(src, tmp); err == nil {
		if err := os.Rename(tmp, dst); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("states: %w", err)
		}
		return nil
	}
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("states: %w", err)
	}
	defer f.Close()
	err = atomicfile.WriteFrom(dst, 0o640, func(w io.Writer) error {
		_, err := io.Copy(w, f)
		return err
	})
	if err != nil {
		return fmt.Errorf("states: copy %s: %w", src, err)
	}
	return nil
}

// StateRow is one row of states.parquet and domains.parquet: a domain's
// lifecycle with its cache schedule and history. The column names are the
// contract with classify (pipeline/classify.go) and `lapse cache export`.
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
}

// RowFromEntry is a cache entry as a state row.
func RowFromEntry(e cache.Entry) StateRow {
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
	}
}

var tsUS = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}

// StateSchema is the Arrow schema of states.parquet and domains.parquet.
var StateSchema = arrow.NewSchema([]arrow.Field{
	{Name: "domain", Type: arrow.BinaryTypes.String},
	{Name: "state", Type: arrow.BinaryTypes.String},
	{Name: "statuses", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
	{Name: "registered_at", Type: tsUS, Nullable: true},
	{Name: "expires_at", Type: tsUS, Nullable: true},
	{Name: "last_changed", Type: tsUS, Nullable: true},
	{Name: "delegated", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "source", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "checked_at", Type: tsUS, Nullable: true},
	{Name: "as_of", Type: tsUS, Nullable: true},
	{Name: "error", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "corroborated", Type: arrow.FixedWidthTypes.Boolean},
	{Name: "evidence_json", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "next_check", Type: tsUS, Nullable: true},
	{Name: "consecutive_errors", Type: arrow.PrimitiveTypes.Int64},
	{Name: "unverified", Type: arrow.FixedWidthTypes.Boolean},
	{Name: "previous_registered_at", Type: tsUS, Nullable: true},
	{Name: "registered_at_changed_at", Type: tsUS, Nullable: true},
	{Name: "decisive_since", Type: tsUS, Nullable: true},
	{Name: "decisive_nights", Type: arrow.PrimitiveTypes.Int64},
	{Name: "last_error", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "first_checked_at", Type: tsUS, Nullable: true},
	{Name: "last_checked_at", Type: tsUS, Nullable: true},
}, nil)

// noClose hides Close from pqarrow, which would close the atomic file
// before it is committed.
type noClose struct{ io.Writer }

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

// writeStates writes the rows that each calls add with, in batches, to
// path as Parquet, atomically, and returns how many there were.
func writeStates(path string, each func(add func(StateRow) error) error) (int, error) {
	n := 0
	err := atomicfile.WriteFrom(path, 0o640, func(w io.Writer) error {
		props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithMaxRowGroupLength(256<<10))
		fw, err := pqarrow.NewFileWriter(StateSchema, noClose{w}, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
		if err != nil {
			return fmt.Errorf("parquet %s: %w", path, err)
		}
		b := array.NewRecordBuilder(memory.DefaultAllocator, StateSchema)
		defer b.Release()
		flush := func() error {
			rec := b.NewRecordBatch()
			defer rec.Release()
			return fw.WriteBuffered(rec)
		}
		err = each(func(r StateRow) error {
			appendRow(b, r)
			n++
			if n%(64<<10) == 0 {
				if err := flush(); err != nil {
					return fmt.Errorf("parquet %s: %w", path, err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := flush(); err != nil {
			return fmt.Errorf("parquet %s: %w", path, err)
		}
		if err := fw.Close(); err != nil {
			return fmt.Errorf("parquet %s: %w", path, err)
		}
		return nil
	})
	return n, err
}

func appendRow(b *array.RecordBuilder, r StateRow) {
	lc := r.Lifecycle
	str := func(i int, s string, nullEmpty bool) {
		f := b.Field(i).(*array.StringBuilder)
		if nullEmpty && s == "" {
			f.AppendNull()
			return
		}
		f.Append(s)
	}
	ts := func(i int, t *time.Time) {
		f := b.Field(i).(*array.TimestampBuilder)
		if t == nil || t.IsZero() {
			f.AppendNull()
			return
		}
		f.Append(arrow.Timestamp(t.UTC().UnixMicro()))
	}
	val := func(t time.Time) *time.Time { return &t }
	str(0, lc.Domain, false)
	str(1, string(lc.State), false)
	lb := b.Field(2).(*array.ListBuilder)
	if lc.Statuses == nil {
		lb.AppendNull()
	} else {
		lb.Append(true)
		vb := lb.ValueBuilder().(*array.StringBuilder)
		for _, s := range lc.Statuses {
			vb.Append(s)
		}
	}
	ts(3, lc.RegisteredAt)
	ts(4, lc.ExpiresAt)
	ts(5, lc.LastChanged)
	if lc.Delegated == nil {
		b.Field(6).AppendNull()
	} else {
		b.Field(6).(*array.BooleanBuilder).Append(*lc.Delegated)
	}
	str(7, string(lc.Source), true)
	ts(8, val(lc.CheckedAt))
	ts(9, val(lc.AsOf))
	str(10, lc.Error, true)
	b.Field(11).(*array.BooleanBuilder).Append(lc.Corroborated)
	if len(lc.Evidence) == 0 {
		b.Field(12).AppendNull()
	} else {
		ev, _ := json.Marshal(lc.Evidence)
		str(12, string(ev), false)
	}
	ts(13, val(r.NextCheck))
	b.Field(14).(*array.Int64Builder).Append(int64(r.ConsecutiveErrors))
	b.Field(15).(*array.BooleanBuilder).Append(r.Unverified)
	ts(16, r.PreviousRegisteredAt)
	ts(17, r.RegisteredAtChangedAt)
	ts(18, r.DecisiveSince)
	b.Field(19).(*array.Int64Builder).Append(int64(r.DecisiveNights))
	str(20, r.LastError, true)
	ts(21, val(r.FirstCheckedAt))
	ts(22, val(r.LastCheckedAt))
}
