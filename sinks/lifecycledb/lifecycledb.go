// Package lifecycledb is lapse's lifecycle database (DATA/lapse.duckdb):
// runs and stages of the nightly job, the history of domain observations,
// email decisions (ids and domains, never raw addresses), nightly metrics
// and changesets, with documented views a data team queries for trends.
//
// The schema is versioned by embedded migrations (migrations/NNN_*.sql),
// applied in order in one transaction and recorded in schema_version.
// DuckDB allows one writing process per file: Open of a file another lapse
// process holds fails with ErrInUse. Everything written per night is
// replaced when that night is written again, so re-runs are idempotent.
package lifecycledb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/lapse-dev/lapse/cache"
	"github.com/lapse-dev/lapse/internal/duck"
	"github.com/lapse-dev/lapse/internal/night"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// ErrInUse is returned by Open when another process holds the database.
var ErrInUse = errors.New("lapse.duckdb is in use by another lapse process")

// DB is an open lifecycle database.
type DB struct {
	db   *sql.DB
	conn *duckdb.Connector
	path string
	// Now is the clock for run and stage times; tests replace it.
	Now func() time.Time
}

// Open opens (creating when missing) the database at path and migrates it.
// An empty path opens an in-memory database (tests, notebooks).
func Open(path string) (*DB, error) {
	c, err := duckdb.NewConnector(path, func(ex driver.ExecerContext) error {
		// Timestamps are UTC everywhere in lapse.
		_, err := ex.ExecContext(context.Background(), "SET TimeZone = 'UTC'", nil)
		return err
	})
	if err != nil {
		if isLockError(err) {
			return nil, fmt.Errorf("open %s: %w (wait for it to finish; check `ps` for a running lapse)", path, ErrInUse)
		}
		return nil, fmt.Errorf("open lifecycle database %s: %w", path, err)
	}
	d := &DB{db: sql.OpenDB(c), conn: c, path: path, Now: time.Now}
	if err := d.migrate(context.Background()); err != nil {
		d.Close()
		return nil, err
	}
	if err := restrictMode(path); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// FileMode is the mode of lapse.duckdb and its write-ahead log: ids and
// domains, never addresses. DuckDB creates both with the process umask
// (lapse runs with at least 027) and re-creates the log after every
// checkpoint; Open sets the mode of what exists, a database made by an
// older lapse included.
const FileMode = 0o640

func restrictMode(path string) error {
	if path == "" {
		return nil
	}
	for _, p := range []string{path, path + ".wal"} {
		if err := os.Chmod(p, FileMode); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("lifecycle database: set the mode of %s to %04o: %w", p, FileMode, err)
		}
	}
	return nil
}

func isLockError(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "Could not set lock") || strings.Contains(msg, "Conflicting lock")
}

// Close closes the database and releases its file lock.
func (d *DB) Close() error {
	err := d.db.Close()
	if cerr := d.conn.Close(); err == nil {
		err = cerr
	}
	return err
}

// SQL is the underlying handle, for the report and notebooks (read-only use).
func (d *DB) SQL() *sql.DB { return d.db }

// Path is the database file.
func (d *DB) Path() string { return d.path }

func (d *DB) now() time.Time { return d.Now().UTC() }

type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, n := range names {
		base := path.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a number and '_'", base)
		}
		b, err := migrationFS.ReadFile(n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{v, base, string(b)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	return ms, nil
}

// migrate applies the pending migrations in one transaction.
func (d *DB) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("lifecycle database migrations: %w", err)
	}
	if _, err := d.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)`); err != nil {
		return fmt.Errorf("lifecycle database %s: create schema_version: %w", d.path, err)
	}
	cur, err := d.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if n := ms[len(ms)-1].version; cur > n {
		return fmt.Errorf("lifecycle database %s has schema version %d, newer than this lapse knows (%d): upgrade lapse", d.path, cur, n)
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("lifecycle database %s: begin migration: %w", d.path, err)
	}
	defer tx.Rollback()
	for _, m := range ms {
		if m.version <= cur {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("lifecycle database %s: migration %s: %w", d.path, m.name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version VALUES (?, ?, ?)`, m.version, m.name, d.now()); err != nil {
			return fmt.Errorf("lifecycle database %s: record migration %s: %w", d.path, m.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("lifecycle database %s: commit migrations: %w", d.path, err)
	}
	return nil
}

// SchemaVersion is the latest applied migration (0 for none).
func (d *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := d.db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("lifecycle database %s: read schema version: %w", d.path, err)
	}
	return v, nil
}

// checkDate validates a night's date, written YYYY-MM-DD everywhere.
func checkDate(date string) error {
	if !night.Valid(date) {
		return fmt.Errorf("night date %q: want YYYY-MM-DD", date)
	}
	return nil
}

