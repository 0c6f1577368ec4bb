package cache

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// GetMany returns the entry of each of domains, the zero Entry where there
// is none (an entry found always has its Domain set). It is the plan's read
// of a whole night: one Get per domain looks each key up level by level
// and decompresses a table block per key, while walking an iterator over
// the sorted keys reads each block once. Domains that are sorted byte-wise
// and in key form (NormalizeDomain) take that path, split over the cores;
// any other list falls back to one Get per domain.
func (c *Cache) GetMany(ctx context.Context, domains []string) ([]Entry, error) {
	out := make([]Entry, len(domains))
	sorted := slices.IsSorted(domains)
	for _, d := range domains {
		if !sorted || NormalizeDomain(d) != d {
			sorted = false
			break
		}
	}
	if !sorted {
		for i, d := range domains {
			e, found, err := c.Get(ctx, d)
			if err != nil {
				return nil, err
			}
			if found {
				out[i] = e
			}
		}
		return out, nil
	}
	done, err := c.use(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	workers := max(1, min(runtime.GOMAXPROCS(0), len(domains)/1000))
	chunk := (len(domains) + workers - 1) / workers
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*chunk, min((w+1)*chunk, len(domains))
		if lo >= hi {
			continue
		}
		wg.Go(func() {
			errs[w] = c.db.View(func(txn *badger.Txn) error {
				return walk(ctx, txn, domains[lo:hi], out[lo:hi])
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// seekAfter is how many keys walk steps over before it seeks instead: a
// night's domains are most of the cache, so the next one is usually a step
// or two away; a seek pays off over a longer gap.
const seekAfter = 8

// walk fills out[i] with the entry of domains[i] (sorted, in key form)
// from one iterator.
func walk(ctx context.Context, txn *badger.Txn, domains []string, out []Entry) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(keyPrefix)})
	defer it.Close()
	var target []byte
	for i, d := range domains {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		target = append(append(target[:0], keyPrefix...), d...)
		if i == 0 {
			it.Seek(target)
		}
		for steps := 0; it.Valid() && bytes.Compare(it.Item().Key(), target) < 0; steps++ {
			if steps == seekAfter {
				it.Seek(target)
				break
			}
			it.Next()
		}
		if !it.Valid() {
			break // past the last key: no more entries
		}
		item := it.Item()
		if !bytes.Equal(item.Key(), target) {
			continue
		}
		err := item.Value(func(v []byte) error { return decodeInto(item.Key(), v, &out[i]) })
		if err != nil {
			return err
		}
	}
	return nil
}
