package pipeline

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/internal/duck"
)

// TestMailDueRules: the Go walk of the domain list and the schedule keeps
// the due rules and their order (never looked up, then the earliest next
// check, then the name; a re-registration since the last lookup is due;
// a decisive domain never is) and finds the dependency domains of
// tonight's domains alone, the address domains among them left out.
func TestMailDueRules(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := duck.OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	snap := filepath.Join(dir, "emails.parquet")
	dWriteParquet(t, db, snap, `SELECT * FROM (VALUES ('rereg.example', true), ('late.example', true), ('new.example', true), ('fresh.example', true),
		('later.example', true), ('dead.example', true), ('late.example', true), ('unverified.example', false), (NULL, true)) v(domain, verified)`)
	links := filepath.Join(dir, "links.parquet")
	dWriteParquet(t, db, links, `SELECT domain, role, dep, CAST(next_check AS TIMESTAMPTZ) AS next_check, CAST(checked_at AS TIMESTAMPTZ) AS checked_at
		FROM (VALUES ('late.example', 'mx', 'mail.net', '2026-11-01', '2026-08-01'),
			('later.example', 'ns', NULL, '2026-11-20', '2026-08-20'),
			('fresh.example', 'ns', 'dns.net', '2027-01-01', '2026-11-01'),
			('fresh.example', 'mx', 'new.example', '2027-01-01', '2026-11-01'),
			('rereg.example', 'mx', 'mail.net', '2027-01-01', '2026-11-01'),
			('rereg.example', 'ns', 'rereg-dns.net', '2027-01-01', '2026-11-01'),
			('dead.example', 'mx', 'dead-mail.net', '2026-10-01', '2026-07-01'),
			('gone.example', 'mx', 'old.net', '2026-10-01', '2026-07-01')) v(domain, role, dep, next_check, checked_at)`)
	states := filepath.Join(dir, "states.parquet")
	dWriteParquet(t, db, states, `SELECT domain, state, CAST(changed AS TIMESTAMPTZ) AS registered_at_changed_at
		FROM (VALUES ('rereg.example', 'registered', '2026-11-15'), ('fresh.example', 'registered', '2026-10-01'),
			('dead.example', 'available', NULL), ('late.example', 'registered', NULL)) v(domain, state, changed)`)
	now := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	var res MailPathResult
	due, deps, err := mailDue(ctx, MailPathOptions{Snapshot: snap, LinksCopy: links, Schedule: filepath.Join(dir, "mail_schedule.parquet"),
		StatesCopy: states, Now: now}, &res)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"new.example", "late.example", "later.example", "rereg.example"}; !slices.Equal(due, want) {
		t.Errorf("due %v, want %v", due, want)
	}
	if want := []string{"dead-mail.net", "dns.net", "mail.net", "rereg-dns.net"}; !slices.Equal(deps, want) {
		t.Errorf("dependencies %v, want %v", deps, want)
	}
	if res.Links != 8 || res.Dependencies != 6 {
		t.Errorf("figures: %d links, %d dependencies, want 8 and 6", res.Links, res.Dependencies)
	}
	walkHalves(t, ctx, db, snap, links, filepath.Join(dir, "mail_schedule.parquet"), states, now)
	// mailDue walks the list in two halves, here too: the same answers.
	defer func(n int) { minParallelWalk = n }(minParallelWalk)
	minParallelWalk = 1
	due2, deps2, err := mailDue(ctx, MailPathOptions{Snapshot: snap, LinksCopy: links, Schedule: filepath.Join(dir, "mail_schedule.parquet"),
		StatesCopy: states, Now: now}, &res)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(due2, due) || !slices.Equal(deps2, deps) {
		t.Errorf("walked in two halves: due %v deps %v, want %v and %v", due2, deps2, due, deps)
	}

	// No links copy yet: every domain is due, in name order, and none has
	// a dependency.
	due, deps, err = mailDue(ctx, MailPathOptions{Snapshot: snap, LinksCopy: filepath.Join(dir, "none.parquet"), StatesCopy: states, Now: now}, &res)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"fresh.example", "late.example", "later.example", "new.example", "rereg.example"}; !slices.Equal(due, want) || deps == nil || len(deps) != 0 {
		t.Errorf("first night: due %v deps %#v, want %v and none", due, deps, want)
	}

	// A domain list not in order (not as the snapshot writes it) is
	// sorted, not trusted.
	list := filepath.Join(dir, "domains.parquet")
	dWriteParquet(t, db, list, `SELECT * FROM (VALUES ('b.example'), ('a.example'), ('c.example'), ('a.example')) v(domain)`)
	got, err := tonightDomains(ctx, opened(db), snapshotDomainsRel{snapshot: snap, list: list})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range got.n {
		names = append(names, got.value(i))
	}
	if want := []string{"a.example", "b.example", "c.example"}; !slices.Equal(names, want) {
		t.Errorf("domain list %v, want %v", names, want)
	}
	if r, ok := got.find("b.example"); !ok || r != 0 {
		t.Errorf("find b.example: row %d %v, want row 0", r, ok)
	}
	if _, ok := got.find("bb.example"); ok {
		t.Error("find bb.example: found")
	}
}

