package lifecycle

import "strings"

// SQLString quotes s as a SQL string literal (DuckDB, PostgreSQL): single
// quotes doubled.
func SQLString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// SQLIn renders "expr IN ('a', 'b', …)" from constants such as States or
// Sources, so no state or source name is spelled out in SQL by hand.
func SQLIn[T ~string](expr string, vals ...T) string {
	var b strings.Builder
	b.WriteString(expr)
	b.WriteString(" IN (")
	for i, v := range vals {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(SQLString(string(v)))
	}
	b.WriteString(")")
	return b.String()
}

// SQLIs renders "expr = 'v'".
func SQLIs[T ~string](expr string, v T) string {
	return expr + " = " + SQLString(string(v))
}

// UnknownStateSQL is the condition that the state column col holds no
// usable state: NULL, empty or unknown (State.Unknown in Go is the same
// test over State).
func UnknownStateSQL(col string) string {
	return col + " IS NULL OR " + SQLIn(col, State(""), Unknown)
}
