package address

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

func TestNormalize(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	long64 := strings.Repeat("a", 64)
	// 4 labels of 63 + 3 dots = 255 octets, then ".com": over 253.
	longName := strings.Repeat(long63+".", 4) + "com"
	tests := []struct {
		email, host, domain, reason string
	}{
		// Case, whitespace, subdomains, trailing dots.
		{"User@Example.COM", "example.com", "example.com", ""},
		{"  user@example.com \r\n", "example.com", "example.com", ""},
		{"user@mail.eu.example.co.uk", "mail.eu.example.co.uk", "example.co.uk", ""},
		{"user@example.com.", "example.com", "example.com", ""},
		{"user@example.com。", "example.com", "example.com", ""},
		{"user@example.com..", "example.com.", "", ReasonEmptyLabel},
		// IDN, full-width characters, ideographic and half-width dots.
		{"user@Bücher.DE", "xn--bcher-kva.de", "xn--bcher-kva.de", ""},
		{"user@faß.de", "xn--fa-hia.de", "xn--fa-hia.de", ""},
		{"user@ＥＸＡＭＰＬＥ．ｃｏｍ", "example.com", "example.com", ""},
		{"user@例え。テスト", "xn--r8jz45g.xn--zckzah", "xn--r8jz45g.xn--zckzah", ""},
		{"user@mail｡example｡org", "mail.example.org", "example.org", ""},
		{"user@www.食狮.公司.cn", "www.xn--85x722f.xn--55qx5d.cn", "xn--85x722f.xn--55qx5d.cn", ""},
		{"user@xn--85x722f.xn--fiqs8s", "xn--85x722f.xn--fiqs8s", "xn--85x722f.xn--fiqs8s", ""},
		// ICANN section only: private suffixes are ignored.
		{"user@foo.github.io", "foo.github.io", "github.io", ""},
		{"user@x.uk.com", "x.uk.com", "uk.com", ""},
		{"user@a.b.blogspot.com", "a.b.blogspot.com", "blogspot.com", ""},
		// Wildcard and exception rules.
		{"user@test.ck", "test.ck", "", ReasonPublicSuffix},
		{"user@b.test.ck", "b.test.ck", "b.test.ck", ""},
		{"user@www.ck", "www.ck", "www.ck", ""},
		{"user@mail.www.ck", "mail.www.ck", "www.ck", ""},
		{"user@foo.kawasaki.jp", "foo.kawasaki.jp", "", ReasonPublicSuffix},
		{"user@bar.foo.kawasaki.jp", "bar.foo.kawasaki.jp", "bar.foo.kawasaki.jp", ""},
		{"user@city.kawasaki.jp", "city.kawasaki.jp", "city.kawasaki.jp", ""},
		{"user@www.city.kawasaki.jp", "www.city.kawasaki.jp", "city.kawasaki.jp", ""},
		// Host that is itself a public suffix.
		{"user@com", "com", "", ReasonPublicSuffix},
		{"user@co.uk", "co.uk", "", ReasonPublicSuffix},
		{"user@localhost", "localhost", "", ReasonPublicSuffix},
		// Unknown TLD: the default "*" rule applies (see package doc).
		{"user@a.b.example", "a.b.example", "b.example", ""},
		// Address literals and bare IPs.
		{"user@[1.2.3.4]", "", "", ReasonAddressLiteral},
		{"user@[IPv6:2001:db8::1]", "", "", ReasonAddressLiteral},
		{"user@1.2.3.4", "", "", ReasonIPHost},
		{"user@2001:db8::1", "", "", ReasonIPHost},
		{"user@１２７.０.０.１", "127.0.0.1", "", ReasonIPHost},
		{"user@127.1", "127.1", "", ReasonIPHost},
		// Empty labels and lengths.
		{"user@a..example.com", "a..example.com", "", ReasonEmptyLabel},
		{"user@.example.com", ".example.com", "", ReasonEmptyLabel},
		{"user@" + long63 + ".com", long63 + ".com", long63 + ".com", ""},
		{"user@" + long64 + ".com", long64 + ".com", "", ReasonLabelTooLong},
		{"user@" + longName, longName, "", ReasonNameTooLong},
		// Structure of the address.
		{"user.example.com", "", "", ReasonNoAt},
		{"", "", "", ReasonNoAt},
		{"@example.com", "", "", ReasonEmptyLocal},
		// RFC 5321: a local part has at most 64 octets, quotes included.
		{long64 + "@example.com", "example.com", "example.com", ""},
		{strings.Repeat("é", 32) + "@example.com", "example.com", "example.com", ""},
		{"a" + long64 + "@example.com", "", "", ReasonLocalTooLong},
		{`"` + long63 + `"@example.com`, "", "", ReasonLocalTooLong},
		{strings.Repeat("x", 1<<20) + "@example.com", "", "", ReasonLocalTooLong},
		{"user@", "", "", ReasonEmptyHost},
		{"user@ ", "", "", ReasonEmptyHost},
		{"user@.", "", "", ReasonEmptyHost},
		{`"a@b"@example.com`, "example.com", "example.com", ""},
		{`"a\"@b"@example.org`, "example.org", "example.org", ""},
		{`"unterminated@example.com`, "", "", ReasonNoAt},
		{"a@b@example.net", "example.net", "example.net", ""},
		// Control characters, IDNA-disallowed characters, bad UTF-8.
		{"us\x00er@example.com", "", "", ReasonControl},
		{"user@exa\tmple.com", "", "", ReasonControl},
		{"user@exa\u0085mple.com", "", "", ReasonControl},
		{"user@exa mple.com", "", "", ReasonIDNA},
		{"user@under_score.com", "", "", ReasonIDNA},
		{"user@-lead.com", "", "", ReasonIDNA},
		{"user@xn--zz.com", "", "", ReasonIDNA},
		{"user@a\u200db.com", "", "", ReasonIDNA},
		{"user@exa\xffmple.com", "", "", ReasonInvalidUTF8},
	}
	for _, cached := range []bool{false, true} {
		n := NewNormalizer(0)
		if cached {
			n = NewNormalizer(4) // small, so the generation swap runs too
		}
		for round := range 2 { // second round hits the cache
			for _, tt := range tests {
				got := n.Normalize(tt.email)
				want := Result{Email: tt.email, Host: tt.host, Domain: tt.domain, InvalidReason: tt.reason}
				if got != want {
					t.Errorf("cached=%v round %d: Normalize(%q)\n got %+v\nwant %+v", cached, round, tt.email, got, want)
				}
			}
		}
	}
	if got := Normalize("A@Example.com"); got.Domain != "example.com" {
		t.Errorf("package Normalize: %+v", got)
	}
}

