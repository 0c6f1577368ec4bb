package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/atomicfile"
	"github.com/lapse-dev/lapse/internal/night"
	pqsink "github.com/lapse-dev/lapse/sinks/parquet"
	"github.com/lapse-dev/lapse/sources/address"
	"github.com/lapse-dev/lapse/sources/emails"
)

// Columns the snapshot adds to the source's (emails.Schema).
const (
	ColHost          = "host"
	ColDomain        = "domain"
	ColInvalidReason = "invalid_reason"
)

// SnapshotSchema is the schema of emails.parquet: the source columns, then
// the normalized host, the registrable domain and the reason an address has
// none.
var SnapshotSchema = SnapshotSchemaOf(emails.Schema)

// SnapshotRowGroupRows caps the rows of a snapshot's row groups. DuckDB
// scans a Parquet file a row group per task, and the night scans the
// snapshot three times (classify's join and export, notify.csv): 1M
// addresses in 256k-row groups are four tasks, the last one small, so of
// two threads one reads half as many rows again as the other. In 64k-row
// groups the tasks even out (measured at 1M on two cores: classify's join
// 0.37-0.42 s with 256k, 0.29-0.32 s with 64k; its export 0.24-0.29 s and
// 0.20-0.22 s; the file 0.05% larger).
const SnapshotRowGroupRows = 64 << 10

// SnapshotSchemaOf is the schema of a snapshot of a source whose batches
// are of schema src (emails.Schema, or emails.UUIDSchema for a database
// whose user ids are a uuid column: user_id is then a Parquet UUID).
func SnapshotSchemaOf(src *arrow.Schema) *arrow.Schema {
	return arrow.NewSchema(append(append([]arrow.Field(nil), src.Fields()...),
		arrow.Field{Name: ColHost, Type: arrow.BinaryTypes.String, Nullable: true},
		arrow.Field{Name: ColDomain, Type: arrow.BinaryTypes.String, Nullable: true},
		arrow.Field{Name: ColInvalidReason, Type: arrow.BinaryTypes.String, Nullable: true},
	), nil)
}

// snapshotInputs are the source columns the normalizer reads.
var snapshotInputs = address.BatchColumns{
	UserID:   emails.Schema.FieldIndices(emails.ColUserID)[0],
	Email:    emails.Schema.FieldIndices(emails.ColEmail)[0],
	Verified: emails.Schema.FieldIndices(emails.ColVerified)[0],
}

// SnapshotBatchSize is the rows per batch when Read.BatchSize is 0: small
// enough that the batches in flight between the source, the normalizers
// and the Parquet encoder stay a few MB, large enough to amortize the
// per-batch work.
const SnapshotBatchSize = 16 << 10

// SnapshotOptions configure Snapshot.
type SnapshotOptions struct {
	// Date is the night, YYYY-MM-DD.
	Date string
	// Path is where the snapshot goes (night.Paths.Snapshot), ManifestPath
	// its manifest (night.Paths.SnapshotManifest), in the same folder.
	Path, ManifestPath string
	// DomainsPath, when set, receives the distinct registrable domains
	// (night.Paths.SnapshotDomains); never with Read.All, whose
	// unverified addresses' domains are no night's to plan.
	DomainsPath string
	// Source is postgres://…, csv:PATH or jsonl:PATH.
	Source string
	// Read configures the source (All, table and field mappings, batch size).
	Read emails.Options
	// Normalizer, when set, normalizes the hosts the stage's own per-worker
	// caches miss (through its cache); nil normalizes them directly.
	Normalizer *address.Normalizer
	// Workers normalizing in parallel (GOMAXPROCS if 0).
	Workers int
	// Version is the lapse version recorded in the manifest.
	Version string
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// Log is the stage's logger; the caller adds the date (With("date", D)).
	Log *slog.Logger
	// Progress hears of each batch's rows (Start(0): the total is not
	// known until the source ends); nil reports nothing.
	Progress Progress
	// Alloc allocates Arrow memory (memory.DefaultAllocator if nil).
	Alloc memory.Allocator
}

// SnapshotOptionsFromConfig fills SnapshotOptions from the configuration.
func SnapshotOptionsFromConfig(c config.Config, date string) SnapshotOptions {
	p := night.Dir(c.DataDir).Night(date)
	return SnapshotOptions{
		Date: date, Path: p.Snapshot(), ManifestPath: p.SnapshotManifest(), DomainsPath: p.SnapshotDomains(),
		Source: c.Source,
		Read:   emails.Options{All: c.All, Postgres: c.Postgres, CSV: c.CSV, JSONL: c.JSONL},
	}
}

