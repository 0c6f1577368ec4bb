package pipeline

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/duck"
	"github.com/lapse-dev/lapse/internal/night"
)

// TestSnapshotDomainList: the snapshot writes its distinct verified
// domains beside it, sorted, and the manifest vouches for them; the dns
// and plan stages read the list only while the manifest does, and the
// snapshot's rows otherwise (a changed list, an --all snapshot, none).
func TestSnapshotDomainList(t *testing.T) {
	ctx := context.Background()
	cfg := config.Default()
	cfg.DataDir, cfg.Source = t.TempDir(), "jsonl:"+writeSnapJSONL(t, snapRows, "")
	p := night.Dir(cfg.DataDir).Night(snapDate)
	o := SnapshotOptionsFromConfig(cfg, snapDate)
	o.Now = fixedNow
	res, err := Snapshot(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.DomainsFile != "domains.parquet" || res.Manifest.DomainsSHA256 == "" {
		t.Fatalf("manifest domains file %q sha256 %q", res.Manifest.DomainsFile, res.Manifest.DomainsSHA256)
	}
	if fi, err := os.Stat(p.SnapshotDomains()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("domains file: %v %v", fi, err)
	}
	db, err := duck.OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	list := func(q string) []string {
		t.Helper()
		got, err := queryStrings(ctx, db, q)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	// The list in file order, and what a pass over the rows gives.
	want := []string{"example.co.uk", "example.com", "example.org", "xn--bcher-kva.de"} // unverified.example is not verified
	if got := list("SELECT domain FROM read_parquet(" + duck.String(p.SnapshotDomains()) + ")"); !slices.Equal(got, want) {
		t.Errorf("domains file %q, want %q (sorted, verified only)", got, want)
	}
	if res.Manifest.Rows.Domains != int64(len(want)) {
		t.Errorf("manifest distinct_domains %d, want %d", res.Manifest.Rows.Domains, len(want))
	}
	scan := list("SELECT DISTINCT domain FROM read_parquet(" + duck.String(p.Snapshot()) + ") WHERE domain IS NOT NULL AND verified ORDER BY 1")
	if !slices.Equal(scan, want) {
		t.Errorf("the snapshot's verified domains %q, want %q", scan, want)
	}
	rel := func() snapshotDomainsRel {
		return snapshotDomainsSQL(p.Snapshot(), p.SnapshotDomains(), p.SnapshotManifest())
	}
	if r := rel(); !strings.Contains(r.sql, "domains.parquet") {
		t.Errorf("a vouched list is not read: %s", r.sql)
	}
	if got := list("SELECT domain FROM (" + rel().sql + ") ORDER BY 1"); !slices.Equal(got, want) {
		t.Errorf("relation %q, want %q", got, want)
	}
	if r := snapshotDomainsSQL(p.Snapshot(), "", ""); strings.Contains(r.sql, "domains.parquet") {
		t.Errorf("no list named, yet read: %s", r.sql)
	}

	// A list that is not the one the manifest names (a crash between the
	// two, a hand edit) is ignored: the rows are read.
	b, err := os.ReadFile(p.SnapshotDomains())
	if err != nil {
		t.Fatal(err)
	}
	if err := writeDomainListT(p.SnapshotDomains(), []string{"other.example"}); err != nil {
		t.Fatal(err)
	}
	if r := rel(); strings.Contains(r.sql, "domains.parquet") {
		t.Errorf("a list the manifest does not vouch for is read: %s", r.sql)
	}
	if got := list("SELECT domain FROM (" + rel().sql + ") ORDER BY 1"); !slices.Equal(got, want) {
		t.Errorf("fallback relation %q, want %q", got, want)
	}
	if err := os.WriteFile(p.SnapshotDomains(), b, 0o600); err != nil {
		t.Fatal(err)
	}

	// An --all snapshot holds unverified addresses: no list, and the old
	// one is gone.
	o.Read.All = true
	res, err = Snapshot(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.DomainsSHA256 != "" || fileExists(p.SnapshotDomains()) {
		t.Errorf("--all snapshot: manifest domains sha256 %q, file left %v", res.Manifest.DomainsSHA256, fileExists(p.SnapshotDomains()))
	}
	if got := list("SELECT domain FROM (" + rel().sql + ") ORDER BY 1"); !slices.Equal(got, want) {
		t.Errorf("--all snapshot: relation %q, want %q (verified only)", got, want)
	}
}

func writeDomainListT(path string, domains []string) error {
	_, err := writeDomainList(path, func(yield func([]byte) bool) {
		for _, d := range domains {
			if !yield([]byte(d)) {
				return
			}
		}
	}, nil)
	return err
}
