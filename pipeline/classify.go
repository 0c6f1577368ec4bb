package pipeline

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sinks/changeset"
)

// DecisionsFile is classify's output: one row per address of the snapshot
// with the policy's decision. It holds addresses (mode 0600).
func DecisionsFile(dataDir, date string) string {
	return filepath.Join(dataDir, "decisions", "date="+date, "decisions.parquet")
}

// ClassifyOptions configure the classify stage.
type ClassifyOptions struct {
	// Snapshot is tonight's snapshot; SnapshotGlob matches every night's
	// snapshot (hive-partitioned date=D folders) for first-seen history.
	Snapshot     string
	SnapshotGlob string
	// States is the cache export of the snapshot's domains (cache.ExportSchema).
	States string
	// Out is where the decisions go (DecisionsFile).
	Out string
	// Date is the night (YYYY-MM-DD): snapshots of later dates are ignored.
	Date   string
	Policy lifecycle.Policy
	// AsOf is the night's reference time for the watch window.
	AsOf time.Time
}

// ClassifyOptionsFor fills the paths of a night under its data dir.
func ClassifyOptionsFor(p NightPaths, policy lifecycle.Policy, asOf time.Time) ClassifyOptions {
	return ClassifyOptions{
		Snapshot: p.Snapshot(), SnapshotGlob: p.SnapshotGlob(), States: p.States(),
		Out: DecisionsFile(p.DataDir, p.Date), Date: p.Date, Policy: policy, AsOf: asOf,
	}
}

// ClassifyResult counts classify's decisions.
type ClassifyResult struct {
	Path string
	// Rows is every address of the snapshot; Verified and Invalid count the
	// verified ones and those without a registrable domain.
	Rows, Verified, Invalid int64
	// Domains is the distinct registrable domains of the snapshot.
	Domains int64
	// ByAction counts decisions over all addresses.
	ByAction map[lifecycle.Action]int64
	// Flagged counts verified addresses to un-verify, by reason in
	// FlaggedByReason.
	Flagged         int64
	FlaggedByReason map[lifecycle.Reason]int64
	// Watch counts verified addresses on watch.
	Watch int64
}

// Classify joins tonight's snapshot with the domain states and the snapshot
// history in DuckDB, applies the policy to every address (PolicySQL, the SQL
// twin of lifecycle.Policy.Decide) and writes the decisions atomically.
// Rows are not sorted (sorting a million wide rows doubles the time and
// memory); the changeset files sort their own rows. Keep decisions carry no
// evidence summary: writing one per healthy address was the largest cost of
// a warm night, and nobody reviews them.
//
// Addresses without a registrable domain are classified unknown with reason
// invalid_address: lapse cannot check them, so they are never un-verified
// and stay visible in the counts.
func Classify(ctx context.Context, o ClassifyOptions) (ClassifyResult, error) {
	res := ClassifyResult{Path: o.Out}
	if err := o.Policy.Validate(); err != nil {
		return res, err
	}
	if _, err := ParseDate(o.Date); err != nil {
		return res, err
	}
	if _, err := os.Stat(o.Snapshot); err != nil {
		return res, fmt.Errorf("classify: snapshot: %w", err)
	}
	db, err := changeset.OpenMemory()
	if err != nil {
		return res, fmt.Errorf("classify: %w", err)
	}
	defer db.Close()
	// A night too big for memory spills next to its output, not into the
	// working directory (DuckDB's default for an in-memory database).
	spill := filepath.Join(filepath.Dir(o.Out), ".classify-spill")
	defer os.RemoveAll(spill)
	if _, err := db.ExecContext(ctx, "SET temp_directory = "+changeset.SQLString(spill)); err != nil {
		return res, fmt.Errorf("classify: %w", err)
	}
	q, err := classifyQuery(ctx, db, o)
	if err != nil {
		return res, fmt.Errorf("classify: %w", err)
	}
	// zstd's fastest level: this wide file is written every night and read
	// by lapse only; level 1 takes a fifth less time than the default for
	// 3% more bytes. Format V2 without dictionaries: most of its columns
	// (ids, addresses, times) are near-unique, so trying a dictionary on
	// each is wasted work. On a warm million-address night classify takes
	// ~0.06 s (7%) less, the file is 8% smaller, and publish's reads of it
	// cost at most a few hundredths of a second more.
	if err := changeset.CopyTo(ctx, db, q, o.Out, "FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, PARQUET_VERSION V2, DICTIONARY_SIZE_LIMIT 1", 0o600); err != nil {
		return res, fmt.Errorf("classify: %w", err)
	}
	if err := countDecisions(ctx, db, o.Out, &res); err != nil {
		return res, fmt.Errorf("classify: %w", err)
	}
	return res, nil
}

