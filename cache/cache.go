package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sources/address"
	"github.com/lapse-dev/lapse/sources/status"
)

// ErrLocked is returned (wrapped, with the folder in the message) by Open
// when another process holds the cache.
var ErrLocked = errors.New("cache is in use by another lapse process")

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("cache is closed")

// ErrNotExist is returned by a read-only Open of a cache that was never
// written.
var ErrNotExist = errors.New("cache does not exist")

// DefaultDropAfter is how long GC keeps an entry that was not looked up:
// a domain no snapshot names any more stops being planned, and its entry
// ages out.
const DefaultDropAfter = 180 * Day

// Options configure Open. The zero value is usable.
type Options struct {
	// Now is the clock (time.Now when nil); tests and the simulator move it.
	Now func() time.Time
	// Logger receives Badger's warnings and errors (discarded when nil).
	Logger *slog.Logger
	// ReadOnly opens the cache for reading; several read-only processes may
	// share it, but not with a writer.
	ReadOnly bool
	// DropAfter: GC drops entries whose latest lookup is older than this
	// (DefaultDropAfter when 0; negative never drops).
	DropAfter time.Duration
}

// Entry is what the cache holds for one registrable domain.
type Entry struct {
	Domain string `json:"domain"`
	// Lifecycle is the latest known answer (state other than unknown) when
	// there is one, so the policy never mistakes a failed lookup for a
	// fresh verdict; otherwise the latest (unknown) answer.
	Lifecycle lifecycle.Lifecycle `json:"lifecycle"`
	// LastError is the error of the latest lookup, "" when it succeeded.
	LastError         string    `json:"last_error"`
	ConsecutiveErrors int       `json:"consecutive_errors"`
	FirstCheckedAt    time.Time `json:"first_checked_at"`
	LastCheckedAt     time.Time `json:"last_checked_at"`
	NextCheck         time.Time `json:"next_check"`
	// KnownRegisteredAt is the latest registered_at any answer gave, kept
	// across answers without one (available), so a registration after a
	// lapse is seen as a change.
	KnownRegisteredAt *time.Time `json:"known_registered_at"`
	// PreviousRegisteredAt is registered_at before it last changed (the
	// re-registration signal); RegisteredAtChangedAt is when lapse saw it.
	PreviousRegisteredAt  *time.Time `json:"previous_registered_at"`
	RegisteredAtChangedAt *time.Time `json:"registered_at_changed_at"`
	// DecisiveSince and DecisiveNights: the first time and the number of
	// nights of consecutive known answers with a decisive state (available,
	// pending_delete, redemption), for the "confirmed by a second night"
	// rule. A failed lookup neither breaks nor extends the run.
	DecisiveSince  *time.Time `json:"decisive_since"`
	DecisiveNights int        `json:"decisive_nights"`
	// Unverified: the addresses on the domain were un-verified, so an
	// available domain is re-checked weekly instead of nightly. Cleared when
	// the name is registered again.
	Unverified bool `json:"unverified"`

	// The authoritative facts (issue 11), kept beside the latest state: a
	// status-API-first chain ends on the status API's "active", which
	// carries no dates, so the latest answer of RDAP or WHOIS is kept
	// apart with its own schedule (Refresh). AuthCheckedAt is when it
	// answered (nil: never), AuthSource and AuthState what it said, and
	// AuthRegisteredAt and AuthExpiresAt the dates it gave (nil when it
	// gave none). AuthFailures counts the consecutive lookups that asked
	// RDAP/WHOIS and got no answer from them; AuthRetryAt is when the
	// refresh may be tried again after them (1, 2, 4, then 7 nights).
	AuthCheckedAt    *time.Time       `json:"auth_checked_at"`
	AuthSource       lifecycle.Source `json:"auth_source"`
	AuthState        lifecycle.State  `json:"auth_state"`
	AuthRegisteredAt *time.Time       `json:"auth_registered_at"`
	AuthExpiresAt    *time.Time       `json:"auth_expires_at"`
	AuthFailures     int              `json:"auth_failures"`
	AuthRetryAt      *time.Time       `json:"auth_retry_at"`
	// The status API's latest answer (Domainr, Fastly): its source, its
	// flags (status.NormalFlags: lowercase, sorted) and when. The chain
	// compares tonight's flags with them (status.Want.PrevFlags).
	StatusSource    lifecycle.Source `json:"status_source"`
	StatusFlags     []string         `json:"status_flags"`
	StatusCheckedAt *time.Time       `json:"status_checked_at"`
}

