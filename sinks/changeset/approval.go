package changeset

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lapse-dev/lapse/internal/atomicfile"
	"github.com/lapse-dev/lapse/internal/night"
)

// The files review, approve, apply and revert add to a changeset folder.
const (
	// FileApproval records who approved which manifest sha256, and when.
	FileApproval = "approval.json"
	// FileApplied records what apply changed and skipped, with why.
	FileApplied = "applied.json"
	// FileAppliedNotify lists the users whose addresses apply did
	// un-verify (not the proposal): the registry notifies these.
	FileAppliedNotify = "notify_applied.csv"
	// FileReverted records what revert restored and left alone.
	FileReverted = "reverted.json"
)

// ErrTampered is returned (wrapped, naming the file) when a changeset's
// files no longer match its manifest.
var ErrTampered = errors.New("changeset files do not match their manifest")

// ErrNotApproved is returned (wrapped) when a changeset has no approval,
// or its approval pins another manifest than the one on disk.
var ErrNotApproved = errors.New("changeset is not approved")

// ErrNeedsOverride is returned when a blocked changeset is approved
// without overriding the brake and saying why.
var ErrNeedsOverride = errors.New("changeset is blocked by the safety brake")

// ErrNotReviewed is returned (wrapped) when the manifest is not the one
// the reviewer says they reviewed (ApproveOptions.ExpectSHA256).
var ErrNotReviewed = errors.New("changeset is not the one reviewed")

// Approval is approval.json: a reviewer's signature over one manifest.
type Approval struct {
	Date string `json:"date"`
	// ManifestSHA256 is the sha256 of manifest.json, which holds the
	// sha256 of every file: the approval pins all of them.
	ManifestSHA256 string `json:"manifest_sha256"`
	// Status is the changeset's status when it was approved.
	Status        string    `json:"status"`
	Flagged       int64     `json:"flagged"`
	By            string    `json:"by"`
	Note          string    `json:"note,omitempty"`
	OverrideBrake bool      `json:"override_brake"`
	ApprovedAt    time.Time `json:"approved_at"`
}

// ReadManifest reads a changeset folder's manifest.json and its sha256.
func ReadManifest(dir string) (Manifest, string, error) {
	var m Manifest
	p := filepath.Join(dir, FileManifest)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return m, "", fmt.Errorf("changeset %s: no %s: not a changeset folder, or its night did not finish publishing", dir, FileManifest)
	}
	if err != nil {
		return m, "", fmt.Errorf("changeset %s: %w", dir, err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, "", fmt.Errorf("changeset %s: %s does not parse: %w", dir, FileManifest, err)
	}
	sum := sha256.Sum256(b)
	return m, hex.EncodeToString(sum[:]), nil
}

// TamperError is ErrTampered naming the file that does not match (a
// changed, missing or unexpected file, or manifest.json itself when it
// lists nothing usable).
type TamperError struct {
	Dir, File string
	// Why says what is wrong with File ("is missing", "changed since ...").
	Why string
}

func (e *TamperError) Error() string {
	return fmt.Sprintf("changeset %s: %v: %s %s", e.Dir, ErrTampered, e.File, e.Why)
}

// Unwrap makes a TamperError ErrTampered.
func (e *TamperError) Unwrap() error { return ErrTampered }

// Verify checks every file the manifest lists against its sha256 and size,
// and returns the manifest and its sha256. A changed, missing or extra
// listed file is ErrTampered (a *TamperError), naming the file.
func Verify(dir string) (Manifest, string, error) {
	m, sum, bad, err := VerifyAll(dir)
	if err != nil {
		return m, "", err
	}
	if len(bad) > 0 {
		return m, "", bad[0]
	}
	return m, sum, nil
}

