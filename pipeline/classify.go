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
	"strings"
	"time"

	"github.com/lapse-dev/lapse/cache"
	"github.com/lapse-dev/lapse/internal/atomicfile"
	"github.com/lapse-dev/lapse/internal/duck"
	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sinks/changeset"
	"slices"
)

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
	// States is the domains' states (cache.StateSchema): the night's link to the
	// cache's states copy (night.Paths.States). Domains outside the
	// snapshot are ignored.
	States string
	// Out is where the decisions go (night.Paths.Decisions): one row per
	// address whose action is not keep (unverify, watch, unknown), with
	// the evidence a reviewer reads (0600). Keep rows are only counted:
	// writing a million healthy addresses every night was most of a warm
	// night's classify and publish. FirstSeen (night.Paths.FirstSeen)
	// receives every address's first sighting, Counts (night.Paths.Counts)
	// the counts over every address; both go in Out's folder.
	Out, FirstSeen, Counts string
	// History is the data dir whose earlier nights' decisions folders hold
	// the first-seen history ("": none but the snapshots).
	History night.Dir
	// Reverified is a Parquet file of (email_id, reverified_at): the
	// addresses their owners verified again after an applied changeset
	// un-verified them (night.Paths.Reverified); "" or a missing file means
	// none.
	Reverified string
	// Links is the night's links file (cache.LinksSchema: the mail path
	// of the address domains, night.Paths.Links); "" or a missing file
	// means no mail path: every mail fact is NULL. The pypi policy does
	// not read it.
	Links string
	// MailLinks, when set, is where classify keeps the
	// links joined with the dependency rows that can give a mail fact,
	// reused while the links and states files are unchanged
	// (DATA/states/mail_links.parquet).
	MailLinks string
	// Date is the night (YYYY-MM-DD): snapshots of later dates are ignored.
	Date   string
	Policy lifecycle.Policy
	// AsOf is the night's reference time for the watch window.
	AsOf time.Time
}

// ClassifyOptionsFor fills the paths of a night under its data dir.
func ClassifyOptionsFor(p night.Paths, policy lifecycle.Policy, asOf time.Time) ClassifyOptions {
	return ClassifyOptions{
		Snapshot: p.Snapshot(), SnapshotGlob: p.SnapshotGlob(), States: p.States(),
		Out: p.Decisions(), FirstSeen: p.FirstSeen(), Counts: p.Counts(), History: night.Dir(p.DataDir),
		Date: p.Date, Policy: policy, AsOf: asOf, Reverified: p.Reverified(), Links: p.Links(),
		MailLinks: filepath.Join(night.Dir(p.DataDir).StatesDir(), "mail_links.parquet"),
	}
}