// Cache is the Badger-backed cache of domain lifecycles. It is safe for
// concurrent use; every Record is one Badger transaction, so a cancelled
// run leaves the cache consistent.
type Cache struct {
	dir       string
	db        *badger.DB
	now       func() time.Time
	log       *slog.Logger
	dropAfter time.Duration
	writable  bool

	mu     sync.RWMutex // guards closed against use during Close
	closed bool
}

// keyPrefix namespaces domain entries so other key spaces can be added.
const keyPrefix = "d/"

// encodingV1 is the first byte of a value holding the JSON encoding of
// Entry, lapse's first. Values are now written in encodingV3 (codec.go);
// decode reads V1, V2 and V3, and a writable Open rewrites older values
// once (migrate).
const encodingV1 byte = 1

// Open opens (creating when writable) the cache in dir. A second writer, or
// a writer beside readers, gets an error that Is ErrLocked and says
// "cache at DIR is in use by another lapse process".
func Open(dir string, opts Options) (*Cache, error) {
	if dir == "" {
		return nil, errors.New("open cache: empty folder name")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.ReadOnly {
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("cache at %s: %w yet (a resolve or check run creates it)", dir, ErrNotExist)
		}
	} else if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create cache folder %s: %w", dir, err)
	}
	bo := badger.DefaultOptions(dir).
		WithReadOnly(opts.ReadOnly).
		WithLogger(badgerLogger{logger}).
		WithLoggingLevel(badger.WARNING).
		// A small footprint: lapse keeps at most a few million small
		// values; Badger's defaults (64 MiB memtables ×5, 256 MiB block
		// cache, 1 GiB value log files) are sized for servers.
		WithMemTableSize(16 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(4 << 20).
		WithValueLogFileSize(64 << 20).
		WithNumVersionsToKeep(1).
		WithNumGoroutines(2).
		WithNumCompactors(2).
		WithMetricsEnabled(false)
	db, err := badger.Open(bo)
	if err != nil {
		if isLockError(err) {
			return nil, &lockedError{dir: dir, err: err}
		}
		// Badger flattens wrapped errors into text, hence the match.
		if opts.ReadOnly && strings.Contains(err.Error(), badger.ErrTruncateNeeded.Error()) {
			return nil, fmt.Errorf("cache at %s was not closed cleanly (a killed run): open it read-write once, e.g. \"lapse cache stats\", to recover it: %w", dir, err)
		}
		return nil, fmt.Errorf("open cache at %s: %w", dir, err)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	drop := opts.DropAfter
	if drop == 0 {
		drop = DefaultDropAfter
	}
	c := &Cache{dir: dir, db: db, now: now, log: logger, dropAfter: drop, writable: !opts.ReadOnly}
	if !opts.ReadOnly {
		if err := restrictModes(dir); err != nil {
			db.Close()
			return nil, err
		}
		if err := c.migrate(); err != nil {
			db.Close()
			return nil, fmt.Errorf("cache at %s: migrate entries: %w", dir, err)
		}
		if err := c.ensureToken(); err != nil {
			db.Close()
			return nil, fmt.Errorf("cache at %s: %w", dir, err)
		}
	}
	return c, nil
}

type lockedError struct {
	dir string
	err error
}

func (e *lockedError) Error() string {
	return fmt.Sprintf("cache at %s is in use by another lapse process", e.dir)
}
func (e *lockedError) Is(target error) bool { return target == ErrLocked }
func (e *lockedError) Unwrap() error        { return e.err }

// isLockError recognizes Badger's failure to take its directory lock
// (flock, non-blocking) held by another process or open. Badger formats
// the cause into text, so the text is matched too.
func isLockError(err error) bool {
	return errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EAGAIN) ||
		strings.Contains(err.Error(), "Another process is using this Badger database")
}

