// Package changeset writes a night's reviewable changeset
// (DATA/changesets/D/): changeset.parquet and changeset.csv (the verified
// addresses to un-verify, with the snapshot values the apply step checks),
// notify.csv (affected users and their other still-verified addresses),
// summary.md for the reviewer and manifest.json (sha256 of every file,
// policy, counts, status proposed or blocked, and why).
//
// The safety brake is decided here: a night that would un-verify more than
// a fraction or count of verified addresses, or any address on a protected
// domain, is written with status blocked. Nothing is ever applied from here.
package changeset

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/atomicfile"
	"github.com/lapse-dev/lapse/internal/duck"
)

// Status of a changeset.
const (
	StatusProposed = "proposed"
	StatusBlocked  = "blocked"
)

// The files of a changeset folder.
const (
	FileParquet  = "changeset.parquet"
	FileCSV      = "changeset.csv"
	FileNotify   = "notify.csv"
	FileSummary  = "summary.md"
	FileManifest = "manifest.json"
)

// Spec is what to write.
type Spec struct {
	// Dir is the changeset folder (DATA/changesets/D).
	Dir  string
	Date string
	// Decisions is classify's output for the night (its non-keep rows;
	// Write reads the verified ones to un-verify).
	Decisions string
	// Snapshot is the night's snapshot (email_id, user_id, email,
	// verified, "primary", ...): notify.csv lists each affected user's
	// other verified addresses from it.
	Snapshot string
	// Verified is the number of verified addresses of the snapshot (the
	// brake's denominator), counted by classify.
	Verified int64
	// Previous is the last earlier changeset.parquet, "" when none: the
	// summary lists what is new since it.
	Previous string
	Policy   string
	Brake    config.BrakeConfig
	// Unknowns is what the night could not tell (summary.md says it).
	Unknowns Unknowns
}

// FileInfo describes one written file in the manifest.
type FileInfo struct {
	SHA256 string `json:"sha256"`
	Bytes  int64  `json:"bytes"`
	Rows   int64  `json:"rows,omitempty"`
}

// Manifest is manifest.json.
type Manifest struct {
	Date   string `json:"date"`
	Status string `json:"status"`
	Policy string `json:"policy"`
	// BlockReasons says why the brake held the changeset.
	BlockReasons []string `json:"block_reasons"`
	Brake        struct {
		MaxFraction float64  `json:"max_fraction"`
		MaxCount    int      `json:"max_count"`
		Protected   []string `json:"protected"`
	} `json:"brake"`
	Counts Counts              `json:"counts"`
	Files  map[string]FileInfo `json:"files"`
}

// Counts are the changeset's figures.
type Counts struct {
	// Flagged is the verified addresses to un-verify; Verified the
	// verified addresses of the snapshot; Users and FlaggedDomains the
	// distinct users and domains of the flagged rows.
	Flagged        int64            `json:"flagged"`
	Verified       int64            `json:"verified"`
	Users          int64            `json:"users"`
	FlaggedDomains int64            `json:"domains"`
	New            int64            `json:"new_since_previous"`
	ByReason       map[string]int64 `json:"by_reason"`
	ByTLD          map[string]int64 `json:"by_tld"`
}

// Result is what Write wrote.
type Result struct {
	Manifest Manifest
	// ManifestSHA256 is the sha256 of manifest.json.
	ManifestSHA256 string
}

// Blocked reports whether the brake held the changeset.
func (r Result) Blocked() bool { return r.Manifest.Status == StatusBlocked }

// rowsTable holds a changeset's rows while Write runs.
const rowsTable = "changeset_rows"

// changesetQuery selects the changeset rows from the decisions file.
func changesetQuery(decisions string) string {
	return fmt.Sprintf(`SELECT email_id, user_id, email, domain, tld, state, reason, evidence,
		verified, "primary", created, verified_at
		FROM read_parquet(%s) WHERE verified AND action = 'unverify' ORDER BY email_id`, duck.String(decisions))
}

