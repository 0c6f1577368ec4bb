package whois

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/lifecycle"
)

const corpus = "../../testdata/whois"

var corpusAsOf = time.Date(2022, 7, 6, 0, 0, 0, 0, time.UTC)

// domainOf reads "com_google.com" as google.com.
func domainOf(file string) string {
	_, d, _ := strings.Cut(filepath.Base(file), "_")
	return d
}

// notFoundExceptions are corpus files whose text is not a plain not-found.
// whois-parser files them under notfound because it matches "not available";
// ARCHITECTURE.md maps reserved answers to reserved, which is what they are.
var notFoundExceptions = map[string]lifecycle.State{
	// "Not available for registration. Second level domain name is reserved."
	"name_login.name": lifecycle.Reserved,
}

func TestCorpusNotFound(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(corpus, "notfound", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		want := lifecycle.Available
		if st, ok := notFoundExceptions[filepath.Base(f)]; ok {
			t.Logf("%s: expecting %s, not available (see notFoundExceptions)", filepath.Base(f), st)
			want = st
		}
		l, err := Parse(string(b), domainOf(f), corpusAsOf)
		if err != nil || l.State != want {
			t.Errorf("%s: %s %v, want %s", filepath.Base(f), l.State, err, want)
		}
	}
}

type expected struct {
	Domain struct {
		Domain     string     `json:"domain"`
		Created    *time.Time `json:"created_date_in_time"`
		Expires    *time.Time `json:"expiration_date_in_time"`
		CreatedRaw string     `json:"created_date"`
		ExpiresRaw string     `json:"expiration_date"`
		Status     []string   `json:"status"`
	} `json:"domain"`
}

// wantDate is the date a .json names: its parsed form when whois-parser
// gave one, else the raw string read by ParseDate (whose layouts
// TestParseDate checks by hand). ok is false when the .json names none or
// names one no layout reads.
func wantDate(parsed *time.Time, raw string) (*time.Time, bool) {
	if parsed != nil {
		return parsed, true
	}
	if t, ok := ParseDate(raw); ok {
		return &t, true
	}
	return nil, false
}

func TestCorpusNotError(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(corpus, "noterror", "*"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	var missing []string
	for _, f := range files {
		if strings.HasSuffix(f, ".json") || strings.HasSuffix(f, ".pre") || strings.HasSuffix(f, ".md") {
			continue
		}
		n++
		name := filepath.Base(f)
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var want expected
		jb, err := os.ReadFile(f + ".json")
		if err != nil {
			t.Errorf("%s: no .json beside it", name)
			continue
		}
		if err := json.Unmarshal(jb, &want); err != nil {
			t.Errorf("%s.json: %v", name, err)
			continue
		}
		l, err := Parse(string(b), "", corpusAsOf)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !l.State.RegisteredFamily() {
			t.Errorf("%s: state %s (statuses %q), want registered family", name, l.State, l.Statuses)
		}
		wc, okc := wantDate(want.Domain.Created, want.Domain.CreatedRaw)
		we, oke := wantDate(want.Domain.Expires, want.Domain.ExpiresRaw)
		if !okc || !oke {
			missing = append(missing, name)
		}
		if !eqTime(l.RegisteredAt, wc) || !eqTime(l.ExpiresAt, we) {
			t.Errorf("%s: dates %v %v, want %v %v (raw %q %q)", name, l.RegisteredAt, l.ExpiresAt, wc, we, want.Domain.CreatedRaw, want.Domain.ExpiresRaw)
		}
	}
	t.Logf("%d of %d files name no creation or no expiry date (registry policy or a date in words): %s", len(missing), n, strings.Join(missing, " "))
	if n < 200 {
		t.Errorf("only %d corpus files", n)
	}
}

func eqTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

func BenchmarkParse(b *testing.B) {
	text, err := os.ReadFile(filepath.Join(corpus, "noterror", "com_google.com"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if _, err := Parse(string(text), "google.com", corpusAsOf); err != nil {
			b.Fatal(err)
		}
	}
}
