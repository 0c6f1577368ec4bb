// Package emails reads account email addresses from a source (a PostgreSQL
// table, a CSV file or a JSONL file) as a stream of Arrow record batches of
// one fixed schema (Schema), never holding the whole source in memory.
//
// A Reader yields batches from Next until io.EOF; the caller releases each
// batch. Close is safe to call twice and stops any work in flight.
//
// File sources never fail on a bad line: a line is malformed when it cannot
// be split into the header's fields (broken quoting, wrong field count, bad
// JSON) or when its id, a boolean or a timestamp does not parse. Malformed
// lines are left out of the batches, counted, and the first MaxProblems are
// kept with their line numbers (Problems). The email text itself is never
// judged here: any string, even garbage, is passed on so normalization can
// mark it invalid, and nothing disappears silently. Strings are the
// source's bytes, UTF-8 or not (the snapshot marks and escapes those that
// are not).
//
// Ids must be unique: a row whose id an earlier row of the batches already
// had is left out and counted as malformed like a bad line (every source,
// the database included, whose rows are listed by their ordinal in the
// query's output instead of a line number). Rows left out for another
// reason, unverified ones included, do not take their id.
package emails

import (
	"context"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/extensions"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/lapse-dev/lapse/config"
)

// Column names of Schema.
const (
	ColEmailID    = "email_id"
	ColUserID     = "user_id"
	ColEmail      = "email"
	ColVerified   = "verified"
	ColPrimary    = "primary"
	ColCreated    = "created"
	ColVerifiedAt = "verified_at"
)

// Schema is the schema of every batch of a source whose user ids are text
// (files, and a database column of any type but uuid). created and
// verified_at are always present and null when the source has no such
// column; user_id is null when the source has no value for it.
var Schema = schemaWith(arrow.BinaryTypes.String)

// UUIDSchema is Schema with user_id as a UUID (16 bytes, Arrow's
// arrow.uuid extension type, Parquet's UUID logical type, DuckDB's UUID):
// the batches of a database whose user id column is a uuid.
var UUIDSchema = schemaWith(extensions.NewUUIDType())

func schemaWith(userID arrow.DataType) *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{
		{Name: ColEmailID, Type: arrow.PrimitiveTypes.Int64},
		{Name: ColUserID, Type: userID, Nullable: true},
		{Name: ColEmail, Type: arrow.BinaryTypes.String},
		{Name: ColVerified, Type: arrow.FixedWidthTypes.Boolean},
		{Name: ColPrimary, Type: arrow.FixedWidthTypes.Boolean},
		{Name: ColCreated, Type: arrow.FixedWidthTypes.Timestamp_us, Nullable: true},
		{Name: ColVerifiedAt, Type: arrow.FixedWidthTypes.Timestamp_us, Nullable: true},
	}, nil)
}

// DefaultBatchSize is the number of rows per batch when Options leaves it 0.
const DefaultBatchSize = 64 << 10

// MaxProblems is how many malformed lines are kept with their line numbers.
const MaxProblems = 100

// Reader streams a source as record batches of Schema (or UUIDSchema).
type Reader interface {
	// Schema is the schema of every batch, known before the first.
	Schema() *arrow.Schema
	// Next returns the next batch, or io.EOF after the last one. The
	// caller must Release the batch.
	Next(ctx context.Context) (arrow.RecordBatch, error)
	// Problems reports the malformed input seen so far.
	Problems() Problems
	// Close releases the source; it is safe to call twice.
	Close() error
}

// Problem is one malformed line of a file source, or one malformed row of
// the database (which has no lines: Row is its ordinal in the query's
// output, from 1).
type Problem struct {
	Line   int64  `json:"line,omitempty"`
	Row    int64  `json:"row,omitempty"`
	Reason string `json:"reason"`
}

// Problems counts what a source could not use.
type Problems struct {
	// Malformed is the number of malformed lines (or database rows);
	// First holds the first MaxProblems of them.
	Malformed int64     `json:"malformed"`
	First     []Problem `json:"first,omitempty"`
	// SkippedUnverified counts well-formed rows left out because they are
	// not verified (file sources without --all; the database filters them
	// in the query and does not count them).
	SkippedUnverified int64 `json:"skipped_unverified"`
}

func (p *Problems) add(line int64, reason string) { p.addProblem(Problem{Line: line, Reason: reason}) }

func (p *Problems) addProblem(pr Problem) {
	p.Malformed++
	if len(p.First) < MaxProblems {
		p.First = append(p.First, pr)
	}
}

// copy returns p with its own First.
func (p Problems) copy() Problems {
	p.First = append([]Problem(nil), p.First...)
	return p
}

// Options configure Open.
type Options struct {
	// All includes unverified addresses.
	All bool
	// BatchSize is the number of rows per batch (DefaultBatchSize if 0).
	BatchSize int
	Postgres  config.PostgresConfig
	CSV       config.FileConfig
	JSONL     config.FileConfig
	// Alloc allocates the batches' memory (memory.DefaultAllocator if nil).
	Alloc memory.Allocator
}

func (o Options) batchSize() int {
	if o.BatchSize <= 0 {
		return DefaultBatchSize
	}
	return o.BatchSize
}

func (o Options) alloc() memory.Allocator {
	if o.Alloc == nil {
		return memory.DefaultAllocator
	}
	return o.Alloc
}

// Kind is the type of a source (config.ParseSource reads it).
type Kind = config.SourceKind

