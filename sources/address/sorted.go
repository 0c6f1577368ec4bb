package address

import (
	"bytes"
	"cmp"
	"container/heap"
	"encoding/binary"
	"iter"
	"slices"
	"sync"
)

// sortedEntry is one domain of a sorted list: its first sixteen bytes as
// two big-endian numbers (zero-padded), which order nearly every pair of
// domains without reading their bytes (domains under one provider or
// numbered alike share their first eight), and where the bytes are (a
// domainSet's offset << 32 | length, or an index into a list of strings).
type sortedEntry struct{ k0, k1, v uint64 }

func newSortedEntry(d []byte, v uint64) sortedEntry {
	var b [16]byte
	copy(b[:], d)
	return sortedEntry{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:]), v}
}

// compareEntries orders a and b, whose bytes at returns, in byte order.
func compareEntries(a, b sortedEntry, atA, atB func(uint64) []byte) int {
	if a.k0 != b.k0 {
		return cmp.Compare(a.k0, b.k0)
	}
	if a.k1 != b.k1 {
		return cmp.Compare(a.k1, b.k1)
	}
	return bytes.Compare(atA(a.v), atB(b.v))
}

// sortedList is one worker's domains in byte order, or the sets' rare
// overflow domains.
type sortedList struct {
	ents []sortedEntry
	at   func(v uint64) []byte
}

func (l *sortedList) sort() {
	slices.SortFunc(l.ents, func(a, b sortedEntry) int { return compareEntries(a, b, l.at, l.at) })
}

// SortedDomains yields every distinct registrable domain of the rows
// normalized so far, in byte order: the snapshot's domain list. Each
// worker's set is sorted on its own goroutine and the sorted sets are
// merged, a domain held by several workers yielded once; no string is
// allocated. A yielded slice is valid until the normalizer's next
// Normalize; it must not be changed.
func (s *BatchNormalizer) SortedDomains() iter.Seq[[]byte] {
	return s.sortedDomains
}

func (s *BatchNormalizer) sortedDomains(yield func([]byte) bool) {
	lists := make([]*sortedList, 0, len(s.caches)+1)
	var extra []string
	for _, c := range s.caches {
		set := &c.domains
		l := &sortedList{ents: make([]sortedEntry, 0, set.index.n), at: set.at}
		set.index.each(func(h, v uint64) { l.ents = append(l.ents, newSortedEntry(set.at(v), v)) })
		lists = append(lists, l)
		for d := range set.extra {
			extra = append(extra, d)
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		extra = slices.Compact(extra)
		l := &sortedList{ents: make([]sortedEntry, len(extra)), at: func(v uint64) []byte { return []byte(extra[v]) }}
		for i, d := range extra {
			l.ents[i] = newSortedEntry([]byte(d), uint64(i))
		}
		lists = append(lists, l)
	}
	var wg sync.WaitGroup
	for _, l := range lists {
		wg.Go(l.sort)
	}
	wg.Wait()

	m := make(mergeHeap, 0, len(lists))
	for _, l := range lists {
		if len(l.ents) > 0 {
			m = append(m, &mergeCursor{l: l})
		}
	}
	heap.Init(&m)
	var last []byte
	var lastE sortedEntry
	for len(m) > 0 {
		c := m[0]
		e := c.l.ents[c.i]
		d := c.l.at(e.v)
		if last == nil || e.k0 != lastE.k0 || e.k1 != lastE.k1 || !bytes.Equal(d, last) {
			if !yield(d) {
				return
			}
			last, lastE = d, e
		}
		if c.i++; c.i == len(c.l.ents) {
			heap.Pop(&m)
		} else {
			heap.Fix(&m, 0)
		}
	}
}

type mergeCursor struct {
	l *sortedList
	i int
}

// mergeHeap orders the lists by their next domain.
type mergeHeap []*mergeCursor

func (h mergeHeap) Len() int { return len(h) }
func (h mergeHeap) Less(i, j int) bool {
	return compareEntries(h[i].l.ents[h[i].i], h[j].l.ents[h[j].i], h[i].l.at, h[j].l.at) < 0
}
func (h mergeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)   { *h = append(*h, x.(*mergeCursor)) }
func (h *mergeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
