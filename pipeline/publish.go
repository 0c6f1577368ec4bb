package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/duck"
	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/sinks/changeset"
	"github.com/lapse-dev/lapse/sinks/lifecycledb"
	"github.com/lapse-dev/lapse/sinks/report"
)

// PublishOptions configure the publish stage.
type PublishOptions struct {
	// Paths are the night's files: publish reads its decisions, counts and
	// snapshot (notify.csv's other verified addresses), the changesets of
	// the nights before it, and writes its changeset folder and report.
	Paths  night.Paths
	Policy string
	Brake  config.BrakeConfig
	// DB, when set, receives the night's decisions, metrics and changeset
	// record, and the report is written from it.
	DB *lifecycledb.DB
	// Metrics are the figures the runner knows (cache hits, extras); the
	// address and domain counts are filled from the decisions.
	Metrics lifecycledb.Metrics
	// Now stamps the report; nil means time.Now.
	Now func() time.Time
	// Counts are classify's counts when the caller has them (its result in
	// the same run); nil reads them from the night's counts.json (a
	// resumed night). Publish never reads every address again.
	Counts *ClassifyResult
	// Unknowns is what the night could not tell, for summary.md.
	Unknowns changeset.Unknowns
}

// PublishResult is what publish wrote.
type PublishResult struct {
	Dir      string
	Manifest changeset.Manifest
	// Report is the HTML report's path, "" without a DB.
	Report string
}

// Publish writes the night's changeset (sinks/changeset), then records the
// decisions, metrics and changeset in the lifecycle database and writes the
// report. It reads the decisions (non-keep rows), the snapshot once for
// notify.csv, and takes every count over all addresses from classify
// (o.Counts or counts.json): it never reads every decision again. When the
// safety brake holds the changeset every file is still written and the
// returned error wraps ErrBlocked with the reasons.
// Re-publishing a night replaces its files and rows with the same content.
func Publish(ctx context.Context, o PublishOptions) (PublishResult, error) {
	var res PublishResult
	p, date := o.Paths, o.Paths.Date
	if _, err := night.Parse(date); err != nil {
		return res, err
	}
	if _, err := os.Stat(p.Decisions()); err != nil {
		return res, fmt.Errorf("publish: decisions: %w", err)
	}
	if _, err := os.Stat(p.Snapshot()); err != nil {
		return res, fmt.Errorf("publish: snapshot: %w", err)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var cr ClassifyResult
	if o.Counts != nil {
		cr = *o.Counts
	} else {
		c, err := ReadClassifyCounts(p.Counts(), p.Decisions(), date)
		if err != nil {
			return res, fmt.Errorf("publish: %w", err)
		}
		cr = c
	}
	res.Dir = p.Changeset()
	db, err := duck.OpenMemory()
	if err != nil {
		return res, fmt.Errorf("publish: %w", err)
	}
	defer db.Close()
	prev, err := previousChangeset(night.Dir(p.DataDir), date)
	if err != nil {
		return res, fmt.Errorf("publish: %w", err)
	}
	cs, err := changeset.Write(ctx, db, changeset.Spec{
		Dir: res.Dir, Date: date, Decisions: p.Decisions(), Snapshot: p.Snapshot(), Verified: cr.Verified,
		Previous: prev, Policy: o.Policy, Brake: o.Brake, Unknowns: o.Unknowns,
	})
	if err != nil {
		return res, fmt.Errorf("publish: %w", err)
	}
	res.Manifest = cs.Manifest
	if o.DB != nil {
		if _, err := o.DB.AppendDecisions(ctx, date, p.Decisions(), o.Policy); err != nil {
			return res, fmt.Errorf("publish: %w", err)
		}
		m := o.Metrics
		m.Addresses, m.Verified, m.Invalid, m.Domains = cr.Addresses, cr.Verified, cr.Invalid, cr.Domains
		if err := o.DB.RecordMetrics(ctx, date, m); err != nil {
			return res, fmt.Errorf("publish: %w", err)
		}
		if err := o.DB.RecordChangeset(ctx, lifecycledb.Changeset{
			Date: date, Status: cs.Manifest.Status, Policy: o.Policy,
			Flagged: cs.Manifest.Counts.Flagged, Verified: cs.Manifest.Counts.Verified,
			BlockReasons: cs.Manifest.BlockReasons, Dir: res.Dir, ManifestSHA256: cs.ManifestSHA256,
		}); err != nil {
			return res, fmt.Errorf("publish: %w", err)
		}
		res.Report = p.Report()
		if err := report.Write(ctx, o.DB.SQL(), report.Spec{Date: date, Path: res.Report, GeneratedAt: o.Now()}); err != nil {
			return res, fmt.Errorf("publish: %w", err)
		}
	}
	if cs.Blocked() {
		return res, fmt.Errorf("changeset %s written with status blocked: %w: %s", res.Dir, ErrBlocked, strings.Join(cs.Manifest.BlockReasons, "; "))
	}
	return res, nil
}

// previousChangeset finds the latest changeset.parquet of a night before
// date, "" when there is none.
func previousChangeset(data night.Dir, date string) (string, error) {
	nights, err := night.Folders(data.Changesets(), "")
	if err != nil {
		return "", fmt.Errorf("list changesets: %w", err)
	}
	for _, d := range slices.Backward(nights) {
		if d >= date {
			continue
		}
		p := filepath.Join(data.Night(d).Changeset(), changeset.FileParquet)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", nil
}
