package changeset

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/lapse-dev/lapse/internal/duck"
	"github.com/lapse-dev/lapse/internal/night"
)

// ReviewOptions says how much a review lists; zero values take the
// defaults.
type ReviewOptions struct {
	// TopDomains is how many of the largest domains to list (20).
	TopDomains int
	// EvidenceDomains is how many of the largest domains show sample
	// evidence (10).
	EvidenceDomains int
	// EvidencePerDomain is how many distinct evidence lines a domain
	// shows (2).
	EvidencePerDomain int
	// NewDomains is how many domains of the new addresses to list (20).
	NewDomains int
	// TopDependencies is how many of the mail path's dependency domains
	// to list, with EvidencePerDomain evidence lines each (10).
	TopDependencies int
}

func (o ReviewOptions) withDefaults() ReviewOptions {
	if o.TopDomains <= 0 {
		o.TopDomains = 20
	}
	if o.EvidenceDomains <= 0 {
		o.EvidenceDomains = 10
	}
	o.EvidenceDomains = min(o.EvidenceDomains, o.TopDomains)
	if o.EvidencePerDomain <= 0 {
		o.EvidencePerDomain = 2
	}
	if o.NewDomains <= 0 {
		o.NewDomains = 20
	}
	if o.TopDependencies <= 0 {
		o.TopDependencies = 10
	}
	return o
}

// ReviewReport is what a reviewer reads about one changeset folder before
// approving it. It names domains and email ids, never addresses (those
// are in changeset.csv). Its JSON form is for tooling; the field names
// are stable.
type ReviewReport struct {
	Dir    string `json:"dir"`
	Date   string `json:"date"`
	Status string `json:"status"`
	Policy string `json:"policy"`
	// ManifestSHA256 is the sha256 of manifest.json: what an approval
	// pins (manifest.json holds the sha256 of every other file).
	ManifestSHA256 string `json:"manifest_sha256"`
	// Integrity says whether the files still match the manifest.
	Integrity Integrity   `json:"integrity"`
	Brake     BrakeReview `json:"brake"`
	// Counts are over changeset.parquet's rows (what apply would
	// un-verify), or the manifest's when the rows cannot be read.
	Counts ReviewCounts `json:"counts"`
	// DomainFlags and MailPath split Counts.ByReason: the rows flagged
	// for the address's own domain, and those flagged because an MX
	// host's or a name server's registrable domain lapsed or was
	// re-registered (reasons mx_domain_…, ns_domain_…).
	DomainFlags FlagGroup      `json:"domain_flags"`
	MailPath    MailPathReview `json:"mail_path"`
	TopDomains  []DomainReview `json:"top_domains"`
	// New compares the rows with the last applied changeset's.
	New NewReview `json:"new_since_applied"`
	// Approval is approval.json, nil when there is none.
	Approval *ApprovalReview `json:"approval"`
	// Applied is applied.json, nil when the changeset was not applied.
	Applied *AppliedReview `json:"applied"`
	// Reverted is reverted.json (Changed: the addresses restored), nil
	// when it was not reverted.
	Reverted *AppliedReview `json:"reverted"`
	// Approvable is whether lapse approve would accept the folder (a
	// blocked one with --override-brake and a --note).
	Approvable bool `json:"approvable"`
	// Next are the commands that come next, in order.
	Next []string `json:"next"`
}

// Integrity is the check of every file against the manifest.
type Integrity struct {
	OK bool `json:"ok"`
	// Files is how many files the manifest lists.
	Files    int           `json:"files"`
	Problems []FileProblem `json:"problems"`
}

// FileProblem is one file that does not match the manifest, or cannot be
// read.
type FileProblem struct {
	File    string `json:"file"`
	Problem string `json:"problem"`
}

// BrakeReview is the safety brake's verdict and its limits.
type BrakeReview struct {
	Blocked     bool     `json:"blocked"`
	Reasons     []string `json:"reasons"`
	MaxFraction float64  `json:"max_fraction"`
	MaxCount    int      `json:"max_count"`
	Protected   []string `json:"protected"`
}

