package pipeline

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/lapse-dev/lapse/internal/atomicfile"
	"github.com/lapse-dev/lapse/internal/duck"
)

// mailScheduleMeta is mail_schedule.json: the links copy the schedule
// beside it was folded from (fileKey) and that copy's figures.
type mailScheduleMeta struct {
	// Layout is mailScheduleLayout when the schedule has dep_ids.
	Layout       int    `json:"layout"`
	Links        string `json:"links"`
	LinkRows     int    `json:"link_rows"`
	Dependencies int    `json:"dependencies"`
	// DepNames are the copy's dependency domains, sorted: a row's dep_ids
	// index them (Go unions small integers, not names).
	DepNames []string `json:"dep_names"`
}

// mailScheduleLayout is the schedule's current layout: a schedule of
// another is folded again.
const mailScheduleLayout = 2

// mailSchedule is the links copy folded per address domain
// (night.Dir.MailSchedule): one row per domain with the latest next_check
// and checked_at of its links and deps, its dependency domains, sorted,
// and their positions in the meta's DepNames (dep_ids).
// A night reads a sixth of the links' rows, with no grouping, for its due
// mail paths and its dependency domains.
type mailSchedule struct {
	// Rel is the schedule as a relation (domain, next_check, checked_at,
	// deps); meta the copy's figures.
	Rel  string
	meta mailScheduleMeta
}

// openMailSchedule returns the schedule of the links copy links at path,
// folding it again when the copy changed since (or the schedule is
// missing or unreadable); ok is false when there is no links copy.
func openMailSchedule(ctx context.Context, dbf func() (*sql.DB, error), links, path string) (s mailSchedule, ok bool, err error) {
	if !fileExists(links) {
		return s, false, nil
	}
	want := fileKey(links)
	metaPath := strings.TrimSuffix(path, ".parquet") + ".json"
	kept := "SELECT domain, next_check, checked_at, deps FROM read_parquet(" + duck.String(path) + ")"
	if b, err := os.ReadFile(metaPath); err == nil && json.Unmarshal(b, &s.meta) == nil && s.meta.Links == want && want != "" &&
		s.meta.Layout == mailScheduleLayout && fileExists(path) {
		s.Rel = kept
		return s, true, nil
	}
	db, err := dbf()
	if err != nil {
		return s, false, err
	}
	f := duck.String(links)
	// A dependency's id is its rank among the copy's distinct ones, the
	// order of DepNames.
	q := `WITH n AS (SELECT dep, CAST(row_number() OVER (ORDER BY dep) - 1 AS INTEGER) AS dep_id
			FROM (SELECT DISTINCT dep FROM read_parquet(` + f + `) WHERE dep IS NOT NULL))
		SELECT domain, max(next_check) AS next_check, max(checked_at) AS checked_at,
		coalesce(list_sort(list_distinct(list(dep) FILTER (WHERE dep IS NOT NULL))), []::VARCHAR[]) AS deps,
		coalesce(list_sort(list_distinct(list(dep_id) FILTER (WHERE dep_id IS NOT NULL))), []::INTEGER[]) AS dep_ids
		FROM read_parquet(` + f + `) LEFT JOIN n USING (dep) GROUP BY domain`
	s.meta = mailScheduleMeta{Layout: mailScheduleLayout, Links: want}
	if err := db.QueryRowContext(ctx, `SELECT count(role) FROM read_parquet(?)`, links).Scan(&s.meta.LinkRows); err != nil {
		return s, false, fmt.Errorf("mail schedule: %w", err)
	}
	names, err := queryStrings(ctx, db, `SELECT DISTINCT dep FROM read_parquet(`+f+`) WHERE dep IS NOT NULL ORDER BY dep`)
	if err != nil {
		return s, false, fmt.Errorf("mail schedule: %w", err)
	}
	s.meta.DepNames = append([]string{}, names...)
	s.meta.Dependencies = len(names)
	if path == "" {
		// No file to keep it in: folded in this session.
		s.Rel = "SELECT domain, next_check, checked_at, deps FROM (" + q + ")"
		return s, true, nil
	}
	if err := duck.CopyTo(ctx, db, q+" ORDER BY domain", path, "FORMAT parquet, COMPRESSION zstd", 0o640); err != nil {
		return s, false, fmt.Errorf("mail schedule: %w", err)
	}
	b, err := json.Marshal(s.meta)
	if err != nil {
		return s, false, err
	}
	if err := atomicfile.WriteFile(metaPath, append(b, '\n'), 0o640); err != nil {
		return s, false, fmt.Errorf("mail schedule: %w", err)
	}
	s.Rel = kept
	return s, true, nil
}
