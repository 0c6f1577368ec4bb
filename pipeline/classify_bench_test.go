package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/duck"
	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/lifecycle"
	"github.com/lapse-dev/lapse/sinks/lifecycledb"
)

// The warm-night benchmark of issue 5: classify over N addresses (default
// 1,000,000; LAPSE_BENCH_ROWS) against one hand-written DuckDB query doing
// the same join over the same Parquet files. Fixtures are generated once
// into LAPSE_BENCH_DIR (default a temp dir). Run each benchmark in its own
// process so the peak RSS reported is its own:
//
//	go test ./pipeline/ -run '^$' -bench 'ClassifyWarmNight' -benchtime 3x
//	go test ./pipeline/ -run '^$' -bench 'HandQueryWarmNight' -benchtime 3x

func gBenchFixtures(b *testing.B) night.Paths {
	b.Helper()
	rows := 1_000_000
	if s := os.Getenv("LAPSE_BENCH_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatalf("LAPSE_BENCH_ROWS=%q: %v", s, err)
		}
		rows = n
	}
	dir := os.Getenv("LAPSE_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	dir = filepath.Join(dir, fmt.Sprintf("rows-%d", rows))
	p := night.Paths{DataDir: dir, Date: gNight}
	if _, err := os.Stat(p.States()); err == nil {
		return p
	}
	ctx := context.Background()
	db, err := duck.OpenMemory()
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	domains := rows / 5
	snap := func(date string, n int) {
		q := fmt.Sprintf(`SELECT i::BIGINT AS email_id, 'u' || (i // 2) AS user_id,
			'user' || i || '@d' || (i %% %[1]d) || '.example' AS email, i %% 50 <> 0 AS verified, i %% 2 = 0 AS "primary",
			TIMESTAMPTZ '2020-01-01 00:00:00+00' + to_seconds(i) AS created, NULL::TIMESTAMPTZ AS verified_at,
			'd' || (i %% %[1]d) || '.example' AS host,
			CASE WHEN i %% 997 = 0 THEN NULL ELSE 'd' || (i %% %[1]d) || '.example' END AS domain,
			CASE WHEN i %% 997 = 0 THEN 'no_at' END AS invalid_reason
			FROM range(%[2]d) t(i)`, domains, n)
		if err := duck.CopyParquet(ctx, db, q, night.Paths{DataDir: dir, Date: date}.Snapshot(), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	snap("2026-06-01", rows*9/10)
	snap(gNight, rows)
	states := fmt.Sprintf(`SELECT 'd' || i || '.example' AS domain,
		-- A realistic night: 95%% registered, the rest expiring, in
		-- redemption, available or unknown (1%% each).
		CASE i %% 100 WHEN 0 THEN 'expiring' WHEN 1 THEN 'redemption' WHEN 2 THEN 'available' WHEN 3 THEN 'unknown' WHEN 4 THEN 'grace'
		     ELSE 'registered' END AS state,
		['client transfer prohibited'] AS statuses,
		TIMESTAMPTZ '1995-01-01 00:00:00+00' + to_days(i %% 7000) AS registered_at,
		TIMESTAMPTZ '2026-07-01 00:00:00+00' + to_days(i %% 400) AS expires_at,
		NULL::TIMESTAMPTZ AS last_changed, true AS delegated,
		CASE WHEN i %% 3 = 0 THEN 'domainr' ELSE 'rdap' END AS source,
		TIMESTAMPTZ '2026-06-09 03:00:00+00' AS checked_at, TIMESTAMPTZ '2026-06-09 03:00:00+00' AS as_of,
		NULL::VARCHAR AS error, i %% 2 = 0 AS corroborated,
		'[{"source":"rdap","state":"registered","statuses":["active"]}]' AS evidence_json,
		TIMESTAMPTZ '2026-07-01 00:00:00+00' AS next_check, 0::INTEGER AS consecutive_errors, false AS unverified,
		NULL::TIMESTAMPTZ AS previous_registered_at, NULL::TIMESTAMPTZ AS registered_at_changed_at,
		TIMESTAMPTZ '2026-01-01 00:00:00+00' AS first_checked_at, TIMESTAMPTZ '2026-06-09 03:00:00+00' AS last_checked_at,
		NULL::TIMESTAMPTZ AS decisive_since, (i %% 3)::INTEGER AS decisive_nights
		FROM range(%d) t(i)`, domains)
	if err := duck.CopyParquet(ctx, db, states, p.States(), 0o640); err != nil {
		b.Fatal(err)
	}
	return p
}

func gRusage() syscall.Rusage {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru
}

// gReportRSS reports the process's peak RSS and the CPU seconds per op
// since start (CPU time is steadier than wall time on a shared machine).
func gReportRSS(b *testing.B, start syscall.Rusage) {
	end := gRusage()
	b.ReportMetric(float64(end.Maxrss)/1024, "peak-RSS-MB") // Linux reports KiB
	cpu := func(r syscall.Rusage) float64 {
		return float64(r.Utime.Sec+r.Stime.Sec) + float64(r.Utime.Usec+r.Stime.Usec)/1e6
	}
	b.ReportMetric((cpu(end)-cpu(start))/float64(b.N), "cpu-s/op")
}

func BenchmarkClassifyWarmNight(b *testing.B) {
	p := gBenchFixtures(b)
	o := ClassifyOptionsFor(p, lifecycle.DefaultPolicy, gAsOf)
	start := gRusage()
	b.ResetTimer()
	for b.Loop() {
		if _, err := Classify(context.Background(), o); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	gReportRSS(b, start)
}

// BenchmarkHandQueryWarmNight is the yardstick: one hand-written query
// joining the same files (snapshot, history, states) into the same kind of
// decisions file, with the rule reduced to its core.
func BenchmarkHandQueryWarmNight(b *testing.B) {
	p := gBenchFixtures(b)
	out := filepath.Join(p.DataDir, "hand.parquet")
	q := fmt.Sprintf(`COPY (
		WITH h AS (SELECT email_id, min(date) AS first_date FROM read_parquet('%[1]s', hive_partitioning = true) GROUP BY email_id)
		SELECT s.email_id, s.user_id, s.email, s.verified, s."primary", s.domain, st.state, st.source,
		       CASE WHEN st.registered_at > least(s.created, h.first_date + INTERVAL 1 DAY) THEN 'unverify'
		            WHEN st.state IN ('available', 'pending_delete', 'redemption') AND (st.source = 'rdap' OR st.corroborated) THEN 'unverify'
		            ELSE 'keep' END AS action
		FROM read_parquet('%[2]s') s
		LEFT JOIN h USING (email_id)
		LEFT JOIN read_parquet('%[3]s') st ON st.domain = s.domain) TO '%[4]s' (FORMAT parquet, COMPRESSION zstd)`,
		p.SnapshotGlob(), p.Snapshot(), p.States(), out)
	db, err := duck.OpenMemory()
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	start := gRusage()
	b.ResetTimer()
	for b.Loop() {
		if _, err := db.Exec(q); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	gReportRSS(b, start)
}

// BenchmarkPublishWarmNight publishes the classified warm night (changeset
// files, lifecycle DB rows, report) over the same fixtures.
func BenchmarkPublishWarmNight(b *testing.B) {
	p := gBenchFixtures(b)
	o := ClassifyOptionsFor(p, lifecycle.DefaultPolicy, gAsOf)
	if _, err := Classify(context.Background(), o); err != nil {
		b.Fatal(err)
	}
	db, err := lifecycledb.Open(filepath.Join(b.TempDir(), "lapse.duckdb"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	po := PublishOptions{Paths: night.Paths{DataDir: p.DataDir, Date: p.Date}, Policy: "corroborated",
		Brake: config.BrakeConfig{MaxFraction: 1}, DB: db}
	start := gRusage()
	b.ResetTimer()
	for b.Loop() {
		if _, err := Publish(context.Background(), po); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	gReportRSS(b, start)
}
