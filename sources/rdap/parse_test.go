package rdap

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sources/status"
)

const corpus = "../../testdata/rdap"

func day(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseSamples(t *testing.T) {
	tests := []struct {
		file, domain string
		asOf         string
		want         lifecycle.State
		reg, exp, lc string
		statuses     int
	}{
		{"openrdap_domain-example.cz.json", "example.cz", "2019-01-01T00:00:00Z", lifecycle.Registered,
			"2004-08-30T22:55:00Z", "2019-08-30T12:00:00Z", "", 1},
		{"openrdap_domain-example.cz.json", "example.cz", "2019-08-10T00:00:00Z", lifecycle.Expiring,
			"2004-08-30T22:55:00Z", "2019-08-30T12:00:00Z", "", 1},
		{"openrdap_domain-example.cz.json", "", "2019-09-10T00:00:00Z", lifecycle.Grace,
			"2004-08-30T22:55:00Z", "2019-08-30T12:00:00Z", "", 1},
		{"whoisit_data_rdap_response_domain1.json", "google.com", "2022-07-01T00:00:00Z", lifecycle.Registered,
			"1997-09-15T04:00:00Z", "2028-09-14T04:00:00Z", "", 6},
		{"whoisit_data_rdap_response_domain2.json", "norway.no", "2022-07-01T00:00:00Z", lifecycle.Registered,
			"2017-01-24T12:09:23Z", "", "2021-01-14T05:16:59Z", 0},
		{"whoisit_data_rdap_response_domain3.json", "themarquetry.com", "2022-01-01T00:00:00Z", lifecycle.Registered,
			"2021-03-16T17:07:37Z", "2022-03-16T17:07:37Z", "", 1},
		{"whoisit_data_rdap_response_domain3.json", "themarquetry.com", "2022-03-01T00:00:00Z", lifecycle.Expiring,
			"2021-03-16T17:07:37Z", "2022-03-16T17:07:37Z", "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.file+"@"+tt.asOf, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join(corpus, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			l, err := Parse(body, 200, tt.domain, day(tt.asOf))
			if err != nil {
				t.Fatal(err)
			}
			if l.State != tt.want {
				t.Errorf("state %s, want %s", l.State, tt.want)
			}
			checkTime(t, "registered_at", l.RegisteredAt, tt.reg)
			checkTime(t, "expires_at", l.ExpiresAt, tt.exp)
			checkTime(t, "last_changed", l.LastChanged, tt.lc)
			if len(l.Statuses) != tt.statuses {
				t.Errorf("statuses %q, want %d", l.Statuses, tt.statuses)
			}
			if l.Domain == "" || l.Source != lifecycle.SourceRDAP {
				t.Errorf("record %+v", l)
			}
		})
	}
}

func checkTime(t *testing.T, what string, got *time.Time, want string) {
	t.Helper()
	if want == "" {
		if got != nil {
			t.Errorf("%s = %v, want null", what, got)
		}
		return
	}
	if got == nil || !got.Equal(day(want)) || got.Location() != time.UTC {
		t.Errorf("%s = %v, want %s UTC", what, got, want)
	}
}

func TestParseStatusesAndErrors(t *testing.T) {
	asOf := day("2026-06-15T00:00:00Z")
	tests := []struct {
		name      string
		body      string
		code      int
		want      lifecycle.State
		throttled bool
		permanent bool
		wantErr   bool
	}{
		{"404 empty body", "", 404, lifecycle.Available, false, false, false},
		{"404 html body", "<html>not found</html>", 404, lifecycle.Available, false, false, false},
		{"errorCode 404 at 200", `{"errorCode":404,"title":"Not Found"}`, 200, lifecycle.Available, false, false, false},
		{"errorCode 404 at status 0", `{"errorCode":404}`, 0, lifecycle.Available, false, false, false},
		{"errorCode 429", `{"errorCode":429,"title":"Too Many Requests"}`, 200, "", true, false, true},
		{"errorCode 500", `{"errorCode":500}`, 200, "", false, false, true},
		{"429", `whatever`, 429, "", true, false, true},
		{"403 rate text", `{"errorCode":403,"description":["Rate limit exceeded"]}`, 403, "", true, false, true},
		{"422 quota", `quota exhausted`, 422, "", true, false, true},
		{"403 plain", `{"errorCode":403,"title":"Forbidden"}`, 403, "", false, false, true},
		{"400", `{"errorCode":400}`, 400, "", false, true, true},
		{"503", `down`, 503, "", false, false, true},
		{"garbage", `<html>oops`, 200, "", false, false, true},
		{"truncated", `{"objectClassName":"domain","ldhName":"ex`, 200, "", false, false, true},
		{"empty", ``, 200, "", false, false, true},
		{"not a domain", `{"objectClassName":"entity","handle":"X"}`, 200, "", false, false, true},
		{"no class no name", `{"status":["active"]}`, 200, "", false, false, true},
		{"other domain", `{"objectClassName":"domain","ldhName":"other.com"}`, 200, "", false, false, true},
		{"redemption", `{"objectClassName":"domain","ldhName":"EXAMPLE.COM","status":["redemption period","pending delete"]}`, 200, lifecycle.Redemption, false, false, false},
		{"pending delete", `{"objectClassName":"domain","ldhName":"example.com.","status":["pending delete"]}`, 200, lifecycle.PendingDelete, false, false, false},
		{"auto renew", `{"objectClassName":"domain","ldhName":"example.com","status":["auto renew period"]}`, 200, lifecycle.Grace, false, false, false},
		{"hold after expiry", `{"objectClassName":"domain","ldhName":"example.com","status":["client hold"],"events":[{"eventAction":"expiration","eventDate":"2026-06-01T00:00:00Z"}]}`, 200, lifecycle.Grace, false, false, false},
		{"reregistered", `{"objectClassName":"domain","ldhName":"example.com","status":["active"],"events":[
			{"eventAction":"registration","eventDate":"2001-01-01T00:00:00Z"},
			{"eventAction":"reregistration","eventDate":"2026-05-01T10:00:00.123+02:00"},
			{"eventAction":"expiration","eventDate":"2027-05-01"}]}`, 200, lifecycle.Registered, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Parse([]byte(tt.body), tt.code, "example.com", asOf)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v (state %s)", err, tt.wantErr, l.State)
			}
			var te *status.ThrottledError
			if errors.As(err, &te) != tt.throttled {
				t.Errorf("throttled = %v, want %v (%v)", !tt.throttled, tt.throttled, err)
			}
			var pe *status.PermanentError
			if errors.As(err, &pe) != tt.permanent {
				t.Errorf("permanent = %v, want %v (%v)", !tt.permanent, tt.permanent, err)
			}
			if err != nil {
				if l.State != "" {
					t.Errorf("error with a state %s", l.State)
				}
				if !strings.Contains(err.Error(), "example.com") {
					t.Errorf("error %q does not name the domain", err)
				}
				return
			}
			if l.State != tt.want {
				t.Errorf("state %s, want %s", l.State, tt.want)
			}
		})
	}
	l, err := Parse([]byte(`{"objectClassName":"domain","ldhName":"example.com","events":[
			{"eventAction":"registration","eventDate":"2001-01-01T00:00:00Z"},
			{"eventAction":"reregistration","eventDate":"2026-05-01T10:00:00.123+02:00"},
			{"eventAction":"expiration","eventDate":"2027-05-01"}]}`), 200, "", asOf)
	if err != nil {
		t.Fatal(err)
	}
	checkTime(t, "registered_at", l.RegisteredAt, "2026-05-01T08:00:00.123Z")
	checkTime(t, "expires_at", l.ExpiresAt, "2027-05-01T00:00:00Z")
}

