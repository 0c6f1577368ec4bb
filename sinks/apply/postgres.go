package apply

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lapse-dev/lapse/config"
)

// PostgresOptions say which account table to change and how.
type PostgresOptions struct {
	// DSN of the account database. A password missing from it comes from
	// PGPASSWORD (through pgx), else postgres.password_env or
	// postgres.password_file.
	DSN string
	// Postgres names the table and its columns (the snapshot's settings)
	// and where the password lives.
	Postgres config.PostgresConfig
	// Apply names the reason and domain status columns and the audit
	// table.
	Apply config.ApplyConfig
}

// Postgres is the registry's account table in PostgreSQL. Each batch is
// one statement over unnest() of the batch's arrays, guarded per row, and
// commits with its audit rows and its progress record.
type Postgres struct {
	conn   *pgx.Conn
	src    string // redacted DSN
	secret string // the password, scrubbed from every message

	tableName           string // schema.table, for messages
	table               string // quoted
	id, email, verified string // quoted columns
	reason, reasonType  string // quoted column and its type; "" when none
	checked, status     string // quoted domain status columns; "" when none
	checkedType         string
	statusType          string
	statusArray         bool
	writeDomain         bool

	auditName string // schema.table, for messages
	audit     string // quoted
	progress  string // quoted
	auditIdx  string // quoted index name
	lockKey   int64
}

// LockKey is the advisory lock key apply and revert take for an audit
// table (schema.table): one apply at a time per audit table.
func LockKey(auditTable string) int64 {
	h := fnv.New64a()
	h.Write([]byte("lapse apply " + auditTable))
	return int64(h.Sum64())
}

// OpenPostgres connects and checks the table and its columns. A missing
// table or column is an error that Is config.ErrConfig, naming the
// setting.
func OpenPostgres(ctx context.Context, o PostgresOptions) (*Postgres, error) {
	src := config.RedactSource(o.DSN)
	cfg, err := pgx.ParseConfig(o.DSN)
	if err != nil {
		return nil, fmt.Errorf("%w: account database %s: the DSN does not parse: use postgres://USER@HOST:PORT/DB", config.ErrConfig, src)
	}
	if cfg.Password == "" {
		pw, err := config.ReadSecret("postgres password", o.Postgres.PasswordEnv, o.Postgres.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("%w: account database %s: %v (postgres.password_file)", config.ErrConfig, src, err)
		}
		cfg.Password = pw.Reveal()
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	// Times are UTC and in ISO form, so the previous values kept as text
	// read back the same in revert's session.
	cfg.RuntimeParams["application_name"] = "lapse apply"
	cfg.RuntimeParams["TimeZone"] = "UTC"
	cfg.RuntimeParams["DateStyle"] = "ISO, YMD"
	// pgx prepares each statement once; after five runs PostgreSQL may
	// switch to a generic plan, which cannot see how many rows a batch's
	// arrays hold and joins them row by row (seconds per batch instead of
	// tens of milliseconds). Every batch gets its own plan.
	cfg.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	p := &Postgres{src: src, secret: cfg.Password}
	p.conn, err = pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "28P01" {
			err = fmt.Errorf("%w: the password was refused: check PGPASSWORD, postgres.password_env or postgres.password_file", err)
		}
		return nil, p.wrap("connect", err)
	}
	if err := p.check(ctx, o); err != nil {
		p.conn.Close(context.Background())
		return nil, err
	}
	return p, nil
}

// Close closes the connection (releasing the lock if still held).
func (p *Postgres) Close() error { return p.conn.Close(context.Background()) }

func (p *Postgres) String() string { return fmt.Sprintf("%s table %s", p.src, p.tableName) }

// AuditTable is the audit table's schema-qualified name; its progress
// records are in AuditTable()+"_progress".
func (p *Postgres) AuditTable() string { return p.auditName }

// LockKey is the advisory lock key of this target's audit table.
func (p *Postgres) LockKey() int64 { return p.lockKey }

