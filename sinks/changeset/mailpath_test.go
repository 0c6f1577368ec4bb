package changeset

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/duck"
	"github.com/lapse-dev/lapse/lifecycle"
)

// TestMailPathSQLMatchesGo: the SQL test of a mail-path reason is
// lifecycle.Reason.MailPath.
func TestMailPathSQLMatchesGo(t *testing.T) {
	db, err := duck.OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, r := range []lifecycle.Reason{
		lifecycle.ReasonAvailable, lifecycle.ReasonPendingDelete, lifecycle.ReasonRedemption, lifecycle.ReasonReregistered,
		lifecycle.ReasonExpiring, lifecycle.ReasonGrace, lifecycle.ReasonAwaitConfirm, lifecycle.ReasonAwaitLookup,
		lifecycle.ReasonMXAvailable, lifecycle.ReasonMXPendingDelete, lifecycle.ReasonMXRedemption, lifecycle.ReasonMXReregistered, lifecycle.ReasonMXWatch,
		lifecycle.ReasonNSAvailable, lifecycle.ReasonNSPendingDelete, lifecycle.ReasonNSRedemption, lifecycle.ReasonNSReregistered, lifecycle.ReasonNSWatch,
		"reregistered", "", "mx_", "xmx_domain_available",
	} {
		var got bool
		if err := db.QueryRow("SELECT "+mailPathSQL("r")+" FROM (SELECT ? AS r)", string(r)).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != r.MailPath() || IsMailPath(string(r)) != r.MailPath() {
			t.Errorf("%q: SQL says %v, Go %v", r, got, r.MailPath())
		}
	}
}

// mpRows are a night with both kinds of flags: gone.com (4 addresses,
// domain_available) and red.org (1, domain_redemption) lapsed themselves;
// shop.io (2) and blog.net (1) have healthy domains whose name servers are
// in tinydns.com, which is available; mail.dev (1) receives its mail
// through mx.parked.org, re-registered; both.io's evidence names two
// dependencies.
func mpRows() []rvRow {
	ns := func(id int64, domain string) rvRow {
		return rvRow{id: id, user: "u" + domain, domain: domain, tld: domain[strings.LastIndex(domain, ".")+1:], state: "registered",
			reason: "ns_domain_available", evidence: "ns ns1.tinydns.com → tinydns.com rdap:available checked 2026-01-05; ns ns2.tinydns.com → tinydns.com rdap:available checked 2026-01-05"}
	}
	return []rvRow{gone(1, "u1"), gone(2, "u2"), gone(3, "u3"), gone(4, "u3"),
		{id: 5, user: "u5", domain: "red.org", tld: "org", state: "redemption", reason: "domain_redemption", evidence: "whois:redemption"},
		ns(6, "shop.io"), ns(7, "shop.io"), ns(8, "blog.net"),
		{id: 9, user: "u9", domain: "mail.dev", tld: "dev", state: "registered", reason: "mx_domain_reregistered",
			evidence: "mx mx.Parked.org → Parked.org rdap:registered registered 2026-01-02 first seen 2025-03-01 (postmaster@parked.org)"},
		{id: 10, user: "u10", domain: "both.io", tld: "io", state: "registered", reason: "ns_domain_available",
			evidence: "ns a.tinydns.com → tinydns.com rdap:available checked 2026-01-05; ns b.other.net → other.net whois:available checked 2026-01-05"},
	}
}

