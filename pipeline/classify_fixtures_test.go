package pipeline

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/internal/duck"
	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/lifecycle"
)

// gCase is one address and its domain's state, as fixtures for classify
// and as lifecycle.Facts for the Go policy.
type gCase struct {
	name      string
	invalid   bool // no registrable domain
	unchecked bool // no domain state row
	verified  *bool
	userID    string
	domain    string // default case<N>.<tld>
	tld       string // default "test"

	state          lifecycle.State
	source         lifecycle.Source
	corroborated   bool
	decisiveNights int
	statuses       []string
	evidence       []lifecycle.Evidence
	registeredAt   *time.Time
	expiresAt      *time.Time
	prevRegAt      *time.Time
	regChangedAt   *time.Time

	created     *time.Time
	verifiedAt  *time.Time
	firstNight  string // first snapshot date holding the address; "" = tonight only
	protectedOK bool
	// checkedAt is when the domain state was looked up (default gAsOf);
	// reverifiedAt when the owner verified the address again after an
	// applied changeset un-verified it.
	checkedAt    *time.Time
	reverifiedAt *time.Time

	// links are the address domain's mail path (the links file; none
	// for any case: no links file at all).
	links []gLink

	want *lifecycle.Decision
}

// gLink is one link of a case's mail path: its role, host, the
// dependency domain dep and dep's own state row (written once per dep:
// the first link naming it with a state gives it).
type gLink struct {
	role, host, dep string
	// firstSeen is when lapse first saw the link (default gLinkSeen).
	firstSeen *time.Time
	noState   bool // dep has no state row

	state        lifecycle.State
	source       lifecycle.Source
	corroborated bool
	registeredAt *time.Time
	expiresAt    *time.Time
	prevRegAt    *time.Time
	regChangedAt *time.Time
	checkedAt    *time.Time // default gAsOf
}

var gLinkSeen = gT("2026-01-02")

func (l gLink) seen() *time.Time {
	if l.firstSeen != nil {
		return l.firstSeen
	}
	return gLinkSeen
}

func (l gLink) checked() *time.Time {
	if l.checkedAt != nil {
		return l.checkedAt
	}
	t := gAsOf
	return &t
}

// mailDep is the link as lifecycle.MailDep sees it, with its
// dependency's state row (from the first link of cases naming dep with
// a state: gWriteFixtures writes that one).
func (l gLink) mailDep(cases []gCase) lifecycle.MailDep {
	d := lifecycle.MailDep{Role: l.role, Host: l.host, Dep: l.dep, FirstSeen: l.seen()}
	for _, c := range cases {
		for _, o := range c.links {
			if o.dep != l.dep || o.noState {
				continue
			}
			d.State, d.Source, d.Corroborated = o.state, o.source, o.corroborated
			d.CheckedAt, d.RegisteredAt, d.ExpiresAt = o.checked(), o.registeredAt, o.expiresAt
			d.PreviousRegisteredAt, d.RegisteredAtChangedAt = o.prevRegAt, o.regChangedAt
			return d
		}
	}
	return d
}

const gNight = "2026-06-10"

var gAsOf = time.Date(2026, 6, 10, 3, 0, 0, 0, time.UTC)

func gT(s string) *time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return &t
}

func gDec(a lifecycle.Action, r lifecycle.Reason) *lifecycle.Decision {
	return &lifecycle.Decision{Action: a, Reason: r}
}

func (c gCase) dom(i int) string {
	if c.invalid {
		return ""
	}
	if c.domain != "" {
		return c.domain
	}
	tld := c.tld
	if tld == "" {
		tld = "test"
	}
	return fmt.Sprintf("case%d.%s", i, tld)
}

// facts is what policy p sees for case i of cases (first-seen as
// classify derives it: earliest of created, verified_at and the end of the
// first snapshot's day; the mail facts folded from its links by
// lifecycle.Policy.MailFactsOf).
func (c gCase) facts(p lifecycle.Policy, cases []gCase, i int) lifecycle.Facts {
	night := gNight
	if c.firstNight != "" {
		night = c.firstNight
	}
	fs := gT(night).Add(24 * time.Hour)
	for _, t := range []*time.Time{c.created, c.verifiedAt} {
		if t != nil && t.Before(fs) {
			fs = *t
		}
	}
	var deps []lifecycle.MailDep
	for _, l := range c.links {
		deps = append(deps, l.mailDep(cases))
	}
	return lifecycle.Facts{
		MX: p.MailFactsOf(lifecycle.RoleMX, deps, gAsOf), NS: p.MailFactsOf(lifecycle.RoleNS, deps, gAsOf),
		InvalidAddress: c.invalid, Checked: !c.invalid && !c.unchecked,
		State: c.state, Source: c.source, Corroborated: c.corroborated, DecisiveNights: c.decisiveNights,
		Flags:        lifecycle.BestEffortFlags(c.source, c.statuses, c.evidence),
		RegisteredAt: c.registeredAt, ExpiresAt: c.expiresAt,
		PreviousRegisteredAt: c.prevRegAt, RegisteredAtChangedAt: c.regChangedAt,
		FirstSeen: &fs, CheckedAt: c.checked(), ReverifiedAt: c.reverifiedAt,
	}
}