// BeginRun records the start of a run of the night date at time at and
// returns its id.
func (d *DB) BeginRun(ctx context.Context, date string, at time.Time) (int64, error) {
	if err := checkDate(date); err != nil {
		return 0, err
	}
	var id int64
	if err := d.db.QueryRowContext(ctx, `INSERT INTO runs (run_id, date, started_at, outcome) VALUES (nextval('run_ids'), CAST(? AS DATE), ?, ?) RETURNING run_id`,
		date, at.UTC(), night.OutcomeRunning).Scan(&id); err != nil {
		return 0, fmt.Errorf("begin run %s: %w", date, err)
	}
	return id, nil
}

// Supersede marks the night's runs so far as superseded: LastFinishedStage
// and NightFinished ignore them. A forced re-run (--force) calls it before
// BeginRun, so a forced run that dies early resumes from its own stages.
func (d *DB) Supersede(ctx context.Context, date string) error {
	if err := checkDate(date); err != nil {
		return err
	}
	if _, err := d.db.ExecContext(ctx, `UPDATE runs SET superseded = true WHERE date = CAST(? AS DATE)`, date); err != nil {
		return fmt.Errorf("supersede runs of %s: %w", date, err)
	}
	return nil
}

// FinishRun records the end of a run at time at: outcome is
// night.OutcomeOK, OutcomeFailed, OutcomeBlocked or OutcomeDegraded (the
// failing stage holds the error).
func (d *DB) FinishRun(ctx context.Context, runID int64, outcome string, at time.Time) error {
	if _, err := d.db.ExecContext(ctx, `UPDATE runs SET finished_at = ?, outcome = ? WHERE run_id = ?`,
		at.UTC(), outcome, runID); err != nil {
		return fmt.Errorf("finish run %d: %w", runID, err)
	}
	return nil
}

// RecordStage records (replacing) one stage of a run in one call, for a
// runner that records a stage once it ended.
func (d *DB) RecordStage(ctx context.Context, runID int64, r night.StageRecord) error {
	var e any
	if r.Error != "" {
		e = r.Error
	}
	var fin any
	if !r.FinishedAt.IsZero() {
		fin = r.FinishedAt.UTC()
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record stage %s of run %d: %w", r.Stage, runID, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM stages WHERE run_id = ? AND stage = ?`, runID, r.Stage); err != nil {
		return fmt.Errorf("record stage %s of run %d: %w", r.Stage, runID, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO stages VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		runID, r.Stage, r.StartedAt.UTC(), fin, r.RowsIn, r.RowsOut, r.Outcome, e); err != nil {
		return fmt.Errorf("record stage %s of run %d: %w", r.Stage, runID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record stage %s of run %d: %w", r.Stage, runID, err)
	}
	return nil
}

// LastFinishedStage is the stage of the night date that finished (ok or
// blocked) last, in the latest run not superseded by a forced re-run that
// finished any stage, or "" when none did. The runner resumes after it.
func (d *DB) LastFinishedStage(ctx context.Context, date string) (string, error) {
	if err := checkDate(date); err != nil {
		return "", err
	}
	var stage string
	err := d.db.QueryRowContext(ctx, `
		SELECT s.stage FROM stages s JOIN runs r USING (run_id)
		WHERE r.date = CAST(? AS DATE) AND NOT r.superseded AND s.outcome IN ('ok', 'blocked')
		ORDER BY s.run_id DESC, s.finished_at DESC LIMIT 1`, date).Scan(&stage)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("last finished stage of %s: %w", date, err)
	}
	return stage, nil
}

// NightFinished reports whether a run of the night (not superseded) ended ok,
// blocked or degraded: re-running it is a no-op unless forced.
func (d *DB) NightFinished(ctx context.Context, date string) (bool, error) {
	var n int
	if err := d.db.QueryRowContext(ctx, `SELECT count(*) FROM runs WHERE date = CAST(? AS DATE) AND NOT superseded AND outcome IN ('ok', 'blocked', 'degraded')`, date).Scan(&n); err != nil {
		return false, fmt.Errorf("night %s finished: %w", date, err)
	}
	return n > 0, nil
}

// redact masks anything shaped like an address in provider text (an error
// quoting a registry's abuse contact, say): the database keeps no addresses.
// The regular expression runs only on values with an @, which it needs to
// match: on the rest (nearly all) it was most of the cost of loading a
// night's decisions (28,000 user ids: 6.1 ms, 2.1 ms without).
func redact(expr string) string {
	return fmt.Sprintf(`CASE WHEN contains(%[1]s, '@') THEN regexp_replace(%[1]s, '[^\s"]+@[^\s"]+', '[address]', 'g') ELSE %[1]s END`, expr)
}

// AppendObservations loads the night's lookups (observations/date=D/
// domains.parquet) into domain_observations, replacing the night's rows.
// It returns the rows loaded.
func (d *DB) AppendObservations(ctx context.Context, date, parquetPath string) (int64, error) {
	if err := checkDate(date); err != nil {
		return 0, err
	}
	cols, err := duck.Columns(ctx, d.db, parquetPath)
	if err != nil {
		return 0, fmt.Errorf("append observations %s: %w", date, err)
	}
	if !cols.Has("domain") {
		return 0, fmt.Errorf("append observations %s: %s has no domain column", date, parquetPath)
	}
	names, exprs, err := d.observationColumns(ctx, cols)
	if err != nil {
		return 0, fmt.Errorf("append observations %s: %w", date, err)
	}
	return d.replaceNight(ctx, "domain_observations", date,
		`INSERT INTO domain_observations (date, domain, tld, `+strings.Join(names, ", ")+`)
		SELECT CAST(? AS DATE), "domain", regexp_extract("domain", '[^.]+$'), `+strings.Join(exprs, ", ")+` FROM read_parquet(?)`,
		date, parquetPath)
}

// observationColumns are the columns of the states files (cache.StateColumns)
// that domain_observations keeps, and for each the expression reading it
// from a file with columns cols (NULL where the file lacks it); provider
// text is redacted.
func (d *DB) observationColumns(ctx context.Context, cols duck.Cols) (names, exprs []string, err error) {
	// pragma_table_info reads the one table; information_schema.columns
	// lists every column of every catalog first (6 ms of a warm night's
	// 8 ms here) and would match a table of that name in another schema.
	rows, err := d.db.QueryContext(ctx, `SELECT name FROM pragma_table_info('domain_observations')`)
	if err != nil {
		return nil, nil, fmt.Errorf("columns of domain_observations: %w", err)
	}
	defer rows.Close()
	kept := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, nil, fmt.Errorf("columns of domain_observations: %w", err)
		}
		kept[n] = true
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("columns of domain_observations: %w", err)
	}
	for _, c := range cache.StateColumns {
		if c.Name == cache.ColDomain || !kept[c.Name] {
			continue
		}
		e := cols.Or(c.Name, c.SQL)
		if c.SQL == "VARCHAR" {
			e = redact(e)
		}
		names, exprs = append(names, duck.Ident(c.Name)), append(exprs, e)
	}
	return names, exprs, nil
}

