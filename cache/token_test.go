package cache

import (
	"context"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/lapse-dev/lapse/lifecycle"
)

func mustToken(t *testing.T, c *Cache) string {
	t.Helper()
	tok, err := c.ChangeToken(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// The token is what lets the nightly run reuse its Parquet copy of the
// cache: it must change with every write of an entry and only then.
func TestChangeTokenFollowsWrites(t *testing.T) {
	clk := &clock{t: ts("2026-01-01T02:00:00Z")}
	dir := t.TempDir()
	c, err := Open(dir, Options{Now: clk.Now, DropAfter: 90 * Day})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t0 := mustToken(t, c)
	if t0 == "" {
		t.Fatal("a new cache has no change token")
	}
	if _, _, err := c.Get(ctx, "a.com"); err != nil {
		t.Fatal(err)
	}
	if got := mustToken(t, c); got != t0 {
		t.Error("a read changed the token")
	}
	if _, err := c.Record(ctx, answer("a.com", lifecycle.Registered, clk.Now())); err != nil {
		t.Fatal(err)
	}
	t1 := mustToken(t, c)
	if t1 == t0 {
		t.Error("Record did not change the token")
	}
	if err := c.MarkUnverified(ctx, []string{"a.com"}); err != nil {
		t.Fatal(err)
	}
	t2 := mustToken(t, c)
	if t2 == t1 {
		t.Error("MarkUnverified did not change the token")
	}
	// Reopening keeps the token: nothing changed.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if c, err = Open(dir, Options{Now: clk.Now, DropAfter: 90 * Day}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := mustToken(t, c); got != t2 {
		t.Errorf("reopen changed the token: %s, want %s", got, t2)
	}
	clk.Set(ts("2026-06-01T02:00:00Z"))
	if r, err := c.Collect(ctx); err != nil || r.Dropped != 1 {
		t.Fatalf("collect: %+v %v", r, err)
	}
	if got := mustToken(t, c); got == t2 {
		t.Error("GC's drop did not change the token")
	}
}

// ScanToken's entries and token come from one view: a Record after it
// changes the token, so the scanned copy is known to be stale.
func TestScanTokenIsConsistent(t *testing.T) {
	clk := &clock{t: ts("2026-01-01T02:00:00Z")}
	c := openTest(t, t.TempDir(), clk)
	ctx := context.Background()
	for _, d := range []string{"a.com", "b.com", "c.com"} {
		if _, err := c.Record(ctx, answer(d, lifecycle.Registered, clk.Now())); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	tok, err := c.ScanToken(ctx, func(e Entry) error {
		seen = append(seen, e.Domain)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 3 || tok != mustToken(t, c) {
		t.Fatalf("scan saw %v with token %s, cache token %s", seen, tok, mustToken(t, c))
	}
	if _, err := c.Record(ctx, answer("d.com", lifecycle.Registered, clk.Now())); err != nil {
		t.Fatal(err)
	}
	if tok == mustToken(t, c) {
		t.Error("token unchanged after a Record that followed the scan")
	}
}

// Concurrent Records all write the token without reading it: none of them
// may fail with a conflict over it.
func TestConcurrentRecordsDoNotConflictOverToken(t *testing.T) {
	clk := &clock{t: ts("2026-01-01T02:00:00Z")}
	c := openTest(t, t.TempDir(), clk)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for w := range 8 {
		wg.Go(func() {
			for i := range 50 {
				d := string(rune('a'+w)) + string(rune('a'+i%26)) + string(rune('a'+i/26)) + ".com"
				if _, err := c.Record(ctx, answer(d, lifecycle.Registered, clk.Now())); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A cache written before tokens existed gets one on its first writable
// open; read-only it reports "" (no copy is ever current).
func TestTokenOfAnOlderCache(t *testing.T) {
	clk := &clock{t: ts("2026-01-01T02:00:00Z")}
	dir := t.TempDir()
	c := openTest(t, dir, clk)
	if _, err := c.Record(context.Background(), answer("a.com", lifecycle.Registered, clk.Now())); err != nil {
		t.Fatal(err)
	}
	if err := c.db.Update(func(txn *badger.Txn) error { return txn.Delete([]byte(metaChanged)) }); err != nil {
		t.Fatal(err)
	}
	c.Close()
	ro, err := Open(dir, Options{Now: clk.Now, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := mustToken(t, ro); got != "" {
		t.Errorf("read-only token of an older cache = %q, want empty", got)
	}
	ro.Close()
	rw := openTest(t, dir, clk)
	if mustToken(t, rw) == "" {
		t.Error("a writable open did not give an older cache a token")
	}
}