// Dir is the cache's folder.
func (c *Cache) Dir() string { return c.dir }

// Close closes the cache. It is safe to call twice.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if err := c.db.Close(); err != nil {
		return fmt.Errorf("close cache at %s: %w", c.dir, err)
	}
	if c.writable {
		return restrictModes(c.dir)
	}
	return nil
}

// DirMode and FileMode are the most the cache folder and its files allow:
// the cache holds domains and their states, never addresses.
const (
	DirMode  = 0o750
	FileMode = 0o640
)

// restrictModes takes every bit beyond DirMode and FileMode off the cache
// folder and its files (stricter modes stay). Badger creates its files
// with its own default, 0644 under the usual umask (DISCARD, LOCK, the
// value logs and tables), and more of them as the cache grows, so both a
// writable Open and its Close sweep the folder.
func restrictModes(dir string) error {
	chmod := func(p string, fi fs.FileInfo, limit fs.FileMode) error {
		if m := fi.Mode().Perm(); m&^limit != 0 {
			if err := os.Chmod(p, m&limit); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("cache at %s: set the mode of %s to %04o: %w", dir, filepath.Base(p), m&limit, err)
			}
		}
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("cache at %s: %w", dir, err)
	}
	if err := chmod(dir, fi, DirMode); err != nil {
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("cache at %s: %w", dir, err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // compacted away meanwhile
		}
		if err != nil {
			return fmt.Errorf("cache at %s: %w", dir, err)
		}
		if err := chmod(filepath.Join(dir, e.Name()), fi, FileMode); err != nil {
			return err
		}
	}
	return nil
}

// use takes the read side of the close lock; the caller must call done.
func (c *Cache) use(ctx context.Context) (done func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return nil, ErrClosed
	}
	return c.mu.RUnlock, nil
}

// NormalizeDomain is the key form of a domain: address.Fold (lowercase
// A-labels, no trailing dot).
func NormalizeDomain(d string) string { return address.Fold(d) }

func key(domain string) []byte { return []byte(keyPrefix + domain) }

// encode writes the current encoding (encodingV3); encodeV1 and encodeV2
// are kept for the tests that hold them to the same entries and for
// migration tests.
func encode(e Entry) ([]byte, error) { return encodeV3(e), nil }

func encodeV1(e Entry) ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode cache entry %s: %w", e.Domain, err)
	}
	return append([]byte{encodingV1}, b...), nil
}

func decode(k, v []byte) (Entry, error) {
	var e Entry
	if err := decodeInto(k, v, &e); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// decodeInto is decode into *e; on error *e is undefined.
func decodeInto(k, v []byte, e *Entry) error {
	if len(v) == 0 {
		return fmt.Errorf("cache entry %s: empty value", k)
	}
	switch v[0] {
	case encodingV1:
		*e = Entry{}
		if err := json.Unmarshal(v[1:], e); err != nil {
			return fmt.Errorf("cache entry %s: %w", k, err)
		}
		deriveFacts(e)
		return nil
	case encodingV2:
		if err := decodeV2Into(v[1:], e); err != nil {
			return fmt.Errorf("cache entry %s: %w", k, err)
		}
		deriveFacts(e)
		return nil
	case encodingV3:
		if err := decodeV3Into(v[1:], e); err != nil {
			return fmt.Errorf("cache entry %s: %w", k, err)
		}
		return nil
	default:
		return fmt.Errorf("cache entry %s: encoding version %d is newer than this lapse understands (upgrade lapse)", k, v[0])
	}
}

// get reads one entry inside txn.
func get(txn *badger.Txn, domain string) (Entry, bool, error) {
	item, err := txn.Get(key(domain))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("cache get %s: %w", domain, err)
	}
	var e Entry
	err = item.Value(func(v []byte) error {
		var derr error
		e, derr = decode(item.Key(), v)
		return derr
	})
	if err != nil {
		return Entry{}, false, err
	}
	return e, true, nil
}

