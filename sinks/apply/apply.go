// Package apply makes a reviewed changeset real, like a bank transfer:
// `lapse apply` un-verifies exactly the approved changeset's rows in the
// account table, each only if its address is unchanged and still verified
// since the snapshot (a guard per row), in bounded batches that each
// commit with one audit row per change and a progress record, so a crash
// resumes exactly where it stopped and no row is ever changed twice.
// Re-applying changes nothing; two applies at once are refused (or wait).
// `lapse revert` restores exactly the rows apply changed that are still as
// apply left them.
//
// The driver (Apply, Revert) is the same for every Target: PostgreSQL
// (OpenPostgres, the registry's database) and an in-memory table
// (NewMemoryTarget, the simulator's accounts in `lapse demo`). Record then
// writes what was applied to the lifecycle database and the cache.
package apply

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/lapse-dev/lapse/sinks/changeset"
)

// ErrStale is returned (wrapped) when the changeset's night is older than
// the allowed age.
var ErrStale = errors.New("changeset is stale")

// ErrReverted is returned (wrapped) when apply is asked to apply a
// changeset that was reverted.
var ErrReverted = errors.New("changeset was reverted")

// ErrNotApplied is returned (wrapped) when revert finds nothing that an
// apply of the changeset did.
var ErrNotApplied = errors.New("changeset was never applied")

// Options configure one apply or revert.
type Options struct {
	// Dir is the changeset folder (DATA/changesets/D).
	Dir    string
	Target Target
	// By names who runs it (the audit rows' applied_by).
	By     string
	DryRun bool
	// MaxAge refuses (apply) a changeset whose night is older, unless
	// AllowStale; 0 allows any age.
	MaxAge     time.Duration
	AllowStale bool
	// Reason is written to the reason column (apply.reason).
	Reason string
	// WriteDomainStatus also writes the domain status columns (apply).
	WriteDomainStatus bool
	// BatchSize rows per transaction (default 5000).
	BatchSize int
	// Wait for another apply's lock instead of stopping.
	Wait bool
	Now  func() time.Time
	Log  *slog.Logger
	// Verdicts, when set, receives a dry run's verdict per row as CSV
	// (email_id,verdict): unverify/restore, done, or the skip reason.
	Verdicts io.Writer
}