func TestAppendEscaped(t *testing.T) {
	for in, want := range map[string]string{
		"secret.person\xff@ex1.com": `secret.person\xFF@ex1.com`,
		"b\xc3@ex1.com":             `b\xC3@ex1.com`,
		"\xed\xa0\x80":              `\xED\xA0\x80`, // a surrogate's bytes
		"back\\slash\x80é😀":         `back\\slash\x80é😀`,
		"":                          "",
	} {
		got := AppendEscaped([]byte("pre:"), in)
		if string(got) != "pre:"+want || !utf8.Valid(got) {
			t.Errorf("AppendEscaped(%q) = %q, want %q", in, got[4:], want)
		}
	}
}

// pslVector matches checkPublicSuffix('in', 'out') and null forms.
var pslVector = regexp.MustCompile(`^checkPublicSuffix\((null|'[^']*'),\s*(null|'[^']*')\);`)

// pslExceptions are vectors whose expected result differs under lapse's
// rules, each with the reason.
var pslExceptions = map[string]struct{ domain, why string }{
	// uk.com is a private-section rule (CentralNic); the ICANN suffix is com.
	"uk.com":             {"uk.com", "private rule uk.com ignored: ICANN suffix is com"},
	"example.uk.com":     {"uk.com", "private rule uk.com ignored: ICANN suffix is com"},
	"b.example.uk.com":   {"uk.com", "private rule uk.com ignored: ICANN suffix is com"},
	"a.b.example.uk.com": {"uk.com", "private rule uk.com ignored: ICANN suffix is com"},
}

