package pipeline

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/lapse-dev/lapse/cache"
	"github.com/lapse-dev/lapse/internal/atomicfile"
	"github.com/lapse-dev/lapse/internal/duck"
	"github.com/lapse-dev/lapse/sources/address"
	"github.com/lapse-dev/lapse/sources/dns"
)

// The mail path (issue 12). An address whose domain is healthy is still
// taken when its mail goes to an MX host, or its DNS to a name server, in
// a registrable domain that lapsed. The DNS stage looks up the MX and NS
// records of the address domains that are due (never looked up, dns.every
// old, a failure backing off, or re-registered since), records their
// links in the cache and rewrites the links copy; the plan then adds the
// dependency domains (a handful of providers for thousands of domains) to
// the night's candidates, scheduled like any domain, and classify reads
// their states through the links.

// MailResolver is what the DNS stage needs of the resolver (*dns.Resolver).
type MailResolver interface {
	Lookup(ctx context.Context, domain string) (dns.Answer, error)
}

// MailCache is what the DNS stage needs of the cache (*cache.Cache).
type MailCache interface {
	MailPathOf(ctx context.Context, domain string) (cache.MailPath, bool, error)
	RecordMailPath(ctx context.Context, o cache.MailObservation, every time.Duration) (cache.MailPath, error)
	cache.MailScanner
}

// MailPathOptions configure the DNS stage.
type MailPathOptions struct {
	Snapshot string
	// SnapshotDomains and SnapshotManifest are the snapshot's domain list
	// and manifest (PlanOptions has the same).
	SnapshotDomains, SnapshotManifest string
	// LinksCopy is the cache's links copy (night.Dir.LinksCopy), rewritten
	// after tonight's lookups; StatesCopy the states copy (its domains in a
	// decisive state are not asked: they are flagged on their own, and
	// a re-registered one is asked at once). NightLinks is the night's
	// link to the copy (night.Paths.Links), Journal its DNS journal.
	// NightDNS receives tonight's looked-up mail paths (night.Paths.DNS).
	LinksCopy, StatesCopy, NightLinks, NightDNS, Journal string
	// Schedule is the links copy folded per domain (night.Dir.MailSchedule),
	// kept current by this stage.
	Schedule string
	Cache    MailCache
	// Resolver is built on first use: a night with nothing due needs none.
	Resolver func() (MailResolver, error)
	// index, when current, is tonight's domains and states already read;
	// keep, when set, receives the index the stage walked (the plan's).
	index *nightIndex
	keep  **nightIndex
	// openCache, when set, gives Cache once the due domains are found
	// (the stage opens it beside their reads).
	openCache func() (MailCache, error)
	Every     time.Duration
	// Force domains are looked up tonight whether due or not, first (the
	// domains of addresses re-verified by their owners).
	Force       []string
	Budget      int
	Concurrency int
	Now         time.Time
	Log         *slog.Logger
}

// unreachableAfter consecutive lookups with no conclusive answer stop the
// night's DNS lookups (MailPathResult.Unreachable).
const unreachableAfter = 100

// MailPathResult is what the DNS stage did.
type MailPathResult struct {
	// Resumed of LookedUp came from the journal of an interrupted run.
	Due, LookedUp, Deferred, Resumed int
	// Unreachable: unreachableAfter lookups in a row had no conclusive
	// answer; the rest were deferred to tomorrow.
	Unreachable         bool
	Queries             int
	Outcomes            map[string]int
	Links, Dependencies int
	// DependencyDomains are the dependency domains of the snapshot's
	// domains that are not address domains themselves, sorted, as the
	// links copy the stage ends with holds them; nil when the stage
	// rewrote the copy (the plan reads them from the new one).
	DependencyDomains []string
}

// serverAddr matches the server named in a DNS error ("servfail from
// 127.0.0.1:53"): the answer files say what failed, not where, so a night
// run again against another resolver writes the same files.
var serverAddr = regexp.MustCompile(` \(?from [^ ()]+\)?`)

// registrable is the ICANN registrable domain of a host (sources/address).
func registrable(host string) (string, bool) {
	_, d, reason := address.NormalizeHost(host)
	return d, reason == "" && d != ""
}

