package pipeline

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/lapse-dev/lapse/internal/duck"
	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/lifecycle"
)

// The mail path's classify (issue 12): an address domain healthy on its
// own whose MX host's or name server's domain lapsed or was re-registered.

// gHealthy is a registered address domain (RDAP, long registered, far expiry).
func gHealthy(name string, links ...gLink) gCase {
	return gCase{name: name, state: lifecycle.Registered, source: gRDAP, registeredAt: gT("2010-01-01"), expiresAt: gT("2027-07-01"), links: links}
}

// gEvidence reads a decisions file's evidence by email_id.
func gEvidence(t testing.TB, path string) map[int64]string {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT email_id, coalesce(evidence, '') FROM read_parquet(?)`, path)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var id int64
		var ev string
		if err := rows.Scan(&id, &ev); err != nil {
			t.Fatal(err)
		}
		out[id] = ev
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestClassifyMailPath(t *testing.T) {
	unverify, watch, keep, unknown := lifecycle.ActionUnverify, lifecycle.ActionWatch, lifecycle.ActionKeep, lifecycle.ActionUnknown
	mx, ns := lifecycle.RoleMX, lifecycle.RoleNS
	dep := func(role, host, d string, st lifecycle.State, src lifecycle.Source) gLink {
		return gLink{role: role, host: host, dep: d, state: st, source: src, registeredAt: gT("2012-01-01"), expiresAt: gT("2027-01-01"),
			checkedAt: gT("2026-06-09")}
	}
	rdapAvailable := dep(mx, "mx1.smallmailhost.net", "smallmailhost.net", lifecycle.Available, gRDAP)
	nsRedemption := dep(ns, "ns1.tinydns.com", "tinydns.com", lifecycle.Redemption, gDomainr)
	nsRedemption.corroborated = true
	bestEffort := dep(ns, "ns1.besteffort.com", "besteffort.com", lifecycle.Available, gDomainr)
	moved := dep(mx, "mx1.newprovider.net", "newprovider.net", lifecycle.Registered, gRDAP)
	moved.registeredAt = gT("2025-11-01")
	taken := dep(ns, "ns1.resurrected.org", "resurrected.org", lifecycle.Registered, gRDAP)
	taken.registeredAt = gT("2026-04-20")
	unknownDep := dep(mx, "mx1.unknownhost.net", "unknownhost.net", lifecycle.Unknown, gRDAP)
	unknownDep.registeredAt = gT("2026-05-01")
	cases := []gCase{
		0: func() gCase {
			c := gHealthy("MX domain available on an RDAP answer", rdapAvailable)
			c.want = gDec(unverify, lifecycle.ReasonMXAvailable)
			return c
		}(),
		1: func() gCase {
			c := gHealthy("NS domain in redemption, corroborated", nsRedemption)
			c.want = gDec(unverify, lifecycle.ReasonNSRedemption)
			return c
		}(),
		2: func() gCase {
			c := gHealthy("NS domain available on a best-effort answer: watch, never unverify", bestEffort)
			c.want = gDec(watch, lifecycle.ReasonNSWatch)
			return c
		}(),
		3: func() gCase {
			c := gHealthy("MX domain registered before the link was first seen", moved)
			c.firstNight = "2026-01-01"
			c.want = gDec(keep, lifecycle.ReasonRegistered)
			return c
		}(),
		4: func() gCase {
			c := gHealthy("NS domain registered after the link and the address's first sighting", taken)
			c.firstNight = "2026-03-01"
			c.want = gDec(unverify, lifecycle.ReasonNSReregistered)
			return c
		}(),
		5: func() gCase {
			c := gHealthy("MX domain of unknown state", unknownDep)
			c.firstNight = "2026-03-01"
			c.want = gDec(keep, lifecycle.ReasonRegistered)
			return c
		}(),
		6: {name: "own domain unknown, MX domain available", state: lifecycle.Unknown, source: gRDAP, links: []gLink{rdapAvailable},
			want: gDec(unknown, lifecycle.ReasonUnknown)},
		7: func() gCase {
			c := gHealthy("no mail path")
			c.want = gDec(keep, lifecycle.ReasonRegistered)
			return c
		}(),
	}
	res := gRun(t, lifecycle.DefaultPolicy, cases)
	if res.FlaggedByReason[lifecycle.ReasonMXAvailable] != 1 || res.FlaggedByReason[lifecycle.ReasonNSRedemption] != 1 ||
		res.FlaggedByReason[lifecycle.ReasonNSReregistered] != 1 || res.Flagged != 3 {
		t.Errorf("flagged %d by reason %v", res.Flagged, res.FlaggedByReason)
	}
	ev := gEvidence(t, res.Path)
	for id, want := range map[int64][]string{
		0: {"mx mx1.smallmailhost.net → smallmailhost.net rdap:available checked 2026-06-09; domain rdap:registered"},
		1: {"ns ns1.tinydns.com → tinydns.com domainr:redemption corroborated checked 2026-06-09; domain rdap:registered"},
		2: {"ns ns1.besteffort.com → besteffort.com domainr:available ", "checked 2026-06-09; domain rdap:registered"},
		4: {"ns ns1.resurrected.org → resurrected.org rdap:registered checked 2026-06-09 registered 2026-04-20 after link first seen 2026-01-02; domain rdap:registered"},
		6: {"rdap:unknown"},
	} {
		for _, w := range want {
			if !strings.Contains(ev[id], w) {
				t.Errorf("case %d %q: evidence %q, want it to hold %q", id, cases[id].name, ev[id], w)
			}
		}
	}
	if strings.Contains(ev[6], "→") {
		t.Errorf("an unknown decision names the mail path: %q", ev[6])
	}
	// The state and source columns stay the address domain's.
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var state, source string
	if err := db.QueryRow(`SELECT state, source FROM read_parquet(?) WHERE email_id = 0`, res.Path).Scan(&state, &source); err != nil {
		t.Fatal(err)
	}
	if state != string(lifecycle.Registered) || source != string(gRDAP) {
		t.Errorf("state/source %s/%s, want the address domain's registered/rdap", state, source)
	}
}

// TestClassifyMailPathIgnoredByPyPI: PyPI does not look at the mail path;
// its preset reads no links.
func TestClassifyMailPathIgnoredByPyPI(t *testing.T) {
	p := lifecycle.NewPolicy(lifecycle.PolicyPyPI, 30*24*time.Hour, 2)
	c := gCase{name: "active, MX domain available", state: lifecycle.Registered, source: gDomainr, statuses: []string{"active"},
		links: []gLink{{role: lifecycle.RoleMX, host: "mx1.smallmailhost.net", dep: "smallmailhost.net", state: lifecycle.Available, source: gRDAP}},
		want:  gDec(lifecycle.ActionKeep, lifecycle.ReasonRegistered)}
	res := gRun(t, p, []gCase{c})
	if res.Flagged != 0 {
		t.Errorf("pypi flagged %d by the mail path", res.Flagged)
	}
	dir := t.TempDir()
	paths := gWriteFixtures(t, dir, []gCase{c})
	db, err := duck.OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	plan, err := planClassify(context.Background(), db, ClassifyOptionsFor(paths, p, gAsOf))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plan.decide, "links.parquet") || strings.Contains(plan.export, "links.parquet") {
		t.Errorf("the pypi preset reads the links file:\n%s", plan.decide)
	}
}

// TestClassifyWithoutLinksFile: no links file (or none named) decides
// exactly as before the mail path: every mail fact NULL, the same
// decisions and evidence as with the links file's mail facts ignored.
func TestClassifyWithoutLinksFile(t *testing.T) {
	cases := gPolicyCases()
	dir := t.TempDir()
	paths := gWriteFixtures(t, dir, cases)
	if !fileExists(paths.Links()) {
		t.Fatal("no links file written")
	}
	noMail := lifecycle.DefaultPolicy
	for _, how := range []string{"unnamed", "missing"} {
		o := ClassifyOptionsFor(paths, lifecycle.DefaultPolicy, gAsOf)
		if how == "unnamed" {
			o.Links = ""
		} else {
			o.Links = paths.Links() + ".missing"
		}
		res, err := Classify(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		all := gAllDecisions(t, o)
		for i, c := range cases {
			f := c.facts(noMail, cases, i)
			f.MX, f.NS = lifecycle.MailFacts{}, lifecycle.MailFacts{}
			if want := noMail.Decide(f, gAsOf); all[int64(i)] != want {
				t.Errorf("links %s, case %d %q: %v, want %v", how, i, c.name, all[int64(i)], want)
			}
			if all[int64(i)].Reason.MailPath() {
				t.Errorf("links %s, case %d %q: decided by the mail path", how, i, c.name)
			}
		}
		for id, ev := range gEvidence(t, res.Path) {
			if strings.Contains(ev, "→") {
				t.Errorf("links %s: address %d's evidence names a mail path: %q", how, id, ev)
			}
		}
		db, err := duck.OpenMemory()
		if err != nil {
			t.Fatal(err)
		}
		plan, err := planClassify(context.Background(), db, o)
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(plan.decide, "mail_links") || strings.Contains(plan.export, "mail_links") {
			t.Errorf("links %s: the queries join a mail path", how)
		}
	}
}

// TestClassifyLinksFileMissingColumn: a links file without a column
// classify reads is an error naming the file.
func TestClassifyLinksFileMissingColumn(t *testing.T) {
	dir := t.TempDir()
	paths := gWriteFixtures(t, dir, []gCase{gHealthy("a", gLink{role: lifecycle.RoleMX, host: "mx.h.net", dep: "h.net", state: lifecycle.Registered, source: gRDAP})})
	db, err := duck.OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := duck.CopyParquet(context.Background(), db, fmt.Sprintf(`SELECT * EXCLUDE (first_seen) FROM read_parquet(%s)`, duck.String(paths.Links())),
		paths.Links(), 0o640); err != nil {
		t.Fatal(err)
	}
	_, err = Classify(context.Background(), ClassifyOptionsFor(paths, lifecycle.DefaultPolicy, gAsOf))
	if err == nil || !strings.Contains(err.Error(), paths.Links()) || !strings.Contains(err.Error(), "first_seen") {
		t.Errorf("classify over a links file without first_seen: %v", err)
	}
}

// TestClassifyMailPathSharedDependency: one MX provider's domain, one
// state row, shared by 10,000 address domains: every address is flagged.
func TestClassifyMailPathSharedDependency(t *testing.T) {
	const n = 10_000
	ctx := context.Background()
	dir := t.TempDir()
	p := night.Paths{DataDir: dir, Date: gNight}
	db, err := duck.OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, f := range []string{p.Snapshot(), p.States(), p.Links()} {
		if err := os.MkdirAll(strings.TrimSuffix(f, "/"+lastElem(f)), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	copyTo := func(q, path string) {
		t.Helper()
		if err := duck.CopyParquet(ctx, db, q, path, 0o640); err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
	}
	copyTo(fmt.Sprintf(`SELECT i::BIGINT AS email_id, 'u' || i AS user_id, 'user' || i || '@d' || i || '.example' AS email,
		true AS verified, true AS "primary", TIMESTAMPTZ '2024-01-01 00:00:00+00' AS created, NULL::TIMESTAMPTZ AS verified_at,
		'd' || i || '.example' AS host, 'd' || i || '.example' AS domain, NULL::VARCHAR AS invalid_reason FROM range(%d) t(i)`, n), p.Snapshot())
	copyTo(fmt.Sprintf(`SELECT 'd' || i || '.example' AS domain, 'registered' AS state, 'rdap' AS source,
		TIMESTAMPTZ '2010-01-01 00:00:00+00' AS registered_at, TIMESTAMPTZ '2027-07-01 00:00:00+00' AS expires_at,
		TIMESTAMPTZ '2026-06-10 01:00:00+00' AS checked_at, false AS corroborated FROM range(%d) t(i)
		UNION ALL SELECT 'smallmailhost.net', 'available', 'rdap', NULL, NULL, TIMESTAMPTZ '2026-06-09 01:00:00+00', false`, n), p.States())
	copyTo(fmt.Sprintf(`SELECT 'd' || i || '.example' AS domain, TIMESTAMPTZ '2026-06-01 00:00:00+00' AS checked_at,
		'ok' AS mx_outcome, 'ok' AS ns_outcome, false AS null_mx, false AS ns_from_referral,
		'mx' AS role, 'mx' || r || '.smallmailhost.net' AS host, 'smallmailhost.net' AS dep, (10 * r)::INTEGER AS pref,
		TIMESTAMPTZ '2025-01-02 00:00:00+00' AS first_seen FROM range(%d) t(i), range(1, 3) m(r)`, n), p.Links())
	var depRows int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM read_parquet(?) WHERE domain = 'smallmailhost.net'`, p.States()).Scan(&depRows); err != nil {
		t.Fatal(err)
	}
	if depRows != 1 {
		t.Fatalf("the dependency has %d state rows, want 1", depRows)
	}
	start := time.Now()
	res, err := Classify(ctx, ClassifyOptionsFor(p, lifecycle.DefaultPolicy, gAsOf))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("classified %d addresses over %d links in %v", res.Addresses, 2*n, time.Since(start))
	if res.Addresses != n || res.Flagged != n || res.FlaggedByReason[lifecycle.ReasonMXAvailable] != n {
		t.Errorf("addresses %d, flagged %d by reason %v; want all %d mx_domain_available", res.Addresses, res.Flagged, res.FlaggedByReason, n)
	}
	ev := gEvidence(t, res.Path)
	if len(ev) != n {
		t.Fatalf("decisions file holds %d rows, want %d", len(ev), n)
	}
	if want := "mx mx1.smallmailhost.net → smallmailhost.net rdap:available checked 2026-06-09; domain rdap:registered"; !strings.HasPrefix(ev[42], want) {
		t.Errorf("evidence %q, want it to start %q", ev[42], want)
	}
}