// SnapshotRows are the counts of a snapshot.
type SnapshotRows struct {
	// Addresses is the rows in the snapshot; Verified and Invalid count
	// among them; Malformed counts source lines that could not be read
	// (not in the snapshot, listed in Problems); SkippedUnverified counts
	// rows a file source left out because they are not verified; Domains
	// is their distinct registrable domains.
	Addresses         int64 `json:"read"`
	Verified          int64 `json:"verified"`
	Invalid           int64 `json:"invalid"`
	Malformed         int64 `json:"malformed"`
	SkippedUnverified int64 `json:"skipped_unverified"`
	Domains           int64 `json:"distinct_domains"`
	// NotUTF8 counts rows whose user_id or email held bytes that are not
	// UTF-8: they are stored escaped (\xFF), and such an email is invalid
	// (invalid_utf8).
	NotUTF8 int64 `json:"not_utf8"`
}

// SnapshotManifest is manifest.json beside emails.parquet.
type SnapshotManifest struct {
	Date string `json:"date"`
	// Source is the source with any password redacted.
	Source string `json:"source"`
	All    bool   `json:"all"`
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
	Bytes  int64  `json:"bytes"`
	// DomainsFile is the distinct domains' file beside File and
	// DomainsSHA256 its sha256; empty when there is none (Read.All): a
	// reader trusts the file only when the two match.
	DomainsFile   string `json:"domains_file,omitempty"`
	DomainsSHA256 string `json:"domains_sha256,omitempty"`

	Rows           SnapshotRows     `json:"rows"`
	InvalidReasons map[string]int64 `json:"invalid_reasons"`
	// Problems are the first malformed source lines, by line number.
	Problems []emails.Problem `json:"problems"`

	Started      time.Time `json:"started"`
	Finished     time.Time `json:"finished"`
	LapseVersion string    `json:"lapse_version"`
}

// SnapshotResult is what Snapshot wrote.
type SnapshotResult struct {
	Path         string // emails.parquet
	ManifestPath string
	Manifest     SnapshotManifest
}

