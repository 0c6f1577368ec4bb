package pipeline

import (
	"context"
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// readParquetColumns reads the named top-level columns of a Parquet file,
// in the order named; the caller releases each. A night's small side
// files (the domain list, the mail schedule) are read this way when Go
// walks them itself: a merge of two sorted lists costs less than
// DuckDB's hash join of them.
func readParquetColumns(ctx context.Context, path string, cols ...string) ([]*arrow.Chunked, error) {
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return nil, err
	}
	defer pf.Close()
	sc := pf.MetaData().Schema
	var leaves []int
	for _, name := range cols {
		n := len(leaves)
		for i := range sc.NumColumns() {
			if p := sc.Column(i).ColumnPath(); len(p) > 0 && p[0] == name {
				leaves = append(leaves, i)
			}
		}
		if len(leaves) == n {
			return nil, fmt.Errorf("%s has no %s column", path, name)
		}
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
	out := make([]*arrow.Chunked, len(cols))
	for i, name := range cols {
		j := slices.IndexFunc(t.Schema().Fields(), func(f arrow.Field) bool { return f.Name == name })
		if j < 0 {
			releaseChunked(out)
			return nil, fmt.Errorf("%s has no %s column", path, name)
		}
		out[i] = t.Column(j).Data()
		out[i].Retain()
	}
	return out, nil
}

// releaseChunked releases what readParquetColumns returned.
func releaseChunked(cols []*arrow.Chunked) {
	for _, c := range cols {
		if c != nil {
			c.Release()
		}
	}
}