// stateColumns are the cache-export columns classify reads, with their
// types; a column missing from the file reads as NULL.
var stateColumns = [][2]string{
	{"state", "VARCHAR"}, {"source", "VARCHAR"}, {"statuses", "VARCHAR[]"},
	{"registered_at", "TIMESTAMPTZ"}, {"expires_at", "TIMESTAMPTZ"}, {"checked_at", "TIMESTAMPTZ"},
	{"corroborated", "BOOLEAN"}, {"evidence_json", "VARCHAR"}, {"decisive_nights", "INTEGER"},
	{"previous_registered_at", "TIMESTAMPTZ"}, {"registered_at_changed_at", "TIMESTAMPTZ"},
	{"error", "VARCHAR"},
}

// statesSelect reads the states file, or an empty relation of the same
// shape when there is none yet (a first night that resolved nothing).
func statesSelect(ctx context.Context, db *sql.DB, path string) (string, error) {
	var b strings.Builder
	if _, err := os.Stat(path); err != nil {
		b.WriteString("SELECT CAST(NULL AS VARCHAR) AS domain")
		for _, c := range stateColumns {
			fmt.Fprintf(&b, ", CAST(NULL AS %s) AS %s", c[1], c[0])
		}
		b.WriteString(" WHERE false")
		return b.String(), nil
	}
	rows, err := db.QueryContext(ctx, `SELECT name FROM parquet_schema(?)`, path)
	if err != nil {
		return "", fmt.Errorf("read schema of %s: %w", path, err)
	}
	cols := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return "", err
		}
		cols[n] = true
	}
	rows.Close()
	if !cols["domain"] {
		return "", fmt.Errorf("domain states %s have no domain column", path)
	}
	b.WriteString("SELECT domain")
	for _, c := range stateColumns {
		if cols[c[0]] {
			fmt.Fprintf(&b, ", CAST(%s AS %s) AS %s", c[0], c[1], c[0])
		} else {
			fmt.Fprintf(&b, ", CAST(NULL AS %s) AS %s", c[1], c[0])
		}
	}
	fmt.Fprintf(&b, " FROM read_parquet(%s)", changeset.SQLString(path))
	return b.String(), nil
}

// historySelect is the first-seen history: per email_id, the earliest
// first_seen known before tonight. Each night's decisions carry first_seen,
// so the latest earlier decisions file plus the snapshots taken after it
// give the same answer as every snapshot since the first night, without
// reading a year of snapshots every night. With no earlier decisions (or
// one without first_seen) every snapshot before tonight is read. It is ""
// when there is no history before tonight.
func historySelect(ctx context.Context, db *sql.DB, o ClassifyOptions) (string, error) {
	date := changeset.SQLString(o.Date)
	prevDate, prev := "", ""
	if o.Out != "" {
		if d, p, err := previousDecisions(filepath.Dir(filepath.Dir(o.Out)), o.Date); err != nil {
			return "", err
		} else if p != "" {
			var n int
			err := db.QueryRowContext(ctx, `SELECT count(*) FROM parquet_schema(?) WHERE name = 'first_seen'`, p).Scan(&n)
			if err != nil {
				return "", fmt.Errorf("read schema of %s: %w", p, err)
			}
			if n == 1 {
				prevDate, prev = d, p
			}
		}
	}
	var parts []string
	if prev != "" {
		parts = append(parts, fmt.Sprintf(`SELECT email_id, first_seen FROM read_parquet(%s)`, changeset.SQLString(prev)))
	}
	if o.SnapshotGlob != "" {
		// Tonight's snapshot is left out: the end of tonight is already a
		// bound of every address's first_seen (classifyQuery), and reading
		// a million rows again to say so was a third of classify's join.
		if m, _ := filepath.Glob(o.SnapshotGlob); slices.ContainsFunc(m, func(p string) bool {
			d := snapshotDate(p)
			return d == "" || (d > prevDate && d < o.Date)
		}) {
			after := ""
			if prevDate != "" {
				after = fmt.Sprintf(" AND CAST(date AS DATE) > CAST(%s AS DATE)", changeset.SQLString(prevDate))
			}
			// A snapshot dated D was taken during day D: the address existed
			// by the end of it (the conservative bound, see lifecycle.Facts).
			parts = append(parts, fmt.Sprintf(`SELECT email_id, CAST(CAST(date AS DATE) + INTERVAL 1 DAY AS TIMESTAMPTZ) AS first_seen
				FROM read_parquet(%s, hive_partitioning = true, union_by_name = true)
				WHERE CAST(date AS DATE) < CAST(%s AS DATE)%s`, changeset.SQLString(o.SnapshotGlob), date, after))
		}
	}
	if len(parts) == 0 {
		return "", nil
	}
	return `SELECT email_id, min(first_seen) AS first_seen FROM (` + strings.Join(parts, "\nUNION ALL\n") + `) GROUP BY email_id`, nil
}

