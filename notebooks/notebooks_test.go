package notebooks

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sinks/lifecycledb"
)

// seed fills a lifecycle DB with three nights of rows.
const seed = `
INSERT INTO domain_observations (date, domain, tld, state, source, checked_at, corroborated) VALUES
	('2026-06-08', 'gone.com', 'com', 'redemption', 'rdap', '2026-06-08 03:00:00+00', true),
	('2026-06-09', 'gone.com', 'com', 'pending_delete', 'rdap', '2026-06-09 03:00:00+00', true),
	('2026-06-10', 'gone.com', 'com', 'available', 'rdap', '2026-06-10 03:00:00+00', true),
	('2026-06-08', 'fine.org', 'org', 'registered', 'rdap', '2026-06-08 03:00:00+00', true),
	('2026-06-10', 'fine.org', 'org', 'registered', 'rdap', '2026-06-10 03:00:00+00', true);
INSERT INTO email_decisions VALUES
	('2026-06-08', 1, 'u1', true, 'gone.com', 'com', 'redemption', 'unverify', 'domain_redemption', 'corroborated'),
	('2026-06-09', 1, 'u1', true, 'gone.com', 'com', 'pending_delete', 'unverify', 'domain_pending_delete', 'corroborated'),
	('2026-06-09', 2, 'u2', true, 'gone.com', 'com', 'pending_delete', 'unverify', 'domain_pending_delete', 'corroborated'),
	('2026-06-10', 3, 'u3', true, 'soon.org', 'org', 'expiring', 'watch', 'domain_expiring', 'corroborated'),
	('2026-06-10', 4, 'u4', true, 'back.net', 'net', 'registered', 'unverify', 'domain_reregistered', 'corroborated');
INSERT INTO nightly_metrics VALUES
	('2026-06-08', 'lookups', 'rdap', 'ok', 40), ('2026-06-09', 'lookups', 'rdap', 'ok', 12),
	('2026-06-09', 'lookups', 'rdap', 'error', 2), ('2026-06-10', 'lookups', 'domainr', 'ok', 30),
	('2026-06-08', 'addresses_verified', '', '', 100), ('2026-06-09', 'addresses_verified', '', '', 101),
	('2026-06-10', 'addresses_verified', '', '', 102), ('2026-06-10', 'domains', '', '', 50),
	('2026-06-10', 'cache_hits', '', '', 20), ('2026-06-10', 'flagged', '', '', 1);
INSERT INTO changesets VALUES
	('2026-06-08', 'proposed', 'corroborated', 1, 100, NULL, 'x', 'y', now()),
	('2026-06-09', 'proposed', 'corroborated', 2, 100, NULL, 'x', 'y', now());
INSERT INTO applied_changes VALUES ('2026-06-08', 'y', 1, 'u1', 'gone.com', 'domain_redemption', '2026-06-08 05:00:00+00', NULL);
INSERT INTO reverifications VALUES ('2026-06-10', 1, 'u1', 'gone.com', '2026-06-08', '2026-06-09 10:00:00+00');
`

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

// Every cell runs, is a read, has a title, an explanation and a chart hint
// whose columns its result has.
func TestNotebookCellsRunAndNameTheirColumns(t *testing.T) {
	ctx := context.Background()
	db := seeded(t)
	nbs, err := All()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, nb := range nbs {
		names = append(names, nb.Name)
	}
	for _, want := range []string{"01_overview", "02_flags", "03_states_by_tld", "04_lookup_cost", "05_detection_lead_time", "06_resurrections"} {
		if !slices.Contains(names, want) {
			t.Errorf("no notebook %s (have %v)", want, names)
		}
	}
	kinds := map[string]int{}
	for _, nb := range nbs {
		if nb.Title == nb.Name || nb.About == "" {
			t.Errorf("%s: the file should open with -- notebook: and -- about: (title %q, about %q)", nb.Name, nb.Title, nb.About)
		}
		cells := nb.Cells()
		if len(cells) == 0 {
			t.Errorf("notebook %s has no cells", nb.Name)
		}
		for _, c := range cells {
			if strings.HasPrefix(c.Title, "Statement ") || c.About == "" {
				t.Errorf("%s: title %q, about %q: every cell needs -- title: and -- about:", c.ID(), c.Title, c.About)
			}
			if c.ChartErr != nil {
				t.Errorf("%s: %v", c.ID(), c.ChartErr)
			}
			if !strings.Contains(c.SQL, "-- chart:") {
				t.Errorf("%s: no -- chart: hint", c.ID())
			}
			kinds[c.Chart.Kind]++
			r, err := Query(ctx, db.SQL(), c.SQL)
			if err != nil {
				t.Errorf("%s: %v\n%s", c.ID(), err, c.SQL)
				continue
			}
			cols := append(append([]string{c.Chart.X, c.Chart.Series, c.Chart.Value}, c.Chart.Y...), titleFields(c.Title)...)
			for _, col := range cols {
				if col != "" && r.Col(col) < 0 {
					t.Errorf("%s: chart or title names column %q, the result has %v", c.ID(), col, r.Columns)
				}
			}
		}
	}
	for _, k := range []string{ChartLine, ChartBar, ChartHistogram, ChartHeadline, ChartTable} {
		if kinds[k] == 0 {
			t.Errorf("no cell draws a %s chart (%v)", k, kinds)
		}
	}
}