// TestNightIndexCurrent: the plan walks the dns stage's index only while
// the files it was read from are unchanged; a states copy written since
// (CurrentStates before the plan) is read again.
func TestNightIndexCurrent(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := duck.OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	snap, states := filepath.Join(dir, "emails.parquet"), filepath.Join(dir, "states.parquet")
	dWriteParquet(t, db, snap, `SELECT * FROM (VALUES ('b.example', true), ('a.example', true)) v(domain, verified)`)
	dWriteParquet(t, db, states, `SELECT * FROM (VALUES ('a.example', 'registered')) v(domain, state)`)
	rel := snapshotDomainsSQL(snap, "", "")
	x, err := loadNightIndex(ctx, opened(db), rel, states)
	if err != nil {
		t.Fatal(err)
	}
	if !x.current(rel, states) || x.domains.n != 2 || x.states == nil || x.states.dom.n != 1 {
		t.Fatalf("index: current %v, %d domains, states %+v", x.current(rel, states), x.domains.n, x.states)
	}
	var none *nightIndex
	if none.current(rel, states) {
		t.Error("no index is current")
	}
	dWriteParquet(t, db, states, `SELECT * FROM (VALUES ('a.example', 'registered'), ('b.example', 'available')) v(domain, state)`)
	if x.current(rel, states) {
		t.Error("index still current after the states copy was written again")
	}
	// A states copy that cannot be read is the runner's to write again.
	if err := os.WriteFile(states, []byte("not parquet"), 0o600); err != nil {
		t.Fatal(err)
	}
	var unreadable statesReadError
	if _, err := loadNightIndex(ctx, opened(db), rel, states); !errors.As(err, &unreadable) {
		t.Errorf("damaged states copy: %v, want a statesReadError", err)
	}
}

// dWriteParquet writes the rows of query q to path with db, replacing the
// file by rename as lapse replaces its copies (a new inode).
func dWriteParquet(t *testing.T, db *sql.DB, path, q string) {
	t.Helper()
	tmp := path + ".tmp"
	if _, err := db.Exec("COPY (" + q + ") TO " + duck.String(tmp) + " (FORMAT parquet)"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// walkHalves checks that dueWalk split at every position of the domain
// list finds what one walk of the whole list finds: the due domains in
// order and the dependencies marked.
func walkHalves(t *testing.T, ctx context.Context, db *sql.DB, snap, links, schedule, states string, now time.Time) {
	t.Helper()
	idx, err := loadNightIndex(ctx, opened(db), snapshotDomainsSQL(snap, "", ""), states)
	if err != nil {
		t.Fatal(err)
	}
	defer idx.states.release()
	sched, ok, err := openMailSchedule(ctx, opened(db), links, schedule)
	if err != nil || !ok {
		t.Fatalf("schedule: %v %v", ok, err)
	}
	s, err := readScheduleCols(ctx, schedule, len(sched.meta.DepNames))
	if err != nil {
		t.Fatal(err)
	}
	defer s.release()
	n, at := idx.domains.n, now.UnixMicro()
	if n < 3 {
		t.Fatalf("%d domains: too few to split", n)
	}
	used := make([]bool, len(sched.meta.DepNames))
	whole := dueWalk(idx.domains, 0, n, idx.states, s, at, used)
	if len(whole) == 0 || !slices.Contains(used, true) {
		t.Fatalf("one walk: due %v, dependencies %v: nothing to compare", whole, used)
	}
	for k := 0; k <= n; k++ {
		u1, u2 := make([]bool, len(used)), make([]bool, len(used))
		got := append(dueWalk(idx.domains, 0, k, idx.states, s, at, u1), dueWalk(idx.domains, k, n, idx.states, s, at, u2)...)
		for i := range u1 {
			u1[i] = u1[i] || u2[i]
		}
		if !slices.Equal(got, whole) || !slices.Equal(u1, used) {
			t.Errorf("split at %d of %d: due %v deps %v, want %v and %v", k, n, got, u1, whole, used)
		}
	}
}
