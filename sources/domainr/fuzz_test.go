package domainr

import "testing"

func FuzzParseBody(f *testing.F) {
	f.Add([]byte(body("a.com", "active")), "a.com")
	f.Add([]byte(`{"errors":[{"code":1,"message":"x"}]}`), "a.com")
	f.Add([]byte(`{"status":[{"domain":null}]}`), "")
	f.Fuzz(func(t *testing.T, b []byte, d string) {
		st, err := ParseBody(b, d)
		if err == nil && st == "" {
			t.Fatalf("no error and no status for %q", b)
		}
	})
}
