package emails

import "fmt"

// idSet is the set of ids a source has yielded, to find duplicates among a
// night's millions of rows. Ids are usually a serial key, dense from 1: a
// bitset holds those in one bit each (10,000,000 ids in 1.25 MB, where a
// map would take hundreds). The bitset covers ids [0, 64·len(bits)) and
// grows to take a larger id as long as it stays within 64 bits per id seen
// (and at least 2 MB), so scattered ids cannot make it huge; the ids it
// cannot take (negative, or too far out) go to a map. An id is in exactly
// one of the two: growing the bitset moves the map's ids it now covers.
type idSet struct {
	bits  []uint64
	n     int64 // ids added
	other map[int64]struct{}
}

// idSetMinWords is the bitset size any source may grow to (2 MB: every id
// below 16,777,216).
const idSetMinWords = 1 << 18

// add records id and reports whether it was already in the set.
func (s *idSet) add(id int64) (dup bool) {
	s.n++
	if id >= 0 {
		w := uint64(id) >> 6
		if w >= uint64(len(s.bits)) {
			s.grow(w)
		}
		if w < uint64(len(s.bits)) {
			m := uint64(1) << (uint64(id) & 63)
			if s.bits[w]&m != 0 {
				return true
			}
			s.bits[w] |= m
			return false
		}
	}
	if _, ok := s.other[id]; ok {
		return true
	}
	if s.other == nil {
		s.other = map[int64]struct{}{}
	}
	s.other[id] = struct{}{}
	return false
}

// grow makes the bitset cover word w when the bound allows it, at least
// doubling it so that growing costs O(1) per id.
func (s *idSet) grow(w uint64) {
	limit := uint64(max(s.n, idSetMinWords))
	if w >= limit {
		return
	}
	n := min(max(w+1, 2*uint64(len(s.bits)), 1024), limit)
	bits := make([]uint64, n)
	copy(bits, s.bits)
	s.bits = bits
	for id := range s.other {
		if id >= 0 && uint64(id)>>6 < n {
			s.bits[uint64(id)>>6] |= 1 << (uint64(id) & 63)
			delete(s.other, id)
		}
	}
}

// duplicateID is the reason a later row with an id already seen is left
// out; what names the earlier one ("line", "row") depends on the source.
func duplicateID(id int64, earlier string) string {
	return fmt.Sprintf("duplicate id %d: an earlier %s has the same id (the first one is kept)", id, earlier)
}
