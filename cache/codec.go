package cache

import (
	"encoding/binary"
	"errors"
	"math"
	"time"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"

	"github.com/lapse-dev/lapse/lifecycle"
)

// encodingV3 is encodingV2 followed by the authoritative and status API
// facts of issue 11, in Entry order: AuthCheckedAt, AuthSource,
// AuthState, AuthRegisteredAt, AuthExpiresAt, AuthFailures, AuthRetryAt,
// StatusSource, StatusFlags, StatusCheckedAt. A V1 or V2 value decodes
// with them derived from its kept answer's evidence (deriveFacts), as
// the migration writes them.
const encodingV3 byte = 3

// encodingV2 is a compact binary encoding of Entry: a warm night reads
// every entry of the snapshot's domains, and decoding JSON was most of
// that (about 20 µs an entry against well under one). It holds exactly
// what the JSON of encodingV1 holds and decodes to the same Entry (nil and
// empty lists, nil and zero times, zone offsets, invalid UTF-8 replaced),
// so the version of a value never shows.
//
// Layout: fields in Entry order; strings as uvarint length and bytes;
// counts as uvarint; lists as uvarint length+1 (0 is nil); bools as one
// byte; *bool as one byte (0 nil, 1 false, 2 true); times as a presence
// byte for pointers (0 nil, 1 set), then varint Unix seconds, uvarint
// nanoseconds and varint zone offset in seconds.
const encodingV2 byte = 2

var errTruncated = errors.New("truncated value")

type encoder struct{ b []byte }

func (w *encoder) uint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *encoder) int(v int64)   { w.b = binary.AppendVarint(w.b, v) }

func (w *encoder) bool(v bool) {
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}

// str writes s as JSON would read it back: invalid UTF-8 bytes each
// become U+FFFD.
func (w *encoder) str(s string) {
	if !utf8.ValidString(s) {
		s = string([]rune(s))
	}
	w.uint(uint64(len(s)))
	w.b = append(w.b, s...)
}

func (w *encoder) strs(ss []string) {
	if ss == nil {
		w.uint(0)
		return
	}
	w.uint(uint64(len(ss)) + 1)
	for _, s := range ss {
		w.str(s)
	}
}

func (w *encoder) time(t time.Time) {
	_, off := t.Zone()
	w.int(t.Unix())
	w.uint(uint64(t.Nanosecond()))
	w.int(int64(off))
}

func (w *encoder) timePtr(t *time.Time) {
	if t == nil {
		w.b = append(w.b, 0)
		return
	}
	w.b = append(w.b, 1)
	w.time(*t)
}

func (w *encoder) boolPtr(v *bool) {
	switch {
	case v == nil:
		w.b = append(w.b, 0)
	case *v:
		w.b = append(w.b, 2)
	default:
		w.b = append(w.b, 1)
	}
}

// encodeV2 writes e in encodingV2 (its facts of issue 11 left out): the
// format of the lapse before, for the migration tests.
func encodeV2(e Entry) []byte {
	w := encoder{b: make([]byte, 0, 256)}
	w.b = append(w.b, encodingV2)
	w.v2(e)
	return w.b
}

func encodeV3(e Entry) []byte {
	w := encoder{b: make([]byte, 0, 320)}
	w.b = append(w.b, encodingV3)
	w.v2(e)
	w.timePtr(e.AuthCheckedAt)
	w.str(string(e.AuthSource))
	w.str(string(e.AuthState))
	w.timePtr(e.AuthRegisteredAt)
	w.timePtr(e.AuthExpiresAt)
	w.int(int64(e.AuthFailures))
	w.timePtr(e.AuthRetryAt)
	w.str(string(e.StatusSource))
	w.strs(e.StatusFlags)
	w.timePtr(e.StatusCheckedAt)
	return w.b
}

