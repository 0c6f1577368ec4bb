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
	"database/sql/driver"
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
	return flaggedQuery(decisions, `email_id, user_id, email, domain, tld, state, reason, evidence,
		verified, "primary", created, verified_at`) + " ORDER BY email_id"
}

// flaggedQuery selects cols of the decisions' rows to un-verify.
func flaggedQuery(decisions, cols string) string {
	return fmt.Sprintf(`SELECT %s FROM read_parquet(%s) WHERE verified AND action = 'unverify'`, cols, duck.String(decisions))
}

// querier is what the counts and the summary query with: db, or one of
// its connections.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
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
	// notify.csv is written beside the rest: three connections, db's own,
	// notify.csv's and the copies'.
	conn, done, err := moreConns(ctx, db, 3)
	if err != nil {
		return res, fmt.Errorf("changeset %s: %w", s.Date, err)
	}
	defer done()
	if err := writeFiles(ctx, db, conn, s, &m); err != nil {
		return res, fmt.Errorf("changeset %s: %w", s.Date, err)
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

// moreConns pins db's connection (conn: the one holding its session
// settings) and lets db open up to n-1 more beside it. done discards those
// and restores the limit, so db is left with conn alone, as
// duck.OpenMemory made it.
func moreConns(ctx context.Context, db *sql.DB, n int) (conn *sql.Conn, done func(), err error) {
	conn, err = db.Conn(ctx)
	if err != nil {
		return nil, nil, err
	}
	limit := db.Stats().MaxOpenConnections
	if limit == 0 || limit >= n {
		return conn, func() { conn.Close() }, nil
	}
	db.SetMaxOpenConns(n)
	return conn, func() {
		// conn is held, so every idle connection is one of the others;
		// ErrBadConn has database/sql close it rather than keep it.
		for db.Stats().Idle > 0 {
			c, err := db.Conn(context.Background())
			if err != nil {
				break
			}
			c.Raw(func(any) error { return driver.ErrBadConn })
		}
		db.SetMaxOpenConns(limit)
		conn.Close()
	}, nil
}

// writeFiles writes every file but the manifest into m.Files and fills
// m's counts and status; conn is db's own connection. notify.csv, which
// reads the whole snapshot, is written beside the others, from the start.
func writeFiles(ctx context.Context, db *sql.DB, conn *sql.Conn, s Spec, m *Manifest) error {
	// Two queries run at once, each on the thread that asked for it, which
	// DuckDB counts among its threads: its workers beside them would only
	// oversubscribe the cores and spin for tasks, so there is one fewer.
	var threads int
	if err := conn.QueryRowContext(ctx, "SELECT current_setting('threads')").Scan(&threads); err != nil {
		return err
	}
	if threads > 1 {
		if _, err := conn.ExecContext(ctx, fmt.Sprintf("SET threads = %d", threads-1)); err != nil {
			return err
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf("SET threads = %d", threads))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	notified := make(chan error, 1)
	go func() {
		err := writeNotify(ctx, db, s)
		if err != nil {
			cancel()
		}
		notified <- err
	}()
	if err := writeRest(ctx, db, conn, s, m); err != nil {
		interrupted := ctx.Err() != nil
		cancel()
		// When notify.csv's failure interrupted the rest, its error says why.
		if nerr := <-notified; interrupted && nerr != nil {
			return nerr
		}
		return err
	}
	if err := <-notified; err != nil {
		return err
	}
	return addFile(m, s.Dir, FileNotify)
}

// addFile adds the hash and size of the written file name to m.Files.
func addFile(m *Manifest, dir, name string) error {
	fi, err := HashFile(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	if name != FileSummary {
		fi.Rows = m.Counts.Flagged
	}
	m.Files[name] = fi
	return nil
}

// writeRest writes the files but notify.csv, from the rows table.
func writeRest(ctx context.Context, db *sql.DB, conn *sql.Conn, s Spec, m *Manifest) error {
	// The rows are read from the decisions once into a table (a plain
	// one: every connection of db sees it): every file and count below is
	// made from it.
	if _, err := conn.ExecContext(ctx, "CREATE OR REPLACE TABLE "+rowsTable+" AS "+changesetQuery(s.Decisions)); err != nil {
		return fmt.Errorf("read decisions: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+rowsTable)
	cs := "SELECT * FROM " + rowsTable
	c, err := counts(ctx, conn, s, cs)
	if err != nil {
		return err
	}
	m.Counts = c
	flaggedProtected, err := protectedHits(ctx, conn, cs, s.Brake.Protected)
	if err != nil {
		return err
	}
	m.BlockReasons = Brake(s.Brake, c.Flagged, c.Verified, flaggedProtected)
	m.Status = StatusProposed
	if len(m.BlockReasons) > 0 {
		m.Status = StatusBlocked
	}

	// The table is in email_id order, which a COPY of it keeps unless
	// preserve_insertion_order is off; sorting it again costs a third of
	// a copy.
	order := ""
	var ordered bool
	if err := conn.QueryRowContext(ctx, "SELECT current_setting('preserve_insertion_order')").Scan(&ordered); err != nil || !ordered {
		order = " ORDER BY email_id"
	}
	if err := duck.CopyParquet(ctx, db, cs+order, filepath.Join(s.Dir, FileParquet), 0o600); err != nil {
		return err
	}
	if err := addFile(m, s.Dir, FileParquet); err != nil {
		return err
	}
	// The times are the instants in UTC (what the Z says): the copy runs
	// on a connection of db's without duck.OpenMemory's UTC time zone.
	csvQ := `SELECT email_id, user_id, email, domain, state, reason, evidence, verified, "primary",
		` + utcTime("created") + ` AS created, ` + utcTime("verified_at") + ` AS verified_at
		FROM ` + rowsTable + order
	if err := duck.CopyTo(ctx, db, csvQ, filepath.Join(s.Dir, FileCSV), "FORMAT csv, HEADER", 0o600); err != nil {
		return err
	}
	if err := addFile(m, s.Dir, FileCSV); err != nil {
		return err
	}
	summary, err := summaryMarkdown(ctx, conn, s, *m, rowsTable)
	if err != nil {
		return fmt.Errorf("summary: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(s.Dir, FileSummary), []byte(summary), 0o600); err != nil {
		return err
	}
	return addFile(m, s.Dir, FileSummary)
}

// utcTime formats a timestamp column as 2006-01-02T15:04:05Z in UTC, like
// strftime in a UTC session (duck.StrftimeUTC).
func utcTime(col string) string { return duck.StrftimeUTC(col, "%Y-%m-%dT%H:%M:%SZ") }

// writeNotify writes notify.csv: one row per flagged address with the
// user's other addresses that stay verified, so the registry can tell the
// user where it still can. They come from the snapshot: the decisions hold
// no keep rows. It reads the flagged rows from the decisions itself, so it
// need not wait for the rows table.
func writeNotify(ctx context.Context, db *sql.DB, s Spec) error {
	// The snapshot's user_id is matched in its own type (VARCHAR, or UUID
	// from PostgreSQL): casting the flagged few costs nothing, casting
	// every snapshot row to VARCHAR does. The groups are still keyed and
	// joined as VARCHAR, as the rows' user_id is compared.
	var typ string
	if err := db.QueryRowContext(ctx, fmt.Sprintf(`SELECT column_type FROM (DESCRIBE SELECT user_id FROM read_parquet(%s))`, duck.String(s.Snapshot))).Scan(&typ); err != nil {
		return fmt.Errorf("read %s: %w", s.Snapshot, err)
	}
	// Each user's addresses are ordered by sorting one list per user,
	// primary first, then by email_id (the order of string_agg(… ORDER BY
	// "primary" DESC, email_id), NULL last), which costs a third of
	// string_agg's ordered aggregate.
	notifyQ := fmt.Sprintf(`
		WITH cs AS (%[1]s),
		others AS (
			SELECT CAST(d.user_id AS VARCHAR) AS user_id,
			       array_to_string(list_transform(list_sort(list((
			           CASE WHEN d."primary" THEN 0 WHEN NOT d."primary" THEN 1 ELSE 2 END, d.email_id, d.email))), x -> x[3]), ' ') AS other_verified
			FROM read_parquet(%[2]s) d
			WHERE d.verified AND d.user_id IN (SELECT TRY_CAST(user_id AS %[3]s) FROM cs)
			  AND d.email_id NOT IN (SELECT email_id FROM cs)
			GROUP BY 1
		)
		SELECT cs.user_id, cs.email_id, cs.email, cs.domain, cs.reason, cs."primary" AS was_primary,
		       coalesce(o.other_verified, '') AS other_verified
		FROM cs LEFT JOIN others o USING (user_id)
		ORDER BY cs.user_id, cs.email_id`, flaggedQuery(s.Decisions, `user_id, email_id, email, domain, reason, "primary"`), duck.String(s.Snapshot), typ)
	return duck.CopyTo(ctx, db, notifyQ, filepath.Join(s.Dir, FileNotify), "FORMAT csv, HEADER", 0o600)
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
func protectedHits(ctx context.Context, db querier, cs string, protected []string) ([]string, error) {
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

func counts(ctx context.Context, db querier, s Spec, cs string) (Counts, error) {
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
