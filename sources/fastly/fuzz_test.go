package fastly

import "testing"

func FuzzParseBody(f *testing.F) {
	f.Add([]byte(body("a.com", "active")), "a.com")
	f.Add([]byte(`{"msg":"bad","detail":"x"}`), "a.com")
	f.Add([]byte(`{"errors":[{"title":"t"}]}`), "")
	f.Fuzz(func(t *testing.T, b []byte, d string) {
		st, err := ParseBody(b, d)
		if err == nil && st == "" {
			t.Fatalf("no error and no status for %q", b)
		}
	})
}
