package pipeline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/lapse-dev/lapse/internal/night"
)

// Prune deletes the snapshots/date=X and decisions/date=X folders (the
// per-night folders that hold addresses) of nights more than keep-1 nights
// before date (keep nights are left, tonight's included), and returns what
// it deleted. keep <= 0 deletes nothing. Changesets (the reviewed record),
// observations and the lifecycle database hold what trends need and are
// kept. It runs after a night finished: that night's first_seen.parquet
// carries every address's first sighting forward, so the history lost with
// older folders is already in it.
func Prune(data night.Dir, date string, keep int) ([]string, error) {
	if keep <= 0 {
		return nil, nil
	}
	d, err := night.Parse(date)
	if err != nil {
		return nil, err
	}
	cutoff := d.AddDate(0, 0, -(keep - 1)).Format(time.DateOnly)
	var removed []string
	var errs []error
	for _, root := range []string{data.Snapshots(), data.Decisions()} {
		nights, err := night.Folders(root, night.Hive)
		if err != nil {
			errs = append(errs, fmt.Errorf("retention: %w", err))
			continue
		}
		for _, n := range nights {
			if n >= cutoff {
				continue
			}
			p := filepath.Join(root, night.Hive+n)
			if err := os.RemoveAll(p); err != nil {
				errs = append(errs, fmt.Errorf("retention: %w", err))
				continue
			}
			removed = append(removed, p)
		}
	}
	slices.Sort(removed)
	return removed, errors.Join(errs...)
}

// RetentionApplies reports whether retention runs after night date
// finished: not for a night dated after today (UTC, by now, with one day of
// slack, as `lapse run --allow-future` allows), which must never delete the
// real nights before it. Retention counts back from the night's own date,
// and folders dated after it are neither counted nor deleted.
func RetentionApplies(date string, now time.Time) bool {
	return date <= now.UTC().AddDate(0, 0, 1).Format(time.DateOnly)
}
