package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lapse-dev/lapse/cache"
	"github.com/lapse-dev/lapse/internal/atomicfile"
	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sources/status"
)

// ResolveOptions configure the resolve stage.
type ResolveOptions struct {
	Plan     Plan
	Provider status.Provider
	Cache    DomainCache
	// Concurrency bounds the lookups in flight (the providers bound
	// themselves further per host).
	Concurrency int
	Progress    Progress
	Log         *slog.Logger
	// Journal is tonight's lookup journal: every answer is appended before
	// it is recorded in the cache, so a resumed night knows what it did.
	Journal string
	// StopAfter, when > 0, cancels the stage after that many lookups
	// (tests: a Ctrl-C at a known point).
	StopAfter int
	// Now stamps answers built from provider errors.
	Now func() time.Time
}

// ResolveResult is tonight's lookups: every answer of the plan, including
// those of an earlier interrupted run of the same night.
type ResolveResult struct {
	Answers []lifecycle.Lifecycle // sorted by domain
	// EarlierAnswers are the night's lookups made under an earlier plan
	// (the journal before its last plan mark: a finished night run again
	// with --force) of domains this plan did not ask again, the latest per
	// domain, sorted by domain. They are tonight's observations too.
	EarlierAnswers []lifecycle.Lifecycle
	// Entries are the cache entries the answers (earlier ones included)
	// made, by domain.
	Entries map[string]cache.Entry
	// Resumed answers came from the journal of an interrupted run.
	Resumed int
	// Earlier is len(EarlierAnswers).
	Earlier int
}

// NightAnswers is every lookup of the night, one per domain (the latest),
// sorted by domain: Answers and EarlierAnswers.
func (r ResolveResult) NightAnswers() []lifecycle.Lifecycle {
	if len(r.EarlierAnswers) == 0 {
		return r.Answers
	}
	out := make([]lifecycle.Lifecycle, 0, len(r.Answers)+len(r.EarlierAnswers))
	out = append(append(out, r.Answers...), r.EarlierAnswers...)
	slices.SortFunc(out, func(a, b lifecycle.Lifecycle) int { return strings.Compare(a.Domain, b.Domain) })
	return out
}

// Lookups counts the night's answers' evidence (NightAnswers) by source and
// by "source/outcome": the requests the night sent. A source that had no server for the TLD
// (status.ErrNoServer: the chain fell back at once) sent none and is not
// counted.
func (r ResolveResult) Lookups() (bySource, byOutcome map[string]int) {
	bySource, byOutcome = map[string]int{}, map[string]int{}
	noServer := status.ErrNoServer.Error()
	for _, lc := range r.NightAnswers() {
		ev := lc.Evidence
		if len(ev) == 0 {
			ev = []lifecycle.Evidence{lc.AsEvidence()}
		}
		for _, e := range ev {
			if e.Error != "" && strings.Contains(e.Error, noServer) {
				continue
			}
			src := string(e.Source)
			if src == "" {
				src = "unknown"
			}
			outcome := string(e.State)
			if e.Error != "" {
				outcome = "error"
			}
			bySource[src]++
			byOutcome[src+"/"+outcome]++
		}
	}
	return bySource, byOutcome
}