// AppendDecisions loads the night's decisions (classify's Parquet output)
// into email_decisions, replacing the night's rows. Only ids, domains and
// verdicts are kept, never the address (a user id shaped like an address
// is masked too); keep decisions are not stored (they are counted in
// nightly_metrics).
func (d *DB) AppendDecisions(ctx context.Context, date, parquetPath, policy string) (int64, error) {
	if err := checkDate(date); err != nil {
		return 0, err
	}
	return d.replaceNight(ctx, "email_decisions", date, `
		INSERT INTO email_decisions
		SELECT CAST(? AS DATE), email_id, `+redact("CAST(user_id AS VARCHAR)")+`, verified, domain, tld, state, action, reason, ?
		FROM read_parquet(?) WHERE action <> 'keep'`, date, policy, parquetPath)
}

// replaceNight deletes a night's rows of table and runs insert, in one
// transaction.
func (d *DB) replaceNight(ctx context.Context, table, date, insert string, args ...any) (int64, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", table, date, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE date = CAST(? AS DATE)`, date); err != nil {
		return 0, fmt.Errorf("%s %s: delete earlier rows: %w", table, date, err)
	}
	res, err := tx.ExecContext(ctx, insert, args...)
	if err != nil {
		return 0, fmt.Errorf("%s %s: load: %w", table, date, err)
	}
	n, _ := res.RowsAffected()
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("%s %s: commit: %w", table, date, err)
	}
	return n, nil
}

// AppendMailLinks records the links of the address domains whose mail
// path night date looked up (a links file, cache.LinksSchema), replacing
// what an earlier run of the night recorded.
func (d *DB) AppendMailLinks(ctx context.Context, date, parquetPath string) (int64, error) {
	if err := checkDate(date); err != nil {
		return 0, err
	}
	return d.replaceNight(ctx, "mail_links", date,
		`INSERT INTO mail_links (date, domain, checked_at, mx_outcome, ns_outcome, null_mx, ns_from_referral, role, host, dep, pref, first_seen)
		SELECT CAST(? AS DATE), domain, checked_at, mx_outcome, ns_outcome, null_mx, ns_from_referral, role, host, dep, pref, first_seen
		FROM read_parquet(?)`, date, parquetPath)
}