// Write writes the changeset folder with db, a scratch DuckDB (duck.OpenMemory);
// every file is atomic, the ones holding addresses 0600. manifest.json goes
// last, so a folder with a manifest is complete. The caller turns a blocked
// Result into its error.
func Write(ctx context.Context, db *sql.DB, s Spec) (Result, error) {
	var res Result
	m := Manifest{Date: s.Date, Policy: s.Policy, BlockReasons: []string{}, Files: map[string]FileInfo{}}
	m.Brake.MaxFraction, m.Brake.MaxCount, m.Brake.Protected = s.Brake.MaxFraction, s.Brake.MaxCount, s.Brake.Protected
	if m.Brake.Protected == nil {
		m.Brake.Protected = []string{}
	}
	if s.Decisions == "" || s.Snapshot == "" {
		return res, fmt.Errorf("changeset %s: the decisions and the snapshot are both needed", s.Date)
	}
	if err := os.MkdirAll(s.Dir, 0o750); err != nil {
		return res, fmt.Errorf("changeset %s: %w", s.Dir, err)
	}
	// The rows are read from the decisions once into a table (a plain
	// one: every connection of db sees it): every file and count below is
	// made from it.
	if _, err := db.ExecContext(ctx, "CREATE OR REPLACE TABLE "+rowsTable+" AS "+changesetQuery(s.Decisions)); err != nil {
		return res, fmt.Errorf("changeset %s: read decisions: %w", s.Date, err)
	}
	defer db.ExecContext(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+rowsTable)
	cs := "SELECT * FROM " + rowsTable
	c, err := counts(ctx, db, s, cs)
	if err != nil {
		return res, fmt.Errorf("changeset %s: %w", s.Date, err)
	}
	m.Counts = c
	flaggedProtected, err := protectedHits(ctx, db, cs, s.Brake.Protected)
	if err != nil {
		return res, fmt.Errorf("changeset %s: %w", s.Date, err)
	}
	m.BlockReasons = Brake(s.Brake, c.Flagged, c.Verified, flaggedProtected)
	m.Status = StatusProposed
	if len(m.BlockReasons) > 0 {
		m.Status = StatusBlocked
	}

	pq := filepath.Join(s.Dir, FileParquet)
	if err := duck.CopyParquet(ctx, db, cs+" ORDER BY email_id", pq, 0o600); err != nil {
		return res, fmt.Errorf("changeset %s: %w", s.Date, err)
	}
	csvQ := `SELECT email_id, user_id, email, domain, state, reason, evidence, verified, "primary",
		strftime(created, '%Y-%m-%dT%H:%M:%SZ') AS created, strftime(verified_at, '%Y-%m-%dT%H:%M:%SZ') AS verified_at
		FROM ` + rowsTable + ` ORDER BY email_id`
	if err := duck.CopyTo(ctx, db, csvQ, filepath.Join(s.Dir, FileCSV), "FORMAT csv, HEADER", 0o600); err != nil {
		return res, fmt.Errorf("changeset %s: %w", s.Date, err)
	}
	// One row per flagged address with the user's other addresses that
	// stay verified, so the registry can tell the user where it still can.
	// They come from the snapshot: the decisions hold no keep rows. The
	// rows table is read in place (a CTE of it would copy every column,
	// the evidence too), and each user's addresses are ordered by sorting
	// one list per user, primary first, then by email_id (the order of
	// string_agg(… ORDER BY "primary" DESC, email_id), NULL last), which
	// costs a third of string_agg's ordered aggregate.
	notifyQ := fmt.Sprintf(`
		WITH others AS (
			SELECT CAST(d.user_id AS VARCHAR) AS user_id,
			       array_to_string(list_transform(list_sort(list((
			           CASE WHEN d."primary" THEN 0 WHEN NOT d."primary" THEN 1 ELSE 2 END, d.email_id, d.email))), x -> x[3]), ' ') AS other_verified
			FROM read_parquet(%[2]s) d
			WHERE d.verified AND CAST(d.user_id AS VARCHAR) IN (SELECT user_id FROM %[1]s)
			  AND d.email_id NOT IN (SELECT email_id FROM %[1]s)
			GROUP BY 1
		)
		SELECT cs.user_id, cs.email_id, cs.email, cs.domain, cs.reason, cs."primary" AS was_primary,
		       coalesce(o.other_verified, '') AS other_verified
		FROM %[1]s cs LEFT JOIN others o USING (user_id)
		ORDER BY cs.user_id, cs.email_id`, rowsTable, duck.String(s.Snapshot))
	if err := duck.CopyTo(ctx, db, notifyQ, filepath.Join(s.Dir, FileNotify), "FORMAT csv, HEADER", 0o600); err != nil {
		return res, fmt.Errorf("changeset %s: %w", s.Date, err)
	}
	summary, err := summaryMarkdown(ctx, db, s, m, rowsTable)
	if err != nil {
		return res, fmt.Errorf("changeset %s: summary: %w", s.Date, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(s.Dir, FileSummary), []byte(summary), 0o600); err != nil {
		return res, fmt.Errorf("changeset %s: %w", s.Date, err)
	}
	for _, name := range []string{FileParquet, FileCSV, FileNotify, FileSummary} {
		fi, err := HashFile(filepath.Join(s.Dir, name))
		if err != nil {
			return res, fmt.Errorf("changeset %s: %w", s.Date, err)
		}
		switch name {
		case FileParquet, FileCSV:
			fi.Rows = c.Flagged
		case FileNotify:
			fi.Rows = c.Flagged
		}
		m.Files[name] = fi
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return res, err
	}
	b = append(b, '\n')
	if err := atomicfile.WriteFile(filepath.Join(s.Dir, FileManifest), b, 0o640); err != nil {
		return res, fmt.Errorf("changeset %s: %w", s.Date, err)
	}
	sum := sha256.Sum256(b)
	return Result{Manifest: m, ManifestSHA256: hex.EncodeToString(sum[:])}, nil
}

// Brake returns why the safety brake holds a night's changeset, or nothing
// when it passes: more than MaxFraction of the verified addresses (0
// disables the fraction), more than MaxCount (0 disables the count), or any
// flagged address on a protected domain.
func Brake(b config.BrakeConfig, flagged, verified int64, protected []string) []string {
	reasons := []string{}
	if b.MaxFraction > 0 && verified > 0 && float64(flagged) > b.MaxFraction*float64(verified) {
		reasons = append(reasons, fmt.Sprintf("would un-verify %d of %d verified addresses (%.3f%%), more than brake.max_fraction %.3f%%",
			flagged, verified, 100*float64(flagged)/float64(verified), 100*b.MaxFraction))
	}
	if b.MaxCount > 0 && flagged > int64(b.MaxCount) {
		reasons = append(reasons, fmt.Sprintf("would un-verify %d addresses, more than brake.max_count %d", flagged, b.MaxCount))
	}
	if len(protected) > 0 {
		reasons = append(reasons, fmt.Sprintf("would un-verify addresses on protected domains: %s", strings.Join(protected, ", ")))
	}
	return reasons
}

// protectedHits lists the protected domains (or their subdomains) among
// the flagged addresses' domains.
func protectedHits(ctx context.Context, db *sql.DB, cs string, protected []string) ([]string, error) {
	if len(protected) == 0 {
		return nil, nil
	}
	rows, err := db.QueryContext(ctx, fmt.Sprintf(`SELECT DISTINCT lower(domain) FROM (%s) WHERE domain IS NOT NULL ORDER BY 1`, cs))
	if err != nil {
		return nil, fmt.Errorf("protected domains: %w", err)
	}
	defer rows.Close()
	var hits []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, err
		}
		for _, p := range protected {
			p = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(p), "."))
			if p != "" && (d == p || strings.HasSuffix(d, "."+p)) && !slices.Contains(hits, d) {
				hits = append(hits, d)
			}
		}
	}
	return hits, rows.Err()
}

