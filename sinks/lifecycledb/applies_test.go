package lifecycledb

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

func TestAppliedChangesRoundTrip(t *testing.T) {
	ctx := context.Background()
	d, err := Open(filepath.Join(t.TempDir(), "lapse.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	rows := []AppliedChange{{EmailID: 1, UserID: "u1", Domain: "a.com", Reason: "domain_available", AppliedAt: at},
		{EmailID: 2, UserID: "u2", Domain: "b.com", Reason: "domain_redemption", AppliedAt: at}}
	for range 2 { // idempotent
		if err := d.RecordApplied(ctx, "2026-03-01", "sha1", rows); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.RecordReverted(ctx, "sha1", []int64{2}, at.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var n, reverted int
	if err := d.SQL().QueryRow(`SELECT count(*), count(reverted_at) FROM applied_changes`).Scan(&n, &reverted); err != nil {
		t.Fatal(err)
	}
	if n != 2 || reverted != 1 {
		t.Fatalf("applied_changes: %d rows, %d reverted; want 2, 1", n, reverted)
	}
	if _, _, ok, err := d.LastApplied(ctx, "2026-03-05"); err != nil || ok {
		t.Fatalf("LastApplied before any apply run = %v, %v; want none", ok, err)
	}
	if err := d.RecordApplyRun(ctx, ApplyRun{Date: "2026-03-01", ManifestSHA256: "sha1", Action: "apply", Changed: 2, By: "ann", StartedAt: at, FinishedAt: at}); err != nil {
		t.Fatal(err)
	}
	date, sha, ok, err := d.LastApplied(ctx, "2026-03-05")
	if err != nil || !ok || date != "2026-03-01" || sha != "sha1" {
		t.Fatalf("LastApplied = %q %q %v %v; want 2026-03-01 sha1", date, sha, ok, err)
	}
	a := Approval{Date: "2026-03-01", ManifestSHA256: "sha1", Status: "proposed", Flagged: 2, By: "ann", ApprovedAt: at}
	for range 2 {
		if err := d.RecordApproval(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.SQL().QueryRow(`SELECT count(*) FROM approvals`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("approvals: %d rows (%v); want 1", n, err)
	}
	if err := d.SQL().QueryRow(`SELECT unverified, reverted FROM applied_by_night`).Scan(&n, &reverted); err != nil || n != 2 || reverted != 1 {
		t.Fatalf("applied_by_night = %d, %d (%v); want 2, 1", n, reverted, err)
	}
}
