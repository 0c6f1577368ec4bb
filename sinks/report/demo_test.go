package report_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/notebooks"
	"github.com/lapse-dev/lapse/pipeline/demo"
	"github.com/lapse-dev/lapse/sinks/report"
)

var (
	demoOnce sync.Once
	demoDir  string
	demoErr  error
	demoRoot string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if demoRoot != "" {
		os.RemoveAll(demoRoot)
	}
	os.Exit(code)
}

// demoData runs a multi-night demo once for the package's tests (about
// ten seconds) and returns its folder: DIR/default and DIR/pypi are data
// dirs whose lapse.duckdb holds every night, and whose reports/D/ the
// nightly publish wrote.
func demoData(t *testing.T) string {
	t.Helper()
	demoOnce.Do(func() {
		demoRoot, demoErr = os.MkdirTemp("", "lapse-report-demo-")
		if demoErr != nil {
			return
		}
		demoDir = filepath.Join(demoRoot, "demo")
		_, demoErr = demo.Run(context.Background(), demo.Options{
			Nights: 8, Emails: 1500, Seed: 1, Dir: demoDir,
			Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
			Log:   slog.New(slog.DiscardHandler),
		})
	})
	if demoErr != nil {
		t.Fatalf("demo: %v", demoErr)
	}
	return demoDir
}

// cellSections splits a page into its cells' HTML by id ("cell-3").
func cellSections(page string) map[int]string {
	out := map[int]string{}
	re := regexp.MustCompile(`<section class="cell[^"]*" id="cell-(\d+)">`)
	locs := re.FindAllStringSubmatchIndex(page, -1)
	for i, l := range locs {
		end := len(page)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		var n int
		fmt.Sscan(page[l[2]:l[3]], &n)
		out[n] = page[l[0]:end]
	}
	return out
}

// wantMarks is how many values a chart of r must draw: one mark per
// non-null number in its y columns (a histogram with y: per row with x and
// y set).
func wantMarks(c notebooks.Chart, r notebooks.Result) int {
	n := 0
	xi := r.Col(c.X)
	for _, row := range r.Rows {
		if row[xi] == nil {
			continue
		}
		for _, y := range c.Y {
			if _, ok := notebooks.Number(row[r.Col(y)]); ok {
				n++
			}
		}
	}
	return n
}

// Every notebook renders over the lifecycle DB of a multi-night demo, every
// chart draws exactly the values its query returned, and nothing in any
// page would make a request.
func TestEveryNotebookRendersOverADemo(t *testing.T) {
	ctx := context.Background()
	dir := demoData(t)
	nbs, err := notebooks.All()
	if err != nil {
		t.Fatal(err)
	}
	drawn := map[string]int{}
	for _, policy := range []string{demo.PolicyDefault, demo.PolicyPyPI} {
		db, err := notebooks.OpenReadOnly(filepath.Join(dir, policy, "lapse.duckdb"))
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), policy)
		res, err := report.Build(ctx, db, report.Options{Dir: out, ChangesetRoot: filepath.Join(dir, policy, "changesets")})
		if err != nil {
			t.Fatal(err)
		}
		if err := res.Err(); err != nil {
			t.Errorf("%s: %v", policy, err)
		}
		if len(res.Files) != len(nbs)+1 {
			t.Errorf("%s: %d files, want %d", policy, len(res.Files), len(nbs)+1)
		}
		for _, nb := range nbs {
			b, err := os.ReadFile(filepath.Join(out, nb.Name+".html"))
			if err != nil {
				t.Fatal(err)
			}
			page := string(b)
			report.CheckSelfContained(t, policy+"/"+nb.Name, page)
			sections := cellSections(page)
			for _, c := range nb.Cells() {
				sec, ok := sections[c.Index]
				if !ok {
					t.Errorf("%s %s: no section", policy, c.ID())
					continue
				}
				r, err := notebooks.Query(ctx, db, c.SQL)
				if err != nil {
					t.Errorf("%s %s: %v", policy, c.ID(), err)
					continue
				}
				var got int
				switch c.Chart.Kind {
				case notebooks.ChartLine:
					got = strings.Count(sec, `<circle class="pt"`)
				case notebooks.ChartBar, notebooks.ChartHistogram:
					got = strings.Count(sec, `<rect class="bar"`)
				case notebooks.ChartHeadline:
					if !strings.Contains(sec, `<span class="big">`) {
						t.Errorf("%s %s: no headline number", policy, c.ID())
					}
					continue
				default:
					continue
				}
				if want := wantMarks(c.Chart, r); got != want {
					t.Errorf("%s %s (%s): %d marks drawn, the query returned %d values", policy, c.ID(), c.Title, got, want)
				}
				if len(r.Rows) == 0 && !strings.Contains(sec, "No rows yet") {
					t.Errorf("%s %s: an empty result without its note", policy, c.ID())
				}
				if len(r.Rows) > 0 && !strings.Contains(sec, "<svg class=\"chart\"") {
					t.Errorf("%s %s: no chart", policy, c.ID())
				}
				// The table under the chart holds the rows (up to the cap).
				if rows := strings.Count(sec, "<tr>") - 1; len(r.Rows) > 0 && rows != min(len(r.Rows), report.DefaultMaxTableRows) {
					t.Errorf("%s %s: table of %d rows, the query returned %d", policy, c.ID(), rows, len(r.Rows))
				}
				drawn[c.Chart.Kind] += got
			}
		}
		db.Close()
	}
	// The demo's nights give the line and bar charts something to draw (no
	// domain becomes registrable in its eight nights, so the lead-time
	// histogram stays empty: TestChartsDrawEveryValue draws one).
	for _, k := range []string{notebooks.ChartLine, notebooks.ChartBar} {
		if drawn[k] == 0 {
			t.Errorf("no %s chart drew anything over the demo (%v)", k, drawn)
		}
	}
}

// The nightly publish wrote reports/D/ for every night, the last one with
// every notebook's page and the night's changeset summary on top.
func TestNightlyReportOfADemo(t *testing.T) {
	dir := demoData(t)
	nbs, _ := notebooks.All()
	for _, policy := range []string{demo.PolicyDefault, demo.PolicyPyPI} {
		nights, err := filepath.Glob(filepath.Join(dir, policy, "reports", "20*"))
		if err != nil || len(nights) != 8 {
			t.Fatalf("%s: nights %v %v", policy, nights, err)
		}
		sort.Strings(nights)
		last := nights[len(nights)-1]
		date := filepath.Base(last)
		b, err := os.ReadFile(filepath.Join(last, "index.html"))
		if err != nil {
			t.Fatal(err)
		}
		index := string(b)
		report.CheckSelfContained(t, policy+"/index", index)
		for _, want := range []string{"The night of " + date + ": changeset", `class="status `, "verified addresses proposed for un-verification",
			"From <code>" + filepath.Join("changesets", date) + "</code>", "provider lookups", "Not approved yet"} {
			if !strings.Contains(index, want) {
				t.Errorf("%s index lacks %q", policy, want)
			}
		}
		if strings.Contains(index, "cells failed") {
			t.Errorf("%s: the nightly report has failed cells", policy)
		}
		for _, nb := range nbs {
			if _, err := os.Stat(filepath.Join(last, nb.Name+".html")); err != nil {
				t.Error(err)
			}
		}
	}
}
