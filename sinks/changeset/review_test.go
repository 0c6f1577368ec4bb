package changeset

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/duck"
)

// rvRow is one flagged address of a test changeset.
type rvRow struct {
	id                       int64
	user, domain, tld, state string
	reason, evidence         string
}

// rvWrite writes the changeset of night date into parent/date with
// changeset.Write, from a decisions and a snapshot Parquet of rows (every
// row flagged, verified), and returns the folder.
func rvWrite(t *testing.T, parent, date string, brake config.BrakeConfig, rows ...rvRow) string {
	t.Helper()
	ctx := context.Background()
	db, err := duck.OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tmp := t.TempDir()
	dec, snap := filepath.Join(tmp, "decisions.parquet"), filepath.Join(tmp, "emails.parquet")
	var vals []string
	for _, r := range rows {
		vals = append(vals, fmt.Sprintf("(%d, %s, %s, true, false, NULL::TIMESTAMPTZ, NULL::TIMESTAMPTZ, %s, %s, %s, %s, 'unverify', %s)",
			r.id, duck.String(r.user), duck.String(fmt.Sprintf("user%d@%s", r.id, r.domain)), duck.String(r.domain), duck.String(r.tld),
			duck.String(r.state), duck.String(r.reason), duck.String(r.evidence)))
	}
	q := `SELECT * FROM (VALUES ` + strings.Join(vals, ", ") + `)
		t(email_id, user_id, email, verified, "primary", created, verified_at, domain, tld, state, reason, action, evidence)`
	if err := duck.CopyParquet(ctx, db, q, dec, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := duck.CopyParquet(ctx, db, `SELECT email_id, user_id, email, verified, "primary" FROM read_parquet(`+duck.String(dec)+`)`, snap, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, date)
	if _, err := Write(ctx, db, Spec{Dir: dir, Date: date, Decisions: dec, Snapshot: snap, Verified: 1000,
		Policy: "corroborated", Brake: brake}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func rvApplied(t *testing.T, dir string, changed int64) {
	t.Helper()
	rvReport(t, dir, FileApplied, changed)
}

// rvReport writes the applied.json or reverted.json lapse apply and
// lapse revert leave.
func rvReport(t *testing.T, dir, name string, changed int64) {
	t.Helper()
	_, sum, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"date": filepath.Base(dir), "manifest_sha256": sum, "changed": changed, "skipped": 1,
		"skipped_by_reason": map[string]int64{"already_unverified": 1}, "by": "ops", "target": "postgres",
		"finished_at": time.Date(2026, 3, 9, 12, 0, 0, 0, time.UTC)})
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o640); err != nil {
		t.Fatal(err)
	}
}

func gone(id int64, user string) rvRow {
	return rvRow{id: id, user: user, domain: "gone.com", tld: "com", state: "available", reason: "domain_available",
		evidence: "rdap:available corroborated evidence rdap:available,whois:available checked 2026-03-03"}
}