func titleFields(t string) []string {
	var out []string
	for {
		i, j := strings.Index(t, "{"), strings.Index(t, "}")
		if i < 0 || j < i {
			return out
		}
		out = append(out, t[i+1:j])
		t = t[j+1:]
	}
}

// Each file as a whole is what the DuckDB CLI is fed: DuckDB's own parser
// splits it and runs every statement (no placeholders, no dot commands).
func TestNotebookFilesRunWholeThroughDuckDB(t *testing.T) {
	db := seeded(t)
	nbs, err := All()
	if err != nil {
		t.Fatal(err)
	}
	for _, nb := range nbs {
		if strings.Contains(stripStrings(StripComments(nb.SQL)), "?") {
			t.Errorf("%s holds a ? placeholder: the DuckDB CLI cannot bind it", nb.Name)
		}
		for _, l := range strings.Split(nb.SQL, "\n") {
			if strings.HasPrefix(l, ".") {
				t.Errorf("%s: dot command %q", nb.Name, l)
			}
		}
		if _, err := db.SQL().ExecContext(context.Background(), nb.SQL); err != nil {
			t.Errorf("%s as one script: %v", nb.Name, err)
		}
	}
}

// stripStrings drops the '…' literals of SQL text.
func stripStrings(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] == '\'' {
			i = skipQuoted(s, i, '\'')
			continue
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

func TestSeededFigures(t *testing.T) {
	ctx := context.Background()
	db := seeded(t)
	nb, err := Find("01")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Query(ctx, db.SQL(), nb.Cells()[0].SQL)
	if err != nil {
		t.Fatal(err)
	}
	if got := Format(r.Rows[0][r.Col("unverified")]) + " since " + Format(r.Rows[0][r.Col("since")]); got != "3 since 2026-06-08" {
		t.Errorf("headline: %s (%v)", got, r.Rows)
	}
	nb, _ = Find("06")
	r, err = Query(ctx, db.SQL(), nb.Cells()[0].SQL)
	if err != nil {
		t.Fatal(err)
	}
	if got := Format(r.Rows[0][r.Col("caught")]); got != "1" {
		t.Errorf("resurrections caught: %s", got)
	}
	nb, _ = Find("05")
	r, err = Query(ctx, db.SQL(), nb.Cells()[0].SQL)
	if err != nil {
		t.Fatal(err)
	}
	// gone.com: first alert 06-08, available 06-10.
	if len(r.Rows) != 1 || Format(r.Rows[0][0]) != "2" || Format(r.Rows[0][1]) != "1" {
		t.Errorf("lead time histogram: %v", r.Rows)
	}
}

func TestFindAndRun(t *testing.T) {
	ctx := context.Background()
	db := seeded(t)
	for _, name := range []string{"01", "overview", "01_overview.sql"} {
		nb, err := Find(name)
		if err != nil || nb.Name != "01_overview" {
			t.Fatalf("find %q: %+v %v", name, nb, err)
		}
	}
	if _, err := Find("nope"); err == nil || !strings.Contains(err.Error(), "02_flags") {
		t.Errorf("find nope: %v (should list the notebooks)", err)
	}
	nb, _ := Find("01")
	var b strings.Builder
	if err := Run(ctx, db.SQL(), nb, &b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"# Cumulative un-verified", "date", "cumulative", "2026-06-08", "2026-06-10"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// A failing cell is reported in place; the others still print.
	bad := Parse("99_bad", "-- title: Broken\n-- about: x\nSELECT * FROM no_such_table;\n\n-- title: Fine\n-- about: y\nSELECT 42 AS answer;\n")
	b.Reset()
	err := Run(ctx, db.SQL(), bad, &b)
	if err == nil || !strings.Contains(err.Error(), "99_bad #1 (Broken)") || !strings.Contains(err.Error(), "no_such_table") {
		t.Errorf("run of a failing notebook: %v", err)
	}
	if !strings.Contains(b.String(), "error:") || !strings.Contains(b.String(), "42") {
		t.Errorf("output:\n%s", b.String())
	}
}

func TestCellsAndHeaders(t *testing.T) {
	nb := Parse("x", `-- notebook: Title of it
-- about: The notebook's
--   own words.

-- title: First; with a semicolon
-- about: what it shows; and how
-- chart: line x=date y=a,b
SELECT ';' AS s, 1 AS a, 2 AS b, DATE '2026-01-01' AS date; -- trailing

/* a block; comment */
-- title: Second
-- chart: bar x=k y=v series=s horizontal
SELECT $$a;b$$ AS k, 1 AS v, 'x' AS s
`)
	if nb.Title != "Title of it" || nb.About != "The notebook's own words." {
		t.Errorf("header: %q %q", nb.Title, nb.About)
	}
	cells := nb.Cells()
	if len(cells) != 2 {
		t.Fatalf("%d cells: %+v", len(cells), cells)
	}
	c := cells[0]
	if c.Title != "First; with a semicolon" || c.About != "what it shows; and how" || c.Chart.Kind != ChartLine || c.Chart.X != "date" || !slices.Equal(c.Chart.Y, []string{"a", "b"}) {
		t.Errorf("cell 1: %+v", c)
	}
	c = cells[1]
	if c.Title != "Second" || c.Chart.Kind != ChartBar || !c.Chart.Horizontal || c.Chart.Series != "s" || c.Index != 2 {
		t.Errorf("cell 2: %+v", c)
	}
	if got := FirstKeyword(cells[1].SQL); got != "SELECT" {
		t.Errorf("first keyword %q", got)
	}
}

func TestParseChart(t *testing.T) {
	for hint, want := range map[string]string{
		"pie x=a":                        "unknown kind",
		"line x=date":                    "needs x= and y=",
		"bar x=a y=b colour=red":         "takes no",
		"histogram y=n":                  "needs x=",
		"headline":                       "needs value=",
		"line x=a y=b,c series=d":        "one y",
		"line x=a y=b scale=sqrt":        "want log or linear",
		`line x="unterminated y=b`:       "unterminated",
		"line x=date y=a scale=log":      "",
		"histogram x=lead_days":          "",
		"table":                          "",
		"":                               "",
		"headline value=n":               "",
		"bar x=a y=b series=c unit=%":    "",
		`bar x="a b" y=c horizontal`:     "",
		"line x=a y=b,c unit=days":       "",
		"histogram x=a y=b unit=\"d s\"": "",
	} {
		_, err := ParseChart(hint)
		if want == "" && err != nil {
			t.Errorf("%q: %v", hint, err)
		}
		if want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%q: %v, want %q", hint, err, want)
		}
	}
	c, _ := ParseChart(`bar x="a b" y=c horizontal`)
	if c.X != "a b" || !c.Horizontal {
		t.Errorf("%+v", c)
	}
}

func TestSplitStatements(t *testing.T) {
	got := SplitStatements("SELECT 'a;b'; SELECT \"x;y\" FROM t -- c;d\n;\n/* e;f */ SELECT 3;;  -- only a comment;\n")
	want := []string{"SELECT 'a;b'", "SELECT \"x;y\" FROM t -- c;d", "/* e;f */ SELECT 3"}
	if !slices.Equal(got, want) {
		t.Errorf("split: %q, want %q", got, want)
	}
	if got := SplitStatements("SELECT 'it''s; fine'"); len(got) != 1 {
		t.Errorf("doubled quote: %q", got)
	}
}

func TestQueryIsReadOnly(t *testing.T) {
	ctx := context.Background()
	db := seeded(t)
	for _, q := range []string{
		"SELECT count(*) FROM runs",
		"  -- comment\n WITH a AS (SELECT 1 AS x) SELECT * FROM a;",
		"SUMMARIZE nightly_metrics",
		"DESCRIBE email_decisions",
		"SHOW TABLES",
		"PRAGMA table_info('runs')",
		"FROM changesets",
		"(SELECT 1)",
		"EXPLAIN SELECT 1",
	} {
		if _, err := Query(ctx, db.SQL(), q); err != nil {
			t.Errorf("%q: %v", q, err)
		}
	}
	for q, want := range map[string]string{
		"INSERT INTO runs VALUES (1)": "INSERT statements are refused",
		"DELETE FROM nightly_metrics": "DELETE statements are refused",
		"SELECT 1; DROP TABLE runs":   "one statement at a time",
		"CREATE TABLE x (a INT)":      "CREATE statements",
		"COPY runs TO '/tmp/x.csv'":   "COPY statements",
		"ATTACH '/tmp/other.db'":      "ATTACH statements",
		"PRAGMA threads = 1":          "SET statement",
		"WITH a AS (SELECT 1) INSERT INTO nightly_metrics SELECT * FROM nightly_metrics": "INSERT statement",
		"":        "empty",
		"-- only": "empty",
		"PIVOT nightly_metrics ON metric USING sum(value)": "", // any refusal
	} {
		_, err := Query(ctx, db.SQL(), q)
		if err == nil || !errors.Is(err, ErrReadOnly) || !strings.Contains(err.Error(), "lapse query is read-only: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want a read-only refusal with %q", q, err, want)
		}
	}
	var n int
	if err := db.SQL().QueryRow(`SELECT count(*) FROM nightly_metrics`).Scan(&n); err != nil || n == 0 {
		t.Errorf("nightly_metrics: %d %v", n, err)
	}
}

