package changeset

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lapse-dev/lapse/internal/duck"
)

// TestSummarySampleDeterministic: the sample evidence of a changeset whose
// domains have several addresses is the same on every run (rows tied on
// the domain used to be numbered in any order) and takes the first domain
// of each reason first.
func TestSummarySampleDeterministic(t *testing.T) {
	ctx := context.Background()
	db, err := duck.OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Under reason domain_available, a.com has many addresses (ids
	// 1..300000, over several row groups and threads) and b.com one;
	// domain_redemption has c.com.
	pq := filepath.Join(t.TempDir(), "cs.parquet")
	q := `SELECT i AS email_id, 'a.com' AS domain, 'available' AS state, 'domain_available' AS reason, 'ev a' AS evidence FROM range(1, 300001) t(i)
		UNION ALL SELECT * FROM (VALUES (300001, 'b.com', 'available', 'domain_available', 'ev b'), (300002, 'c.com', 'redemption', 'domain_redemption', 'ev c'))
		ORDER BY email_id`
	if err := duck.CopyParquet(ctx, db, q, pq, 0o600); err != nil {
		t.Fatal(err)
	}
	want := "| 1 | a.com | domain_available | ev a |\n| 300002 | c.com | domain_redemption | ev c |\n| 300001 | b.com | domain_available | ev b |\n"
	for range 10 {
		s, err := summaryMarkdown(ctx, db, Spec{Date: "2026-06-10"}, Manifest{Status: StatusProposed}, "read_parquet("+duck.String(pq)+")")
		if err != nil {
			t.Fatal(err)
		}
		_, sample, _ := strings.Cut(s, "## Sample evidence")
		if !strings.HasSuffix(sample, want) {
			t.Fatalf("sample evidence:\n%s\nwant it to end with\n%s", sample, want)
		}
	}
}