// VerifyAll is Verify that checks every listed file instead of stopping
// at the first that does not match: it returns the manifest and its
// sha256 (even when files do not match, for a reviewer to see) and every
// mismatch, in file name order. err is for a folder it could not check
// (no manifest, unreadable files).
func VerifyAll(dir string) (Manifest, string, []*TamperError, error) {
	m, sum, err := ReadManifest(dir)
	if err != nil {
		return m, "", nil, err
	}
	if len(m.Files) == 0 {
		return m, sum, []*TamperError{{dir, FileManifest, "lists no files"}}, nil
	}
	names := make([]string, 0, len(m.Files))
	for n := range m.Files {
		names = append(names, n)
	}
	slices.Sort(names)
	var bad []*TamperError
	for _, n := range names {
		if strings.ContainsAny(n, `/\`) || n == ".." {
			bad = append(bad, &TamperError{dir, FileManifest, fmt.Sprintf("names a file outside the folder: %q", n)})
			continue
		}
		want := m.Files[n]
		got, err := HashFile(filepath.Join(dir, n))
		if errors.Is(err, fs.ErrNotExist) {
			bad = append(bad, &TamperError{dir, n, "is missing"})
			continue
		}
		if err != nil {
			return m, sum, bad, fmt.Errorf("changeset %s: %w", dir, err)
		}
		if got.SHA256 != want.SHA256 || got.Bytes != want.Bytes {
			bad = append(bad, &TamperError{dir, n, fmt.Sprintf("changed since the night wrote it (sha256 %s, manifest says %s)",
				short(got.SHA256), short(want.SHA256))})
		}
	}
	return m, sum, bad, nil
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// ApproveOptions is a reviewer's approval.
type ApproveOptions struct {
	By   string
	Note string
	// OverrideBrake approves a blocked changeset (a Note is required).
	OverrideBrake bool
	// ExpectSHA256, when set, is the manifest sha256 (or a prefix of it)
	// the reviewer reviewed: a manifest that is now another one (a night
	// re-published the folder since) is refused with ErrNotReviewed.
	ExpectSHA256 string
	Now          time.Time
}

// Approve verifies the folder and writes approval.json pinning its
// manifest's sha256. A blocked changeset needs OverrideBrake and a Note.
// Approving a changeset already approved at the same sha256 returns the
// existing approval and already = true, and writes nothing.
func Approve(dir string, o ApproveOptions) (a Approval, already bool, err error) {
	by := strings.TrimSpace(o.By)
	if by == "" {
		return a, false, errors.New("approve: --by is empty: name who reviewed the changeset")
	}
	m, sum, err := Verify(dir)
	if err != nil {
		return a, false, fmt.Errorf("approve: %w", err)
	}
	if want := strings.ToLower(strings.TrimSpace(o.ExpectSHA256)); want != "" && !strings.HasPrefix(sum, want) {
		return a, false, fmt.Errorf("approve %s: %w: its manifest sha256 is now %s, not the %s reviewed: review it again",
			dir, ErrNotReviewed, sum, want)
	}
	if m.Status == StatusBlocked && (!o.OverrideBrake || strings.TrimSpace(o.Note) == "") {
		return a, false, fmt.Errorf("approve %s: %w (%s): approve it with --override-brake and a --note saying why",
			dir, ErrNeedsOverride, strings.Join(m.BlockReasons, "; "))
	}
	if prev, err := ReadApproval(dir); err == nil && prev.ManifestSHA256 == sum {
		return prev, true, nil
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	a = Approval{
		Date: m.Date, ManifestSHA256: sum, Status: m.Status, Flagged: m.Counts.Flagged,
		By: by, Note: strings.TrimSpace(o.Note), OverrideBrake: o.OverrideBrake && m.Status == StatusBlocked,
		ApprovedAt: o.Now.UTC().Truncate(time.Second),
	}
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return a, false, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, FileApproval), append(b, '\n'), 0o640); err != nil {
		return a, false, fmt.Errorf("approve %s: %w", dir, err)
	}
	return a, false, nil
}

// ReadApproval reads approval.json; a folder without one is ErrNotApproved.
func ReadApproval(dir string) (Approval, error) {
	var a Approval
	b, err := os.ReadFile(filepath.Join(dir, FileApproval))
	if errors.Is(err, fs.ErrNotExist) {
		return a, fmt.Errorf("changeset %s: %w: run lapse approve %s --by NAME first", dir, ErrNotApproved, dir)
	}
	if err != nil {
		return a, fmt.Errorf("changeset %s: %w", dir, err)
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return a, fmt.Errorf("changeset %s: %s does not parse: %w", dir, FileApproval, err)
	}
	return a, nil
}

// CheckApproved is what apply asks before touching anything: the files
// match the manifest, and an approval pins that very manifest.
func CheckApproved(dir string) (Manifest, Approval, error) {
	a, err := ReadApproval(dir)
	if err != nil {
		return Manifest{}, a, err
	}
	m, sum, err := Verify(dir)
	if err != nil {
		return m, a, err
	}
	if a.ManifestSHA256 != sum {
		return m, a, fmt.Errorf("changeset %s: %w: %s pins manifest sha256 %s but %s is now %s: review and approve it again",
			dir, ErrNotApproved, FileApproval, short(a.ManifestSHA256), FileManifest, short(sum))
	}
	return m, a, nil
}

// NightDate is the changeset's night as a time (UTC midnight).
func (m Manifest) NightDate() (time.Time, error) {
	t, err := night.Parse(m.Date)
	if err != nil {
		return t, fmt.Errorf("changeset manifest date %q: want YYYY-MM-DD", m.Date)
	}
	return t, nil
}
