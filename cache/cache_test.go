package cache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/lapse-dev/lapse/lifecycle"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func openTest(t testing.TB, dir string, clk *clock) *Cache {
	t.Helper()
	c, err := Open(dir, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func answer(domain string, st lifecycle.State, at time.Time) lifecycle.Lifecycle {
	delegated := true
	return lifecycle.Lifecycle{
		Domain:       domain,
		State:        st,
		Statuses:     []string{"client transfer prohibited"},
		RegisteredAt: tp("2015-06-01T10:00:00Z"),
		ExpiresAt:    tp("2027-06-01T10:00:00Z"),
		Delegated:    &delegated,
		Source:       lifecycle.SourceRDAP,
		CheckedAt:    at,
		AsOf:         at,
		Corroborated: true,
		Evidence: []lifecycle.Evidence{{
			Source: lifecycle.SourceRDAP, State: st, Statuses: []string{"client transfer prohibited"},
			RegisteredAt: tp("2015-06-01T10:00:00Z"), ExpiresAt: tp("2027-06-01T10:00:00Z"), CheckedAt: at,
			Server: "rdap.example.net",
		}},
	}
}

func failure(domain string, at time.Time, msg string) lifecycle.Lifecycle {
	return lifecycle.Lifecycle{Domain: domain, State: lifecycle.Unknown, Source: lifecycle.SourceRDAP, CheckedAt: at, AsOf: at, Error: msg}
}

func TestRecordGetAndRestart(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: ts("2026-03-10T02:00:00Z")}
	c := openTest(t, dir, clk)
	ctx := context.Background()

	want := map[string]Entry{}
	for i, d := range []string{"example.com", "zeta.org", "Alpha.NET.", "b\u00fccher.de"} {
		st := []lifecycle.State{lifecycle.Registered, lifecycle.Available, lifecycle.Redemption, lifecycle.Reserved}[i]
		e, err := c.Record(ctx, answer(d, st, clk.Now()))
		if err != nil {
			t.Fatal(err)
		}
		want[e.Domain] = e
	}
	if _, ok := want["alpha.net"]; !ok {
		t.Fatalf("domain not normalized: %v", want)
	}
	e, found, err := c.Get(ctx, "EXAMPLE.com.")
	if err != nil || !found {
		t.Fatalf("Get: found %v, err %v", found, err)
	}
	if e.NextCheck.IsZero() || e.Lifecycle.Evidence[0].Server != "rdap.example.net" {
		t.Errorf("entry lost data: %+v", e)
	}
	if _, found, err := c.Get(ctx, "missing.com"); found || err != nil {
		t.Errorf("missing domain: found %v, err %v", found, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, err := c.Get(ctx, "example.com"); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v, want ErrClosed", err)
	}

	c2 := openTest(t, dir, clk)
	var got []string
	err = c2.Scan(ctx, func(e Entry) error {
		got = append(got, e.Domain)
		if !reflect.DeepEqual(e, want[e.Domain]) {
			t.Errorf("after restart %s:\n got %+v\nwant %+v", e.Domain, e, want[e.Domain])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Keys are address.Fold's form: bücher.de is stored as its A-label.
	if w := []string{"alpha.net", "example.com", "xn--bcher-kva.de", "zeta.org"}; !reflect.DeepEqual(got, w) {
		t.Errorf("scan order %q, want %q", got, w)
	}
}

func TestErrorKeepsLastKnownAnswer(t *testing.T) {
	clk := &clock{t: ts("2026-03-10T02:00:00Z")}
	c := openTest(t, t.TempDir(), clk)
	ctx := context.Background()

	// Nothing known yet: the unknown answer is all there is.
	e, err := c.Record(ctx, failure("new.com", clk.Now(), "rdap new.com: 429 Too Many Requests"))
	if err != nil {
		t.Fatal(err)
	}
	if e.Lifecycle.State != lifecycle.Unknown || e.ConsecutiveErrors != 1 || e.LastError == "" {
		t.Errorf("first failure: %+v", e)
	}

	first := clk.Now()
	if _, err := c.Record(ctx, answer("ex.com", lifecycle.Redemption, first)); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		clk.Set(first.Add(time.Duration(i) * Day))
		e, err = c.Record(ctx, failure("ex.com", clk.Now(), "timeout"))
		if err != nil {
			t.Fatal(err)
		}
		if e.Lifecycle.State != lifecycle.Redemption || !e.Lifecycle.CheckedAt.Equal(first) {
			t.Fatalf("error %d replaced the known answer: %+v", i, e.Lifecycle)
		}
		if e.ConsecutiveErrors != i || e.LastError != "timeout" || !e.LastCheckedAt.Equal(clk.Now()) {
			t.Errorf("error %d: count %d, last %q, checked %s", i, e.ConsecutiveErrors, e.LastError, e.LastCheckedAt)
		}
		// Redemption is checked nightly even while lookups fail.
		if w := clk.Now().Add(Day - NightSlack); !e.NextCheck.Equal(w) {
			t.Errorf("error %d: next check %s, want %s", i, e.NextCheck, w)
		}
	}
	if e.FirstCheckedAt != first {
		t.Errorf("first checked %s, want %s", e.FirstCheckedAt, first)
	}
	// An unknown answer without error text is still an error.
	e, _ = c.Record(ctx, lifecycle.Lifecycle{Domain: "ex.com", State: lifecycle.Unknown, Source: lifecycle.SourceDomainr})
	if e.LastError == "" || e.ConsecutiveErrors != 4 || e.Lifecycle.State != lifecycle.Redemption {
		t.Errorf("unknown without error: %+v", e)
	}
	clk.Set(first.Add(5 * Day))
	e, _ = c.Record(ctx, answer("ex.com", lifecycle.Registered, clk.Now()))
	if e.ConsecutiveErrors != 0 || e.LastError != "" || e.Lifecycle.State != lifecycle.Registered {
		t.Errorf("success did not reset errors: %+v", e)
	}
}

func TestReregistrationSignal(t *testing.T) {
	clk := &clock{t: ts("2026-03-10T02:00:00Z")}
	c := openTest(t, t.TempDir(), clk)
	ctx := context.Background()

	a := answer("ex.com", lifecycle.Registered, clk.Now())
	e, _ := c.Record(ctx, a)
	if e.PreviousRegisteredAt != nil {
		t.Fatal("first answer cannot be a change")
	}
	// WHOIS gives the date only, in some zone: not a change.
	clk.Set(clk.Now().Add(Day))
	b := answer("ex.com", lifecycle.Registered, clk.Now())
	b.Source, b.RegisteredAt = lifecycle.SourceWHOIS, tp("2015-06-01T00:00:00Z")
	if e, _ = c.Record(ctx, b); e.PreviousRegisteredAt != nil {
		t.Fatalf("date precision flagged as re-registration: %+v", e)
	}
	// It lapses: available answers carry no registered_at.
	clk.Set(clk.Now().Add(40 * Day))
	gone := answer("ex.com", lifecycle.Available, clk.Now())
	gone.RegisteredAt, gone.ExpiresAt = nil, nil
	if e, _ = c.Record(ctx, gone); e.DecisiveNights != 1 || e.KnownRegisteredAt == nil {
		t.Fatalf("available: %+v", e)
	}
	if err := c.MarkUnverified(ctx, []string{"ex.com", "not-cached.org"}); err != nil {
		t.Fatal(err)
	}
	if e, _, _ = c.Get(ctx, "ex.com"); !e.Unverified || !e.NextCheck.Equal(e.LastCheckedAt.Add(7*Day-NightSlack)) {
		t.Fatalf("MarkUnverified: unverified %v, next %s", e.Unverified, e.NextCheck)
	}
	if _, found, _ := c.Get(ctx, "not-cached.org"); found {
		t.Error("MarkUnverified created an entry")
	}
	// Someone registers it again.
	clk.Set(clk.Now().Add(7 * Day))
	again := answer("ex.com", lifecycle.Registered, clk.Now())
	again.RegisteredAt = tp("2026-04-20T08:00:00Z")
	e, _ = c.Record(ctx, again)
	if e.PreviousRegisteredAt == nil || !e.PreviousRegisteredAt.Equal(ts("2015-06-01T00:00:00Z")) ||
		e.RegisteredAtChangedAt == nil || !e.RegisteredAtChangedAt.Equal(clk.Now()) {
		t.Fatalf("re-registration not seen: prev %v at %v", e.PreviousRegisteredAt, e.RegisteredAtChangedAt)
	}
	if e.Unverified || e.DecisiveSince != nil || e.DecisiveNights != 0 {
		t.Errorf("re-registered entry kept lapse flags: %+v", e)
	}
	// The signal persists over later answers with the same date.
	clk.Set(clk.Now().Add(30 * Day))
	if e, _ = c.Record(ctx, again); e.PreviousRegisteredAt == nil {
		t.Error("re-registration signal lost on the next answer")
	}
}

func TestDecisiveNights(t *testing.T) {
	clk := &clock{t: ts("2026-03-10T02:00:00Z")}
	c := openTest(t, t.TempDir(), clk)
	ctx := context.Background()
	start := clk.Now()
	steps := []struct {
		after  time.Duration
		lc     func(time.Time) lifecycle.Lifecycle
		nights int
	}{
		{0, func(at time.Time) lifecycle.Lifecycle { return answer("d.com", lifecycle.PendingDelete, at) }, 1},
		{time.Hour, func(at time.Time) lifecycle.Lifecycle { return answer("d.com", lifecycle.PendingDelete, at) }, 1}, // same night
		{Day, func(at time.Time) lifecycle.Lifecycle { return failure("d.com", at, "reset") }, 1},                      // error: run kept
		{2 * Day, func(at time.Time) lifecycle.Lifecycle { return answer("d.com", lifecycle.Available, at) }, 2},
		{3 * Day, func(at time.Time) lifecycle.Lifecycle { return answer("d.com", lifecycle.Registered, at) }, 0},
	}
	for i, s := range steps {
		clk.Set(start.Add(s.after))
		e, err := c.Record(ctx, s.lc(clk.Now()))
		if err != nil {
			t.Fatal(err)
		}
		if e.DecisiveNights != s.nights {
			t.Errorf("step %d: decisive nights %d, want %d", i, e.DecisiveNights, s.nights)
		}
		if s.nights > 0 && (e.DecisiveSince == nil || !e.DecisiveSince.Equal(start)) {
			t.Errorf("step %d: decisive since %v, want %s", i, e.DecisiveSince, start)
		}
	}
}

func TestCancelledRecordWritesNothing(t *testing.T) {
	clk := &clock{t: ts("2026-03-10T02:00:00Z")}
	c := openTest(t, t.TempDir(), clk)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Record(ctx, answer("x.com", lifecycle.Registered, clk.Now())); !errors.Is(err, context.Canceled) {
		t.Fatalf("Record with a cancelled context: %v", err)
	}
	if _, found, _ := c.Get(context.Background(), "x.com"); found {
		t.Error("cancelled Record wrote an entry")
	}
	if _, err := c.Record(context.Background(), lifecycle.Lifecycle{State: lifecycle.Registered}); err == nil {
		t.Error("Record without a domain succeeded")
	}
}

func TestConcurrentRecordGet(t *testing.T) {
	clk := &clock{t: ts("2026-03-10T02:00:00Z")}
	c := openTest(t, t.TempDir(), clk)
	ctx := context.Background()
	const workers, perWorker, domains = 8, 200, 10
	var wg sync.WaitGroup
	var failures atomic.Int64
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				d := fmt.Sprintf("d%d.com", (w+i)%domains)
				lc := answer(d, lifecycle.Registered, clk.Now())
				if i%3 == 0 {
					lc = failure(d, clk.Now(), "timeout")
					failures.Add(1)
				}
				if _, err := c.Record(ctx, lc); err != nil {
					errs <- err
					return
				}
				if _, found, err := c.Get(ctx, d); err != nil || !found {
					errs <- fmt.Errorf("get %s: found %v, err %v", d, found, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	n := 0
	if err := c.Scan(ctx, func(e Entry) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != domains {
		t.Errorf("%d entries, want %d", n, domains)
	}
	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries != domains || st.SizeBytes <= 0 {
		t.Errorf("stats %+v", st)
	}
}

// Badger's directory lock is an flock on the folder, held per open file, so
// a second Open in the same process conflicts just like another process.
func TestSecondOpenIsLocked(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: ts("2026-03-10T02:00:00Z")}
	c := openTest(t, dir, clk)
	if _, err := c.Record(context.Background(), answer("x.com", lifecycle.Registered, clk.Now())); err != nil {
		t.Fatal(err)
	}
	want := "cache at " + dir + " is in use by another lapse process"
	for _, ro := range []bool{false, true} {
		c2, err := Open(dir, Options{ReadOnly: ro})
		if err == nil {
			c2.Close()
			t.Fatalf("second Open (read-only %v) succeeded", ro)
		}
		if !errors.Is(err, ErrLocked) || err.Error() != want {
			t.Errorf("second Open (read-only %v): %v, want %q", ro, err, want)
		}
	}
	c.Close()

	// Readers share; a writer beside them is locked out.
	r1, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	r2, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if e, found, err := r2.Get(context.Background(), "x.com"); err != nil || !found || e.Lifecycle.State != lifecycle.Registered {
		t.Errorf("read-only Get: %v %v %v", e.Lifecycle.State, found, err)
	}
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Errorf("writer beside readers: %v", err)
	}
	if _, err := Open(filepath.Join(dir, "nope"), Options{ReadOnly: true}); !errors.Is(err, ErrNotExist) {
		t.Errorf("read-only Open of a missing cache: %v", err)
	}
}

// The lock between processes: the test binary re-executes itself as the
// second process.
func TestLockedAcrossProcesses(t *testing.T) {
	if dir := os.Getenv("LAPSE_CACHE_LOCK_CHILD"); dir != "" {
		_, err := Open(dir, Options{})
		if errors.Is(err, ErrLocked) {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		fmt.Fprintln(os.Stderr, "unexpected:", err)
		os.Exit(4)
	}
	dir := t.TempDir()
	openTest(t, dir, &clock{t: ts("2026-03-10T02:00:00Z")})
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockedAcrossProcesses$")
	cmd.Env = append(os.Environ(), "LAPSE_CACHE_LOCK_CHILD="+dir)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "cache at "+dir+" is in use by another lapse process") {
		t.Errorf("child said %q", out)
	}
}

func TestGCDropsStaleEntries(t *testing.T) {
	clk := &clock{t: ts("2026-01-01T02:00:00Z")}
	dir := t.TempDir()
	c, err := Open(dir, Options{Now: clk.Now, DropAfter: 90 * Day})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	c.Record(ctx, answer("old.com", lifecycle.Registered, clk.Now()))
	clk.Set(ts("2026-03-01T02:00:00Z"))
	c.Record(ctx, answer("recent.com", lifecycle.Registered, clk.Now()))
	clk.Set(ts("2026-04-15T02:00:00Z"))
	r, err := c.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Dropped != 1 {
		t.Errorf("dropped %d, want 1", r.Dropped)
	}
	if _, found, _ := c.Get(ctx, "old.com"); found {
		t.Error("old.com survived GC")
	}
	if _, found, _ := c.Get(ctx, "recent.com"); !found {
		t.Error("recent.com dropped")
	}
	if err := c.GC(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestNewerEncodingIsAClearError(t *testing.T) {
	clk := &clock{t: ts("2026-03-10T02:00:00Z")}
	c := openTest(t, t.TempDir(), clk)
	err := c.db.Update(func(txn *badger.Txn) error { return txn.Set(key("future.com"), []byte{9, '{', '}'}) })
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Get(context.Background(), "future.com"); err == nil || !strings.Contains(err.Error(), "upgrade lapse") {
		t.Errorf("newer encoding: %v", err)
	}
}

// BenchmarkGetHit measures a cache hit: one Badger read and the decode of
// a Lifecycle with its evidence.
func BenchmarkGetHit(b *testing.B) {
	clk := &clock{t: ts("2026-03-10T02:00:00Z")}
	c := openTest(b, b.TempDir(), clk)
	ctx := context.Background()
	const n = 10000
	for i := range n {
		if _, err := c.Record(ctx, answer(fmt.Sprintf("domain%05d.com", i), lifecycle.Registered, clk.Now())); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, found, err := c.Get(ctx, fmt.Sprintf("domain%05d.com", i%n)); err != nil || !found {
			b.Fatal(found, err)
		}
		i++
	}
}

// BenchmarkRecord measures a Record (read, merge, write in one
// transaction) and reports the space the entries take on disk.
func BenchmarkRecord(b *testing.B) {
	clk := &clock{t: ts("2026-03-10T02:00:00Z")}
	dir := b.TempDir()
	c := openTest(b, dir, clk)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := c.Record(ctx, answer(fmt.Sprintf("domain%07d.com", i), lifecycle.Registered, clk.Now())); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.StopTimer()
	if err := c.Close(); err != nil {
		b.Fatal(err)
	}
	size, err := diskUsage(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(size)/float64(i), "disk-B/entry")
}

// A run killed without Close (no deferred cleanup, as on SIGKILL) loses no
// committed Record: the test binary re-executes itself as the run.
func TestKilledRunKeepsCommittedRecords(t *testing.T) {
	const n = 200
	if dir := os.Getenv("LAPSE_CACHE_KILL_CHILD"); dir != "" {
		clk := &clock{t: ts("2026-03-10T02:00:00Z")}
		c, err := Open(dir, Options{Now: clk.Now})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(4)
		}
		for i := range n {
			if _, err := c.Record(context.Background(), answer(fmt.Sprintf("k%03d.com", i), lifecycle.Available, clk.Now())); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(4)
			}
		}
		os.Exit(0) // no Close
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledRunKeepsCommittedRecords$")
	cmd.Env = append(os.Environ(), "LAPSE_CACHE_KILL_CHILD="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	// Badger cannot replay the log read-only; the error says what to do.
	if _, err := Open(dir, Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "not closed cleanly") {
		t.Errorf("read-only Open after a killed run: %v", err)
	}
	c := openTest(t, dir, &clock{t: ts("2026-03-10T02:00:00Z")})
	got := 0
	err := c.Scan(context.Background(), func(e Entry) error {
		if e.Lifecycle.State != lifecycle.Available || e.NextCheck.IsZero() {
			return fmt.Errorf("entry %s damaged: %+v", e.Domain, e)
		}
		got++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != n {
		t.Errorf("%d entries after the killed run, want %d", got, n)
	}
}

// statusAnswer is a Domainr answer (no dates), with RDAP's failure in the
// evidence when rdapErr is set: the chain asked it and it failed.
func statusAnswer(domain string, st lifecycle.State, flags []string, at time.Time, rdapErr string) lifecycle.Lifecycle {
	lc := lifecycle.Lifecycle{Domain: domain, State: st, Statuses: flags, Source: lifecycle.SourceDomainr, CheckedAt: at, AsOf: at,
		Evidence: []lifecycle.Evidence{{Source: lifecycle.SourceDomainr, State: st, Statuses: flags, CheckedAt: at}}}
	if rdapErr != "" {
		lc.Evidence = append(lc.Evidence, lifecycle.Evidence{Source: lifecycle.SourceRDAP, State: lifecycle.Unknown, CheckedAt: at, Error: rdapErr})
	}
	return lc
}

// Issue 11: a status API's answer never erases the dates an
// authoritative one gave, and the entry keeps both answers' facts apart.
func TestStatusAnswerKeepsAuthoritativeFacts(t *testing.T) {
	clk := &clock{t: ts("2026-03-10T02:00:00Z")}
	c := openTest(t, t.TempDir(), clk)
	ctx := context.Background()
	first := clk.Now()
	if _, err := c.Record(ctx, answer("ex.com", lifecycle.Registered, first)); err != nil {
		t.Fatal(err)
	}
	clk.Set(first.Add(30 * Day))
	e, err := c.Record(ctx, statusAnswer("ex.com", lifecycle.Registered, []string{"Active"}, clk.Now(), ""))
	if err != nil {
		t.Fatal(err)
	}
	lc := e.Lifecycle
	if lc.Source != lifecycle.SourceDomainr || lc.RegisteredAt == nil || !lc.RegisteredAt.Equal(ts("2015-06-01T10:00:00Z")) ||
		lc.ExpiresAt == nil || !lc.ExpiresAt.Equal(ts("2027-06-01T10:00:00Z")) {
		t.Fatalf("status answer lost the dates: %+v", lc)
	}
	if e.AuthCheckedAt == nil || !e.AuthCheckedAt.Equal(first) || e.AuthSource != lifecycle.SourceRDAP || e.AuthState != lifecycle.Registered {
		t.Errorf("authoritative facts: checked %v source %s state %s", e.AuthCheckedAt, e.AuthSource, e.AuthState)
	}
	if e.StatusSource != lifecycle.SourceDomainr || !reflect.DeepEqual(e.StatusFlags, []string{"active"}) || e.StatusCheckedAt == nil || !e.StatusCheckedAt.Equal(clk.Now()) {
		t.Errorf("status facts: %s %q %v", e.StatusSource, e.StatusFlags, e.StatusCheckedAt)
	}
	if e.PreviousRegisteredAt != nil {
		t.Error("kept dates read as a re-registration")
	}
	// The schedule reads the kept expiry: 14 days before it when that
	// comes before the 30 days.
	soon := answer("soon.com", lifecycle.Registered, first)
	soon.ExpiresAt, soon.Evidence[0].ExpiresAt = tp("2026-05-10T00:00:00Z"), tp("2026-05-10T00:00:00Z")
	if _, err := c.Record(ctx, soon); err != nil {
		t.Fatal(err)
	}
	if s, _ := c.Record(ctx, statusAnswer("soon.com", lifecycle.Registered, []string{"active"}, clk.Now(), "")); !s.NextCheck.Equal(ts("2026-05-10T00:00:00Z").Add(-ExpiryLead)) {
		t.Errorf("next check %s, want 14 days before the kept expiry", s.NextCheck)
	}
	// A stored expiry is not lost when a later status answer has none,
	// night after night.
	clk.Set(clk.Now().Add(30 * Day))
	if e, _ = c.Record(ctx, statusAnswer("ex.com", lifecycle.Registered, []string{"active"}, clk.Now(), "")); e.Lifecycle.ExpiresAt == nil {
		t.Fatal("expiry lost on the second status answer")
	}
	// A later authoritative registration date is a re-registration.
	clk.Set(clk.Now().Add(Day))
	again := answer("ex.com", lifecycle.Registered, clk.Now())
	again.RegisteredAt, again.Evidence[0].RegisteredAt = tp("2026-05-01T00:00:00Z"), tp("2026-05-01T00:00:00Z")
	e, _ = c.Record(ctx, again)
	if e.PreviousRegisteredAt == nil || !e.PreviousRegisteredAt.Equal(ts("2015-06-01T10:00:00Z")) || !e.AuthRegisteredAt.Equal(ts("2026-05-01T00:00:00Z")) {
		t.Fatalf("re-registration: previous %v, auth registered %v", e.PreviousRegisteredAt, e.AuthRegisteredAt)
	}
	// An authoritative answer may erase: WHOIS without an expiry.
	clk.Set(clk.Now().Add(Day))
	w := answer("ex.com", lifecycle.Registered, clk.Now())
	w.Source, w.ExpiresAt, w.Evidence[0].Source, w.Evidence[0].ExpiresAt = lifecycle.SourceWHOIS, nil, lifecycle.SourceWHOIS, nil
	w.RegisteredAt, w.Evidence[0].RegisteredAt = again.RegisteredAt, again.RegisteredAt
	if e, _ = c.Record(ctx, w); e.AuthExpiresAt != nil || e.Lifecycle.ExpiresAt != nil || e.AuthSource != lifecycle.SourceWHOIS {
		t.Errorf("WHOIS without expiry: auth %v lc %v", e.AuthExpiresAt, e.Lifecycle.ExpiresAt)
	}
}

// A status API says "active" through grace: after RDAP saw grace, its
// "active" keeps the grace state (nightly re-checks) until RDAP answers
// again; an "inactive" answer takes no dates from the old registration.
func TestStatusAnswerKeepsLapsingState(t *testing.T) {
	clk := &clock{t: ts("2026-03-10T02:00:00Z")}
	c := openTest(t, t.TempDir(), clk)
	ctx := context.Background()
	g := answer("ex.com", lifecycle.Grace, clk.Now())
	g.ExpiresAt, g.Evidence[0].ExpiresAt = tp("2026-03-01T00:00:00Z"), tp("2026-03-01T00:00:00Z")
	if _, err := c.Record(ctx, g); err != nil {
		t.Fatal(err)
	}
	clk.Set(clk.Now().Add(Day))
	e, _ := c.Record(ctx, statusAnswer("ex.com", lifecycle.Registered, []string{"active"}, clk.Now(), "rdap ex.com: connection reset"))
	if e.Lifecycle.State != lifecycle.Grace || !e.NextCheck.Equal(clk.Now().Add(Day-NightSlack)) {
		t.Errorf("grace lost to a status answer: %s, next %s", e.Lifecycle.State, e.NextCheck)
	}
	if e.AuthFailures != 1 || e.AuthRetryAt == nil || !e.AuthRetryAt.Equal(clk.Now().Add(Day-NightSlack)) {
		t.Errorf("failed refresh: failures %d retry %v", e.AuthFailures, e.AuthRetryAt)
	}
	clk.Set(clk.Now().Add(Day))
	if e, _ = c.Record(ctx, statusAnswer("ex.com", lifecycle.Registered, []string{"active"}, clk.Now(), "rdap ex.com: timeout")); e.AuthFailures != 2 || !e.AuthRetryAt.Equal(clk.Now().Add(2*Day-NightSlack)) {
		t.Errorf("second failed refresh: failures %d retry %v", e.AuthFailures, e.AuthRetryAt)
	}
	clk.Set(clk.Now().Add(2 * Day))
	e, _ = c.Record(ctx, statusAnswer("ex.com", lifecycle.Available, []string{"undelegated", "inactive"}, clk.Now(), ""))
	if e.Lifecycle.State != lifecycle.Available || e.Lifecycle.ExpiresAt != nil || e.Lifecycle.RegisteredAt != nil {
		t.Errorf("inactive took the old registration's dates: %+v", e.Lifecycle)
	}
	if e.AuthFailures != 2 {
		t.Errorf("a lookup that did not ask RDAP changed its failures: %d", e.AuthFailures)
	}
	if _, err := c.Record(ctx, statusAnswer("new.com", lifecycle.Registered, []string{"active"}, clk.Now(), "")); err != nil {
		t.Fatal(err)
	}
	if st, err := c.Stats(ctx); err != nil || st.NoAuthoritative != 1 {
		t.Errorf("stats: %d entries without an authoritative answer, want 1 (err %v)", st.NoAuthoritative, err)
	}
	clk.Set(clk.Now().Add(Day))
	if e, _ = c.Record(ctx, answer("ex.com", lifecycle.Registered, clk.Now())); e.AuthFailures != 0 || e.AuthRetryAt != nil {
		t.Errorf("an authoritative answer did not reset the failures: %d %v", e.AuthFailures, e.AuthRetryAt)
	}
}