// Get returns the entry of domain, and whether there is one.
func (c *Cache) Get(ctx context.Context, domain string) (Entry, bool, error) {
	done, err := c.use(ctx)
	if err != nil {
		return Entry{}, false, err
	}
	defer done()
	domain = NormalizeDomain(domain)
	var (
		e     Entry
		found bool
	)
	err = c.db.View(func(txn *badger.Txn) error {
		var gerr error
		e, found, gerr = get(txn, domain)
		return gerr
	})
	return e, found, err
}

// maxConflictRetries bounds the retries of a transaction that lost a race
// with a concurrent Record of the same domain.
const maxConflictRetries = 16

// update runs fn in a read-write transaction, retrying on conflicts. Every
// write of entries goes through it: it also changes the change token.
func (c *Cache) update(ctx context.Context, fn func(txn *badger.Txn) error) error {
	var err error
	for range maxConflictRetries {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		err = c.db.Update(func(txn *badger.Txn) error {
			if err := fn(txn); err != nil {
				return err
			}
			return setToken(txn)
		})
		if !errors.Is(err, badger.ErrConflict) {
			return err
		}
	}
	return err
}

// Record merges a lookup's answer into the domain's entry, sets its next
// check and returns the new entry (the observation the nightly run appends
// to its history). A failed lookup (state unknown) keeps the previous known
// Lifecycle and records the error; a registered_at that moves later between
// two known answers sets PreviousRegisteredAt and RegisteredAtChangedAt.
func (c *Cache) Record(ctx context.Context, lc lifecycle.Lifecycle) (Entry, error) {
	done, err := c.use(ctx)
	if err != nil {
		return Entry{}, err
	}
	defer done()
	domain := NormalizeDomain(lc.Domain)
	if domain == "" {
		return Entry{}, errors.New("cache record: lifecycle has no domain")
	}
	now := c.now().UTC()
	var out Entry
	err = c.update(ctx, func(txn *badger.Txn) error {
		prev, found, err := get(txn, domain)
		if err != nil {
			return err
		}
		out = merge(prev, found, domain, lc, now)
		v, err := encode(out)
		if err != nil {
			return err
		}
		return txn.Set(key(domain), v)
	})
	if err != nil {
		return Entry{}, fmt.Errorf("cache record %s: %w", domain, err)
	}
	return out, nil
}

// reregistrationTolerance ignores registered_at moving by less than this:
// RDAP gives instants, WHOIS often only dates in a local zone, and answers
// from different sources must not look like a re-registration.
const reregistrationTolerance = 48 * time.Hour

// merge is Record's pure part.
func merge(prev Entry, found bool, domain string, lc lifecycle.Lifecycle, now time.Time) Entry {
	e := prev
	if !found {
		e = Entry{}
	}
	e.Domain = domain
	lc.Domain = domain
	checked := lc.CheckedAt
	if checked.IsZero() {
		checked = now
	}
	checked = checked.UTC()
	if e.FirstCheckedAt.IsZero() {
		e.FirstCheckedAt = checked
	}
	prevChecked := e.LastCheckedAt
	e.LastCheckedAt = checked

	e.noteFacts(lc, checked, true)
	if lc.State == lifecycle.Unknown || lc.State == "" {
		e.ConsecutiveErrors++
		e.LastError = lc.Error
		if e.LastError == "" {
			e.LastError = "no source could tell (state unknown)"
		}
		if !found || !known(prev.Lifecycle.State) {
			e.Lifecycle = lc
		}
		e.NextCheck = NextCheck(e, now)
		return e
	}

	e.ConsecutiveErrors = 0
	e.LastError = ""
	if r := lc.RegisteredAt; r != nil {
		if k := e.KnownRegisteredAt; k != nil && r.Sub(*k) > reregistrationTolerance {
			prevReg, at := *k, checked
			e.PreviousRegisteredAt, e.RegisteredAtChangedAt = &prevReg, &at
		}
		reg := r.UTC()
		e.KnownRegisteredAt = &reg
	}
	e.Lifecycle = keepFacts(e, lc)
	if lc.State.Decisive() {
		switch {
		case e.DecisiveSince == nil:
			since := checked
			e.DecisiveSince, e.DecisiveNights = &since, 1
		case checked.Sub(prevChecked) >= Day-NightSlack:
			// Two lookups in the same night are one night of evidence.
			e.DecisiveNights++
		}
	} else {
		e.DecisiveSince, e.DecisiveNights = nil, 0
	}
	if lc.State.RegisteredFamily() {
		e.Unverified = false
	}
	e.NextCheck = NextCheck(e, now)
	return e
}

