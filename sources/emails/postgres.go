package emails

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/lapse-dev/lapse/config"
)

// pgReader streams `COPY (SELECT …) TO STDOUT` in text format: the server
// does the encoding it is fastest at, and one goroutine parses the rows
// into batches while the caller consumes the previous ones.
type pgReader struct {
	conn    *pgx.Conn
	src     string // redacted DSN for messages
	secret  string // password to scrub from messages
	where   string
	results chan pgResult
	cancel  context.CancelFunc
	done    chan struct{}
	once    sync.Once
	closed  bool

	mu       sync.Mutex // guards problems, written by the copy goroutine
	problems Problems
	// schema is UUIDSchema when the user id column is a uuid (stored as
	// 16 bytes, not its 36 characters of text), else Schema.
	schema *arrow.Schema
}

type pgResult struct {
	rec arrow.RecordBatch
	err error
}

// Query returns the SELECT a postgres source runs (inside COPY), for the
// configuration and the verified filter; benchmarks and operators can run
// the same query with psql.
func Query(pc config.PostgresConfig, all bool) string {
	id := func(s string) string { return pgx.Identifier{s}.Sanitize() }
	ts := func(col string) string {
		if col == "" {
			return "NULL::int8"
		}
		// Microseconds since the epoch: exact, and independent of the
		// session's DateStyle and TimeZone.
		return "(extract(epoch FROM " + id(col) + ") * 1000000)::int8"
	}
	primary := "false"
	if pc.PrimaryColumn != "" {
		primary = "coalesce(" + id(pc.PrimaryColumn) + ", false)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "SELECT %s::int8, %s::text, %s::text, coalesce(%s, false), %s, %s, %s FROM %s",
		id(pc.IDColumn), id(pc.UserIDColumn), id(pc.EmailColumn), id(pc.VerifiedCol), primary,
		ts(pc.CreatedColumn), ts(pc.VerifiedAtColumn), tableIdent(pc.Table))
	var where []string
	if !all {
		where = append(where, id(pc.VerifiedCol))
	}
	if w := strings.TrimSpace(pc.Where); w != "" {
		where = append(where, "("+w+")")
	}
	if len(where) > 0 {
		b.WriteString(" WHERE " + strings.Join(where, " AND "))
	}
	return b.String()
}

// tableIdent quotes "table" or "schema.table".
func tableIdent(t string) string { return pgx.Identifier(strings.Split(t, ".")).Sanitize() }

func openPostgres(ctx context.Context, dsn string, opts Options) (Reader, error) {
	src := config.RedactSource(dsn)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, &ConfigError{Msg: fmt.Sprintf("postgres %s: the DSN does not parse: use postgres://USER@HOST:PORT/DB", src)}
	}
	if cfg.Password == "" {
		pw, err := config.ReadSecret("postgres password", opts.Postgres.PasswordEnv, opts.Postgres.PasswordFile)
		if err != nil {
			return nil, &ConfigError{Msg: fmt.Sprintf("postgres %s: %v (postgres.password_file)", src, err)}
		}
		cfg.Password = pw.Reveal()
	}
	r := &pgReader{src: src, secret: cfg.Password, where: opts.Postgres.Where, schema: Schema}
	// COPY streams tens of MB: read the socket in large chunks, not
	// pgproto3's 8 KB (measured: a tenth of the snapshot's CPU time was
	// read system calls).
	cfg.BuildFrontend = func(r io.Reader, w io.Writer) *pgproto3.Frontend {
		return pgproto3.NewFrontend(bufio.NewReaderSize(r, 1<<20), w)
	}
	r.conn, err = pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, r.wrap("connect", err)
	}
	if err := r.check(ctx, opts.Postgres); err != nil {
		r.conn.Close(context.Background())
		return nil, err
	}
	cctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.results = make(chan pgResult, 1)
	r.done = make(chan struct{})
	sql := "COPY (" + Query(opts.Postgres, opts.All) + ") TO STDOUT"
	b := newBatchBuilder(opts.alloc(), r.schema, opts.batchSize())
	// The query selects NULL for a time column the table does not have.
	b.noCreated, b.noVerifiedAt = opts.Postgres.CreatedColumn == "", opts.Postgres.VerifiedAtColumn == ""
	go r.copy(cctx, sql, b)
	return r, nil
}

// Schema is UUIDSchema when the user id column is a uuid, else Schema.
func (r *pgReader) Schema() *arrow.Schema { return r.schema }

