package pipeline

import (
	"context"
	"slices"
	"strconv"
	"testing"

	"github.com/lapse-dev/lapse/internal/duck"
)

// TestRuleIn: the condition is written as ranges and selects exactly the
// numbers given, in any order, duplicates and all.
func TestRuleIn(t *testing.T) {
	for _, c := range []struct {
		nums []int
		want string
	}{
		{nil, "false"},
		{[]int{7}, "(rule = 7)"},
		{[]int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 26}, "(rule BETWEEN 1 AND 22 OR rule = 26)"},
		{[]int{19, 9, 10, 18, 11, 9}, "(rule BETWEEN 9 AND 11 OR rule BETWEEN 18 AND 19)"},
	} {
		if got := ruleIn("rule", c.nums); got != c.want {
			t.Errorf("ruleIn(%v) = %q, want %q", c.nums, got, c.want)
		}
	}
	db, err := duck.OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, nums := range [][]int{nil, {3}, {1, 2, 3, 5, 8, 9, 10, 13, 30}, {30, 1, 29, 2, 2}} {
		got, err := queryStrings(context.Background(), db, "SELECT CAST(rule AS VARCHAR) FROM range(0, 40) t(rule) WHERE "+ruleIn("rule", nums)+" ORDER BY rule")
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, n := range slices.Compact(slices.Sorted(slices.Values(nums))) {
			want = append(want, strconv.Itoa(n))
		}
		if !slices.Equal(got, want) {
			t.Errorf("ruleIn(%v) selects %v, want %v", nums, got, want)
		}
	}
}