// ReviewCounts are the changeset's figures.
type ReviewCounts struct {
	// From is the file the counts come from: changeset.parquet, or
	// manifest.json when the rows cannot be read.
	From     string `json:"from"`
	Flagged  int64  `json:"flagged"`
	Verified int64  `json:"verified"`
	Users    int64  `json:"users"`
	// FlaggedDomains is the distinct domains of the flagged rows.
	FlaggedDomains int64 `json:"domains"`
	// Fraction is Flagged / Verified (0 when nothing is verified).
	Fraction float64 `json:"fraction"`
	ByReason []Tally `json:"by_reason"`
	ByState  []Tally `json:"by_state"`
	ByTLD    []Tally `json:"by_tld"`
}

// FlagGroup is the flagged rows of one kind, by reason.
type FlagGroup struct {
	Flagged  int64   `json:"flagged"`
	ByReason []Tally `json:"by_reason"`
}

// MailPathReview is the mail-path flags: by reason, and the dependency
// domains (MX hosts' and name servers' registrable domains) behind them,
// largest first.
type MailPathReview struct {
	Flagged int64 `json:"flagged"`
	// AddressDomains is the distinct domains of the flagged addresses.
	AddressDomains int64   `json:"address_domains"`
	ByReason       []Tally `json:"by_reason"`
	// Dependencies are the largest dependency domains (their sample
	// evidence with addresses redacted); a row whose evidence names two
	// counts under both. Empty when the rows cannot be read.
	Dependencies []Dependency `json:"dependencies"`
}

// splitTallies splits tallies by reason into the domain flags and the
// mail-path flags, keeping their order.
func splitTallies(by []Tally) (FlagGroup, MailPathReview) {
	d, m := FlagGroup{ByReason: []Tally{}}, MailPathReview{ByReason: []Tally{}, Dependencies: []Dependency{}}
	for _, t := range by {
		if IsMailPath(t.Name) {
			m.ByReason = append(m.ByReason, t)
			m.Flagged += t.Addresses
		} else {
			d.ByReason = append(d.ByReason, t)
			d.Flagged += t.Addresses
		}
	}
	return d, m
}

// Tally is a count of addresses under one name, lists of them largest
// first, then by name.
type Tally struct {
	Name      string `json:"name"`
	Addresses int64  `json:"addresses"`
}

// DomainReview is one of the largest domains of the changeset.
type DomainReview struct {
	Domain string `json:"domain"`
	TLD    string `json:"tld"`
	// State and Reason are the domain's (comma-separated in the rare
	// case its addresses have several).
	State     string `json:"state"`
	Reason    string `json:"reason"`
	Addresses int64  `json:"addresses"`
	Users     int64  `json:"users"`
	// New is how many of its addresses are new since the last applied
	// changeset.
	New int64 `json:"new"`
	// EvidenceLines is how many distinct evidence lines its addresses
	// have (a re-registration's carry each address's first-seen date);
	// Evidence shows the most common.
	EvidenceLines int64            `json:"evidence_lines"`
	Evidence      []EvidenceSample `json:"evidence"`
}

// EvidenceSample is one distinct evidence line of a domain: which
// sources said what, and when.
type EvidenceSample struct {
	// EmailID is the first address carrying this evidence.
	EmailID int64 `json:"email_id"`
	// Addresses is how many of the domain's addresses carry it.
	Addresses int64  `json:"addresses"`
	Evidence  string `json:"evidence"`
}

// NewReview is what is new against the last applied changeset: the
// newest earlier folder whose applied.json says it changed anything (and
// that a revert did not undo entirely).
type NewReview struct {
	// Since is that changeset's night, "" when there is none (then
	// everything is new).
	Since    string `json:"since"`
	SinceDir string `json:"since_dir"`
	// New is the addresses not in that changeset.
	New     int64   `json:"new"`
	Domains []Tally `json:"domains"`
	// Problem is set when the comparison could not be made (New and
	// Domains are then empty).
	Problem string `json:"problem,omitempty"`
	// Skipped lists earlier folders whose applied.json could not be read.
	Skipped []string `json:"skipped"`
}

// ApprovalReview is approval.json as the review sees it.
type ApprovalReview struct {
	By             string    `json:"by"`
	Note           string    `json:"note"`
	ApprovedAt     time.Time `json:"approved_at"`
	ManifestSHA256 string    `json:"manifest_sha256"`
	Status         string    `json:"status"`
	OverrideBrake  bool      `json:"override_brake"`
	// Current is whether it pins the manifest on disk, whose files
	// match it: apply accepts only then.
	Current bool `json:"current"`
	// Problem is set when approval.json cannot be read.
	Problem string `json:"problem,omitempty"`
}

