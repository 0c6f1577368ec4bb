package pipeline

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// readParquetColumns reads the named top-level columns of a Parquet file,
// in the order named, each as one array; a column the file lacks is nil
// (the caller says whether it may be missing). The files a night walks
// in Go (the domain list, the mail schedule, the states copy's schedule
// columns) are read this way: a merge of two sorted lists costs less than
// DuckDB's hash join of them.
func readParquetColumns(ctx context.Context, path string, cols ...string) ([]arrow.Array, error) {
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return nil, err
	}
	defer pf.Close()
	sc := pf.MetaData().Schema
	var leaves []int
	for _, name := range cols {
		for i := range sc.NumColumns() {
			if p := sc.Column(i).ColumnPath(); len(p) > 0 && p[0] == name {
				leaves = append(leaves, i)
			}
		}
	}
	if len(leaves) == 0 {
		return make([]arrow.Array, len(cols)), nil
	}
	slices.Sort(leaves)
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{Parallel: true, BatchSize: 1 << 16}, memory.DefaultAllocator)
	if err != nil {
		return nil, err
	}
	groups := make([]int, pf.NumRowGroups())
	for i := range groups {
		groups[i] = i
	}
	t, err := fr.ReadRowGroups(ctx, leaves, groups)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer t.Release()
	out := make([]arrow.Array, len(cols))
	for i, name := range cols {
		j := slices.IndexFunc(t.Schema().Fields(), func(f arrow.Field) bool { return f.Name == name })
		if j < 0 {
			continue
		}
		a, err := array.Concatenate(t.Column(j).Data().Chunks(), memory.DefaultAllocator)
		if err != nil {
			releaseArrays(out)
			return nil, fmt.Errorf("%s: %s: %w", path, name, err)
		}
		out[i] = a
	}
	return out, nil
}

// releaseArrays releases what readParquetColumns returned.
func releaseArrays(cols []arrow.Array) {
	for _, c := range cols {
		if c != nil {
			c.Release()
		}
	}
}

// columnsOf reads path's columns (readParquetColumns) and checks the
// type of each: into[i] must be a pointer to the array type wanted, nil
// to skip; a column missing from the file is an error unless optional,
// when it stays nil.
func columnsOf(ctx context.Context, path string, names []string, optional map[string]bool, into ...any) ([]arrow.Array, error) {
	cols, err := readParquetColumns(ctx, path, names...)
	if err != nil {
		return nil, err
	}
	for i, a := range cols {
		if a == nil {
			if !optional[names[i]] {
				releaseArrays(cols)
				return nil, fmt.Errorf("%s has no %s column (written by an older lapse?)", path, names[i])
			}
			continue
		}
		var ok bool
		switch p := into[i].(type) {
		case **array.String:
			*p, ok = a.(*array.String)
		case **array.Timestamp:
			*p, ok = a.(*array.Timestamp)
			if ok && (*p).DataType().(*arrow.TimestampType).Unit != arrow.Microsecond {
				ok = false
			}
		case **array.List:
			*p, ok = a.(*array.List)
		}
		if !ok {
			releaseArrays(cols)
			return nil, fmt.Errorf("%s: column %s is %s, not what this lapse writes", path, names[i], a.DataType())
		}
	}
	return cols, nil
}

// microAt is a microsecond timestamp column's value at row r, ok false
// when null (or the column is missing).
func microAt(a *array.Timestamp, r int) (int64, bool) {
	if a == nil || a.IsNull(r) {
		return 0, false
	}
	return int64(a.Value(r)), true
}

// sortedOrder is the order in which to walk c's rows by value: nil when
// they are already strictly increasing (as lapse writes its files), else
// the non-null rows sorted (a file folded elsewhere is walked all the
// same).
func (c sortedColumn) sortedOrder() []int {
	a := c.col
	if c.sortedDistinct() {
		return nil
	}
	order := make([]int, 0, a.Len())
	for i := range a.Len() {
		if !a.IsNull(i) {
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order, func(x, y int) int { return strings.Compare(c.at(x), c.at(y)) })
	return order
}

// sortedDistinct reports whether c's values are in strictly increasing
// order, with no null.
func (c sortedColumn) sortedDistinct() bool {
	if c.col.NullN() > 0 {
		return false
	}
	for i := 1; i < c.n; i++ {
		if c.at(i-1) >= c.at(i) {
			return false
		}
	}
	return true
}

// sortedColumn is a string column walked in value order (sortedOrder).
// vals and offs view col's value bytes and offsets (a String's Value
// checks and offsets its index on every call, a third of a night's merge
// walks): they live as long as col.
type sortedColumn struct {
	col   *array.String
	order []int
	n     int
	vals  string
	offs  []int32
}

func newSortedColumn(a *array.String) sortedColumn {
	c := sortedColumn{col: a, n: a.Len()}
	if c.n == 0 {
		return c
	}
	c.offs = a.ValueOffsets()
	if b := a.ValueBytes(); len(b) > 0 {
		c.vals = unsafe.String(&b[0], len(b))
	}
	c.order = c.sortedOrder()
	if c.order != nil {
		c.n = len(c.order)
	}
	return c
}

// row is the file row at position i of the walk.
func (c sortedColumn) row(i int) int {
	if c.order == nil {
		return i
	}
	return c.order[i]
}

func (c sortedColumn) value(i int) string { return c.at(c.row(i)) }

// at is file row r's value ("" for a null).
func (c sortedColumn) at(r int) string {
	base := c.offs[0]
	return c.vals[c.offs[r]-base : c.offs[r+1]-base]
}

// seek advances position i to the first value ≥ v and reports the row
// there when it equals v: a merge walk, for callers visiting v in order.
func (c sortedColumn) seek(i *int, v string) (row int, ok bool) {
	// One comparison per value passed: the walks visit every domain of a
	// night, most found at i itself.
	for ; *i < c.n; *i++ {
		switch strings.Compare(c.value(*i), v) {
		case 0:
			return c.row(*i), true
		case 1:
			return 0, false
		}
	}
	return 0, false
}

// lowerBound is the first position of the walk whose value is ≥ v.
func (c sortedColumn) lowerBound(v string) int {
	return sort.Search(c.n, func(i int) bool { return c.value(i) >= v })
}

// find is the row holding v, by binary search.
func (c sortedColumn) find(v string) (row int, ok bool) {
	lo := c.lowerBound(v)
	if lo < c.n && c.value(lo) == v {
		return c.row(lo), true
	}
	return 0, false
}