// MailObservation turns a DNS answer into the cache's observation: its
// links to the registrable domains (ICANN PSL) of the hosts outside the
// domain.
func MailObservation(a dns.Answer) cache.MailObservation {
	o := cache.MailObservation{
		Domain: a.Domain, CheckedAt: a.CheckedAt, MX: string(a.MX), NS: string(a.NS),
		MXConclusive: a.MX.Conclusive(), NSConclusive: a.NS.Conclusive(),
		NullMX: a.NullMX, NSFromReferral: a.NSFromReferral, Error: serverAddr.ReplaceAllString(a.Error, ""), Queries: a.Queries,
	}
	for _, d := range dns.Dependencies(a, registrable) {
		o.Links = append(o.Links, cache.MailLink{Role: d.Role, Host: d.Host, Dep: d.Dep, Pref: d.Pref})
	}
	return o
}

// MailPath runs the DNS stage.
func MailPath(ctx context.Context, o MailPathOptions) (MailPathResult, error) {
	res := MailPathResult{Outcomes: map[string]int{}}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	due, deps, err := mailDue(ctx, o, &res)
	if err != nil {
		return res, fmt.Errorf("dns: due domains: %w", err)
	}
	if o.openCache != nil {
		if o.Cache, err = o.openCache(); err != nil {
			return res, err
		}
	}
	if len(o.Force) > 0 {
		seen := make(map[string]bool, len(o.Force))
		forced := make([]string, 0, len(o.Force)+len(due))
		for _, d := range o.Force {
			if !seen[d] {
				seen[d] = true
				forced = append(forced, d)
			}
		}
		for _, d := range due {
			if !seen[d] {
				forced = append(forced, d)
			}
		}
		due = forced
	}
	res.Due = len(due)
	if o.Budget > 0 && len(due) > o.Budget {
		res.Deferred = len(due) - o.Budget
		due = due[:o.Budget]
	}
	done, err := readMailJournal(o.Journal)
	if err != nil {
		return res, err
	}
	// A journaled answer the cache missed (killed between the two) is
	// recorded now; the night's counts include every run's lookups.
	for _, ob := range done {
		e, found, err := o.Cache.MailPathOf(ctx, ob.Domain)
		if err != nil {
			return res, fmt.Errorf("dns: cache %s: %w", ob.Domain, err)
		}
		if !found || e.CheckedAt.Before(ob.CheckedAt) {
			if _, err := o.Cache.RecordMailPath(ctx, ob, o.Every); err != nil {
				return res, fmt.Errorf("dns: record %s: %w", ob.Domain, err)
			}
		}
		res.count(ob)
	}
	res.Resumed = len(done)
	var todo []string
	for _, d := range due {
		if _, ok := done[d]; !ok {
			todo = append(todo, d)
		}
	}
	if len(todo) > 0 {
		before := res.LookedUp
		if err := o.lookup(ctx, todo, &res); err != nil {
			return res, err
		}
		res.Deferred += len(todo) - (res.LookedUp - before)
	}
	exported := false
	if len(done) > 0 || len(todo) > 0 || !fileExists(o.LinksCopy) {
		if err := os.MkdirAll(filepath.Dir(o.LinksCopy), 0o750); err != nil {
			return res, fmt.Errorf("dns: %w", err)
		}
		if _, err := cache.ExportLinks(ctx, o.Cache, o.LinksCopy); err != nil {
			return res, fmt.Errorf("dns: links copy: %w", err)
		}
		exported = true
	}
	var tonight []string
	if len(done)+len(todo) > 0 {
		if tonight, err = sortMailJournal(o.Journal); err != nil {
			return res, err
		}
	}
	if err := o.writeTonight(ctx, tonight); err != nil {
		return res, err
	}
	if err := linkStates(o.LinksCopy, o.NightLinks); err != nil {
		return res, fmt.Errorf("dns: %w", err)
	}
	if exported {
		// mailDue counted the copy as it was: fold the new one (the plan
		// reads it next) and count it.
		if err := refreshMailSchedule(ctx, o.LinksCopy, o.Schedule, &res); err != nil {
			return res, fmt.Errorf("dns: %w", err)
		}
	} else {
		res.DependencyDomains = deps
	}
	return res, nil
}

func (r *MailPathResult) count(ob cache.MailObservation) {
	r.LookedUp++
	r.Queries += ob.Queries
	r.Outcomes["mx/"+ob.MX]++
	r.Outcomes["ns/"+ob.NS]++
}

