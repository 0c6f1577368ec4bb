package apply_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/pgtest"
	"github.com/lapse-dev/lapse/sinks/apply"
	"github.com/lapse-dev/lapse/sinks/apply/applytest"
)

// BenchmarkApply100k applies a changeset of 100,000 rows (the whole
// driver: approval and sha256 check, reading changeset.parquet, 20
// guarded batches with their audit rows and progress, applied.json and
// notify_applied.csv) and, side by side on a fresh copy of the same table,
// runs the one UPDATE … FROM a temp table holding the same rows that a
// hand-written apply would be. x_update_from is apply's time over the
// UPDATE's (target: at most 10).
func BenchmarkApply100k(b *testing.B) {
	ctx := context.Background()
	dsn := pgtest.DSN(b)
	const n = 100_000
	rows := applytest.Rows(n, night)
	conn := applytest.CreateTable(b, dsn, rows, applytest.TableOptions{Table: "template", Extra: n})
	dir := applytest.Changeset(b, b.TempDir(), night, rows)
	src := make([][]any, len(rows))
	for i, r := range rows {
		src[i] = []any{r.EmailID, r.Email}
	}
	fresh := func(table string) {
		b.Helper()
		for _, q := range []string{
			`DROP TABLE IF EXISTS ` + table + `, lapse_audit, lapse_audit_progress`,
			`CREATE TABLE ` + table + ` (LIKE template INCLUDING ALL)`,
			`INSERT INTO ` + table + ` SELECT * FROM template`,
			`ANALYZE ` + table,
		} {
			if _, err := conn.Exec(ctx, q); err != nil {
				b.Fatalf("%s: %v", q, err)
			}
		}
	}
	fresh("accounts")
	tgt := openPG(b, dsn, func(c *config.Config) { c.Postgres.Table = "accounts" })
	o := options(dir, tgt)
	o.Now = func() time.Time { return nightNow }
	var applyT, updateT time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		fresh("accounts")
		b.StartTimer()
		t0 := time.Now()
		res, err := apply.Apply(ctx, o)
		applyT += time.Since(t0)
		b.StopTimer()
		if err != nil || res.ChangedNow != n {
			b.Fatalf("apply: %v, changed %d", err, res.ChangedNow)
		}

		fresh("plain")
		for _, q := range []string{`DROP TABLE IF EXISTS cs`, `CREATE TEMP TABLE cs (id bigint PRIMARY KEY, email text NOT NULL)`} {
			if _, err := conn.Exec(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{"cs"}, []string{"id", "email"}, pgx.CopyFromRows(src)); err != nil {
			b.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `ANALYZE cs`); err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		tag, err := conn.Exec(ctx, `UPDATE plain t SET verified = false, unverify_reason = 'domain status invalid'
			FROM cs WHERE t.id = cs.id AND t.email = cs.email AND t.verified`)
		updateT += time.Since(t0)
		if err != nil || tag.RowsAffected() != n {
			b.Fatalf("update from: %v, %d rows", err, tag.RowsAffected())
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(applyT.Seconds()/float64(b.N), "apply-s")
	b.ReportMetric(updateT.Seconds()/float64(b.N), "update_from-s")
	b.ReportMetric(float64(applyT)/float64(updateT), "x_update_from")
}