// OpenReadOnly: DuckDB itself refuses writes, and a database another
// handle holds for writing is reported as in use.
func TestOpenReadOnly(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lapse.duckdb")
	w, err := lifecycledb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.SQL().ExecContext(ctx, seed); err != nil {
		t.Fatal(err)
	}
	w.Close()
	db, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `INSERT INTO nightly_metrics VALUES ('2026-06-11', 'x', '', '', 1)`); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("write on a read-only handle: %v", err)
	}
	r, err := Query(ctx, db, `SELECT count(*) AS n FROM email_decisions`)
	if err != nil || Format(r.Rows[0][0]) != "5" {
		t.Errorf("read: %v %v", r.Rows, err)
	}
	if _, err := OpenReadOnly(filepath.Join(t.TempDir(), "missing.duckdb")); err == nil {
		t.Error("a missing file opened")
	}
}

func TestWriters(t *testing.T) {
	ctx := context.Background()
	db := seeded(t)
	r, err := Query(ctx, db.SQL(), `SELECT DATE '2026-06-10' AS date, 'a,"b"' AS s, 3::HUGEINT AS h, 1.5::DECIMAL(4,2) AS d, NULL AS n, [1, 2] AS l, {'k': 'v'} AS st, 0.25::DOUBLE AS f`)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	want := `[
  {"date": "2026-06-10", "s": "a,\"b\"", "h": 3, "d": 1.5, "n": null, "l": [1,2], "st": {"k":"v"}, "f": 0.25}
]
`
	if b.String() != want {
		t.Errorf("json:\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	if err := r.WriteCSV(&b); err != nil {
		t.Fatal(err)
	}
	if want := "date,s,h,d,n,l,st,f\n2026-06-10,\"a,\"\"b\"\"\",3,1.5,,\"[1,2]\",\"{\"\"k\"\":\"\"v\"\"}\",0.25\n"; b.String() != want {
		t.Errorf("csv:\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "date        s") || !strings.Contains(b.String(), "2026-06-10") {
		t.Errorf("table:\n%s", b.String())
	}
}

// The flags notebook's kind is lifecycle.Reason.MailPath: one night per
// reason, each flagged once.
func TestFlagsKindIsMailPath(t *testing.T) {
	ctx := context.Background()
	db, err := lifecycledb.Open(filepath.Join(t.TempDir(), "lapse.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reasons := []lifecycle.Reason{lifecycle.ReasonAvailable, lifecycle.ReasonPendingDelete, lifecycle.ReasonRedemption, lifecycle.ReasonReregistered,
		lifecycle.ReasonMXAvailable, lifecycle.ReasonMXPendingDelete, lifecycle.ReasonMXRedemption, lifecycle.ReasonMXReregistered,
		lifecycle.ReasonNSAvailable, lifecycle.ReasonNSPendingDelete, lifecycle.ReasonNSRedemption, lifecycle.ReasonNSReregistered}
	for i, r := range reasons {
		if _, err := db.SQL().ExecContext(ctx, `INSERT INTO email_decisions VALUES (DATE '2026-07-01' + CAST(? AS INTEGER), ?, 'u', true, 'a.com', 'com', 'registered', 'unverify', ?, 'corroborated')`,
			i, i, string(r)); err != nil {
			t.Fatal(err)
		}
	}
	nb, err := Find("02_flags")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Query(ctx, db.SQL(), nb.Cells()[0].SQL)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != len(reasons) {
		t.Fatalf("%d rows, want %d: %v", len(res.Rows), len(reasons), res.Rows)
	}
	for i, row := range res.Rows {
		want := "domain"
		if reasons[i].MailPath() {
			want = "mail_path"
		}
		if got := Format(row[res.Col("kind")]); got != want {
			t.Errorf("%s: kind %s, want %s", reasons[i], got, want)
		}
	}
}
