package pipeline

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/lapse-dev/lapse/cache"
	"github.com/lapse-dev/lapse/internal/atomicfile"
	"github.com/lapse-dev/lapse/internal/duck"
	"github.com/lapse-dev/lapse/sinks/changeset"
)

// statesReadError is an error reading the states copy: the runner writes
// the copy again from the cache (it is derived data) and plans again.
type statesReadError struct{ error }

func (e statesReadError) Unwrap() error { return e.error }

// snapDomains is what snapshotDomains read.
type snapDomains struct {
	// total is the distinct registrable domains of the snapshot's
	// verified addresses (the domains a night plans for).
	total int
	// maybeDue are those (sorted) the states copy says may be due.
	maybeDue []string
	// noDates counts those the copy holds no authoritative answer for
	// (never checked included), with a refresh and a states copy.
	noDates int
	// deps is the dependency domains of the mail path (links) of the
	// snapshot's domains that are not address domains themselves: they
	// are candidates too (in maybeDue when due), not counted in total.
	deps   int
	depSet map[string]bool
}

// snapshotDomains counts the distinct registrable domains of the
// snapshot's verified addresses and returns, sorted, those the states copy
// says may be due at now: not in the cache, or next check at or before
// now, or (with refresh) their authoritative refresh due; every one of
// them when states is "". It is a superset of what cache.Due and
// refresh.Due decide (times are stored truncated to the microsecond, never
// later), so the caller checks each.
// depsSource is where the plan takes the mail path's dependency domains
// from: known (the dns stage's, in the same run) or the links file's
// schedule; none when links is "".
type depsSource struct {
	links, schedule string
	known           []string
}

func snapshotDomains(ctx context.Context, snap snapshotDomainsRel, states string, ds depsSource, now time.Time, refresh *cache.Refresh, idx *nightIndex) (snapDomains, error) {
	var out snapDomains
	snapshot := snap.snapshot
	if _, err := os.Stat(snapshot); err != nil {
		return out, fmt.Errorf("snapshot: %w", err)
	}
	var db lazyDuck
	defer db.Close()
	var err error
	if states != "" && !fileExists(states) {
		return out, statesReadError{fmt.Errorf("due domains: states copy %s is missing", states)}
	}
	if !idx.current(snap, states) {
		// Not the dns stage's (a resumed plan, the mail path off, or a
		// states copy written since): read here.
		if idx, err = loadNightIndex(ctx, db.get, snap, states); err != nil {
			var unreadable statesReadError
			if errors.As(err, &unreadable) {
				return out, statesReadError{fmt.Errorf("due domains from %s: %w", states, unreadable.error)}
			}
			return out, fmt.Errorf("read domains of %s: %w", snapshot, err)
		}
		defer idx.states.release()
	}
	domains := idx.domains
	out.total = domains.n
	var deps []string
	if links := ds.links; links != "" && fileExists(links) {
		// The mail path's dependency domains (issue 12): looked up and
		// scheduled like address domains, once however many use them.
		// From the links folded per domain (the dns stage keeps the fold
		// current; the night's links are the copy's hard link).
		deps = ds.known
		if deps == nil {
			if deps, err = scheduleDeps(ctx, db.get, domains, links, ds.schedule); err != nil {
				return out, fmt.Errorf("dependency domains of %s: %w", links, err)
			}
		}
		if len(deps) > 0 {
			out.deps, out.depSet = len(deps), make(map[string]bool, len(deps))
			for _, d := range deps {
				out.depSet[d] = true
			}
		}
	}
	st := idx.states
	if states == "" || st == nil {
		out.maybeDue = make([]string, 0, domains.n+len(deps))
		for i := range domains.n {
			out.maybeDue = append(out.maybeDue, domains.value(i))
		}
		out.maybeDue = append(out.maybeDue, deps...)
		slices.Sort(out.maybeDue) // byte order, for GetMany's ordered walk
		return out, nil
	}
	if st.next == nil {
		return out, statesReadError{fmt.Errorf("due domains from %s: no next_check column", states)}
	}
	nowUS, cutoff := now.UnixMicro(), int64(0)
	if refresh != nil {
		cutoff = now.Add(-refresh.MaxAge()).UnixMicro()
	}
	// due is cache.Due's superset (and refresh.Due's: no authoritative
	// answer, or one older than Every less NightSlack, unless a failed
	// refresh backs off) over the copy's row r, found or not.
	visit := func(d string, r int, found bool) {
		if !found {
			out.maybeDue = append(out.maybeDue, d)
			if refresh != nil {
				out.noDates++
			}
			return
		}
		next, hasNext := microAt(st.next, r)
		due := !hasNext || next <= nowUS
		if refresh != nil {
			auth, hasAuth := microAt(st.authChecked, r)
			retry, hasRetry := microAt(st.authRetry, r)
			due = due || ((!hasRetry || retry <= nowUS) && (!hasAuth || auth <= cutoff))
			if !hasAuth {
				out.noDates++
			}
		}
		if due {
			out.maybeDue = append(out.maybeDue, d)
		}
	}
	j := 0
	for i := range domains.n {
		d := domains.value(i)
		r, found := st.dom.seek(&j, d)
		visit(d, r, found)
	}
	for _, d := range deps {
		r, found := st.dom.find(d)
		visit(d, r, found)
	}
	slices.Sort(out.maybeDue) // byte order, for GetMany's ordered walk
	return out, nil
}

