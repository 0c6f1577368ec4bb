package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

// Each test gets its own empty database; two tests never share one.
func TestDSNFreshDatabase(t *testing.T) {
	ctx := context.Background()
	a, b := DSN(t), DSN(t)
	if a == b {
		t.Fatalf("two calls returned the same database %s", a)
	}
	conn, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("fresh database has %d tables", n)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE t (x int)"); err != nil {
		t.Fatal(err)
	}
	var db string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	conn2, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close(ctx)
	if err := conn2.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("second database sees the first one's table")
	}
}

func TestWithDB(t *testing.T) {
	got, err := withDB("postgres://u:p@h:5/postgres?sslmode=disable", "x")
	if err != nil || got != "postgres://u:p@h:5/x?sslmode=disable" {
		t.Errorf("url: %q %v", got, err)
	}
	got, _ = withDB("host=h dbname=postgres", "x")
	if got != "host=h dbname=postgres dbname=x" {
		t.Errorf("kv: %q", got)
	}
	if q := shellQuote("a'b c"); q != `'a'\''b c'` {
		t.Errorf("shellQuote: %s", q)
	}
	if n := dbName("TestA/sub case"); len(n) > 63 {
		t.Errorf("name too long: %s", n)
	}
}

// Stop removes everything Start created.
func TestStartStop(t *testing.T) {
	if shared == nil || shared.external {
		DSN(t) // skips loudly when no PostgreSQL
		if shared.external {
			t.Skip("LAPSE_TEST_PG_DSN is set: no cluster of our own to start and stop")
		}
	}
	ctx := context.Background()
	c, err := Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := c.dir
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.Connect(ctx, c.AdminDSN()); err == nil {
		t.Error("server still answers after Stop")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cluster dir %s still there: %v", dir, err)
	}
}
