package pipeline

import (
	"context"
	"database/sql"
	"encoding/json"
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

func snapshotDomains(ctx context.Context, snap snapshotDomainsRel, states string, ds depsSource, now time.Time, refresh *cache.Refresh) (snapDomains, error) {
	var out snapDomains
	snapshot := snap.snapshot
	if _, err := os.Stat(snapshot); err != nil {
		return out, fmt.Errorf("snapshot: %w", err)
	}
	db, err := duck.OpenMemory()
	if err != nil {
		return out, err
	}
	defer db.Close()
	// One connection (OpenMemory's): the table of distinct domains lives in it.
	if _, err := db.ExecContext(ctx, `CREATE TEMP TABLE d AS `+snap.sql); err != nil {
		return out, fmt.Errorf("read domains of %s: %w", snapshot, err)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM d`).Scan(&out.total); err != nil {
		return out, fmt.Errorf("read domains of %s: %w", snapshot, err)
	}
	if links := ds.links; links != "" && fileExists(links) {
		// The mail path's dependency domains (issue 12): looked up and
		// scheduled like address domains, once however many use them.
		// From the links folded per domain (the dns stage keeps the fold
		// current; the night's links are the copy's hard link).
		deps := ds.known
		if deps == nil {
			sched, _, err := openMailSchedule(ctx, db, links, ds.schedule)
			if err != nil {
				return out, fmt.Errorf("dependency domains of %s: %w", links, err)
			}
			deps, err = queryStrings(ctx, db, `SELECT DISTINCT dep FROM (SELECT unnest(deps) AS dep FROM (`+sched.Rel+`)
				WHERE domain IN (SELECT domain FROM d)) WHERE dep NOT IN (SELECT domain FROM d)`)
			if err != nil {
				return out, fmt.Errorf("dependency domains of %s: %w", links, err)
			}
		}
		if len(deps) > 0 {
			if _, err := db.ExecContext(ctx, `INSERT INTO d SELECT unnest(?::VARCHAR[])`, deps); err != nil {
				return out, fmt.Errorf("dependency domains of %s: %w", links, err)
			}
			out.deps, out.depSet = len(deps), make(map[string]bool, len(deps))
			for _, d := range deps {
				out.depSet[d] = true
			}
		}
	}
	fail := func(err error) (snapDomains, error) {
		if states == "" {
			return snapDomains{}, fmt.Errorf("read domains of %s: %w", snapshot, err)
		}
		return snapDomains{}, statesReadError{fmt.Errorf("due domains from %s: %w", states, err)}
	}
	q, args := `SELECT domain FROM d`, []any(nil)
	if states != "" {
		due := `s.domain IS NULL OR s.next_check IS NULL OR epoch_us(s.next_check) <= $now`
		cols := "domain, next_check"
		if refresh != nil {
			c, err := duck.Columns(ctx, db, states)
			if err != nil {
				return fail(err)
			}
			cols += ", " + c.Or("auth_checked_at", "TIMESTAMPTZ") + " AS auth_checked_at, " + c.Or("auth_retry_at", "TIMESTAMPTZ") + " AS auth_retry_at"
			// refresh.Due: no authoritative answer, or one older than
			// Every (less NightSlack), unless a failed refresh backs off.
			due += ` OR ((s.auth_retry_at IS NULL OR epoch_us(s.auth_retry_at) <= $now)
				AND (s.auth_checked_at IS NULL OR epoch_us(s.auth_checked_at) <= $cutoff))`
		}
		if _, err := db.ExecContext(ctx, `CREATE TEMP TABLE s AS SELECT `+cols+` FROM read_parquet($states)`, sql.Named("states", states)); err != nil {
			return fail(err)
		}
		q = `SELECT d.domain FROM d LEFT JOIN s USING (domain) WHERE ` + due
		args = []any{sql.Named("now", now.UnixMicro())}
		if refresh != nil {
			// One join for both: the due domains and the count of those
			// without an authoritative answer.
			args = append(args, sql.Named("cutoff", now.Add(-refresh.MaxAge()).UnixMicro()))
			if _, err := db.ExecContext(ctx, `CREATE TEMP TABLE j AS SELECT d.domain, coalesce(`+due+`, false) AS due,
				s.domain IS NULL OR s.auth_checked_at IS NULL AS no_dates FROM d LEFT JOIN s USING (domain)`, args...); err != nil {
				return fail(err)
			}
			if err := db.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE no_dates) FROM j`).Scan(&out.noDates); err != nil {
				return fail(err)
			}
			q, args = `SELECT domain FROM j WHERE due`, nil
		}
	}
	if out.maybeDue, err = queryStrings(ctx, db, q, args...); err != nil {
		return fail(err)
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
