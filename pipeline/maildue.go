package pipeline

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/lapse-dev/lapse/internal/duck"
	"github.com/lapse-dev/lapse/lifecycle"
)

// mailDue returns the snapshot's verified address domains whose mail path
// is due at o.Now: never looked up, next check passed, or the domain was
// re-registered since its last lookup; never a domain whose own state is
// decisive. Never looked up first, then most overdue, then by name. deps
// are the dependency domains of tonight's address domains that are not
// address domains themselves (the plan's candidates), sorted.
//
// The domain list, the mail schedule and the states copy are all sorted
// by domain, so Go walks them side by side: three reads and one merge,
// not DuckDB's hash joins of 167k names with 259k.
func mailDue(ctx context.Context, o MailPathOptions, res *MailPathResult) (due, deps []string, err error) {
	var db lazyDuck
	defer db.Close()
	schedule, done, err := scheduleFile(o.Schedule)
	if err != nil {
		return nil, nil, err
	}
	defer done()
	o.Schedule = schedule
	sched, ok, err := openMailSchedule(ctx, db.get, o.LinksCopy, o.Schedule)
	if err != nil {
		return nil, nil, err
	}
	if ok {
		// The copy's figures, as folded with it.
		res.Links, res.Dependencies = sched.meta.LinkRows, sched.meta.Dependencies
	}
	// The reads are independent: on two cores, side by side. The plan
	// of this run walks the same index (o.index, when it is current).
	var (
		wg         sync.WaitGroup
		idx        = o.index
		s          *scheduleCols
		errI, errS error
	)
	rel := snapshotDomainsSQL(o.Snapshot, o.SnapshotDomains, o.SnapshotManifest)
	if !idx.current(rel, o.StatesCopy) {
		wg.Go(func() { idx, errI = loadNightIndex(ctx, db.get, rel, o.StatesCopy) })
	}
	if ok {
		wg.Go(func() { s, errS = readScheduleCols(ctx, o.Schedule, len(sched.meta.DepNames)) })
	}
	wg.Wait()
	defer s.release()
	if err := errors.Join(errI, errS); err != nil {
		return nil, nil, err
	}
	if o.keep != nil {
		*o.keep = idx
	}
	domains := idx.domains
	used := make([]bool, len(sched.meta.DepNames))
	now := o.Now.UnixMicro()
	// The walk is a few hundred thousand string comparisons with nothing
	// else running: on two cores, in two halves, each merging from where
	// its first domain sorts in the other columns.
	half := domains.n / 2
	if half < minParallelWalk {
		half = domains.n
	}
	var cands, cands2 []mailCand
	var used2 []bool
	var wg2 sync.WaitGroup
	if half < domains.n {
		used2 = make([]bool, len(used))
		wg2.Go(func() { cands2 = dueWalk(domains, half, domains.n, idx.states, s, now, used2) })
	}
	cands = dueWalk(domains, 0, half, idx.states, s, now, used)
	wg2.Wait()
	cands = append(cands, cands2...)
	for id, u := range used2 {
		used[id] = used[id] || u
	}
	// Never looked up first (known false), then the earliest next check
	// (none last), then the name.
	slices.SortStableFunc(cands, func(a, b mailCand) int {
		if a.known != b.known {
			if !a.known {
				return -1
			}
			return 1
		}
		if (a.next == 0) != (b.next == 0) {
			if b.next == 0 {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(a.next, b.next), cmp.Compare(a.domain, b.domain))
	})
	for _, c := range cands {
		due = append(due, c.domain)
	}
	return due, depNames(used, sched.meta.DepNames, domains), nil
}

// minParallelWalk is the fewest domains mailDue walks in two halves (a
// variable: the tests split small lists).
var minParallelWalk = 20_000

// mailCand is a due address domain: never looked up (known false), or
// with its next check (µs; 0: none).
type mailCand struct {
	domain string
	known  bool
	next   int64
}

// dueWalk walks domains' positions [lo, hi) against the states (st, may
// be nil) and the schedule (s, may be nil) at now (µs): the due domains,
// each schedule row's dependencies marked in used.
func dueWalk(domains sortedColumn, lo, hi int, st *stateCols, s *scheduleCols, now int64, used []bool) []mailCand {
	if lo >= hi {
		return nil
	}
	var cands []mailCand
	first := domains.value(lo)
	var js, jt int
	if st != nil {
		jt = st.dom.lowerBound(first)
	}
	if s != nil {
		js = s.dom.lowerBound(first)
	}
	for i := lo; i < hi; i++ {
		d := domains.value(i)
		c := mailCand{domain: d}
		var decisive bool
		var changed int64
		if st != nil {
			if r, ok := st.dom.seek(&jt, d); ok {
				decisive = st.decisive(r)
				changed, _ = microAt(st.changed, r)
			}
		}
		if s != nil {
			if r, ok := s.dom.seek(&js, d); ok {
				c.known = true
				checked, hasChecked := microAt(s.checked, r)
				c.next, _ = microAt(s.next, r)
				s.use(r, used)
				reregistered := changed != 0 && hasChecked && changed > checked
				if c.next != 0 && c.next > now && !reregistered {
					continue
				}
			}
		}
		if decisive {
			continue
		}
		cands = append(cands, c)
	}
	return cands
}

// use marks the dependencies of schedule row r in used.
func (s *scheduleCols) use(r int, used []bool) {
	lo, hi := s.deps.ValueOffsets(r)
	for _, id := range s.depIDs[lo:hi] {
		used[id] = true
	}
}

// depNames is the dependency names marked in used that are not among
// domains (address domains are planned as such), sorted as names is;
// never nil (known: none).
func depNames(used []bool, names []string, domains sortedColumn) []string {
	out := []string{}
	for id, dep := range names {
		if _, isDomain := domains.find(dep); used[id] && !isDomain {
			out = append(out, dep)
		}
	}
	return out
}

// scheduleDeps is the dependency domains of domains in the links copy's
// schedule (openMailSchedule), as mailDue finds them: the plan's, when
// the dns stage of the same run did not hand them over.
func scheduleDeps(ctx context.Context, db func() (*sql.DB, error), domains sortedColumn, links, schedule string) ([]string, error) {
	schedule, done, err := scheduleFile(schedule)
	if err != nil {
		return nil, err
	}
	defer done()
	sched, ok, err := openMailSchedule(ctx, db, links, schedule)
	if err != nil || !ok {
		return nil, err
	}
	s, err := readScheduleCols(ctx, schedule, len(sched.meta.DepNames))
	if err != nil {
		return nil, err
	}
	defer s.release()
	used := make([]bool, len(sched.meta.DepNames))
	j := 0
	for i := range domains.n {
		if r, ok := s.dom.seek(&j, domains.value(i)); ok {
			s.use(r, used)
		}
	}
	return depNames(used, sched.meta.DepNames, domains), nil
}

// nightIndex is tonight's domains and the states copy's columns, read
// once and walked by both the dns stage and the plan of a run (for the
// files they were read from: keys).
type nightIndex struct {
	listKey, statesKey string
	domains            sortedColumn
	states             *stateCols // nil: no states copy
}

// indexKeys names the versions of the files an index is read from.
func indexKeys(rel snapshotDomainsRel, states string) (list, st string) {
	list = "scan " + fileKey(rel.snapshot)
	if rel.list != "" {
		list = "list " + fileKey(rel.list)
	}
	return list, fileKey(states)
}

// current reports whether x was read from these files as they are now.
func (x *nightIndex) current(rel snapshotDomainsRel, states string) bool {
	if x == nil {
		return false
	}
	l, s := indexKeys(rel, states)
	return x.listKey == l && x.statesKey == s
}

// loadNightIndex reads tonight's domains and the states copy side by
// side. An error reading the states copy is a statesReadError (the
// runner writes the copy again from the cache).
func loadNightIndex(ctx context.Context, db func() (*sql.DB, error), rel snapshotDomainsRel, states string) (*nightIndex, error) {
	x := &nightIndex{}
	x.listKey, x.statesKey = indexKeys(rel, states)
	var wg sync.WaitGroup
	var errD, errS error
	wg.Go(func() { x.domains, errD = tonightDomains(ctx, db, rel) })
	wg.Go(func() { x.states, errS = readStateCols(ctx, states) })
	wg.Wait()
	if errS != nil {
		errS = statesReadError{errS}
	}
	if err := errors.Join(errD, errS); err != nil {
		x.states.release()
		return nil, err
	}
	return x, nil
}

// scheduleFile is where a schedule is kept: path, or when there is no
// place to keep it ("") a file in a new temp folder, folded for one call
// alone, which done removes.
func scheduleFile(path string) (file string, done func(), err error) {
	if path != "" {
		return path, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "lapse-mail-schedule-")
	if err != nil {
		return "", nil, err
	}
	return filepath.Join(dir, "mail_schedule.parquet"), func() { os.RemoveAll(dir) }, nil
}

// tonightDomains is the snapshot's verified domains, in order: the domain
// list read as it is when the manifest vouches for it (written sorted by
// the snapshot), the snapshot's rows otherwise.
func tonightDomains(ctx context.Context, dbf func() (*sql.DB, error), rel snapshotDomainsRel) (sortedColumn, error) {
	if rel.list != "" {
		var a *array.String
		if _, err := columnsOf(ctx, rel.list, []string{ColDomain}, nil, &a); err != nil {
			return sortedColumn{}, fmt.Errorf("domain list: %w", err)
		}
		// Views into a, which lives as long as the stage that asked.
		c := newSortedColumn(a)
		if c.order != nil {
			// Not as the snapshot writes it: duplicates dropped.
			c.order = slices.CompactFunc(c.order, func(x, y int) bool { return a.Value(x) == a.Value(y) })
			c.n = len(c.order)
		}
		return c, nil
	}
	db, err := dbf()
	if err != nil {
		return sortedColumn{}, err
	}
	out, err := queryStrings(ctx, db, rel.sql+" ORDER BY domain")
	if err != nil {
		return sortedColumn{}, fmt.Errorf("snapshot domains: %w", err)
	}
	b := array.NewStringBuilder(memory.DefaultAllocator)
	defer b.Release()
	b.AppendValues(out, nil)
	return newSortedColumn(b.NewStringArray()), nil
}

// stateCols is the states copy's columns the DNS stage and the plan walk,
// in domain order (cache.ExportStates writes it sorted).
type stateCols struct {
	dom                                   sortedColumn
	state                                 *array.String
	next, authChecked, authRetry, changed *array.Timestamp
	arrays                                []arrow.Array
}

// readStateCols reads the states copy at path; nil when there is none.
// Every column but domain and state may be missing (an older copy): it
// reads as null, and the plan, which needs next_check, says so.
func readStateCols(ctx context.Context, path string) (*stateCols, error) {
	if !fileExists(path) {
		return nil, nil
	}
	s := &stateCols{}
	var dom *array.String
	cols, err := columnsOf(ctx, path,
		[]string{"domain", "state", "next_check", "auth_checked_at", "auth_retry_at", "registered_at_changed_at"},
		map[string]bool{"next_check": true, "auth_checked_at": true, "auth_retry_at": true, "registered_at_changed_at": true},
		&dom, &s.state, &s.next, &s.authChecked, &s.authRetry, &s.changed)
	if err != nil {
		return nil, fmt.Errorf("states %s: %w", path, err)
	}
	s.arrays, s.dom = cols, newSortedColumn(dom)
	return s, nil
}

// decisive reports whether row r's state is decisive (its own state
// decides the domain's addresses).
func (s *stateCols) decisive(r int) bool {
	return !s.state.IsNull(r) && slices.Contains(lifecycle.DecisiveStates, lifecycle.State(s.state.Value(r)))
}

func (s *stateCols) release() {
	if s != nil {
		releaseArrays(s.arrays)
	}
}

// scheduleCols is the mail schedule's columns (openMailSchedule), in
// domain order.
type scheduleCols struct {
	dom           sortedColumn
	next, checked *array.Timestamp
	deps          *array.List
	depIDs        []int32 // deps' values, each < the meta's len(DepNames)
	arrays        []arrow.Array
}

func (s *scheduleCols) release() {
	if s != nil {
		releaseArrays(s.arrays)
	}
}

// readScheduleCols reads the mail schedule file; names is how many
// dependency names its meta holds.
func readScheduleCols(ctx context.Context, path string, names int) (*scheduleCols, error) {
	s := &scheduleCols{}
	var dom *array.String
	cols, err := columnsOf(ctx, path, []string{"domain", "next_check", "checked_at", "dep_ids"}, nil, &dom, &s.next, &s.checked, &s.deps)
	if err != nil {
		return nil, fmt.Errorf("mail schedule: %w", err)
	}
	s.arrays, s.dom = cols, newSortedColumn(dom)
	ids, ok := s.deps.ListValues().(*array.Int32)
	if !ok {
		s.release()
		return nil, fmt.Errorf("mail schedule %s: dep_ids are %s, not integers", path, s.deps.ListValues().DataType())
	}
	s.depIDs = ids.Int32Values()
	for _, id := range s.depIDs {
		if id < 0 || int(id) >= names {
			s.release()
			return nil, fmt.Errorf("mail schedule %s: dependency id %d out of range (remove the file: the next night folds it again)", path, id)
		}
	}
	return s, nil
}

// lazyDuck opens an in-memory DuckDB on first use (get): a warm night's
// walk needs none (the schedule folded, the domain list vouched for).
type lazyDuck struct {
	once sync.Once
	db   *sql.DB
	err  error
}

func (l *lazyDuck) get() (*sql.DB, error) {
	l.once.Do(func() { l.db, l.err = duck.OpenMemory() })
	return l.db, l.err
}

// Close closes the database if it was opened; call it once every get
// has returned.
func (l *lazyDuck) Close() {
	if l.db != nil {
		l.db.Close()
	}
}

// opened is a func for functions that take a lazily opened DuckDB, over
// one already open.
func opened(db *sql.DB) func() (*sql.DB, error) {
	return func() (*sql.DB, error) { return db, nil }
}