// anAddress matches an email address.
var anAddress = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+`)

// rvWorld: 03-01 applied (changed 2), 03-02 applied but changed nothing,
// 03-03 is reviewed, 03-04 (later) applied. What is new in 03-03 is what
// 03-01 did not hold.
func rvWorld(t *testing.T) (parent, dir string) {
	t.Helper()
	parent = filepath.Join(t.TempDir(), "changesets")
	none := config.BrakeConfig{}
	rvApplied(t, rvWrite(t, parent, "2026-03-01", none, gone(1, "u1"), gone(2, "u2"),
		rvRow{id: 3, user: "u3", domain: "red.org", tld: "org", state: "redemption", reason: "domain_redemption", evidence: "whois:redemption"}), 2)
	rvApplied(t, rvWrite(t, parent, "2026-03-02", none, gone(1, "u1"), gone(2, "u2"),
		rvRow{id: 10, user: "u10", domain: "other.org", tld: "org", state: "available", reason: "domain_available", evidence: "rdap:available"}), 0)
	dir = rvWrite(t, parent, "2026-03-03", none, gone(1, "u1"), gone(2, "u2"), gone(4, "u4"), gone(5, "u4"),
		rvRow{id: 10, user: "u10", domain: "other.org", tld: "org", state: "available", reason: "domain_available",
			evidence: "rdap:available last error: whois: ask hostmaster@registrar.example"},
		rvRow{id: 11, user: "u11", domain: "again.dev", tld: "dev", state: "registered", reason: "reregistered",
			evidence: "rdap:registered registered 2026-02-01 first seen 2025-01-01"},
		rvRow{id: 12, user: "u12", domain: "again.dev", tld: "dev", state: "registered", reason: "reregistered",
			evidence: "rdap:registered registered 2026-02-01 first seen 2025-06-01"},
		rvRow{id: 13, user: "u13", domain: "again.dev", tld: "dev", state: "registered", reason: "reregistered",
			evidence: "rdap:registered registered 2026-02-01 first seen 2025-07-01"})
	rvApplied(t, rvWrite(t, parent, "2026-03-04", none, gone(1, "u1")), 1)
	return parent, dir
}

func tallyMap(ts []Tally) map[string]int64 {
	m := map[string]int64{}
	for _, t := range ts {
		m[t.Name] = t.Addresses
	}
	return m
}

func TestReviewCountsAndNewSinceApplied(t *testing.T) {
	ctx := context.Background()
	_, dir := rvWorld(t)
	r, err := Review(ctx, dir, ReviewOptions{EvidencePerDomain: 2})
	if err != nil {
		t.Fatal(err)
	}
	m, sum, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := m.Counts
	if r.Counts.Flagged != c.Flagged || r.Counts.Users != c.Users || r.Counts.FlaggedDomains != c.FlaggedDomains || r.Counts.Verified != c.Verified ||
		!reflect.DeepEqual(tallyMap(r.Counts.ByReason), c.ByReason) || !reflect.DeepEqual(tallyMap(r.Counts.ByTLD), c.ByTLD) {
		t.Errorf("review counts %+v, manifest %+v", r.Counts, c)
	}
	if want := map[string]int64{"available": 5, "registered": 3}; !reflect.DeepEqual(tallyMap(r.Counts.ByState), want) {
		t.Errorf("by state %v, want %v", r.Counts.ByState, want)
	}
	if r.ManifestSHA256 != sum || !r.Integrity.OK || r.Status != StatusProposed || !r.Approvable {
		t.Errorf("sha %s (want %s), integrity %+v, status %s, approvable %v", r.ManifestSHA256, sum, r.Integrity, r.Status, r.Approvable)
	}
	// 03-02 changed nothing and 03-04 is later: the comparison is with
	// 03-01, which held 1, 2 and 3.
	if r.New.Since != "2026-03-01" || r.New.New != 6 {
		t.Errorf("new since %q: %d, want 2026-03-01: 6", r.New.Since, r.New.New)
	}
	if want := []Tally{{"again.dev", 3}, {"gone.com", 2}, {"other.org", 1}}; !reflect.DeepEqual(r.New.Domains, want) {
		t.Errorf("new domains %v, want %v", r.New.Domains, want)
	}
	if len(r.TopDomains) != 3 || r.TopDomains[0].Domain != "gone.com" || r.TopDomains[0].Addresses != 4 || r.TopDomains[0].Users != 3 ||
		r.TopDomains[0].New != 2 || r.TopDomains[0].State != "available" || r.TopDomains[0].Reason != "domain_available" {
		t.Fatalf("top domains %+v", r.TopDomains)
	}
	ag := r.TopDomains[1]
	if ag.Domain != "again.dev" || ag.EvidenceLines != 3 || len(ag.Evidence) != 2 || ag.Evidence[0].EmailID != 11 ||
		!strings.Contains(ag.Evidence[0].Evidence, "first seen 2025-01-01") {
		t.Errorf("again.dev %+v", ag)
	}
	if ev := r.TopDomains[2].Evidence; len(ev) != 1 || ev[0].Evidence != "rdap:available last error: whois: ask (address)" {
		t.Errorf("other.org evidence %+v: want the address redacted", ev)
	}
	if r.Approval != nil || r.Applied != nil || len(r.Next) != 2 || !strings.Contains(r.Next[0], "lapse approve "+dir+" --by NAME --sha256 "+sum) {
		t.Errorf("approval %v, applied %v, next %q", r.Approval, r.Applied, r.Next)
	}

	// With no earlier applied changeset everything is new.
	r1, err := Review(ctx, filepath.Join(filepath.Dir(dir), "2026-03-01"), ReviewOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r1.New.Since != "" || r1.New.New != 3 || r1.TopDomains[0].New != 2 || r1.Applied == nil || r1.Applied.Changed != 2 || !r1.Applied.Current {
		t.Errorf("first changeset: new %+v, applied %+v", r1.New, r1.Applied)
	}
}

func TestReviewFormats(t *testing.T) {
	ctx := context.Background()
	_, dir := rvWorld(t)
	r, err := Review(ctx, dir, ReviewOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range ReviewFormats {
		var b bytes.Buffer
		if err := r.Render(&b, f); err != nil {
			t.Fatal(err)
		}
		out[f] = b.String()
		if a := anAddress.FindString(out[f]); a != "" {
			t.Errorf("%s output holds an address %q:\n%s", f, a, out[f])
		}
	}
	for _, want := range []string{"changeset 2026-03-03: proposed", r.ManifestSHA256, "8 of 1000 verified addresses (0.800%), 7 users, 3 domains",
		"6 of 8 since the last applied changeset (2026-03-01)", "safety brake     passes (max_fraction off, max_count off, protected none)", "not approved", "BY REASON", "domain_available",
		"BY STATE", ".com", "LARGEST DOMAINS", "#11 ×1  rdap:registered registered 2026-02-01 first seen 2025-01-01",
		"… 1 more distinct evidence line(s)", "NEW SINCE 2026-03-01", "lapse approve " + dir} {
		if !strings.Contains(out[FormatText], want) {
			t.Errorf("text lacks %q:\n%s", want, out[FormatText])
		}
	}
	for _, want := range []string{"# lapse changeset 2026-03-03: proposed", "| manifest sha256 | `" + r.ManifestSHA256 + "`",
		"| gone.com | available | domain_available | 4 | 3 | 2 |", "| again.dev | 11 | 1 |", "## New since the changeset applied on 2026-03-01",
		"- again.dev: 3", "- `lapse approve "} {
		if !strings.Contains(out[FormatMarkdown], want) {
			t.Errorf("markdown lacks %q:\n%s", want, out[FormatMarkdown])
		}
	}
	var back ReviewReport
	if err := json.Unmarshal([]byte(out[FormatJSON]), &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, r) {
		t.Errorf("json round trip:\n%+v\nwant\n%+v", back, r)
	}
	for _, key := range []string{`"manifest_sha256"`, `"integrity"`, `"by_reason"`, `"top_domains"`, `"new_since_applied"`, `"approval": null`, `"next"`} {
		if !strings.Contains(out[FormatJSON], key) {
			t.Errorf("json lacks %s", key)
		}
	}
	if err := r.Render(&bytes.Buffer{}, "yaml"); err == nil {
		t.Error("yaml rendered")
	}
}