func TestSummaryMailPath(t *testing.T) {
	dir := rvWrite(t, filepath.Join(t.TempDir(), "changesets"), "2026-01-06", config.BrakeConfig{}, mpRows()...)
	b, err := os.ReadFile(filepath.Join(dir, FileSummary))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	_, byReason, _ := strings.Cut(s, "## By reason\n")
	byReason, _, _ = strings.Cut(byReason, "\n## By TLD")
	want := `
### Domain flags (the address's own domain): 5 addresses

| reason | addresses |
|---|---:|
| domain_available | 4 |
| domain_redemption | 1 |

### Mail-path flags (MX or name-server domain lapsed): 5 addresses

The address's own domain is healthy; the registrable domain of one of its MX hosts or name servers lapsed or was re-registered. 4 address domains.

| reason | addresses |
|---|---:|
| ns_domain_available | 4 |
| mx_domain_reregistered | 1 |

#### Dependency domains

| dependency domain | reasons | addresses | address domains |
|---|---|---:|---:|
| tinydns.com | ns_domain_available | 4 | 3 |
| other.net | ns_domain_available | 1 | 1 |
| parked.org | mx_domain_reregistered | 1 | 1 |
`
	if byReason != want {
		t.Errorf("summary.md by reason:\n%s\nwant\n%s", byReason, want)
	}
	if strings.Contains(s, "@") {
		t.Errorf("summary.md holds an address:\n%s", s)
	}

	// Without mail-path rows: one line says there are none.
	dir = rvWrite(t, filepath.Join(t.TempDir(), "changesets"), "2026-01-06", config.BrakeConfig{}, gone(1, "u1"))
	b, _ = os.ReadFile(filepath.Join(dir, FileSummary))
	want = "## By reason\n\n### Domain flags (the address's own domain): 1 address\n\n| reason | addresses |\n|---|---:|\n| domain_available | 1 |\n\n" +
		"### Mail-path flags (MX or name-server domain lapsed): none\n\n## By TLD"
	if !strings.Contains(string(b), want) || strings.Contains(string(b), "Dependency domains") {
		t.Errorf("summary.md without mail-path rows:\n%s\nwant it to hold\n%s", b, want)
	}
}

