package lifecycledb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Approval is the record of a reviewer's approval of a changeset.
type Approval struct {
	Date           string
	ManifestSHA256 string
	Status         string
	Flagged        int64
	By, Note       string
	OverrideBrake  bool
	ApprovedAt     time.Time
}

// RecordApproval records an approval; the same (night, sha256, reviewer,
// time) recorded twice is one row.
func (d *DB) RecordApproval(ctx context.Context, a Approval) error {
	if err := checkDate(a.Date); err != nil {
		return err
	}
	var note any
	if a.Note != "" {
		note = a.Note
	}
	_, err := d.db.ExecContext(ctx, `INSERT INTO approvals
		SELECT CAST(? AS DATE), ?, ?, ?, ?, ?, ?, ?
		WHERE NOT EXISTS (SELECT 1 FROM approvals WHERE date = CAST(? AS DATE) AND manifest_sha256 = ? AND approved_by = ? AND approved_at = ?)`,
		a.Date, a.ManifestSHA256, a.Status, a.Flagged, a.By, note, a.OverrideBrake, a.ApprovedAt.UTC(),
		a.Date, a.ManifestSHA256, a.By, a.ApprovedAt.UTC())
	if err != nil {
		return fmt.Errorf("record approval of %s: %w", a.Date, err)
	}
	return nil
}

// ApplyRun is one finished `lapse apply` or `lapse revert`.
type ApplyRun struct {
	Date, ManifestSHA256 string
	Action               string // "apply" or "revert"
	Changed, Skipped     int64
	By                   string
	StartedAt            time.Time
	FinishedAt           time.Time
}

// RecordApplyRun records one apply or revert run.
func (d *DB) RecordApplyRun(ctx context.Context, r ApplyRun) error {
	if err := checkDate(r.Date); err != nil {
		return err
	}
	_, err := d.db.ExecContext(ctx, `INSERT INTO applies VALUES (CAST(? AS DATE), ?, ?, ?, ?, ?, ?, ?)`,
		r.Date, r.ManifestSHA256, r.Action, r.Changed, r.Skipped, r.By, r.StartedAt.UTC(), r.FinishedAt.UTC())
	if err != nil {
		return fmt.Errorf("record %s of %s: %w", r.Action, r.Date, err)
	}
	return nil
}

// AppliedChange is one address an applied changeset un-verified.
type AppliedChange struct {
	EmailID   int64
	UserID    string
	Domain    string
	Reason    string
	AppliedAt time.Time
}

