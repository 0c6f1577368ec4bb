package pipeline

import (
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func stringArray(t *testing.T, vals []string, valid []bool) *array.String {
	t.Helper()
	b := array.NewStringBuilder(memory.DefaultAllocator)
	defer b.Release()
	b.AppendValues(vals, valid)
	a := b.NewStringArray()
	t.Cleanup(a.Release)
	return a
}

// TestSortedColumn walks sorted, unsorted and sliced columns (a slice's
// values start past its buffer's first offset) with seek and find, as the
// merge walks of the dns stage and the plan do.
func TestSortedColumn(t *testing.T) {
	whole := stringArray(t, []string{"zz.example", "a.example", "b.example", "c.example", "d.example", "e.example"}, nil)
	slice := array.NewSlice(whole, 1, 5).(*array.String) // a b c d
	t.Cleanup(slice.Release)
	for _, tc := range []struct {
		name string
		a    *array.String
		want []string // the walk's values, in order
		rows []int    // their file rows
	}{
		{"sorted", stringArray(t, []string{"a.example", "b.example", "d.example"}, nil), []string{"a.example", "b.example", "d.example"}, []int{0, 1, 2}},
		{"unsorted with a null", stringArray(t, []string{"d.example", "", "a.example", "b.example"}, []bool{true, false, true, true}),
			[]string{"a.example", "b.example", "d.example"}, []int{2, 3, 0}},
		{"slice", slice, []string{"a.example", "b.example", "c.example", "d.example"}, []int{0, 1, 2, 3}},
		{"empty", stringArray(t, nil, nil), nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newSortedColumn(tc.a)
			if c.n != len(tc.want) {
				t.Fatalf("n = %d, want %d", c.n, len(tc.want))
			}
			for i, w := range tc.want {
				if got := c.value(i); got != w || c.row(i) != tc.rows[i] {
					t.Errorf("position %d: %q at row %d, want %q at row %d", i, got, c.row(i), w, tc.rows[i])
				}
			}
			// A walk over names in order, some absent, finds exactly the present ones.
			probe := []string{"", "a.example", "aa.example", "b.example", "c.example", "d.example", "e.example", "zzz"}
			j := 0
			for _, v := range probe {
				r, ok := c.seek(&j, v)
				k := slices.Index(tc.want, v)
				if ok != (k >= 0) || (ok && r != tc.rows[k]) {
					t.Errorf("seek(%q) = %d, %v; want found %v at row %d", v, r, ok, k >= 0, k)
				}
				fr, fok := c.find(v)
				if fok != ok || fr != r {
					t.Errorf("find(%q) = %d, %v; seek gave %d, %v", v, fr, fok, r, ok)
				}
			}
		})
	}
}