// snapshotDate is the night of a snapshot path (its date=D folder), ""
// when the folder does not name a valid date.
func snapshotDate(path string) string {
	d, ok := strings.CutPrefix(filepath.Base(filepath.Dir(path)), "date=")
	if _, err := time.Parse(time.DateOnly, d); !ok || err != nil {
		return ""
	}
	return d
}

// previousDecisions finds the latest decisions file of a night before date
// under root (DATA/decisions), "" when there is none.
func previousDecisions(root, date string) (night, path string, err error) {
	ents, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("list %s: %w", root, err)
	}
	for i := len(ents) - 1; i >= 0; i-- { // ReadDir sorts by name
		d, ok := strings.CutPrefix(ents[i].Name(), "date=")
		if !ok || d >= date {
			continue
		}
		if _, err := time.Parse(time.DateOnly, d); err != nil {
			continue
		}
		p := filepath.Join(root, ents[i].Name(), "decisions.parquet")
		if _, err := os.Stat(p); err == nil {
			return d, p, nil
		}
	}
	return "", "", nil
}

// classifyQuery builds the whole night's join.
func classifyQuery(ctx context.Context, db *sql.DB, o ClassifyOptions) (string, error) {
	states, err := statesSelect(ctx, db, o.States)
	if err != nil {
		return "", err
	}
	date := changeset.SQLString(o.Date)
	hist, err := historySelect(ctx, db, o)
	if err != nil {
		return "", err
	}
	histJoin, histFirst := "LEFT JOIN hist h USING (email_id)", "h.first_seen"
	if hist == "" {
		// No night before tonight: no join (least ignores the NULL).
		hist = `SELECT NULL::BIGINT AS email_id WHERE false`
		histJoin, histFirst = "", "NULL::TIMESTAMPTZ"
	}
	rule, action, reason := PolicySQL(o.Policy, o.AsOf)
	return fmt.Sprintf(`
WITH snap AS (
	SELECT email_id, user_id, email, verified, "primary",
	       CAST(created AS TIMESTAMPTZ) AS created, CAST(verified_at AS TIMESTAMPTZ) AS verified_at,
	       host, domain, invalid_reason
	FROM read_parquet(%[1]s)
), hist AS (%[2]s),
st AS MATERIALIZED (
	-- Per domain, once: the best-effort flags and the evidence summary.
	SELECT * EXCLUDE (ev), %[3]s AS flags, %[9]s AS dom_evidence, regexp_extract(domain, '[^.]+$') AS tld FROM (
		SELECT *, CASE WHEN evidence_json IS NULL OR trim(evidence_json) IN ('', 'null') THEN NULL
		               ELSE from_json(evidence_json, '[{"source":"VARCHAR","state":"VARCHAR","statuses":["VARCHAR"]}]') END AS ev
		FROM (%[4]s)
	)
), facts AS (
	SELECT s.*, CASE WHEN st.domain IS NULL THEN regexp_extract(s.domain, '[^.]+$') ELSE st.tld END AS tld,
	       s.domain IS NULL AS invalid, st.domain IS NOT NULL AS checked,
	       st.state, st.source, st.statuses, st.registered_at, st.expires_at, st.checked_at,
	       st.corroborated, st.decisive_nights, st.previous_registered_at, st.registered_at_changed_at,
	       st.flags, st.dom_evidence,
	       least(s.created, s.verified_at, %[10]s,
	             CAST(CAST(%[5]s AS DATE) + INTERVAL 1 DAY AS TIMESTAMPTZ)) AS first_seen
	FROM snap s
	%[11]s
	LEFT JOIN st ON st.domain = s.domain
), ruled AS (
	SELECT *, %[6]s AS rule FROM facts
), decided AS (
	SELECT *, %[7]s AS action, %[8]s AS reason FROM ruled
)
SELECT email_id, user_id, email, verified, "primary", created, verified_at, domain, tld,
       invalid_reason, state, source, action, reason,
       CASE WHEN action = 'keep' THEN NULL
            WHEN reason = 'domain_reregistered' THEN dom_evidence || ' first seen ' || strftime(first_seen, '%%Y-%%m-%%d')
            ELSE dom_evidence END AS evidence,
       first_seen
FROM decided`,
		changeset.SQLString(o.Snapshot), hist, flagsSQL, states, date, rule, action, reason, evidenceSQL, histFirst, histJoin), nil
}