// check turns a missing table or column into an error naming the setting.
func (r *pgReader) check(ctx context.Context, pc config.PostgresConfig) error {
	if pc.Table == "" {
		return &ConfigError{Msg: "postgres.table is empty: set it to the table holding the addresses (LAPSE_POSTGRES_TABLE)"}
	}
	var oid *uint32
	if err := r.conn.QueryRow(ctx, "SELECT to_regclass($1)::oid", tableIdent(pc.Table)).Scan(&oid); err != nil {
		return r.wrap("look up table "+pc.Table, err)
	}
	if oid == nil {
		return &ConfigError{Msg: fmt.Sprintf("postgres %s: table %q does not exist or is not visible to this user: set postgres.table (LAPSE_POSTGRES_TABLE)", r.src, pc.Table)}
	}
	rows, err := r.conn.Query(ctx, "SELECT attname::text, atttypid = 'uuid'::regtype FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped", *oid)
	if err != nil {
		return r.wrap("list columns of "+pc.Table, err)
	}
	have := map[string]bool{}
	for rows.Next() {
		var n string
		var isUUID bool
		if err := rows.Scan(&n, &isUUID); err != nil {
			rows.Close()
			return r.wrap("list columns of "+pc.Table, err)
		}
		have[n] = true
		if isUUID && n == pc.UserIDColumn {
			r.schema = UUIDSchema
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return r.wrap("list columns of "+pc.Table, err)
	}
	for _, c := range []struct{ key, col string }{
		{"id_column", pc.IDColumn}, {"user_id_column", pc.UserIDColumn}, {"email_column", pc.EmailColumn},
		{"verified_column", pc.VerifiedCol}, {"primary_column", pc.PrimaryColumn},
		{"created_column", pc.CreatedColumn}, {"verified_at_column", pc.VerifiedAtColumn},
	} {
		optional := c.key == "primary_column" || c.key == "created_column" || c.key == "verified_at_column"
		if c.col == "" && optional {
			continue
		}
		if !have[c.col] {
			return &ConfigError{Msg: fmt.Sprintf("postgres %s: table %q has no column %q: set postgres.%s (LAPSE_POSTGRES_%s) to the right column name",
				r.src, pc.Table, c.col, c.key, strings.ToUpper(c.key))}
		}
	}
	return nil
}

// wrap adds the redacted source to err and makes sure the password never
// appears in the message.
func (r *pgReader) wrap(what string, err error) error {
	err = fmt.Errorf("postgres %s: %s: %w", r.src, what, err)
	if r.secret != "" && strings.Contains(err.Error(), r.secret) {
		return errors.New(strings.ReplaceAll(err.Error(), r.secret, "[redacted]"))
	}
	return err
}

func (r *pgReader) copy(ctx context.Context, sql string, b *batchBuilder) {
	defer close(r.done)
	defer b.release()
	p := &copyParser{ctx: ctx, b: b, out: r.results, r: r, uuid: r.schema == UUIDSchema}
	_, err := r.conn.PgConn().CopyTo(ctx, p, sql)
	if err == nil && len(p.carry) > 0 {
		err = p.line(p.carry)
	}
	if err == nil {
		if rec := b.flush(); rec != nil {
			err = p.send(rec)
		}
	}
	switch {
	case err == nil:
		err = io.EOF
	case ctx.Err() != nil:
		err = ctx.Err()
	default:
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code[:2] == "42" && r.where != "" {
			err = fmt.Errorf("%w (check postgres.where)", err)
		}
		err = r.wrap("copy", err)
	}
	select {
	case r.results <- pgResult{err: err}:
	case <-ctx.Done():
	}
}

func (r *pgReader) Next(ctx context.Context) (arrow.RecordBatch, error) {
	if r.closed {
		return nil, errClosed
	}
	// A canceled caller gets its error even when a batch is ready: select
	// picks at random among ready cases, and a batch handed to a caller
	// that is stopping would never be released.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case res, ok := <-r.results:
		if !ok {
			return nil, io.EOF
		}
		if res.err != nil {
			if res.err == io.EOF {
				close(r.results) // the producer has sent its last message
			}
			return nil, res.err
		}
		return res.rec, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Problems reports the rows left out so far: those whose id an earlier row
// had (the query filters unverified rows itself and does not count them).
func (r *pgReader) Problems() Problems {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.problems.copy()
}

func (r *pgReader) Close() error {
	r.once.Do(func() {
		r.closed = true
		r.cancel()
		<-r.done
		// Release whatever the producer left in the channel.
	drain:
		for {
			select {
			case res, ok := <-r.results:
				if !ok {
					break drain
				}
				if res.rec != nil {
					res.rec.Release()
				}
			default:
				break drain
			}
		}
		r.conn.Close(context.Background())
	})
	return nil
}

// copyParser receives COPY text-format data and appends its rows.
type copyParser struct {
	ctx   context.Context
	b     *batchBuilder
	out   chan<- pgResult
	carry []byte
	row   row
	buf   [2][]byte // unescaping scratch for user_id and email
	n     int64     // rows so far: the ordinal of problems
	ids   idSet
	r     *pgReader // its problems
	uuid  bool      // user ids are a uuid column's text, stored as 16 bytes
}

func (p *copyParser) send(rec arrow.RecordBatch) error {
	select {
	case p.out <- pgResult{rec: rec}:
		return nil
	case <-p.ctx.Done():
		rec.Release()
		return p.ctx.Err()
	}
}

// Write takes any split of the stream (the server sends one row per
// message, but nothing here depends on it).
func (p *copyParser) Write(data []byte) (int, error) {
	n := len(data)
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			p.carry = append(p.carry, data...)
			break
		}
		line := data[:i]
		if len(p.carry) > 0 {
			p.carry = append(p.carry, line...)
			line = p.carry
		}
		if err := p.line(line); err != nil {
			return 0, err
		}
		p.carry = p.carry[:0]
		data = data[i+1:]
	}
	return n, nil
}