// lookup asks the resolver about todo, journaling each answer before the
// cache records it (as resolve does), concurrently.
func (o MailPathOptions) lookup(ctx context.Context, todo []string, res *MailPathResult) error {
	r, err := o.Resolver()
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	jf, err := os.OpenFile(o.Journal, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("dns: open journal: %w", err)
	}
	defer jf.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu      sync.Mutex
		firstEr error
		wg      sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		if firstEr == nil {
			firstEr = err
		}
		mu.Unlock()
		cancel()
	}
	// A resolver that answers nothing conclusive, lookup after lookup, is
	// unreachable or broken: the rest of the night's mail paths wait for
	// tomorrow rather than spend hours on timeouts.
	halt := make(chan struct{})
	failing := 0
	jobs := make(chan string)
	for range min(max(o.Concurrency, 1), len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range jobs {
				a, err := r.Lookup(ctx, d)
				if ctx.Err() != nil {
					return // cancelled: not an answer; it stays due
				}
				if err != nil {
					fail(fmt.Errorf("dns %s: %w", d, err))
					return
				}
				if a.CheckedAt.IsZero() {
					a.CheckedAt = o.Now
				}
				ob := MailObservation(a)
				b, err := json.Marshal(ob)
				if err != nil {
					fail(err)
					return
				}
				mu.Lock()
				_, err = jf.Write(append(b, '\n'))
				mu.Unlock()
				if err != nil {
					fail(fmt.Errorf("dns: journal: %w", err))
					return
				}
				if _, err := o.Cache.RecordMailPath(context.WithoutCancel(ctx), ob, o.Every); err != nil {
					fail(fmt.Errorf("dns: record %s: %w", d, err))
					return
				}
				mu.Lock()
				res.count(ob)
				if ob.MXConclusive || ob.NSConclusive {
					failing = 0
				} else if failing++; failing == unreachableAfter {
					res.Unreachable = true
					close(halt)
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, d := range todo {
		select {
		case jobs <- d:
		case <-ctx.Done():
			break feed
		case <-halt:
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err := jf.Sync(); err != nil && firstEr == nil {
		firstEr = fmt.Errorf("dns: sync journal: %w", err)
	}
	if firstEr != nil {
		return firstEr
	}
	return ctx.Err()
}

// writeTonight writes the mail paths of tonight's domains (the journal's,
// sorted), as the cache now holds them, to NightDNS.
func (o MailPathOptions) writeTonight(ctx context.Context, domains []string) error {
	if o.NightDNS == "" {
		return nil
	}
	_, err := cache.WriteLinks(o.NightDNS, func(add func(cache.MailPath) error) error {
		for _, d := range domains {
			e, found, err := o.Cache.MailPathOf(ctx, d)
			if err != nil {
				return err
			}
			if found {
				if err := add(e); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("dns: tonight's mail paths: %w", err)
	}
	return nil
}

// sortMailJournal rewrites the journal in domain order, the latest line
// per domain (the lines came in the order answers arrived, and a night
// run again writes the same file), and returns its domains in that order.
func sortMailJournal(path string) ([]string, error) {
	done, err := readMailJournal(path)
	if err != nil {
		return nil, err
	}
	domains := slices.Sorted(maps.Keys(done))
	err = atomicfile.WriteFrom(path, 0o640, func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		enc := json.NewEncoder(bw)
		for _, d := range domains {
			if err := enc.Encode(done[d]); err != nil {
				return err
			}
		}
		return bw.Flush()
	})
	if err != nil {
		return nil, fmt.Errorf("dns: journal: %w", err)
	}
	return domains, nil
}

// readMailJournal reads tonight's DNS journal: the latest observation per
// domain. A torn last line (a kill mid-write) is ignored: that lookup is
// asked again.
func readMailJournal(path string) (map[string]cache.MailObservation, error) {
	out := map[string]cache.MailObservation{}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dns journal: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var ob cache.MailObservation
		if json.Unmarshal(sc.Bytes(), &ob) != nil || ob.Domain == "" {
			continue
		}
		out[ob.Domain] = ob
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dns journal %s: %w", path, err)
	}
	return out, nil
}

// mailDependenciesOf returns the dependency domains of domains in the
// links file, sorted.
func mailDependenciesOf(ctx context.Context, links string, domains []string) ([]string, error) {
	if !fileExists(links) {
		return nil, nil
	}
	db, err := duck.OpenMemory()
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return queryStrings(ctx, db, `SELECT DISTINCT dep FROM read_parquet(?)
		WHERE dep IS NOT NULL AND list_contains(?::VARCHAR[], domain) ORDER BY dep`, links, domains)
}

// refreshMailSchedule folds the links copy into its schedule and counts
// its links and distinct dependencies.
func refreshMailSchedule(ctx context.Context, links, schedule string, res *MailPathResult) error {
	db, err := duck.OpenMemory()
	if err != nil {
		return err
	}
	defer db.Close()
	s, _, err := openMailSchedule(ctx, opened(db), links, schedule)
	res.Links, res.Dependencies = s.meta.LinkRows, s.meta.Dependencies
	return err
}