func (o *Options) defaults() error {
	if o.Target == nil {
		return errors.New("apply: no target")
	}
	if strings.TrimSpace(o.By) == "" {
		return errors.New("apply: --by is empty: name who applies the changeset (it is written to every audit row)")
	}
	o.By = strings.TrimSpace(o.By)
	if o.BatchSize < 1 {
		o.BatchSize = 5000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

func (o *Options) now() time.Time { return o.Now().UTC().Truncate(time.Microsecond) }

// Report is applied.json (or reverted.json): what the changeset's apply
// (or revert) changed and skipped, over every run that worked on it. It
// holds ids, no addresses.
type Report struct {
	Date           string `json:"date"`
	ManifestSHA256 string `json:"manifest_sha256"`
	Action         string `json:"action"`
	Target         string `json:"target"`
	// Rows is the rows asked: the changeset's (apply), apply's changes
	// (revert).
	Rows            int64            `json:"rows"`
	Changed         int64            `json:"changed"`
	Skipped         int64            `json:"skipped"`
	SkippedByReason map[string]int64 `json:"skipped_by_reason"`
	SkippedRows     []Skip           `json:"skipped_rows"`
	Batches         int              `json:"batches"`
	StartedAt       time.Time        `json:"started_at"`
	FinishedAt      time.Time        `json:"finished_at"`
	By              string           `json:"by"`
	ApprovedBy      string           `json:"approved_by,omitempty"`
}

// DryRun is what a dry run found.
type DryRun struct {
	Rows int64
	// Done were changed or skipped by earlier runs.
	Done        int64
	WouldChange int64
	WouldSkip   map[string]int64
}

// Result is one run's outcome.
type Result struct {
	Report
	// Path and NotifyPath are the files written (empty on a dry run, or
	// when the ones on disk already said the same).
	Path, NotifyPath string
	// ChangedNow and BatchesNow are this run's own.
	ChangedNow int64
	BatchesNow int
	// Already: nothing was left to do (applied or reverted before).
	Already bool
	// Changes are the audit rows of the changeset and action: what Record
	// records.
	Changes []Change
	// DryRun is set on a dry run.
	DryRun *DryRun
	// Approval is the approval apply applied (zero for revert); Record
	// records it too.
	Approval changeset.Approval
}

// Apply un-verifies the approved changeset in o.Dir on o.Target.
func Apply(ctx context.Context, o Options) (Result, error) {
	var res Result
	if err := o.defaults(); err != nil {
		return res, err
	}
	m, appr, err := changeset.CheckApproved(o.Dir)
	if err != nil {
		return res, fmt.Errorf("apply: %w", err)
	}
	sha := appr.ManifestSHA256
	night, err := m.NightDate()
	if err != nil {
		return res, fmt.Errorf("apply %s: %w", o.Dir, err)
	}
	started := o.now()
	if age := started.Sub(night); o.MaxAge > 0 && age > o.MaxAge && !o.AllowStale {
		return res, fmt.Errorf("apply %s: %w: its night %s is %s old, more than apply.max_age %s: the account table has moved on since its snapshot; apply a newer night's changeset, or pass --allow-stale to apply it anyway",
			o.Dir, ErrStale, m.Date, days(age), days(o.MaxAge))
	}
	rows, err := readRows(ctx, filepath.Join(o.Dir, changeset.FileParquet), night)
	if err != nil {
		return res, fmt.Errorf("apply %s: %w", o.Dir, err)
	}
	if !o.DryRun {
		unlock, err := lock(ctx, &o)
		if err != nil {
			return res, fmt.Errorf("apply %s: %w", o.Dir, err)
		}
		defer unlock()
		if err := o.Target.Prepare(ctx); err != nil {
			return res, fmt.Errorf("apply %s: %w", o.Dir, err)
		}
	}
	rev, err := o.Target.Progress(ctx, sha, ActionRevert)
	if err != nil {
		return res, fmt.Errorf("apply %s: %w", o.Dir, err)
	}
	if rev.Batches > 0 {
		return res, fmt.Errorf("apply %s: %w on %s by %s (%s): apply does not apply it again; the next night proposes what is still at risk",
			o.Dir, ErrReverted, rev.StartedAt.Format(time.RFC3339), rev.By, o.Target)
	}
	prog, err := o.Target.Progress(ctx, sha, ActionApply)
	if err != nil {
		return res, fmt.Errorf("apply %s: %w", o.Dir, err)
	}
	rest := rows[sort.Search(len(rows), func(i int) bool { return rows[i].EmailID > prog.Cursor }):]
	if prog.Batches == 0 {
		rest = rows
	}
	if o.DryRun {
		return dryRun(ctx, o, m.Date, sha, ActionApply, int64(len(rows)), prog, rest, nil)
	}
	if prog.Batches > 0 && len(rest) > 0 {
		o.Log.Info("resuming an interrupted apply", "changeset", m.Date, "batches_done", prog.Batches, "after_email_id", prog.Cursor, "rows_left", len(rest))
	}
	seq := prog.Batches
	total := seq + (len(rest)+o.BatchSize-1)/o.BatchSize
	var changedNow int64
	batchesNow := 0
	// An empty changeset commits one empty batch: its apply is recorded,
	// and a re-run knows it is done.
	empty := len(rows) == 0 && prog.Batches == 0
	if empty {
		total = 1
	}
	for lo := 0; lo < len(rest) || empty; lo += o.BatchSize {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		part := rest[lo:min(lo+o.BatchSize, len(rest))]
		last := int64(0)
		if len(part) > 0 {
			last = part[len(part)-1].EmailID
		}
		empty = false
		seq++
		b := Batch{SHA256: sha, Date: m.Date, Action: ActionApply, Seq: seq, Rows: part, Last: last,
			Reason: o.Reason, DomainStatus: o.WriteDomainStatus, By: o.By, At: o.now(), RunStartedAt: started}
		br, err := o.Target.Apply(ctx, b)
		if err != nil {
			return res, fmt.Errorf("apply %s: batch %d of %d (email ids up to %d) was not committed: %w; the %d batches before it are: run lapse apply again to resume after them",
				o.Dir, seq, total, b.Last, err, seq-1)
		}
		changedNow += int64(len(br.Changed))
		batchesNow++
		o.Log.Info("apply batch committed", "changeset", m.Date, "batch", seq, "of", total,
			"changed", len(br.Changed), "skipped", len(br.Skipped), "last_email_id", b.Last)
	}
	res, err = finish(ctx, o, finishArgs{date: m.Date, sha: sha, action: ActionApply, rows: int64(len(rows)),
		started: started, changedNow: changedNow, batchesNow: batchesNow, approvedBy: appr.By})
	res.Approval = appr
	return res, err
}

// Revert restores the rows the changeset's apply changed on o.Target.
func Revert(ctx context.Context, o Options) (Result, error) {
	var res Result
	if err := o.defaults(); err != nil {
		return res, err
	}
	m, _, err := changeset.ReadManifest(o.Dir)
	if err != nil {
		return res, fmt.Errorf("revert: %w", err)
	}
	sha, err := appliedSHA(o.Dir)
	if err != nil {
		return res, fmt.Errorf("revert: %w", err)
	}
	started := o.now()
	if !o.DryRun {
		unlock, err := lock(ctx, &o)
		if err != nil {
			return res, fmt.Errorf("revert %s: %w", o.Dir, err)
		}
		defer unlock()
	}
	ap, err := o.Target.Progress(ctx, sha, ActionApply)
	if err != nil {
		return res, fmt.Errorf("revert %s: %w", o.Dir, err)
	}
	if ap.Batches == 0 {
		return res, fmt.Errorf("revert %s: %w to %s (no progress recorded for manifest sha256 %s): nothing to revert",
			o.Dir, ErrNotApplied, o.Target, short(sha))
	}
	changes, err := o.Target.Changes(ctx, sha, ActionApply)
	if err != nil {
		return res, fmt.Errorf("revert %s: %w", o.Dir, err)
	}
	prog, err := o.Target.Progress(ctx, sha, ActionRevert)
	if err != nil {
		return res, fmt.Errorf("revert %s: %w", o.Dir, err)
	}
	rest := changes
	if prog.Batches > 0 {
		rest = changes[sort.Search(len(changes), func(i int) bool { return changes[i].EmailID > prog.Cursor }):]
	}
	if o.DryRun {
		return dryRun(ctx, o, m.Date, sha, ActionRevert, int64(len(changes)), prog, nil, rest)
	}
	seq := prog.Batches
	total := seq + (len(rest)+o.BatchSize-1)/o.BatchSize
	var changedNow int64
	batchesNow := 0
	for lo := 0; lo < len(rest); lo += o.BatchSize {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		part := rest[lo:min(lo+o.BatchSize, len(rest))]
		seq++
		b := Batch{SHA256: sha, Date: m.Date, Action: ActionRevert, Seq: seq, Changes: part, Last: part[len(part)-1].EmailID,
			By: o.By, At: o.now(), RunStartedAt: started}
		br, err := o.Target.Revert(ctx, b)
		if err != nil {
			return res, fmt.Errorf("revert %s: batch %d of %d (email ids %d to %d) was not committed: %w; the %d batches before it are: run lapse revert again to resume after them",
				o.Dir, seq, total, part[0].EmailID, b.Last, err, seq-1)
		}
		changedNow += int64(len(br.Changed))
		batchesNow++
		o.Log.Info("revert batch committed", "changeset", m.Date, "batch", seq, "of", total,
			"restored", len(br.Changed), "skipped", len(br.Skipped), "last_email_id", b.Last)
	}
	return finish(ctx, o, finishArgs{date: m.Date, sha: sha, action: ActionRevert, rows: int64(len(changes)),
		started: started, changedNow: changedNow, batchesNow: batchesNow})
}

// lock takes the target's lock; with o.Wait a held lock is waited for.
func lock(ctx context.Context, o *Options) (func(), error) {
	unlock, err := o.Target.Lock(ctx, false)
	if errors.Is(err, ErrLocked) && o.Wait {
		o.Log.Info("waiting for the other apply or revert to finish (--wait)", "holder", err.Error())
		unlock, err = o.Target.Lock(ctx, true)
	}
	if errors.Is(err, ErrLocked) && !o.Wait {
		return nil, fmt.Errorf("%w; wait for it to finish, or run again with --wait", err)
	}
	return unlock, err
}

type finishArgs struct {
	date, sha, action string
	rows              int64
	started           time.Time
	changedNow        int64
	batchesNow        int
	approvedBy        string
}

// finish builds the report from the target's records (so a run that
// resumed or healed reports the whole changeset) and writes it.
func finish(ctx context.Context, o Options, a finishArgs) (Result, error) {
	var res Result
	prog, err := o.Target.Progress(ctx, a.sha, a.action)
	if err != nil {
		return res, fmt.Errorf("%s %s: %w", a.action, o.Dir, err)
	}
	changes, err := o.Target.Changes(ctx, a.sha, a.action)
	if err != nil {
		return res, fmt.Errorf("%s %s: %w", a.action, o.Dir, err)
	}
	r := Report{Date: a.date, ManifestSHA256: a.sha, Action: a.action, Target: o.Target.String(), Rows: a.rows,
		Changed: int64(len(changes)), Skipped: int64(len(prog.Skipped)), SkippedByReason: map[string]int64{},
		SkippedRows: prog.Skipped, Batches: prog.Batches, StartedAt: prog.StartedAt, FinishedAt: prog.FinishedAt,
		By: o.By, ApprovedBy: a.approvedBy}
	if r.SkippedRows == nil {
		r.SkippedRows = []Skip{}
	}
	for _, s := range prog.Skipped {
		r.SkippedByReason[s.Why]++
	}
	if prog.Batches == 0 { // a revert with nothing to restore
		r.StartedAt, r.FinishedAt = a.started, a.started
	} else if prog.By != "" {
		r.By = prog.By
	}
	if a.batchesNow > 0 {
		r.By, r.FinishedAt = o.By, o.now()
	}
	res = Result{Report: r, ChangedNow: a.changedNow, BatchesNow: a.batchesNow, Already: a.batchesNow == 0, Changes: changes}
	name := changeset.FileApplied
	if a.action == ActionRevert {
		name = changeset.FileReverted
	}
	path := filepath.Join(o.Dir, name)
	wrote, err := writeReport(path, r, a.batchesNow > 0)
	if err != nil {
		return res, fmt.Errorf("%s %s: the account table is changed and audited, but %w; run lapse %s again to write it", a.action, o.Dir, err, a.action)
	}
	if wrote {
		res.Path = path
	}
	if a.action == ActionApply {
		np := filepath.Join(o.Dir, changeset.FileAppliedNotify)
		wrote, err := writeNotify(filepath.Join(o.Dir, changeset.FileNotify), np, changes, a.batchesNow > 0)
		if err != nil {
			return res, fmt.Errorf("apply %s: the account table is changed and audited, but %w; run lapse apply again to write it", o.Dir, err)
		}
		if wrote {
			res.NotifyPath = np
		}
	}
	return res, nil
}

// dryRun reports what Apply or Revert would do, changing nothing.
func dryRun(ctx context.Context, o Options, date, sha, action string, total int64, prog Progress, rows []Row, changes []Change) (Result, error) {
	d := &DryRun{Rows: total, Done: total - int64(len(rows)+len(changes)), WouldSkip: map[string]int64{}}
	var vw *verdictWriter
	if o.Verdicts != nil {
		vw = newVerdictWriter(o.Verdicts)
		done, err := o.Target.Changes(ctx, sha, action)
		if err != nil {
			return Result{}, fmt.Errorf("%s %s: %w", action, o.Dir, err)
		}
		vw.done(done, prog.Skipped)
	}
	change := VerdictUnverify
	if action == ActionRevert {
		change = VerdictRestore
	}
	n := max(len(rows), len(changes))
	for lo := 0; lo < n; lo += o.BatchSize {
		hi := min(lo+o.BatchSize, n)
		b := Batch{SHA256: sha, Date: date, Action: action}
		var ids []int64
		if action == ActionApply {
			b.Rows = rows[lo:hi]
			for _, r := range b.Rows {
				ids = append(ids, r.EmailID)
			}
		} else {
			b.Changes = changes[lo:hi]
			for _, c := range b.Changes {
				ids = append(ids, c.EmailID)
			}
		}
		skips, err := o.Target.Check(ctx, b)
		if err != nil {
			return Result{}, fmt.Errorf("%s %s: dry run: %w", action, o.Dir, err)
		}
		why := make(map[int64]string, len(skips))
		for _, s := range skips {
			why[s.EmailID] = s.Why
			d.WouldSkip[s.Why]++
		}
		d.WouldChange += int64(len(ids) - len(skips))
		if vw != nil {
			for _, id := range ids {
				v, ok := why[id]
				if !ok {
					v = change
				}
				vw.row(id, v)
			}
		}
	}
	if vw != nil {
		if err := vw.flush(); err != nil {
			return Result{}, fmt.Errorf("%s %s: dry run: write verdicts: %w", action, o.Dir, err)
		}
	}
	r := Report{Date: date, ManifestSHA256: sha, Action: action, Target: o.Target.String(), Rows: total,
		Changed: prog.Changed, Skipped: int64(len(prog.Skipped)), Batches: prog.Batches, By: o.By}
	return Result{Report: r, Already: prog.Batches > 0 && d.Done == total, DryRun: d}, nil
}

// days renders a duration as days when it is whole days or longer.
func days(d time.Duration) string {
	if d >= 24*time.Hour {
		return fmt.Sprintf("%.1f days", d.Hours()/24)
	}
	return d.Round(time.Minute).String()
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// SkipSummary renders skipped_by_reason as "why n, why n" (sorted).
func SkipSummary(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
