package pipeline

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/lapse-dev/lapse/internal/duck"
	"github.com/lapse-dev/lapse/internal/night"
)

// historySelect is the first-seen history: per email_id, the earliest
// first_seen known before tonight. Each night writes every address's
// first_seen (first_seen.parquet), so the latest earlier night's file plus
// the snapshots taken after it give the same answer as every snapshot
// since the first night, without reading a year of snapshots every night.
// With no earlier history file every snapshot before tonight is read. It
// is "" when there is no history before tonight.
func historySelect(ctx context.Context, db *sql.DB, o ClassifyOptions) (string, error) {
	date := duck.String(o.Date)
	prevDate, prev := "", ""
	if o.History != "" {
		d, p, err := previousHistory(ctx, db, o.History, o.Date)
		if err != nil {
			return "", err
		}
		prevDate, prev = d, p
	}
	var parts []string
	if prev != "" {
		parts = append(parts, fmt.Sprintf(`SELECT email_id, first_seen FROM read_parquet(%s)`, duck.String(prev)))
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
				after = fmt.Sprintf(" AND CAST(date AS DATE) > CAST(%s AS DATE)", duck.String(prevDate))
			}
			// A snapshot dated D was taken during day D: the address existed
			// by the end of it (the conservative bound, see lifecycle.Facts).
			parts = append(parts, fmt.Sprintf(`SELECT email_id, CAST(CAST(date AS DATE) + INTERVAL 1 DAY AS TIMESTAMPTZ) AS first_seen
				FROM read_parquet(%s, hive_partitioning = true, union_by_name = true)
				WHERE CAST(date AS DATE) < CAST(%s AS DATE)%s`, duck.String(o.SnapshotGlob), date, after))
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
	return night.FolderDate(filepath.Base(filepath.Dir(path)), night.Hive)
}

// previousHistory finds the first-seen history of the latest night before
// date in data's decisions folders that has one, "" when none has: the
// night's first_seen.parquet or, for a night classified by an older lapse,
// its decisions.parquet, which then held every address with a first_seen
// column. A decisions file of the current layout (marked, non-keep rows
// only) is never read as history: without its first_seen.parquet the
// night is skipped and an earlier one, plus the snapshots after it, is used.
func previousHistory(ctx context.Context, db *sql.DB, data night.Dir, date string) (string, string, error) {
	nights, err := night.Folders(data.Decisions(), night.Hive)
	if err != nil {
		return "", "", fmt.Errorf("list %s: %w", data.Decisions(), err)
	}
	for _, d := range slices.Backward(nights) {
		if d >= date {
			continue
		}
		p := data.Night(d)
		if fileExists(p.FirstSeen()) {
			return d, p.FirstSeen(), nil
		}
		if !fileExists(p.Decisions()) {
			continue
		}
		old, err := oldLayoutDecisions(ctx, db, p.Decisions())
		if err != nil {
			return "", "", err
		}
		if old {
			return d, p.Decisions(), nil
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