func (c gCase) checked() *time.Time {
	if c.checkedAt != nil {
		return c.checkedAt
	}
	t := gAsOf
	return &t
}

// gWriteFixtures writes the snapshots (tonight's and the history) and the
// domain states of cases into dataDir, through DuckDB COPY.
func gWriteFixtures(t testing.TB, dataDir string, cases []gCase) night.Paths {
	t.Helper()
	ctx := context.Background()
	db, err := duck.OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mustExec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
	}
	mustExec(`CREATE TABLE snap (night VARCHAR, email_id BIGINT, user_id VARCHAR, email VARCHAR, verified BOOLEAN, "primary" BOOLEAN,
		created TIMESTAMPTZ, verified_at TIMESTAMPTZ, host VARCHAR, domain VARCHAR, invalid_reason VARCHAR)`)
	mustExec(`CREATE TABLE states (domain VARCHAR, state VARCHAR, statuses VARCHAR[], registered_at TIMESTAMPTZ, expires_at TIMESTAMPTZ,
		last_changed TIMESTAMPTZ, delegated BOOLEAN, source VARCHAR, checked_at TIMESTAMPTZ, as_of TIMESTAMPTZ, error VARCHAR,
		corroborated BOOLEAN, evidence_json VARCHAR, next_check TIMESTAMPTZ, consecutive_errors INTEGER, unverified BOOLEAN,
		previous_registered_at TIMESTAMPTZ, registered_at_changed_at TIMESTAMPTZ, first_checked_at TIMESTAMPTZ,
		last_checked_at TIMESTAMPTZ, decisive_since TIMESTAMPTZ, decisive_nights INTEGER)`)
	mustExec(`CREATE TABLE rv (email_id BIGINT, reverified_at TIMESTAMPTZ)`)
	mustExec(`CREATE TABLE links (domain VARCHAR, checked_at TIMESTAMPTZ, next_check TIMESTAMPTZ, mx_outcome VARCHAR, ns_outcome VARCHAR,
		null_mx BOOLEAN, ns_from_referral BOOLEAN, role VARCHAR, host VARCHAR, dep VARCHAR, pref INTEGER, first_seen TIMESTAMPTZ, error VARCHAR)`)
	insertState := func(d string, state lifecycle.State, source lifecycle.Source, statuses []string, evidence []lifecycle.Evidence,
		registeredAt, expiresAt, checkedAt *time.Time, corroborated bool, prevRegAt, regChangedAt *time.Time, decisiveNights int) {
		st, _ := json.Marshal(statuses)
		var ev any
		if evidence != nil {
			b, _ := json.Marshal(evidence)
			ev = string(b)
		}
		var src any
		if source != "" {
			src = string(source)
		}
		mustExec(`INSERT INTO states (domain, state, statuses, registered_at, expires_at, source, checked_at, as_of, corroborated,
			evidence_json, consecutive_errors, unverified, previous_registered_at, registered_at_changed_at, decisive_nights)
			VALUES (?, ?, CAST(from_json(?, '["VARCHAR"]') AS VARCHAR[]), ?, ?, ?, ?, ?, ?, ?, 0, false, ?, ?, ?)`,
			d, string(state), string(st), registeredAt, expiresAt, src, *checkedAt, gAsOf, corroborated, ev,
			prevRegAt, regChangedAt, int32(decisiveNights))
	}
	anyLinks := false
	for _, c := range cases {
		anyLinks = anyLinks || len(c.links) > 0
	}
	nights := map[string]bool{gNight: true}
	written := map[string]bool{}
	for i, c := range cases {
		if c.reverifiedAt != nil {
			mustExec(`INSERT INTO rv VALUES (?, ?)`, int64(i), *c.reverifiedAt)
		}
		d := c.dom(i)
		email := fmt.Sprintf("user%d@%s", i, d)
		var dom, host, inv any = d, d, nil
		if c.invalid {
			email, dom, host, inv = fmt.Sprintf("broken%d", i), nil, nil, "no_at"
		}
		verified := true
		if c.verified != nil {
			verified = *c.verified
		}
		uid := c.userID
		if uid == "" {
			uid = fmt.Sprintf("u%d", i)
		}
		ns := []string{gNight}
		if c.firstNight != "" && c.firstNight != gNight {
			ns = append(ns, c.firstNight)
			nights[c.firstNight] = true
		}
		for _, n := range ns {
			mustExec(`INSERT INTO snap VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, n, int64(i), uid, email, verified, i%2 == 0,
				c.created, c.verifiedAt, host, dom, inv)
		}
		if anyLinks && !c.invalid && len(c.links) == 0 {
			mustExec(`INSERT INTO links (domain, checked_at, mx_outcome, ns_outcome, null_mx, ns_from_referral) VALUES (?, ?, 'ok', 'ok', false, false)`, d, gAsOf)
		}
		for _, l := range c.links {
			var pref any
			if l.role == lifecycle.RoleMX {
				pref = int32(10)
			}
			mustExec(`INSERT INTO links (domain, checked_at, mx_outcome, ns_outcome, null_mx, ns_from_referral, role, host, dep, pref, first_seen)
				VALUES (?, ?, 'ok', 'ok', false, false, ?, ?, ?, ?, ?)`, d, gAsOf, l.role, l.host, l.dep, pref, *l.seen())
			if l.noState || written[l.dep] {
				continue
			}
			written[l.dep] = true
			insertState(l.dep, l.state, l.source, nil, nil, l.registeredAt, l.expiresAt, l.checked(), l.corroborated, l.prevRegAt, l.regChangedAt, 0)
		}
		if c.invalid || c.unchecked || written[d] {
			continue
		}
		written[d] = true
		insertState(d, c.state, c.source, c.statuses, c.evidence, c.registeredAt, c.expiresAt, c.checked(), c.corroborated,
			c.prevRegAt, c.regChangedAt, c.decisiveNights)
	}
	p := night.Paths{DataDir: dataDir, Date: gNight}
	for n := range nights {
		out := night.Paths{DataDir: dataDir, Date: n}.Snapshot()
		q := fmt.Sprintf(`SELECT * EXCLUDE (night) FROM snap WHERE night = %s ORDER BY email_id`, duck.String(n))
		if err := duck.CopyParquet(ctx, db, q, out, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := duck.CopyParquet(ctx, db, `SELECT * FROM states ORDER BY domain`, p.States(), 0o640); err != nil {
		t.Fatal(err)
	}
	if anyLinks {
		if err := duck.CopyParquet(ctx, db, `SELECT * FROM links ORDER BY domain, role, host`, p.Links(), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	var rv int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM rv`).Scan(&rv); err != nil {
		t.Fatal(err)
	}
	if rv > 0 {
		if err := duck.CopyParquet(ctx, db, `SELECT * FROM rv`, night.Paths{DataDir: dataDir, Date: gNight}.Reverified(), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// gDecisions reads a decisions file by email_id (its non-keep rows).
func gDecisions(t testing.TB, path string) map[int64]lifecycle.Decision {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT email_id, action, reason FROM read_parquet(?)`, path)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]lifecycle.Decision{}
	for rows.Next() {
		var id int64
		var a, r string
		if err := rows.Scan(&id, &a, &r); err != nil {
			t.Fatal(err)
		}
		out[id] = lifecycle.Decision{Action: lifecycle.Action(a), Reason: lifecycle.Reason(r)}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// gFirstSeen reads a first_seen.parquet by email_id.
func gFirstSeen(t testing.TB, path string) map[int64]time.Time {
	t.Helper()
	db, err := duck.OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT email_id, first_seen FROM read_parquet(?)`, path)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]time.Time{}
	for rows.Next() {
		var id int64
		var fs time.Time
		if err := rows.Scan(&id, &fs); err != nil {
			t.Fatal(err)
		}
		out[id] = fs.UTC()
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// gAllDecisions evaluates classify's decide query for o (the same SQL
// Classify runs) and returns every address's decision, keep included: the
// decisions file holds only the others.
func gAllDecisions(t testing.TB, o ClassifyOptions) map[int64]lifecycle.Decision {
	t.Helper()
	out := map[int64]lifecycle.Decision{}
	for id, r := range gAllRules(t, o) {
		out[id] = r.Decision
	}
	return out
}

// gAllRules is, per address, the rule of the policy's table that decided
// it in SQL (classify's decide query).
func gAllRules(t testing.TB, o ClassifyOptions) map[int64]lifecycle.Rule {
	t.Helper()
	ctx := context.Background()
	db, err := duck.OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	plan, err := planClassify(ctx, db, o)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.QueryContext(ctx, `SELECT email_id, rule FROM (`+plan.decide+`)`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]lifecycle.Rule{}
	for rows.Next() {
		var id int64
		var rule int
		if err := rows.Scan(&id, &rule); err != nil {
			t.Fatal(err)
		}
		out[id] = plan.rules[rule-1]
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// gRun classifies cases with policy p and checks that SQL and Go agree on
// every case (the same rule of the table decides it), and both match the
// case's expectation when it has one; that the decisions file holds
// exactly the non-keep decisions, first_seen.parquet every address, and
// counts.json the counts of every decision.
func gRun(t *testing.T, p lifecycle.Policy, cases []gCase) ClassifyResult {
	t.Helper()
	res, _ := gRunRules(t, p, cases)
	return res
}

// gRunCoversRules is gRun, and checks that every rule of p's table
// decides at least one of cases.
func gRunCoversRules(t *testing.T, p lifecycle.Policy, cases []gCase) ClassifyResult {
	t.Helper()
	res, hit := gRunRules(t, p, cases)
	for _, r := range p.Rules(gAsOf) {
		if !hit[r.Name] {
			t.Errorf("%s policy: rule %s decides none of the cases", p.Name, r.Name)
		}
	}
	return res
}

// gRunRules is gRun, returning the names of the rules that decided cases.
func gRunRules(t *testing.T, p lifecycle.Policy, cases []gCase) (ClassifyResult, map[string]bool) {
	t.Helper()
	dir := t.TempDir()
	paths := gWriteFixtures(t, dir, cases)
	o := ClassifyOptionsFor(paths, p, gAsOf)
	res, err := Classify(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Addresses != int64(len(cases)) {
		t.Fatalf("rows = %d, want %d", res.Addresses, len(cases))
	}
	all := gAllRules(t, o)
	file := gDecisions(t, res.Path)
	byAction := map[lifecycle.Action]int64{}
	hit := map[string]bool{}
	notKeep := 0
	for i, c := range cases {
		goRule := p.DecidingRule(c.facts(p, cases, i), gAsOf)
		goDec := p.Decide(c.facts(p, cases, i), gAsOf)
		sqlRule := all[int64(i)]
		sqlDec := sqlRule.Decision
		hit[sqlRule.Name] = true
		if goRule.Name != sqlRule.Name || goDec != sqlDec {
			t.Errorf("%s policy, case %d %q: SQL says %v (rule %s), Go says %v (rule %s)", p.Name, i, c.name, sqlDec, sqlRule.Name, goDec, goRule.Name)
		}
		if c.want != nil && *c.want != goDec {
			t.Errorf("%s policy, case %d %q: decision %v, want %v", p.Name, i, c.name, goDec, *c.want)
		}
		byAction[sqlDec.Action]++
		got, inFile := file[int64(i)]
		switch {
		case sqlDec.Action == lifecycle.ActionKeep && inFile:
			t.Errorf("%s policy, case %d %q: keep decision in the decisions file", p.Name, i, c.name)
		case sqlDec.Action != lifecycle.ActionKeep && got != sqlDec:
			t.Errorf("%s policy, case %d %q: decisions file says %v (present %v), want %v", p.Name, i, c.name, got, inFile, sqlDec)
		}
		if sqlDec.Action != lifecycle.ActionKeep {
			notKeep++
		}
	}
	if len(file) != notKeep {
		t.Errorf("decisions file holds %d rows, want the %d non-keep ones", len(file), notKeep)
	}
	if fs := gFirstSeen(t, night.Paths{DataDir: dir, Date: gNight}.FirstSeen()); len(fs) != len(cases) {
		t.Errorf("first_seen.parquet holds %d addresses, want %d", len(fs), len(cases))
	}
	if fmt.Sprint(res.ByAction) != fmt.Sprint(byAction) {
		t.Errorf("counts by action %v, decisions %v", res.ByAction, byAction)
	}
	onDisk, err := ReadClassifyCounts(night.Paths{DataDir: dir, Date: gNight}.Counts(), res.Path, gNight)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%+v", onDisk) != fmt.Sprintf("%+v", res) {
		t.Errorf("counts.json %+v, classify returned %+v", onDisk, res)
	}
	return res, hit
}