// v2 writes the fields of encodingV2.
func (w *encoder) v2(e Entry) {
	w.str(e.Domain)
	lc := e.Lifecycle
	w.str(lc.Domain)
	w.str(string(lc.State))
	w.strs(lc.Statuses)
	w.timePtr(lc.RegisteredAt)
	w.timePtr(lc.ExpiresAt)
	w.timePtr(lc.LastChanged)
	w.boolPtr(lc.Delegated)
	w.str(string(lc.Source))
	w.time(lc.CheckedAt)
	w.time(lc.AsOf)
	w.str(lc.Error)
	w.bool(lc.Corroborated)
	if lc.Evidence == nil {
		w.uint(0)
	} else {
		w.uint(uint64(len(lc.Evidence)) + 1)
		for _, ev := range lc.Evidence {
			w.str(string(ev.Source))
			w.str(string(ev.State))
			w.strs(ev.Statuses)
			w.timePtr(ev.RegisteredAt)
			w.timePtr(ev.ExpiresAt)
			w.boolPtr(ev.Delegated)
			w.str(ev.Server)
			w.time(ev.CheckedAt)
			w.str(ev.Error)
		}
	}
	w.str(e.LastError)
	w.int(int64(e.ConsecutiveErrors))
	w.time(e.FirstCheckedAt)
	w.time(e.LastCheckedAt)
	w.time(e.NextCheck)
	w.timePtr(e.KnownRegisteredAt)
	w.timePtr(e.PreviousRegisteredAt)
	w.timePtr(e.RegisteredAtChangedAt)
	w.timePtr(e.DecisiveSince)
	w.int(int64(e.DecisiveNights))
	w.bool(e.Unverified)
}

// decoder reads encodingV2; the first error sticks and later reads
// return zero values.
type decoder struct {
	b   []byte
	err error
}

func (r *decoder) fail() {
	if r.err == nil {
		r.err = errTruncated
	}
	r.b = nil
}

func (r *decoder) uint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *decoder) int() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *decoder) byte() byte {
	if len(r.b) == 0 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *decoder) bool() bool { return r.byte() == 1 }

