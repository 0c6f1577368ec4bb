package pipeline

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
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
	auth := make(map[string]bool, len(o.Plan.Authoritative))
	for _, d := range o.Plan.Authoritative {
		auth[d] = true
	}
	jobs := make(chan string)
	var wg sync.WaitGroup
	for range min(o.Concurrency, max(len(todo), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range jobs {
				lc, err := status.LookupWith(ctx, o.Provider, d, o.want(ctx, d, auth[d]))
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

// want is what the chain is told of d (issue 11): with a status-API-first
// chain's refresh in the plan, whether the plan wants RDAP/WHOIS for it,
// and otherwise the status API's flags the last night it was asked (the
// chain asks RDAP/WHOIS when they changed). Any other chain is asked
// plainly.
func (o ResolveOptions) want(ctx context.Context, d string, auth bool) status.Want {
	if o.Plan.Refresh == nil {
		return status.Want{}
	}
	if auth {
		return status.Want{Authoritative: true}
	}
	// A failed read leaves the flags out: the status API's answer stands,
	// and Record (the same cache) reports the failure.
	if e, found, err := o.Cache.Get(ctx, d); err == nil && found && e.StatusCheckedAt != nil {
		return status.Want{PrevFlags: e.StatusFlags}
	}
	return status.Want{}
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
