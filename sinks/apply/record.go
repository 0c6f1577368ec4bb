package apply

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/lapse-dev/lapse/cache"
	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/sinks/lifecycledb"
)

// RecordOptions say where the lifecycle database and the cache are.
type RecordOptions struct {
	// DataDir holds lapse.duckdb.
	DataDir string
	// CacheDir is the domain cache ("" or a missing folder: nothing to
	// mark). Cache configures it (its clock, its logger).
	CacheDir string
	Cache    cache.Options
}

// Record writes a finished apply or revert (not a dry run) to the
// lifecycle database: the run, and the changes from the target's audit
// rows (r.Changes), so re-running an apply that crashed after its
// PostgreSQL commits records them all. After an apply it tells the cache
// that the domains' addresses are un-verified. The approval apply applied
// is recorded too. A second Record of the
// same result adds nothing.
func Record(ctx context.Context, o RecordOptions, r Result) error {
	if r.DryRun != nil {
		return errors.New("record: a dry run changed nothing to record")
	}
	path := night.Dir(o.DataDir).DB()
	db, err := lifecycledb.Open(path)
	if err != nil {
		if errors.Is(err, lifecycledb.ErrInUse) {
			return fmt.Errorf("%s is changed and audited, but recording it in the lifecycle database failed: %w: a lapse night is probably running; run lapse %s again once it finished: it changes nothing more and records what was done",
				r.Target, err, r.Action)
		}
		return fmt.Errorf("%s is changed and audited, but recording it failed: %w; run lapse %s again to record it", r.Target, err, r.Action)
	}
	defer db.Close()
	if err := record(ctx, db, o, r); err != nil {
		return fmt.Errorf("%s is changed and audited, but recording it in %s failed: %w; run lapse %s again to record it", r.Target, path, err, r.Action)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if r.Action != ActionApply || o.CacheDir == "" || len(r.Changes) == 0 {
		return nil
	}
	if _, err := os.Stat(o.CacheDir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	seen := map[string]bool{}
	var domains []string
	for _, c := range r.Changes {
		if c.Domain != "" && !seen[c.Domain] {
			seen[c.Domain] = true
			domains = append(domains, c.Domain)
		}
	}
	slices.Sort(domains)
	c, err := cache.Open(o.CacheDir, o.Cache)
	if err != nil {
		if errors.Is(err, cache.ErrLocked) {
			return fmt.Errorf("%s is changed and recorded, but the cache could not be told the addresses are un-verified: %w (a lapse night is probably running); run lapse apply again once it finished", r.Target, err)
		}
		return fmt.Errorf("mark the changeset's domains un-verified in the cache: %w", err)
	}
	if err := c.MarkUnverified(ctx, domains); err != nil {
		c.Close()
		return fmt.Errorf("mark the changeset's domains un-verified in the cache: %w", err)
	}
	return c.Close()
}

func record(ctx context.Context, db *lifecycledb.DB, o RecordOptions, r Result) error {
	if a := r.Approval; a.ManifestSHA256 != "" {
		if err := db.RecordApproval(ctx, lifecycledb.Approval{Date: a.Date, ManifestSHA256: a.ManifestSHA256, Status: a.Status,
			Flagged: a.Flagged, By: a.By, Note: a.Note, OverrideBrake: a.OverrideBrake, ApprovedAt: a.ApprovedAt}); err != nil {
			return err
		}
	}
	switch r.Action {
	case ActionApply:
		rows := make([]lifecycledb.AppliedChange, len(r.Changes))
		for i, c := range r.Changes {
			rows[i] = lifecycledb.AppliedChange{EmailID: c.EmailID, UserID: c.UserID, Domain: c.Domain, Reason: c.Reason, AppliedAt: c.At}
		}
		if err := db.RecordApplied(ctx, r.Date, r.ManifestSHA256, rows); err != nil {
			return err
		}
	case ActionRevert:
		byAt := map[time.Time][]int64{}
		for _, c := range r.Changes {
			byAt[c.At] = append(byAt[c.At], c.EmailID)
		}
		for at, ids := range byAt {
			if err := db.RecordReverted(ctx, r.ManifestSHA256, ids, at); err != nil {
				return err
			}
		}
	}
	if r.Batches == 0 { // a revert of an apply that changed nothing
		return nil
	}
	// One row per run that did something: a run recording the totals
	// already recorded (a re-run that changed nothing, or one healing a
	// crash between the account database and here) adds none.
	var n int
	if err := db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM applies WHERE manifest_sha256 = ? AND action = ?
		AND changed = ? AND skipped = ?`, r.ManifestSHA256, r.Action, r.Changed, r.Skipped).Scan(&n); err != nil {
		return fmt.Errorf("read applies: %w", err)
	}
	if n > 0 {
		return nil
	}
	return db.RecordApplyRun(ctx, lifecycledb.ApplyRun{Date: r.Date, ManifestSHA256: r.ManifestSHA256, Action: r.Action,
		Changed: r.Changed, Skipped: r.Skipped, By: r.By, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt})
}