func quote(parts ...string) string { return pgx.Identifier(parts).Sanitize() }

func (p *Postgres) check(ctx context.Context, o PostgresOptions) error {
	pc, ac := o.Postgres, o.Apply
	if pc.Table == "" {
		return fmt.Errorf("%w: postgres.table is empty: set it to the table holding the addresses (LAPSE_POSTGRES_TABLE)", config.ErrConfig)
	}
	var oid *uint32
	var schema, name string
	err := p.conn.QueryRow(ctx, `SELECT c.oid, n.nspname::text, c.relname::text FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)`, quote(strings.Split(pc.Table, ".")...)).Scan(&oid, &schema, &name)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: account database %s: table %q does not exist or is not visible to this user: set postgres.table (LAPSE_POSTGRES_TABLE)", config.ErrConfig, p.src, pc.Table)
	}
	if err != nil {
		return p.wrap("look up table "+pc.Table, err)
	}
	p.tableName, p.table = schema+"."+name, quote(schema, name)
	rows, err := p.conn.Query(ctx, `SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), c.data_type::text
		FROM pg_attribute a JOIN information_schema.columns c
		  ON c.table_schema = $2 AND c.table_name = $3 AND c.column_name = a.attname
		WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped`, *oid, schema, name)
	if err != nil {
		return p.wrap("list columns of "+p.tableName, err)
	}
	type col struct{ typ, dataType string }
	have := map[string]col{}
	for rows.Next() {
		var n string
		var c col
		if err := rows.Scan(&n, &c.typ, &c.dataType); err != nil {
			rows.Close()
			return p.wrap("list columns of "+p.tableName, err)
		}
		have[n] = c
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return p.wrap("list columns of "+p.tableName, err)
	}
	missing := func(key, env, colName, hint string) error {
		return fmt.Errorf("%w: account database %s: table %s has no column %q: set %s (%s) to the right column name%s",
			config.ErrConfig, p.src, p.tableName, colName, key, env, hint)
	}
	for _, c := range []struct{ key, col string }{{"id_column", pc.IDColumn}, {"email_column", pc.EmailColumn}, {"verified_column", pc.VerifiedCol}} {
		if _, ok := have[c.col]; !ok {
			return missing("postgres."+c.key, "LAPSE_POSTGRES_"+strings.ToUpper(c.key), c.col, "")
		}
	}
	p.id, p.email, p.verified = quote(pc.IDColumn), quote(pc.EmailColumn), quote(pc.VerifiedCol)
	if ac.ReasonColumn != "" {
		c, ok := have[ac.ReasonColumn]
		if !ok {
			return missing("apply.reason_column", "LAPSE_APPLY_REASON_COLUMN", ac.ReasonColumn, `, or "" to write no reason`)
		}
		p.reason, p.reasonType = quote(ac.ReasonColumn), c.typ
	}
	ck, okC := have[ac.DomainCheckedColumn]
	st, okS := have[ac.DomainStatusColumn]
	if ac.WriteDomainStatus {
		if !okC {
			return missing("apply.domain_checked_column", "LAPSE_APPLY_DOMAIN_CHECKED_COLUMN", ac.DomainCheckedColumn, ", or set apply.write_domain_status = false")
		}
		if !okS {
			return missing("apply.domain_status_column", "LAPSE_APPLY_DOMAIN_STATUS_COLUMN", ac.DomainStatusColumn, ", or set apply.write_domain_status = false")
		}
		p.writeDomain = true
	}
	// Revert restores the domain status columns an apply wrote even when
	// the setting is off now.
	if okC && okS && ac.DomainCheckedColumn != "" && ac.DomainStatusColumn != "" {
		p.checked, p.checkedType = quote(ac.DomainCheckedColumn), ck.typ
		p.status, p.statusType, p.statusArray = quote(ac.DomainStatusColumn), st.typ, st.dataType == "ARRAY"
	}
	auditSchema, auditName := schema, ac.AuditTable
	if s, n, ok := strings.Cut(ac.AuditTable, "."); ok {
		auditSchema, auditName = s, n
	}
	if auditName == "" {
		return fmt.Errorf("%w: apply.audit_table is empty: name the account-database table apply records its changes in (default lapse_audit)", config.ErrConfig)
	}
	p.auditName = auditSchema + "." + auditName
	p.audit = quote(auditSchema, auditName)
	p.progress = quote(auditSchema, auditName+"_progress")
	p.auditIdx = quote(auditName + "_email_id_idx")
	p.lockKey = LockKey(p.auditName)
	return nil
}

