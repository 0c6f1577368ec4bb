package notebooks

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"
)

//go:embed *.sql
var files embed.FS

// Notebook is one trend-analysis notebook: a file of SQL statements (cells)
// over the lifecycle database, each under a comment header:
//
//	-- title: Flagged per night, by reason
//	-- about: One sentence on what the cell shows and how to read it.
//	-- chart: bar x=date y=flagged series=reason
//	SELECT …;
//
// The file may open with "-- notebook: TITLE" and "-- about: …" lines of
// its own. Every file runs unchanged in the DuckDB CLI:
// `duckdb lapse.duckdb < notebooks/NAME.sql`; `lapse notebook run NAME`
// prints the same tables and `lapse report` draws the charts.
type Notebook struct {
	Name  string // file name without .sql, e.g. "01_overview"
	Title string // "-- notebook:", else the name
	About string // the notebook's own "-- about:"
	SQL   string
}

// Cell is one statement of a notebook with its header.
type Cell struct {
	Notebook string
	Index    int // 1-based position in the notebook
	Title    string
	About    string
	Chart    Chart
	// ChartErr is set when the "-- chart:" line cannot be read; the cell
	// still runs and shows its table.
	ChartErr error
	SQL      string // the statement, comments included, without ";"
}

// ID names the cell in messages: "02_flags #3".
func (c Cell) ID() string { return fmt.Sprintf("%s #%d", c.Notebook, c.Index) }

// Chart is a cell's "-- chart:" hint: a kind and the columns it plots.
//
//	line      x=COL y=COL[,COL…] [series=COL] [scale=log] [unit=U]
//	bar       x=COL y=COL[,COL…] [series=COL] [horizontal] [unit=U]   (series or several y stack)
//	histogram x=COL [y=COL] [unit=U]   (x numeric bins; without y, rows are counted per x)
//	headline  value=COL                (a big number; the title's {COL} are filled from the first row)
//	table                              (no chart; the default)
type Chart struct {
	Kind       string
	X          string
	Y          []string
	Series     string
	Value      string
	Horizontal bool
	Log        bool
	Unit       string
}

// Chart kinds.
const (
	ChartTable     = "table"
	ChartLine      = "line"
	ChartBar       = "bar"
	ChartHistogram = "histogram"
	ChartHeadline  = "headline"
)

// ParseChart reads a chart hint ("line x=date y=flagged series=reason").
func ParseChart(hint string) (Chart, error) {
	fields, err := splitHint(hint)
	if err != nil {
		return Chart{}, err
	}
	if len(fields) == 0 {
		return Chart{Kind: ChartTable}, nil
	}
	c := Chart{Kind: strings.ToLower(fields[0])}
	allowed := map[string][]string{
		ChartTable:     {},
		ChartLine:      {"x", "y", "series", "scale", "unit"},
		ChartBar:       {"x", "y", "series", "horizontal", "unit"},
		ChartHistogram: {"x", "y", "unit"},
		ChartHeadline:  {"value"},
	}
	keys, ok := allowed[c.Kind]
	if !ok {
		return c, fmt.Errorf("chart %q: unknown kind %q (want line, bar, histogram, headline or table)", hint, fields[0])
	}
	for _, f := range fields[1:] {
		k, v, hasValue := strings.Cut(f, "=")
		k = strings.ToLower(k)
		if !slices.Contains(keys, k) {
			return c, fmt.Errorf("chart %q: %s takes no %q (it takes %s)", hint, c.Kind, k, strings.Join(keys, ", "))
		}
		if !hasValue && k != "horizontal" {
			return c, fmt.Errorf("chart %q: %s needs a value (%s=…)", hint, k, k)
		}
		switch k {
		case "x":
			c.X = v
		case "y":
			for _, y := range strings.Split(v, ",") {
				if y = strings.TrimSpace(y); y != "" {
					c.Y = append(c.Y, y)
				}
			}
		case "series":
			c.Series = v
		case "value":
			c.Value = v
		case "horizontal":
			c.Horizontal = !hasValue || v == "true"
		case "scale":
			if v != "log" && v != "linear" {
				return c, fmt.Errorf("chart %q: scale=%s: want log or linear", hint, v)
			}
			c.Log = v == "log"
		case "unit":
			c.Unit = v
		}
	}
	switch {
	case (c.Kind == ChartLine || c.Kind == ChartBar) && (c.X == "" || len(c.Y) == 0):
		return c, fmt.Errorf("chart %q: %s needs x= and y=", hint, c.Kind)
	case c.Kind == ChartHistogram && c.X == "":
		return c, fmt.Errorf("chart %q: histogram needs x=", hint)
	case c.Kind == ChartHistogram && len(c.Y) > 1:
		return c, fmt.Errorf("chart %q: histogram takes one y", hint)
	case c.Kind == ChartHeadline && c.Value == "":
		return c, fmt.Errorf("chart %q: headline needs value=", hint)
	case c.Series != "" && len(c.Y) > 1:
		return c, fmt.Errorf("chart %q: series= goes with one y column", hint)
	}
	return c, nil
}

// splitHint splits on spaces, keeping "double quoted" values whole.
func splitHint(s string) ([]string, error) {
	var out []string
	var b strings.Builder
	inQuote, any := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote, any = !inQuote, true
		case (r == ' ' || r == '\t') && !inQuote:
			if any {
				out = append(out, b.String())
			}
			b.Reset()
			any = false
		default:
			b.WriteRune(r)
			any = true
		}
	}
	if inQuote {
		return nil, fmt.Errorf("chart %q: unterminated quote", s)
	}
	if any {
		out = append(out, b.String())
	}
	return out, nil
}