// ClassifyResult counts classify's decisions over every address of the
// snapshot (keep included). It is what counts.json holds.
type ClassifyResult struct {
	Path string `json:"-"`
	// Addresses is every address of the snapshot; Verified and Invalid
	// count the verified ones and those without a registrable domain.
	Addresses int64 `json:"rows"`
	Verified  int64 `json:"verified"`
	Invalid   int64 `json:"invalid"`
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
// first-seen history in DuckDB and applies the policy to every address:
// its rule table (lifecycle.Policy.Rules, which Decide evaluates in Go),
// rendered into the queries of classify_*.sql (classify_sql.go). The join
// is evaluated once into an in-memory table of narrow columns (row, id,
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
	if _, err := night.Parse(o.Date); err != nil {
		return res, err
	}
	if _, err := os.Stat(o.Snapshot); err != nil {
		return res, fmt.Errorf("classify: snapshot: %w", err)
	}
	db, err := duck.OpenMemory()
	if err != nil {
		return res, fmt.Errorf("classify: %w", err)
	}
	defer db.Close()
	// A night too big for memory spills next to its output, not into the
	// working directory (DuckDB's default for an in-memory database).
	dir := filepath.Dir(o.Out)
	spill := filepath.Join(dir, ".classify-spill")
	defer os.RemoveAll(spill)
	if _, err := db.ExecContext(ctx, "SET temp_directory = "+duck.String(spill)); err != nil {
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
	if err := duck.CopyTo(ctx, db, fsq, o.FirstSeen,
		"FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1", 0o600); err != nil {
		return res, fmt.Errorf("classify: %w", err)
	}
	// zstd's fastest level and no dictionaries: the file is read by lapse
	// only, and most of its columns (ids, addresses, times) are near-unique.
	if err := duck.CopyTo(ctx, db, plan.export, o.Out,
		"FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, PARQUET_VERSION V2, DICTIONARY_SIZE_LIMIT 1, KV_METADATA {"+
			decisionsMarker+": 'non_keep'}", 0o600); err != nil {
		return res, fmt.Errorf("classify: %w", err)
	}
	if err := countDecided(ctx, db, rules, o.States, &res); err != nil {
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
	if err := atomicfile.WriteFile(o.Counts, append(b, '\n'), 0o640); err != nil {
		return res, fmt.Errorf("classify: %w", err)
	}
	return res, nil
}

// ReadClassifyCounts reads a night's counts (night.Paths.Counts: a
// resumed night's publish) and checks that they were counted with its
// decisions file. A missing or mismatched counts file means classify did not finish
// with this lapse: the error says to run the night again with --force.
func ReadClassifyCounts(path, decisions, date string) (ClassifyResult, error) {
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

// stateColumns are the states file's columns (cache.StateColumns) but the
// domain, which statesSelect reads as it is; a column missing from the
// file reads as NULL.
func stateColumns() []cache.StateColumn {
	return slices.DeleteFunc(slices.Clone(cache.StateColumns), func(c cache.StateColumn) bool { return c.Name == cache.ColDomain })
}

// statesSelect reads the states file, or an empty relation of the same
// shape when there is none yet (a first night that resolved nothing).
// st_id numbers the file's rows: classify counts distinct domains by it
// instead of keeping every address's domain name.
func statesSelect(ctx context.Context, db *sql.DB, path string) (string, error) {
	var b strings.Builder
	if _, err := os.Stat(path); err != nil {
		b.WriteString("SELECT CAST(NULL AS BIGINT) AS st_id, CAST(NULL AS VARCHAR) AS domain")
		for _, c := range stateColumns() {
			fmt.Fprintf(&b, ", %s AS %s", duck.Null(c.SQL), c.Name)
		}
		b.WriteString(" WHERE false")
		return b.String(), nil
	}
	cols, err := duck.Columns(ctx, db, path)
	if err != nil {
		return "", err
	}
	if !cols.Has("domain") {
		return "", fmt.Errorf("domain states %s have no domain column", path)
	}
	b.WriteString("SELECT file_row_number AS st_id, domain")
	for _, c := range stateColumns() {
		fmt.Fprintf(&b, ", %s AS %s", cols.Or(c.Name, c.SQL), c.Name)
	}
	fmt.Fprintf(&b, " FROM read_parquet(%s, file_row_number = true)", duck.String(path))
	return b.String(), nil
}

// countDecided fills res from the decided table: the distinct domains
// (state rows matched, plus the domains no state row matched) and those
// of them whose state row says unknown, from one pass over the matched
// rows; then rows by rule and verified in one grouped pass.
func countDecided(ctx context.Context, db *sql.DB, rules []lifecycle.Rule, states string, res *ClassifyResult) error {
	unknown := "0"
	if fileExists(states) {
		unknown = fmt.Sprintf(`(SELECT count(*) FROM ids
			JOIN (SELECT file_row_number AS st_id, state FROM read_parquet(%s, file_row_number = true)) st USING (st_id)
			WHERE %s)`, duck.String(states), lifecycle.UnknownStateSQL("st.state"))
	}
	q := `WITH ids AS MATERIALIZED (SELECT DISTINCT st_id FROM decided WHERE st_id IS NOT NULL)
		SELECT (SELECT count(*) FROM ids) + (SELECT count(DISTINCT domain) FROM decided), ` + unknown
	if err := db.QueryRowContext(ctx, q).Scan(&res.Domains, &res.UnknownDomains); err != nil {
		return fmt.Errorf("count decisions: %w", err)
	}
	res.Addresses, res.Verified, res.Invalid, res.Flagged, res.Watch = 0, 0, 0, 0, 0
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
		res.Addresses += n
		res.ByAction[r.Action] += n
		if r.Reason == lifecycle.ReasonInvalidAddr {
			res.Invalid += n
		}
		if !verified {
			continue
		}
		res.Verified += n
		switch r.Action {
		case lifecycle.ActionUnverify:
			res.Flagged += n
			res.FlaggedByReason[r.Reason] += n
		case lifecycle.ActionWatch:
			res.Watch += n
		}
	}
	return rows.Err()
}
