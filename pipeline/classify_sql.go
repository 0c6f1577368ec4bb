package pipeline

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/lapse-dev/lapse/internal/atomicfile"
	"github.com/lapse-dev/lapse/internal/duck"
	"github.com/lapse-dev/lapse/lifecycle"
)

// classifySQL holds classify's queries (classify_decide.sql,
// classify_export.sql) and the expressions they share
// (classify_evidence.sql), as text/template templates. Values are quoted
// by q in the template; the policy's conditions come from its rule table
// (lifecycle.Policy.Rules).
//
//go:embed classify_*.sql
var classifySQLFiles embed.FS

var classifySQL = template.Must(template.New("classify").Funcs(template.FuncMap{
	// q quotes a value (a path, a date, an action or reason) as a SQL string.
	"q": func(v any) string { return duck.String(fmt.Sprint(v)) },
	// number is a rule's number in the CASE: its index from 1.
	"number": func(i int) int { return i + 1 },
	// bestEffort is "col IN ('domainr', 'fastly')".
	"bestEffort": func(col string) string { return lifecycle.SQLIn(col, lifecycle.BestEffortSources...) },
	// mailcol is role's mail-fact column name (lifecycle.MailColumn).
	"mailcol": lifecycle.MailColumn,
	// day formats a timestamp column as YYYY-MM-DD in UTC, for every date
	// of every evidence line: without ICU (duck.StrftimeUTC).
	"day": func(col string) string { return duck.StrftimeUTC(col, "%Y-%m-%d") },
}).ParseFS(classifySQLFiles, "classify_*.sql"))