// wrap adds the redacted DSN to err and makes sure the password never
// appears in the message.
func (p *Postgres) wrap(what string, err error) error {
	err = fmt.Errorf("account database %s: %s: %w", p.src, what, err)
	if p.secret != "" && strings.Contains(err.Error(), p.secret) {
		return errors.New(strings.ReplaceAll(err.Error(), p.secret, "[redacted]"))
	}
	return err
}

// Lock takes the session advisory lock of the audit table.
func (p *Postgres) Lock(ctx context.Context, wait bool) (func(), error) {
	var ok bool
	if err := p.conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, p.lockKey).Scan(&ok); err != nil {
		return nil, p.wrap("take the apply lock", err)
	}
	if !ok && !wait {
		return nil, fmt.Errorf("%w: %s", ErrLocked, p.holder(ctx))
	}
	if !ok {
		if _, err := p.conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, p.lockKey); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, p.wrap("wait for the apply lock", err)
		}
	}
	return func() {
		p.conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, p.lockKey)
	}, nil
}

// holder describes who holds the advisory lock.
func (p *Postgres) holder(ctx context.Context) string {
	var pid int32
	var app string
	var since *time.Time
	err := p.conn.QueryRow(ctx, `SELECT l.pid, coalesce(a.application_name, ''), a.backend_start
		FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.classid::text::int8 = $1 AND l.objid::text::int8 = $2 AND l.objsubid = 1
		LIMIT 1`, int64(uint32(uint64(p.lockKey)>>32)), int64(uint32(uint64(p.lockKey)))).Scan(&pid, &app, &since)
	msg := fmt.Sprintf("%s holds the advisory lock of %s", p.src, p.auditName)
	if err != nil {
		return msg
	}
	msg += fmt.Sprintf(" for backend pid %d", pid)
	if app != "" {
		msg += fmt.Sprintf(" (%s", app)
		if since != nil {
			msg += ", connected " + since.UTC().Format(time.RFC3339)
		}
		msg += ")"
	}
	return msg
}

