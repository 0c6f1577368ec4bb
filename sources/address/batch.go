package address

import (
	"hash/maphash"
	"math"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// hostCacheSize bounds the hosts a BatchNormalizer keeps (across its
// workers): big enough that a night's distinct hosts are each normalized
// once.
const hostCacheSize = 1 << 19

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
	index   hashIndex // raw host hash → ents index + 1
	ents    []hostEntry
	arena   []byte
	reasons []string
	// spill holds the hosts of a batch that would overflow the arena's
	// 32-bit offsets (gigabytes of hosts): correct, not fast.
	spill [][2]string
	// Every host misses the cache once, so the domains of the entries of
	// all the workers' caches are every domain of the snapshot (with
	// repeats: hosts share domains). kept holds those the cache no longer
	// does: the spilled hosts' and, when a full cache is emptied, its
	// entries'. A set per entry kept beside the cache was a second hash
	// lookup, mostly a cache miss, for every new host (measured: 8% of
	// the snapshot's CPU time).
	kept domainSet
}

func newHostCache(size int) *hostCache {
	return &hostCache{
		size: size,
		// Sized for a typical night's tail of custom domains: growing a
		// map rehashes everything it holds.
		index:   newHashIndex(min(size, 1<<16)),
		reasons: []string{""},
		kept:    domainSet{index: newHashIndex(0)},
	}
}

// startBatch empties a full cache, keeping its domains (hashed with
// seed); entries stay valid until the next call.
func (c *hostCache) startBatch(seed maphash.Seed) {
	// The arena bound keeps its uint32 offsets valid whatever the hosts'
	// lengths.
	if len(c.ents) >= c.size || len(c.arena) >= 1<<30 {
		for i := range c.ents {
			if e := &c.ents[i]; !e.spilled && e.domLen > 0 {
				c.kept.add(string(c.dom(e)), maphash.Bytes(seed, c.dom(e)))
			}
		}
		c.index.reset()
		c.ents, c.arena = c.ents[:0], c.arena[:0]
	}
	c.spill = c.spill[:0]
}

func (c *hostCache) get(raw string, hash uint64, norm *Normalizer, seed maphash.Seed) uint32 {
	v, ok := c.index.find(hash)
	i := uint32(v - 1)
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
		h, d, r = NormalizeHost(raw)
	}
	n := uint32(len(c.ents))
	if uint64(len(c.arena))+uint64(len(raw)+len(h)+len(d)) > arenaLimit {
		e := hostEntry{spilled: true, hostOff: uint32(len(c.spill))}
		c.spill = append(c.spill, [2]string{strings.Clone(h), strings.Clone(d)})
		if r != "" {
			e.reason = uint8(c.reasonIndex(r))
		}
		if d != "" {
			c.kept.add(d, maphash.String(seed, d))
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
	}
	if r != "" {
		e.reason = uint8(c.reasonIndex(r))
	}
	c.ents = append(c.ents, e)
	if !ok {
		c.index.insert(hash, uint64(n)+1)
	}
	return n
}

// hashIndex maps 64-bit hashes to non-zero values (a hostCache's entries,
// a domainSet's offsets): open addressing with linear probing, kept at
// most three quarters full, a slot's place taken from the hash's top bits
// (a worker's hosts all have the same hash modulo the workers). A lookup reads one slot where a Go map's reads a group's
// control word, then its slots: most of a night's hosts are a long tail of
// custom domains, so nearly every lookup of one is a cache miss (measured:
// the maps' lookups were a seventh of the snapshot's CPU time). The
// callers check a hit against their own bytes.
type hashIndex struct {
	slots []hashSlot
	shift uint // 64 - log2(len(slots))
	n     int
}

// hashSlot is one slot; val 0 is an empty slot.
type hashSlot struct{ hash, val uint64 }

func newHashIndex(hint int) hashIndex {
	x := hashIndex{}
	x.alloc(10)
	for len(x.slots)*3 < 4*hint {
		x.alloc(64 - x.shift + 1)
	}
	return x
}

func (x *hashIndex) alloc(bits uint) {
	x.slots, x.shift, x.n = make([]hashSlot, 1<<bits), 64-bits, 0
}

func (x *hashIndex) reset() {
	clear(x.slots)
	x.n = 0
}