// Snapshot streams every address of the source into o.Path
// (snapshots/date=D/emails.parquet) with its host, domain and invalid
// reason, and writes o.ManifestPath beside it. Both files appear atomically; on any
// failure (or ctx cancel) the previous snapshot of that date stays as it
// was and no temp file is left.
func Snapshot(ctx context.Context, o SnapshotOptions) (SnapshotResult, error) {
	var res SnapshotResult
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Alloc == nil {
		o.Alloc = memory.DefaultAllocator
	}
	o.Read.Alloc = o.Alloc
	if o.Read.BatchSize == 0 {
		o.Read.BatchSize = SnapshotBatchSize
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.Progress == nil {
		o.Progress = NoProgress{}
	}
	if !night.Valid(o.Date) {
		return res, fmt.Errorf("%w: snapshot date %q: want YYYY-MM-DD", config.ErrConfig, o.Date)
	}
	m := SnapshotManifest{
		Date: o.Date, Source: config.RedactSource(o.Source), All: o.Read.All,
		File: filepath.Base(o.Path), Started: o.Now().UTC(), LapseVersion: o.Version,
		InvalidReasons: map[string]int64{}, Problems: []emails.Problem{},
	}
	src, err := emails.Open(ctx, o.Source, o.Read)
	if err != nil {
		return res, err
	}
	defer src.Close()

	dir := filepath.Dir(o.Path)
	_, statErr := os.Stat(dir)
	newDir := errors.Is(statErr, os.ErrNotExist)
	res.Path, res.ManifestPath = o.Path, o.ManifestPath
	committed := false
	defer func() {
		if !committed && newDir {
			os.Remove(dir) // only if empty: never a previous snapshot
		}
	}()
	schema := SnapshotSchemaOf(src.Schema())
	po := pqsink.Options{
		Mode: 0o600, Alloc: o.Alloc, RowGroupRows: SnapshotRowGroupRows,
		// domain too: a night has hundreds of thousands of them, so its
		// dictionary outgrows the page limit and falls back to plain after
		// costing a hash lookup per row (measured: plain+zstd is 40% faster
		// and the file no larger).
		Plain: []string{emails.ColEmailID, emails.ColUserID, emails.ColEmail, emails.ColCreated, emails.ColVerifiedAt, ColHost, ColDomain},
		// No night filters or joins on these. domain keeps its own,
		// which DuckDB may use in planning the classify's joins.
		NoStats: []string{emails.ColUserID, emails.ColEmail, ColHost},
		// Ids mostly grow: their deltas take a few bits each (measured on
		// 1M rows: 0.9 MB and 28 ms of zstd as plain, 0.08 MB and 6 ms).
		Delta: []string{emails.ColEmailID},
		// The text columns are most of the bytes: LZ4 compresses them in
		// two thirds of zstd's time, to 1.4x its size (measured on 1M
		// rows: email 121 ms and 5.7 MB with zstd, 80 ms and 7.9 MB with
		// LZ4; host and domain 75 ms and 3.3 MB, 52 ms and 4.6 MB each).
		LZ4: []string{emails.ColEmail, ColHost, ColDomain},
	}
	if src.Schema().Field(snapshotInputs.UserID).Type.ID() == arrow.EXTENSION {
		// A uuid's 16 bytes are random: zstd only spends time on them.
		po.Uncompressed = append(po.Uncompressed, emails.ColUserID)
	}
	w, err := pqsink.Create(res.Path, schema, po)
	if err != nil {
		return res, fmt.Errorf("snapshot: %w", err)
	}
	defer w.Abort()

	// The Parquet encoder runs on its own goroutine so that encoding one
	// batch overlaps normalizing the next.
	aw := writeAsync(w)
	defer aw.wait() // runs before w.Abort

	n := address.NewBatchNormalizer(o.Alloc, o.Normalizer, o.Workers, schema, snapshotInputs)
	defer n.Release()
	o.Progress.Start(0)
	defer o.Progress.Done()
	for {
		rec, err := src.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return res, err
		}
		rows := int(rec.NumRows())
		out := n.Normalize(rec)
		rec.Release()
		if !aw.send(out) {
			return res, fmt.Errorf("snapshot: %w", aw.wait())
		}
		o.Progress.Add(rows)
	}
	if err := aw.wait(); err != nil {
		return res, fmt.Errorf("snapshot: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	pr := src.Problems()
	c := n.Counts()
	m.Rows = SnapshotRows{Addresses: c.Addresses, Verified: c.Verified, Invalid: c.Invalid, NotUTF8: c.NotUTF8,
		Malformed: pr.Malformed, SkippedUnverified: pr.SkippedUnverified}
	m.InvalidReasons = c.Reasons
	if pr.First != nil {
		m.Problems = pr.First
	}
	// The domain list is sorted and written while the snapshot's last row
	// group is encoded and synced: the manifest, written after both,
	// vouches for each by its sha256, so a crash before it leaves files
	// no reader trusts whichever of the two was renamed first.
	var list chan domainListResult
	switch {
	case o.DomainsPath != "" && !o.Read.All:
		// Every row is verified here: the list is the domains counted.
		list = make(chan domainListResult, 1)
		go func() {
			r, err := writeDomainList(o.DomainsPath, n.SortedDomains(), o.Alloc)
			list <- domainListResult{r, err}
		}()
	case o.DomainsPath != "":
		os.Remove(o.DomainsPath) // an --all snapshot has none
		fallthrough
	default:
		m.Rows.Domains = n.DistinctDomains()
	}
	// waitList waits for the domain list, once.
	waitList := func() error {
		if list == nil {
			return nil
		}
		r := <-list
		list = nil
		if r.err != nil {
			return fmt.Errorf("snapshot: domains: %w", r.err)
		}
		m.Rows.Domains = r.res.Rows
		m.DomainsFile, m.DomainsSHA256 = filepath.Base(o.DomainsPath), r.res.SHA256
		return nil
	}
	defer waitList() // on an error below: never leave it writing

	// The manifest's temp file exists before the Parquet file is renamed
	// and is committed right after it: a crash in between leaves the new
	// Parquet file beside the old manifest, which its sha256 tells apart.
	mf, err := atomicfile.Create(res.ManifestPath, 0o600)
	if err != nil {
		return res, fmt.Errorf("snapshot: %w", err)
	}
	defer mf.Abort()
	pres, err := w.Commit()
	if err != nil {
		return res, fmt.Errorf("snapshot: %w", err)
	}
	committed = true
	if err := waitList(); err != nil {
		return res, err
	}
	m.SHA256, m.Bytes = pres.SHA256, pres.Bytes
	m.Finished = o.Now().UTC()
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return res, fmt.Errorf("snapshot manifest: %w", err)
	}
	if _, err := mf.Write(append(b, '\n')); err != nil {
		return res, fmt.Errorf("snapshot manifest: write %s: %w", res.ManifestPath, err)
	}
	if err := mf.Commit(); err != nil {
		return res, fmt.Errorf("snapshot manifest: %w", err)
	}
	res.Manifest = m
	if m.Rows.NotUTF8 > 0 {
		o.Log.Warn("snapshot: rows with bytes that are not UTF-8 in user_id or email, stored escaped as \\xHH (an email is invalid_utf8); fix the export",
			"rows", m.Rows.NotUTF8)
	}
	// No date here: the caller's logger has it (lapse run's and lapse
	// snapshot's both say With("date", …)).
	o.Log.Info("snapshot written", "rows", m.Rows.Addresses, "invalid", m.Rows.Invalid,
		"malformed", m.Rows.Malformed, "domains", m.Rows.Domains, "path", res.Path)
	return res, nil
}

// ReadSnapshotManifest reads the manifest of one night's snapshot
// (night.Paths.SnapshotManifest).
func ReadSnapshotManifest(p string) (SnapshotManifest, error) {
	var m SnapshotManifest
	b, err := os.ReadFile(p)
	if err != nil {
		return m, fmt.Errorf("snapshot manifest: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("snapshot manifest %s: %w", p, err)
	}
	return m, nil
}

// domainListSchema is the snapshot's domains file: one sorted column.
var domainListSchema = arrow.NewSchema([]arrow.Field{{Name: ColDomain, Type: arrow.BinaryTypes.String}}, nil)

type domainListResult struct {
	res pqsink.Result
	err error
}

// domainListChunk is the rows of one batch of the domain list: small
// enough that encoding the first overlaps merging the next.
const domainListChunk = 32 << 10

// writeDomainList writes domains (sorted, distinct) to path atomically.
// The list is written while the snapshot's last row group is committed
// and is the end of the stage: the merge of the sorted sets fills one
// batch while another goroutine encodes the previous one.
func writeDomainList(path string, domains iter.Seq[[]byte], alloc memory.Allocator) (pqsink.Result, error) {
	if alloc == nil {
		alloc = memory.DefaultAllocator
	}
	// LZ4 and no statistics: the list is read whole, and sorted domains
	// compress well anyway (measured on 341,000: 1.7 MB; merging and
	// writing them took 55-60 ms, against 95 ms with zstd and min/max).
	w, err := pqsink.Create(path, domainListSchema, pqsink.Options{Mode: 0o600, Alloc: alloc,
		Plain: []string{ColDomain}, LZ4: []string{ColDomain}, NoStats: []string{ColDomain}})
	if err != nil {
		return pqsink.Result{}, err
	}
	defer w.Abort()
	aw := writeAsync(w)
	defer aw.wait() // runs before w.Abort
	b := array.NewStringBuilder(alloc)
	defer b.Release()
	flush := func() bool {
		col := b.NewArray()
		defer col.Release()
		return aw.send(array.NewRecordBatch(domainListSchema, []arrow.Array{col}, int64(col.Len())))
	}
	for d := range domains {
		if b.Len() == 0 {
			// About what a chunk of domains takes: growing by doubling
			// copies it all again.
			b.Reserve(domainListChunk)
			b.ReserveData(domainListChunk * 16)
		}
		b.BinaryBuilder.Append(d)
		if b.Len() == domainListChunk && !flush() {
			break // the writer failed: wait says why
		}
	}
	if b.Len() > 0 {
		flush()
	}
	if err := aw.wait(); err != nil {
		return pqsink.Result{}, err
	}
	return w.Commit()
}

// asyncWriter writes batches to a Parquet writer on its own goroutine, so
// that encoding one overlaps making the next.
type asyncWriter struct {
	in     chan arrow.RecordBatch
	done   chan error
	failed chan struct{} // closed on the first write error
	once   sync.Once
	err    error
}

func writeAsync(w *pqsink.Writer) *asyncWriter {
	a := &asyncWriter{in: make(chan arrow.RecordBatch, 1), done: make(chan error, 1), failed: make(chan struct{})}
	go func() {
		var err error
		for rec := range a.in {
			if err == nil {
				if err = w.Write(rec); err != nil {
					close(a.failed)
				}
			}
			rec.Release()
		}
		a.done <- err
	}()
	return a
}

// send hands rec to the writer, whose it is now; false (rec released)
// once a write has failed.
func (a *asyncWriter) send(rec arrow.RecordBatch) bool {
	select {
	case a.in <- rec:
		return true
	case <-a.failed:
		rec.Release()
		return false
	}
}

// wait stops the writer after the batches sent and returns its first
// error; later calls return the same.
func (a *asyncWriter) wait() error {
	a.once.Do(func() {
		close(a.in)
		a.err = <-a.done
	})
	return a.err
}
