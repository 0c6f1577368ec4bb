package pipeline

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/atomicfile"
	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sinks/changeset"
)

// The files classify writes into DATA/decisions/date=D/.
const (
	decisionsName = "decisions.parquet"
	firstSeenName = "first_seen.parquet"
	countsName    = "counts.json"
)

// DecisionsFile is classify's decisions: one row per address of the
// snapshot whose action is not keep (unverify, watch, unknown), with the
// evidence a reviewer reads. It holds addresses (mode 0600). Keep rows are
// only counted (CountsFile): writing a million healthy addresses every
// night was most of a warm night's classify and publish.
func DecisionsFile(dataDir, date string) string {
	return filepath.Join(dataDir, "decisions", "date="+date, decisionsName)
}

// FirstSeenFile holds (email_id, first_seen) of every address of the
// night's snapshot: the first-seen history the next night reads.
func FirstSeenFile(dataDir, date string) string {
	return filepath.Join(dataDir, "decisions", "date="+date, firstSeenName)
}

// ReverifiedFile holds (email_id, reverified_at) of every address its
// owner verified again after an applied changeset un-verified it, as the
// lifecycle database knew them when the night was planned.
func ReverifiedFile(dataDir, date string) string {
	return filepath.Join(dataDir, "observations", "date="+date, "reverified.parquet")
}

// CountsFile holds classify's counts over every address (ClassifyResult),
// so a resumed night publishes without reading every row again.
func CountsFile(dataDir, date string) string {
	return filepath.Join(dataDir, "decisions", "date="+date, countsName)
}

// decisionsMarker is the Parquet key-value metadata that tells a
// decisions file holding only non-keep rows from one written by an older
// lapse, which held every address with its first_seen.
const decisionsMarker = "lapse_decisions"

// ClassifyOptions configure the classify stage.
type ClassifyOptions struct {
	// Snapshot is tonight's snapshot; SnapshotGlob matches every night's
	// snapshot (hive-partitioned date=D folders) for first-seen history.
	Snapshot     string
	SnapshotGlob string
	// States is the domains' states (StateSchema): the night's link to the
	// cache's states copy (StatesPath). Domains outside the snapshot are
	// ignored.
	States string
	// Out is where the decisions go (DecisionsFile); first_seen.parquet
	// and counts.json go beside it, and the folders of earlier nights
	// beside its folder hold the first-seen history.
	Out string
	// Reverified is a Parquet file of (email_id, reverified_at): the
	// addresses their owners verified again after an applied changeset
	// un-verified them (ReverifiedFile); "" or a missing file means none.
	Reverified string
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
		Reverified: ReverifiedFile(p.DataDir, p.Date),
	}
}

// ClassifyResult counts classify's decisions over every address of the
// snapshot (keep included). It is what counts.json holds.
type ClassifyResult struct {
	Path string `json:"-"`
	// Rows is every address of the snapshot; Verified and Invalid count the
	// verified ones and those without a registrable domain.
	Rows     int64 `json:"rows"`
	Verified int64 `json:"verified"`
	Invalid  int64 `json:"invalid"`
	// Domains is the distinct registrable domains of the snapshot.
	Domains int64 `json:"domains"`
	// ByAction counts decisions over all addresses.
	ByAction map[lifecycle.Action]int64 `json:"by_action"`
	// Flagged counts verified addresses to un-verify, by reason in
	// FlaggedByReason.
	Flagged         int64                      `json:"flagged"`
	FlaggedByReason map[lifecycle.Reason]int64 `json:"flagged_by_reason"`
	// Watch counts verified addresses on watch.
	Watch int64 `json:"watch"`
	// UnknownDomains counts the domains of Domains whose state is unknown
	// (looked up, but every source failed or could not tell).
	UnknownDomains int64 `json:"unknown_domains"`
}

