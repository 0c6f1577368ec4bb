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
	"time"

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
// The domain list and the mail schedule are both sorted by domain, so Go
// walks them side by side (a warm night: two reads of 167k names and one
// merge, a fifth of what DuckDB's join of them cost); DuckDB reads the
// few state rows the rules need.
func mailDue(ctx context.Context, o MailPathOptions, res *MailPathResult) (due, deps []string, err error) {
	db, err := duck.OpenMemory()
	if err != nil {
		return nil, nil, err
	}
	defer db.Close()
	if o.Schedule == "" {
		// No place to keep the schedule: folded for this call alone.
		dir, err := os.MkdirTemp("", "lapse-mail-schedule-")
		if err != nil {
			return nil, nil, err
		}
		defer os.RemoveAll(dir)
		o.Schedule = filepath.Join(dir, "mail_schedule.parquet")
	}
	sched, ok, err := openMailSchedule(ctx, db, o.LinksCopy, o.Schedule)
	if err != nil {
		return nil, nil, err
	}
	if ok {
		// The copy's figures, as folded with it.
		res.Links, res.Dependencies = sched.meta.LinkRows, sched.meta.Dependencies
	}
	// The three reads are independent: on two cores, side by side.
	var (
		wg               sync.WaitGroup
		domains          sortedStrings
		marks            map[string]mailStateMark
		s                scheduleCols
		errD, errM, errS error
	)
	wg.Go(func() {
		domains, errD = tonightDomains(ctx, db, snapshotDomainsSQL(o.Snapshot, o.SnapshotDomains, o.SnapshotManifest))
	})
	wg.Go(func() { marks, errM = mailStateMarks(ctx, db, o.StatesCopy) })
	if ok {
		wg.Go(func() {
			if s, errS = readScheduleCols(ctx, o.Schedule); errS != nil {
				errS = fmt.Errorf("mail schedule: %w", errS)
			}
		})
	}
	wg.Wait()
	defer s.release()
	if err := errors.Join(errD, errM, errS); err != nil {
		return nil, nil, err
	}
	type cand struct {
		domain string
		known  bool
		next   time.Time // zero: none
	}
	var cands []cand
	var names []string
	if ok {
		names = sched.meta.DepNames
	}
	used := make([]bool, len(names))
	now := o.Now
	j := 0
	for i := range domains.Len() {
		d := domains.Value(i)
		for j < s.n && s.domain.Value(s.at(j)) < d {
			j++
		}
		c := cand{domain: d}
		m := marks[d]
		if j < s.n && s.domain.Value(s.at(j)) == d {
			r := s.at(j)
			c.known = true
			checked := s.time(s.checked, r)
			c.next = s.time(s.next, r)
			lo, hi := s.deps.ValueOffsets(r)
			for _, id := range s.depIDs[lo:hi] {
				if id < 0 || int(id) >= len(used) {
					return nil, nil, fmt.Errorf("mail schedule %s: dependency id %d out of range (fold it again: remove it)", o.Schedule, id)
				}
				used[id] = true
			}
			reregistered := !m.changed.IsZero() && !checked.IsZero() && m.changed.After(checked)
			if !c.next.IsZero() && c.next.After(now) && !reregistered {
				continue
			}
		}
		if m.decisive {
			continue
		}
		cands = append(cands, c)
	}
	// Never looked up first (known false), then the earliest next check
	// (none last), then the name.
	slices.SortStableFunc(cands, func(a, b cand) int {
		if a.known != b.known {
			if !a.known {
				return -1
			}
			return 1
		}
		if a.next.IsZero() != b.next.IsZero() {
			if b.next.IsZero() {
				return -1
			}
			return 1
		}
		return cmp.Or(a.next.Compare(b.next), cmp.Compare(a.domain, b.domain))
	})
	for _, c := range cands {
		due = append(due, c.domain)
	}
	deps = []string{} // known: none
	for id, dep := range names {
		if _, isDomain := domains.find(dep); used[id] && !isDomain {
			deps = append(deps, dep)
		}
	}
	return due, deps, nil
}

// stringValues is a column of strings: an Arrow string array or a slice.
type stringValues interface {
	Len() int
	Value(i int) string
}

type stringSlice []string

func (s stringSlice) Len() int           { return len(s) }
func (s stringSlice) Value(i int) string { return s[i] }

// sortedStrings is tonight's domains, sorted and distinct.
type sortedStrings struct{ stringValues }

// find is the index of v, and whether it is there.
func (s sortedStrings) find(v string) (int, bool) {
	i, j := 0, s.Len()
	for i < j {
		h := int(uint(i+j) >> 1)
		if s.Value(h) < v {
			i = h + 1
		} else {
			j = h
		}
	}
	return i, i < s.Len() && s.Value(i) == v
}

// tonightDomains is the snapshot's verified domains, sorted and
// distinct: the domain list read as it is when the manifest vouches for
// it (written sorted by the snapshot), the snapshot's rows otherwise.
func tonightDomains(ctx context.Context, db *sql.DB, rel snapshotDomainsRel) (sortedStrings, error) {
	if rel.list != "" {
		cols, err := readParquetColumns(ctx, rel.list, ColDomain)
		if err != nil {
			return sortedStrings{}, fmt.Errorf("domain list: %w", err)
		}
		defer releaseChunked(cols)
		a, err := concatStrings(cols[0])
		if err != nil {
			return sortedStrings{}, fmt.Errorf("domain list %s: %w", rel.list, err)
		}
		if sortedDistinct(a) {
			// Views into a; it lives as long as the night's stage.
			return sortedStrings{a}, nil
		}
		// Not as written: sorted here rather than trusted.
		out := make([]string, 0, a.Len())
		for i := range a.Len() {
			out = append(out, a.Value(i))
		}
		slices.Sort(out)
		return sortedStrings{stringSlice(slices.Compact(out))}, nil
	}
	out, err := queryStrings(ctx, db, rel.sql+" ORDER BY domain")
	if err != nil {
		return sortedStrings{}, fmt.Errorf("snapshot domains: %w", err)
	}
	return sortedStrings{stringSlice(out)}, nil
}

