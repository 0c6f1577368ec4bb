package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/lifecycle"
)

// The plan read from the states copy must be the plan read from every
// cache entry, night after night, as lookups change the cache between
// plans (a stale copy would plan differently).
func TestPlanFromStatesCopyMatchesCache(t *testing.T) {
	ctx := context.Background()
	clk := &hClock{t: time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)}
	c := hOpenCache(t, clk)
	snap := filepath.Join(t.TempDir(), "emails.parquet")
	var specs []string
	for i := range 60 {
		specs = append(specs, fmt.Sprintf("x%d@d%02d.com d%02d.com true", i, i, i))
	}
	specs = append(specs, "y@off.com off.com false", "broken - true")
	hWriteSnapshot(t, snap, specs...)
	states := night.Dir(t.TempDir()).StatesCopy()
	states2 := filepath.Join(t.TempDir(), "other", "states.parquet")
	// Lookups spread over the past: different states, expiries and next checks.
	all := []lifecycle.State{lifecycle.Registered, lifecycle.Expiring, lifecycle.Redemption, lifecycle.Available, lifecycle.Registered, lifecycle.Grace}
	for i := range 45 {
		clk.t = time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC).Add(-time.Duration(i) * 20 * time.Hour)
		exp := clk.t.Add(time.Duration(i*7) * 24 * time.Hour)
		lc := lifecycle.Lifecycle{Domain: fmt.Sprintf("d%02d.com", i), State: all[i%len(all)], Source: lifecycle.SourceRDAP,
			CheckedAt: clk.t, AsOf: clk.t, ExpiresAt: &exp}
		if i%4 == 1 {
			lc.Source = lifecycle.SourceDomainr
		}
		if _, err := c.Record(ctx, lc); err != nil {
			t.Fatal(err)
		}
	}
	clk.t = time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)
	for night := range 12 {
		o := PlanOptions{Date: "2026-03-01", SnapshotPath: snap, Cache: c, Now: clk.Now(), Budget: 7, WatchWindow: 30 * 24 * time.Hour}
		want, err := MakePlan(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		o.States = states
		got, err := planOverStates(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("night %d: plan from the states copy\n%+v\nwant (from the cache)\n%+v", night, got, want)
		}
		if night == 0 && (want.VerifiedDomains != 60 || want.Due == 0 || want.Fresh == 0) {
			t.Fatalf("the scenario tests nothing: %+v", want)
		}
		// The second copy is only made current every third night: it must
		// notice every change it missed.
		if night%3 == 0 {
			o.States = states2
			if got, err = planOverStates(ctx, o); err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("night %d: plan from a copy several changes behind: %v\n%+v\nwant\n%+v", night, err, got, want)
			}
		}
		for _, d := range want.Lookups {
			lc := lifecycle.Lifecycle{Domain: d, State: lifecycle.Registered, Source: lifecycle.SourceRDAP, CheckedAt: clk.Now(), AsOf: clk.Now()}
			if _, err := c.Record(ctx, lc); err != nil {
				t.Fatal(err)
			}
		}
		// A lookup outside the plan (`lapse check`) of a domain that was
		// fresh: now in redemption, it is due tomorrow, months before the
		// stale copy's next check.
		fresh := ""
		for i := range 45 {
			d := fmt.Sprintf("d%02d.com", (i+night*7)%45)
			if e, found, err := c.Get(ctx, d); err != nil {
				t.Fatal(err)
			} else if found && !c.Due(e, clk.Now().Add(26*time.Hour)) {
				fresh = d
				break
			}
		}
		if fresh == "" {
			t.Fatalf("night %d: no fresh domain left", night)
		}
		lc := lifecycle.Lifecycle{Domain: fresh, State: lifecycle.Redemption,
			Source: lifecycle.SourceDomainr, CheckedAt: clk.Now(), AsOf: clk.Now()}
		if _, err := c.Record(ctx, lc); err != nil {
			t.Fatal(err)
		}
		clk.Add(26 * time.Hour)
	}
}