// countsFile is counts.json: the counts, the night and policy they belong
// to, and the sha256 of the decisions file they were counted with, so a
// resumed publish never pairs counts with another classify's decisions.
type countsFile struct {
	Date            string `json:"date"`
	Policy          string `json:"policy"`
	DecisionsSHA256 string `json:"decisions_sha256"`
	ClassifyResult
}

// Classify joins tonight's snapshot with the domain states and the
// first-seen history in DuckDB and applies the policy to every address
// (policyRules, the SQL twin of lifecycle.Policy.Decide). The join is
// evaluated once into an in-memory table of narrow columns (row, id,
// verified, rule number, first seen); from it classify writes, each
// atomically: first_seen.parquet (every address), decisions.parquet (the
// non-keep rows, their address columns read back from the snapshot by row
// number) and counts.json (grouped from the table). Rows are not sorted;
// the changeset files sort their own.
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
	dir := filepath.Dir(o.Out)
	spill := filepath.Join(dir, ".classify-spill")
	defer os.RemoveAll(spill)
	if _, err := db.ExecContext(ctx, "SET temp_directory = "+changeset.SQLString(spill)); err != nil {
		return res, fmt.Errorf("classify: %w", err)
	}
	plan, err := planClassify(ctx, db, o)
	if err != nil {
		return res, fmt.Errorf("classify: %w", err)
	}
	rules := plan.rules
	if _, err := db.ExecContext(ctx, "CREATE TEMP TABLE decided AS "+plan.decide); err != nil {
		return res, fmt.Errorf("classify: %w", err)
	}
	// first_seen.parquet before decisions.parquet: a decisions file of this
	// layout then always has its history beside it.
	fsq, err := firstSeenQuery(ctx, db, o)
	if err != nil {
		return res, fmt.Errorf("classify: %w", err)
	}
	if err := changeset.CopyTo(ctx, db, fsq, filepath.Join(dir, firstSeenName),
		"FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1", 0o600); err != nil {
		return res, fmt.Errorf("classify: %w", err)
	}
	// zstd's fastest level and no dictionaries: the file is read by lapse
	// only, and most of its columns (ids, addresses, times) are near-unique.
	if err := changeset.CopyTo(ctx, db, plan.export, o.Out,
		"FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, PARQUET_VERSION V2, DICTIONARY_SIZE_LIMIT 1, KV_METADATA {"+
			decisionsMarker+": 'non_keep'}", 0o600); err != nil {
		return res, fmt.Errorf("classify: %w", err)
	}
	if err := countDecided(ctx, db, rules, &res); err != nil {
		return res, fmt.Errorf("classify: %w", err)
	}
	if err := countUnknownDomains(ctx, db, o.States, &res); err != nil {
		return res, fmt.Errorf("classify: %w", err)
	}
	sum, err := changeset.HashFile(o.Out)
	if err != nil {
		return res, fmt.Errorf("classify: %w", err)
	}
	b, err := json.MarshalIndent(countsFile{Date: o.Date, Policy: o.Policy.Name, DecisionsSHA256: sum.SHA256, ClassifyResult: res}, "", "  ")
	if err != nil {
		return res, fmt.Errorf("classify: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, countsName), append(b, '\n'), 0o640); err != nil {
		return res, fmt.Errorf("classify: %w", err)
	}
	return res, nil
}