func known(s lifecycle.State) bool { return s != "" && s != lifecycle.Unknown }

// noteFacts keeps the authoritative and status API answers among lc's
// evidence (lc itself when it has none) in e: the first authoritative
// answer that told a state sets the Auth fields (its dates as given, nil
// included: an authoritative answer may erase); an authoritative provider
// asked without such an answer counts a failure when countFailures (the
// refresh backs off); the last status API answer that told a state sets
// the Status fields.
func (e *Entry) noteFacts(lc lifecycle.Lifecycle, checked time.Time, countFailures bool) {
	ev := lc.Evidence
	if len(ev) == 0 {
		ev = []lifecycle.Evidence{lc.AsEvidence()}
	}
	var auth, st *lifecycle.Evidence
	authFailed := false
	for i := range ev {
		x := &ev[i]
		ok := x.Error == "" && known(x.State)
		switch {
		case x.Source.Authoritative():
			if ok && auth == nil {
				auth = x
			} else if !ok {
				authFailed = true
			}
		case x.Source.BestEffort():
			if ok {
				st = x
			}
		}
	}
	at := func(t time.Time) *time.Time {
		if t.IsZero() {
			t = checked
		}
		t = t.UTC()
		return &t
	}
	switch {
	case auth != nil:
		e.AuthCheckedAt, e.AuthSource, e.AuthState = at(auth.CheckedAt), auth.Source, auth.State
		e.AuthRegisteredAt, e.AuthExpiresAt = utcPtr(auth.RegisteredAt), utcPtr(auth.ExpiresAt)
		e.AuthFailures, e.AuthRetryAt = 0, nil
	case authFailed && countFailures:
		e.AuthFailures++
		retry := days(checked, backoffNights(e.AuthFailures))
		e.AuthRetryAt = &retry
	}
	if st != nil {
		e.StatusSource, e.StatusFlags, e.StatusCheckedAt = st.Source, status.NormalFlags(st.Statuses), at(st.CheckedAt)
	}
}

// keepFacts is a known answer as the entry keeps it: a status API's answer
// that the name is held (its "active" carries no dates) never erases the
// dates the latest authoritative answer gave, and never turns an expiring
// or grace state the authority saw into plain registered (a status API
// cannot tell them apart: the authoritative refresh decides).
func keepFacts(e Entry, lc lifecycle.Lifecycle) lifecycle.Lifecycle {
	if lc.Source.Authoritative() || !lc.State.RegisteredFamily() || e.AuthCheckedAt == nil {
		return lc
	}
	if lc.RegisteredAt == nil {
		lc.RegisteredAt = utcPtr(e.AuthRegisteredAt)
	}
	if lc.ExpiresAt == nil {
		lc.ExpiresAt = utcPtr(e.AuthExpiresAt)
	}
	if lc.State == lifecycle.Registered && (e.AuthState == lifecycle.Expiring || e.AuthState == lifecycle.Grace) {
		lc.State = e.AuthState
	}
	return lc
}

