package notebooks

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/duckdb/duckdb-go/v2"
)

// ErrReadOnly is wrapped by the error of a statement that is not one
// read-only query.
var ErrReadOnly = errors.New("lapse query is read-only")

// ErrInUse is wrapped by OpenReadOnly's error when another process (a
// night running) holds the database for writing.
var ErrInUse = errors.New("lapse.duckdb is in use by another lapse process")

// OpenReadOnly opens the lifecycle database at path with DuckDB's
// access_mode=READ_ONLY: any write is refused by DuckDB itself, several
// readers may share the file, and nothing is migrated or created. Closing
// the returned handle releases the file.
func OpenReadOnly(path string) (*sql.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open %s read-only: %w", path, err)
	}
	c, err := duckdb.NewConnector(path+"?access_mode=READ_ONLY", func(ex driver.ExecerContext) error {
		_, err := ex.ExecContext(context.Background(), "SET TimeZone = 'UTC'", nil)
		return err
	})
	if err != nil {
		if msg := err.Error(); strings.Contains(msg, "Could not set lock") || strings.Contains(msg, "Conflicting lock") {
			return nil, fmt.Errorf("open %s read-only: %w (a night is writing it: retry when `lapse run` has finished)", path, ErrInUse)
		}
		return nil, fmt.Errorf("open %s read-only: %w", path, err)
	}
	return sql.OpenDB(c), nil
}

// readKeywords are the first words of the statements lapse query and the
// notebooks accept; DuckDB's own statement type then decides.
var readKeywords = []string{"SELECT", "WITH", "FROM", "VALUES", "TABLE", "SUMMARIZE", "DESCRIBE", "DESC", "SHOW", "PRAGMA", "EXPLAIN"}

// CheckText refuses, from the text alone, what is not one statement
// starting with a read keyword (SELECT, WITH, FROM, VALUES, TABLE,
// SUMMARIZE, DESCRIBE, SHOW, PRAGMA, EXPLAIN).
func CheckText(q string) error {
	stmts := SplitStatements(q)
	switch {
	case len(stmts) == 0:
		return fmt.Errorf("%w: the query is empty", ErrReadOnly)
	case len(stmts) > 1:
		return fmt.Errorf("%w: one statement at a time (this text has %d)", ErrReadOnly, len(stmts))
	}
	kw := FirstKeyword(stmts[0])
	for _, k := range readKeywords {
		if kw == k {
			return nil
		}
	}
	if kw == "" {
		kw = "this"
	}
	return fmt.Errorf("%w: %s statements are refused; run one SELECT, WITH, SUMMARIZE, DESCRIBE, SHOW or PRAGMA that reads", ErrReadOnly, kw)
}

// checkType refuses a prepared statement unless DuckDB says it is a
// SELECT (which DESCRIBE, SHOW, SUMMARIZE and the reading PRAGMAs are to
// it) or an EXPLAIN.
func checkType(st *duckdb.Stmt) error {
	t, err := st.StatementType()
	if err != nil {
		return err
	}
	switch t {
	case duckdb.STATEMENT_TYPE_SELECT, duckdb.STATEMENT_TYPE_EXPLAIN:
		return nil
	}
	return fmt.Errorf("%w: DuckDB reads this as a %s statement, which is refused (settings and writes are not for lapse query)", ErrReadOnly, stmtTypeName(t))
}