// flagsSQL is lifecycle.BestEffortFlags in SQL: the raw Domainr/Fastly flags
// from a best-effort answer's statuses and best-effort evidence, split on
// spaces, lowercased, sorted and distinct.
const flagsSQL = `list_sort(list_distinct(list_filter(flatten(list_transform(
	list_concat(
		CASE WHEN source IN ('domainr', 'fastly') THEN coalesce(statuses, []::VARCHAR[]) ELSE []::VARCHAR[] END,
		flatten(list_transform(list_filter(coalesce(ev, []), e -> e.source IN ('domainr', 'fastly')),
		                       e -> coalesce(e.statuses, []::VARCHAR[])))),
	x -> string_split(lower(x), ' '))), f -> f <> '')))`

// evidenceSQL summarizes a domain's state for reviewers (per domain; the
// first-seen date of a re-registration is added per address).
const evidenceSQL = `concat_ws(' ',
	coalesce(source, '?') || ':' || coalesce(state, '?'),
	CASE WHEN len(statuses) > 0 THEN '[' || array_to_string(statuses, ', ') || ']' END,
	CASE WHEN registered_at IS NOT NULL THEN 'registered ' || strftime(registered_at, '%Y-%m-%d') END,
	CASE WHEN expires_at IS NOT NULL THEN 'expires ' || strftime(expires_at, '%Y-%m-%d') END,
	CASE WHEN corroborated THEN 'corroborated' END,
	CASE WHEN decisive_nights > 0 THEN 'decisive ' || decisive_nights || ' night(s)' END,
	CASE WHEN len(ev) > 0 THEN 'evidence ' || array_to_string(list_transform(ev, e -> coalesce(e.source, '?') || ':' || coalesce(e.state, '?')), ',') END,
	CASE WHEN checked_at IS NOT NULL THEN 'checked ' || strftime(checked_at, '%Y-%m-%d') END,
	CASE WHEN coalesce(error, '') <> '' THEN 'last error: ' || left(error, 160) END)`