func TestPSLVectors(t *testing.T) {
	f, err := os.Open("../../testdata/psl/test_psl.txt")
	if err != nil {
		t.Fatalf("PSL test vectors: %v", err)
	}
	defer f.Close()
	n := NewNormalizer(0)
	sc := bufio.NewScanner(f)
	count := 0
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		m := pslVector.FindStringSubmatch(line)
		if m == nil {
			if strings.HasPrefix(line, "checkPublicSuffix") {
				t.Errorf("unparsed vector line %q", line)
			}
			continue
		}
		count++
		if m[1] == "null" {
			// null input has no host to give; the address equivalent is "user@".
			if got := n.Normalize("user@"); got.Domain != "" || got.InvalidReason == "" {
				t.Errorf("null input: %+v", got)
			}
			continue
		}
		in := strings.Trim(m[1], "'")
		want := ""
		if m[2] != "null" {
			// Hosts are A-labels, so compare with the A-label form.
			want, err = idna.Lookup.ToASCII(strings.Trim(m[2], "'"))
			if err != nil {
				t.Fatalf("vector %s: %v", m[2], err)
			}
		}
		if ex, ok := pslExceptions[in]; ok {
			t.Logf("vector %q: expect %q not %q: %s", in, ex.domain, want, ex.why)
			want = ex.domain
		}
		got := n.Normalize("user@" + in)
		if got.Domain != want {
			t.Errorf("vector %q: domain %q (reason %q), want %q", in, got.Domain, got.InvalidReason, want)
		}
		if (got.Domain == "") != (got.InvalidReason != "") {
			t.Errorf("vector %q: domain %q with reason %q", in, got.Domain, got.InvalidReason)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if count < 70 {
		t.Fatalf("parsed only %d vectors; format changed?", count)
	}
}

func TestNormalizerConcurrent(t *testing.T) {
	n := NewNormalizer(8)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				host := fmt.Sprintf("h%d.example%d.com", i%50, (i+g)%20)
				r := n.Normalize("u@" + host)
				if r.Host != host || r.Domain != host[strings.IndexByte(host, '.')+1:] {
					t.Errorf("concurrent: %+v", r)
					return
				}
			}
		})
	}
	wg.Wait()
	n.mu.RLock()
	defer n.mu.RUnlock()
	if len(n.cur) > 8 || len(n.prev) > 8 {
		t.Errorf("cache over bound: cur %d prev %d", len(n.cur), len(n.prev))
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"user@example.com", `"a@b"@ｅｘ。com`, "u@[::1]", "u@a..b", "@", "u@食狮.公司.cn", "u@xn--zz.com", "u@www.ck"} {
		f.Add(s)
	}
	n := NewNormalizer(64)
	f.Fuzz(func(t *testing.T, s string) {
		for _, r := range []Result{n.Normalize(s), NewNormalizer(0).Normalize(s)} {
			if r.Email != s {
				t.Fatalf("email changed: %q → %q", s, r.Email)
			}
			if r.Domain != "" && r.InvalidReason != "" {
				t.Fatalf("%q: domain %q with reason %q", s, r.Domain, r.InvalidReason)
			}
			if r.Domain == "" && r.InvalidReason == "" {
				t.Fatalf("%q: neither domain nor reason", s)
			}
			if r.Domain != "" && !strings.HasSuffix(r.Host, r.Domain) {
				t.Fatalf("%q: host %q does not end with domain %q", s, r.Host, r.Domain)
			}
			if r.Domain != "" && (r.Host != strings.ToLower(r.Host) || len(r.Host) > 253) {
				t.Fatalf("%q: host %q not lowercase or too long", s, r.Host)
			}
		}
	})
}

// BenchmarkNormalize runs a realistic mix: most addresses at a few large
// providers, a tail of corporate and university hosts, some IDN and junk.
func BenchmarkNormalize(b *testing.B) {
	var emails []string
	big := []string{"gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com", "qq.com", "163.com", "protonmail.com", "GMail.com", "googlemail.com"}
	for i := range 10000 {
		var host string
		switch {
		case i%10 < 7:
			host = big[i%len(big)]
		case i%10 < 9:
			host = fmt.Sprintf("mail.corp%d.co.uk", i%3000)
		case i%20 == 9:
			host = fmt.Sprintf("cs.univ%d.ac.jp", i%500)
		default:
			host = fmt.Sprintf("bücher%d.de", i%200)
		}
		emails = append(emails, fmt.Sprintf("first.last+%d@%s", i, host))
	}
	emails = append(emails, "no-at-sign", "u@[1.2.3.4]", "u@a..b.com")
	n := NewNormalizer(DefaultCacheSize)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		_ = n.Normalize(emails[i%len(emails)])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "addresses/s")
}

// TestPlainHostsSkipIDNA proves the shortcut of normalizeHost: every host
// made only of lowercase ASCII letters, digits and dots is its own UTS-46
// lookup form (compared exhaustively over a small alphabet, and on long
// labels), and gets the same result as through IDNA.
func TestPlainHostsSkipIDNA(t *testing.T) {
	hosts := allStrings("az09.", 6)
	long := strings.Repeat("a", 64)
	hosts = append(hosts, long+".com", "x."+long, strings.Repeat("ab.", 90)+"com", "1.2.3.4", "127.1", "0x7f.1", "sub.example.co.uk.")
	checked := 0
	for _, h := range hosts {
		if plainLetters(h) == notPlain {
			t.Fatalf("%q classified as not plain", h)
		}
		a, err := idna.Lookup.ToASCII(h)
		if err != nil || a != h {
			t.Fatalf("idna.Lookup.ToASCII(%q) = %q, %v: the shortcut would differ", h, a, err)
		}
		checked++
	}
	for _, h := range []string{"A.com", "a-b.com", "xn--zz.com", "a_b.com", "ａ.com", "a:b", "a b"} {
		if plainLetters(h) != notPlain {
			t.Errorf("%q classified as plain", h)
		}
	}
	t.Logf("%d plain hosts checked", checked)
}
