package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

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
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.Progress == nil {
		o.Progress = NoProgress{}
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
		// domain too: a night has hundreds of thousands of them, so its
		// dictionary outgrows the page limit and falls back to plain after
		// costing a hash lookup per row (measured: plain+zstd is 40% faster
		// and the file no larger).
		Plain:   []string{emails.ColEmailID, emails.ColUserID, emails.ColEmail, emails.ColCreated, emails.ColVerifiedAt, ColHost, ColDomain},
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
		out := n.run(rec)
		rec.Release()
		select {
		case toWrite <- out:
		case <-failed:
			out.Release()
			return res, fmt.Errorf("snapshot: %w", stopWriter())
		}
		o.Progress.Add(rows)
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
	if m.Rows.NotUTF8 > 0 {
		o.Log.Warn("snapshot: rows with bytes that are not UTF-8 in user_id or email, stored escaped as \\xHH (an email is invalid_utf8); fix the export",
			"rows", m.Rows.NotUTF8)
	}
	// No date here: the caller's logger has it (lapse run's and lapse
	// snapshot's both say With("date", …)).
	o.Log.Info("snapshot written", "rows", m.Rows.Read, "invalid", m.Rows.Invalid,
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

// snapshotHostCache bounds the hosts the normalize stage keeps (across its
// workers): big enough that a night's distinct hosts are each normalized
// once.
const snapshotHostCache = 1 << 19

// hostEntry is the normalized form of one raw host, as offsets into its
// cache's arena: pointer-free, so the garbage collector never scans the
// hundreds of thousands of them.
type hostEntry struct {
	rawOff, rawLen   uint32
	hostOff, hostLen uint32
	domOff, domLen   uint32 // usually the tail of the host
	reason           uint8  // index into hostCache.reasons; 0 is none
	// spilled: host and domain are in hostCache.spill[hostOff] instead.
	spilled bool
}

// arenaLimit is the most a host cache's arena holds (its offsets are 32
// bits); a variable for the tests.
var arenaLimit uint64 = math.MaxUint32

// hostCache is one worker's host cache. Rows are routed to workers by a
// hash of their raw host, so each host is normalized by one worker only and
// the caches need no lock. Hosts are found by that hash and checked
// against the raw bytes kept in the arena; on a (vanishingly rare)
// collision the host is normalized again, never mixed up. When the cache
// holds size hosts it is emptied between batches.
type hostCache struct {
	size    int
	index   map[uint64]uint32 // raw host hash → ents
	ents    []hostEntry
	arena   []byte
	reasons []string
	// spill holds the hosts of a batch that would overflow the arena's
	// 32-bit offsets (gigabytes of hosts): correct, not fast.
	spill [][2]string
	// domains are the distinct domains of the hosts this worker
	// normalized: every host misses the cache at least once, so the union
	// of the workers' sets is every domain of the snapshot.
	domains domainSet
}

func newHostCache(size int) *hostCache {
	return &hostCache{
		size: size,
		// Sized for a typical night's tail of custom domains: growing a
		// map rehashes everything it holds.
		index:   make(map[uint64]uint32, min(size, 1<<16)),
		reasons: []string{""},
		domains: domainSet{index: make(map[uint64]uint64, min(size, 1<<16))},
	}
}

// startBatch empties a full cache; entries stay valid until the next call.
func (c *hostCache) startBatch() {
	// The arena bound keeps its uint32 offsets valid whatever the hosts'
	// lengths.
	if len(c.ents) >= c.size || len(c.arena) >= 1<<30 {
		clear(c.index)
		c.ents, c.arena = c.ents[:0], c.arena[:0]
	}
	c.spill = c.spill[:0]
}

func (c *hostCache) get(raw string, hash uint64, norm *address.Normalizer, seed maphash.Seed) uint32 {
	i, ok := c.index[hash]
	if ok {
		e := &c.ents[i]
		if string(c.arena[e.rawOff:e.rawOff+e.rawLen]) == raw {
			return i
		}
	}
	var h, d, r string
	if norm != nil {
		h, d, r = norm.Host(raw)
	} else {
		h, d, r = address.NormalizeHost(raw)
	}
	n := uint32(len(c.ents))
	if uint64(len(c.arena))+uint64(len(raw)+len(h)+len(d)) > arenaLimit {
		e := hostEntry{spilled: true, hostOff: uint32(len(c.spill))}
		c.spill = append(c.spill, [2]string{strings.Clone(h), strings.Clone(d)})
		if r != "" {
			e.reason = uint8(c.reasonIndex(r))
		}
		if d != "" {
			c.domains.add(d, maphash.String(seed, d))
		}
		c.ents = append(c.ents, e)
		return n
	}
	e := hostEntry{rawOff: uint32(len(c.arena)), rawLen: uint32(len(raw))}
	c.arena = append(c.arena, raw...)
	if h == raw {
		e.hostOff, e.hostLen = e.rawOff, e.rawLen
	} else {
		e.hostOff, e.hostLen = uint32(len(c.arena)), uint32(len(h))
		c.arena = append(c.arena, h...)
	}
	if d != "" {
		e.domLen = uint32(len(d))
		if strings.HasSuffix(h, d) {
			e.domOff = e.hostOff + e.hostLen - e.domLen
		} else {
			e.domOff = uint32(len(c.arena))
			c.arena = append(c.arena, d...)
		}
		c.domains.add(d, maphash.String(seed, d))
	}
	if r != "" {
		e.reason = uint8(c.reasonIndex(r))
	}
	c.ents = append(c.ents, e)
	if !ok {
		c.index[hash] = n
	}
	return n
}

func (c *hostCache) reasonIndex(r string) int {
	for i, x := range c.reasons {
		if x == r {
			return i
		}
	}
	c.reasons = append(c.reasons, r)
	return len(c.reasons) - 1
}

// host returns entry i's host, domain and reason ("" for none).
func (c *hostCache) host(i uint32) (host, domain []byte, reason string) {
	e := &c.ents[i]
	if e.spilled {
		sp := c.spill[e.hostOff]
		return []byte(sp[0]), []byte(sp[1]), c.reasons[e.reason]
	}
	return c.arena[e.hostOff : e.hostOff+e.hostLen], c.arena[e.domOff : e.domOff+e.domLen], c.reasons[e.reason]
}

// domainSet is a set of strings without pointers: hash → offset and length
// in its arena, and a map for the (vanishingly rare) hash collisions.
type domainSet struct {
	index map[uint64]uint64
	arena []byte
	extra map[string]struct{}
}

// add adds d, whose hash is h.
func (s *domainSet) add(d string, h uint64) {
	if v, ok := s.index[h]; ok {
		if string(s.at(v)) != d {
			if s.extra == nil {
				s.extra = map[string]struct{}{}
			}
			s.extra[d] = struct{}{}
		}
		return
	}
	if uint64(len(s.arena))+uint64(len(d)) > math.MaxUint32 {
		// Offsets would overflow: keep the rest the slow way.
		if s.extra == nil {
			s.extra = map[string]struct{}{}
		}
		s.extra[d] = struct{}{}
		return
	}
	s.index[h] = uint64(len(s.arena))<<32 | uint64(len(d))
	s.arena = append(s.arena, d...)
}

func (s *domainSet) at(v uint64) []byte { return s.arena[v>>32 : v>>32+v&0xffffffff] }

func (s *domainSet) has(d []byte, h uint64) bool {
	if v, ok := s.index[h]; ok && string(s.at(v)) == string(d) {
		return true
	}
	_, ok := s.extra[string(d)]
	return ok
}

// each calls f with every domain of the set and its hash.
func (s *domainSet) each(seed maphash.Seed, f func(d []byte, h uint64)) {
	for h, v := range s.index {
		f(s.at(v), h)
	}
	for d := range s.extra {
		f([]byte(d), maphash.String(seed, d))
	}
}

// rowRef is what the split of one row found.
type rowRef struct {
	raw    string // the raw host (only until the lookup)
	hash   uint64
	part   uint8  // the worker owning the raw host, noPart if none
	reason string // for noPart rows
}

// normalizeStage adds host, domain and invalid_reason to source batches,
// normalizing each batch's addresses on several goroutines.
type normalizeStage struct {
	norm    *address.Normalizer // nil: each worker's cache only
	workers int
	seed    maphash.Seed
	caches  []*hostCache
	refs    []rowRef
	// owned[c][w] lists the rows of chunk c whose host worker w owns;
	// the worker then overwrites each with the row's entry in its cache.
	// In each phase a goroutine writes only its own lists, never memory
	// another core is using (writing results into refs would make the
	// workers fight over its cache lines).
	owned  [][][]uint32
	host   *array.StringBuilder
	domain *array.StringBuilder
	reason *array.StringBuilder
	// notUTF8[c]: chunk c has a user_id or email that is not UTF-8.
	notUTF8 []bool
	esc     [2]*array.StringBuilder // their escaped columns
	escBuf  []byte

	rows    SnapshotRows
	reasons map[string]int64
}

// noPart marks a row whose address has no host to look up.
const noPart = 0xff

func newNormalizeStage(mem memory.Allocator, norm *address.Normalizer, workers int) *normalizeStage {
	workers = min(max(workers, 1), 64)
	s := &normalizeStage{
		norm: norm, workers: workers, seed: maphash.MakeSeed(),
		host:    array.NewStringBuilder(mem),
		domain:  array.NewStringBuilder(mem),
		reason:  array.NewStringBuilder(mem),
		reasons: map[string]int64{},
		notUTF8: make([]bool, workers),
		esc:     [2]*array.StringBuilder{array.NewStringBuilder(mem), array.NewStringBuilder(mem)},
	}
	s.owned = make([][][]uint32, workers)
	for c := range workers {
		s.caches = append(s.caches, newHostCache(snapshotHostCache/workers))
		s.owned[c] = make([][]uint32, workers)
	}
	return s
}

// distinctDomains counts the union of the workers' domain sets.
func (s *normalizeStage) distinctDomains() int64 {
	var n int64
	for w, c := range s.caches {
		c.domains.each(s.seed, func(d []byte, h uint64) {
			for _, o := range s.caches[:w] {
				if o.domains.has(d, h) {
					return
				}
			}
			n++
		})
	}
	return n
}

func (s *normalizeStage) release() {
	s.host.Release()
	s.domain.Release()
	s.reason.Release()
	s.esc[0].Release()
	s.esc[1].Release()
}

// run returns rec with the three normalized columns added.
func (s *normalizeStage) run(rec arrow.RecordBatch) arrow.RecordBatch {
	nrows := int(rec.NumRows())
	user := rec.Column(1).(*array.String)
	col := rec.Column(2).(*array.String)
	if cap(s.refs) < nrows {
		s.refs = make([]rowRef, nrows)
	}
	refs := s.refs[:nrows]
	// First the rows are split into local part and raw host, in chunks;
	// then each worker looks up the hosts it owns (by hash) in its own
	// cache.
	chunk := max(1, (nrows+s.workers-1)/s.workers)
	var wg sync.WaitGroup
	for c := range s.workers {
		lo, hi := min(c*chunk, nrows), min((c+1)*chunk, nrows)
		owned := s.owned[c]
		wg.Go(func() {
			for w := range owned {
				owned[w] = owned[w][:0]
			}
			notUTF8 := false
			for i := lo; i < hi; i++ {
				r := &refs[i]
				// The source passes its bytes on as they are; Split
				// finds an email's (invalid_utf8).
				if !utf8.ValidString(user.Value(i)) {
					notUTF8 = true
				}
				h, reason := address.Split(col.Value(i))
				if reason != "" {
					r.part, r.reason = noPart, reason
					if reason == address.ReasonInvalidUTF8 {
						notUTF8 = true
					}
					continue
				}
				r.raw, r.hash = h, maphash.String(s.seed, h)
				r.part = uint8(r.hash % uint64(s.workers))
				owned[r.part] = append(owned[r.part], uint32(i))
			}
			s.notUTF8[c] = notUTF8
		})
	}
	wg.Wait()
	for w, hc := range s.caches {
		wg.Go(func() {
			hc.startBatch()
			for c := range s.owned {
				rows := s.owned[c][w]
				for k, i := range rows {
					r := &refs[i]
					rows[k] = hc.get(r.raw, r.hash, s.norm, s.seed)
				}
			}
		})
	}
	wg.Wait()

	verified := rec.Column(3).(*array.Boolean)
	s.host.Reserve(nrows)
	s.domain.Reserve(nrows)
	s.reason.Reserve(nrows)
	var next [64]int // per worker: the next of its entries in this chunk
	for i := range refs {
		if i%chunk == 0 {
			clear(next[:])
		}
		r := &refs[i]
		var host, domain []byte
		reason := r.reason
		if w := r.part; w != noPart {
			host, domain, reason = s.caches[w].host(s.owned[i/chunk][w][next[w]])
			next[w]++
		}
		appendOpt(s.host, host)
		appendOpt(s.domain, domain)
		if reason == "" {
			s.reason.AppendNull()
		} else {
			s.reason.Append(reason)
			s.rows.Invalid++
			s.reasons[reason]++
		}
		if verified.Value(i) {
			s.rows.Verified++
		}
		*r = rowRef{} // drop references into rec's buffers
	}
	s.rows.Read += int64(nrows)
	cols := make([]arrow.Array, 0, len(SnapshotSchema.Fields()))
	cols = append(cols, rec.Columns()...)
	if slices.Contains(s.notUTF8, true) {
		// Parquet strings must be UTF-8 (DuckDB refuses the file
		// otherwise, naming the value): the rare batch with other bytes
		// gets its two string columns rewritten, escaped.
		esc := s.escape(user, col)
		defer esc[0].Release()
		defer esc[1].Release()
		cols[1], cols[2] = esc[0], esc[1]
	}
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

// escape returns the user_id and email columns with the values that are
// not UTF-8 escaped (address.AppendEscaped), counting their rows.
func (s *normalizeStage) escape(cols ...*array.String) [2]arrow.Array {
	n := cols[0].Len()
	bad := make([]bool, n)
	var out [2]arrow.Array
	for k, col := range cols {
		b := s.esc[k]
		b.Reserve(n)
		b.ReserveData(len(col.ValueBytes()) + len(col.ValueBytes())/8)
		for i := range n {
			v := col.Value(i)
			switch {
			case col.IsNull(i):
				b.AppendNull()
			case utf8.ValidString(v):
				b.Append(v)
			default:
				s.escBuf = address.AppendEscaped(s.escBuf[:0], v)
				b.BinaryBuilder.Append(s.escBuf)
				bad[i] = true
			}
		}
		out[k] = b.NewArray()
	}
	for _, x := range bad {
		if x {
			s.rows.NotUTF8++
		}
	}
	return out
}

func appendOpt(b *array.StringBuilder, v []byte) {
	if len(v) == 0 {
		b.AppendNull()
	} else {
		b.BinaryBuilder.Append(v)
	}
}