// The source kinds.
const (
	KindPostgres = config.SourcePostgres
	KindCSV      = config.SourceCSV
	KindJSONL    = config.SourceJSONL
)

// SpecError is a source specification that is not one of the accepted forms.
type SpecError struct{ Spec string }

func (e *SpecError) Error() string {
	if e.Spec == "" {
		return "no source: set --source, source in lapse.toml or LAPSE_SOURCE to postgres://…, csv:PATH or jsonl:PATH"
	}
	return fmt.Sprintf("source %q: want postgres://…, postgresql://…, csv:PATH or jsonl:PATH", config.RedactSource(e.Spec))
}

// ConfigError is a source that does not match its configuration (a missing
// table, column or header field); it names the setting to change.
type ConfigError struct{ Msg string }

func (e *ConfigError) Error() string { return e.Msg }

// ParseSpec splits a source specification into its kind and target (the DSN
// or the file path).
func ParseSpec(spec string) (Kind, string, error) {
	kind, target := config.ParseSource(spec)
	if kind == "" || target == "" {
		return "", "", &SpecError{Spec: spec}
	}
	return kind, target, nil
}

// Open opens the source named by spec.
func Open(ctx context.Context, spec string, opts Options) (Reader, error) {
	kind, target, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	switch kind {
	case KindPostgres:
		return openPostgres(ctx, target, opts)
	case KindCSV:
		return openCSV(target, opts)
	default:
		return openJSONL(target, opts)
	}
}

// batchBuilder accumulates rows into batches of Schema or UUIDSchema.
type batchBuilder struct {
	rb         *array.RecordBuilder
	id         *array.Int64Builder
	user       *array.StringBuilder    // Schema
	userUUID   *extensions.UUIDBuilder // UUIDSchema
	email      *array.StringBuilder
	verified   *array.BooleanBuilder
	primary    *array.BooleanBuilder
	created    *array.TimestampBuilder
	verifiedAt *array.TimestampBuilder
	n, size    int
	// noCreated, noVerifiedAt: the source has no such column, so the
	// column is null in every row, appended at flush in one go.
	noCreated, noVerifiedAt bool
}

// row is one source row; byte slices are only borrowed until append returns.
type row struct {
	id                 int64
	userID, email      []byte
	userUUID           [16]byte // with UUIDSchema, instead of userID
	userNull           bool
	verified, primary  bool
	created, verAt     int64 // microseconds since the epoch, UTC
	hasCreated, hasVAt bool
}

func newBatchBuilder(mem memory.Allocator, schema *arrow.Schema, size int) *batchBuilder {
	rb := array.NewRecordBuilder(mem, schema)
	b := &batchBuilder{
		rb:         rb,
		id:         rb.Field(0).(*array.Int64Builder),
		email:      rb.Field(2).(*array.StringBuilder),
		verified:   rb.Field(3).(*array.BooleanBuilder),
		primary:    rb.Field(4).(*array.BooleanBuilder),
		created:    rb.Field(5).(*array.TimestampBuilder),
		verifiedAt: rb.Field(6).(*array.TimestampBuilder),
		size:       size,
	}
	switch u := rb.Field(1).(type) {
	case *array.StringBuilder:
		b.user = u
	case *extensions.UUIDBuilder:
		b.userUUID = u
	default:
		panic(fmt.Sprintf("emails: user_id of type %s", schema.Field(1).Type))
	}
	b.reserve()
	return b
}

func (b *batchBuilder) reserve() { b.rb.Reserve(b.size) }

func (b *batchBuilder) append(r *row) {
	b.id.Append(r.id)
	switch {
	case b.userUUID == nil && r.userNull:
		b.user.AppendNull()
	case b.userUUID == nil:
		b.user.BinaryBuilder.Append(r.userID)
	case r.userNull:
		b.userUUID.AppendNull()
	default:
		b.userUUID.AppendBytes(r.userUUID)
	}
	b.email.BinaryBuilder.Append(r.email)
	b.verified.Append(r.verified)
	b.primary.Append(r.primary)
	switch {
	case b.noCreated:
	case r.hasCreated:
		b.created.Append(arrow.Timestamp(r.created))
	default:
		b.created.AppendNull()
	}
	switch {
	case b.noVerifiedAt:
	case r.hasVAt:
		b.verifiedAt.Append(arrow.Timestamp(r.verAt))
	default:
		b.verifiedAt.AppendNull()
	}
	b.n++
}

func (b *batchBuilder) full() bool { return b.n >= b.size }

// flush returns the rows appended so far as a batch (nil when there are none).
func (b *batchBuilder) flush() arrow.RecordBatch {
	if b.n == 0 {
		return nil
	}
	// The next batch's strings are about as long as this one's: reserving
	// that up front saves the builders' repeated doubling and copying.
	emailLen := b.email.DataLen()
	userLen := 0
	if b.user != nil {
		userLen = b.user.DataLen()
	}
	if b.noCreated {
		b.created.AppendNulls(b.n)
	}
	if b.noVerifiedAt {
		b.verifiedAt.AppendNulls(b.n)
	}
	rec := b.rb.NewRecordBatch()
	b.n = 0
	b.reserve()
	if b.user != nil {
		b.user.ReserveData(userLen + userLen/8)
	}
	b.email.ReserveData(emailLen + emailLen/8)
	return rec
}

func (b *batchBuilder) release() { b.rb.Release() }

// errClosed is returned by Next after Close.
var errClosed = errors.New("emails: reader is closed")