func (x *hashIndex) find(h uint64) (uint64, bool) {
	mask := uint64(len(x.slots) - 1)
	for i := h >> x.shift; ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.val == 0 {
			return 0, false
		}
		if s.hash == h {
			return s.val, true
		}
	}
}

// insert adds h (not in the index) with val (not 0).
func (x *hashIndex) insert(h, val uint64) {
	if 4*(x.n+1) > 3*len(x.slots) {
		old := x.slots
		x.alloc(64 - x.shift + 1)
		for _, s := range old {
			if s.val != 0 {
				x.put(s)
			}
		}
	}
	x.put(hashSlot{hash: h, val: val})
}

func (x *hashIndex) put(s hashSlot) {
	mask := uint64(len(x.slots) - 1)
	for i := s.hash >> x.shift; ; i = (i + 1) & mask {
		if x.slots[i].val == 0 {
			x.slots[i] = s
			x.n++
			return
		}
	}
}

// each calls f with every hash and value of the index.
func (x *hashIndex) each(f func(h, val uint64)) {
	for _, s := range x.slots {
		if s.val != 0 {
			f(s.hash, s.val)
		}
	}
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
	return c.arena[e.hostOff : e.hostOff+e.hostLen], c.dom(e), c.reasons[e.reason]
}

// dom is the domain of e, an entry that did not spill.
func (c *hostCache) dom(e *hostEntry) []byte { return c.arena[e.domOff : e.domOff+e.domLen] }

// domainSet is a set of strings without pointers: hash → offset and length
// in its arena, and a map for the (vanishingly rare) hash collisions.
type domainSet struct {
	index hashIndex // hash → offset << 32 | length (never 0: no domain is empty)
	arena []byte
	extra map[string]struct{}
}

