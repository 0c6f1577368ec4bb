package emails

import (
	"encoding/json"
	"strings"
	"testing"
)

// jsonValidCases are JSON texts at the edges of the grammar, each run
// through validJSON and encoding/json.Valid.
var jsonValidCases = []string{
	``, ` `, `{}`, `[]`, ` { } `, `{"a":1}`, `{"a":1,}`, `{,}`, `{"a"}`, `{"a":}`, `{"a" 1}`, `{1:2}`, `[1,]`, `[,1]`, `[1 2]`,
	`[[]]`, `[{}]`, `{"a":[1,{"b":null}]}`, `{"a":[1,{"b":null]}`, `[}`, `{]`, `{"a":1}}`, `{"a":1} {}`, `{"a":1}x`,
	`"x"`, `"\"\\\/\b\f\n\r\t\u00e9"`, `"\u00g0"`, `"\u12"`, `"\x"`, `"\'"`, "\"a\tb\"", "\"\x1f\"", "\"\x7f\"", "\"\xff\xfe\"", `"abc`, `"\`, `"\u`,
	`0`, `-0`, `01`, `-01`, `1.`, `1.5`, `.5`, `-`, `+1`, `1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-1.5e10`, `1.5.5`, `0x10`, `Infinity`, `NaN`,
	`true`, `false`, `null`, `tru`, `nul`, `True`, `truex`, `[true,false,null]`, `nullnull`,
	"{\"id\":1,\"email\":\"a@b.c\"}\n", "\t{\"id\" : 1 , \"email\" : \"a@b.c\" }\r\n", "{\"a\":1}\x00",
	`{"id":1,"user_id":"7f1c","email":"a@b.c","verified":true,"primary":false,"created":"2024-01-02T03:04:05Z","verified_at":null}`,
}

func TestValidJSONAgreesWithEncodingJSON(t *testing.T) {
	cases := append([]string{}, jsonValidCases...)
	// Nesting at encoding/json's limit (10,000) and one past it.
	for _, n := range []int{1, 63, 64, 65, 9999, 10000, 10001} {
		cases = append(cases, strings.Repeat("[", n)+strings.Repeat("]", n), strings.Repeat(`{"a":`, n)+"1"+strings.Repeat("}", n))
	}
	for _, s := range cases {
		if got, want := validJSON([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Errorf("validJSON(%.60q) = %v, encoding/json.Valid %v", s, got, want)
		}
	}
}

// validJSON answers as encoding/json.Valid does, whatever the bytes.
func FuzzValidJSON(f *testing.F) {
	for _, s := range jsonValidCases {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, encoding/json.Valid %v", b, got, want)
		}
	})
}

// BenchmarkValidJSON: one export line, as the JSONL reader checks each.
func BenchmarkValidJSON(b *testing.B) {
	line := []byte(`{"id":123456,"user_id":"47dcc109-1454-4ddc-ac81-35f5af299038","email":"maintainer.name@small-domain.example","verified":true,"primary":false,"created":"2024-01-02T03:04:05Z","verified_at":"2024-01-03T03:04:05Z"}`)
	b.Run("validJSON", func(b *testing.B) {
		b.SetBytes(int64(len(line)))
		for b.Loop() {
			if !validJSON(line) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(line)))
		for b.Loop() {
			if !json.Valid(line) {
				b.Fatal("refused")
			}
		}
	})
}
