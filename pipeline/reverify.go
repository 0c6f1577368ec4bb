package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/lapse-dev/lapse/internal/duck"
	"github.com/lapse-dev/lapse/sinks/lifecycledb"
)

// reverified finds the addresses their owners verified again since an
// applied changeset un-verified them (recorded in the lifecycle database),
// writes every known re-verification to the night's night.Paths.Reverified for
// classify, and returns the domains re-verified tonight: plan looks them up
// first, whatever the cache's schedule says (ARCHITECTURE.md, "After the
// night").
func reverified(ctx context.Context, n *nightRun) ([]string, error) {
	// The night's clock at plan: after tonight's snapshot was taken, before
	// any of tonight's lookups (the latest a re-verification seen in the
	// snapshot can have happened).
	at := n.opts.Now()
	count, domains, err := n.env.db.DetectReverifications(ctx, n.opts.Date, n.paths.Snapshot(), at)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	out := n.paths.Reverified()
	var total int64
	if err := n.env.db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM reverifications WHERE date <= CAST(? AS DATE)`, n.opts.Date).Scan(&total); err != nil {
		return nil, fmt.Errorf("plan: count re-verifications: %w", err)
	}
	if total == 0 {
		if err := os.Remove(out); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("plan: %w", err)
		}
	} else if err := duck.CopyTo(ctx, n.env.db.SQL(), lifecycledb.ReverifiedQuery(n.opts.Date), out, "FORMAT parquet", 0o640); err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	n.manifest.Figures.Reverified = count
	if count > 0 {
		n.log.Info("addresses re-verified by their owners since an applied changeset: their domains are looked up afresh",
			"addresses", count, "domains", len(domains))
	}
	return domains, nil
}