func (p *copyParser) line(line []byte) error {
	var f [7][]byte
	for i := range 6 {
		j := bytes.IndexByte(line, '\t')
		if j < 0 {
			return fmt.Errorf("COPY row has %d fields, want 7", i+1)
		}
		f[i], line = line[:j], line[j+1:]
	}
	f[6] = line
	p.n++
	r := &p.row
	var ok bool
	if r.id, ok = parseInt(f[0]); !ok {
		return fmt.Errorf("COPY row: id %q is not an integer", f[0])
	}
	r.userNull = isNull(f[1])
	switch {
	case r.userNull:
	case p.uuid:
		// A uuid's text is always its canonical 36 characters.
		if !parseUUID(&r.userUUID, f[1]) {
			return fmt.Errorf("COPY row: user_id %q is not a uuid", f[1])
		}
	default:
		r.userID = p.field(0, f[1])
	}
	if isNull(f[2]) {
		r.email = nil
	} else {
		r.email = p.field(1, f[2])
	}
	r.verified = len(f[3]) == 1 && f[3][0] == 't'
	r.primary = len(f[4]) == 1 && f[4][0] == 't'
	r.hasCreated = !isNull(f[5])
	if r.hasCreated {
		if r.created, ok = parseInt(f[5]); !ok {
			return fmt.Errorf("COPY row: created %q is not an integer", f[5])
		}
	}
	r.hasVAt = !isNull(f[6])
	if r.hasVAt {
		if r.verAt, ok = parseInt(f[6]); !ok {
			return fmt.Errorf("COPY row: verified_at %q is not an integer", f[6])
		}
	}
	if p.ids.add(r.id) {
		p.r.mu.Lock()
		p.r.problems.addProblem(Problem{Row: p.n, Reason: duplicateID(r.id, "row")})
		p.r.mu.Unlock()
		return nil
	}
	p.b.append(r)
	if p.b.full() {
		return p.send(p.b.flush())
	}
	return nil
}

// field returns f unescaped: f itself when it has no escape (the usual
// case, saving a copy), else its decoding in scratch buffer i.
func (p *copyParser) field(i int, f []byte) []byte {
	if bytes.IndexByte(f, '\\') < 0 {
		return f
	}
	p.buf[i] = unescape(p.buf[i][:0], f)
	return p.buf[i]
}

// parseUUID decodes a UUID's canonical text (8-4-4-4-12 hex digits, as
// PostgreSQL writes a uuid) into u.
func parseUUID(u *[16]byte, s []byte) bool {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return false
	}
	var bad byte
	for j, i := range uuidDigits {
		hi, lo := hexValue[s[i]], hexValue[s[i+1]]
		bad |= hi | lo
		u[j] = hi<<4 | lo&0xf
	}
	return bad&0xf0 == 0
}

// uuidDigits are where each byte's two hex digits start in a UUID's text.
var uuidDigits = [16]int{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34}

// hexValue maps a hex digit to its value and every other byte to 0xff.
var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c], t[c-'a'+'A'] = byte(c-'a'+10), byte(c-'a'+10)
	}
	return t
}()

func isNull(f []byte) bool { return len(f) == 2 && f[0] == '\\' && f[1] == 'N' }

// parseInt parses a decimal int64 without allocating.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	neg := b[0] == '-'
	if neg || b[0] == '+' {
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
		if n > 1<<63 {
			return 0, false
		}
	}
	if !neg && n > 1<<63-1 {
		return 0, false
	}
	if neg {
		return -int64(n), true
	}
	return int64(n), true
}

// unescape decodes COPY text-format backslash escapes into dst.
func unescape(dst, s []byte) []byte {
	if bytes.IndexByte(s, '\\') < 0 {
		return append(dst, s...)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			dst = append(dst, c)
			continue
		}
		i++
		switch e := s[i]; e {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'v':
			dst = append(dst, '\v')
		case 'x':
			v, n := 0, 0
			for n < 2 && i+1 < len(s) && isHex(s[i+1]) {
				i++
				v = v*16 + hexVal(s[i])
				n++
			}
			if n == 0 {
				dst = append(dst, 'x')
			} else {
				dst = append(dst, byte(v))
			}
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v := int(e - '0')
			for n := 1; n < 3 && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '7'; n++ {
				i++
				v = v*8 + int(s[i]-'0')
			}
			dst = append(dst, byte(v))
		default:
			dst = append(dst, e)
		}
	}
	return dst
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func hexVal(c byte) int {
	switch {
	case c >= 'a':
		return int(c-'a') + 10
	case c >= 'A':
		return int(c-'A') + 10
	}
	return int(c - '0')
}