// FactsOf is what an entry keeps of one answer alone: the Auth and
// Status fields its evidence gives (lapse check --no-cache shows them).
func FactsOf(lc lifecycle.Lifecycle) Entry {
	var e Entry
	e.noteFacts(lc, lc.CheckedAt, false)
	return e
}

// deriveFacts fills the Auth and Status fields of an entry an older lapse
// wrote (encodings 1 and 2 had none) from its kept answer's evidence.
func deriveFacts(e *Entry) {
	if e.AuthCheckedAt != nil || e.StatusCheckedAt != nil || e.AuthFailures != 0 {
		return // a V1 value written by this lapse (tests): already there
	}
	if known(e.Lifecycle.State) {
		e.noteFacts(e.Lifecycle, e.Lifecycle.CheckedAt, false)
	}
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// MarkUnverified notes that the addresses on these domains were
// un-verified, so available domains among them are re-checked weekly.
// Domains without an entry are skipped.
func (c *Cache) MarkUnverified(ctx context.Context, domains []string) error {
	done, err := c.use(ctx)
	if err != nil {
		return err
	}
	defer done()
	// Chunks keep each transaction well under Badger's size limit.
	const chunk = 1000
	for start := 0; start < len(domains); start += chunk {
		part := domains[start:min(start+chunk, len(domains))]
		err := c.update(ctx, func(txn *badger.Txn) error {
			for _, d := range part {
				d = NormalizeDomain(d)
				e, found, err := get(txn, d)
				if err != nil {
					return err
				}
				if !found || e.Unverified {
					continue
				}
				e.Unverified = true
				e.NextCheck = NextCheck(e, e.LastCheckedAt)
				v, err := encode(e)
				if err != nil {
					return err
				}
				if err := txn.Set(key(d), v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("cache mark unverified: %w", err)
		}
	}
	return nil
}

// Due reports whether the entry's next check has come at now.
func (c *Cache) Due(e Entry, now time.Time) bool { return Due(e, now) }

// Due reports whether the entry's next check has come at now.
func Due(e Entry, now time.Time) bool { return !now.Before(e.NextCheck) }

// Scan calls fn for every entry in domain order, from one consistent view
// of the cache. An error from fn stops the scan and is returned.
func (c *Cache) Scan(ctx context.Context, fn func(Entry) error) error {
	done, err := c.use(ctx)
	if err != nil {
		return err
	}
	defer done()
	return c.db.View(func(txn *badger.Txn) error { return scan(ctx, txn, fn) })
}

// scan is Scan inside txn.
func scan(ctx context.Context, txn *badger.Txn, fn func(Entry) error) error {
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 64, Prefix: []byte(keyPrefix)})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		item := it.Item()
		var e Entry
		err := item.Value(func(v []byte) error {
			var derr error
			e, derr = decode(item.Key(), v)
			return derr
		})
		if err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// Stats summarize the cache.
type Stats struct {
	Dir     string                  `json:"dir"`
	Entries int                     `json:"entries"`
	ByState map[lifecycle.State]int `json:"by_state"`
	// Due counts entries whose next check has come.
	Due int `json:"due"`
	// Errors counts entries whose latest lookup failed.
	Errors int `json:"errors"`
	// Reregistered counts entries whose registered_at changed.
	Reregistered int `json:"reregistered"`
	// NoAuthoritative counts entries without an answer of RDAP or WHOIS
	// yet: no registration or expiry date (a status-API-first chain's
	// refresh backlog).
	NoAuthoritative int `json:"no_authoritative"`
	// SizeBytes is the space the cache's files take on disk.
	SizeBytes int64     `json:"size_bytes"`
	At        time.Time `json:"at"`
}

// Stats counts the entries by state, those due now and those in error, and
// measures the cache on disk.
func (c *Cache) Stats(ctx context.Context) (Stats, error) {
	now := c.now().UTC()
	s := Stats{Dir: c.dir, ByState: map[lifecycle.State]int{}, At: now}
	err := c.Scan(ctx, func(e Entry) error {
		s.Entries++
		s.ByState[e.Lifecycle.State]++
		if Due(e, now) {
			s.Due++
		}
		if e.LastError != "" {
			s.Errors++
		}
		if e.PreviousRegisteredAt != nil {
			s.Reregistered++
		}
		if e.AuthCheckedAt == nil {
			s.NoAuthoritative++
		}
		return nil
	})
	if err != nil {
		return s, fmt.Errorf("cache stats: %w", err)
	}
	s.SizeBytes, err = diskUsage(c.dir)
	if err != nil {
		return s, fmt.Errorf("cache stats: %w", err)
	}
	return s, nil
}

// GCResult reports what GC did.
type GCResult struct {
	Dropped    int   `json:"dropped"`
	Rewritten  int   `json:"value_log_files_rewritten"`
	SizeBefore int64 `json:"size_before"`
	SizeAfter  int64 `json:"size_after"`
}

// GC drops entries not looked up for longer than Options.DropAfter and
// runs Badger's value-log garbage collection.
func (c *Cache) GC(ctx context.Context) error {
	_, err := c.Collect(ctx)
	return err
}

// Collect is GC with a report of what it did.
func (c *Cache) Collect(ctx context.Context) (GCResult, error) {
	var r GCResult
	var err error
	if r.SizeBefore, err = diskUsage(c.dir); err != nil {
		return r, fmt.Errorf("cache gc: %w", err)
	}
	if c.dropAfter > 0 {
		cutoff := c.now().Add(-c.dropAfter)
		var stale []string
		err := c.Scan(ctx, func(e Entry) error {
			if e.LastCheckedAt.Before(cutoff) {
				stale = append(stale, e.Domain)
			}
			return nil
		})
		if err != nil {
			return r, fmt.Errorf("cache gc: %w", err)
		}
		if r.Dropped, err = c.drop(ctx, stale, cutoff); err != nil {
			return r, fmt.Errorf("cache gc: %w", err)
		}
	}
	done, err := c.use(ctx)
	if err != nil {
		return r, err
	}
	defer done()
	for ctx.Err() == nil {
		err := c.db.RunValueLogGC(0.5)
		if errors.Is(err, badger.ErrNoRewrite) {
			break
		}
		if err != nil {
			return r, fmt.Errorf("cache gc: value log: %w", err)
		}
		r.Rewritten++
	}
	if err := ctx.Err(); err != nil {
		return r, err
	}
	if r.SizeAfter, err = diskUsage(c.dir); err != nil {
		return r, fmt.Errorf("cache gc: %w", err)
	}
	return r, nil
}

// drop deletes the stale domains whose entries are still older than cutoff
// (a concurrent Record may have refreshed one since the scan).
func (c *Cache) drop(ctx context.Context, domains []string, cutoff time.Time) (int, error) {
	done, err := c.use(ctx)
	if err != nil {
		return 0, err
	}
	defer done()
	n := 0
	const chunk = 1000
	for start := 0; start < len(domains); start += chunk {
		part := domains[start:min(start+chunk, len(domains))]
		k := 0
		err := c.update(ctx, func(txn *badger.Txn) error {
			k = 0
			for _, d := range part {
				e, found, err := get(txn, d)
				if err != nil {
					return err
				}
				if !found || !e.LastCheckedAt.Before(cutoff) {
					continue
				}
				if err := txn.Delete(key(d)); err != nil {
					return err
				}
				k++
			}
			return nil
		})
		if err != nil {
			return n, err
		}
		n += k
	}
	return n, nil
}

// badgerLogger adapts Badger's logger to slog. Badger's info and debug
// chatter (compactions, replays) goes to debug.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error("badger: "+strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "cache")
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn("badger: "+strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "cache")
}
func (b badgerLogger) Infof(f string, a ...any) {
	b.l.Debug("badger: "+strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "cache")
}
func (b badgerLogger) Debugf(f string, a ...any) {
	b.l.Debug("badger: "+strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "cache")
}
