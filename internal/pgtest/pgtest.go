// Package pgtest gives tests a real, throwaway PostgreSQL database.
//
// When LAPSE_TEST_PG_DSN is set, it is used as an administrative connection
// (the role needs CREATEDB). Otherwise the first test that asks starts one
// cluster per test binary from the installed server binaries (initdb and
// pg_ctl from `pg_config --bindir`, /usr/lib/postgresql/*/bin or PATH), run
// as the `postgres` OS user when the tests run as root, in a temp dir, on a
// free loopback port, with fsync off. Every test gets its own fresh database,
// dropped when the test ends.
//
// Usage, in each package that needs PostgreSQL:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestX(t *testing.T) {
//		dsn := pgtest.DSN(t) // postgres://…/lapse_t_… (empty database)
//		…
//	}
//
// Main stops and removes the cluster after the tests; DSN fails a test whose
// package forgot to call it, so no cluster is ever left running. When no
// PostgreSQL is available, DSN skips the test with a loud reason, or fails
// it when LAPSE_REQUIRE_PG=1 (CI).
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

var (
	mainCalled atomic.Bool
	once       sync.Once
	shared     *Cluster
	sharedErr  error
	dbSeq      atomic.Int64
)

// Main runs the tests of a package and then stops and removes the cluster
// DSN may have started. Call it from TestMain.
func Main(m *testing.M) {
	mainCalled.Store(true)
	code := m.Run()
	if shared != nil {
		if err := shared.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		}
	}
	os.Exit(code)
}

// DSN returns the URL of a new, empty database that is dropped when t ends.
// It skips t (or fails it under LAPSE_REQUIRE_PG=1) when no PostgreSQL is
// available.
func DSN(t testing.TB) string {
	t.Helper()
	if !mainCalled.Load() {
		t.Fatal("pgtest: call pgtest.Main(m) from this package's TestMain so the throwaway cluster is stopped")
	}
	once.Do(func() {
		if dsn := os.Getenv("LAPSE_TEST_PG_DSN"); dsn != "" {
			shared = &Cluster{admin: dsn, external: true}
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared, sharedErr = Start(ctx)
	})
	if sharedErr != nil {
		msg := fmt.Sprintf("\n*** pgtest: NO POSTGRESQL, TEST SKIPPED ***\n*** %v\n*** set LAPSE_TEST_PG_DSN or install the PostgreSQL server binaries (initdb, pg_ctl)", sharedErr)
		if os.Getenv("LAPSE_REQUIRE_PG") == "1" {
			t.Fatal(msg + "\n*** LAPSE_REQUIRE_PG=1: failing instead of skipping")
		}
		t.Skip(msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := dbName(t.Name())
	dsn, err := shared.CreateDB(ctx, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := shared.DropDB(ctx, name); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return dsn
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9_]+`)

// dbName makes a unique, valid database name from a test name.
func dbName(test string) string {
	n := unsafeChars.ReplaceAllString(strings.ToLower(test), "_")
	if len(n) > 40 {
		n = n[:40]
	}
	return fmt.Sprintf("lapse_t_%s_%d_%d", n, os.Getpid(), dbSeq.Add(1))
}

// Cluster is a running PostgreSQL: one started by Start, or an external one.
type Cluster struct {
	admin    string // URL of the administrative connection
	external bool

	dir    string // temp dir holding data/ and the socket; removed by Stop
	bindir string
	asUser string // OS user running the server ("" = current)
}

// AdminDSN is the URL of the cluster's "postgres" database as its superuser.
func (c *Cluster) AdminDSN() string { return c.admin }

// Start initializes and starts a throwaway cluster in a temp dir on a free
// loopback port. Stop removes it.
func Start(ctx context.Context) (*Cluster, error) {
	bindir, err := findBindir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{bindir: bindir}
	var uid, gid int = -1, -1
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root and there is no postgres OS user to run the server: %w", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		c.asUser = "postgres"
	}
	dir, err := os.MkdirTemp("", "lapse-pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest temp dir: %w", err)
	}
	c.dir = dir
	if uid >= 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("chown %s to postgres: %w", dir, err)
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := c.command(ctx, "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w: %s", err, lastLines(out))
	}
	// A free port can be taken between probing and listening; retry.
	var startErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100", port, dir)
		out, err := c.command(ctx, "pg_ctl", "-D", data, "-l", filepath.Join(dir, "server.log"), "-o", opts, "-w", "-t", "60", "start").CombinedOutput()
		if err == nil {
			c.admin = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
			return c, nil
		}
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		startErr = fmt.Errorf("pg_ctl start: %w: %s %s", err, lastLines(out), lastLines(log))
	}
	os.RemoveAll(dir)
	return nil, startErr
}

// Stop stops a cluster started by Start and removes its files; it does
// nothing for an external one.
func (c *Cluster) Stop() error {
	if c == nil || c.external || c.dir == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := c.command(ctx, "pg_ctl", "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-w", "stop").CombinedOutput()
	rmErr := os.RemoveAll(c.dir)
	c.dir = ""
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %w: %s", err, lastLines(out))
	}
	if rmErr != nil {
		return fmt.Errorf("remove cluster dir: %w", rmErr)
	}
	return nil
}

// CreateDB creates an empty database and returns its URL.
func (c *Cluster) CreateDB(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, c.admin)
	if err != nil {
		return "", fmt.Errorf("connect to the test server: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return withDB(c.admin, name)
}

// DropDB drops a database, disconnecting whoever still uses it.
func (c *Cluster) DropDB(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.admin)
	if err != nil {
		return fmt.Errorf("connect to the test server: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// withDB points a URL or keyword/value DSN at another database.
func withDB(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", errors.New("LAPSE_TEST_PG_DSN is not a valid URL")
		}
		u.Path = "/" + name
		return u.String(), nil
	}
	// In keyword/value form a later keyword wins.
	return dsn + " dbname=" + name, nil
}

func (c *Cluster) command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bindir, prog)
	if c.asUser == "" {
		return exec.CommandContext(ctx, path, args...)
	}
	if _, err := exec.LookPath("runuser"); err == nil {
		return exec.CommandContext(ctx, "runuser", append([]string{"-u", c.asUser, "--", path}, args...)...)
	}
	q := []string{shellQuote(path)}
	for _, a := range args {
		q = append(q, shellQuote(a))
	}
	return exec.CommandContext(ctx, "su", "-s", "/bin/sh", c.asUser, "-c", strings.Join(q, " "))
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func findBindir() (string, error) {
	var cands []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		cands = append(cands, strings.TrimSpace(string(out)))
	}
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin"); len(m) > 0 {
		// Newest version first.
		sort.Slice(m, func(i, j int) bool { return versionOf(m[i]) > versionOf(m[j]) })
		cands = append(cands, m...)
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		cands = append(cands, filepath.Dir(p))
	}
	for _, d := range cands {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", errors.New("no PostgreSQL server binaries (initdb, pg_ctl) in `pg_config --bindir`, /usr/lib/postgresql/*/bin or PATH")
}

func versionOf(bindir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(bindir)))
	return n
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 600 {
		s = "…" + s[len(s)-600:]
	}
	return s
}