// renderClassifySQL executes the template of file name over data.
func renderClassifySQL(name string, data any) (string, error) {
	var b strings.Builder
	if err := classifySQL.ExecuteTemplate(&b, name, data); err != nil {
		return "", fmt.Errorf("render %s: %w", name, err)
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// classifyPlan is a night's classify in SQL: the policy's rule table, the
// query that decides every address into the table decided, and the query
// that exports its non-keep rows.
type classifyPlan struct {
	rules          []lifecycle.Rule
	decide, export string
}

func planClassify(ctx context.Context, db *sql.DB, o ClassifyOptions) (classifyPlan, error) {
	p := classifyPlan{rules: o.Policy.Rules(o.AsOf)}
	if len(p.rules) > lifecycle.MaxRules {
		return p, fmt.Errorf("policy %s has %d rules, at most %d", o.Policy.Name, len(p.rules), lifecycle.MaxRules)
	}
	states, err := statesSelect(ctx, db, o.States)
	if err != nil {
		return p, err
	}
	mail, err := mailPlanFor(ctx, db, o, states)
	if err != nil {
		return p, err
	}
	if p.decide, err = decideQuery(ctx, db, o, p.rules, states, mail); err != nil {
		return p, err
	}
	if p.export, err = exportQuery(o, p.rules, states, mail); err != nil {
		return p, err
	}
	return p, nil
}

// linkColumns are the links file's columns classify reads (cache.LinksSchema).
var linkColumns = []string{"domain", "role", "host", "dep", "first_seen"}

// mailPlan is the mail path's part of a night's classify (issue 12): the
// links file joined with the dependency domains' state rows (template
// mail_links, classify_mail.sql), folded per address domain into the
// mail-fact columns (lifecycle.MailFactColumns) the rules read.
type mailPlan struct {
	// Links selects the links file's links (the rows with a role);
	// States is the states relation, parenthesized; Where, when set,
	// restricts the links' address domains (the export's).
	Links, States, Where string
	// Deps is the states relation narrowed to the dependency rows that
	// can give a mail fact (mailPlanFor).
	Deps string
	// StID says Links carries domain_st_id, the address domain's row in
	// the states relation (st_id): a materialized links file, written
	// with the states file it numbers (materialize). The facts are then
	// keyed by it as they are folded, not by a join with the states.
	StID bool
	// Dep is the per-link facts (lifecycle.Policy.MailDepSQL).
	Dep      lifecycle.MailDepSQL
	Roles    []string
	Decisive []lifecycle.State
}

// mailPlanFor is the night's mail plan, or nil when there is no mail
// path: the pypi policy (PyPI does not look at it), no links file. A
// links file must have linkColumns.
func mailPlanFor(ctx context.Context, db *sql.DB, o ClassifyOptions, states string) (*mailPlan, error) {
	if o.Policy.Name == lifecycle.PolicyPyPI || o.Links == "" || !fileExists(o.Links) {
		return nil, nil
	}
	cols, err := duck.Columns(ctx, db, o.Links)
	if err != nil {
		return nil, err
	}
	for _, c := range linkColumns {
		if !cols.Has(c) {
			return nil, fmt.Errorf("links %s have no %s column (written by an older lapse?)", o.Links, c)
		}
	}
	links := fmt.Sprintf("SELECT domain, role, host, dep, CAST(first_seen AS TIMESTAMPTZ) AS link_first_seen FROM read_parquet(%s) WHERE %s AND dep IS NOT NULL",
		duck.String(o.Links), lifecycle.SQLIn("role", lifecycle.MailRoles...))
	// Only a dependency lapsing, near its expiry or registered since lapse
	// first saw a link can give a mail fact: the join reads those state
	// rows alone (a handful of small hosts, not the big providers that
	// thousands of domains share), so a warm night's mail path costs a
	// scan of the links file and little more.
	since := fmt.Sprintf("(SELECT min(CAST(first_seen AS TIMESTAMPTZ)) FROM read_parquet(%s))", duck.String(o.Links))
	deps := mailDepRows(states, o.AsOf.Add(o.Policy.WatchWindow), since)
	plan := &mailPlan{Links: links, States: "(" + states + ")", Deps: deps, Dep: o.Policy.MailDepSQL(o.AsOf),
		Roles: lifecycle.MailRoles, Decisive: lifecycle.DecisiveStates}
	if o.MailLinks != "" {
		if err := plan.materialize(ctx, db, o, states, since); err != nil {
			return nil, err
		}
	}
	return plan, nil
}

// mailDepRows narrows the states relation to the dependency rows that
// can give a mail fact (lifecycle.MailDepSQL): a known state that is
// lapsing, or registered with an expiry by horizon, or a registration
// later than since (the links' first sighting).
func mailDepRows(states string, horizon time.Time, since string) string {
	return fmt.Sprintf(`(SELECT * FROM (%s) WHERE NOT (%s) AND (%s
		OR (%s AND expires_at IS NOT NULL AND expires_at <= %s) OR registered_at > %s))`,
		states, lifecycle.UnknownStateSQL("state"),
		lifecycle.SQLIn("state", append([]lifecycle.State{lifecycle.Expiring, lifecycle.Grace}, lifecycle.DecisiveStates...)...),
		lifecycle.SQLIs("state", lifecycle.Registered), lifecycle.SQLTimestamp(horizon), since)
}

// mailReuse is how long a materialized mail_links file serves unchanged
// inputs: its dependency rows are those near expiry within the watch
// window plus mailReuse, so any night up to mailReuse later finds every
// row the watch window can reach.
const mailReuse = 60 * 24 * time.Hour

// mailLinksMeta is mail_links.json: what the file beside it was made from.
type mailLinksMeta struct {
	States, Links string
	Window        time.Duration
	ValidUntil    time.Time
	// StIDs: the file numbers each link's address domain by its row in
	// States (domain_st_id). A file without them (an older lapse) is
	// written again.
	StIDs bool
}

// fileKey identifies a file's version (the copies are replaced by rename,
// never written in place): its inode, size and modification time.
func fileKey(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%s%d:%d", inode(fi), fi.Size(), fi.ModTime().UnixNano())
}

// materialize points the plan at o.MailLinks: the links file joined with
// the dependency rows that can give a mail fact, written when the links
// or the states changed (or after mailReuse) and read as it is otherwise.
// It is a few rows (the links to lapsing providers), so a warm night's
// mail path reads neither the links file nor the states for it.
func (m *mailPlan) materialize(ctx context.Context, db *sql.DB, o ClassifyOptions, states, since string) error {
	want := mailLinksMeta{States: fileKey(o.States), Links: fileKey(o.Links), Window: o.Policy.WatchWindow, StIDs: true}
	metaPath := strings.TrimSuffix(o.MailLinks, filepath.Ext(o.MailLinks)) + ".json"
	var have mailLinksMeta
	b, err := os.ReadFile(metaPath)
	fresh := err == nil && json.Unmarshal(b, &have) == nil && fileExists(o.MailLinks) &&
		have.States == want.States && have.Links == want.Links && have.Window == want.Window && have.StIDs && !o.AsOf.After(have.ValidUntil)
	if !fresh {
		deps := mailDepRows(states, o.AsOf.Add(o.Policy.WatchWindow+mailReuse), since)
		// The address domain's state row number goes with each link: the
		// night's decide then folds the facts by it, and joins them to
		// the addresses on it, without reading the states again. The file
		// is written again whenever the states file changes (want.States),
		// so the numbers always point into the states file of the night.
		q := `SELECT l.domain, a.st_id AS domain_st_id, l.role, l.host, l.dep, l.link_first_seen, d.state, d.source, d.corroborated, d.checked_at,
			d.registered_at, d.expires_at, d.previous_registered_at, d.registered_at_changed_at
			FROM (` + m.Links + `) l JOIN ` + deps + ` d ON d.domain = l.dep
			LEFT JOIN (SELECT st_id, domain FROM (` + states + `)) a ON a.domain = l.domain`
		if err := duck.CopyTo(ctx, db, q, o.MailLinks, "FORMAT parquet, COMPRESSION zstd", 0o640); err != nil {
			return fmt.Errorf("mail links: %w", err)
		}
		want.ValidUntil = o.AsOf.Add(mailReuse)
		b, err := json.Marshal(want)
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(metaPath, append(b, '\n'), 0o640); err != nil {
			return fmt.Errorf("mail links: %w", err)
		}
	}
	f := duck.String(o.MailLinks)
	m.Links, m.StID = "SELECT domain, domain_st_id, role, host, dep, link_first_seen FROM read_parquet("+f+")", true
	m.Deps = `(SELECT DISTINCT dep AS domain, state, source, corroborated, checked_at, registered_at, expires_at,
		previous_registered_at, registered_at_changed_at FROM read_parquet(` + f + `))`
	return nil
}

// factColumn is a column of classify's facts relation and its SQL type.
type factColumn struct{ Name, SQL string }

// mailColumns are the mail-fact columns of every role.
func mailColumns() []factColumn {
	var out []factColumn
	for _, r := range lifecycle.MailRoles {
		for _, c := range lifecycle.MailFactColumns {
			out = append(out, factColumn{lifecycle.MailColumn(r, c.Name), c.SQL})
		}
	}
	return out
}

// mailRuleEvidence is how the export picks, for an address decided by a
// mail-path rule (Number), the link its evidence names: one of Role's
// links where Filter holds, the greatest by Rank, then the least host
// (as lifecycle.MailFactsOf picks Host: the latest re-registration, the
// least host in the state; for watch, a watched link first).
type mailRuleEvidence struct {
	Number       int
	Role         string
	Filter, Rank string
	Rereg        bool
}

// mailEvidenceRules are the mail-path rules of rules (by their reasons,
// lifecycle.Reason.MailPath) with their evidence picks.
func mailEvidenceRules(rules []lifecycle.Rule) []mailRuleEvidence {
	var out []mailRuleEvidence
	for i, r := range rules {
		if !r.Reason.MailPath() {
			continue
		}
		for _, role := range lifecycle.MailRoles {
			e := mailRuleEvidence{Number: i + 1, Role: role}
			switch r.Reason {
			case lifecycle.MailReason(role, "reregistered"):
				e.Filter, e.Rank, e.Rereg = "rereg_at IS NOT NULL", "epoch(rereg_at)", true
			case lifecycle.MailReason(role, "watch"):
				e.Filter, e.Rank = "watch OR confirmed_state IS NOT NULL", "CAST(watch AS INTEGER)"
			default:
				for _, st := range lifecycle.DecisiveStates {
					if r.Reason == lifecycle.MailReason(role, string(st)) {
						e.Filter, e.Rank = lifecycle.SQLIs("confirmed_state", st), "0"
					}
				}
			}
			if e.Filter != "" {
				out = append(out, e)
			}
		}
	}
	return out
}

// decideQuery is classify_decide.sql for the night: the join into the
// table decided, narrowed to what the policy needs. Keeping addresses,
// evidence and strings out of the table made the join less than half as
// costly.
func decideQuery(ctx context.Context, db *sql.DB, o ClassifyOptions, rules []lifecycle.Rule, states string, mail *mailPlan) (string, error) {
	hist, err := historySelect(ctx, db, o)
	if err != nil {
		return "", err
	}
	rv := ""
	if o.Reverified != "" && fileExists(o.Reverified) {
		rv = o.Reverified
	}
	return renderClassifySQL("classify_decide.sql", struct {
		Hist, States, Date, Snapshot, Reverified string
		Flags                                    bool
		Rules                                    []lifecycle.Rule
		Mail                                     *mailPlan
		MailCols                                 []factColumn
	}{
		Hist: hist, States: states, Date: o.Date, Snapshot: o.Snapshot, Reverified: rv,
		Flags: o.Policy.Name == lifecycle.PolicyPyPI, Rules: rules, Mail: mail, MailCols: mailColumns(),
	})
}

// ruleIn is the condition that col is one of the rule numbers nums, as
// ranges: "(col BETWEEN 1 AND 22 OR col = 26)". DuckDB turns an IN list
// of more than a few numbers into a join, which over decided's every row
// cost more than the comparisons.
func ruleIn(col string, nums []int) string {
	if len(nums) == 0 {
		return "false"
	}
	nums = slices.Compact(slices.Sorted(slices.Values(nums)))
	var terms []string
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		if j == i {
			terms = append(terms, fmt.Sprintf("%s = %d", col, nums[i]))
		} else {
			terms = append(terms, fmt.Sprintf("%s BETWEEN %d AND %d", col, nums[i], nums[j]))
		}
		i = j + 1
	}
	return "(" + strings.Join(terms, " OR ") + ")"
}

// exportQuery is classify_export.sql for the night: the decisions file's
// rows (the non-keep ones) from the decided table.
func exportQuery(o ClassifyOptions, rules []lifecycle.Rule, states string, mail *mailPlan) (string, error) {
	var notKeep []int
	for i, r := range rules {
		if r.Action != lifecycle.ActionKeep {
			notKeep = append(notKeep, i+1)
		}
	}
	var mailRules, mailRereg []int
	var mailEv []mailRuleEvidence
	if mail != nil {
		m := *mail
		m.Where = "l.domain IN (SELECT mkey FROM mail_nk)"
		if m.StID {
			m.Where = "l.domain_st_id IN (SELECT mkey FROM mail_nk)"
		}
		mail = &m
		mailEv = mailEvidenceRules(rules)
		seen := map[int]bool{}
		for _, e := range mailEv {
			if !seen[e.Number] {
				seen[e.Number] = true
				mailRules = append(mailRules, e.Number)
			}
			if e.Rereg {
				mailRereg = append(mailRereg, e.Number)
			}
		}
		if len(mailRules) == 0 {
			mail = nil
		}
	}
	return renderClassifySQL("classify_export.sql", struct {
		NotKeep, Snapshot, States string
		Rules                     []lifecycle.Rule
		Reregistered              lifecycle.Reason
		Mail                      *mailPlan
		MailRules, MailRereg      string
		MailEvidence              []mailRuleEvidence
	}{
		NotKeep: ruleIn("rule", notKeep), Snapshot: o.Snapshot, States: states, Rules: rules,
		Reregistered: lifecycle.ReasonReregistered,
		Mail:         mail, MailRules: ruleIn("rule", mailRules),
		MailRereg: ruleIn("m.rule", mailRereg), MailEvidence: mailEv,
	})
}