func TestBootstrapLongestSuffix(t *testing.T) {
	b, err := ParseBootstrap([]byte(`{"publication":"x","services":[
		[["com","net"],["http://plain.example/","https://com.example/rdap/"]],
		[["uk"],["https://uk.example/"]],
		[["co.uk"],["https://co-uk.example/"]],
		[["nohttp"],["ftp://x/"]]]}`))
	if err != nil {
		t.Fatal(err)
	}
	for d, want := range map[string]string{
		"example.com":      "https://com.example/rdap/",
		"a.b.EXAMPLE.NET.": "https://com.example/rdap/",
		"example.co.uk":    "https://co-uk.example/",
		"x.example.co.uk":  "https://co-uk.example/",
		"example.org.uk":   "https://uk.example/",
		"example.org":      "",
		"example.nohttp":   "",
		"example.com.evil": "",
	} {
		got, ok := b.Lookup(d)
		if got != want || ok != (want != "") {
			t.Errorf("Lookup(%q) = %q %v, want %q", d, got, ok, want)
		}
	}
	eb, err := ParseBootstrap(embeddedBootstrap)
	if err != nil {
		t.Fatal(err)
	}
	if eb.Len() < 500 || eb.Publication != "2022-07-06T16:00:02Z" {
		t.Errorf("embedded bootstrap: %d suffixes, publication %q", eb.Len(), eb.Publication)
	}
	if u, ok := eb.Lookup("example.com"); !ok || !strings.HasPrefix(u, "https://") {
		t.Errorf("embedded bootstrap has no https server for .com: %q", u)
	}
	for _, bad := range []string{``, `{`, `{"services":[]}`, `[]`} {
		if _, err := ParseBootstrap([]byte(bad)); err == nil {
			t.Errorf("ParseBootstrap(%q) accepted", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"openrdap_domain-example.cz.json", "whoisit_data_rdap_response_domain1.json", "whoisit_data_rdap_response_domain2.json"} {
		b, err := os.ReadFile(filepath.Join(corpus, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, 200)
	}
	f.Add([]byte(`{"errorCode":404}`), 200)
	f.Add([]byte(`rate limit`), 403)
	asOf := day("2026-06-15T00:00:00Z")
	f.Fuzz(func(t *testing.T, body []byte, code int) {
		l, err := Parse(body, code, "", asOf)
		if err != nil {
			if l.State != "" {
				t.Fatalf("error %v with state %s", err, l.State)
			}
			return
		}
		if _, perr := lifecycle.ParseState(string(l.State)); perr != nil {
			t.Fatalf("bad state %q", l.State)
		}
		// Only a 404, said by the status or by the body, may be available.
		if l.State == lifecycle.Available && code != 404 && !strings.Contains(string(body), "404") {
			t.Fatalf("available from HTTP %d body %q", code, body)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	body, err := os.ReadFile(filepath.Join(corpus, "whoisit_data_rdap_response_domain1.json"))
	if err != nil {
		b.Fatal(err)
	}
	asOf := day("2026-06-15T00:00:00Z")
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := Parse(body, 200, "google.com", asOf); err != nil {
			b.Fatal(err)
		}
	}
}
