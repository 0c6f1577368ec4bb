package apply

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/lapse-dev/lapse/internal/atomicfile"
	"github.com/lapse-dev/lapse/internal/duck"
	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/sinks/changeset"
)

// checkedRE finds the lookup date in a changeset row's evidence summary.
var checkedRE = regexp.MustCompile(`\bchecked (\d{4}-\d{2}-\d{2})\b`)

// readRows reads changeset.parquet, by email id. A row's Checked is its
// evidence's "checked" date, else the night.
func readRows(ctx context.Context, path string, date time.Time) ([]Row, error) {
	db, err := duck.OpenMemory()
	if err != nil {
		return nil, err
	}
	defer db.Close()
	q := fmt.Sprintf(`SELECT CAST(email_id AS BIGINT), coalesce(CAST(user_id AS VARCHAR), ''), email,
		coalesce(domain, ''), coalesce(state, ''), coalesce(reason, ''), coalesce(evidence, '')
		FROM read_parquet(%s) ORDER BY email_id`, duck.String(path))
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer rows.Close()
	var out []Row
	for rows.Next() {
		var r Row
		var email sql.NullString
		if err := rows.Scan(&r.EmailID, &r.UserID, &email, &r.Domain, &r.State, &r.Reason, &r.Evidence); err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		if !email.Valid {
			return nil, fmt.Errorf("read %s: email id %d has no address", path, r.EmailID)
		}
		r.Email = email.String
		r.Checked = date
		if m := checkedRE.FindStringSubmatch(r.Evidence); m != nil {
			if t, err := night.Parse(m[1]); err == nil {
				r.Checked = t
			}
		}
		if n := len(out); n > 0 && out[n-1].EmailID == r.EmailID {
			return nil, fmt.Errorf("read %s: email id %d appears twice", path, r.EmailID)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

// appliedSHA is the manifest sha256 the changeset was applied under: the
// one applied.json names, else the one its approval pins.
func appliedSHA(dir string) (string, error) {
	if b, err := os.ReadFile(filepath.Join(dir, changeset.FileApplied)); err == nil {
		var r Report
		if json.Unmarshal(b, &r) == nil && r.ManifestSHA256 != "" {
			return r.ManifestSHA256, nil
		}
	}
	a, err := changeset.ReadApproval(dir)
	if errors.Is(err, changeset.ErrNotApproved) {
		return "", fmt.Errorf("changeset %s: %w: it has no %s and no %s", dir, ErrNotApplied, changeset.FileApplied, changeset.FileApproval)
	}
	if err != nil {
		return "", err
	}
	return a.ManifestSHA256, nil
}

// ReadReport reads applied.json or reverted.json.
func ReadReport(path string) (Report, error) {
	var r Report
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%s does not parse: %w", path, err)
	}
	return r, nil
}

// writeReport writes the report (0640, atomically) unless, when not
// forced, the file on disk already says the same.
func writeReport(path string, r Report, force bool) (bool, error) {
	if !force {
		if old, err := ReadReport(path); err == nil && old.ManifestSHA256 == r.ManifestSHA256 && old.Action == r.Action &&
			old.Changed == r.Changed && old.Skipped == r.Skipped && old.Batches == r.Batches {
			return false, nil
		}
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return false, err
	}
	if err := atomicfile.WriteFile(path, append(b, '\n'), 0o640); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, nil
}

// writeNotify writes notify_applied.csv: the rows of notify.csv whose
// address was un-verified (0600, atomically), unless, when not forced, it
// already holds as many.
func writeNotify(src, dst string, changes []Change, force bool) (bool, error) {
	if !force {
		if n, err := csvRows(dst); err == nil && n == len(changes) {
			return false, nil
		}
	}
	changed := make(map[int64]bool, len(changes))
	for _, c := range changes {
		changed[c.EmailID] = true
	}
	in, err := os.Open(src)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", src, err)
	}
	defer in.Close()
	r := csv.NewReader(bufio.NewReader(in))
	header, err := r.Read()
	if err != nil {
		return false, fmt.Errorf("read %s: %w", src, err)
	}
	col := -1
	for i, h := range header {
		if h == "email_id" {
			col = i
		}
	}
	if col < 0 {
		return false, fmt.Errorf("read %s: no email_id column", src)
	}
	f, err := atomicfile.Create(dst, 0o600)
	if err != nil {
		return false, err
	}
	defer f.Abort()
	bw := bufio.NewWriter(f)
	w := csv.NewWriter(bw)
	if err := w.Write(header); err != nil {
		return false, err
	}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return false, fmt.Errorf("read %s: %w", src, err)
		}
		id, err := strconv.ParseInt(rec[col], 10, 64)
		if err != nil {
			return false, fmt.Errorf("read %s: email_id %q: %w", src, rec[col], err)
		}
		if changed[id] {
			if err := w.Write(rec); err != nil {
				return false, err
			}
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return false, fmt.Errorf("write %s: %w", dst, err)
	}
	if err := bw.Flush(); err != nil {
		return false, fmt.Errorf("write %s: %w", dst, err)
	}
	if err := f.Commit(); err != nil {
		return false, err
	}
	return true, nil
}

// csvRows counts a CSV file's records after its header.
func csvRows(path string) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return -1, err
	}
	if err != nil {
		return -1, err
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReader(f))
	n := -1
	for {
		_, err := r.Read()
		if err == io.EOF {
			return max(n, 0), nil
		}
		if err != nil {
			return -1, err
		}
		n++
	}
}

// verdictWriter writes a dry run's per-row verdicts as CSV.
type verdictWriter struct {
	w   *csv.Writer
	err error
}

func newVerdictWriter(w io.Writer) *verdictWriter {
	v := &verdictWriter{w: csv.NewWriter(w)}
	v.err = v.w.Write([]string{"email_id", "verdict"})
	return v
}

// done writes the rows earlier runs changed or skipped.
func (v *verdictWriter) done(changes []Change, skipped []Skip) {
	for _, c := range changes {
		v.row(c.EmailID, VerdictDone)
	}
	for _, s := range skipped {
		v.row(s.EmailID, "skipped_earlier:"+s.Why)
	}
}

func (v *verdictWriter) row(id int64, verdict string) {
	if v.err == nil {
		v.err = v.w.Write([]string{strconv.FormatInt(id, 10), verdict})
	}
}

func (v *verdictWriter) flush() error {
	v.w.Flush()
	if v.err != nil {
		return v.err
	}
	return v.w.Error()
}
