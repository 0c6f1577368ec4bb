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