// sortedDistinct reports whether a's values are in strictly increasing
// order, with no null.
func sortedDistinct(a *array.String) bool {
	for i := range a.Len() {
		if a.IsNull(i) || (i > 0 && a.Value(i-1) >= a.Value(i)) {
			return false
		}
	}
	return true
}

// concatStrings is a string column as one array.
func concatStrings(c *arrow.Chunked) (*array.String, error) {
	a, err := array.Concatenate(c.Chunks(), memory.DefaultAllocator)
	if err != nil {
		return nil, err
	}
	s, ok := a.(*array.String)
	if !ok {
		a.Release()
		return nil, fmt.Errorf("column is %s, not a string", c.DataType())
	}
	return s, nil
}

// mailStateMark is what the mail schedule needs of a domain's state row.
type mailStateMark struct {
	decisive bool
	changed  time.Time // registered_at_changed_at, zero when none
}

// mailStateMarks reads the state rows the due rules need: decisive
// domains (their own state decides them: no mail path needed) and
// registrations that changed (re-registered since their last lookup).
func mailStateMarks(ctx context.Context, db *sql.DB, states string) (map[string]mailStateMark, error) {
	out := map[string]mailStateMark{}
	if !fileExists(states) {
		return out, nil
	}
	cols, err := duck.Columns(ctx, db, states)
	if err != nil {
		return nil, err
	}
	decisive := lifecycle.SQLIn("state", lifecycle.DecisiveStates...)
	changed := cols.Or("registered_at_changed_at", "TIMESTAMPTZ")
	rows, err := db.QueryContext(ctx, `SELECT domain, coalesce(`+decisive+`, false), epoch_us(`+changed+`)
		FROM read_parquet(`+duck.String(states)+`) WHERE domain IS NOT NULL AND (`+decisive+` OR `+changed+` IS NOT NULL)`)
	if err != nil {
		return nil, fmt.Errorf("states %s: %w", states, err)
	}
	defer rows.Close()
	for rows.Next() {
		var d string
		var m mailStateMark
		var us sql.NullInt64
		if err := rows.Scan(&d, &m.decisive, &us); err != nil {
			return nil, fmt.Errorf("states %s: %w", states, err)
		}
		if us.Valid {
			m.changed = time.UnixMicro(us.Int64).UTC()
		}
		out[d] = m
	}
	return out, rows.Err()
}

// scheduleCols is the mail schedule's columns, in domain order (at maps
// a position in that order to a row).
type scheduleCols struct {
	n             int
	domain        *array.String
	next, checked *array.Timestamp
	unit          arrow.TimeUnit
	deps          *array.List
	depIDs        []int32 // deps' values
	order         []int   // nil: the file is sorted
	arrays        []arrow.Array
}

func (s scheduleCols) at(i int) int {
	if s.order == nil {
		return i
	}
	return s.order[i]
}

// time is a timestamp column's value at row r, zero when null.
func (s scheduleCols) time(a *array.Timestamp, r int) time.Time {
	if a.IsNull(r) {
		return time.Time{}
	}
	return a.Value(r).ToTime(s.unit)
}

func (s scheduleCols) release() {
	for _, a := range s.arrays {
		a.Release()
	}
}

// readScheduleCols reads the mail schedule file (openMailSchedule).
func readScheduleCols(ctx context.Context, path string) (scheduleCols, error) {
	var s scheduleCols
	cols, err := readParquetColumns(ctx, path, "domain", "next_check", "checked_at", "dep_ids")
	if err != nil {
		return s, err
	}
	defer releaseChunked(cols)
	for _, c := range cols {
		a, err := array.Concatenate(c.Chunks(), memory.DefaultAllocator)
		if err != nil {
			s.release()
			return s, err
		}
		s.arrays = append(s.arrays, a)
	}
	var ok [5]bool
	s.domain, ok[0] = s.arrays[0].(*array.String)
	s.next, ok[1] = s.arrays[1].(*array.Timestamp)
	s.checked, ok[2] = s.arrays[2].(*array.Timestamp)
	s.deps, ok[3] = s.arrays[3].(*array.List)
	if ok[3] {
		var ids *array.Int32
		if ids, ok[4] = s.deps.ListValues().(*array.Int32); ok[4] {
			s.depIDs = ids.Int32Values()
		}
	}
	if ok != [5]bool{true, true, true, true, true} {
		s.release()
		return s, fmt.Errorf("%s: unexpected column types (written by an older lapse?)", path)
	}
	s.unit = s.next.DataType().(*arrow.TimestampType).Unit
	if u := s.checked.DataType().(*arrow.TimestampType).Unit; u != s.unit {
		s.release()
		return s, fmt.Errorf("%s: next_check and checked_at differ in unit", path)
	}
	s.n = s.domain.Len()
	if !sortedDistinct(s.domain) {
		// Folded by another lapse, or by hand: walk it in order anyway.
		s.order = make([]int, 0, s.n)
		for i := range s.n {
			if !s.domain.IsNull(i) {
				s.order = append(s.order, i)
			}
		}
		slices.SortStableFunc(s.order, func(a, b int) int { return cmp.Compare(s.domain.Value(a), s.domain.Value(b)) })
		s.n = len(s.order)
	}
	return s, nil
}