func lastElem(path string) string { return path[strings.LastIndex(path, "/")+1:] }

// TestClassifyMailLinksKeyedByStateRow: the materialized links file
// numbers each address domain by its row in the states file, and the
// decide joins the mail facts on that number. The decisions and their
// evidence must be those of the unmaterialized plan (which joins the links
// by name), also after
// the states file is written again in another row order: a file numbered
// for the old states must not be reused.
func TestClassifyMailLinksKeyedByStateRow(t *testing.T) {
	ctx := context.Background()
	mx, ns := lifecycle.RoleMX, lifecycle.RoleNS
	dep := func(role, host, d string, st lifecycle.State) gLink {
		return gLink{role: role, host: host, dep: d, state: st, source: gRDAP, registeredAt: gT("2012-01-01"), expiresAt: gT("2027-01-01"),
			checkedAt: gT("2026-06-09")}
	}
	var cases []gCase
	for i := range 40 {
		var links []gLink
		switch i % 4 {
		case 0:
			links = []gLink{dep(mx, "mx1.lapsedmail.net", "lapsedmail.net", lifecycle.Available)}
		case 1:
			links = []gLink{dep(ns, "ns1.redemptiondns.com", "redemptiondns.com", lifecycle.Redemption)}
		case 2:
			links = []gLink{dep(mx, "mx.bigmail.com", "bigmail.com", lifecycle.Registered)}
		}
		cases = append(cases, gHealthy(fmt.Sprintf("case %d", i), links...))
	}
	dir := t.TempDir()
	p := gWriteFixtures(t, dir, cases)
	byName := ClassifyOptionsFor(p, lifecycle.DefaultPolicy, gAsOf)
	byName.MailLinks = ""
	byName.Out = filepath.Join(dir, "by-name", "decisions.parquet")
	byName.FirstSeen, byName.Counts = filepath.Join(dir, "by-name", "first_seen.parquet"), filepath.Join(dir, "by-name", "counts.json")
	if err := os.MkdirAll(filepath.Dir(byName.Out), 0o750); err != nil {
		t.Fatal(err)
	}
	if _, err := Classify(ctx, byName); err != nil {
		t.Fatal(err)
	}
	want := gDecisions(t, byName.Out)
	wantEv := gEvidence(t, byName.Out)
	flagged := 0
	for _, d := range want {
		if d.Reason.MailPath() {
			flagged++
		}
	}
	if flagged != 20 {
		t.Fatalf("the plan joining by name flagged %d addresses by their mail path, want 20", flagged)
	}
	keyed := ClassifyOptionsFor(p, lifecycle.DefaultPolicy, gAsOf)
	check := func(when string) {
		t.Helper()
		if _, err := Classify(ctx, keyed); err != nil {
			t.Fatal(err)
		}
		got := gDecisions(t, keyed.Out)
		if len(got) != len(want) {
			t.Errorf("%s: %d decisions, want %d", when, len(got), len(want))
		}
		for id, w := range want {
			if got[id] != w {
				t.Errorf("%s: address %d decided %v, want %v", when, id, got[id], w)
			}
		}
		// The evidence too: the export matches the links by the state
		// row (domain_st_id) here, by name without the file.
		for id, ev := range gEvidence(t, keyed.Out) {
			if ev != wantEv[id] {
				t.Errorf("%s: address %d evidence %q, want %q", when, id, ev, wantEv[id])
			}
		}
	}
	check("materialized")
	if !fileExists(keyed.MailLinks) {
		t.Fatalf("no materialized links file at %s", keyed.MailLinks)
	}
	// The same states, rows reversed: every domain has another st_id.
	db, err := duck.OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tmp := p.States() + ".reversed"
	if err := duck.CopyParquet(ctx, db, fmt.Sprintf(`SELECT * FROM read_parquet(%s) ORDER BY domain DESC`, duck.String(p.States())), tmp, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p.States()); err != nil {
		t.Fatal(err)
	}
	check("states rewritten in another order")
}

// TestClassifyDay: the evidence's dates (template day) are the UTC dates
// strftime gives, infinities included.
func TestClassifyDay(t *testing.T) {
	db, err := duck.OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	expr, err := renderClassifySQLText(`{{day "x"}}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"2026-06-09 23:59:59.999999+00", "2026-06-10 00:30:00+02", "1969-12-31 23:59:59.5+00", "0044-03-15 12:00:00+00", "infinity", "-infinity"} {
		var got, want string
		q := fmt.Sprintf(`SELECT %s, strftime(x, '%%Y-%%m-%%d') FROM (SELECT CAST(%s AS TIMESTAMPTZ) AS x)`, expr, duck.String(v))
		if err := db.QueryRow(q).Scan(&got, &want); err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if got != want {
			t.Errorf("%s: day %q, strftime %q", v, got, want)
		}
	}
}

// renderClassifySQLText executes text as a template with classify's
// functions (a test's expression).
func renderClassifySQLText(text string) (string, error) {
	t, err := template.Must(classifySQL.Clone()).New("text").Parse(text)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := t.Execute(&b, nil); err != nil {
		return "", err
	}
	return b.String(), nil
}