// AppliedReview is applied.json or reverted.json (written by lapse apply
// and lapse revert) as the review sees it.
type AppliedReview struct {
	Date           string           `json:"date"`
	ManifestSHA256 string           `json:"manifest_sha256"`
	Changed        int64            `json:"changed"`
	Skipped        int64            `json:"skipped"`
	SkippedBy      map[string]int64 `json:"skipped_by_reason"`
	By             string           `json:"by"`
	Target         string           `json:"target"`
	FinishedAt     time.Time        `json:"finished_at"`
	// Current is whether it was made from the manifest on disk.
	Current bool   `json:"current"`
	Problem string `json:"problem,omitempty"`
}

// appliedFile is the part of applied.json (and reverted.json) a review
// reads.
type appliedFile struct {
	Date           string           `json:"date"`
	ManifestSHA256 string           `json:"manifest_sha256"`
	Changed        int64            `json:"changed"`
	Skipped        int64            `json:"skipped"`
	SkippedBy      map[string]int64 `json:"skipped_by_reason"`
	By             string           `json:"by"`
	Target         string           `json:"target"`
	FinishedAt     time.Time        `json:"finished_at"`
	DryRun         bool             `json:"dry_run"`
}

func readApplied(dir string) (appliedFile, error) { return readApplyReport(dir, FileApplied) }

// applyReview is an apply report of dir (name: applied.json or
// reverted.json), nil when there is none.
func applyReview(dir, name, sum string) *AppliedReview {
	a, err := readApplyReport(dir, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return &AppliedReview{Problem: firstLine(err.Error())}
	}
	return &AppliedReview{Date: a.Date, ManifestSHA256: a.ManifestSHA256, Changed: a.Changed, Skipped: a.Skipped,
		SkippedBy: a.SkippedBy, By: a.By, Target: a.Target, FinishedAt: a.FinishedAt, Current: a.ManifestSHA256 == sum}
}

func readApplyReport(dir, name string) (appliedFile, error) {
	var a appliedFile
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return a, err
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return a, fmt.Errorf("%s does not parse: %w", name, err)
	}
	return a, nil
}

// ErrNoChangeset is returned (wrapped) by Latest when there is no
// changeset to look at.
var ErrNoChangeset = errors.New("no changeset")

