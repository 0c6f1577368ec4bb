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
)

// ExportSchema is the Arrow schema of Export's Parquet file: one row per
// cached domain. Times are TIMESTAMP(us, UTC), null when unknown.
var ExportSchema = arrow.NewSchema([]arrow.Field{
	{Name: "domain", Type: arrow.BinaryTypes.String},
	{Name: "state", Type: arrow.BinaryTypes.String},
	{Name: "statuses", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
	{Name: "registered_at", Type: arrow.FixedWidthTypes.Timestamp_us, Nullable: true},
	{Name: "expires_at", Type: arrow.FixedWidthTypes.Timestamp_us, Nullable: true},
	{Name: "last_changed", Type: arrow.FixedWidthTypes.Timestamp_us, Nullable: true},
	{Name: "delegated", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "source", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "checked_at", Type: arrow.FixedWidthTypes.Timestamp_us, Nullable: true},
	{Name: "as_of", Type: arrow.FixedWidthTypes.Timestamp_us, Nullable: true},
	// error is the latest lookup's error (Entry.LastError), null when it
	// succeeded.
	{Name: "error", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "corroborated", Type: arrow.FixedWidthTypes.Boolean},
	{Name: "evidence_json", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "next_check", Type: arrow.FixedWidthTypes.Timestamp_us, Nullable: true},
	{Name: "consecutive_errors", Type: arrow.PrimitiveTypes.Int32},
	{Name: "unverified", Type: arrow.FixedWidthTypes.Boolean},
	{Name: "previous_registered_at", Type: arrow.FixedWidthTypes.Timestamp_us, Nullable: true},
	{Name: "registered_at_changed_at", Type: arrow.FixedWidthTypes.Timestamp_us, Nullable: true},
	{Name: "first_checked_at", Type: arrow.FixedWidthTypes.Timestamp_us, Nullable: true},
	{Name: "last_checked_at", Type: arrow.FixedWidthTypes.Timestamp_us, Nullable: true},
	{Name: "decisive_since", Type: arrow.FixedWidthTypes.Timestamp_us, Nullable: true},
	{Name: "decisive_nights", Type: arrow.PrimitiveTypes.Int32},
}, nil)

// exportBatch is the number of rows per Arrow record (and Parquet row
// group): big enough to compress well, small enough to bound memory.
const exportBatch = 64 << 10

// Export writes every entry, in domain order and from one consistent view,
// as Parquet (zstd) to w. The caller makes the file atomic
// (internal/atomicfile).
func (c *Cache) Export(ctx context.Context, w io.Writer) error {
	_, err := c.ExportRows(ctx, w)
	return err
}

// ExportRows is Export that also returns the number of rows written.
func (c *Cache) ExportRows(ctx context.Context, w io.Writer) (int, error) {
	props := parquet.NewWriterProperties(
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithMaxRowGroupLength(exportBatch),
	)
	// The Parquet writer closes a sink that is an io.Closer; the caller
	// owns w (an atomic file still to be synced), so hide Close.
	fw, err := pqarrow.NewFileWriter(ExportSchema, struct{ io.Writer }{w}, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return 0, fmt.Errorf("cache export: %w", err)
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, ExportSchema)
	defer b.Release()
	rows, pending := 0, 0
	flush := func() error {
		if pending == 0 {
			return nil
		}
		rec := b.NewRecordBatch()
		defer rec.Release()
		pending = 0
		return fw.Write(rec)
	}
	err = c.Scan(ctx, func(e Entry) error {
		if err := appendEntry(b, e); err != nil {
			return err
		}
		rows++
		pending++
		if pending == exportBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if cerr := fw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("cache export: %w", err)
	}
	return rows, nil
}

func appendEntry(b *array.RecordBuilder, e Entry) error {
	lc := e.Lifecycle
	i := 0
	next := func() array.Builder { f := b.Field(i); i++; return f }
	next().(*array.StringBuilder).Append(e.Domain)
	next().(*array.StringBuilder).Append(string(lc.State))
	lb := next().(*array.ListBuilder)
	if lc.Statuses == nil {
		lb.AppendNull()
	} else {
		lb.Append(true)
		vb := lb.ValueBuilder().(*array.StringBuilder)
		for _, s := range lc.Statuses {
			vb.Append(s)
		}
	}
	appendTime(next(), lc.RegisteredAt)
	appendTime(next(), lc.ExpiresAt)
	appendTime(next(), lc.LastChanged)
	db := next().(*array.BooleanBuilder)
	if lc.Delegated == nil {
		db.AppendNull()
	} else {
		db.Append(*lc.Delegated)
	}
	appendString(next(), string(lc.Source))
	appendTime(next(), nonZero(lc.CheckedAt))
	appendTime(next(), nonZero(lc.AsOf))
	appendString(next(), e.LastError)
	next().(*array.BooleanBuilder).Append(lc.Corroborated)
	if lc.Evidence == nil {
		next().AppendNull()
	} else {
		ev, err := json.Marshal(lc.Evidence)
		if err != nil {
			return fmt.Errorf("evidence of %s: %w", e.Domain, err)
		}
		next().(*array.StringBuilder).Append(string(ev))
	}
	appendTime(next(), nonZero(e.NextCheck))
	next().(*array.Int32Builder).Append(int32(min(e.ConsecutiveErrors, 1<<31-1)))
	next().(*array.BooleanBuilder).Append(e.Unverified)
	appendTime(next(), e.PreviousRegisteredAt)
	appendTime(next(), e.RegisteredAtChangedAt)
	appendTime(next(), nonZero(e.FirstCheckedAt))
	appendTime(next(), nonZero(e.LastCheckedAt))
	appendTime(next(), e.DecisiveSince)
	next().(*array.Int32Builder).Append(int32(min(e.DecisiveNights, 1<<31-1)))
	return nil
}

func nonZero(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func appendTime(b array.Builder, t *time.Time) {
	tb := b.(*array.TimestampBuilder)
	if t == nil {
		tb.AppendNull()
		return
	}
	tb.Append(arrow.Timestamp(t.UTC().UnixMicro()))
}

func appendString(b array.Builder, s string) {
	sb := b.(*array.StringBuilder)
	if s == "" {
		sb.AppendNull()
		return
	}
	sb.Append(s)
}