func (r *decoder) str() string {
	n := r.uint()
	if n > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// state and source read the lifecycle enums without allocating for the
// known values (most of a night's strings).
func (r *decoder) state() lifecycle.State {
	b := r.raw()
	for _, s := range lifecycle.States {
		if string(s) == string(b) {
			return s
		}
	}
	return lifecycle.State(b)
}

var sources = []lifecycle.Source{"", lifecycle.SourceRDAP, lifecycle.SourceDomainr, lifecycle.SourceFastly, lifecycle.SourceWHOIS, lifecycle.SourceCache}

func (r *decoder) source() lifecycle.Source {
	b := r.raw()
	for _, s := range sources {
		if string(s) == string(b) {
			return s
		}
	}
	return lifecycle.Source(b)
}

// raw reads a string's bytes without copying them.
func (r *decoder) raw() []byte {
	n := r.uint()
	if n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	b := r.b[:n]
	r.b = r.b[n:]
	return b
}

func (r *decoder) strs() []string {
	n := r.uint()
	if n == 0 {
		return nil
	}
	if n-1 > uint64(len(r.b)) { // each string takes a byte at least
		r.fail()
		return nil
	}
	ss := make([]string, n-1)
	for i := range ss {
		ss[i] = r.str()
	}
	return ss
}

// time reads a time as encoding/json would parse its RFC 3339 text: UTC
// for a zero offset, else the local zone when it has that offset at that
// instant, else a fixed zone.
func (r *decoder) time() time.Time {
	sec := r.int()
	nsec := r.uint()
	off := r.int()
	if r.err != nil || nsec >= 1e9 || off < math.MinInt32 || off > math.MaxInt32 {
		r.fail()
		return time.Time{}
	}
	t := time.Unix(sec, int64(nsec))
	if off == 0 {
		return t.UTC()
	}
	if _, lo := t.In(time.Local).Zone(); lo == int(off) {
		return t.In(time.Local)
	}
	return t.In(time.FixedZone("", int(off)))
}

func (r *decoder) timePtr() *time.Time {
	switch r.byte() {
	case 0:
		return nil
	case 1:
		t := r.time()
		return &t
	}
	r.fail()
	return nil
}

func (r *decoder) boolPtr() *bool {
	switch r.byte() {
	case 0:
		return nil
	case 1:
		v := false
		return &v
	case 2:
		v := true
		return &v
	}
	r.fail()
	return nil
}

// decodeV2 reads an encodingV2 value without its version byte.
func decodeV2(b []byte) (Entry, error) {
	var e Entry
	if err := decodeV2Into(b, &e); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// decodeV2Into is decodeV2 into *e (an Entry is a few hundred bytes: a
// night's read copies none of them). On error *e is partly filled.
func decodeV2Into(b []byte, e *Entry) error {
	r := decoder{b: b}
	r.v2(e)
	return r.end()
}

// decodeV3 reads an encodingV3 value without its version byte.
func decodeV3(b []byte) (Entry, error) {
	var e Entry
	if err := decodeV3Into(b, &e); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// decodeV3Into is decodeV2Into for encodingV3.
func decodeV3Into(b []byte, e *Entry) error {
	r := decoder{b: b}
	r.v2(e)
	e.AuthCheckedAt = r.timePtr()
	e.AuthSource = r.source()
	e.AuthState = r.state()
	e.AuthRegisteredAt = r.timePtr()
	e.AuthExpiresAt = r.timePtr()
	e.AuthFailures = int(r.int())
	e.AuthRetryAt = r.timePtr()
	e.StatusSource = r.source()
	e.StatusFlags = r.strs()
	e.StatusCheckedAt = r.timePtr()
	return r.end()
}

// end is the error of a decode that read everything it should.
func (r *decoder) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = errors.New("trailing bytes")
	}
	return r.err
}

// v2 reads the fields of encodingV2 into a zeroed *e.
func (r *decoder) v2(e *Entry) {
	*e = Entry{}
	e.Domain = r.str()
	lc := &e.Lifecycle
	if d := r.raw(); string(d) == e.Domain {
		lc.Domain = e.Domain // the same name, one string
	} else {
		lc.Domain = string(d)
	}
	lc.State = r.state()
	lc.Statuses = r.strs()
	lc.RegisteredAt = r.timePtr()
	lc.ExpiresAt = r.timePtr()
	lc.LastChanged = r.timePtr()
	lc.Delegated = r.boolPtr()
	lc.Source = r.source()
	lc.CheckedAt = r.time()
	lc.AsOf = r.time()
	lc.Error = r.str()
	lc.Corroborated = r.bool()
	if n := r.uint(); n > 0 {
		if n-1 > uint64(len(r.b)) {
			r.fail()
		} else {
			lc.Evidence = make([]lifecycle.Evidence, n-1)
			for i := range lc.Evidence {
				ev := &lc.Evidence[i]
				ev.Source = r.source()
				ev.State = r.state()
				ev.Statuses = r.strs()
				ev.RegisteredAt = r.timePtr()
				ev.ExpiresAt = r.timePtr()
				ev.Delegated = r.boolPtr()
				ev.Server = r.str()
				ev.CheckedAt = r.time()
				ev.Error = r.str()
			}
		}
	}
	e.LastError = r.str()
	e.ConsecutiveErrors = int(r.int())
	e.FirstCheckedAt = r.time()
	e.LastCheckedAt = r.time()
	e.NextCheck = r.time()
	e.KnownRegisteredAt = r.timePtr()
	e.PreviousRegisteredAt = r.timePtr()
	e.RegisteredAtChangedAt = r.timePtr()
	e.DecisiveSince = r.timePtr()
	e.DecisiveNights = int(r.int())
	e.Unverified = r.bool()
}

// metaEncoding records that every value is in the current encoding
// (encodingV3), so Open scans for older values once only.
const metaEncoding = "m/encoding"

// migrateChunk bounds a migration transaction well under Badger's limit.
const migrateChunk = 1000

// migrate rewrites the values of a cache written by an earlier lapse (V1
// JSON, V2 without the facts of issue 11) in encodingV3, once: a warm night
// then never decodes JSON, and every entry carries its authoritative and
// status API facts (derived from its kept answer's evidence: an entry
// whose answers all came from a status API has no authoritative answer,
// so its refresh is due). Reading older values keeps working without it
// (a read-only Open does not migrate).
func (c *Cache) migrate() error {
	done := false
	err := c.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(metaEncoding))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			done = len(v) == 1 && v[0] >= encodingV3
			return nil
		})
	})
	if err != nil || done {
		return err
	}
	var old []string
	err = c.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(keyPrefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			err := item.Value(func(v []byte) error {
				if len(v) > 0 && v[0] < encodingV3 {
					old = append(old, string(item.Key()[len(keyPrefix):]))
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for start := 0; start < len(old); start += migrateChunk {
		part := old[start:min(start+migrateChunk, len(old))]
		err := c.db.Update(func(txn *badger.Txn) error {
			for _, d := range part {
				e, found, err := get(txn, d)
				if err != nil {
					return err
				}
				if found {
					if err := txn.Set(key(d), encodeV3(e)); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if len(old) > 0 {
		c.log.Info("cache entries rewritten in the current encoding", "component", "cache", "entries", len(old), "version", encodingV3, "dir", c.dir)
	}
	return c.db.Update(func(txn *badger.Txn) error {
		if len(old) > 0 {
			// The entries now carry more (their facts): a states copy
			// written before is no longer current.
			if err := setToken(txn); err != nil {
				return err
			}
		}
		return txn.Set([]byte(metaEncoding), []byte{encodingV3})
	})
}