func counts(ctx context.Context, db *sql.DB, s Spec, cs string) (Counts, error) {
	c := Counts{Verified: s.Verified, ByReason: map[string]int64{}, ByTLD: map[string]int64{}}
	if err := db.QueryRowContext(ctx, fmt.Sprintf(`SELECT count(*), count(DISTINCT user_id), count(DISTINCT domain) FROM (%s)`, cs)).Scan(&c.Flagged, &c.Users, &c.FlaggedDomains); err != nil {
		return c, fmt.Errorf("count flagged: %w", err)
	}
	for _, g := range []struct {
		col string
		m   map[string]int64
	}{{"reason", c.ByReason}, {"coalesce(tld, '')", c.ByTLD}} {
		rows, err := db.QueryContext(ctx, fmt.Sprintf(`SELECT %s, count(*) FROM (%s) GROUP BY ALL`, g.col, cs))
		if err != nil {
			return c, fmt.Errorf("count flagged: %w", err)
		}
		for rows.Next() {
			var k string
			var n int64
			if err := rows.Scan(&k, &n); err != nil {
				rows.Close()
				return c, err
			}
			g.m[k] = n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return c, err
		}
	}
	c.New = c.Flagged
	if s.Previous != "" {
		q := fmt.Sprintf(`SELECT count(*) FROM (%s) WHERE email_id NOT IN (SELECT email_id FROM read_parquet(%s))`, cs, duck.String(s.Previous))
		if err := db.QueryRowContext(ctx, q).Scan(&c.New); err != nil {
			return c, fmt.Errorf("count new since %s: %w", s.Previous, err)
		}
	}
	return c, nil
}

// HashFile is the sha256 and size of a file.
func HashFile(path string) (FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileInfo{}, fmt.Errorf("hash %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return FileInfo{}, fmt.Errorf("hash %s: %w", path, err)
	}
	return FileInfo{SHA256: hex.EncodeToString(h.Sum(nil)), Bytes: n}, nil
}
