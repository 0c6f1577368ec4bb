package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/pgtest"
)

// snapRow is one source row of the test data set, with what the snapshot
// must hold for it ("" = null for the optional strings).
type snapRow struct {
	id                   int64
	user, email          string
	verified, primary    bool
	created              string // RFC 3339 or ""
	host, domain, reason string
}

var snapRows = []snapRow{
	{1, "u1", "Alice@Example.COM", true, true, "2024-01-02T03:04:05.123456Z", "example.com", "example.com", ""},
	{2, "", "bob@Mail.Bücher.de", true, false, "", "mail.xn--bcher-kva.de", "xn--bcher-kva.de", ""},
	{3, "u3", "nobody", true, false, "2023-06-01T00:00:00Z", "", "", "no_at"},
	{4, "u4", "x@[192.0.2.1]", true, false, "", "", "", "address_literal"},
	{5, "u5", "someone@co.uk", true, false, "", "co.uk", "", "public_suffix"},
	{6, "u6", "carol@sub.example.co.uk.", true, true, "", "sub.example.co.uk", "example.co.uk", ""},
	{7, "u7", "dave@unverified.example", false, false, "", "unverified.example", "unverified.example", ""},
	{8, "u8", "erin@ＥＸＡＭＰＬＥ。org", true, false, "", "example.org", "example.org", ""},
}

const snapDate = "2026-11-28"

func fixedNow() time.Time { return time.Date(2026, 11, 28, 2, 0, 0, 0, time.UTC) }

func seedSnapPG(t *testing.T, dsn string, rows []snapRow) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE user_emails (
		id integer PRIMARY KEY, user_id text, email varchar(254) NOT NULL,
		"primary" boolean NOT NULL, verified boolean NOT NULL,
		unverify_reason text, domain_last_checked timestamp, domain_last_status varchar[],
		created timestamptz)`); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		var user, created any
		if r.user != "" {
			user = r.user
		}
		if r.created != "" {
			created, _ = time.Parse(time.RFC3339Nano, r.created)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO user_emails (id, user_id, email, "primary", verified, created) VALUES ($1, $2, $3, $4, $5, $6)`,
			r.id, user, r.email, r.primary, r.verified, created); err != nil {
			t.Fatal(err)
		}
	}
}