// snapshotDomainsRel is the relation of a snapshot's distinct verified
// registrable domains (one column, domain), and the snapshot it is of;
// list is the domain list file it reads, "" when it scans the snapshot.
type snapshotDomainsRel struct{ snapshot, sql, list string }

// snapshotDomainsSQL reads the snapshot's domain list (night.Paths.SnapshotDomains)
// when its manifest vouches for it (same sha256): a few hundred thousand
// rows instead of every address. Otherwise (no list, an older snapshot,
// one with unverified addresses, a list a crash left beside an older
// manifest) it takes the distinct domains of the snapshot's verified rows.
func snapshotDomainsSQL(snapshot, domains, manifest string) snapshotDomainsRel {
	r := snapshotDomainsRel{snapshot: snapshot,
		sql: "SELECT DISTINCT domain FROM read_parquet(" + duck.String(snapshot) + ") WHERE domain IS NOT NULL AND verified"}
	if domains == "" || manifest == "" {
		return r
	}
	m, err := ReadSnapshotManifest(manifest)
	if err != nil || m.DomainsSHA256 == "" || m.DomainsFile != filepath.Base(domains) {
		return r
	}
	if fi, err := changeset.HashFile(domains); err != nil || fi.SHA256 != m.DomainsSHA256 {
		return r
	}
	r.sql = "SELECT domain FROM read_parquet(" + duck.String(domains) + ")"
	r.list = domains
	return r
}

// queryStrings runs a query of one VARCHAR column and returns its values.
func queryStrings(ctx context.Context, db *sql.DB, q string, args ...any) ([]string, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// lookupEntries returns the cache entry of each of domains (sorted), the
// zero Entry where there is none. Decoding the entries is the plan's main
// cost on a warm night; the cache's batch read spreads it over the cores.
func lookupEntries(ctx context.Context, c DomainCache, domains []string) ([]cache.Entry, error) {
	es, err := c.GetMany(ctx, domains)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	return es, nil
}

// WritePlan writes the plan atomically.
func WritePlan(path string, p Plan) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o640)
}

// ReadPlan reads a plan written by WritePlan.
func ReadPlan(path string) (Plan, error) {
	var p Plan
	b, err := os.ReadFile(path)
	if err != nil {
		return p, fmt.Errorf("read plan: %w", err)
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("plan %s: %w", path, err)
	}
	return p, nil
}