func TestCurrentStatesRewritesOnlyAfterAChange(t *testing.T) {
	ctx := context.Background()
	clk := &hClock{t: time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)}
	c := hOpenCache(t, clk)
	path := night.Dir(t.TempDir()).StatesCopy()
	rec := func(d string) {
		t.Helper()
		lc := lifecycle.Lifecycle{Domain: d, State: lifecycle.Registered, Source: lifecycle.SourceRDAP, CheckedAt: clk.Now(), AsOf: clk.Now()}
		if _, err := c.Record(ctx, lc); err != nil {
			t.Fatal(err)
		}
	}
	rec("a.com")
	rec("b.com")
	sc, err := CurrentStates(ctx, c, path)
	if err != nil || sc.Reused || sc.Rows != 2 {
		t.Fatalf("first copy: %+v %v", sc, err)
	}
	if sc, err = CurrentStates(ctx, c, path); err != nil || !sc.Reused || sc.Rows != 2 {
		t.Fatalf("unchanged cache: %+v %v, want the copy reused", sc, err)
	}
	// The night keeps its own link; a later rewrite must not change it.
	night := filepath.Join(t.TempDir(), "observations", "date=2026-03-01", "states.parquet")
	if err := linkStates(path, night); err != nil {
		t.Fatal(err)
	}
	rec("c.com")
	if sc, err = CurrentStates(ctx, c, path); err != nil || sc.Reused || sc.Rows != 3 {
		t.Fatalf("after a Record: %+v %v, want a rewrite with 3 rows", sc, err)
	}
	if n := hCountRows(t, night); n != 2 {
		t.Errorf("the night's linked states have %d rows after the copy was rewritten, want 2", n)
	}
	if n := hCountRows(t, path); n != 3 {
		t.Errorf("copy has %d rows, want 3", n)
	}
	// A lost copy, or a damaged states.json, is rewritten.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if sc, err = CurrentStates(ctx, c, path); err != nil || sc.Reused || hCountRows(t, path) != 3 {
		t.Fatalf("missing copy: %+v %v", sc, err)
	}
	if err := os.WriteFile(statesMetaPath(path), []byte("{"), 0o640); err != nil {
		t.Fatal(err)
	}
	if sc, err = CurrentStates(ctx, c, path); err != nil || sc.Reused {
		t.Fatalf("damaged states.json: %+v %v", sc, err)
	}
	// Linking again replaces the night's file.
	if err := linkStates(path, night); err != nil {
		t.Fatal(err)
	}
	if n := hCountRows(t, night); n != 3 {
		t.Errorf("relinked night states have %d rows, want 3", n)
	}
	// Linking what is already linked (a resumed or forced night) leaves
	// the night's folder as it was: no temp link beside the file.
	if err := linkStates(path, night); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(filepath.Dir(night))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "states.parquet" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("night folder after linking twice holds %q, want only states.parquet", names)
	}
}

func hCountRows(t *testing.T, path string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.Trim(hQueryText(t, fmt.Sprintf(`SELECT count(*) FROM read_parquet('%s')`, path)), "[]\n"))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A states copy damaged on disk behind a matching states.json is derived
// data: the plan writes it again from the cache instead of failing every
// night.
func TestPlanRewritesADamagedStatesCopy(t *testing.T) {
	ctx := context.Background()
	clk := &hClock{t: time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)}
	c := hOpenCache(t, clk)
	snap := filepath.Join(t.TempDir(), "emails.parquet")
	hWriteSnapshot(t, snap, "a@a.com a.com true", "b@b.com b.com true")
	if _, err := c.Record(ctx, lifecycle.Lifecycle{Domain: "a.com", State: lifecycle.Registered, Source: lifecycle.SourceRDAP, CheckedAt: clk.Now(), AsOf: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	states := night.Dir(t.TempDir()).StatesCopy()
	o := PlanOptions{Date: "2026-03-01", SnapshotPath: snap, Cache: c, Now: clk.Now(), States: states}
	want, err := planOverStates(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(states, []byte("not parquet at all"), 0o640); err != nil {
		t.Fatal(err)
	}
	got, err := planOverStates(ctx, o)
	if err != nil {
		t.Fatalf("plan over a damaged copy: %v", err)
	}
	if !reflect.DeepEqual(got, want) || got.VerifiedDomains != 2 || got.Fresh != 1 {
		t.Errorf("plan over a damaged copy\n%+v\nwant\n%+v", got, want)
	}
	if n := hCountRows(t, states); n != 1 {
		t.Errorf("rewritten copy has %d rows, want 1", n)
	}
}