// Latest is the newest changeset folder (named YYYY-MM-DD, with a
// manifest.json) in changesetsDir (DATA/changesets).
func Latest(changesetsDir string) (string, error) {
	ents, err := os.ReadDir(changesetsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w: %s does not exist (a night's publish writes it: lapse run; or set --data-dir)", ErrNoChangeset, changesetsDir)
	}
	if err != nil {
		return "", fmt.Errorf("changesets: %w", err)
	}
	for _, n := range slices.Backward(nightFolders(ents)) {
		p := filepath.Join(changesetsDir, n)
		if _, err := os.Stat(filepath.Join(p, FileManifest)); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w in %s: no YYYY-MM-DD folder with a %s (a night's publish writes one: lapse run)", ErrNoChangeset, changesetsDir, FileManifest)
}

// nightFolders are the names of the folders named YYYY-MM-DD, oldest
// first.
func nightFolders(ents []os.DirEntry) []string {
	var out []string
	for _, e := range ents {
		if night.FolderDate(e.Name(), "") != "" && e.IsDir() {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out
}

// lastApplied finds the newest folder beside dir of a night before date
// whose applied.json says it changed anything and whose reverted.json (if
// any) did not restore all of it ("" when none), and the folders skipped
// because their applied.json could not be read.
func lastApplied(dir, date string) (prevDir, prevDate string, skipped []string, err error) {
	parent := filepath.Dir(filepath.Clean(dir))
	ents, err := os.ReadDir(parent)
	if err != nil {
		return "", "", nil, fmt.Errorf("earlier changesets: %w", err)
	}
	for _, n := range slices.Backward(nightFolders(ents)) {
		if n >= date {
			continue
		}
		p := filepath.Join(parent, n)
		a, err := readApplied(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", n, err))
			continue
		}
		if a.Changed == 0 || a.DryRun {
			continue
		}
		// A revert that restored everything apply changed undid it.
		if rv, err := readApplyReport(p, FileReverted); err == nil && rv.Changed >= a.Changed {
			continue
		}
		return p, n, skipped, nil
	}
	return "", "", skipped, nil
}

// The scratch tables of a review.
const (
	reviewRows = "review_rows"
	reviewPrev = "review_prev"
)

// Review reads a changeset folder into a ReviewReport, with a scratch DuckDB
// (duck.OpenMemory) over its changeset.parquet. A folder whose files do not
// match the manifest is still reviewed, as far as its files can be read,
// with Integrity saying which file changed; err is for a folder that is
// not a changeset at all.
func Review(ctx context.Context, dir string, o ReviewOptions) (ReviewReport, error) {
	o = o.withDefaults()
	m, sum, bad, err := VerifyAll(dir)
	if err != nil {
		return ReviewReport{}, err
	}
	r := ReviewReport{
		Dir: dir, Date: m.Date, Status: m.Status, Policy: m.Policy, ManifestSHA256: sum,
		Integrity:   Integrity{OK: len(bad) == 0, Files: len(m.Files), Problems: []FileProblem{}},
		TopDomains:  []DomainReview{},
		DomainFlags: FlagGroup{ByReason: []Tally{}},
		MailPath:    MailPathReview{ByReason: []Tally{}, Dependencies: []Dependency{}},
		Brake: BrakeReview{Blocked: m.Status == StatusBlocked, Reasons: nonNil(m.BlockReasons),
			MaxFraction: m.Brake.MaxFraction, MaxCount: m.Brake.MaxCount, Protected: nonNil(m.Brake.Protected)},
		New:  NewReview{Domains: []Tally{}, Skipped: []string{}},
		Next: []string{},
	}
	if r.Date == "" {
		r.Date = filepath.Base(filepath.Clean(dir))
	}
	for _, b := range bad {
		r.Integrity.Problems = append(r.Integrity.Problems, FileProblem{File: b.File, Problem: b.Why})
	}

	db, err := duck.OpenMemory()
	if err != nil {
		return r, fmt.Errorf("review %s: %w", dir, err)
	}
	defer db.Close()
	pq := filepath.Join(dir, FileParquet)
	if _, err := db.ExecContext(ctx, fmt.Sprintf(`CREATE TEMP TABLE %s AS
		SELECT email_id, user_id, domain, tld, state, reason, evidence FROM read_parquet(%s)`, reviewRows, duck.String(pq))); err != nil {
		if !r.Integrity.OK {
			// The rows are what changed: say so, and show the manifest's
			// figures.
			r.Integrity.Problems = append(r.Integrity.Problems, FileProblem{File: FileParquet, Problem: "cannot be read: " + firstLine(err.Error())})
			r.Counts = manifestCounts(m)
			r.DomainFlags, r.MailPath = splitTallies(r.Counts.ByReason)
		} else {
			return r, fmt.Errorf("review %s: read %s: %w", dir, FileParquet, err)
		}
	} else if err := r.fromRows(ctx, db, m, o); err != nil {
		return r, fmt.Errorf("review %s: %w", dir, err)
	}
	if r.Counts.Verified > 0 {
		r.Counts.Fraction = float64(r.Counts.Flagged) / float64(r.Counts.Verified)
	}

	r.Approval = readApprovalReview(dir, sum, r.Integrity.OK)
	r.Applied = applyReview(dir, FileApplied, sum)
	r.Reverted = applyReview(dir, FileReverted, sum)
	r.Approvable = r.Integrity.OK && (m.Status == StatusProposed || m.Status == StatusBlocked)
	r.Next = r.nextSteps()
	return r, nil
}

// fromRows fills the counts, the largest domains with their evidence and
// what is new from the rows table.
func (r *ReviewReport) fromRows(ctx context.Context, db *sql.DB, m Manifest, o ReviewOptions) error {
	c := ReviewCounts{From: FileParquet, Verified: m.Counts.Verified}
	if err := db.QueryRowContext(ctx, `SELECT count(*), count(DISTINCT user_id), count(DISTINCT domain) FROM `+reviewRows).
		Scan(&c.Flagged, &c.Users, &c.FlaggedDomains); err != nil {
		return fmt.Errorf("count rows: %w", err)
	}
	for _, g := range []struct {
		col string
		out *[]Tally
	}{{"reason", &c.ByReason}, {"state", &c.ByState}, {"tld", &c.ByTLD}} {
		t, err := queryTallies(ctx, db, fmt.Sprintf(`SELECT coalesce(%s, ''), count(*) AS n FROM %s GROUP BY 1 ORDER BY n DESC, 1`, g.col, reviewRows))
		if err != nil {
			return fmt.Errorf("count by %s: %w", g.col, err)
		}
		*g.out = t
	}
	r.Counts = c
	r.DomainFlags, r.MailPath = splitTallies(c.ByReason)
	if r.MailPath.Flagged > 0 {
		if err := db.QueryRowContext(ctx, fmt.Sprintf(`SELECT count(DISTINCT domain) FROM %s WHERE %s`, reviewRows, mailPathSQL("reason"))).
			Scan(&r.MailPath.AddressDomains); err != nil {
			return fmt.Errorf("mail-path domains: %w", err)
		}
		deps, err := dependencies(ctx, db, reviewRows, o.TopDependencies, o.EvidencePerDomain)
		if err != nil {
			return err
		}
		r.MailPath.Dependencies = deps
	}

	// What is new: the rows whose email_id the last applied changeset
	// did not hold.
	newExpr := "true"
	prevDir, prevDate, skipped, err := lastApplied(r.Dir, r.Date)
	if err != nil {
		return err
	}
	r.New.Skipped = append(r.New.Skipped, skipped...)
	if prevDir != "" {
		r.New.Since, r.New.SinceDir = prevDate, prevDir
		q := fmt.Sprintf(`CREATE TEMP TABLE %s AS SELECT DISTINCT email_id FROM read_parquet(%s) WHERE email_id IS NOT NULL`,
			reviewPrev, duck.String(filepath.Join(prevDir, FileParquet)))
		if _, err := db.ExecContext(ctx, q); err != nil {
			r.New.Problem = fmt.Sprintf("cannot read %s of %s: %s", FileParquet, prevDate, firstLine(err.Error()))
			newExpr = "false"
		} else {
			newExpr = "email_id NOT IN (SELECT email_id FROM " + reviewPrev + ")"
			if err := db.QueryRowContext(ctx, `SELECT count(*) FROM `+reviewRows+` WHERE `+newExpr).Scan(&r.New.New); err != nil {
				return fmt.Errorf("count new rows: %w", err)
			}
			t, err := queryTallies(ctx, db, fmt.Sprintf(`SELECT coalesce(domain, ''), count(*) AS n FROM %s WHERE %s
				GROUP BY 1 ORDER BY n DESC, 1 LIMIT %d`, reviewRows, newExpr, o.NewDomains))
			if err != nil {
				return fmt.Errorf("new rows by domain: %w", err)
			}
			r.New.Domains = t
		}
	} else {
		r.New.New = c.Flagged
	}

	rows, err := db.QueryContext(ctx, fmt.Sprintf(`SELECT coalesce(domain, '') AS d, coalesce(min(tld), ''),
			array_to_string(list_sort(list_distinct(list(coalesce(state, '')))), ','),
			array_to_string(list_sort(list_distinct(list(coalesce(reason, '')))), ','),
			count(*) AS n, count(DISTINCT user_id), count(*) FILTER (WHERE %s), count(DISTINCT coalesce(evidence, ''))
		FROM %s GROUP BY 1 ORDER BY n DESC, d LIMIT %d`, newExpr, reviewRows, o.TopDomains))
	if err != nil {
		return fmt.Errorf("largest domains: %w", err)
	}
	for rows.Next() {
		d := DomainReview{Evidence: []EvidenceSample{}}
		if err := rows.Scan(&d.Domain, &d.TLD, &d.State, &d.Reason, &d.Addresses, &d.Users, &d.New, &d.EvidenceLines); err != nil {
			rows.Close()
			return err
		}
		r.TopDomains = append(r.TopDomains, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("largest domains: %w", err)
	}
	return r.evidence(ctx, db, o)
}

// evidence adds the distinct evidence lines (most common first) of the
// largest domains.
func (r *ReviewReport) evidence(ctx context.Context, db *sql.DB, o ReviewOptions) error {
	n := min(o.EvidenceDomains, len(r.TopDomains))
	if n == 0 {
		return nil
	}
	at := map[string]int{}
	args := make([]any, n)
	for i := range n {
		at[r.TopDomains[i].Domain] = i
		args[i] = r.TopDomains[i].Domain
	}
	rows, err := db.QueryContext(ctx, fmt.Sprintf(`SELECT coalesce(domain, '') AS d, coalesce(evidence, '') AS ev, min(email_id) AS first, count(*) AS n
		FROM %s WHERE coalesce(domain, '') IN (%s) GROUP BY 1, 2 ORDER BY d, n DESC, first`,
		reviewRows, strings.TrimSuffix(strings.Repeat("?, ", n), ", ")), args...)
	if err != nil {
		return fmt.Errorf("sample evidence: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d string
		var e EvidenceSample
		if err := rows.Scan(&d, &e.Evidence, &e.EmailID, &e.Addresses); err != nil {
			return err
		}
		dr := &r.TopDomains[at[d]]
		if len(dr.Evidence) < o.EvidencePerDomain {
			e.Evidence = RedactAddresses(e.Evidence)
			dr.Evidence = append(dr.Evidence, e)
		}
	}
	return rows.Err()
}

func queryTallies(ctx context.Context, db *sql.DB, q string) ([]Tally, error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Tally{}
	for rows.Next() {
		var t Tally
		if err := rows.Scan(&t.Name, &t.Addresses); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// manifestCounts are the manifest's figures, for a folder whose rows
// cannot be read.
func manifestCounts(m Manifest) ReviewCounts {
	c := m.Counts
	tallies := func(mm map[string]int64) []Tally {
		out := []Tally{}
		for k, v := range mm {
			out = append(out, Tally{k, v})
		}
		slices.SortFunc(out, func(a, b Tally) int {
			if c := cmp.Compare(b.Addresses, a.Addresses); c != 0 {
				return c
			}
			return cmp.Compare(a.Name, b.Name)
		})
		return out
	}
	return ReviewCounts{From: FileManifest, Flagged: c.Flagged, Verified: c.Verified, Users: c.Users, FlaggedDomains: c.FlaggedDomains,
		ByReason: tallies(c.ByReason), ByState: []Tally{}, ByTLD: tallies(c.ByTLD)}
}

func readApprovalReview(dir, sum string, filesOK bool) *ApprovalReview {
	a, err := ReadApproval(dir)
	if errors.Is(err, ErrNotApproved) {
		return nil
	}
	if err != nil {
		return &ApprovalReview{Problem: firstLine(err.Error())}
	}
	return &ApprovalReview{By: a.By, Note: RedactAddresses(a.Note), ApprovedAt: a.ApprovedAt, ManifestSHA256: a.ManifestSHA256,
		Status: a.Status, OverrideBrake: a.OverrideBrake, Current: filesOK && a.ManifestSHA256 == sum}
}

// nextSteps says what to do next with the folder.
func (r *ReviewReport) nextSteps() []string {
	dir := shellQuote(r.Dir)
	switch {
	case !r.Integrity.OK:
		files := make([]string, 0, len(r.Integrity.Problems))
		for _, p := range r.Integrity.Problems {
			if !slices.Contains(files, p.File) {
				files = append(files, p.File)
			}
		}
		return []string{fmt.Sprintf("do not approve: find out why %s no longer matches the manifest; a changeset whose files changed cannot be approved or applied",
			strings.Join(files, ", "))}
	case r.Reverted != nil && r.Reverted.Problem == "":
		return []string{"reverted: nothing more to do"}
	case r.Applied != nil && r.Applied.Current && r.Applied.Changed > 0:
		return []string{"applied; to undo: lapse revert " + dir}
	case r.Approval != nil && r.Approval.Current && r.Applied == nil:
		return []string{"lapse apply " + dir}
	case r.Counts.Flagged == 0 && r.Approval == nil:
		return []string{"nothing to un-verify: no approval needed"}
	}
	var next []string
	if r.Approval != nil && !r.Approval.Current {
		next = append(next, "approval.json pins another manifest (or cannot be read): approve this one again")
	}
	approve := fmt.Sprintf("lapse approve %s --by NAME --sha256 %s", dir, r.ManifestSHA256)
	if r.Brake.Blocked {
		approve = fmt.Sprintf(`lapse approve %s --by NAME --override-brake --note "why the brake is wrong tonight" --sha256 %s`, dir, r.ManifestSHA256)
	}
	return append(next, approve, "lapse apply "+dir)
}

// addressRE matches something shaped like an email address.
var addressRE = regexp.MustCompile(`[^\s@<>()\[\]{},;:"'|]+@[^\s@<>()\[\]{},;:"'|]+`)

// RedactAddresses replaces anything shaped like an email address in s
// (evidence text, a reviewer's note) with "(address)": a review names
// domains and email ids only.
func RedactAddresses(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	return addressRE.ReplaceAllString(s, "(address)")
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_./:=%+,-]+$`)

func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
