package demo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/pipeline"
	"github.com/lapse-dev/lapse/sim"
	lapply "github.com/lapse-dev/lapse/sinks/apply"
	"github.com/lapse-dev/lapse/sinks/changeset"
	"github.com/lapse-dev/lapse/sinks/lifecycledb"
)

var start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// skipped are the files that legitimately differ between two runs of the
// same demo: binary stores, the lock's pid, wall-clock stage timings, and
// the RDAP bootstrap and WHOIS server caches naming the simulator's
// (random) ports, and the bookkeeping of the states copy and of
// classify's mail links (states.json holds the cache's random change
// token, mail_links.json and mail_schedule.json the inodes and times of
// the files they were made from; the files themselves are compared).
var skipped = regexp.MustCompile(`(^|/)(cache/|lapse\.duckdb|lapse\.lock$|metrics\.prom$|rdap/|whois/|states/states\.json$|states/mail_links\.json$|states/mail_schedule\.json$)`)

// timings are the manifest keys holding wall-clock times, or naming the
// demo's folder (the source path), which the two runs compared here differ
// in by construction.
var timings = map[string]bool{"started": true, "finished": true, "started_at": true, "finished_at": true, "attempts": true, "source": true}

func stripTimings(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k := range x {
			if timings[k] {
				delete(x, k)
			} else {
				x[k] = stripTimings(x[k])
			}
		}
	case []any:
		for i := range x {
			x[i] = stripTimings(x[i])
		}
	}
	return v
}

