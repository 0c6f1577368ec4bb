package lifecycledb

import (
	"context"
	"fmt"
	"strings"
)

// Metric is one nightly figure: a name, up to two labels, a value.
type Metric struct {
	Name   string
	Key    string // first label (provider, reason, …), "" when none
	Subkey string // second label (outcome, …), "" when none
	Value  float64
}

// Metrics are the night's figures the caller knows; RecordMetrics derives
// the rest from the night's observations and decisions.
type Metrics struct {
	// Addresses is every address of the snapshot (metric
	// addresses_scanned); Verified and Invalid count among them the
	// verified ones and those without a registrable domain; Domains is the
	// distinct registrable domains of the snapshot.
	Addresses, Verified, Invalid int64
	Domains                      int64
	// CacheHits is the domains answered from the cache (not looked up).
	CacheHits int64
	// Extra are further figures (deferred domains, throttles, …).
	Extra []Metric
}

// RecordMetrics replaces the night's metrics with m and the figures derived
// from the night's rows: lookups by provider and outcome (from the evidence
// of domain_observations), decisions by action, flagged by reason, state and
// TLD, and un-verified cumulative. Call it after AppendObservations and
// AppendDecisions of the night.
func (d *DB) RecordMetrics(ctx context.Context, date string, m Metrics) error {
	if err := checkDate(date); err != nil {
		return err
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record metrics %s: %w", date, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM nightly_metrics WHERE date = CAST(? AS DATE)`, date); err != nil {
		return fmt.Errorf("record metrics %s: %w", date, err)
	}
	given := append([]Metric{
		{Name: "addresses_scanned", Value: float64(m.Addresses)},
		{Name: "addresses_verified", Value: float64(m.Verified)},
		{Name: "addresses_invalid", Value: float64(m.Invalid)},
		{Name: "domains", Value: float64(m.Domains)},
		{Name: "cache_hits", Value: float64(m.CacheHits)},
	}, m.Extra...)
	// One statement for them all: each statement costs DuckDB about as
	// much as the few rows it inserts.
	values := make([]string, len(given))
	args := []any{date}
	for i, g := range given {
		n := 4*i + 2
		values[i] = fmt.Sprintf("(CAST($1 AS DATE), $%d, $%d, $%d, $%d)", n, n+1, n+2, n+3)
		args = append(args, g.Name, g.Key, g.Subkey, g.Value)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO nightly_metrics VALUES `+strings.Join(values, ", "), args...); err != nil {
		return fmt.Errorf("record metrics %s: %w", date, err)
	}
	derived := []string{
		// One lookup per evidence entry (each provider asked); an
		// observation without evidence counts once for its source.
		`INSERT INTO nightly_metrics
		 WITH obs AS (
		     SELECT source, error, evidence_json,
		            CASE WHEN evidence_json IS NULL OR trim(evidence_json) IN ('', 'null', '[]') THEN NULL
		                 ELSE from_json(evidence_json, '[{"source":"VARCHAR","error":"VARCHAR"}]') END AS ev
		     FROM domain_observations WHERE date = CAST($1 AS DATE)
		 ), looks AS (
		     SELECT e.source AS provider, e.error AS error FROM (SELECT unnest(ev) AS e FROM obs WHERE ev IS NOT NULL)
		     UNION ALL
		     SELECT source, error FROM obs WHERE ev IS NULL
		 )
		 SELECT CAST($1 AS DATE), 'lookups', coalesce(provider, ''), CASE WHEN coalesce(error, '') = '' THEN 'ok' ELSE 'error' END, count(*)
		 FROM looks GROUP BY ALL`,
		// The night's decisions are read once for every figure made of
		// them; flagged has its row even when none is.
		`INSERT INTO nightly_metrics
		 WITH d AS MATERIALIZED (
		     SELECT action, reason, coalesce(state, '') AS state, coalesce(tld, '') AS tld, action = 'unverify' AND verified AS flagged
		     FROM email_decisions WHERE date = CAST($1 AS DATE)
		 )
		 SELECT CAST($1 AS DATE), 'decisions', action, '', count(*) FROM d GROUP BY action
		 UNION ALL SELECT CAST($1 AS DATE), 'flagged_by_reason', reason, '', count(*) FROM d WHERE flagged GROUP BY reason
		 UNION ALL SELECT CAST($1 AS DATE), 'flagged_by_state', state, '', count(*) FROM d WHERE flagged GROUP BY state
		 UNION ALL SELECT CAST($1 AS DATE), 'flagged_by_tld', tld, '', count(*) FROM d WHERE flagged GROUP BY tld
		 UNION ALL SELECT CAST($1 AS DATE), 'flagged', '', '', count(*) FILTER (WHERE flagged) FROM d`,
		`INSERT INTO nightly_metrics
		 SELECT CAST($1 AS DATE), 'unverified_cumulative', '', '', coalesce(max(cumulative), 0)
		 FROM cumulative_unverified WHERE date <= CAST($1 AS DATE)`,
	}
	for _, q := range derived {
		if _, err := tx.ExecContext(ctx, q, date); err != nil {
			return fmt.Errorf("record metrics %s: %w", date, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record metrics %s: commit: %w", date, err)
	}
	return nil
}

// NightMetrics returns the night's metrics, ordered by name and labels (for
// the Prometheus textfile and the report).
func (d *DB) NightMetrics(ctx context.Context, date string) ([]Metric, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT metric, key, subkey, value FROM nightly_metrics WHERE date = CAST(? AS DATE) ORDER BY metric, key, subkey`, date)
	if err != nil {
		return nil, fmt.Errorf("night metrics %s: %w", date, err)
	}
	defer rows.Close()
	var out []Metric
	for rows.Next() {
		var m Metric
		if err := rows.Scan(&m.Name, &m.Key, &m.Subkey, &m.Value); err != nil {
			return nil, fmt.Errorf("night metrics %s: %w", date, err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// Changeset is the record of a night's changeset.
type Changeset struct {
	Date   string
	Status string // "proposed" or "blocked"
	Policy string
	// Flagged is the verified addresses proposed for un-verification;
	// Verified the verified addresses of the snapshot.
	Flagged, Verified int64
	BlockReasons      []string
	Dir               string
	ManifestSHA256    string
}

// RecordChangeset records (replacing) the night's changeset.
func (d *DB) RecordChangeset(ctx context.Context, c Changeset) error {
	if err := checkDate(c.Date); err != nil {
		return err
	}
	var reasons any
	if len(c.BlockReasons) > 0 {
		reasons = strings.Join(c.BlockReasons, "; ")
	}
	_, err := d.replaceNight(ctx, "changesets", c.Date, `INSERT INTO changesets VALUES (CAST(? AS DATE), ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.Date, c.Status, c.Policy, c.Flagged, c.Verified, reasons, c.Dir, c.ManifestSHA256, d.now())
	return err
}

// LastChangeset returns the latest changeset recorded before date, or
// ok=false when there is none.
func (d *DB) LastChangeset(ctx context.Context, before string) (c Changeset, ok bool, err error) {
	rows, err := d.db.QueryContext(ctx, `SELECT strftime(date, '%Y-%m-%d'), status, policy, flagged, verified, coalesce(dir, ''), coalesce(manifest_sha256, '')
		FROM changesets WHERE date < CAST(? AS DATE) ORDER BY date DESC LIMIT 1`, before)
	if err != nil {
		return c, false, fmt.Errorf("last changeset before %s: %w", before, err)
	}
	defer rows.Close()
	if !rows.Next() {
		return c, false, rows.Err()
	}
	err = rows.Scan(&c.Date, &c.Status, &c.Policy, &c.Flagged, &c.Verified, &c.Dir, &c.ManifestSHA256)
	return c, err == nil, err
}
