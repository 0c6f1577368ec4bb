package address

import (
	"strings"
	"testing"

	"golang.org/x/net/idna"
)

func TestFold(t *testing.T) {
	for in, want := range map[string]string{
		"example.com":          "example.com",
		" Example.COM. ":       "example.com",
		"WWW.Sub.Example.Com":  "www.sub.example.com",
		"bücher.de":            "xn--bcher-kva.de",
		"BÜCHER.DE.":           "xn--bcher-kva.de",
		"xn--bcher-kva.de":     "xn--bcher-kva.de",
		"example。com。":         "example.com", // ideographic full stops
		"ｅｘａｍｐｌｅ．ｃｏｍ":          "example.com", // full-width
		"_dmarc.Example.com":   "_dmarc.example.com",
		"-bad-.example.com":    "-bad-.example.com", // IDNA rejects: lowercased only
		"co.uk":                "co.uk",
		"":                     "",
		".":                    "",
		"com":                  "com",
		"a..b.com":             "a..b.com",
		"Ünïcode-\u00a0bad.de": strings.ToLower("Ünïcode-\u00a0bad.de"),
	} {
		if got := Fold(in); got != want {
			t.Errorf("Fold(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestFoldASCIIShortcut proves Fold's ASCII shortcut: for an ASCII name,
// UTS-46 lookup either fails or equals lowercasing, over an exhaustive small
// alphabet with the characters that matter (case, hyphens, dots, xn--, an
// underscore) and a few long and odd names.
func TestFoldASCIIShortcut(t *testing.T) {
	names := append(allStrings("aZ0-._", 5), "xn--bcher-kva.de", "XN--BCHER-KVA.DE", "xn--zz.com", "xn--a.com", "ab--cd.com",
		strings.Repeat("a", 64)+".com", "a b.com", "a\tb.com", "a:b", "Example.COM.", "1.2.3.4")
	for _, n := range names {
		a, err := idna.Lookup.ToASCII(n)
		if err == nil && a != strings.ToLower(n) {
			t.Fatalf("idna.Lookup.ToASCII(%q) = %q, not its lowercase: the shortcut would differ", n, a)
		}
	}
	t.Logf("%d ASCII names checked", len(names))
}

func TestFoldStrict(t *testing.T) {
	for in, want := range map[string]string{
		"Example.COM.": "example.com",
		"bücher.de":    "xn--bcher-kva.de",
		"example。com。": "example.com",
		"":             "",
		".":            "",
	} {
		if got, err := FoldStrict(in); err != nil || got != want {
			t.Errorf("FoldStrict(%q) = %q, %v, want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"-bad.com", "a_b.com", "ab--cd.com", "xn--zz.com", "a b.com"} {
		if got, err := FoldStrict(in); err == nil {
			t.Errorf("FoldStrict(%q) = %q, want an IDNA error", in, got)
		}
	}
}

// allStrings returns every string over alphabet of at most n bytes, the
// empty one included, shortest prefixes first.
func allStrings(alphabet string, n int) []string {
	var out []string
	var gen func(prefix []byte, n int)
	gen = func(prefix []byte, n int) {
		out = append(out, string(prefix))
		if n == 0 {
			return
		}
		for i := range len(alphabet) {
			gen(append(prefix, alphabet[i]), n-1)
		}
	}
	gen(nil, n)
	return out
}