// digest hashes every compared file of a demo dir by relative path.
func digest(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if skipped.MatchString(rel) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.HasSuffix(rel, "manifest.json") {
			var v any
			if err := json.Unmarshal(b, &v); err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
			b, _ = json.Marshal(stripTimings(v))
		}
		out[rel] = fmt.Sprintf("%x", sha256.Sum256(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func compareDirs(t *testing.T, a, b string) {
	t.Helper()
	da, db := digest(t, a), digest(t, b)
	if len(da) < 20 {
		t.Fatalf("only %d files compared in %s", len(da), a)
	}
	for k, v := range da {
		if db[k] != v {
			t.Errorf("%s differs (or is missing) after the interrupted demo", k)
		}
	}
	for k := range db {
		if _, ok := da[k]; !ok {
			t.Errorf("%s only in the interrupted demo", k)
		}
	}
}

func TestDemoInterruptedResumesToTheSameFiles(t *testing.T) {
	ctx := context.Background()
	base := Options{Nights: 4, Emails: 1500, Seed: 3, Start: start}
	straight := base
	straight.Dir = filepath.Join(t.TempDir(), "straight")
	var table bytes.Buffer
	straight.Out = &table
	want, err := Run(ctx, straight)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "\npypi  ") || !strings.Contains(table.String(), "\ndefault ") || !strings.Contains(table.String(), "precision") {
		t.Errorf("table:\n%s", table.String())
	}

	// Stopped between two nights, then cut mid-resolve on a later night,
	// then run to the end. (The policies' runs are independent, so each
	// interruption runs one policy alone: the order of events is fixed.)
	cut := base
	cut.Dir = filepath.Join(t.TempDir(), "cut")
	kill := errors.New("killed")
	first := cut
	first.Policies = []string{PolicyDefault}
	first.NightHook = func(p string, n int) error {
		if n == 2 {
			return kill
		}
		return nil
	}
	if _, err := Run(ctx, first); !errors.Is(err, kill) {
		t.Fatalf("first attempt: %v", err)
	}
	second := cut
	second.Policies = []string{PolicyPyPI}
	second.tweak = func(p string, n int, o *pipeline.Options) {
		if n == 2 {
			o.StopAfterLookups = 50
		}
	}
	if _, err := Run(ctx, second); !errors.Is(err, context.Canceled) {
		t.Fatalf("second attempt: %v", err)
	}
	got, err := Run(ctx, cut)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("scores differ:\n%v\n%v", got, want)
	}
	compareDirs(t, straight.Dir, cut.Dir)

	// Once more on the finished dir: nothing changes.
	if _, err := Run(ctx, cut); err != nil {
		t.Fatal(err)
	}
	compareDirs(t, straight.Dir, cut.Dir)
}

// TestPyPIPresetIsPyPIsRule checks, night by night, that the pypi run
// un-verified exactly the verified addresses whose Domainr flags overlap
// PyPI's set (undelegated, inactive, expiring, deleting, unknown).
func TestPyPIPresetIsPyPIsRule(t *testing.T) {
	ctx := context.Background()
	o := Options{Nights: 3, Emails: 2000, Seed: 1, Start: start, Dir: t.TempDir(), Policies: []string{PolicyPyPI}}
	if _, err := Run(ctx, o); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for n := range o.Nights {
		p := night.Paths{DataDir: filepath.Join(o.Dir, PolicyPyPI), Date: start.AddDate(0, 0, n).Format(time.DateOnly)}
		var want, got, both int
		q := `WITH rule AS (
			SELECT s.email_id FROM read_parquet(?) s JOIN read_parquet(?) d USING (domain)
			WHERE s.verified AND d.source = 'domainr'
			  AND list_has_any(d.statuses, ['undelegated', 'inactive', 'expiring', 'deleting', 'unknown'])),
		cs AS (SELECT email_id FROM read_parquet(?))
		SELECT (SELECT count(*) FROM rule), (SELECT count(*) FROM cs),
			(SELECT count(*) FROM rule JOIN cs USING (email_id))`
		err := db.QueryRowContext(ctx, q, p.Snapshot(), p.Domains(), filepath.Join(p.Changeset(), "changeset.parquet")).Scan(&want, &got, &both)
		if err != nil {
			t.Fatal(err)
		}
		if want != got || got != both {
			t.Errorf("night %s: rule says %d, changeset has %d, %d in both", p.Date, want, got, both)
		}
		if n == 0 && want == 0 {
			t.Errorf("night %s: no address to flag: the test proves nothing", p.Date)
		}
	}
}

// TestResurrectionCaught finds a small world where a lapsed name is
// registered by someone else during the first nights, and checks that the
// default policy flags its addresses by the night after.
func TestResurrectionCaught(t *testing.T) {
	const nights = 6
	seed := uint64(0)
	for s := uint64(1); s <= 300 && seed == 0; s++ {
		w := sim.NewWorld(sim.Params{Seed: s, Start: start, Emails: 800})
		for _, a := range w.AddressTruth(start.AddDate(0, 0, nights-1)) {
			if a.ReregisteredAt != nil && a.ReregisteredAt.After(start.AddDate(0, 0, 1)) && a.RegistrableAt != nil && !a.RegistrableAt.Before(start) {
				seed = s
				break
			}
		}
	}
	if seed == 0 {
		t.Fatal("no seed in 1..300 gives an early resurrection: the simulator changed; widen the search")
	}
	o := Options{Nights: nights, Emails: 800, Seed: seed, Start: start, Dir: t.TempDir(), Policies: []string{PolicyDefault}}
	sc, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	d := sc[PolicyDefault]
	if d.Resurrections == 0 || d.ResurrectionsCaught != d.Resurrections || d.Precision != 1 {
		t.Errorf("seed %d: %+v", seed, d)
	}
}

// TestDemoAppliesThroughApply: every night's changeset with rows goes
// through review, approve and apply (approval.json and applied.json beside
// it, the rows un-verified in the world, recorded in the lifecycle DB);
// owners who still hold their domain re-verify, and the default policy
// never un-verifies them again (no re-flag loop), while PyPI's rule does.
func TestDemoAppliesThroughApply(t *testing.T) {
	ctx := context.Background()
	o := Options{Nights: 12, Emails: 2000, Seed: 1, Start: start, Dir: t.TempDir()}
	s, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if s[PolicyDefault].ReflagLoops != 0 {
		t.Errorf("default policy: %d re-flag loops, want 0", s[PolicyDefault].ReflagLoops)
	}
	if p := s[PolicyPyPI]; p.Reverified == 0 || p.ReflagLoops == 0 {
		t.Errorf("pypi preset: %d re-verified, %d loops; the world should show PyPI's loop", p.Reverified, p.ReflagLoops)
	}
	// The nightly account exports are not kept (a resume writes them again).
	if left, _ := filepath.Glob(filepath.Join(o.Dir, "*", "accounts", "date=*", "user_emails.jsonl")); len(left) > 0 {
		t.Errorf("account exports left after the demo: %v", left)
	}
	for _, pol := range []string{PolicyDefault, PolicyPyPI} {
		dataDir := filepath.Join(o.Dir, pol)
		applied := 0
		for n := range o.Nights {
			dir := night.Paths{DataDir: dataDir, Date: start.AddDate(0, 0, n).Format(time.DateOnly)}.Changeset()
			m, _, err := changeset.ReadManifest(dir)
			if err != nil {
				t.Fatal(err)
			}
			if m.Counts.Flagged == 0 {
				continue
			}
			if _, _, err := changeset.CheckApproved(dir); err != nil {
				t.Errorf("%s night %d: %v", pol, n+1, err)
			}
			r, err := lapply.ReadReport(filepath.Join(dir, changeset.FileApplied))
			if err != nil {
				t.Fatalf("%s night %d: %v", pol, n+1, err)
			}
			if r.Changed+r.Skipped != m.Counts.Flagged {
				t.Errorf("%s night %d: applied %d + skipped %d, changeset has %d", pol, n+1, r.Changed, r.Skipped, m.Counts.Flagged)
			}
			applied += int(r.Changed)
		}
		db, err := lifecycledb.Open(night.Dir(dataDir).DB())
		if err != nil {
			t.Fatal(err)
		}
		var recorded int
		if err := db.SQL().QueryRow(`SELECT count(*) FROM applied_changes`).Scan(&recorded); err != nil {
			t.Fatal(err)
		}
		db.Close()
		if applied == 0 || recorded != applied {
			t.Errorf("%s: %d rows applied, %d recorded in applied_changes", pol, applied, recorded)
		}
	}
}
