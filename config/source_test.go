package config

import "testing"

func TestParseSource(t *testing.T) {
	for _, c := range []struct {
		spec   string
		kind   SourceKind
		target string
	}{
		{"postgres://u@h/db", SourcePostgres, "postgres://u@h/db"},
		{"postgresql://u@h/db?sslmode=disable", SourcePostgres, "postgresql://u@h/db?sslmode=disable"},
		{"csv:/a/b.csv", SourceCSV, "/a/b.csv"},
		{"csv:", SourceCSV, ""},
		{"jsonl:rel.jsonl", SourceJSONL, "rel.jsonl"},
		{"jsonl:", SourceJSONL, ""},
		{"", "", ""},
		{"host=h dbname=db", "", ""},
		{"mysql://x", "", ""},
		{"/tmp/x.csv", "", ""},
		{"CSV:/a", "", ""},
	} {
		if k, tg := ParseSource(c.spec); k != c.kind || tg != c.target {
			t.Errorf("ParseSource(%q) = %q, %q, want %q, %q", c.spec, k, tg, c.kind, c.target)
		}
	}
}
