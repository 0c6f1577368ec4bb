package report_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/notebooks"
	"github.com/lapse-dev/lapse/sinks/lifecycledb"
	"github.com/lapse-dev/lapse/sinks/report"
)

// Two nights with both kinds of flags: gone.com lapsed itself; shop.io
// and blog.net are healthy but their name servers' domain lapsed, and
// mail.dev's MX host's domain was re-registered.
const mailSeed = `
INSERT INTO email_decisions VALUES
	('2026-06-09', 1, 'u1', true, 'gone.com', 'com', 'available', 'unverify', 'domain_available', 'corroborated'),
	('2026-06-09', 2, 'u2', true, 'shop.io', 'io', 'registered', 'unverify', 'ns_domain_available', 'corroborated'),
	('2026-06-10', 1, 'u1', true, 'gone.com', 'com', 'available', 'unverify', 'domain_available', 'corroborated'),
	('2026-06-10', 2, 'u2', true, 'shop.io', 'io', 'registered', 'unverify', 'ns_domain_available', 'corroborated'),
	('2026-06-10', 3, 'u3', true, 'blog.net', 'net', 'registered', 'unverify', 'ns_domain_available', 'corroborated'),
	('2026-06-10', 4, 'u4', true, 'mail.dev', 'dev', 'registered', 'unverify', 'mx_domain_reregistered', 'corroborated'),
	('2026-06-10', 5, 'u5', true, 'soon.org', 'org', 'registered', 'watch', 'mx_domain_watch', 'corroborated'),
	('2026-06-10', 6, 'u6', true, 'late.org', 'org', 'grace', 'watch', 'domain_grace', 'corroborated');
INSERT INTO nightly_metrics VALUES ('2026-06-10', 'addresses_verified', '', '', 100), ('2026-06-10', 'flagged', '', '', 4);
INSERT INTO changesets VALUES ('2026-06-10', 'proposed', 'corroborated', 4, 100, NULL, 'x', 'y', now());`

// TestMailPathFlagsApart: the night's summary draws the mail-path reasons
// in a chart of their own, and the flags notebook's cells keep them apart
// from the domain flags, each chart drawing exactly its query's values.
func TestMailPathFlagsApart(t *testing.T) {
	ctx := context.Background()
	db, err := lifecycledb.Open(filepath.Join(t.TempDir(), "lapse.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.SQL().ExecContext(ctx, mailSeed); err != nil {
		t.Fatal(err)
	}
	csDir := filepath.Join(t.TempDir(), "changesets", "2026-06-10")
	if err := os.MkdirAll(csDir, 0o750); err != nil {
		t.Fatal(err)
	}
	manifest := `{"date":"2026-06-10","status":"proposed","policy":"corroborated","block_reasons":[],
		"counts":{"flagged":4,"verified":100,"users":4,"domains":4,"new_since_previous":4,
		"by_reason":{"domain_available":1,"ns_domain_available":2,"mx_domain_reregistered":1},"by_tld":{"com":1,"io":1,"net":1,"dev":1}},"files":{}}`
	if err := os.WriteFile(filepath.Join(csDir, "manifest.json"), []byte(manifest), 0o640); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "reports", "2026-06-10", "index.html")
	if err := report.Write(ctx, db.SQL(), report.Spec{Date: "2026-06-10", Path: path, GeneratedAt: time.Date(2026, 6, 10, 4, 0, 0, 0, time.UTC), Changeset: csDir}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	index := string(b)
	report.CheckSelfContained(t, "index.html", index)
	figure := func(title string) string {
		m := regexp.MustCompile(`<h3>` + regexp.QuoteMeta(title) + `</h3>(?:<p class="about">[^<]*</p>)?<figure>(?s:(.*?))</figure>`).FindStringSubmatch(index)
		if m == nil {
			t.Fatalf("index has no figure %q", title)
		}
		return m[1]
	}
	dom, mail := figure("Domain flags by reason"), figure("Mail-path flags by reason")
	if !strings.Contains(dom, "domain_available") || strings.Contains(dom, "ns_domain") || strings.Contains(dom, "mx_domain") ||
		strings.Count(dom, `<rect class="bar"`) != 1 {
		t.Errorf("domain flags figure:\n%s", dom)
	}
	if !strings.Contains(mail, "ns_domain_available") || !strings.Contains(mail, "mx_domain_reregistered") ||
		strings.Contains(mail, ">domain_available") || strings.Count(mail, `<rect class="bar"`) != 2 {
		t.Errorf("mail-path flags figure:\n%s", mail)
	}
	if !strings.Contains(index, "3 addresses whose own domain is healthy") {
		t.Errorf("index lacks the mail-path count")
	}

	page, err := os.ReadFile(filepath.Join(filepath.Dir(path), "02_flags.html"))
	if err != nil {
		t.Fatal(err)
	}
	report.CheckSelfContained(t, "02_flags", string(page))
	sections := cellSections(string(page))
	nb, err := notebooks.Find("02_flags")
	if err != nil {
		t.Fatal(err)
	}
	byTitle := map[string]notebooks.Result{}
	for _, c := range nb.Cells() {
		r, err := notebooks.Query(ctx, db.SQL(), c.SQL)
		if err != nil {
			t.Fatalf("%s: %v", c.ID(), err)
		}
		byTitle[c.Title] = r
		if c.Chart.Kind == notebooks.ChartBar {
			if got, want := strings.Count(sections[c.Index], `<rect class="bar"`), wantMarks(c.Chart, r); got != want {
				t.Errorf("%s (%s): %d marks drawn, the query returned %d values", c.ID(), c.Title, got, want)
			}
		}
	}
	rows := func(title string, cols ...string) string {
		r, ok := byTitle[title]
		if !ok {
			t.Fatalf("02_flags has no cell %q", title)
		}
		var out []string
		for _, row := range r.Rows {
			var f []string
			for _, c := range cols {
				f = append(f, notebooks.Format(row[r.Col(c)]))
			}
			out = append(out, strings.Join(f, " "))
		}
		return strings.Join(out, "; ")
	}
	for _, tc := range []struct{ title, want string }{
		{"Flagged per night, domain or mail path", "2026-06-09 domain 1; 2026-06-09 mail_path 1; 2026-06-10 domain 1; 2026-06-10 mail_path 3"},
		{"Domain flags per night, by reason", "2026-06-09 domain_available 1; 2026-06-10 domain_available 1"},
		{"Mail-path flags per night, by reason", "2026-06-09 ns_domain_available 1; 2026-06-10 mx_domain_reregistered 1; 2026-06-10 ns_domain_available 2"},
		{"On watch per night, by reason", "2026-06-10 domain domain_grace 1; 2026-06-10 mail_path mx_domain_watch 1"},
	} {
		cols := []string{"date", "kind", "flagged"}
		switch {
		case strings.HasPrefix(tc.title, "On watch"):
			cols = []string{"date", "kind", "reason", "addresses"}
		case strings.HasSuffix(tc.title, "by reason"):
			cols = []string{"date", "reason", "flagged"}
		}
		if got := rows(tc.title, cols...); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.title, got, tc.want)
		}
	}
}