// add adds d, whose hash is h.
func (s *domainSet) add(d string, h uint64) {
	if d == "" {
		return // never a domain; its index value would be 0
	}
	if v, ok := s.index.find(h); ok {
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
	s.index.insert(h, uint64(len(s.arena))<<32|uint64(len(d)))
	s.arena = append(s.arena, d...)
}

func (s *domainSet) at(v uint64) []byte { return span(s.arena, v) }

// span is the bytes of arena at v, an offset << 32 | length.
func span(arena []byte, v uint64) []byte { return arena[v>>32 : v>>32+v&0xffffffff] }

// rowRef is what the split of one row found.
type rowRef struct {
	raw    string // the raw host (only until the lookup)
	hash   uint64
	part   uint8  // the worker owning the raw host, noPart if none
	reason string // for noPart rows
}

// BatchNormalizer adds the normalized host, the registrable domain and the
// invalid reason of each row's email to record batches (a snapshot's
// source batches), normalizing each batch's addresses on several
// goroutines, each with a pointer-free cache of the raw hosts it owns.
type BatchNormalizer struct {
	norm    *Normalizer // nil: each worker's cache only
	workers int
	schema  *arrow.Schema
	cols    BatchColumns
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

	counts BatchCounts
}

// BatchColumns are where a BatchNormalizer finds its inputs in a batch:
// user_id and email (strings; a value that is not UTF-8 is written
// escaped; a user_id of another type, such as a UUID, is passed on as it
// is) and verified (boolean).
type BatchColumns struct{ UserID, Email, Verified int }

// BatchCounts count the rows a BatchNormalizer saw: every address, the
// verified ones, those without a registrable domain (by reason), and the
// rows whose user_id or email held bytes that are not UTF-8.
type BatchCounts struct {
	Addresses, Verified, Invalid, NotUTF8 int64
	Reasons                               map[string]int64
}

// noPart marks a row whose address has no host to look up.
const noPart = 0xff

// NewBatchNormalizer returns a BatchNormalizer writing batches of schema
// (the input's columns, then host, domain and invalid_reason, nullable
// strings), normalizing on workers goroutines (1 to 64) through norm's
// cache, or directly when norm is nil.
func NewBatchNormalizer(mem memory.Allocator, norm *Normalizer, workers int, schema *arrow.Schema, cols BatchColumns) *BatchNormalizer {
	workers = min(max(workers, 1), 64)
	s := &BatchNormalizer{
		norm: norm, workers: workers, seed: maphash.MakeSeed(), schema: schema, cols: cols,
		host:    array.NewStringBuilder(mem),
		domain:  array.NewStringBuilder(mem),
		reason:  array.NewStringBuilder(mem),
		counts:  BatchCounts{Reasons: map[string]int64{}},
		notUTF8: make([]bool, workers),
		esc:     [2]*array.StringBuilder{array.NewStringBuilder(mem), array.NewStringBuilder(mem)},
	}
	s.owned = make([][][]uint32, workers)
	for c := range workers {
		s.caches = append(s.caches, newHostCache(hostCacheSize/workers))
		s.owned[c] = make([][]uint32, workers)
	}
	return s
}

// Counts are the rows normalized so far.
func (s *BatchNormalizer) Counts() BatchCounts { return s.counts }

// DistinctDomains counts the distinct registrable domains of the rows
// normalized so far.
func (s *BatchNormalizer) DistinctDomains() int64 {
	var n int64
	for range s.SortedDomains() {
		n++
	}
	return n
}

// Domains returns the distinct registrable domains of the rows normalized
// so far, sorted (byte order): the snapshot's domain list, without a pass
// over the rows.
func (s *BatchNormalizer) Domains() []string {
	var out []string
	for d := range s.SortedDomains() {
		out = append(out, string(d))
	}
	return out
}

// Release frees the builders' memory.
func (s *BatchNormalizer) Release() {
	s.host.Release()
	s.domain.Release()
	s.reason.Release()
	s.esc[0].Release()
	s.esc[1].Release()
}

// Normalize returns rec with the three normalized columns added; rec
// stays the caller's.
func (s *BatchNormalizer) Normalize(rec arrow.RecordBatch) arrow.RecordBatch {
	nrows := int(rec.NumRows())
	user, _ := rec.Column(s.cols.UserID).(*array.String) // nil: not text
	col := rec.Column(s.cols.Email).(*array.String)
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
				if user != nil && !utf8.ValidString(user.Value(i)) {
					notUTF8 = true
				}
				h, reason := Split(col.Value(i))
				if reason != "" {
					r.part, r.reason = noPart, reason
					if reason == ReasonInvalidUTF8 {
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
			hc.startBatch(s.seed)
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

	verified := rec.Column(s.cols.Verified).(*array.Boolean)
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
			s.counts.Invalid++
			s.counts.Reasons[reason]++
		}
		if verified.Value(i) {
			s.counts.Verified++
		}
		*r = rowRef{} // drop references into rec's buffers
	}
	s.counts.Addresses += int64(nrows)
	cols := make([]arrow.Array, 0, len(s.schema.Fields()))
	cols = append(cols, rec.Columns()...)
	if slices.Contains(s.notUTF8, true) {
		// Parquet strings must be UTF-8 (DuckDB refuses the file
		// otherwise, naming the value): the rare batch with other bytes
		// gets its two string columns rewritten, escaped.
		esc := s.escape(user, col)
		if esc[0] != nil {
			defer esc[0].Release()
			cols[s.cols.UserID] = esc[0]
		}
		defer esc[1].Release()
		cols[s.cols.Email] = esc[1]
	}
	hl, dl, rl := s.host.DataLen(), s.domain.DataLen(), s.reason.DataLen()
	h, d, rs := s.host.NewArray(), s.domain.NewArray(), s.reason.NewArray()
	// Reserve what this batch needed, so the next one does not grow the
	// builders' buffers by doubling.
	s.host.ReserveData(hl + hl/8)
	s.domain.ReserveData(dl + dl/8)
	s.reason.ReserveData(rl + rl/8)
	cols = append(cols, h, d, rs)
	out := array.NewRecordBatch(s.schema, cols, int64(nrows))
	h.Release()
	d.Release()
	rs.Release()
	return out
}

// escape returns the user_id and email columns with the values that are
// not UTF-8 escaped (AppendEscaped), counting their rows; a nil user_id
// (not text) stays nil.
func (s *BatchNormalizer) escape(cols ...*array.String) [2]arrow.Array {
	n := cols[1].Len()
	bad := make([]bool, n)
	var out [2]arrow.Array
	for k, col := range cols {
		if col == nil {
			continue
		}
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
				s.escBuf = AppendEscaped(s.escBuf[:0], v)
				b.BinaryBuilder.Append(s.escBuf)
				bad[i] = true
			}
		}
		out[k] = b.NewArray()
	}
	for _, x := range bad {
		if x {
			s.counts.NotUTF8++
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
