package apply

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Accounts is an in-memory account table: the rows a MemoryTarget
// changes. *sim.World is one, at its current date.
type Accounts interface {
	// Account returns the row with this id: its address, whether it is
	// verified and its un-verify reason ("" when none); ok is false when
	// there is no such row (deleted).
	Account(id int64) (email string, verified bool, reason string, ok bool)
	// UnverifyAccount un-verifies the row with reason when it exists,
	// still reads email and is verified, and reports whether it did.
	UnverifyAccount(id int64, email, reason string) bool
	// RestoreAccount verifies the row again when it exists, still reads
	// email and is un-verified with reason, and reports whether it did.
	RestoreAccount(id int64, email, reason string) bool
}

// MemoryTarget applies changesets to an in-memory account table, keeping
// its audit rows and progress records in memory too (they last as long as
// the target). `lapse demo` applies each night's changeset to the
// simulator's accounts through it, with the same driver as PostgreSQL.
// It does not write domain status columns (the table has none).
type MemoryTarget struct {
	accounts Accounts
	lock     chan struct{}

	mu       sync.Mutex
	audit    map[auditKey]*Change
	progress map[progressKey][]memProgress
}

type auditKey struct {
	sha, action string
	id          int64
}

type progressKey struct{ sha, action string }

type memProgress struct {
	batch   int
	last    int64
	changed int
	skipped []Skip
	started time.Time
	at      time.Time
	by      string
}

// NewMemoryTarget returns a target over accounts.
func NewMemoryTarget(accounts Accounts) *MemoryTarget {
	return &MemoryTarget{accounts: accounts, lock: make(chan struct{}, 1),
		audit: map[auditKey]*Change{}, progress: map[progressKey][]memProgress{}}
}

func (m *MemoryTarget) String() string { return "in-memory account table" }

// Lock takes the target's lock.
func (m *MemoryTarget) Lock(ctx context.Context, wait bool) (func(), error) {
	if !wait {
		select {
		case m.lock <- struct{}{}:
		default:
			return nil, fmt.Errorf("%w (%s)", ErrLocked, m)
		}
	} else {
		select {
		case m.lock <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var once sync.Once
	return func() { once.Do(func() { <-m.lock }) }, nil
}

// Prepare does nothing: the records live in the target.
func (m *MemoryTarget) Prepare(context.Context) error { return nil }

// Progress returns the committed batches of (sha256, action).
func (m *MemoryTarget) Progress(_ context.Context, sha, action string) (Progress, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var p Progress
	for i, b := range m.progress[progressKey{sha, action}] {
		if i == 0 {
			p.StartedAt, p.By = b.started, b.by
		}
		p.Batches++
		p.Cursor = b.last
		p.Changed += int64(b.changed)
		p.Skipped = append(p.Skipped, b.skipped...)
		p.FinishedAt = b.at
	}
	return p, nil
}

// Changes returns the audit rows of (sha256, action), by email id.
func (m *MemoryTarget) Changes(_ context.Context, sha, action string) ([]Change, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Change
	for k, c := range m.audit {
		if k.sha == sha && k.action == action {
			out = append(out, *c)
		}
	}
	slices.SortFunc(out, func(a, b Change) int { return cmp.Compare(a.EmailID, b.EmailID) })
	return out, nil
}

// Apply un-verifies b.Rows with the guard, auditing each change.
func (m *MemoryTarget) Apply(_ context.Context, b Batch) (BatchResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var res BatchResult
	for _, r := range b.Rows {
		why := m.applyVerdictLocked(b.SHA256, r)
		if why == VerdictUnverify {
			_, _, prev, _ := m.accounts.Account(r.EmailID)
			if m.accounts.UnverifyAccount(r.EmailID, r.Email, b.Reason) {
				reason := b.Reason
				m.audit[auditKey{b.SHA256, ActionApply, r.EmailID}] = &Change{Row: r, Action: ActionApply, At: b.At, By: b.By,
					SetReason: &reason, PrevReason: optional(prev)}
				res.Changed = append(res.Changed, r.EmailID)
				continue
			}
			why = SkipConcurrent
		}
		res.Skipped = append(res.Skipped, Skip{EmailID: r.EmailID, Why: why})
	}
	m.commitLocked(b, res)
	return res, nil
}

// Revert restores b.Changes with the guard, auditing each change.
func (m *MemoryTarget) Revert(_ context.Context, b Batch) (BatchResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var res BatchResult
	for _, c := range b.Changes {
		why := m.revertVerdictLocked(b.SHA256, c)
		if why == VerdictRestore {
			if m.accounts.RestoreAccount(c.EmailID, c.Email, deref(c.SetReason)) {
				m.audit[auditKey{b.SHA256, ActionRevert, c.EmailID}] = &Change{Row: c.Row, Action: ActionRevert, At: b.At, By: b.By,
					SetReason: c.PrevReason, PrevReason: c.SetReason}
				res.Changed = append(res.Changed, c.EmailID)
				continue
			}
			why = SkipConcurrent
		}
		res.Skipped = append(res.Skipped, Skip{EmailID: c.EmailID, Why: why})
	}
	m.commitLocked(b, res)
	return res, nil
}

// Check returns what Apply or Revert would skip.
func (m *MemoryTarget) Check(_ context.Context, b Batch) ([]Skip, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Skip
	for _, r := range b.Rows {
		if why := m.applyVerdictLocked(b.SHA256, r); why != VerdictUnverify {
			out = append(out, Skip{EmailID: r.EmailID, Why: why})
		}
	}
	for _, c := range b.Changes {
		if why := m.revertVerdictLocked(b.SHA256, c); why != VerdictRestore {
			out = append(out, Skip{EmailID: c.EmailID, Why: why})
		}
	}
	return out, nil
}

func (m *MemoryTarget) applyVerdictLocked(sha string, r Row) string {
	if _, done := m.audit[auditKey{sha, ActionApply, r.EmailID}]; done {
		return SkipAlreadyApplied
	}
	email, verified, _, ok := m.accounts.Account(r.EmailID)
	switch {
	case !ok:
		return SkipDeleted
	case email != r.Email:
		return SkipEmailChanged
	case !verified:
		return SkipAlreadyUnverified
	}
	return VerdictUnverify
}

func (m *MemoryTarget) revertVerdictLocked(sha string, c Change) string {
	if _, done := m.audit[auditKey{sha, ActionRevert, c.EmailID}]; done {
		return SkipAlreadyReverted
	}
	email, verified, reason, ok := m.accounts.Account(c.EmailID)
	switch {
	case !ok:
		return SkipDeleted
	case email != c.Email:
		return SkipEmailChanged
	case verified:
		return SkipReverified
	case reason != deref(c.SetReason):
		return SkipReasonChanged
	}
	return VerdictRestore
}

func (m *MemoryTarget) commitLocked(b Batch, res BatchResult) {
	k := progressKey{b.SHA256, b.Action}
	m.progress[k] = append(m.progress[k], memProgress{batch: b.Seq, last: b.Last, changed: len(res.Changed),
		skipped: slices.Clone(res.Skipped), started: b.RunStartedAt, at: b.At, by: b.By})
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
