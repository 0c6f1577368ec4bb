package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/duck"
	"github.com/lapse-dev/lapse/sinks/changeset"
	"github.com/lapse-dev/lapse/sinks/lifecycledb"
	"github.com/lapse-dev/lapse/sinks/report"
)

// ErrBlocked is wrapped by the error of a night whose changeset the safety
// brake held: the files are written with status blocked and the CLI exits 3.
var ErrBlocked = errors.New("blocked by the safety brake")

// ErrDegraded is wrapped by the error of a night that finished and
// published, but whose share of unknown domains is over
// resolve.max_unknown_fraction: the CLI exits 4.
var ErrDegraded = errors.New("night degraded")

// ReportFile is the night's HTML report.
func ReportFile(dataDir, date string) string {
	return filepath.Join(dataDir, "reports", date, "index.html")
}

// PublishOptions configure the publish stage.
type PublishOptions struct {
	DataDir string
	Date    string
	// Decisions is classify's output (DecisionsFile when empty).
	Decisions string
	// Snapshot is the night's snapshot, for notify.csv's other verified
	// addresses (NightPaths.Snapshot when empty).
	Snapshot string
	Policy   string
	Brake    config.BrakeConfig
	// DB, when set, receives the night's decisions, metrics and changeset
	// record, and the report is written from it.
	DB *lifecycledb.DB
	// Metrics are the figures the runner knows (cache hits, extras); the
	// address and domain counts are filled from the decisions.
	Metrics lifecycledb.Metrics
	// Now stamps the report; nil means time.Now.
	Now func() time.Time
	// Counts are classify's counts when the caller has them (its result in
	// the same run); nil reads them from the counts.json beside Decisions
	// (a resumed night). Publish never reads every address again.
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
	if _, err := ParseDate(o.Date); err != nil {
		return res, err
	}
	if o.Decisions == "" {
		o.Decisions = DecisionsFile(o.DataDir, o.Date)
	}
	if _, err := os.Stat(o.Decisions); err != nil {
		return res, fmt.Errorf("publish: decisions: %w", err)
	}
	if o.Snapshot == "" {
		o.Snapshot = NightPaths{DataDir: o.DataDir, Date: o.Date}.Snapshot()
	}
	if _, err := os.Stat(o.Snapshot); err != nil {
		return res, fmt.Errorf("publish: snapshot: %w", err)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var cr ClassifyResult
	if o.Counts != nil {
		cr = *o.Counts
	} else {
		c, err := ReadClassifyCounts(o.Decisions, o.Date)
		if err != nil {
			return res, fmt.Errorf("publish: %w", err)
		}
		cr = c
	}
	res.Dir = filepath.Join(o.DataDir, "changesets", o.Date)
	db, err := duck.OpenMemory()
	if err != nil {
		return res, fmt.Errorf("publish: %w", err)
	}
	defer db.Close()
	prev, err := previousChangeset(o.DataDir, o.Date)
	if err != nil {
		return res, fmt.Errorf("publish: %w", err)
	}
	cs, err := changeset.Write(ctx, db, changeset.Spec{
		Dir: res.Dir, Date: o.Date, Decisions: o.Decisions, Snapshot: o.Snapshot, Verified: cr.Verified,
		Previous: prev, Policy: o.Policy, Brake: o.Brake, Unknowns: o.Unknowns,
	})
	if err != nil {
		return res, fmt.Errorf("publish: %w", err)
	}
	res.Manifest = cs.Manifest
	if o.DB != nil {
		if _, err := o.DB.AppendDecisions(ctx, o.Date, o.Decisions, o.Policy); err != nil {
			return res, fmt.Errorf("publish: %w", err)
		}
		m := o.Metrics
		m.AddressesScanned, m.AddressesVerified, m.AddressesInvalid, m.Domains = cr.Rows, cr.Verified, cr.Invalid, cr.Domains
		if err := o.DB.RecordMetrics(ctx, o.Date, m); err != nil {
			return res, fmt.Errorf("publish: %w", err)
		}
		if err := o.DB.RecordChangeset(ctx, lifecycledb.Changeset{
			Date: o.Date, Status: cs.Manifest.Status, Policy: o.Policy,
			Flagged: cs.Manifest.Counts.Flagged, Verified: cs.Manifest.Counts.Verified,
			BlockReasons: cs.Manifest.BlockReasons, Dir: res.Dir, ManifestSHA256: cs.ManifestSHA256,
		}); err != nil {
			return res, fmt.Errorf("publish: %w", err)
		}
		res.Report = ReportFile(o.DataDir, o.Date)
		if err := report.Write(ctx, o.DB.SQL(), report.Spec{Date: o.Date, Path: res.Report, GeneratedAt: o.Now()}); err != nil {
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
func previousChangeset(dataDir, date string) (string, error) {
	dir := filepath.Join(dataDir, "changesets")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("list changesets: %w", err)
	}
	var nights []string
	for _, e := range ents {
		if _, err := time.Parse(time.DateOnly, e.Name()); err == nil && e.IsDir() && e.Name() < date {
			nights = append(nights, e.Name())
		}
	}
	slices.Sort(nights)
	for i := len(nights) - 1; i >= 0; i-- {
		p := filepath.Join(dir, nights[i], changeset.FileParquet)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", nil
}