// Resolve looks up the planned domains through the provider and records
// each answer in the cache. On cancellation it stops at once: answers
// received are recorded, in-flight lookups are dropped (they stay due), and
// the cache stays consistent (each Record is one transaction).
func Resolve(ctx context.Context, o ResolveOptions) (ResolveResult, error) {
	var res ResolveResult
	if o.Progress == nil {
		o.Progress = NoProgress{}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Concurrency < 1 {
		o.Concurrency = 1
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	jr, err := readJournal(o.Journal)
	if err != nil {
		return res, err
	}
	done := jr.current
	// An answer journaled but not yet in the cache (killed between the two)
	// is recorded now.
	res.Entries = make(map[string]cache.Entry, len(o.Plan.Lookups))
	for _, lc := range done {
		e, found, err := o.Cache.Get(ctx, lc.Domain)
		if err != nil {
			return res, fmt.Errorf("resolve: cache %s: %w", lc.Domain, err)
		}
		if !found || e.LastCheckedAt.Before(lc.CheckedAt) {
			if e, err = o.Cache.Record(ctx, lc); err != nil {
				return res, fmt.Errorf("resolve: record %s: %w", lc.Domain, err)
			}
		}
		res.Entries[lc.Domain] = e
	}
	var todo []string
	for _, d := range o.Plan.Lookups {
		if _, ok := done[d]; !ok {
			todo = append(todo, d)
		}
	}
	res.Resumed = len(done)
	if len(done) > 0 {
		o.Log.Info("resolve resumes", "done", len(done), "left", len(todo))
	}

	jf, err := os.OpenFile(o.Journal, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return res, fmt.Errorf("resolve: open journal: %w", err)
	}
	defer jf.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	o.Progress.Start(len(todo))
	defer o.Progress.Done()

	var (
		mu      sync.Mutex
		answers = make([]lifecycle.Lifecycle, 0, len(done)+len(todo))
		firstEr error
		count   int
	)
	for _, lc := range done {
		answers = append(answers, lc)
	}
	jobs := make(chan string)
	var wg sync.WaitGroup
	for range min(o.Concurrency, max(len(todo), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range jobs {
				lc, err := o.Provider.Lookup(ctx, d)
				if ctx.Err() != nil {
					// Cancelled mid-lookup: not an answer. It stays due.
					return
				}
				if err != nil {
					now := o.Now().UTC()
					lc = lifecycle.FromError(d, o.Provider.Name(), err, now)
					if lc.CheckedAt.IsZero() {
						lc.CheckedAt = now
					}
				}
				if lc.Domain == "" {
					lc.Domain = d
				}
				b, jerr := json.Marshal(lc)
				mu.Lock()
				if jerr == nil {
					_, jerr = jf.Write(append(b, '\n'))
				}
				mu.Unlock()
				var e cache.Entry
				if jerr == nil {
					// Record with a context that survives a Ctrl-C arriving
					// now: the journal already holds the answer.
					e, jerr = o.Cache.Record(context.WithoutCancel(ctx), lc)
				}
				mu.Lock()
				if jerr != nil && firstEr == nil {
					firstEr = fmt.Errorf("resolve %s: %w", d, jerr)
					cancel()
				}
				answers = append(answers, lc)
				res.Entries[d] = e
				count++
				stop := o.StopAfter > 0 && count >= o.StopAfter
				mu.Unlock()
				o.Progress.Add(1)
				if stop {
					cancel()
				}
			}
		}()
	}
feed:
	for _, d := range todo {
		select {
		case jobs <- d:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err := jf.Sync(); err != nil && firstEr == nil {
		firstEr = fmt.Errorf("resolve: sync journal: %w", err)
	}
	if firstEr != nil {
		return res, firstEr
	}
	if err := ctx.Err(); err != nil {
		if o.StopAfter > 0 && count >= o.StopAfter {
			return res, fmt.Errorf("resolve stopped after %d lookups: %w", count, context.Canceled)
		}
		return res, err
	}
	slices.SortFunc(answers, func(a, b lifecycle.Lifecycle) int {
		switch {
		case a.Domain < b.Domain:
			return -1
		case a.Domain > b.Domain:
			return 1
		}
		return 0
	})
	res.Answers = answers
	if err := res.keepEarlier(ctx, o.Cache, jr.earlier); err != nil {
		return res, err
	}
	// The journal's lines came in the order answers arrived; rewritten in
	// domain order it is the same file on every run of the night. What
	// came before the last plan mark (earlier runs of the night) is kept
	// as it was.
	err = atomicfile.WriteFrom(o.Journal, 0o640, func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		if jr.prefix > 0 {
			f, err := os.Open(o.Journal)
			if err != nil {
				return err
			}
			_, err = io.CopyN(bw, f, jr.prefix)
			f.Close()
			if err != nil {
				return fmt.Errorf("copy the earlier lookups: %w", err)
			}
		}
		enc := json.NewEncoder(bw)
		for _, lc := range answers {
			if err := enc.Encode(lc); err != nil {
				return err
			}
		}
		return bw.Flush()
	})
	if err != nil {
		return res, fmt.Errorf("resolve: journal: %w", err)
	}
	return res, nil
}

// keepEarlier sets the answers of earlier plans of the night (earlier, by
// domain) that this plan did not ask again, with their cache entries; an
// answer the cache missed (a run killed between journal and cache) is
// recorded now, as for a resumed plan.
func (r *ResolveResult) keepEarlier(ctx context.Context, c DomainCache, earlier map[string]lifecycle.Lifecycle) error {
	var domains []string
	for d := range earlier {
		if _, asked := r.Entries[d]; !asked {
			domains = append(domains, d)
		}
	}
	if len(domains) == 0 {
		return nil
	}
	slices.Sort(domains)
	entries, err := c.GetMany(ctx, domains)
	if err != nil {
		return fmt.Errorf("resolve: cache entries of the earlier lookups: %w", err)
	}
	for i, d := range domains {
		lc, e := earlier[d], entries[i]
		if e.Domain == "" || e.LastCheckedAt.Before(lc.CheckedAt) {
			if e, err = c.Record(ctx, lc); err != nil {
				return fmt.Errorf("resolve: record %s: %w", d, err)
			}
		}
		r.Entries[d] = e
		r.EarlierAnswers = append(r.EarlierAnswers, lc)
	}
	r.Earlier = len(r.EarlierAnswers)
	return nil
}

// planMark starts a journal line that marks a new plan (StartJournalSegment):
// the lines before it are lookups of earlier plans of the night. It has no
// "domain", so a reader of lookups ignores it.
const planMark = `{"lapse_plan":`

// journalMark is the plan mark's line.
type journalMark struct {
	Plan struct {
		AsOf    time.Time `json:"as_of"`
		Lookups int       `json:"lookups"`
	} `json:"lapse_plan"`
}

// StartJournalSegment marks in the night's journal that a new plan was
// made: a resolve of it resumes only from the answers after the mark, and
// keeps those before it as the night's earlier lookups. A missing or empty
// journal needs no mark; a mark with no lookup after it (a plan made again
// before resolve began) is replaced, so the file is the same as if the
// plan had been made once.
func StartJournalSegment(path string, p Plan) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	size := fi.Size()
	if size == 0 {
		return nil
	}
	// The last line, from the tail of the file: a mark is short, so a last
	// line longer than the tail is a lookup.
	tail := make([]byte, min(size, 4096))
	tailAt := size - int64(len(tail))
	if _, err := f.ReadAt(tail, tailAt); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	torn := tail[len(tail)-1] != '\n'
	body := tail
	if !torn {
		body = tail[:len(tail)-1]
	}
	end := size // where the mark goes
	if i := bytes.LastIndexByte(body, '\n'); i >= 0 || tailAt == 0 {
		if bytes.HasPrefix(body[i+1:], []byte(planMark)) {
			end = tailAt + int64(i+1) // replace the lone mark
		}
	}
	if end < size {
		if err := f.Truncate(end); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
	}
	var m journalMark
	m.Plan.AsOf, m.Plan.Lookups = p.AsOf.UTC(), len(p.Lookups)
	mark, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	line := append(mark, '\n')
	if end == size && torn {
		// A torn last line (a kill while writing): end it, so the mark is
		// a line of its own.
		line = append([]byte{'\n'}, line...)
	}
	if _, err := f.WriteAt(line, end); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// nightJournal is what the journal says of the night's lookups.
type nightJournal struct {
	// current is the answers after the last plan mark, failed lookups left
	// out (they are asked again): a resumed resolve's done set.
	current map[string]lifecycle.Lifecycle
	// earlier is the answers before it, the latest per domain, failures
	// included: lookups of earlier plans of the night.
	earlier map[string]lifecycle.Lifecycle
	// prefix is the length of the file up to and including the last mark.
	prefix int64
}

// readJournal reads tonight's answered lookups from the journal; a torn
// last line (a kill while writing) is ignored, as the answer it held was
// not recorded either.
func readJournal(path string) (nightJournal, error) {
	j := nightJournal{current: map[string]lifecycle.Lifecycle{}, earlier: map[string]lifecycle.Lifecycle{}}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return j, nil
	}
	if err != nil {
		return j, fmt.Errorf("resolve: open journal: %w", err)
	}
	defer f.Close()
	seg := map[string]lifecycle.Lifecycle{}
	var off int64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		off += int64(len(line)) + 1
		if bytes.HasPrefix(line, []byte(planMark)) {
			for d, lc := range seg {
				j.earlier[d] = lc
			}
			seg = map[string]lifecycle.Lifecycle{}
			j.prefix = off
			continue
		}
		var lc lifecycle.Lifecycle
		if err := json.Unmarshal(line, &lc); err != nil || lc.Domain == "" {
			continue
		}
		seg[lc.Domain] = lc
	}
	if err := sc.Err(); err != nil {
		return j, fmt.Errorf("resolve: read journal %s: %w", path, err)
	}
	for d, lc := range seg {
		// A failed lookup is asked again: the resumed run may be the one
		// after the network or the key was fixed.
		if lc.State == lifecycle.Unknown && lc.Error != "" {
			continue
		}
		j.current[d] = lc
	}
	return j, nil
}
