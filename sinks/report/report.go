// Package report writes the night's HTML report (DATA/reports/D/index.html)
// from the lifecycle database: one self-contained page, no external assets,
// with the night's counts, flags by reason and TLD, the top domains and
// trends over the past nights as inline SVG bars. It never shows addresses.
package report

import (
	"bytes"
	"context"
	"database/sql"
	_ "embed"
	"fmt"
	"html/template"
	"time"

	"github.com/lapse-dev/lapse/internal/atomicfile"
)

//go:embed report.html.tmpl
var pageTemplate string

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"bar": barWidth,
}).Parse(pageTemplate))

// Spec is which night to report and where.
type Spec struct {
	Date string
	Path string
	// GeneratedAt is shown in the footer.
	GeneratedAt time.Time
	// Nights is how many past nights the trends show (default 30).
	Nights int
}

// Row is one labelled count.
type Row struct {
	Label string
	Value float64
	Max   float64 // the largest value of its table, for the bar length
}

// Night is one night of a trend.
type Night struct {
	Date       string
	Flagged    float64
	Cumulative float64
	Lookups    float64
}

// Data is what the page shows.
type Data struct {
	Date        string
	GeneratedAt string
	Status      string
	Policy      string
	BlockReason string
	Flagged     float64
	Verified    float64
	Figures     []Row
	ByReason    []Row
	ByTLD       []Row
	TopDomains  []Row
	Lookups     []Row
	Trend       []Night
	TrendMax    struct{ Flagged, Cumulative, Lookups float64 }
}

func barWidth(v, max float64) float64 {
	if max <= 0 {
		return 0
	}
	return 300 * v / max
}

// Write builds the report for s.Date from the lifecycle database db.
func Write(ctx context.Context, db *sql.DB, s Spec) error {
	d, err := Load(ctx, db, s)
	if err != nil {
		return fmt.Errorf("report %s: %w", s.Date, err)
	}
	var b bytes.Buffer
	if err := page.Execute(&b, d); err != nil {
		return fmt.Errorf("report %s: %w", s.Date, err)
	}
	if err := atomicfile.WriteFile(s.Path, b.Bytes(), 0o640); err != nil {
		return fmt.Errorf("report %s: %w", s.Date, err)
	}
	return nil
}

// Load reads the report's data.
func Load(ctx context.Context, db *sql.DB, s Spec) (Data, error) {
	d := Data{Date: s.Date, GeneratedAt: s.GeneratedAt.UTC().Format(time.RFC3339), Status: "none"}
	if s.Nights <= 0 {
		s.Nights = 30
	}
	row := db.QueryRowContext(ctx, `SELECT status, policy, flagged, verified, coalesce(block_reasons, '')
		FROM changesets WHERE date = CAST(? AS DATE)`, s.Date)
	switch err := row.Scan(&d.Status, &d.Policy, &d.Flagged, &d.Verified, &d.BlockReason); err {
	case nil, sql.ErrNoRows:
	default:
		return d, err
	}
	var err error
	if d.Figures, err = rowsOf(ctx, db, `SELECT metric, value FROM nightly_metrics WHERE date = CAST(? AS DATE) AND key = '' AND subkey = ''
		ORDER BY metric`, s.Date); err != nil {
		return d, err
	}
	if d.ByReason, err = rowsOf(ctx, db, `SELECT reason, sum(flagged) AS n FROM daily_flags WHERE date = CAST(? AS DATE) GROUP BY ALL ORDER BY n DESC, reason`, s.Date); err != nil {
		return d, err
	}
	if d.ByTLD, err = rowsOf(ctx, db, `SELECT '.' || coalesce(tld, '?'), sum(flagged) AS n FROM daily_flags WHERE date = CAST(? AS DATE) GROUP BY ALL ORDER BY n DESC, 1 LIMIT 20`, s.Date); err != nil {
		return d, err
	}
	if d.TopDomains, err = rowsOf(ctx, db, `SELECT domain || ' (' || reason || ')', count(*) AS n FROM email_decisions
		WHERE date = CAST(? AS DATE) AND action = 'unverify' AND verified GROUP BY ALL ORDER BY n DESC, 1 LIMIT 20`, s.Date); err != nil {
		return d, err
	}
	if d.Lookups, err = rowsOf(ctx, db, `SELECT provider || ' ' || outcome, lookups FROM lookup_cost WHERE date = CAST(? AS DATE) ORDER BY 1`, s.Date); err != nil {
		return d, err
	}
	rows, err := db.QueryContext(ctx, `
		WITH nights AS (
			SELECT DISTINCT date FROM nightly_metrics WHERE date <= CAST(? AS DATE) ORDER BY date DESC LIMIT ?
		)
		SELECT strftime(n.date, '%Y-%m-%d'),
		       coalesce((SELECT sum(flagged) FROM daily_flags f WHERE f.date = n.date), 0),
		       coalesce((SELECT max(cumulative) FROM cumulative_unverified c WHERE c.date <= n.date), 0),
		       coalesce((SELECT sum(lookups) FROM lookup_cost l WHERE l.date = n.date), 0)
		FROM nights n ORDER BY n.date`, s.Date, s.Nights)
	if err != nil {
		return d, err
	}
	defer rows.Close()
	for rows.Next() {
		var n Night
		if err := rows.Scan(&n.Date, &n.Flagged, &n.Cumulative, &n.Lookups); err != nil {
			return d, err
		}
		d.TrendMax.Flagged = max(d.TrendMax.Flagged, n.Flagged)
		d.TrendMax.Cumulative = max(d.TrendMax.Cumulative, n.Cumulative)
		d.TrendMax.Lookups = max(d.TrendMax.Lookups, n.Lookups)
		d.Trend = append(d.Trend, n)
	}
	return d, rows.Err()
}

// rowsOf runs a two-column (label, value) query.
func rowsOf(ctx context.Context, db *sql.DB, q string, args ...any) ([]Row, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Row
	m := 0.0
	for rows.Next() {
		var r Row
		if err := rows.Scan(&r.Label, &r.Value); err != nil {
			return nil, err
		}
		m = max(m, r.Value)
		out = append(out, r)
	}
	for i := range out {
		out[i].Max = m
	}
	return out, rows.Err()
}