func stmtTypeName(t duckdb.StmtType) string {
	names := map[duckdb.StmtType]string{
		duckdb.STATEMENT_TYPE_INSERT: "INSERT", duckdb.STATEMENT_TYPE_UPDATE: "UPDATE", duckdb.STATEMENT_TYPE_DELETE: "DELETE",
		duckdb.STATEMENT_TYPE_CREATE: "CREATE", duckdb.STATEMENT_TYPE_ALTER: "ALTER", duckdb.STATEMENT_TYPE_DROP: "DROP",
		duckdb.STATEMENT_TYPE_COPY: "COPY", duckdb.STATEMENT_TYPE_SET: "SET", duckdb.STATEMENT_TYPE_VARIABLE_SET: "SET",
		duckdb.STATEMENT_TYPE_PRAGMA: "PRAGMA", duckdb.STATEMENT_TYPE_CALL: "CALL", duckdb.STATEMENT_TYPE_ATTACH: "ATTACH",
		duckdb.STATEMENT_TYPE_DETACH: "DETACH", duckdb.STATEMENT_TYPE_TRANSACTION: "transaction", duckdb.STATEMENT_TYPE_LOAD: "LOAD",
		duckdb.STATEMENT_TYPE_EXPORT: "EXPORT", duckdb.STATEMENT_TYPE_VACUUM: "VACUUM", duckdb.STATEMENT_TYPE_CREATE_FUNC: "CREATE FUNCTION",
		duckdb.STATEMENT_TYPE_ANALYZE: "ANALYZE", duckdb.STATEMENT_TYPE_EXECUTE: "EXECUTE", duckdb.STATEMENT_TYPE_PREPARE: "PREPARE",
	}
	if n, ok := names[t]; ok {
		return n
	}
	return "type " + strconv.Itoa(int(t))
}

// Result is a query's columns and rows, values as the DuckDB driver
// returns them (nil for NULL).
type Result struct {
	Columns []string
	Types   []string // DuckDB type names: BIGINT, DATE, VARCHAR, …
	Rows    [][]any
}

// Col is the index of the named column, -1 when absent.
func (r Result) Col(name string) int {
	for i, c := range r.Columns {
		if c == name {
			return i
		}
	}
	return -1
}

// Query runs one read-only statement on db (CheckText, then DuckDB's
// statement type of the prepared statement, which is then run: preparing
// it twice, once to check and once to run, was a third of a report's
// queries) and returns its rows. On a database opened with OpenReadOnly a
// write that got past both is refused by DuckDB.
func Query(ctx context.Context, db *sql.DB, q string) (Result, error) {
	var r Result
	if err := CheckText(q); err != nil {
		return r, err
	}
	q = strings.TrimSpace(SplitStatements(q)[0])
	conn, err := db.Conn(ctx)
	if err != nil {
		return r, err
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(*duckdb.Conn)
		if !ok {
			return fmt.Errorf("not a DuckDB connection: %T", dc)
		}
		ps, err := c.PrepareContext(ctx, q)
		if err != nil {
			if strings.Contains(err.Error(), "multi-statement") {
				return fmt.Errorf("%w: DuckDB runs this as more than one statement (PIVOT does: write it inside a SELECT … FROM (PIVOT …))", ErrReadOnly)
			}
			return err
		}
		defer ps.Close()
		st, ok := ps.(*duckdb.Stmt)
		if !ok {
			return fmt.Errorf("not a DuckDB statement: %T", ps)
		}
		if err := checkType(st); err != nil {
			return err
		}
		rows, err := st.QueryContext(ctx, nil)
		if err != nil {
			return readOnlyRefusal(err)
		}
		defer rows.Close()
		r.Columns = rows.Columns()
		tn, ok := rows.(driver.RowsColumnTypeDatabaseTypeName)
		if !ok {
			return fmt.Errorf("DuckDB rows without column types: %T", rows)
		}
		for i := range r.Columns {
			r.Types = append(r.Types, tn.ColumnTypeDatabaseTypeName(i))
		}
		for {
			vals := make([]driver.Value, len(r.Columns))
			if err := rows.Next(vals); err == io.EOF {
				return nil
			} else if err != nil {
				return readOnlyRefusal(err)
			}
			row := make([]any, len(vals))
			for i, v := range vals {
				// As database/sql's Scan into an any: bytes are copied.
				if b, ok := v.([]byte); ok {
					v = bytes.Clone(b)
				}
				row[i] = v
			}
			r.Rows = append(r.Rows, row)
		}
	})
	return r, err
}

// readOnlyRefusal names DuckDB's refusal of a write on a read-only
// database (a SELECT calling nextval, say) as ErrReadOnly.
func readOnlyRefusal(err error) error {
	if err != nil && strings.Contains(err.Error(), "read-only mode") {
		return fmt.Errorf("%w: DuckDB refused it, the database being open read-only: %v", ErrReadOnly, err)
	}
	return err
}

