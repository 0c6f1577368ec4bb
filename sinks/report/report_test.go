package report

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/notebooks"
	"github.com/lapse-dev/lapse/sinks/lifecycledb"
)

const seed = `
INSERT INTO email_decisions VALUES
	('2026-06-09', 1, 'u1', true, 'gone.com', 'com', 'available', 'unverify', 'domain_available', 'corroborated'),
	('2026-06-10', 2, 'u2', true, 'red.org', 'org', 'redemption', 'unverify', 'domain_redemption', 'corroborated'),
	('2026-06-10', 3, 'u3', true, 'red.org', 'org', 'redemption', 'unverify', 'domain_redemption', 'corroborated');
INSERT INTO nightly_metrics VALUES
	('2026-06-09', 'addresses_verified', '', '', 100), ('2026-06-10', 'addresses_verified', '', '', 101),
	('2026-06-10', 'lookups', 'rdap', 'ok', 7), ('2026-06-10', 'flagged', '', '', 2);
INSERT INTO changesets VALUES
	('2026-06-09', 'proposed', 'corroborated', 1, 100, NULL, 'x', 'y', now()),
	('2026-06-10', 'blocked', 'corroborated', 2, 101, 'would un-verify <2> addresses', 'x', 'y', now());`

func seeded(t *testing.T) *lifecycledb.DB {
	t.Helper()
	db, err := lifecycledb.Open(filepath.Join(t.TempDir(), "lapse.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.SQL().ExecContext(context.Background(), seed); err != nil {
		t.Fatal(err)
	}
	return db
}

// CheckSelfContained fails t for anything in a page that would make a
// request at view time.
func CheckSelfContained(t *testing.T, name, page string) {
	t.Helper()
	attr := regexp.MustCompile(`(?i)\b(src|href|xlink:href|action|data|poster|srcset)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)`)
	for _, m := range attr.FindAllStringSubmatch(page, -1) {
		v := strings.ToLower(strings.Trim(m[2], `"'`))
		if strings.Contains(v, "//") || strings.HasPrefix(v, "http") || strings.Contains(v, ":") && !strings.HasPrefix(v, "#") {
			t.Errorf("%s: %s=%s reaches out of the page", name, m[1], m[2])
		}
	}
	low := strings.ToLower(page)
	// No "@" at all: no address, and no CSS at-rule that could fetch.
	for _, bad := range []string{"<script", "<link", "<iframe", "<object", "<embed", "@", "url(", "<img", "<base"} {
		if strings.Contains(low, bad) {
			t.Errorf("%s is not self-contained: it has %q", name, bad)
		}
	}
	if !strings.Contains(page, `Content-Security-Policy" content="default-src 'none'`) {
		t.Errorf("%s: no Content-Security-Policy forbidding requests", name)
	}
}

func TestWriteNightReport(t *testing.T) {
	ctx := context.Background()
	db := seeded(t)
	csDir := filepath.Join(t.TempDir(), "changesets", "2026-06-10")
	if err := os.MkdirAll(csDir, 0o750); err != nil {
		t.Fatal(err)
	}
	manifest := `{"date":"2026-06-10","status":"blocked","policy":"corroborated","block_reasons":["would un-verify <2> addresses"],
		"counts":{"flagged":2,"verified":101,"users":2,"domains":1,"new_since_previous":2,"by_reason":{"domain_redemption":2},"by_tld":{"org":2}},"files":{}}`
	if err := os.WriteFile(filepath.Join(csDir, "manifest.json"), []byte(manifest), 0o640); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "reports", "2026-06-10", "index.html")
	var logs bytes.Buffer
	err := Write(ctx, db.SQL(), Spec{Date: "2026-06-10", Path: path, GeneratedAt: time.Date(2026, 6, 10, 4, 0, 0, 0, time.UTC),
		Changeset: csDir, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	index := string(b)
	for _, want := range []string{"The night of 2026-06-10", `class="status blocked"`, "would un-verify &lt;2&gt; addresses",
		"domain_redemption", ".org", "2026-06-10 04:00 UTC", "01_overview.html", "Flags by reason and TLD",
		"addresses un-verified since 2026-06-09", "Not approved yet", "Largest domains tonight", "red.org", `<style media="print">`} {
		if !strings.Contains(index, want) {
			t.Errorf("index lacks %q", want)
		}
	}
	CheckSelfContained(t, "index.html", index)
	all, _ := notebooks.All()
	for _, nb := range all {
		p, err := os.ReadFile(filepath.Join(filepath.Dir(path), nb.Name+".html"))
		if err != nil {
			t.Fatal(err)
		}
		CheckSelfContained(t, nb.Name, string(p))
		if strings.Contains(string(p), "This cell failed") {
			t.Errorf("%s has a failed cell", nb.Name)
		}
	}
	if logs.Len() != 0 {
		t.Errorf("warnings: %s", logs.String())
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != FileMode {
		t.Errorf("mode %v %v", fi.Mode(), err)
	}
}

// A cell that fails shows its message in its page, the others render,
// Build reports it, and the nightly Write logs it as a warning and succeeds.
func TestFailingCell(t *testing.T) {
	ctx := context.Background()
	db := seeded(t)
	nb := notebooks.Parse("98_mixed", `-- notebook: Mixed
-- about: one good, one bad.

-- title: Flags
-- about: fine.
-- chart: bar x=date y=flagged
SELECT date, sum(flagged) AS flagged FROM daily_flags GROUP BY date ORDER BY date;

-- title: Broken
-- about: a table that does not exist.
-- chart: line x=date y=n
SELECT date, n FROM no_such_table;

-- title: Wrong column
-- about: the chart names a column the query lacks.
-- chart: line x=date y=nope
SELECT date, 1 AS n FROM nightly_metrics;
`)
	dir := t.TempDir()
	res, err := Build(ctx, db.SQL(), Options{Dir: dir, Notebooks: []notebooks.Notebook{nb}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failures) != 2 || res.Failures[0].Index != 2 || res.Failures[1].Index != 3 {
		t.Fatalf("failures %+v", res.Failures)
	}
	if e := res.Err(); e == nil || !strings.Contains(e.Error(), "no_such_table") || !strings.Contains(e.Error(), `"nope"`) {
		t.Errorf("Err: %v", e)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "98_mixed.html"))
	page := string(b)
	if !strings.Contains(page, "This cell failed: ") || !strings.Contains(page, "no_such_table") || !strings.Contains(page, "The chart cannot be drawn") {
		t.Errorf("page does not show the errors:\n%s", page)
	}
	if n := strings.Count(page, `class="bar"`); n != 2 {
		t.Errorf("the good cell has %d bars, want 2 (two nights)", n)
	}
	b, _ = os.ReadFile(filepath.Join(dir, "index.html"))
	if !strings.Contains(string(b), "2 cells failed") || !strings.Contains(string(b), `href="98_mixed.html#cell-2"`) {
		t.Errorf("index does not list the failures")
	}

	var logs bytes.Buffer
	if _, err := db.SQL().ExecContext(ctx, `DROP VIEW reverified_by_night`); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "index.html")
	if err := Write(ctx, db.SQL(), Spec{Date: "2026-06-10", Path: path, Log: slog.New(slog.NewTextHandler(&logs, nil))}); err != nil {
		t.Fatalf("a failing cell failed the night: %v", err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "reverified_by_night") || !strings.Contains(logs.String(), "notebook=06_resurrections") {
		t.Errorf("no warning for the failing cell: %s", logs.String())
	}
}

func TestProse(t *testing.T) {
	for in, want := range map[string]string{
		"run `lapse apply` <now>": "run <code>lapse apply</code> &lt;now&gt;",
		"a ` alone":               "a ` alone",
		"`a` and `b<`":            "<code>a</code> and <code>b&lt;</code>",
	} {
		if got := string(prose(in)); got != want {
			t.Errorf("prose(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNumbersAndTicks(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 1234567: "1,234,567", -1500: "-1,500", 2.5: "2.5", 0.333333: "0.333", 1234.5: "1,235"} {
		if got := num(v, ""); got != want {
			t.Errorf("num(%v) = %q, want %q", v, got, want)
		}
	}
	if got := num(12, "%"); got != "12%" {
		t.Errorf("unit: %q", got)
	}
	ticks := niceTicks(0, 2, 5, true)
	for _, x := range ticks {
		if x != float64(int(x)) {
			t.Errorf("integer ticks %v", ticks)
		}
	}
	if ticks := niceTicks(0, 95, 5, false); ticks[len(ticks)-1] < 95 || len(ticks) > 8 {
		t.Errorf("ticks %v", ticks)
	}
}
