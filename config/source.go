package config

import "strings"

// SourceKind is the kind of an address source spec (the source setting,
// --source, LAPSE_SOURCE, and lapse sim seed's --to).
type SourceKind string

// The source kinds.
const (
	SourcePostgres SourceKind = "postgres" // postgres://… or postgresql://…
	SourceCSV      SourceKind = "csv"      // csv:PATH
	SourceJSONL    SourceKind = "jsonl"    // jsonl:PATH
)

// ParseSource is the one reading of a source spec: its kind and its target,
// the DSN itself for a postgres:// or postgresql:// URL, the path after
// csv: or jsonl:. A spec of none of these forms has kind "". The target of
// "csv:" or "jsonl:" is empty: each caller says what that means for it.
func ParseSource(spec string) (SourceKind, string) {
	switch {
	case IsPostgresURL(spec):
		return SourcePostgres, spec
	case strings.HasPrefix(spec, "csv:"):
		return SourceCSV, spec[len("csv:"):]
	case strings.HasPrefix(spec, "jsonl:"):
		return SourceJSONL, spec[len("jsonl:"):]
	}
	return "", ""
}

// IsPostgresURL reports whether s is a PostgreSQL URL (postgres://… or
// postgresql://…), as opposed to a keyword/value DSN or a file source.
func IsPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}
