package report

import (
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/notebooks"
)

func day(d int) time.Time { return time.Date(2026, 1, d, 0, 0, 0, 0, time.UTC) }

func TestChartsDrawEveryValue(t *testing.T) {
	long := notebooks.Result{Columns: []string{"date", "reason", "n"}, Types: []string{"DATE", "VARCHAR", "BIGINT"}, Rows: [][]any{
		{day(1), "domain_available", int64(3)}, {day(1), "domain_redemption", int64(2)},
		{day(2), "domain_redemption", big.NewInt(5)}, {day(4), "domain_available", int64(0)},
		{day(5), "domain_available", nil},
	}}
	wide := notebooks.Result{Columns: []string{"date", "a", "b"}, Types: []string{"DATE", "BIGINT", "DOUBLE"}, Rows: [][]any{
		{day(1), int64(10), 1.5}, {day(2), int64(1000), nil}, {day(3), int64(0), 2.0}, {nil, int64(4), 4.0},
	}}
	cats := notebooks.Result{Columns: []string{"tld", "state", "n"}, Types: []string{"VARCHAR", "VARCHAR", "BIGINT"}, Rows: [][]any{
		{".com", "registered", int64(100)}, {".com", "redemption", int64(4)}, {".org", "registered", int64(30)}, {"a <b>", "grace", int64(1)},
	}}
	hist := notebooks.Result{Columns: []string{"lead_days", "domains"}, Types: []string{"BIGINT", "BIGINT"}, Rows: [][]any{
		{int64(-2), int64(1)}, {int64(0), int64(4)}, {int64(13), int64(2)}, {nil, int64(9)},
	}}
	raw := notebooks.Result{Columns: []string{"lead_days"}, Types: []string{"BIGINT"}, Rows: [][]any{{int64(1)}, {int64(1)}, {int64(3)}, {int64(7)}}}
	for _, tc := range []struct {
		hint  string
		r     notebooks.Result
		mark  string
		want  int
		texts []string
	}{
		{"line x=date y=n series=reason", long, `<circle class="pt"`, 4, []string{"2026-01-02 · domain_redemption: 5", `data-series="domain_available"`}},
		{"bar x=date y=n series=reason", long, `<rect class="bar"`, 4, []string{"2026-01-03"}}, // the empty night keeps its slot
		{"line x=date y=a,b scale=log", wide, `<circle class="pt"`, 5, []string{"1,000", ">100<", ">1<"}},
		{"bar x=date y=a,b", wide, `<rect class="bar"`, 5, []string{`data-series="b"`}},
		{"bar x=tld y=n series=state horizontal", cats, `<rect class="bar"`, 4, []string{"a &lt;b&gt;", "104"}},
		{"histogram x=lead_days y=domains unit=days", hist, `<rect class="bar"`, 3, []string{"13 days: 2"}},
		{"histogram x=lead_days", raw, `<rect class="bar"`, 3, []string{"1: 2"}},
		{"line x=tld y=n", cats, `<circle class="pt"`, 4, nil},
	} {
		c, err := notebooks.ParseChart(tc.hint)
		if err != nil {
			t.Fatal(err)
		}
		h, err := renderChart(c, tc.r)
		if err != nil {
			t.Errorf("%s: %v", tc.hint, err)
			continue
		}
		s := string(h)
		if got := strings.Count(s, tc.mark); got != tc.want {
			t.Errorf("%s: %d marks, want %d", tc.hint, got, tc.want)
		}
		for _, w := range tc.texts {
			if !strings.Contains(s, w) {
				t.Errorf("%s: lacks %q", tc.hint, w)
			}
		}
		if strings.Contains(s, "NaN") || strings.Contains(s, "Inf") {
			t.Errorf("%s: NaN or Inf in the SVG", tc.hint)
		}
	}
	// States stack in lifecycle order, whatever the query's order.
	c, _ := notebooks.ParseChart("bar x=tld y=n series=state horizontal")
	h, _ := renderChart(c, cats)
	if s := string(h); strings.Index(s, `data-series="registered"`) > strings.Index(s, `data-series="grace"`) ||
		strings.Index(s, `data-series="grace"`) > strings.Index(s, `data-series="redemption"`) {
		t.Errorf("states out of lifecycle order")
	}
	for hint, want := range map[string]string{
		"line x=date y=reason":      `y column "reason" holds VARCHAR values, not numbers`,
		"bar x=nope y=n":            `x column "nope" is not in the result`,
		"histogram x=reason y=n":    `histogram x column "reason" holds VARCHAR`,
		"line x=date y=n series=zz": `series column "zz"`,
	} {
		c, err := notebooks.ParseChart(hint)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := renderChart(c, long); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", hint, err, want)
		}
	}
	c, _ = notebooks.ParseChart("line x=date y=n")
	if h, err := renderChart(c, notebooks.Result{Columns: []string{"date", "n"}}); err != nil || !strings.Contains(string(h), "No rows yet") {
		t.Errorf("empty: %q %v", h, err)
	}
}
