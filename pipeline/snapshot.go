package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	pqsink "github.com/lapse-dev/lapse/sinks/parquet"
	"github.com/lapse-dev/lapse/sources/address"
	"github.com/lapse-dev/lapse/sources/emails"
)

// Snapshot file names inside snapshots/date=D/.
const (
	SnapshotFile         = "emails.parquet"
	SnapshotManifestFile = "manifest.json"
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
var SnapshotSchema = arrow.NewSchema(append(append([]arrow.Field(nil), emails.Schema.Fields()...),
	arrow.Field{Name: ColHost, Type: arrow.BinaryTypes.String, Nullable: true},
	arrow.Field{Name: ColDomain, Type: arrow.BinaryTypes.String, Nullable: true},
	arrow.Field{Name: ColInvalidReason, Type: arrow.BinaryTypes.String, Nullable: true},
), nil)

// SnapshotBatchSize is the rows per batch when Read.BatchSize is 0: small
// enough that the batches in flight between the source, the normalizers
// and the Parquet encoder stay a few MB, large enough to amortize the
// per-batch work.
const SnapshotBatchSize = 16 << 10

// SnapshotOptions configure Snapshot.
type SnapshotOptions struct {
	DataDir string
	// Date is the night, YYYY-MM-DD.
	Date string
	// Source is postgres://…, csv:PATH or jsonl:PATH.
	Source string
	// Read configures the source (All, table and field mappings, batch size).
	Read emails.Options
	// Normalizer normalizes addresses; nil uses a fresh one with a large
	// host cache.
	Normalizer *address.Normalizer
	// Workers normalizing in parallel (GOMAXPROCS if 0).
	Workers int
	// Version is the lapse version recorded in the manifest.
	Version string
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	Log *slog.Logger
	// Progress, when set, is called after each batch with the rows so far.
	Progress func(rows int64)
	// Alloc allocates Arrow memory (memory.DefaultAllocator if nil).
	Alloc memory.Allocator
}

// SnapshotOptionsFromConfig fills SnapshotOptions from the configuration.
func SnapshotOptionsFromConfig(c config.Config, date string) SnapshotOptions {
	return SnapshotOptions{
		DataDir: c.DataDir,
		Date:    date,
		Source:  c.Source,
		Read:    emails.Options{All: c.All, Postgres: c.Postgres, CSV: c.CSV, JSONL: c.JSONL},
	}
}

// SnapshotRows are the counts of a snapshot.
type SnapshotRows struct {
	// Read is the rows in the snapshot; Verified and Invalid count among
	// them; Malformed counts source lines that could not be read (not in
	// the snapshot, listed in Problems); SkippedUnverified counts rows a
	// file source left out because they are not verified.
	Read              int64 `json:"read"`
	Verified          int64 `json:"verified"`
	Invalid           int64 `json:"invalid"`
	Malformed         int64 `json:"malformed"`
	SkippedUnverified int64 `json:"skipped_unverified"`
	DistinctDomains   int64 `json:"distinct_domains"`
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

// SnapshotDir is the folder of one night's snapshot.
func SnapshotDir(dataDir, date string) string {
	return filepath.Join(dataDir, "snapshots", "date="+date)
}

// Snapshot streams every address of the source into
// snapshots/date=D/emails.parquet with its host, domain and invalid reason,
// and writes manifest.json beside it. Both files appear atomically; on any
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
	if o.Normalizer == nil {
		// Big enough that a night's distinct hosts are each normalized once.
		o.Normalizer = address.NewNormalizer(1 << 19)
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if _, err := time.Parse(time.DateOnly, o.Date); err != nil {
		return res, fmt.Errorf("%w: snapshot date %q: want YYYY-MM-DD", config.ErrConfig, o.Date)
	}
	m := SnapshotManifest{
		Date: o.Date, Source: config.RedactSource(o.Source), All: o.Read.All,
		File: SnapshotFile, Started: o.Now().UTC(), LapseVersion: o.Version,
		InvalidReasons: map[string]int64{}, Problems: []emails.Problem{},
	}
	src, err := emails.Open(ctx, o.Source, o.Read)
	if err != nil {
		return res, err
	}
	defer src.Close()

	dir := SnapshotDir(o.DataDir, o.Date)
	_, statErr := os.Stat(dir)
	newDir := errors.Is(statErr, os.ErrNotExist)
	res.Path = filepath.Join(dir, SnapshotFile)
	res.ManifestPath = filepath.Join(dir, SnapshotManifestFile)
	committed := false
	defer func() {
		if !committed && newDir {
			os.Remove(dir) // only if empty: never a previous snapshot
		}
	}()
	w, err := pqsink.Create(res.Path, SnapshotSchema, pqsink.Options{
		Mode: 0o600, Alloc: o.Alloc,
		Plain:   []string{emails.ColEmailID, emails.ColUserID, emails.ColEmail, emails.ColCreated, emails.ColVerifiedAt, ColHost},
		NoStats: []string{emails.ColUserID, emails.ColEmail},
	})
	if err != nil {
		return res, fmt.Errorf("snapshot: %w", err)
	}
	defer w.Abort()

	// The Parquet encoder runs on its own goroutine so that encoding one
	// batch overlaps normalizing the next.
	toWrite := make(chan arrow.RecordBatch, 1)
	written := make(chan error, 1)
	failed := make(chan struct{}) // closed on the writer's first error
	go func() {
		var err error
		for rec := range toWrite {
			if err == nil {
				if err = w.Write(rec); err != nil {
					close(failed)
				}
			}
			rec.Release()
		}
		written <- err
	}()
	var stopOnce sync.Once
	var writeErr error
	stopWriter := func() error {
		stopOnce.Do(func() {
			close(toWrite)
			writeErr = <-written
		})
		return writeErr
	}
	defer stopWriter() // runs before w.Abort

	n := newNormalizeStage(o.Alloc, o.Normalizer, o.Workers)
	defer n.release()
	for {
		rec, err := src.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return res, err
		}
		out := n.run(rec)
		rec.Release()
		select {
		case toWrite <- out:
		case <-failed:
			out.Release()
			return res, fmt.Errorf("snapshot: %w", stopWriter())
		}
		if o.Progress != nil {
			o.Progress(n.rows.Read)
		}
	}
	if err := stopWriter(); err != nil {
		return res, fmt.Errorf("snapshot: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	pr := src.Problems()
	m.Rows = n.rows
	m.Rows.Malformed = pr.Malformed
	m.Rows.SkippedUnverified = pr.SkippedUnverified
	m.Rows.DistinctDomains = n.distinctDomains()
	m.InvalidReasons = n.reasons
	if pr.First != nil {
		m.Problems = pr.First
	}

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
	o.Log.Info("snapshot written", "date", o.Date, "rows", m.Rows.Read, "invalid", m.Rows.Invalid,
		"malformed", m.Rows.Malformed, "domains", m.Rows.DistinctDomains, "path", res.Path)
	return res, nil
}

// ReadSnapshotManifest reads the manifest of one night's snapshot.
func ReadSnapshotManifest(dataDir, date string) (SnapshotManifest, error) {
	var m SnapshotManifest
	p := filepath.Join(SnapshotDir(dataDir, date), SnapshotManifestFile)
	b, err := os.ReadFile(p)
	if err != nil {
		return m, fmt.Errorf("snapshot manifest: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("snapshot manifest %s: %w", p, err)
	}
	return m, nil
}

// normalizeStage adds host, domain and invalid_reason to source batches,
// normalizing each batch's addresses on several goroutines.
type normalizeStage struct {
	norm    *address.Normalizer
	workers int
	results []address.Result
	host    *array.StringBuilder
	domain  *array.StringBuilder
	reason  *array.StringBuilder

	rows    SnapshotRows
	seen    []map[string]struct{} // distinct domains, one set per worker
	reasons map[string]int64
}

func newNormalizeStage(mem memory.Allocator, norm *address.Normalizer, workers int) *normalizeStage {
	s := &normalizeStage{
		norm: norm, workers: workers,
		host:    array.NewStringBuilder(mem),
		domain:  array.NewStringBuilder(mem),
		reason:  array.NewStringBuilder(mem),
		seen:    make([]map[string]struct{}, workers),
		reasons: map[string]int64{},
	}
	for i := range s.seen {
		// Sized for a typical night's tail of custom domains: growing a
		// map rehashes everything it holds.
		s.seen[i] = make(map[string]struct{}, 1<<16)
	}
	return s
}

// distinctDomains merges the workers' sets.
func (s *normalizeStage) distinctDomains() int64 {
	n := 0
	for _, m := range s.seen {
		n += len(m)
	}
	all := make(map[string]struct{}, n)
	for _, m := range s.seen {
		for d := range m {
			all[d] = struct{}{}
		}
	}
	s.seen = s.seen[:1]
	return int64(len(all))
}

func (s *normalizeStage) release() {
	s.host.Release()
	s.domain.Release()
	s.reason.Release()
}

// run returns rec with the three normalized columns added.
func (s *normalizeStage) run(rec arrow.RecordBatch) arrow.RecordBatch {
	nrows := int(rec.NumRows())
	col := rec.Column(2).(*array.String)
	if cap(s.results) < nrows {
		s.results = make([]address.Result, nrows)
	}
	res := s.results[:nrows]
	chunk := max(1, (nrows+s.workers-1)/s.workers)
	var wg sync.WaitGroup
	for w, lo := 0, 0; lo < nrows; w, lo = w+1, lo+chunk {
		hi := min(lo+chunk, nrows)
		// Each worker counts distinct domains in its own set; the sets are
		// merged once at the end.
		seen := s.seen[w]
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				r := s.norm.Normalize(col.Value(i))
				if r.Domain != "" {
					if _, ok := seen[r.Domain]; !ok {
						seen[r.Domain] = struct{}{}
					}
				}
				res[i] = r
			}
		})
	}
	wg.Wait()

	verified := rec.Column(3).(*array.Boolean)
	s.host.Reserve(nrows)
	s.domain.Reserve(nrows)
	s.reason.Reserve(nrows)
	for i := range res {
		r := &res[i]
		appendOpt(s.host, r.Host)
		appendOpt(s.domain, r.Domain)
		appendOpt(s.reason, r.InvalidReason)
		if r.InvalidReason != "" {
			s.rows.Invalid++
			s.reasons[r.InvalidReason]++
		}
		if verified.Value(i) {
			s.rows.Verified++
		}
		*r = address.Result{} // drop references into rec's buffers
	}
	s.rows.Read += int64(nrows)
	cols := make([]arrow.Array, 0, len(SnapshotSchema.Fields()))
	cols = append(cols, rec.Columns()...)
	hl, dl, rl := s.host.DataLen(), s.domain.DataLen(), s.reason.DataLen()
	h, d, rs := s.host.NewArray(), s.domain.NewArray(), s.reason.NewArray()
	// Reserve what this batch needed, so the next one does not grow the
	// builders' buffers by doubling.
	s.host.ReserveData(hl + hl/8)
	s.domain.ReserveData(dl + dl/8)
	s.reason.ReserveData(rl + rl/8)
	cols = append(cols, h, d, rs)
	out := array.NewRecordBatch(SnapshotSchema, cols, int64(nrows))
	h.Release()
	d.Release()
	rs.Release()
	return out
}

func appendOpt(b *array.StringBuilder, s string) {
	if s == "" {
		b.AppendNull()
	} else {
		b.Append(s)
	}
}