// ReadClassifyCounts reads the counts.json beside a night's decisions file
// (a resumed night's publish) and checks that they were counted with that
// file. A missing or mismatched counts file means classify did not finish
// with this lapse: the error says to run the night again with --force.
func ReadClassifyCounts(decisions, date string) (ClassifyResult, error) {
	path := filepath.Join(filepath.Dir(decisions), countsName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ClassifyResult{}, fmt.Errorf("classify counts %s are missing (the night was classified by an older lapse or classify did not finish): run the night again with --force", path)
	}
	if err != nil {
		return ClassifyResult{}, fmt.Errorf("classify counts: %w", err)
	}
	var c countsFile
	if err := json.Unmarshal(b, &c); err != nil {
		return ClassifyResult{}, fmt.Errorf("classify counts %s: %w (run the night again with --force)", path, err)
	}
	if c.Date != date {
		return ClassifyResult{}, fmt.Errorf("classify counts %s are for night %q, not %s: run the night again with --force", path, c.Date, date)
	}
	sum, err := changeset.HashFile(decisions)
	if err != nil {
		return ClassifyResult{}, fmt.Errorf("classify counts: %w", err)
	}
	if sum.SHA256 != c.DecisionsSHA256 {
		return ClassifyResult{}, fmt.Errorf("classify counts %s do not match %s (classify did not finish): run the night again with --force", path, decisions)
	}
	c.ClassifyResult.Path = decisions
	return c.ClassifyResult, nil
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
// st_id numbers the file's rows: classify counts distinct domains by it
// instead of keeping every address's domain name.
func statesSelect(ctx context.Context, db *sql.DB, path string) (string, error) {
	var b strings.Builder
	if _, err := os.Stat(path); err != nil {
		b.WriteString("SELECT CAST(NULL AS BIGINT) AS st_id, CAST(NULL AS VARCHAR) AS domain")
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
	b.WriteString("SELECT file_row_number AS st_id, domain")
	for _, c := range stateColumns {
		if cols[c[0]] {
			fmt.Fprintf(&b, ", CAST(%s AS %s) AS %s", c[0], c[1], c[0])
		} else {
			fmt.Fprintf(&b, ", CAST(NULL AS %s) AS %s", c[1], c[0])
		}
	}
	fmt.Fprintf(&b, " FROM read_parquet(%s, file_row_number = true)", changeset.SQLString(path))
	return b.String(), nil
}

// historySelect is the first-seen history: per email_id, the earliest
// first_seen known before tonight. Each night writes every address's
// first_seen (first_seen.parquet), so the latest earlier night's file plus
// the snapshots taken after it give the same answer as every snapshot
// since the first night, without reading a year of snapshots every night.
// With no earlier history file every snapshot before tonight is read. It
// is "" when there is no history before tonight.
func historySelect(ctx context.Context, db *sql.DB, o ClassifyOptions) (string, error) {
	date := changeset.SQLString(o.Date)
	prevDate, prev := "", ""
	if o.Out != "" {
		d, p, err := previousHistory(ctx, db, filepath.Dir(filepath.Dir(o.Out)), o.Date)
		if err != nil {
			return "", err
		}
		prevDate, prev = d, p
	}
	var parts []string
	if prev != "" {
		parts = append(parts, fmt.Sprintf(`SELECT email_id, first_seen FROM read_parquet(%s)`, changeset.SQLString(prev)))
	}
	if o.SnapshotGlob != "" {
		// Tonight's snapshot is left out: the end of tonight is already a
		// bound of every address's first_seen (decideQuery), and reading
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

// firstSeenQuery selects first_seen.parquet's rows: the first sighting of
// every address of tonight's snapshot (the decided table), and the
// history's rows of the addresses absent tonight, so an address missing
// from one night's export (a partial export, an account briefly gone)
// keeps its first sighting instead of starting anew when it is back.
func firstSeenQuery(ctx context.Context, db *sql.DB, o ClassifyOptions) (string, error) {
	hist, err := historySelect(ctx, db, o)
	if err != nil {
		return "", err
	}
	q := `SELECT email_id, first_seen FROM decided`
	if hist == "" {
		return q, nil
	}
	return q + `
UNION ALL
SELECT h.email_id, h.first_seen FROM (` + hist + `) h
WHERE h.email_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM decided d WHERE d.email_id = h.email_id)`, nil
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

// previousHistory finds the first-seen history of the latest night before
// date under root (DATA/decisions) that has one, "" when none has: the
// night's first_seen.parquet or, for a night classified by an older lapse,
// its decisions.parquet, which then held every address with a first_seen
// column. A decisions file of the current layout (marked, non-keep rows
// only) is never read as history: without its first_seen.parquet the
// night is skipped and an earlier one, plus the snapshots after it, is used.
func previousHistory(ctx context.Context, db *sql.DB, root, date string) (night, path string, err error) {
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
		dir := filepath.Join(root, ents[i].Name())
		if p := filepath.Join(dir, firstSeenName); fileExists(p) {
			return d, p, nil
		}
		p := filepath.Join(dir, decisionsName)
		if !fileExists(p) {
			continue
		}
		old, err := oldLayoutDecisions(ctx, db, p)
		if err != nil {
			return "", "", err
		}
		if old {
			return d, p, nil
		}
	}
	return "", "", nil
}

// oldLayoutDecisions reports whether a decisions file was written by a
// lapse whose decisions held every address: it has a first_seen column and
// not the non-keep marker.
func oldLayoutDecisions(ctx context.Context, db *sql.DB, path string) (bool, error) {
	var cols, marked int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM parquet_schema(?) WHERE name = 'first_seen'`, path).Scan(&cols); err != nil {
		return false, fmt.Errorf("read schema of %s: %w", path, err)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM parquet_kv_metadata(?) WHERE decode(key) = ?`, path, decisionsMarker).Scan(&marked); err != nil {
		return false, fmt.Errorf("read metadata of %s: %w", path, err)
	}
	return cols == 1 && marked == 0, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// classifyPlan is a night's classify in SQL: the policy's rules, the query
// that decides every address into the table decided, and the query that
// exports its non-keep rows.
type classifyPlan struct {
	rules          []policyRule
	decide, export string
}

func planClassify(ctx context.Context, db *sql.DB, o ClassifyOptions) (classifyPlan, error) {
	p := classifyPlan{rules: policyRules(o.Policy, o.AsOf)}
	states, err := statesSelect(ctx, db, o.States)
	if err != nil {
		return p, err
	}
	if p.decide, err = decideQuery(ctx, db, o, p.rules, states); err != nil {
		return p, err
	}
	p.export = exportQuery(o, p.rules, states)
	return p, nil
}

// decideQuery builds the night's join, narrowed to what the policy needs:
// per address of the snapshot its row number there (srow), email_id,
// verified, the rule number that decided it, its first_seen, and for
// counting distinct domains the state row it matched (st_id) or, when it
// matched none, its domain. Keeping addresses, evidence and strings out of
// the table made the join less than half as costly.
func decideQuery(ctx context.Context, db *sql.DB, o ClassifyOptions, rules []policyRule, states string) (string, error) {
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
	// Re-verified addresses are few (or none): joined only when present.
	rvJoin, rvCol := "", "CAST(NULL AS TIMESTAMPTZ)"
	if o.Reverified != "" && fileExists(o.Reverified) {
		rvJoin = fmt.Sprintf("LEFT JOIN (SELECT email_id, max(CAST(reverified_at AS TIMESTAMPTZ)) AS reverified_at FROM read_parquet(%s) GROUP BY email_id) rv USING (email_id)",
			changeset.SQLString(o.Reverified))
		rvCol = "rv.reverified_at"
	}
	// Only the pypi preset reads the best-effort flags: parsing every
	// domain's evidence for them is skipped otherwise.
	flags, stFrom := "", "("+states+")"
	if o.Policy.Name == lifecycle.PolicyPyPI {
		flags = ", st.flags"
		stFrom = "(SELECT *, " + flagsSQL + " AS flags FROM (SELECT *, " + evidenceParseSQL + " AS ev FROM (" + states + ")))"
	}
	return fmt.Sprintf(`
WITH hist AS (%[1]s),
st AS (SELECT * FROM %[2]s),
facts AS (
	SELECT s.file_row_number AS srow, s.email_id, s.verified, s.domain, st.st_id,
	       s.domain IS NULL AS invalid, st.domain IS NOT NULL AS checked,
	       st.state, st.source, st.registered_at, st.expires_at, st.corroborated, st.decisive_nights,
	       st.previous_registered_at, st.registered_at_changed_at, st.checked_at%[3]s,
	       least(CAST(s.created AS TIMESTAMPTZ), CAST(s.verified_at AS TIMESTAMPTZ), %[4]s,
	             CAST(CAST(%[5]s AS DATE) + INTERVAL 1 DAY AS TIMESTAMPTZ)) AS first_seen,
	       %[9]s AS reverified_at
	FROM read_parquet(%[6]s, file_row_number = true) s
	%[7]s
	%[10]s
	LEFT JOIN st ON st.domain = s.domain
),
anchored AS (
	-- A re-verification moves the anchor of the re-registration rule
	-- forward (greatest ignores a NULL).
	SELECT *, greatest(first_seen, reverified_at) AS anchor FROM facts
)
SELECT srow, email_id, verified, CASE WHEN NOT checked THEN domain END AS domain, st_id,
       CAST(%[8]s AS UTINYINT) AS rule, first_seen
FROM anchored`,
		hist, stFrom, flags, histFirst, changeset.SQLString(o.Date), changeset.SQLString(o.Snapshot), histJoin, ruleSQL(rules),
		rvCol, rvJoin), nil
}

// exportQuery selects the decisions file's rows from the decided table:
// the addresses whose action is not keep, their address columns read back
// from the snapshot by row number, and the evidence summary of their
// domains (computed for those domains only).
func exportQuery(o ClassifyOptions, rules []policyRule, states string) string {
	var notKeep []string
	for i, r := range rules {
		if r.action != lifecycle.ActionKeep {
			notKeep = append(notKeep, strconv.Itoa(i+1))
		}
	}
	return fmt.Sprintf(`
WITH nk AS MATERIALIZED (
	SELECT s.email_id, s.user_id, s.email, s.verified, s."primary",
	       CAST(s.created AS TIMESTAMPTZ) AS created, CAST(s.verified_at AS TIMESTAMPTZ) AS verified_at,
	       s.domain, s.invalid_reason, d.rule, d.first_seen
	FROM (SELECT srow, rule, first_seen FROM decided WHERE rule IN (%[1]s)) d
	JOIN read_parquet(%[2]s, file_row_number = true) s ON s.file_row_number = d.srow
), st AS (
	SELECT domain, state, source, %[3]s AS dom_evidence
	FROM (SELECT *, %[4]s AS ev FROM (%[5]s) WHERE domain IN (SELECT domain FROM nk))
), decided_nk AS (
	SELECT nk.*, st.state, st.source, st.dom_evidence, %[6]s AS action, %[7]s AS reason
	FROM nk LEFT JOIN st ON st.domain = nk.domain
)
SELECT email_id, user_id, email, verified, "primary", created, verified_at, domain,
       regexp_extract(domain, '[^.]+$') AS tld, invalid_reason, state, source, action, reason,
       CASE WHEN reason = %[8]s THEN dom_evidence || ' first seen ' || strftime(first_seen, '%%Y-%%m-%%d')
            ELSE dom_evidence END AS evidence,
       first_seen
FROM decided_nk`,
		strings.Join(notKeep, ", "), changeset.SQLString(o.Snapshot), evidenceSQL, evidenceParseSQL, states,
		ruleMapSQL(rules, func(r policyRule) string { return string(r.action) }),
		ruleMapSQL(rules, func(r policyRule) string { return string(r.reason) }),
		changeset.SQLString(string(lifecycle.ReasonReregistered)))
}

// evidenceParseSQL parses a state row's evidence_json (ev), for the flags
// and the evidence summary.
const evidenceParseSQL = `CASE WHEN evidence_json IS NULL OR trim(evidence_json) IN ('', 'null') THEN NULL
	ELSE from_json(evidence_json, '[{"source":"VARCHAR","state":"VARCHAR","statuses":["VARCHAR"]}]') END`

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

// policyRule is one rule of a policy over classify's facts: the first
// rule whose condition holds decides an address's action and reason.
type policyRule struct {
	cond   string
	action lifecycle.Action
	reason lifecycle.Reason
}

// policyRules is policy p as SQL conditions over classify's facts (columns
// invalid, checked, state, source, corroborated, decisive_nights, flags,
// registered_at, expires_at, previous_registered_at,
// registered_at_changed_at, first_seen), in order. It is the SQL twin of
// lifecycle.Policy.Decide; tests hold the two to the same cases. Every
// rule has one action and one reason, so an address's rule number says
// both and classify keeps only the number per address.
func policyRules(p lifecycle.Policy, asOf time.Time) []policyRule {
	q := changeset.SQLString
	unverify, watch, keep, unknown := lifecycle.ActionUnverify, lifecycle.ActionWatch, lifecycle.ActionKeep, lifecycle.ActionUnknown
	rules := []policyRule{
		{"invalid", unknown, lifecycle.ReasonInvalidAddr},
		{"NOT checked", unknown, lifecycle.ReasonNotChecked},
	}
	if p.Name == lifecycle.PolicyPyPI {
		rules = append(rules, policyRule{"len(flags) = 0", unknown, lifecycle.ReasonNotChecked})
		for _, f := range lifecycle.PyPIFlags {
			rules = append(rules, policyRule{"list_contains(flags, " + q(f.Flag) + ")", unverify, f.Reason})
		}
		return append(rules, policyRule{"true", keep, lifecycle.ReasonRegistered})
	}
	decisive := "state IN ('available', 'pending_delete', 'redemption')"
	confirmed := fmt.Sprintf("(source IN ('rdap', 'whois') OR coalesce(corroborated, false) OR coalesce(decisive_nights, 0) >= %d)", p.ConfirmNights)
	horizon := asOf.UTC().Add(p.WatchWindow).Format("2006-01-02 15:04:05.999999") + "+00"
	rules = append(rules,
		policyRule{"state IS NULL OR state IN ('', 'unknown')", unknown, lifecycle.ReasonUnknown},
		policyRule{"anchor IS NOT NULL AND (registered_at > anchor OR (previous_registered_at IS NOT NULL AND registered_at_changed_at > anchor))",
			unverify, lifecycle.ReasonReregistered},
		// A decisive state older than the owner's re-verification is stale.
		policyRule{decisive + " AND reverified_at IS NOT NULL AND (checked_at IS NULL OR checked_at < reverified_at)",
			watch, lifecycle.ReasonAwaitLookup})
	// One rule per decisive state, so each has its own reason.
	for _, st := range []lifecycle.State{lifecycle.Available, lifecycle.PendingDelete, lifecycle.Redemption} {
		rules = append(rules, policyRule{"state = " + q(string(st)) + " AND " + confirmed, unverify, lifecycle.StateReason(st)})
	}
	return append(rules,
		policyRule{decisive, watch, lifecycle.ReasonAwaitConfirm},
		policyRule{"state = 'expiring'", watch, lifecycle.ReasonExpiring},
		policyRule{"state = 'grace'", watch, lifecycle.ReasonGrace},
		policyRule{"state = 'registered' AND expires_at IS NOT NULL AND expires_at <= TIMESTAMPTZ " + q(horizon), watch, lifecycle.ReasonExpiring},
		policyRule{"state = 'registered'", keep, lifecycle.ReasonRegistered},
		policyRule{"state = 'reserved'", keep, lifecycle.ReasonReserved},
		policyRule{"state = 'invalid'", keep, lifecycle.ReasonInvalidName},
		policyRule{"true", unknown, lifecycle.ReasonUnknown},
	)
}

// ruleSQL is the number (from 1) of the first rule whose condition holds:
// one CASE, so the conditions are evaluated once per address.
func ruleSQL(rules []policyRule) string {
	var b strings.Builder
	b.WriteString("CASE")
	for i, r := range rules {
		fmt.Fprintf(&b, "\n\t\tWHEN %s THEN %d", r.cond, i+1)
	}
	b.WriteString(" END")
	return b.String()
}

// ruleMapSQL maps the column rule to a constant of each rule. A CASE over
// the number: a list literal indexed by it ([...][rule]) builds the list
// for every row.
func ruleMapSQL(rules []policyRule, f func(policyRule) string) string {
	var b strings.Builder
	b.WriteString("CASE rule")
	for i, r := range rules {
		fmt.Fprintf(&b, " WHEN %d THEN %s", i+1, changeset.SQLString(f(r)))
	}
	b.WriteString(" END")
	return b.String()
}

// PolicySQL returns policy p as SQL over classify's facts: rule is the
// number of the first rule that holds, action and reason are expressions
// over the column rule (see policyRules).
func PolicySQL(p lifecycle.Policy, asOf time.Time) (rule, action, reason string) {
	rules := policyRules(p, asOf)
	return ruleSQL(rules), ruleMapSQL(rules, func(r policyRule) string { return string(r.action) }),
		ruleMapSQL(rules, func(r policyRule) string { return string(r.reason) })
}

// countUnknownDomains counts the distinct domains of the decided table whose
// state row says unknown (or has no state).
func countUnknownDomains(ctx context.Context, db *sql.DB, states string, res *ClassifyResult) error {
	if !fileExists(states) {
		res.UnknownDomains = 0
		return nil
	}
	q := fmt.Sprintf(`SELECT count(*) FROM (SELECT DISTINCT st_id FROM decided WHERE st_id IS NOT NULL) d
		JOIN (SELECT file_row_number AS st_id, state FROM read_parquet(%s, file_row_number = true)) st USING (st_id)
		WHERE st.state IS NULL OR st.state IN ('', 'unknown')`, changeset.SQLString(states))
	if err := db.QueryRowContext(ctx, q).Scan(&res.UnknownDomains); err != nil {
		return fmt.Errorf("count unknown domains: %w", err)
	}
	return nil
}

// countDecided fills res from the decided table: rows by rule and
// verified in one grouped pass, and the distinct domains (state rows
// matched, plus the domains no state row matched).
func countDecided(ctx context.Context, db *sql.DB, rules []policyRule, res *ClassifyResult) error {
	if err := db.QueryRowContext(ctx, `SELECT count(DISTINCT st_id) + count(DISTINCT domain) FROM decided`).Scan(&res.Domains); err != nil {
		return fmt.Errorf("count decisions: %w", err)
	}
	res.Rows, res.Verified, res.Invalid, res.Flagged, res.Watch = 0, 0, 0, 0, 0
	res.ByAction = map[lifecycle.Action]int64{}
	res.FlaggedByReason = map[lifecycle.Reason]int64{}
	rows, err := db.QueryContext(ctx, `SELECT rule, coalesce(verified, false), count(*) FROM decided GROUP BY ALL`)
	if err != nil {
		return fmt.Errorf("count decisions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var rule int
		var verified bool
		var n int64
		if err := rows.Scan(&rule, &verified, &n); err != nil {
			return fmt.Errorf("count decisions: %w", err)
		}
		if rule < 1 || rule > len(rules) {
			return fmt.Errorf("count decisions: rule %d out of range", rule)
		}
		r := rules[rule-1]
		res.Rows += n
		res.ByAction[r.action] += n
		if r.reason == lifecycle.ReasonInvalidAddr {
			res.Invalid += n
		}
		if !verified {
			continue
		}
		res.Verified += n
		switch r.action {
		case lifecycle.ActionUnverify:
			res.Flagged += n
			res.FlaggedByReason[r.reason] += n
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