// PolicySQL returns policy p as SQL over classify's facts (columns
// invalid, checked, state, source, corroborated, decisive_nights, flags,
// registered_at, expires_at, previous_registered_at,
// registered_at_changed_at, first_seen): rule is the number of the first
// rule that holds, action and reason are expressions over the column rule.
// It is the SQL twin of lifecycle.Policy.Decide; tests hold the two to the
// same cases.
func PolicySQL(p lifecycle.Policy, asOf time.Time) (rule, action, reason string) {
	type policyRule struct{ cond, action, reason string }
	q := func(s string) string { return changeset.SQLString(s) }
	rules := []policyRule{
		{"invalid", q(string(lifecycle.ActionUnknown)), q(string(lifecycle.ReasonInvalidAddr))},
		{"NOT checked", q(string(lifecycle.ActionUnknown)), q(string(lifecycle.ReasonNotChecked))},
	}
	if p.Name == lifecycle.PolicyPyPI {
		rules = append(rules, policyRule{"len(flags) = 0", q(string(lifecycle.ActionUnknown)), q(string(lifecycle.ReasonNotChecked))})
		for _, f := range lifecycle.PyPIFlags {
			rules = append(rules, policyRule{"list_contains(flags, " + q(f.Flag) + ")", q(string(lifecycle.ActionUnverify)), q(string(f.Reason))})
		}
		rules = append(rules, policyRule{"true", q(string(lifecycle.ActionKeep)), q(string(lifecycle.ReasonRegistered))})
	} else {
		decisive := "state IN ('available', 'pending_delete', 'redemption')"
		horizon := asOf.UTC().Add(p.WatchWindow).Format("2006-01-02 15:04:05.999999") + "+00"
		rules = append(rules,
			policyRule{"state IS NULL OR state IN ('', 'unknown')", q(string(lifecycle.ActionUnknown)), q(string(lifecycle.ReasonUnknown))},
			policyRule{"first_seen IS NOT NULL AND (registered_at > first_seen OR (previous_registered_at IS NOT NULL AND registered_at_changed_at > first_seen))",
				q(string(lifecycle.ActionUnverify)), q(string(lifecycle.ReasonReregistered))},
			policyRule{fmt.Sprintf("%s AND (source IN ('rdap', 'whois') OR coalesce(corroborated, false) OR coalesce(decisive_nights, 0) >= %d)", decisive, p.ConfirmNights),
				q(string(lifecycle.ActionUnverify)), "'domain_' || state"},
			policyRule{decisive, q(string(lifecycle.ActionWatch)), q(string(lifecycle.ReasonAwaitConfirm))},
			policyRule{"state = 'expiring'", q(string(lifecycle.ActionWatch)), q(string(lifecycle.ReasonExpiring))},
			policyRule{"state = 'grace'", q(string(lifecycle.ActionWatch)), q(string(lifecycle.ReasonGrace))},
			policyRule{"state = 'registered' AND expires_at IS NOT NULL AND expires_at <= TIMESTAMPTZ " + q(horizon),
				q(string(lifecycle.ActionWatch)), q(string(lifecycle.ReasonExpiring))},
			policyRule{"state = 'registered'", q(string(lifecycle.ActionKeep)), q(string(lifecycle.ReasonRegistered))},
			policyRule{"state = 'reserved'", q(string(lifecycle.ActionKeep)), q(string(lifecycle.ReasonReserved))},
			policyRule{"state = 'invalid'", q(string(lifecycle.ActionKeep)), q(string(lifecycle.ReasonInvalidName))},
			policyRule{"true", q(string(lifecycle.ActionUnknown)), q(string(lifecycle.ReasonUnknown))},
		)
	}
	// One CASE picks the rule; action and reason are looked up by its
	// number, so the conditions are evaluated once per address. The
	// lookups are CASEs over the number: a list literal indexed by it
	// ([...][rule]) builds the list for every row, a third of the join.
	var w, acts, reasons strings.Builder
	w.WriteString("CASE")
	acts.WriteString("CASE rule")
	reasons.WriteString("CASE rule")
	for i, x := range rules {
		fmt.Fprintf(&w, "\n\t\tWHEN %s THEN %d", x.cond, i+1)
		fmt.Fprintf(&acts, " WHEN %d THEN %s", i+1, x.action)
		fmt.Fprintf(&reasons, " WHEN %d THEN %s", i+1, x.reason)
	}
	w.WriteString(" END")
	acts.WriteString(" END")
	reasons.WriteString(" END")
	rule, action, reason = w.String(), acts.String(), reasons.String()
	return rule, action, reason
}

// countDecisions fills res from the decisions file in one grouped pass
// (and one over the domain column).
func countDecisions(ctx context.Context, db *sql.DB, path string, res *ClassifyResult) error {
	p := changeset.SQLString(path)
	if err := db.QueryRowContext(ctx, fmt.Sprintf(`SELECT count(DISTINCT domain) FROM read_parquet(%s)`, p)).Scan(&res.Domains); err != nil {
		return fmt.Errorf("count decisions: %w", err)
	}
	res.Rows, res.Verified, res.Invalid, res.Flagged, res.Watch = 0, 0, 0, 0, 0
	res.ByAction = map[lifecycle.Action]int64{}
	res.FlaggedByReason = map[lifecycle.Reason]int64{}
	rows, err := db.QueryContext(ctx, fmt.Sprintf(`SELECT action, reason, coalesce(verified, false), count(*), count(*) FILTER (domain IS NULL)
		FROM read_parquet(%s) GROUP BY ALL`, p))
	if err != nil {
		return fmt.Errorf("count decisions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var a, r string
		var verified bool
		var n, invalid int64
		if err := rows.Scan(&a, &r, &verified, &n, &invalid); err != nil {
			return fmt.Errorf("count decisions: %w", err)
		}
		res.Rows += n
		res.Invalid += invalid
		res.ByAction[lifecycle.Action(a)] += n
		if !verified {
			continue
		}
		res.Verified += n
		switch lifecycle.Action(a) {
		case lifecycle.ActionUnverify:
			res.Flagged += n
			res.FlaggedByReason[lifecycle.Reason(r)] += n
		case lifecycle.ActionWatch:
			res.Watch += n
		}
	}
	return rows.Err()
}

// PolicyFromConfig is the policy the configuration names.
func PolicyFromConfig(c config.PolicyConfig) lifecycle.Policy {
	return lifecycle.Policy{Name: c.Name, WatchWindow: c.WatchWindow.Std(), ConfirmNights: c.ConfirmNights}
}