// Number is v as a float64 when it is a number (integers, floats, HUGEINT,
// DECIMAL); ok is false for NULL and everything else.
func Number(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int8:
		return float64(x), true
	case int16:
		return float64(x), true
	case int32:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint8:
		return float64(x), true
	case uint16:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float32:
		return float64(x), !math.IsNaN(float64(x))
	case float64:
		return x, !math.IsNaN(x)
	case *big.Int:
		if x == nil {
			return 0, false
		}
		f, _ := new(big.Float).SetInt(x).Float64()
		return f, true
	case duckdb.Decimal:
		return x.Float64(), true
	}
	return 0, false
}

// Format is a value as a table cell: dates as YYYY-MM-DD, timestamps in
// RFC 3339 (UTC), NULL as "".
func Format(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case time.Time:
		if x.Hour() == 0 && x.Minute() == 0 && x.Second() == 0 && x.Nanosecond() == 0 {
			return x.Format(time.DateOnly)
		}
		return x.UTC().Format(time.RFC3339)
	case float64:
		return formatFloat(x)
	case float32:
		return formatFloat(float64(x))
	case duckdb.Decimal:
		return x.String()
	case []byte:
		if utf8.Valid(x) {
			return string(x)
		}
		return hex.EncodeToString(x)
	case []any, map[string]any, duckdb.Map:
		b, err := json.Marshal(jsonValue(x))
		if err == nil {
			return string(b)
		}
	}
	return fmt.Sprint(v)
}

func formatFloat(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'g', 6, 64)
}

// jsonValue is v as encoding/json marshals it faithfully: numbers as
// numbers (HUGEINT and DECIMAL as JSON numbers), dates and timestamps as
// strings, lists as arrays, structs and maps as objects.
func jsonValue(v any) any {
	switch x := v.(type) {
	case nil, bool, string, int, int8, int16, int32, int64, uint8, uint16, uint32, uint64:
		return x
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return strconv.FormatFloat(x, 'g', -1, 64)
		}
		return x
	case float32:
		return jsonValue(float64(x))
	case *big.Int:
		if x == nil {
			return nil
		}
		return json.Number(x.String())
	case duckdb.Decimal:
		return json.Number(x.String())
	case time.Time:
		return Format(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonValue(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonValue(e)
		}
		return out
	case duckdb.Map:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[Format(k)] = jsonValue(e)
		}
		return out
	}
	return Format(v)
}

// WriteTable writes the result as an aligned text table.
func (r Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(r.Columns, "\t"))
	for _, row := range r.Rows {
		cells := make([]string, len(row))
		for i, v := range row {
			cells[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(Format(v))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// WriteCSV writes the result as CSV with a header line; NULL is empty.
func (r Result) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(r.Columns); err != nil {
		return err
	}
	for _, row := range r.Rows {
		cells := make([]string, len(row))
		for i, v := range row {
			cells[i] = Format(v)
		}
		if err := cw.Write(cells); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteJSON writes the result as a JSON array of objects, one per row,
// keys in column order (a repeated column name keeps its last value).
func (r Result) WriteJSON(w io.Writer) error {
	var b strings.Builder
	b.WriteString("[")
	for i, row := range r.Rows {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("\n  {")
		seen := map[string]int{}
		for j, c := range r.Columns {
			seen[c] = j
		}
		idx := make([]int, 0, len(seen))
		for _, j := range seen {
			idx = append(idx, j)
		}
		sort.Ints(idx)
		for k, j := range idx {
			if k > 0 {
				b.WriteString(", ")
			}
			key, _ := json.Marshal(r.Columns[j])
			val, err := json.Marshal(jsonValue(row[j]))
			if err != nil {
				return fmt.Errorf("column %s: %w", r.Columns[j], err)
			}
			b.Write(key)
			b.WriteString(": ")
			b.Write(val)
		}
		b.WriteString("}")
	}
	if len(r.Rows) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("]\n")
	_, err := io.WriteString(w, b.String())
	return err
}