// TestReviewTampered: a changed file is named loudly and the changeset is
// not approvable; unreadable rows fall back to the manifest's counts.
func TestReviewTampered(t *testing.T) {
	ctx := context.Background()
	_, dir := rvWorld(t)
	if _, _, err := Approve(dir, ApproveOptions{By: "alice", Now: time.Date(2026, 3, 4, 9, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	r, err := Review(ctx, dir, ReviewOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Approval == nil || !r.Approval.Current || r.Approval.By != "alice" || len(r.Next) != 1 || r.Next[0] != "lapse apply "+dir {
		t.Fatalf("approved: %+v, next %q", r.Approval, r.Next)
	}

	f, _ := os.OpenFile(filepath.Join(dir, FileCSV), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("99,u99,x@y.example,y.example,available,domain_available,,true,false,,\n")
	f.Close()
	os.WriteFile(filepath.Join(dir, FileParquet), []byte("not parquet"), 0o600)
	r, err = Review(ctx, dir, ReviewOptions{})
	if err != nil {
		t.Fatal(err)
	}
	files := []string{}
	for _, p := range r.Integrity.Problems {
		files = append(files, p.File)
	}
	if r.Integrity.OK || r.Approvable || !reflect.DeepEqual(files, []string{FileCSV, FileParquet, FileParquet}) {
		t.Errorf("integrity %+v, approvable %v", r.Integrity, r.Approvable)
	}
	m, _, _ := ReadManifest(dir)
	if r.Counts.From != FileManifest || r.Counts.Flagged != m.Counts.Flagged || r.Approval.Current {
		t.Errorf("counts %+v, approval %+v", r.Counts, r.Approval)
	}
	for _, f := range []string{FormatText, FormatMarkdown} {
		var b bytes.Buffer
		r.Render(&b, f)
		s := b.String()
		for _, want := range []string{"FILES DO NOT MATCH THE MANIFEST: CANNOT BE APPROVED", "changeset.csv", "changed since the night wrote it",
			"cannot be approved or applied", "NOT this manifest or its files"} {
			if !strings.Contains(s, want) {
				t.Errorf("%s lacks %q:\n%s", f, want, s)
			}
		}
		if strings.Contains(s, "lapse approve") || strings.Contains(s, "lapse apply") {
			t.Errorf("%s suggests approving a tampered changeset:\n%s", f, s)
		}
	}
}

func TestReviewBlocked(t *testing.T) {
	dir := rvWrite(t, filepath.Join(t.TempDir(), "changesets"), "2026-03-03", config.BrakeConfig{MaxCount: 1}, gone(1, "u1"), gone(2, "u2"))
	r, err := Review(context.Background(), dir, ReviewOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Brake.Blocked || len(r.Brake.Reasons) != 1 || !r.Approvable || !strings.Contains(r.Next[0], "--override-brake --note") {
		t.Errorf("brake %+v, approvable %v, next %q", r.Brake, r.Approvable, r.Next)
	}
	var b bytes.Buffer
	r.WriteText(&b)
	for _, want := range []string{"BLOCKED by the safety brake", "max_count 1", "- would un-verify 2 addresses, more than brake.max_count 1"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
}

func TestLatest(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "changesets")
	if _, err := Latest(parent); !errors.Is(err, ErrNoChangeset) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("no folder: %v", err)
	}
	os.MkdirAll(filepath.Join(parent, "notes"), 0o750)
	if _, err := Latest(parent); !errors.Is(err, ErrNoChangeset) {
		t.Errorf("no changeset: %v", err)
	}
	rvWrite(t, parent, "2026-03-01", config.BrakeConfig{}, gone(1, "u1"))
	want := rvWrite(t, parent, "2026-03-02", config.BrakeConfig{}, gone(1, "u1"))
	os.MkdirAll(filepath.Join(parent, "2026-03-03"), 0o750) // publish did not finish
	if got, err := Latest(parent); err != nil || got != want {
		t.Errorf("latest %q, %v; want %q", got, err, want)
	}
}

func TestVerifyAllAndExpectedSHA(t *testing.T) {
	dir := rvWrite(t, filepath.Join(t.TempDir(), "changesets"), "2026-03-03", config.BrakeConfig{}, gone(1, "u1"))
	_, sum, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Approve(dir, ApproveOptions{By: "a", ExpectSHA256: "00" + sum[2:12]}); !errors.Is(err, ErrNotReviewed) {
		t.Errorf("approve of another sha: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileApproval)); err == nil {
		t.Error("approval.json written for another sha")
	}
	if a, _, err := Approve(dir, ApproveOptions{By: "a", ExpectSHA256: strings.ToUpper(sum[:12])}); err != nil || a.ManifestSHA256 != sum {
		t.Errorf("approve of the reviewed sha: %v", err)
	}
	os.Remove(filepath.Join(dir, FileNotify))
	os.WriteFile(filepath.Join(dir, FileSummary), []byte("edited"), 0o600)
	_, _, bad, err := VerifyAll(dir)
	if err != nil || len(bad) != 2 || bad[0].File != FileNotify || bad[0].Why != "is missing" || bad[1].File != FileSummary {
		t.Errorf("VerifyAll: %v, %v", bad, err)
	}
	_, _, err = Verify(dir)
	var te *TamperError
	if !errors.Is(err, ErrTampered) || !errors.As(err, &te) || te.File != FileNotify ||
		err.Error() != "changeset "+dir+": changeset files do not match their manifest: notify.csv is missing" {
		t.Errorf("Verify: %v", err)
	}
}

// TestReviewAppliedAndReverted: a changeset a revert undid entirely is no
// longer the one to compare with; the review shows both reports.
func TestReviewAppliedAndReverted(t *testing.T) {
	ctx := context.Background()
	parent := filepath.Join(t.TempDir(), "changesets")
	none := config.BrakeConfig{}
	rvApplied(t, rvWrite(t, parent, "2026-03-01", none, gone(1, "u1")), 1)
	undone := rvWrite(t, parent, "2026-03-02", none, gone(1, "u1"), gone(2, "u2"))
	rvApplied(t, undone, 2)
	rvReport(t, undone, FileReverted, 2)
	partly := rvWrite(t, parent, "2026-03-03", none, gone(1, "u1"), gone(2, "u2"), gone(3, "u3"))
	rvApplied(t, partly, 3)
	rvReport(t, partly, FileReverted, 1)
	dir := rvWrite(t, parent, "2026-03-04", none, gone(1, "u1"), gone(2, "u2"), gone(3, "u3"), gone(4, "u4"))

	r, err := Review(ctx, dir, ReviewOptions{})
	if err != nil || r.New.Since != "2026-03-03" || r.New.New != 1 {
		t.Errorf("against a partly reverted changeset: %+v, %v", r.New, err)
	}
	os.Remove(filepath.Join(partly, FileApplied))
	if r, err = Review(ctx, dir, ReviewOptions{}); err != nil || r.New.Since != "2026-03-01" || r.New.New != 3 {
		t.Errorf("past an entirely reverted changeset: %+v, %v", r.New, err)
	}

	r, err = Review(ctx, undone, ReviewOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Applied == nil || !r.Applied.Current || r.Applied.By != "ops" || r.Reverted == nil || r.Reverted.Changed != 2 ||
		len(r.Next) != 1 || !strings.HasPrefix(r.Next[0], "reverted") {
		t.Errorf("applied %+v, reverted %+v, next %q", r.Applied, r.Reverted, r.Next)
	}
	var b bytes.Buffer
	r.WriteText(&b)
	want := "apply            applied by ops, finished 2026-03-09T12:00:00Z: 2 changed, 1 skipped (already_unverified 1); " +
		"reverted by ops, finished 2026-03-09T12:00:00Z: 2 restored, 1 skipped (already_unverified 1)\n"
	if !strings.Contains(b.String(), want) {
		t.Errorf("text lacks %q:\n%s", want, b.String())
	}
	os.WriteFile(filepath.Join(undone, FileApplied), []byte("{"), 0o640)
	if r, err = Review(ctx, undone, ReviewOptions{}); err != nil || r.Applied == nil || !strings.Contains(r.Applied.Problem, "applied.json does not parse") {
		t.Errorf("unreadable applied.json: %+v %v", r.Applied, err)
	}
	if r, err = Review(ctx, dir, ReviewOptions{}); err != nil || len(r.New.Skipped) != 1 || !strings.HasPrefix(r.New.Skipped[0], "2026-03-02: applied.json does not parse") {
		t.Errorf("skipped %q, %v", r.New.Skipped, err)
	}
}