func TestReviewMailPath(t *testing.T) {
	ctx := context.Background()
	dir := rvWrite(t, filepath.Join(t.TempDir(), "changesets"), "2026-01-06", config.BrakeConfig{}, mpRows()...)
	r, err := Review(ctx, dir, ReviewOptions{EvidencePerDomain: 1})
	if err != nil {
		t.Fatal(err)
	}
	// The existing counts are unchanged: every reason, together.
	if want := map[string]int64{"domain_available": 4, "domain_redemption": 1, "ns_domain_available": 4, "mx_domain_reregistered": 1}; !reflect.DeepEqual(tallyMap(r.Counts.ByReason), want) {
		t.Errorf("by reason %v", r.Counts.ByReason)
	}
	if want := (FlagGroup{Flagged: 5, ByReason: []Tally{{"domain_available", 4}, {"domain_redemption", 1}}}); !reflect.DeepEqual(r.DomainFlags, want) {
		t.Errorf("domain flags %+v, want %+v", r.DomainFlags, want)
	}
	mp := r.MailPath
	if mp.Flagged != 5 || mp.AddressDomains != 4 || !reflect.DeepEqual(mp.ByReason, []Tally{{"ns_domain_available", 4}, {"mx_domain_reregistered", 1}}) {
		t.Errorf("mail path %+v", mp)
	}
	var deps []string
	for _, d := range mp.Dependencies {
		deps = append(deps, d.Domain)
		if len(d.SampleEvidence) != 1 || !strings.Contains(d.SampleEvidence[0].Evidence, "→ ") {
			t.Errorf("%s sample evidence %+v", d.Domain, d.SampleEvidence)
		}
	}
	if !reflect.DeepEqual(deps, []string{"tinydns.com", "other.net", "parked.org"}) {
		t.Fatalf("dependencies %v", deps)
	}
	tiny := mp.Dependencies[0]
	if tiny.Addresses != 4 || tiny.AddressDomains != 3 || tiny.Reasons != "ns_domain_available" ||
		tiny.SampleEvidence[0].EmailID != 6 || tiny.SampleEvidence[0].Addresses != 3 {
		t.Errorf("tinydns.com %+v", tiny)
	}
	if ev := mp.Dependencies[2].SampleEvidence[0].Evidence; !strings.HasSuffix(ev, "(address))") || strings.Contains(ev, "@") {
		t.Errorf("parked.org evidence %q: want the address redacted", ev)
	}

	out := map[string]string{}
	for _, f := range ReviewFormats {
		var b bytes.Buffer
		if err := r.Render(&b, f); err != nil {
			t.Fatal(err)
		}
		out[f] = b.String()
		if a := anAddress.FindString(out[f]); a != "" {
			t.Errorf("%s output holds an address %q:\n%s", f, a, out[f])
		}
	}
	text := out[FormatText]
	_, byReason, _ := strings.Cut(text, "\nBY REASON\n")
	byReason, _, _ = strings.Cut(byReason, "\nBY STATE")
	want := `domain flags (the address's own domain): 5 addresses
  reason                  addresses
  domain_available                4
  domain_redemption               1
mail-path flags (MX or name-server domain lapsed): 5 addresses, 4 address domains
  reason                  addresses
  ns_domain_available             4
  mx_domain_reregistered          1
`
	if byReason != want {
		t.Errorf("text by reason:\n%s\nwant\n%s", byReason, want)
	}
	for _, w := range []string{"LARGEST MAIL-PATH DEPENDENCIES", "tinydns.com        ns_domain_available     4          3",
		"#6 ×3  ns ns1.tinydns.com → tinydns.com rdap:available"} {
		if !strings.Contains(text, w) {
			t.Errorf("text lacks %q:\n%s", w, text)
		}
	}
	for _, w := range []string{"### Domain flags (the address's own domain): 5 addresses", "| domain_redemption | 1 |",
		"### Mail-path flags (MX or name-server domain lapsed): 5 addresses, 4 address domains", "| mx_domain_reregistered | 1 |",
		"## Largest mail-path dependencies", "| tinydns.com | ns_domain_available | 4 | 3 |", "| other.net | 10 | 1 | ns a.tinydns.com → tinydns.com"} {
		if !strings.Contains(out[FormatMarkdown], w) {
			t.Errorf("markdown lacks %q:\n%s", w, out[FormatMarkdown])
		}
	}
	var js struct {
		Counts struct {
			ByReason []Tally `json:"by_reason"`
		} `json:"counts"`
		DomainFlags struct {
			Flagged  int64   `json:"flagged"`
			ByReason []Tally `json:"by_reason"`
		} `json:"domain_flags"`
		MailPath struct {
			Flagged        int64   `json:"flagged"`
			AddressDomains int64   `json:"address_domains"`
			ByReason       []Tally `json:"by_reason"`
			Dependencies   []struct {
				Domain         string           `json:"domain"`
				Addresses      int64            `json:"addresses"`
				AddressDomains int64            `json:"address_domains"`
				SampleEvidence []EvidenceSample `json:"sample_evidence"`
			} `json:"dependencies"`
		} `json:"mail_path"`
	}
	if err := json.Unmarshal([]byte(out[FormatJSON]), &js); err != nil {
		t.Fatal(err)
	}
	if len(js.Counts.ByReason) != 4 || js.DomainFlags.Flagged != 5 || js.MailPath.Flagged != 5 || js.MailPath.AddressDomains != 4 ||
		len(js.MailPath.ByReason) != 2 || len(js.MailPath.Dependencies) != 3 || js.MailPath.Dependencies[0].Domain != "tinydns.com" ||
		js.MailPath.Dependencies[0].Addresses != 4 || js.MailPath.Dependencies[0].AddressDomains != 3 || len(js.MailPath.Dependencies[0].SampleEvidence) != 1 {
		t.Errorf("json: %+v\n%s", js, out[FormatJSON])
	}
	var back ReviewReport
	if err := json.Unmarshal([]byte(out[FormatJSON]), &back); err != nil || !reflect.DeepEqual(back, r) {
		t.Errorf("json round trip: %v\n%+v\nwant\n%+v", err, back, r)
	}

	// Without mail-path rows: a line saying none, empty JSON fields.
	dir = rvWrite(t, filepath.Join(t.TempDir(), "changesets"), "2026-01-06", config.BrakeConfig{}, gone(1, "u1"))
	r, err = Review(ctx, dir, ReviewOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	r.WriteText(&b)
	if !strings.Contains(b.String(), "mail-path flags (MX or name-server domain lapsed): none\n") || strings.Contains(b.String(), "MAIL-PATH DEPENDENCIES") {
		t.Errorf("text without mail-path rows:\n%s", b.String())
	}
	b.Reset()
	r.WriteJSON(&b)
	if !strings.Contains(b.String(), `"mail_path": {
    "flagged": 0,
    "address_domains": 0,
    "by_reason": [],
    "dependencies": []
  }`) {
		t.Errorf("json without mail-path rows:\n%s", b.String())
	}
}
