package notebooks

import (
	"strings"
	"unicode"
)

// SplitStatements splits SQL text into its statements on the semicolons
// outside strings, quoted identifiers, dollar-quoted strings and comments,
// as DuckDB's CLI does. Each statement keeps its leading comments; pieces
// holding only whitespace and comments are dropped.
func SplitStatements(sql string) []string {
	var out []string
	start := 0
	emit := func(end int) {
		s := strings.TrimSpace(sql[start:end])
		if s != "" && strings.TrimSpace(StripComments(s)) != "" {
			out = append(out, s)
		}
	}
	for i := 0; i < len(sql); {
		switch c := sql[i]; {
		case c == ';':
			emit(i)
			i++
			start = i
		case c == '\'' || c == '"':
			i = skipQuoted(sql, i, c)
		case c == '-' && strings.HasPrefix(sql[i:], "--"):
			i = skipLine(sql, i)
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			i = skipBlock(sql, i)
		case c == '$':
			i = skipDollar(sql, i)
		default:
			i++
		}
	}
	emit(len(sql))
	return out
}

// StripComments removes -- and /* */ comments outside strings (a comment
// becomes one space, so tokens on either side stay apart).
func StripComments(sql string) string {
	var b strings.Builder
	for i := 0; i < len(sql); {
		switch c := sql[i]; {
		case c == '\'' || c == '"':
			j := skipQuoted(sql, i, c)
			b.WriteString(sql[i:j])
			i = j
		case c == '-' && strings.HasPrefix(sql[i:], "--"):
			i = skipLine(sql, i)
			b.WriteByte('\n')
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			i = skipBlock(sql, i)
			b.WriteByte(' ')
		case c == '$':
			j := skipDollar(sql, i)
			b.WriteString(sql[i:j])
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

// FirstKeyword is the statement's first word, upper-cased, after comments
// and opening parentheses ("" when it has none).
func FirstKeyword(stmt string) string {
	s := strings.TrimLeft(StripComments(stmt), " \t\r\n(")
	end := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && r != '_' })
	if end < 0 {
		end = len(s)
	}
	return strings.ToUpper(s[:end])
}

// skipQuoted returns the index after the string or identifier opened by q
// at i (a doubled quote inside is an escape). An unterminated one runs to
// the end.
func skipQuoted(s string, i int, q byte) int {
	for j := i + 1; j < len(s); j++ {
		if s[j] == q {
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(s)
}

func skipLine(s string, i int) int {
	if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
		return i + j + 1
	}
	return len(s)
}

func skipBlock(s string, i int) int {
	if j := strings.Index(s[i+2:], "*/"); j >= 0 {
		return i + 2 + j + 2
	}
	return len(s)
}

// skipDollar skips a dollar-quoted string ($$…$$ or $tag$…$tag$) opened at
// i; a $ that opens none (a parameter like $1) is one character.
func skipDollar(s string, i int) int {
	j := i + 1
	for j < len(s) && (s[j] == '_' || unicode.IsLetter(rune(s[j])) || (j > i+1 && unicode.IsDigit(rune(s[j])))) {
		j++
	}
	if j >= len(s) || s[j] != '$' {
		return i + 1
	}
	tag := s[i : j+1]
	if k := strings.Index(s[j+1:], tag); k >= 0 {
		return j + 1 + k + len(tag)
	}
	return len(s)
}
