package notebooks

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

//go:embed *.sql
var files embed.FS

// Notebook is one trend-analysis notebook: SQL statements over the
// lifecycle database's views, each preceded by a comment saying what it
// shows. Run them with `lapse notebook run NAME`, or with the DuckDB CLI:
// `duckdb lapse.duckdb < notebooks/NAME.sql`.
type Notebook struct {
	Name string // file name without .sql
	SQL  string
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
		out = append(out, Notebook{Name: strings.TrimSuffix(n, ".sql"), SQL: string(b)})
	}
	return out, nil
}

// Statements splits a notebook into its statements (on ";" at the end of
// a line; the notebooks keep semicolons out of strings).
func (n Notebook) Statements() []string {
	var out []string
	for _, s := range strings.Split(n.SQL, ";\n") {
		if strings.TrimSpace(stripComments(s)) != "" {
			out = append(out, strings.TrimSpace(s))
		}
	}
	return out
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "--") {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
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

// Run runs every statement of the notebook against db (the lifecycle
// database) and writes each result as an aligned text table to w, under the
// statement's leading comment.
func Run(ctx context.Context, db *sql.DB, nb Notebook, w io.Writer) error {
	for i, stmt := range nb.Statements() {
		if i > 0 {
			fmt.Fprintln(w)
		}
		for _, l := range strings.Split(stmt, "\n") {
			if c, ok := strings.CutPrefix(strings.TrimSpace(l), "--"); ok {
				fmt.Fprintln(w, "#"+c)
			}
		}
		if err := runOne(ctx, db, stmt, w); err != nil {
			return fmt.Errorf("notebook %s, statement %d: %w", nb.Name, i+1, err)
		}
	}
	return nil
}

func runOne(ctx context.Context, db *sql.DB, stmt string, w io.Writer) error {
	rows, err := db.QueryContext(ctx, stmt)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		cells := make([]string, len(cols))
		for i, v := range vals {
			cells[i] = cell(v)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return tw.Flush()
}

func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case time.Time:
		if x.Hour() == 0 && x.Minute() == 0 && x.Second() == 0 && x.Nanosecond() == 0 {
			return x.Format(time.DateOnly)
		}
		return x.UTC().Format(time.RFC3339)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}
