package emails

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/jackc/pgx/v5"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// rec is one row read back from batches, in comparable form.
type rec struct {
	ID                  int64
	User                string // "<null>" when null
	Email               string
	Verified, Primary   bool
	Created, VerifiedAt string // RFC 3339 or "<null>"
}

// readAll drains r, checking every batch against Schema and the allocator
// for leaks.
func readAll(t *testing.T, r Reader) []rec {
	t.Helper()
	var out []rec
	ctx := context.Background()
	for {
		b, err := r.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if !b.Schema().Equal(r.Schema()) || !r.Schema().Equal(Schema) && !r.Schema().Equal(UUIDSchema) {
			t.Fatalf("batch schema %s", b.Schema())
		}
		out = append(out, recsOf(b)...)
		b.Release()
	}
	if _, err := r.Next(ctx); err != io.EOF {
		t.Errorf("Next after EOF: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	return out
}

// recsOf returns b's rows (of Schema or UUIDSchema).
func recsOf(b arrow.RecordBatch) []rec {
	var out []rec
	ids := b.Column(0).(*array.Int64)
	users := b.Column(1) // a string, or a uuid written as its canonical text
	emails := b.Column(2).(*array.String)
	ver := b.Column(3).(*array.Boolean)
	pri := b.Column(4).(*array.Boolean)
	cr := b.Column(5).(*array.Timestamp)
	va := b.Column(6).(*array.Timestamp)
	ts := func(a *array.Timestamp, i int) string {
		if a.IsNull(i) {
			return "<null>"
		}
		return time.UnixMicro(int64(a.Value(i))).UTC().Format(time.RFC3339Nano)
	}
	for i := 0; i < int(b.NumRows()); i++ {
		u := "<null>"
		if users.IsValid(i) {
			u = users.ValueStr(i)
		}
		out = append(out, rec{ids.Value(i), u, emails.Value(i), ver.Value(i), pri.Value(i), ts(cr, i), ts(va, i)})
	}
	return out
}

func checkedAlloc(t *testing.T) memory.Allocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestParseSpec: the forms are config.ParseSource's (TestParseSource);
// a spec of none of them, or a file source without a path, is a SpecError.
func TestParseSpec(t *testing.T) {
	if k, tg, err := ParseSpec("csv:/a/b.csv"); err != nil || k != KindCSV || tg != "/a/b.csv" {
		t.Errorf("ParseSpec(csv:/a/b.csv) = %q, %q, %v", k, tg, err)
	}
	for _, bad := range []string{"", "csv:", "jsonl:", "mysql://x", "/tmp/x.csv", "pg://u:hunter2@h/db", "file.jsonl"} {
		_, _, err := ParseSpec(bad)
		var se *SpecError
		if !errors.As(err, &se) {
			t.Errorf("ParseSpec(%q): %v, want SpecError", bad, err)
			continue
		}
		if !strings.Contains(err.Error(), "csv:PATH") || strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseSpec(%q) message %q does not name the accepted forms on one line", bad, err)
		}
	}
}

func TestCSV(t *testing.T) {
	content := "\xef\xbb\xbfid,user,mail,verified,primary,created\r\n" +
		"1,u1,alice@example.com,t,true,2024-01-02T03:04:05Z\r\n" +
		"2,,\"bob, \"\"the\"\" builder@example.org\",1,0,\r\n" +
		"3,u3,\"broken@example.com,t,f,\r\n" + // broken quoting: line 4
		"4,u4,carol@example.net,t,f\r\n" + // wrong field count: line 5
		"x5,u5,dave@example.net,t,f,\r\n" + // bad id: line 6
		"\r\n" +
		"7,u7,erin@example.com,f,f,\r\n" + // unverified
		"8,u8,not-an-address,TRUE,F,2024-05-06 07:08:09.5+02\r\n" +
		"9,u9,x\"y@example.com,t,f,\r\n" + // bare quote: line 10
		"10,u10,frank@example.com,maybe,f,\r\n" + // bad boolean: line 11
		"11,u11,gina@example.com,t,f,yesterday\n" // bad time: line 12
	path := writeFile(t, "e.csv", content)
	opts := Options{BatchSize: 2, Alloc: checkedAlloc(t), CSV: config.FileConfig{UserID: "user", Email: "mail"}}
	r, err := Open(context.Background(), "csv:"+path, opts)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	want := []rec{
		{1, "u1", "alice@example.com", true, true, "2024-01-02T03:04:05Z", "<null>"},
		{2, "<null>", `bob, "the" builder@example.org`, true, false, "<null>", "<null>"},
		{8, "u8", "not-an-address", true, false, "2024-05-06T05:08:09.5Z", "<null>"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rows\n got %+v\nwant %+v", got, want)
	}
	p := r.Problems()
	lines := []int64{}
	for _, pr := range p.First {
		lines = append(lines, pr.Line)
		if strings.Contains(pr.Reason, "@") {
			t.Errorf("problem reason leaks line content: %q", pr.Reason)
		}
	}
	if p.Malformed != 6 || !reflect.DeepEqual(lines, []int64{4, 5, 6, 10, 11, 12}) {
		t.Errorf("problems %+v", p)
	}
	if !strings.Contains(p.First[0].Reason, "broken quoting") || !strings.Contains(p.First[1].Reason, "field count") {
		t.Errorf("reasons %+v", p.First)
	}
	if p.SkippedUnverified != 1 {
		t.Errorf("skipped unverified %d", p.SkippedUnverified)
	}

	// --all keeps the unverified row.
	opts.All = true
	r, err = Open(context.Background(), "csv:"+path, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r); len(got) != 4 || got[2].ID != 7 || got[2].Verified {
		t.Errorf("--all rows %+v", got)
	}
}

func TestCSVErrors(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name, content, want string
		config              bool
	}{
		{"missing column", "id,address,verified\n1,a@b.c,t\n", `header has no "email" column: set csv.email`, true},
		{"broken header", "id,\"email,verified\n", "line 1 (header): broken quoting", true},
		{"empty", "", "no header line", true},
	}
	for _, c := range cases {
		_, err := Open(ctx, "csv:"+writeFile(t, "x.csv", c.content), Options{})
		var ce *ConfigError
		if err == nil || !strings.Contains(err.Error(), c.want) || errors.As(err, &ce) != c.config {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	dir := t.TempDir()
	for _, p := range []string{filepath.Join(dir, "nope.csv"), dir} {
		_, err := Open(ctx, "csv:"+p, Options{})
		if err == nil || !strings.Contains(err.Error(), p) || strings.Contains(err.Error(), "\n") {
			t.Errorf("unreadable %s: %v", p, err)
		}
	}
}

func TestJSONL(t *testing.T) {
	content := `{"id": 1, "user_id": "u1", "email": "alice@example.com", "verified": true, "primary": true, "created": "2024-01-02T03:04:05Z"}
{"id": "2", "user_id": 42, "email": "b\u00fcro@example.de", "verified": "t", "verified_at": 1700000000}
{"id": 3, "email": "broken@example.com", "verified": true` + "\n" + // bad JSON: line 3
		`{"id": 4.5, "email": "x@example.com", "verified": true}` + "\n" + // bad id: line 4
		`{"user_id": "u5", "email": "x@example.com", "verified": true}` + "\n" + // no id: line 5
		`{"id": 6, "verified": true}` + "\n" + // no email: line 6
		"\n" +
		`{"id": 8, "email": "carol@example.com", "verified": false}` + "\n" +
		`[1,2,3]` + "\n" + // not an object: line 9
		`{"id": 10, "email": "dan@example.com", "verified": true, "created": null, "user_id": null}` // no final newline
	path := writeFile(t, "e.jsonl", content)
	r, err := Open(context.Background(), "jsonl:"+path, Options{BatchSize: 3, Alloc: checkedAlloc(t)})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	want := []rec{
		{1, "u1", "alice@example.com", true, true, "2024-01-02T03:04:05Z", "<null>"},
		{2, "42", "büro@example.de", true, false, "<null>", "2023-11-14T22:13:20Z"},
		{10, "<null>", "dan@example.com", true, false, "<null>", "<null>"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rows\n got %+v\nwant %+v", got, want)
	}
	p := r.Problems()
	var lines []int64
	for _, pr := range p.First {
		lines = append(lines, pr.Line)
	}
	if p.Malformed != 5 || !reflect.DeepEqual(lines, []int64{3, 4, 5, 6, 9}) || p.SkippedUnverified != 1 {
		t.Errorf("problems %+v", p)
	}
}

func TestSplitCSV(t *testing.T) {
	for _, c := range []struct {
		in     string
		want   []string
		reason string
	}{
		{`a,b,c`, []string{"a", "b", "c"}, ""},
		{`,,`, []string{"", "", ""}, ""},
		{`"a,b","c""d",e`, []string{"a,b", `c"d`, "e"}, ""},
		{`""`, []string{""}, ""},
		{`"a"b,c`, nil, "text after a closing quote"},
		{`"a,b`, nil, "unterminated"},
		{`a"b,c`, nil, "quote inside an unquoted field"},
	} {
		f, _, reason := splitCSV([]byte(c.in), nil, nil)
		if c.reason != "" {
			if !strings.Contains(reason, c.reason) {
				t.Errorf("%q: reason %q, want %q", c.in, reason, c.reason)
			}
			continue
		}
		var got []string
		for _, x := range f {
			got = append(got, string(x))
		}
		if reason != "" || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: %q %q", c.in, got, reason)
		}
	}
}

const pypiTable = `CREATE TABLE user_emails (
	id serial PRIMARY KEY,
	user_id uuid,
	email varchar(254) NOT NULL,
	"primary" boolean NOT NULL,
	verified boolean NOT NULL,
	public boolean NOT NULL DEFAULT false,
	unverify_reason text,
	domain_last_checked timestamp,
	domain_last_status varchar[],
	created timestamptz
)`

func seedPG(t *testing.T, dsn string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		pypiTable,
		`INSERT INTO user_emails (id, user_id, email, "primary", verified, created) VALUES
		 (1, '6f0e5d4c-3b2a-4190-8877-665544332211', 'Alice@Example.COM', true, true, '2024-01-02 03:04:05.123456+00'),
		 (2, NULL, E'tab\there\\back\nnl@example.org', false, true, NULL),
		 (3, '00000000-0000-0000-0000-000000000003', 'bob@bücher.de', false, false, '2020-02-29 12:00:00+05'),
		 (4, '00000000-0000-0000-0000-000000000004', '', true, true, NULL)`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// seededConn seeds a fresh database (seedPG) and returns its DSN and a
// connection to it, closed when the test ends.
func seededConn(t *testing.T) (string, *pgx.Conn) {
	t.Helper()
	dsn := pgtest.DSN(t)
	seedPG(t, dsn)
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return dsn, conn
}

func TestPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	seedPG(t, dsn)
	ctx := context.Background()
	pc := config.Default().Postgres
	r, err := Open(ctx, dsn, Options{Postgres: pc, BatchSize: 2, Alloc: checkedAlloc(t)})
	if err != nil {
		t.Fatal(err)
	}
	// PyPI's user_id is a uuid: 16 bytes a row, not 36 characters.
	if !r.Schema().Equal(UUIDSchema) {
		t.Errorf("schema %s, want UUIDSchema", r.Schema())
	}
	got := readAll(t, r)
	want := []rec{
		{1, "6f0e5d4c-3b2a-4190-8877-665544332211", "Alice@Example.COM", true, true, "<null>", "<null>"},
		{2, "<null>", "tab\there\\back\nnl@example.org", true, false, "<null>", "<null>"},
		{4, "00000000-0000-0000-0000-000000000004", "", true, true, "<null>", "<null>"},
	}
	sortRecs(got)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rows\n got %+v\nwant %+v", got, want)
	}

	// --all, a created column and an extra filter.
	pc.CreatedColumn = "created"
	pc.VerifiedAtColumn = "domain_last_checked"
	pc.Where = "id <> 4"
	r, err = Open(ctx, dsn, Options{Postgres: pc, All: true, Alloc: checkedAlloc(t)})
	if err != nil {
		t.Fatal(err)
	}
	got = readAll(t, r)
	sortRecs(got)
	if len(got) != 3 || got[0].Created != "2024-01-02T03:04:05.123456Z" || got[2].Created != "2020-02-29T07:00:00Z" ||
		got[2].Verified || got[2].Email != "bob@bücher.de" || got[1].Created != "<null>" {
		t.Errorf("--all rows %+v", got)
	}
}

func sortRecs(r []rec) {
	for i := range r {
		for j := i + 1; j < len(r); j++ {
			if r[j].ID < r[i].ID {
				r[i], r[j] = r[j], r[i]
			}
		}
	}
}

func TestPostgresErrors(t *testing.T) {
	dsn := pgtest.DSN(t)
	seedPG(t, dsn)
	ctx := context.Background()
	def := config.Default().Postgres
	mod := func(f func(*config.PostgresConfig)) config.PostgresConfig { c := def; f(&c); return c }
	for _, c := range []struct {
		name string
		pc   config.PostgresConfig
		want string
	}{
		{"missing table", mod(func(c *config.PostgresConfig) { c.Table = "emails" }), `table "emails" does not exist or is not visible to this user: set postgres.table`},
		{"missing column", mod(func(c *config.PostgresConfig) { c.EmailColumn = "mail" }), `table "user_emails" has no column "mail": set postgres.email_column`},
		{"missing created", mod(func(c *config.PostgresConfig) { c.CreatedColumn = "created_at" }), `no column "created_at": set postgres.created_column`},
	} {
		_, err := Open(ctx, dsn, Options{Postgres: c.pc})
		var ce *ConfigError
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.As(err, &ce) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}

	// A bad WHERE fails when the copy starts, naming the setting.
	r, err := Open(ctx, dsn, Options{Postgres: mod(func(c *config.PostgresConfig) { c.Where = "nonsense ==" })})
	if err == nil {
		_, err = r.Next(ctx)
		r.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "postgres.where") {
		t.Errorf("bad where: %v", err)
	}

	// A wrong DSN: nothing listens there. The password never shows.
	_, err = Open(ctx, "postgres://lapse:hunter2secret@127.0.0.1:1/db?sslmode=disable&connect_timeout=5", Options{Postgres: def})
	if err == nil || strings.Contains(err.Error(), "hunter2secret") || !strings.Contains(err.Error(), "127.0.0.1:1") || strings.Contains(err.Error(), "\n") {
		t.Errorf("wrong DSN: %v", err)
	}
	pwFile := writeFile(t, "pw", "filesecret99\n")
	_, err = Open(ctx, "postgres://lapse@127.0.0.1:1/db?sslmode=disable", Options{Postgres: mod(func(c *config.PostgresConfig) { c.PasswordFile = pwFile })})
	if err == nil || strings.Contains(err.Error(), "filesecret99") {
		t.Errorf("wrong DSN with password file: %v", err)
	}
}

// Closing a reader in the middle of a large copy returns promptly and
// leaks no batch.
func TestPostgresCloseEarly(t *testing.T) {
	dsn, conn := seededConn(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `INSERT INTO user_emails (id, email, "primary", verified) SELECT g, 'u' || g || '@example.com', false, true FROM generate_series(10, 50009) g`); err != nil {
		t.Fatal(err)
	}
	r, err := Open(ctx, dsn, Options{Postgres: config.Default().Postgres, BatchSize: 100, Alloc: checkedAlloc(t)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.Release()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.Next(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Next on a canceled context: %v", err)
	}
	r.Close()
	r.Close()
	if _, err := r.Next(ctx); err == nil {
		t.Error("Next after Close succeeded")
	}
}

// parseInt agrees with strconv at the edges of int64, and a 20-digit
// number past them is refused, not wrapped.
func TestParseInt(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "-0": 0, "+7": 7, "9223372036854775807": 1<<63 - 1, "-9223372036854775808": -1 << 63} {
		if n, ok := parseInt([]byte(in)); !ok || n != want {
			t.Errorf("parseInt(%q) = %d, %v; want %d", in, n, ok, want)
		}
	}
	for _, in := range []string{"", "-", "+", "9223372036854775808", "-9223372036854775809", "18446744073709551617", "99999999999999999999", "1_000", "12a"} {
		if n, ok := parseInt([]byte(in)); ok {
			t.Errorf("parseInt(%q) = %d; want it refused", in, n)
		}
	}
	if n, ok := parseID([]byte(" 18446744073709551617 ")); ok {
		t.Errorf("parseID of a 20-digit id = %d; want it refused", n)
	}
}

// Parsing a line never panics, whatever the bytes; a CSV line that splits
// re-joins to the same fields; a number parseInt reads is strconv's.
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{`1,u,a@b.c,t,f,2024-01-02`, `"a""b",c`, `"x`, `{"id":1,"email":"a@b"}`, `a\tb\\N`, "\xff\xfe"} {
		f.Add([]byte(s))
	}
	cp := &csvParser{nCols: 6, idx: [nFields]int{0, 1, 2, 3, 4, 5, -1}}
	jp := &jsonlParser{names: fieldNames(config.FileConfig{})}
	f.Fuzz(func(t *testing.T, line []byte) {
		var r row
		cp.parse(line, &r)
		jp.parse(line, &r)
		if n, ok := parseInt(line); ok {
			if want, err := strconv.ParseInt(string(line), 10, 64); err != nil || n != want {
				t.Fatalf("parseInt(%q) = %d; strconv: %d, %v", line, n, want, err)
			}
		} else if _, err := strconv.ParseInt(string(line), 10, 64); err == nil && len(line) <= 20 {
			// Longer (zero-padded) numbers are parseID's float fallback's.
			t.Fatalf("parseInt(%q) refused what strconv parses", line)
		}
		fields, _, reason := splitCSV(line, nil, nil)
		if reason != "" {
			return
		}
		var quoted []string
		for _, fl := range fields {
			quoted = append(quoted, `"`+strings.ReplaceAll(string(fl), `"`, `""`)+`"`)
		}
		again, _, reason := splitCSV([]byte(strings.Join(quoted, ",")), nil, nil)
		if reason != "" || len(again) != len(fields) {
			t.Fatalf("re-split of %q: %q %s", line, again, reason)
		}
		for i := range again {
			if string(again[i]) != string(fields[i]) {
				t.Fatalf("field %d: %q != %q", i, again[i], fields[i])
			}
		}
	})
}
