package pipeline

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/lapse-dev/lapse/internal/duck"
)

// TestMailSchedule: the links copy is folded per domain once, read as it
// is while the copy is unchanged, folded again when the copy is replaced.
func TestMailSchedule(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	links, sched := filepath.Join(dir, "links.parquet"), filepath.Join(dir, "mail_schedule.parquet")
	db, err := duck.OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	write := func(rows string) {
		t.Helper()
		// Replaced by rename, as cache.ExportLinks replaces it.
		dWriteParquet(t, db, links, `SELECT domain, role, dep, CAST(next_check AS TIMESTAMPTZ) AS next_check, CAST(checked_at AS TIMESTAMPTZ) AS checked_at
			FROM (VALUES `+rows+`) v(domain, role, dep, next_check, checked_at)`)
	}
	type row struct {
		domain, next, deps string
	}
	read := func() (mailSchedule, []row) {
		t.Helper()
		s, ok, err := openMailSchedule(ctx, opened(db), links, sched)
		if err != nil || !ok {
			t.Fatalf("open: ok %v err %v", ok, err)
		}
		rs, err := db.QueryContext(ctx, `SELECT domain, strftime(next_check, '%Y-%m-%d'), array_to_string(deps, ',') FROM (`+s.Rel+`) ORDER BY domain`)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		var out []row
		for rs.Next() {
			var r row
			var next sql.NullString
			if err := rs.Scan(&r.domain, &next, &r.deps); err != nil {
				t.Fatal(err)
			}
			r.next = next.String
			out = append(out, r)
		}
		return s, out
	}
	if _, ok, err := openMailSchedule(ctx, opened(db), links, sched); ok || err != nil {
		t.Fatalf("no links copy: ok %v err %v", ok, err)
	}
	write(`('a.example', 'mx', 'mail.net', '2027-01-01', '2026-10-01'), ('a.example', 'ns', 'dns.net', '2027-02-01', '2026-11-01'),
		('a.example', 'ns', 'dns.net', '2027-02-01', '2026-11-01'), ('b.example', NULL, NULL, '2027-03-01', '2026-12-01')`)
	s, got := read()
	want := []row{{"a.example", "2027-02-01", "dns.net,mail.net"}, {"b.example", "2027-03-01", ""}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("schedule %+v, want %+v", got, want)
	}
	if s.meta.LinkRows != 3 || s.meta.Dependencies != 2 {
		t.Errorf("figures %+v, want 3 links, 2 dependencies", s.meta)
	}
	// Unchanged copy: the file is read, not folded again.
	fi, _ := os.Stat(sched)
	read()
	if fi2, _ := os.Stat(sched); !os.SameFile(fi, fi2) {
		t.Error("the schedule was folded again for an unchanged links copy")
	}
	// A new copy: folded again.
	write(`('c.example', 'mx', 'other.net', '2027-04-01', '2026-12-02')`)
	if _, got := read(); len(got) != 1 || got[0] != (row{"c.example", "2027-04-01", "other.net"}) {
		t.Errorf("after the copy changed: %+v", got)
	}
	// No file to keep it in: folded in the session.
	if err := os.Remove(sched); err != nil {
		t.Fatal(err)
	}
	s, ok, err := openMailSchedule(ctx, opened(db), links, "")
	if err != nil || !ok || s.meta.LinkRows != 1 || fileExists(sched) {
		t.Errorf("in-memory fold: ok %v err %v figures %+v", ok, err, s.meta)
	}
}