func writeSnapCSV(t *testing.T, rows []snapRow, extra string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("id,user_id,email,verified,primary,created\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "%d,%s,\"%s\",%t,%t,%s\n", r.id, r.user, strings.ReplaceAll(r.email, `"`, `""`), r.verified, r.primary, r.created)
	}
	b.WriteString(extra)
	p := filepath.Join(t.TempDir(), "emails.csv")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeSnapJSONL(t *testing.T, rows []snapRow, extra string) string {
	t.Helper()
	var b bytes.Buffer
	for _, r := range rows {
		m := map[string]any{"id": r.id, "email": r.email, "verified": r.verified, "primary": r.primary}
		if r.user != "" {
			m["user_id"] = r.user
		}
		if r.created != "" {
			m["created"] = r.created
		}
		line, _ := json.Marshal(m)
		b.Write(append(line, '\n'))
	}
	b.WriteString(extra)
	p := filepath.Join(t.TempDir(), "emails.jsonl")
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// readSnapshot reads emails.parquet back with DuckDB.
func readSnapshot(t *testing.T, path string) []snapRow {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The contract's column types.
	types := map[string]string{}
	trows, err := db.Query(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(?, hive_partitioning = false))`, path)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for trows.Next() {
		var n, ty string
		if err := trows.Scan(&n, &ty); err != nil {
			t.Fatal(err)
		}
		types[n] = ty
		names = append(names, n)
	}
	trows.Close()
	wantTypes := map[string]string{"email_id": "BIGINT", "user_id": "VARCHAR", "email": "VARCHAR", "verified": "BOOLEAN",
		"primary": "BOOLEAN", "created": "TIMESTAMP WITH TIME ZONE", "verified_at": "TIMESTAMP WITH TIME ZONE",
		"host": "VARCHAR", "domain": "VARCHAR", "invalid_reason": "VARCHAR"}
	if !reflect.DeepEqual(types, wantTypes) {
		t.Errorf("snapshot columns %v, want %v", types, wantTypes)
	}
	rows, err := db.Query(`SELECT email_id, user_id, email, verified, "primary", epoch_us(created), verified_at IS NULL,
		host, domain, invalid_reason FROM read_parquet(?, hive_partitioning = false) ORDER BY email_id`, path)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []snapRow
	for rows.Next() {
		var r snapRow
		var user, host, domain, reason sql.NullString
		var created sql.NullInt64
		var vaNull bool
		if err := rows.Scan(&r.id, &user, &r.email, &r.verified, &r.primary, &created, &vaNull, &host, &domain, &reason); err != nil {
			t.Fatal(err)
		}
		if !vaNull {
			t.Errorf("row %d: verified_at is not null", r.id)
		}
		r.user, r.host, r.domain, r.reason = user.String, host.String, domain.String, reason.String
		if created.Valid {
			r.created = time.UnixMicro(created.Int64).UTC().Format(time.RFC3339Nano)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func verifiedOnly(rows []snapRow) []snapRow {
	var out []snapRow
	for _, r := range rows {
		if r.verified {
			out = append(out, r)
		}
	}
	return out
}

func checkFiles(t *testing.T, res SnapshotResult, secrets ...string) SnapshotManifest {
	t.Helper()
	for _, p := range []string{res.Path, res.ManifestPath} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
	data, err := os.ReadFile(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := os.ReadFile(res.ManifestPath)
	if err != nil {
		t.Fatal(err)
	}
	var m SnapshotManifest
	if err := json.Unmarshal(mb, &m); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if m.SHA256 != hex.EncodeToString(sum[:]) || m.Bytes != int64(len(data)) || m.File != "emails.parquet" {
		t.Errorf("manifest sha256/bytes/file %s %d %s do not match the file", m.SHA256, m.Bytes, m.File)
	}
	for _, s := range secrets {
		if bytes.Contains(mb, []byte(s)) || bytes.Contains(data, []byte(s)) {
			t.Errorf("secret %q written to the snapshot or its manifest", s)
		}
	}
	// No temp files left behind.
	ents, _ := os.ReadDir(filepath.Dir(res.Path))
	for _, e := range ents {
		if e.Name() != filepath.Base(res.Path) && e.Name() != filepath.Base(res.ManifestPath) && e.Name() != res.Manifest.DomainsFile {
			t.Errorf("stray file %s in the snapshot folder", e.Name())
		}
	}
	return m
}

func TestSnapshotPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	seedSnapPG(t, dsn, snapRows)
	// The test cluster trusts loopback, so any password is accepted: it
	// stands for a real one that must never be written anywhere.
	dsn = strings.Replace(dsn, "postgres@", "postgres:Sup3rSecretPW@", 1)
	c := config.Default()
	c.DataDir, c.Source = t.TempDir(), dsn
	c.Postgres.CreatedColumn = "created"
	o := SnapshotOptionsFromConfig(c, snapDate)
	o.Now, o.Version = fixedNow, "test"
	res, err := Snapshot(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(c.DataDir, "snapshots", "date="+snapDate, "emails.parquet"); res.Path != want {
		t.Errorf("path %s, want %s", res.Path, want)
	}
	got := readSnapshot(t, res.Path)
	if want := verifiedOnly(snapRows); !reflect.DeepEqual(got, want) {
		t.Errorf("snapshot rows\n got %+v\nwant %+v", got, want)
	}
	m := checkFiles(t, res, "Sup3rSecretPW")
	want := SnapshotRows{Addresses: 7, Verified: 7, Invalid: 3, Domains: 4}
	if m.Rows != want || !strings.Contains(m.Source, "redacted") || m.LapseVersion != "test" ||
		!m.Started.Equal(fixedNow()) || m.InvalidReasons["no_at"] != 1 || len(m.InvalidReasons) != 3 {
		t.Errorf("manifest %+v", m)
	}

	// --all includes the unverified address.
	o.Read.All = true
	res, err = Snapshot(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if got := readSnapshot(t, res.Path); !reflect.DeepEqual(got, snapRows) {
		t.Errorf("--all rows\n got %+v\nwant %+v", got, snapRows)
	}
	if m := checkFiles(t, res); m.Rows.Addresses != 8 || m.Rows.Verified != 7 || !m.All {
		t.Errorf("--all manifest rows %+v", m.Rows)
	}
}

func TestSnapshotFiles(t *testing.T) {
	// Broken lines after the good ones: counted, listed, not in the snapshot.
	csvExtra := "9,u9,\"broken@example.com,true,false,\n10,u10,x@example.com,true\n"
	jsonExtra := "{\"id\": 9, \"email\": \"broken@example.com\"\n{\"id\": \"x\", \"email\": \"a@b.example\", \"verified\": true}\n"
	for _, c := range []struct {
		name, spec string
		line       int64 // of the first broken line
	}{
		{"csv", "csv:" + writeSnapCSV(t, snapRows, csvExtra), 10},
		{"jsonl", "jsonl:" + writeSnapJSONL(t, snapRows, jsonExtra), 9},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.DataDir, cfg.Source = t.TempDir(), c.spec
			o := SnapshotOptionsFromConfig(cfg, snapDate)
			o.Now = fixedNow
			res, err := Snapshot(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := readSnapshot(t, res.Path), verifiedOnly(snapRows); !reflect.DeepEqual(got, want) {
				t.Errorf("rows\n got %+v\nwant %+v", got, want)
			}
			m := checkFiles(t, res, "broken@example.com")
			if m.Rows.Addresses != 7 || m.Rows.Malformed != 2 || m.Rows.SkippedUnverified != 1 || len(m.Problems) != 2 ||
				m.Problems[0].Line != c.line || m.Problems[1].Line != c.line+1 {
				t.Errorf("manifest rows %+v problems %+v", m.Rows, m.Problems)
			}
		})
	}
}