// Prepare creates the audit table, its index and the progress table when
// missing, and checks an existing audit table is lapse's.
func (p *Postgres) Prepare(ctx context.Context) error {
	ddl := fmt.Sprintf(`
CREATE TABLE IF NOT EXISTS %[1]s (
	id                    bigserial PRIMARY KEY,
	changeset_sha256      text NOT NULL,
	changeset_date        date NOT NULL,
	action                text NOT NULL CHECK (action IN ('apply', 'revert')),
	email_id              bigint NOT NULL,
	user_id               text,
	email                 text NOT NULL,
	domain                text,
	state                 text,
	reason                text NOT NULL,
	evidence              text,
	applied_at            timestamptz NOT NULL,
	applied_by            text NOT NULL,
	set_reason            text,
	prev_reason           text,
	domain_status_written boolean NOT NULL,
	prev_domain_checked   text,
	prev_domain_status    text,
	UNIQUE (changeset_sha256, action, email_id)
);
CREATE INDEX IF NOT EXISTS %[2]s ON %[1]s (email_id);
COMMENT ON TABLE %[1]s IS 'lapse apply and revert: one row per address un-verified (apply) or restored (revert), with why and the values revert restores';
CREATE TABLE IF NOT EXISTS %[3]s (
	changeset_sha256 text NOT NULL,
	changeset_date   date NOT NULL,
	action           text NOT NULL CHECK (action IN ('apply', 'revert')),
	batch            integer NOT NULL,
	last_email_id    bigint NOT NULL,
	rows             integer NOT NULL,
	changed          integer NOT NULL,
	skipped_ids      bigint[] NOT NULL,
	skipped_why      text[] NOT NULL,
	run_started_at   timestamptz NOT NULL,
	committed_at     timestamptz NOT NULL,
	applied_by       text NOT NULL,
	PRIMARY KEY (changeset_sha256, action, batch)
);
COMMENT ON TABLE %[3]s IS 'lapse apply and revert: one row per committed batch, so an interrupted run resumes after the last one';`,
		p.audit, p.auditIdx, p.progress)
	tx, err := p.conn.Begin(ctx)
	if err != nil {
		return p.wrap("create the audit table", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, ddl); err != nil {
		return p.wrap("create the audit table "+p.auditName, err)
	}
	if _, err := tx.Exec(ctx, `SELECT changeset_sha256, changeset_date, action, email_id, user_id, email, domain, state, reason,
		evidence, applied_at, applied_by, set_reason, prev_reason, domain_status_written, prev_domain_checked, prev_domain_status
		FROM `+p.audit+` LIMIT 0`); err != nil {
		return fmt.Errorf("%w: account database %s: table %s exists but is not lapse's audit table (%v): set apply.audit_table to another name",
			config.ErrConfig, p.src, p.auditName, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return p.wrap("create the audit table "+p.auditName, err)
	}
	return nil
}

// exists reports whether the audit and progress tables exist.
func (p *Postgres) exists(ctx context.Context) (bool, error) {
	var ok bool
	if err := p.conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL`, p.audit, p.progress).Scan(&ok); err != nil {
		return false, p.wrap("look up the audit table", err)
	}
	return ok, nil
}

// Progress reads the progress records of (sha256, action).
func (p *Postgres) Progress(ctx context.Context, sha, action string) (Progress, error) {
	var pr Progress
	if ok, err := p.exists(ctx); err != nil || !ok {
		return pr, err
	}
	rows, err := p.conn.Query(ctx, `SELECT last_email_id, changed, skipped_ids, skipped_why, run_started_at, committed_at, applied_by
		FROM `+p.progress+` WHERE changeset_sha256 = $1 AND action = $2 ORDER BY batch`, sha, action)
	if err != nil {
		return pr, p.wrap("read progress", err)
	}
	defer rows.Close()
	for rows.Next() {
		var last int64
		var changed int32
		var ids []int64
		var why []string
		var started, at time.Time
		var by string
		if err := rows.Scan(&last, &changed, &ids, &why, &started, &at, &by); err != nil {
			return pr, p.wrap("read progress", err)
		}
		if pr.Batches == 0 {
			pr.StartedAt, pr.By = started.UTC(), by
		}
		pr.Batches++
		pr.Cursor = last
		pr.Changed += int64(changed)
		pr.FinishedAt = at.UTC()
		for i, id := range ids {
			pr.Skipped = append(pr.Skipped, Skip{EmailID: id, Why: why[i]})
		}
	}
	if err := rows.Err(); err != nil {
		return pr, p.wrap("read progress", err)
	}
	return pr, nil
}

// Changes reads the audit rows of (sha256, action).
func (p *Postgres) Changes(ctx context.Context, sha, action string) ([]Change, error) {
	if ok, err := p.exists(ctx); err != nil || !ok {
		return nil, err
	}
	rows, err := p.conn.Query(ctx, `SELECT email_id, coalesce(user_id, ''), email, coalesce(domain, ''), coalesce(state, ''),
		reason, coalesce(evidence, ''), applied_at, applied_by, set_reason, prev_reason, domain_status_written,
		prev_domain_checked, prev_domain_status
		FROM `+p.audit+` WHERE changeset_sha256 = $1 AND action = $2 ORDER BY email_id`, sha, action)
	if err != nil {
		return nil, p.wrap("read the audit table", err)
	}
	defer rows.Close()
	var out []Change
	for rows.Next() {
		c := Change{Action: action}
		if err := rows.Scan(&c.EmailID, &c.UserID, &c.Email, &c.Domain, &c.State, &c.Reason, &c.Evidence, &c.At, &c.By,
			&c.SetReason, &c.PrevReason, &c.DomainStatus, &c.PrevDomainChecked, &c.PrevDomainStatus); err != nil {
			return nil, p.wrap("read the audit table", err)
		}
		c.At = c.At.UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, p.wrap("read the audit table", err)
	}
	return out, nil
}

// applySQL un-verifies the batch's rows that pass the guard (same id,
// same address, still verified, not already changed by this changeset),
// locking them first to read the values revert restores, and inserts an
// audit row per change. It returns the changed ids.
func (p *Postgres) applySQL(domain bool) string {
	prevReason, setReason := "NULL::text", ""
	if p.reason != "" {
		prevReason = "t." + p.reason + "::text"
		setReason = fmt.Sprintf(", %s = CAST($13::text AS %s)", p.reason, p.reasonType)
	}
	prevChecked, prevStatus, setDomain := "NULL::text", "NULL::text", ""
	if domain {
		prevChecked, prevStatus = "t."+p.checked+"::text", "t."+p.status+"::text"
		status := "i.state"
		if p.statusArray {
			status = "ARRAY[i.state]"
		}
		setDomain = fmt.Sprintf(", %s = CAST(i.checked AS %s), %s = CAST(%s AS %s)", p.checked, p.checkedType, p.status, status, p.statusType)
	}
	// The rows flow from old through upd's RETURNING into ins: no join
	// of CTEs, whose row counts the planner cannot estimate.
	return fmt.Sprintf(`
WITH old AS (
	SELECT i.*, %[5]s AS prev_reason, %[6]s AS prev_checked, %[7]s AS prev_status
	FROM %[1]s t
	JOIN unnest($1::int8[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[], $7::text[], $8::text[])
		AS i(email_id, email, state, checked, user_id, domain, reason, evidence)
	  ON t.%[2]s = i.email_id AND t.%[3]s = i.email
	WHERE t.%[4]s
	  AND NOT EXISTS (SELECT 1 FROM %[10]s a WHERE a.changeset_sha256 = $9 AND a.action = 'apply' AND a.email_id = i.email_id)
	FOR UPDATE OF t
), upd AS (
	UPDATE %[1]s t SET %[4]s = false%[8]s%[9]s
	FROM old i
	WHERE t.%[2]s = i.email_id AND t.%[3]s = i.email AND t.%[4]s
	RETURNING i.*
), ins AS (
	INSERT INTO %[10]s (changeset_sha256, changeset_date, action, email_id, user_id, email, domain, state, reason, evidence,
		applied_at, applied_by, set_reason, prev_reason, domain_status_written, prev_domain_checked, prev_domain_status)
	SELECT $9, $10::date, 'apply', i.email_id, i.user_id, i.email, i.domain, i.state, i.reason, i.evidence,
		$11, $12, $13::text, i.prev_reason, $14::bool, i.prev_checked, i.prev_status
	FROM upd i
	RETURNING email_id
)
SELECT email_id FROM ins ORDER BY email_id`,
		p.table, p.id, p.email, p.verified, prevReason, prevChecked, prevStatus, setReason, setDomain, p.audit)
}

// applyCheckSQL says, per row, whether apply would un-verify it or why
// not. withAudit: the audit table exists (it is read for $3's changes).
func (p *Postgres) applyCheckSQL(withAudit bool) string {
	applied := "false"
	if withAudit {
		applied = fmt.Sprintf("EXISTS (SELECT 1 FROM %s a WHERE a.changeset_sha256 = $3 AND a.action = 'apply' AND a.email_id = i.email_id)", p.audit)
	}
	return fmt.Sprintf(`SELECT i.email_id, CASE
		WHEN %[5]s THEN '%[6]s'
		WHEN t.%[2]s IS NULL THEN '%[7]s'
		WHEN t.%[3]s::text IS DISTINCT FROM i.email THEN '%[8]s'
		WHEN NOT coalesce(t.%[4]s, false) THEN '%[9]s'
		ELSE '%[10]s' END
	FROM unnest($1::int8[], $2::text[]) AS i(email_id, email)
	LEFT JOIN %[1]s t ON t.%[2]s = i.email_id
	ORDER BY i.email_id`, p.table, p.id, p.email, p.verified, applied,
		SkipAlreadyApplied, SkipDeleted, SkipEmailChanged, SkipAlreadyUnverified, VerdictUnverify)
}

// revertSQL restores the batch's audited rows still as apply left them
// (same address, not verified, apply's reason), inserting an audit row
// per change with the values it replaced.
func (p *Postgres) revertSQL() string {
	curReason, setReason, guard := "NULL::text", "", ""
	if p.reason != "" {
		curReason = "t." + p.reason + "::text"
		setReason = fmt.Sprintf(", %s = CAST(i.prev_reason AS %s)", p.reason, p.reasonType)
		guard = fmt.Sprintf(" AND t.%s::text IS NOT DISTINCT FROM i.set_reason", p.reason)
	}
	curChecked, curStatus, setDomain := "NULL::text", "NULL::text", ""
	if p.checked != "" {
		curChecked, curStatus = "t."+p.checked+"::text", "t."+p.status+"::text"
		setDomain = fmt.Sprintf(`, %[1]s = CASE WHEN i.domain_status_written THEN CAST(i.prev_domain_checked AS %[2]s) ELSE t.%[1]s END,
		%[3]s = CASE WHEN i.domain_status_written THEN CAST(i.prev_domain_status AS %[4]s) ELSE t.%[3]s END`,
			p.checked, p.checkedType, p.status, p.statusType)
	}
	return fmt.Sprintf(`
WITH old AS (
	SELECT i.email_id, i.user_id, i.email, i.domain, i.state, i.reason, i.evidence, i.set_reason, i.prev_reason,
	       i.domain_status_written, i.prev_domain_checked, i.prev_domain_status,
	       %[6]s AS cur_reason, %[7]s AS cur_checked, %[8]s AS cur_status
	FROM %[1]s t JOIN %[5]s i
	  ON i.changeset_sha256 = $1 AND i.action = 'apply' AND i.email_id = ANY($2::int8[])
	 AND t.%[2]s = i.email_id AND t.%[3]s = i.email
	WHERE NOT coalesce(t.%[4]s, false)%[9]s
	  AND NOT EXISTS (SELECT 1 FROM %[5]s r WHERE r.changeset_sha256 = $1 AND r.action = 'revert' AND r.email_id = i.email_id)
	FOR UPDATE OF t
), upd AS (
	UPDATE %[1]s t SET %[4]s = true%[10]s%[11]s
	FROM old i
	WHERE t.%[2]s = i.email_id AND t.%[3]s = i.email AND NOT coalesce(t.%[4]s, false)%[9]s
	RETURNING i.*
), ins AS (
	INSERT INTO %[5]s (changeset_sha256, changeset_date, action, email_id, user_id, email, domain, state, reason, evidence,
		applied_at, applied_by, set_reason, prev_reason, domain_status_written, prev_domain_checked, prev_domain_status)
	SELECT $1, $3::date, 'revert', i.email_id, i.user_id, i.email, i.domain, i.state, i.reason, i.evidence,
		$4, $5, i.prev_reason, i.cur_reason, i.domain_status_written, i.cur_checked, i.cur_status
	FROM upd i
	RETURNING email_id
)
SELECT email_id FROM ins ORDER BY email_id`,
		p.table, p.id, p.email, p.verified, p.audit, curReason, curChecked, curStatus, guard, setReason, setDomain)
}

// revertCheckSQL says, per audited row, whether revert would restore it
// or why not.
func (p *Postgres) revertCheckSQL() string {
	reasonCase := ""
	if p.reason != "" {
		reasonCase = fmt.Sprintf("WHEN t.%s::text IS DISTINCT FROM i.set_reason THEN '%s'", p.reason, SkipReasonChanged)
	}
	return fmt.Sprintf(`SELECT i.email_id, CASE
		WHEN EXISTS (SELECT 1 FROM %[5]s r WHERE r.changeset_sha256 = $1 AND r.action = 'revert' AND r.email_id = i.email_id) THEN '%[7]s'
		WHEN t.%[2]s IS NULL THEN '%[8]s'
		WHEN t.%[3]s::text IS DISTINCT FROM i.email THEN '%[9]s'
		WHEN coalesce(t.%[4]s, false) THEN '%[10]s'
		%[6]s
		ELSE '%[11]s' END
	FROM (SELECT email_id, email, set_reason FROM %[5]s
	      WHERE changeset_sha256 = $1 AND action = 'apply' AND email_id = ANY($2::int8[])) i
	LEFT JOIN %[1]s t ON t.%[2]s = i.email_id
	ORDER BY i.email_id`, p.table, p.id, p.email, p.verified, p.audit, reasonCase,
		SkipAlreadyReverted, SkipDeleted, SkipEmailChanged, SkipReverified, VerdictRestore)
}

// Apply runs one apply batch in one transaction.
func (p *Postgres) Apply(ctx context.Context, b Batch) (BatchResult, error) {
	var res BatchResult
	if b.DomainStatus && !p.writeDomain {
		return res, errors.New("write_domain_status is set but the target was opened without it")
	}
	n := len(b.Rows)
	ids, emails, states := make([]int64, n), make([]string, n), make([]string, n)
	checked := make([]time.Time, n)
	users, domains := make([]*string, n), make([]*string, n)
	reasons, evidence := make([]string, n), make([]string, n)
	for i, r := range b.Rows {
		ids[i], emails[i], states[i], checked[i] = r.EmailID, r.Email, r.State, r.Checked.UTC()
		users[i], domains[i] = optional(r.UserID), optional(r.Domain)
		reasons[i], evidence[i] = r.Reason, r.Evidence
	}
	var setReason *string
	if p.reason != "" {
		setReason = &b.Reason
	}
	tx, err := p.conn.Begin(ctx)
	if err != nil {
		return res, p.wrap("begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	rows, err := tx.Query(ctx, p.applySQL(b.DomainStatus), ids, emails, states, checked, users, domains, reasons, evidence,
		b.SHA256, b.Date, b.At, b.By, setReason, b.DomainStatus)
	if err != nil {
		return res, p.wrap("un-verify", err)
	}
	res.Changed, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return res, p.wrap("un-verify", err)
	}
	if len(res.Changed) < n {
		done := make(map[int64]bool, len(res.Changed))
		for _, id := range res.Changed {
			done[id] = true
		}
		var sIDs []int64
		var sEmails []string
		for i, id := range ids {
			if !done[id] {
				sIDs, sEmails = append(sIDs, id), append(sEmails, emails[i])
			}
		}
		res.Skipped, err = p.verdicts(ctx, tx, p.applyCheckSQL(true), sIDs, sEmails, b.SHA256)
		if err != nil {
			return res, err
		}
		for i := range res.Skipped {
			if res.Skipped[i].Why == VerdictUnverify {
				res.Skipped[i].Why = SkipConcurrent
			}
		}
	}
	if err := p.commit(ctx, tx, b, len(res.Changed), res.Skipped); err != nil {
		return res, err
	}
	return res, nil
}

// Revert runs one revert batch in one transaction.
func (p *Postgres) Revert(ctx context.Context, b Batch) (BatchResult, error) {
	var res BatchResult
	ids := make([]int64, len(b.Changes))
	for i, c := range b.Changes {
		ids[i] = c.EmailID
	}
	tx, err := p.conn.Begin(ctx)
	if err != nil {
		return res, p.wrap("begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	rows, err := tx.Query(ctx, p.revertSQL(), b.SHA256, ids, b.Date, b.At, b.By)
	if err != nil {
		return res, p.wrap("restore", err)
	}
	res.Changed, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return res, p.wrap("restore", err)
	}
	if len(res.Changed) < len(ids) {
		done := make(map[int64]bool, len(res.Changed))
		for _, id := range res.Changed {
			done[id] = true
		}
		var sIDs []int64
		for _, id := range ids {
			if !done[id] {
				sIDs = append(sIDs, id)
			}
		}
		res.Skipped, err = p.verdicts(ctx, tx, p.revertCheckSQL(), b.SHA256, sIDs)
		if err != nil {
			return res, err
		}
		for i := range res.Skipped {
			if res.Skipped[i].Why == VerdictRestore {
				res.Skipped[i].Why = SkipConcurrent
			}
		}
	}
	if err := p.commit(ctx, tx, b, len(res.Changed), res.Skipped); err != nil {
		return res, err
	}
	return res, nil
}

// commit records the batch's progress and commits its transaction.
func (p *Postgres) commit(ctx context.Context, tx pgx.Tx, b Batch, changed int, skipped []Skip) error {
	sIDs, sWhy := make([]int64, len(skipped)), make([]string, len(skipped))
	for i, s := range skipped {
		sIDs[i], sWhy[i] = s.EmailID, s.Why
	}
	rowsN := len(b.Rows) + len(b.Changes)
	if _, err := tx.Exec(ctx, `INSERT INTO `+p.progress+` (changeset_sha256, changeset_date, action, batch, last_email_id, rows,
		changed, skipped_ids, skipped_why, run_started_at, committed_at, applied_by)
		VALUES ($1, $2::date, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		b.SHA256, b.Date, b.Action, b.Seq, b.Last, rowsN, changed, sIDs, sWhy, b.RunStartedAt, b.At, b.By); err != nil {
		return p.wrap("record batch progress", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return p.wrap("commit", err)
	}
	return nil
}

// Check returns the rows Apply or Revert would skip, and why.
func (p *Postgres) Check(ctx context.Context, b Batch) ([]Skip, error) {
	var all []Skip
	var err error
	if b.Action == ActionRevert {
		ids := make([]int64, len(b.Changes))
		for i, c := range b.Changes {
			ids[i] = c.EmailID
		}
		all, err = p.verdicts(ctx, p.conn, p.revertCheckSQL(), b.SHA256, ids)
	} else {
		ids, emails := make([]int64, len(b.Rows)), make([]string, len(b.Rows))
		for i, r := range b.Rows {
			ids[i], emails[i] = r.EmailID, r.Email
		}
		ok, xerr := p.exists(ctx)
		if xerr != nil {
			return nil, xerr
		}
		if ok {
			all, err = p.verdicts(ctx, p.conn, p.applyCheckSQL(true), ids, emails, b.SHA256)
		} else {
			all, err = p.verdicts(ctx, p.conn, p.applyCheckSQL(false), ids, emails)
		}
	}
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, s := range all {
		if s.Why != VerdictUnverify && s.Why != VerdictRestore {
			out = append(out, s)
		}
	}
	return out, nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func (p *Postgres) verdicts(ctx context.Context, q querier, sql string, args ...any) ([]Skip, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, p.wrap("check rows", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Skip, error) {
		var s Skip
		err := r.Scan(&s.EmailID, &s.Why)
		return s, err
	})
	if err != nil {
		return nil, p.wrap("check rows", err)
	}
	return out, nil
}