// All returns the notebooks in name order.
func All() ([]Notebook, error) {
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, err
	}
	var out []Notebook
	for _, n := range names {
		b, err := files.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, Parse(strings.TrimSuffix(n, ".sql"), string(b)))
	}
	return out, nil
}

// Parse makes a notebook of SQL text (its title and about from the
// header).
func Parse(name, sql string) Notebook {
	nb := Notebook{Name: name, Title: name, SQL: sql}
	stmts := SplitStatements(sql)
	if len(stmts) == 0 {
		return nb
	}
	for _, h := range header(stmts[0]) {
		switch h.key {
		case "notebook":
			nb.Title = h.value
		case "about":
			nb.About = h.value
		case "title":
			return nb
		}
	}
	return nb
}

// Statements are the notebook's statements, comments included.
func (n Notebook) Statements() []string { return SplitStatements(n.SQL) }

// Cells are the notebook's statements with their headers.
func (n Notebook) Cells() []Cell {
	var out []Cell
	for i, s := range n.Statements() {
		c := Cell{Notebook: n.Name, Index: i + 1, SQL: s}
		hint := ""
		inCell := false
		for _, h := range header(s) {
			// In the first statement, the notebook's own header comes
			// before its first "title:".
			if i == 0 && !inCell && h.key != "title" && h.key != "chart" {
				continue
			}
			switch h.key {
			case "title":
				inCell = true
				c.Title = h.value
			case "about":
				c.About = h.value
			case "chart":
				hint = h.value
			}
		}
		c.Chart, c.ChartErr = ParseChart(hint)
		if c.Title == "" {
			c.Title = "Statement " + strconv.Itoa(i+1)
		}
		out = append(out, c)
	}
	return out
}

type headerLine struct{ key, value string }

// header reads the "-- key: value" comment lines before a statement's
// first line of SQL; a comment line without a known key continues the
// previous value.
func header(stmt string) []headerLine {
	var out []headerLine
	inBlock := false
	for _, l := range strings.Split(stmt, "\n") {
		t := strings.TrimSpace(l)
		// Block comments before the SQL are skipped.
		if inBlock || strings.HasPrefix(t, "/*") {
			inBlock = !strings.Contains(t, "*/")
			continue
		}
		c, ok := strings.CutPrefix(t, "--")
		if !ok {
			if t == "" {
				continue
			}
			break
		}
		c = strings.TrimSpace(c)
		k, v, found := strings.Cut(c, ":")
		k = strings.ToLower(strings.TrimSpace(k))
		if found && (k == "notebook" || k == "title" || k == "about" || k == "chart") {
			out = append(out, headerLine{k, strings.TrimSpace(v)})
			continue
		}
		if len(out) > 0 && c != "" {
			last := &out[len(out)-1]
			last.value = strings.TrimSpace(last.value + " " + c)
		}
	}
	return out
}

// FillTitle replaces each {col} of a title by the first row's value of
// col, written by format; "–" stands for a NULL, a missing row or column.
func FillTitle(title string, r Result, format func(any) string) string {
	if !strings.Contains(title, "{") {
		return title
	}
	for i, c := range r.Columns {
		v := "–"
		if len(r.Rows) > 0 && r.Rows[0][i] != nil {
			v = format(r.Rows[0][i])
		}
		title = strings.ReplaceAll(title, "{"+c+"}", v)
	}
	for {
		i := strings.Index(title, "{")
		j := strings.Index(title, "}")
		if i < 0 || j < i {
			return title
		}
		title = title[:i] + "–" + title[j+1:]
	}
}

// Find returns the notebook named name (with or without .sql, or by its
// number prefix, e.g. "02").
func Find(name string) (Notebook, error) {
	all, err := All()
	if err != nil {
		return Notebook{}, err
	}
	name = strings.TrimSuffix(name, ".sql")
	var names []string
	for _, nb := range all {
		num, rest, _ := strings.Cut(nb.Name, "_")
		if nb.Name == name || num == name || rest == name {
			return nb, nil
		}
		names = append(names, nb.Name)
	}
	return Notebook{}, fmt.Errorf("no notebook %q: want one of %s", name, strings.Join(names, ", "))
}

// Run runs every cell of the notebook against db (the lifecycle database)
// and writes each result as an aligned text table to w, under its title
// and explanation. A failing cell is reported in place and the others
// still run; the error names every failed cell.
func Run(ctx context.Context, db *sql.DB, nb Notebook, w io.Writer) error {
	var failed []string
	for i, c := range nb.Cells() {
		if i > 0 {
			fmt.Fprintln(w)
		}
		r, err := Query(ctx, db, c.SQL)
		fmt.Fprintf(w, "# %s\n", FillTitle(c.Title, r, Format))
		if c.About != "" {
			fmt.Fprintf(w, "# %s\n", c.About)
		}
		if err != nil {
			fmt.Fprintf(w, "error: %v\n", err)
			failed = append(failed, fmt.Sprintf("%s (%s): %v", c.ID(), c.Title, err))
			continue
		}
		if err := r.WriteTable(w); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("notebook %s: %d of its cells failed: %s", nb.Name, len(failed), strings.Join(failed, "; "))
	}
	return nil
}