// RecordApplied records the addresses a changeset's apply un-verified.
// Idempotent: an address already recorded for the same manifest is kept
// as it is (apply re-run after a crash re-records its earlier batches).
func (d *DB) RecordApplied(ctx context.Context, date, sha string, rows []AppliedChange) error {
	if err := checkDate(date); err != nil {
		return err
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record applied changes of %s: %w", date, err)
	}
	defer tx.Rollback()
	const chunk = 1000
	for lo := 0; lo < len(rows); lo += chunk {
		part := rows[lo:min(lo+chunk, len(rows))]
		var b strings.Builder
		args := make([]any, 0, 7*len(part)+1)
		b.WriteString(`INSERT INTO applied_changes SELECT v.* FROM (VALUES `)
		for i, r := range part {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(CAST(? AS DATE), ?, CAST(? AS BIGINT), ?, ?, ?, CAST(? AS TIMESTAMPTZ), CAST(NULL AS TIMESTAMPTZ))")
			args = append(args, date, sha, r.EmailID, nullable(r.UserID), nullable(r.Domain), r.Reason, r.AppliedAt.UTC())
		}
		b.WriteString(`) v(date, manifest_sha256, email_id, user_id, domain, reason, applied_at, reverted_at)
			WHERE NOT EXISTS (SELECT 1 FROM applied_changes a WHERE a.manifest_sha256 = v.manifest_sha256 AND a.email_id = v.email_id)`)
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("record applied changes of %s: %w", date, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record applied changes of %s: %w", date, err)
	}
	return nil
}

// RecordReverted marks the addresses revert restored (for one manifest).
func (d *DB) RecordReverted(ctx context.Context, sha string, emailIDs []int64, at time.Time) error {
	const chunk = 1000
	for lo := 0; lo < len(emailIDs); lo += chunk {
		part := emailIDs[lo:min(lo+chunk, len(emailIDs))]
		ph := strings.TrimSuffix(strings.Repeat("?, ", len(part)), ", ")
		args := []any{at.UTC(), sha}
		for _, id := range part {
			args = append(args, id)
		}
		if _, err := d.db.ExecContext(ctx, `UPDATE applied_changes SET reverted_at = ?
			WHERE manifest_sha256 = ? AND reverted_at IS NULL AND email_id IN (`+ph+`)`, args...); err != nil {
			return fmt.Errorf("record reverted changes: %w", err)
		}
	}
	return nil
}

// LastApplied is the latest changeset night before date that an apply
// changed anything for, ok=false when none: review compares against it.
func (d *DB) LastApplied(ctx context.Context, before string) (date, sha string, ok bool, err error) {
	row := d.db.QueryRowContext(ctx, `SELECT strftime(date, '%Y-%m-%d'), manifest_sha256 FROM applies
		WHERE action = 'apply' AND changed > 0 AND date < CAST(? AS DATE) ORDER BY date DESC, finished_at DESC LIMIT 1`, before)
	switch err := row.Scan(&date, &sha); {
	case err == nil:
		return date, sha, true, nil
	case errors.Is(err, sql.ErrNoRows):
		return "", "", false, nil
	default:
		return "", "", false, fmt.Errorf("last applied changeset before %s: %w", before, err)
	}
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// DetectReverifications records tonight's re-verifications: verified
// addresses of tonight's snapshot that an applied (and not reverted)
// changeset un-verified before the snapshot was taken (snapshotAt), and
// that no earlier night recorded as re-verified since that apply. The
// re-verification time is the snapshot's verified_at when it is later than
// the apply, else snapshotAt (the latest it can have been: the owner's own
// renewal or re-registration before it stays theirs). A re-run of the same
// night replaces its rows. It returns the number of addresses and the
// distinct domains re-verified tonight: the night looks those up afresh.
func (d *DB) DetectReverifications(ctx context.Context, date, snapshot string, snapshotAt time.Time) (int64, []string, error) {
	if err := checkDate(date); err != nil {
		return 0, nil, err
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("re-verifications of %s: %w", date, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM reverifications WHERE date = CAST(? AS DATE)`, date); err != nil {
		return 0, nil, fmt.Errorf("re-verifications of %s: %w", date, err)
	}
	var applied int64
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM applied_changes WHERE reverted_at IS NULL`).Scan(&applied); err != nil {
		return 0, nil, fmt.Errorf("re-verifications of %s: %w", date, err)
	}
	if applied == 0 {
		// Nothing was ever applied: no snapshot read.
		return 0, nil, tx.Commit()
	}
	at := snapshotAt.UTC()
	res, err := tx.ExecContext(ctx, `
		INSERT INTO reverifications
		WITH last_apply AS (
			SELECT email_id, arg_max(date, applied_at) AS date, max(applied_at) AS applied_at,
			       arg_max(user_id, applied_at) AS user_id, arg_max(domain, applied_at) AS domain
			FROM applied_changes
			WHERE reverted_at IS NULL AND date < CAST(? AS DATE) AND applied_at < CAST(? AS TIMESTAMPTZ)
			GROUP BY email_id
		)
		SELECT CAST(? AS DATE), s.email_id, a.user_id, coalesce(s.domain, a.domain), a.date,
		       CASE WHEN CAST(s.verified_at AS TIMESTAMPTZ) > a.applied_at AND CAST(s.verified_at AS TIMESTAMPTZ) <= CAST(? AS TIMESTAMPTZ)
		            THEN CAST(s.verified_at AS TIMESTAMPTZ) ELSE CAST(? AS TIMESTAMPTZ) END
		FROM read_parquet(?) s JOIN last_apply a USING (email_id)
		WHERE s.verified AND NOT EXISTS (
			SELECT 1 FROM reverifications r WHERE r.email_id = a.email_id AND r.unverified_on = a.date AND r.date < CAST(? AS DATE))`,
		date, at, date, at, at, snapshot, date)
	if err != nil {
		return 0, nil, fmt.Errorf("re-verifications of %s: %w", date, err)
	}
	n, _ := res.RowsAffected()
	rows, err := tx.QueryContext(ctx, `SELECT DISTINCT domain FROM reverifications WHERE date = CAST(? AS DATE) AND domain IS NOT NULL ORDER BY 1`, date)
	if err != nil {
		return 0, nil, fmt.Errorf("re-verifications of %s: %w", date, err)
	}
	var domains []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return 0, nil, err
		}
		domains = append(domains, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, nil, err
	}
	if err := tx.Commit(); err != nil {
		return 0, nil, fmt.Errorf("re-verifications of %s: %w", date, err)
	}
	return n, domains, nil
}

// ReverifiedQuery selects (email_id, reverified_at) of every
// re-verification recorded up to date, the latest per address: what
// classify reads.
func ReverifiedQuery(date string) string {
	return fmt.Sprintf(`SELECT email_id, max(reverified_at) AS reverified_at FROM reverifications
		WHERE date <= CAST('%s' AS DATE) GROUP BY email_id ORDER BY email_id`, strings.ReplaceAll(date, "'", "''"))
}
