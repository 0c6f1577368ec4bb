package apply

import (
	"context"
	"errors"
	"time"
)

// The actions of the audit table and of the progress records.
const (
	ActionApply  = "apply"
	ActionRevert = "revert"
)

// Why a row was left alone. Apply skips a row whose address changed, that
// was deleted, or that is no longer verified since the snapshot; revert
// one that was deleted, changed its address, was verified again by its
// owner, or holds another reason than apply's.
const (
	SkipDeleted           = "deleted"
	SkipEmailChanged      = "email_changed"
	SkipAlreadyUnverified = "already_unverified"
	// SkipAlreadyApplied: the audit table already holds this row's change
	// for the changeset (a resumed apply never changes a row twice).
	SkipAlreadyApplied  = "already_applied"
	SkipReverified      = "reverified"
	SkipReasonChanged   = "reason_changed"
	SkipAlreadyReverted = "already_reverted"
	// SkipConcurrent: the row passed the guard when it was read but not
	// when it was written (another writer changed it in between).
	SkipConcurrent = "changed_concurrently"
)

// Verdicts of a dry run besides the skip reasons.
const (
	VerdictUnverify = "unverify" // apply would un-verify the row
	VerdictRestore  = "restore"  // revert would restore the row
	VerdictDone     = "done"     // an earlier run changed it
)

// ErrLocked is returned (wrapped, naming the holder) when another apply or
// revert holds the target's lock.
var ErrLocked = errors.New("another lapse apply or revert is running against this account database")

// Row is one row of changeset.parquet: an address to un-verify, as the
// night's snapshot saw it.
type Row struct {
	EmailID  int64
	UserID   string
	Email    string
	Domain   string
	State    string // the domain's lifecycle state (available, redemption, …)
	Reason   string // lapse's reason (domain_available, reregistered, …)
	Evidence string // the evidence summary the reviewer read
	// Checked is when the domain's state was looked up: the evidence's
	// "checked YYYY-MM-DD", else the changeset's night.
	Checked time.Time
}

// Change is one row of the audit table: one change apply or revert made.
type Change struct {
	Row
	Action string
	At     time.Time
	By     string
	// SetReason is the value the change wrote to the reason column,
	// PrevReason the value it replaced (nil: NULL, or no reason column).
	SetReason, PrevReason *string
	// DomainStatus: the change wrote the domain status columns;
	// PrevDomainChecked and PrevDomainStatus are their values before, in
	// PostgreSQL's text form (nil: NULL).
	DomainStatus                        bool
	PrevDomainChecked, PrevDomainStatus *string
}

// Skip is a row left alone, and why.
type Skip struct {
	EmailID int64  `json:"email_id"`
	Why     string `json:"why"`
}

// Batch is one transaction's worth of rows.
type Batch struct {
	SHA256 string // the changeset's manifest sha256, as its approval pins it
	Date   string // the changeset's night
	Action string
	// Seq numbers the batches of one changeset's apply (or revert) from 1,
	// over every run that worked on it.
	Seq int
	// Rows are the changeset rows to un-verify (apply).
	Rows []Row
	// Changes are apply's audit rows to restore (revert).
	Changes []Change
	// Last is the batch's highest email id: once the batch is committed,
	// every row up to it is done.
	Last int64
	// Reason is written to the reason column (apply); DomainStatus also
	// writes the domain status columns.
	Reason       string
	DomainStatus bool
	By           string
	At           time.Time
	RunStartedAt time.Time
}

// BatchResult is what a batch changed and skipped.
type BatchResult struct {
	Changed []int64
	Skipped []Skip
}

// Progress is the committed batches of one changeset's apply (or revert).
type Progress struct {
	Batches int
	// Cursor is the Last of the latest committed batch: every row with an
	// email id up to it is done (changed or skipped).
	Cursor  int64
	Changed int64
	Skipped []Skip
	// StartedAt is when the run that committed the first batch started;
	// FinishedAt when the latest batch was committed.
	StartedAt, FinishedAt time.Time
	By                    string
}

// Target is an account table apply and revert change: PostgreSQL (the
// registry's database) or an in-memory one (the simulator's, for the
// demo). Each batch is atomic: its guarded changes, one audit row per
// change and its progress record are committed together, or none is.
type Target interface {
	// String names the target in messages and reports, without secrets.
	String() string
	// Lock takes the one-apply-at-a-time lock; without wait, a held lock
	// is an error that Is ErrLocked and names the holder. unlock releases
	// it.
	Lock(ctx context.Context, wait bool) (unlock func(), err error)
	// Prepare creates the audit and progress records when missing. Dry
	// runs and reverts do not call it.
	Prepare(ctx context.Context) error
	// Progress returns the committed batches of (sha256, action); none
	// when nothing was committed, or the records do not exist yet.
	Progress(ctx context.Context, sha256, action string) (Progress, error)
	// Changes returns the audit rows of (sha256, action), by email id.
	Changes(ctx context.Context, sha256, action string) ([]Change, error)
	// Apply un-verifies b.Rows, each only when its address is unchanged
	// and still verified, in one transaction with their audit rows and
	// b's progress record.
	Apply(ctx context.Context, b Batch) (BatchResult, error)
	// Revert restores b.Changes, each only when the row is still as apply
	// left it, in one transaction with their audit rows and b's progress
	// record.
	Revert(ctx context.Context, b Batch) (BatchResult, error)
	// Check returns what Apply (b.Rows) or Revert (b.Changes) would skip
	// and why, changing nothing; the other rows would change.
	Check(ctx context.Context, b Batch) ([]Skip, error)
}
