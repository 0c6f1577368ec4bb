// Package report renders the trend notebooks (package notebooks) as HTML:
// one self-contained page per notebook, its charts drawn as inline SVG in
// Go with the query's table under each, and an index headed by the night's
// changeset summary. A page loads nothing: no script, no stylesheet, font or
// image from anywhere (its Content-Security-Policy forbids every request),
// so it opens the same from a laptop, a file share or a mail attachment. It
// fits a 1280-pixel screen (tables scroll inside their own box) and prints.
//
// A failing cell (bad SQL, a missing table) shows its message in its place;
// the other cells still render, and Build reports it (lapse report exits 1,
// the nightly run logs a warning). The report never shows addresses.
package report

import (
	"bytes"
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lapse-dev/lapse/internal/atomicfile"
	"github.com/lapse-dev/lapse/notebooks"
	"github.com/lapse-dev/lapse/sinks/changeset"
)

//go:embed pages.html.tmpl
var pagesTemplate string

//go:embed style.css
var styleCSS string

// printCSS goes in a <style media="print">: the pages hold no "@" at all,
// so a stray address would stand out in a test.
//
//go:embed print.css
var printCSS string

var pages = template.Must(template.New("report").Funcs(template.FuncMap{"prose": prose}).Parse(pagesTemplate))

// prose is notebook text as HTML: escaped, `backticks` as <code>.
func prose(s string) template.HTML {
	parts := strings.Split(s, "`")
	if len(parts)%2 == 0 { // an unpaired backtick stays one
		parts[len(parts)-2] += "`" + parts[len(parts)-1]
		parts = parts[:len(parts)-1]
	}
	var b strings.Builder
	for i, p := range parts {
		if i%2 == 1 {
			b.WriteString("<code>" + template.HTMLEscapeString(p) + "</code>")
		} else {
			b.WriteString(template.HTMLEscapeString(p))
		}
	}
	return template.HTML(b.String())
}

// FileMode is the mode of the report's files: counts and domains, no
// addresses.
const FileMode = 0o640

// DefaultMaxTableRows is how many rows a table under a chart shows.
const DefaultMaxTableRows = 500

// Options say what to render and where.
type Options struct {
	// Dir receives index.html and one NAME.html per notebook.
	Dir string
	// Date is the night whose changeset heads the index; "" takes the
	// latest night recorded in the database.
	Date string
	// Changeset is that night's changeset folder (its manifest.json is
	// read); "" takes ChangesetRoot/DATE, or without a root the folder the
	// database recorded for the night.
	Changeset string
	// ChangesetRoot is the data dir's changesets/ folder.
	ChangesetRoot string
	// Notebooks to render; nil renders them all.
	Notebooks []notebooks.Notebook
	// GeneratedAt is shown on every page (zero: now).
	GeneratedAt time.Time
	// MaxTableRows caps each table (DefaultMaxTableRows when 0); charts
	// always use every row.
	MaxTableRows int
}

// Failure is a cell that could not be shown in full: its query failed, or
// its chart could not be drawn from what the query returned.
type Failure struct {
	Notebook string
	Index    int // 1-based; 0 for the index page's night summary
	Title    string
	File     string // the page showing it
	Err      error
}

func (f Failure) Error() string {
	if f.Index == 0 {
		return fmt.Sprintf("%s: %v", f.Notebook, f.Err)
	}
	return fmt.Sprintf("%s #%d (%s): %v", f.Notebook, f.Index, f.Title, f.Err)
}

// Result is what Build wrote.
type Result struct {
	Dir   string
	Files []string // index.html last
	Cells int
	// Failures are the cells shown with an error instead of their chart.
	Failures []Failure
}

// ErrCellsFailed is wrapped by Result.Err when a cell failed.
var ErrCellsFailed = errors.New("report cells failed")

// Err is nil when every cell rendered, else an error naming the failures.
func (r Result) Err() error {
	if len(r.Failures) == 0 {
		return nil
	}
	msgs := make([]string, len(r.Failures))
	for i, f := range r.Failures {
		msgs[i] = f.Error()
	}
	return fmt.Errorf("%w: %d of %d in %s (the pages show them; the other cells rendered): %s",
		ErrCellsFailed, len(r.Failures), r.Cells, r.Dir, strings.Join(msgs, "; "))
}

// Spec is the nightly report publish writes: DATA/reports/D/ (Path is its
// index.html), from the run's own open database.
type Spec struct {
	Date string
	Path string
	// GeneratedAt is shown on every page.
	GeneratedAt time.Time
	// Changeset is the night's changeset folder ("" = the one recorded).
	Changeset string
	// Log receives a warning per failing cell (nil: slog.Default()).
	Log *slog.Logger
}

// Write renders the night's report into the folder of s.Path. A failing
// cell is logged as a warning and shown on its page: the night does not
// fail for it. The error is for what stops the report itself (the folder
// cannot be written, the context ended).
func Write(ctx context.Context, db *sql.DB, s Spec) error {
	res, err := Build(ctx, db, Options{Dir: filepath.Dir(s.Path), Date: s.Date, Changeset: s.Changeset, GeneratedAt: s.GeneratedAt})
	if err != nil {
		return fmt.Errorf("report %s: %w", s.Date, err)
	}
	log := s.Log
	if log == nil {
		log = slog.Default()
	}
	for _, f := range res.Failures {
		log.Warn("report: a cell failed; its page shows the error and the rest of the report was written",
			"date", s.Date, "notebook", f.Notebook, "cell", f.Index, "title", f.Title,
			"page", filepath.Join(res.Dir, f.File), "err", f.Err)
	}
	return nil
}

// common is what every page's header and navigation show.
type common struct {
	PageTitle   string
	Heading     string
	Date        string
	GeneratedAt string
	CSS         template.CSS
	PrintCSS    template.CSS
	Nav         []navItem
	Here        string
}

type navItem struct{ Name, Title, File string }

type cellView struct {
	Cell         notebooks.Cell
	File         string
	Title        string // {col} filled from the first row
	Headline     string // the big number of a headline cell
	HeadlineText string
	Err          error
	ChartErr     error
	Chart        template.HTML
	Result       notebooks.Result
	Rows         [][]string
	NumCols      []bool
	More         int
}

type pageView struct {
	common
	Notebook notebooks.Notebook
	File     string
	Cells    []cellView
	Failed   int
}

type headlineView struct {
	Big, Text, File string
	Index           int
}

type figure struct{ Label, Value string }

type nightView struct {
	Status, StatusClass, Policy string
	Flagged, Verified           string
	Users, Domains, New         string
	BlockReasons                []string
	Approval                    string
	Missing                     string
	Figures                     []figure
	// ByReason draws the domain flags' reasons, MailByReason the mail
	// path's (an MX host's or a name server's domain lapsed), apart.
	ByReason, MailByReason, ByTLD template.HTML
	MailFlagged                   string
	TopDomains                    []topDomain
	Dir                           string
}

// topDomain is one of the night's largest flagged domains.
type topDomain struct{ Domain, Reason, State, Addresses, Users string }

type failureView struct {
	Notebook, Title, File, Message string
	Index                          int
}

type indexView struct {
	common
	Failures  []failureView
	Night     nightView
	Headlines []headlineView
	Pages     []pageView
}

// Build runs the notebooks against db and writes the pages into o.Dir.
// Cells that fail are in Result.Failures (see Result.Err); the error is for
// what stops the report itself.
func Build(ctx context.Context, db *sql.DB, o Options) (Result, error) {
	res := Result{Dir: o.Dir}
	if o.Dir == "" {
		return res, errors.New("report: no output folder")
	}
	nbs := o.Notebooks
	if nbs == nil {
		all, err := notebooks.All()
		if err != nil {
			return res, err
		}
		nbs = all
	}
	if o.GeneratedAt.IsZero() {
		o.GeneratedAt = time.Now()
	}
	if o.MaxTableRows <= 0 {
		o.MaxTableRows = DefaultMaxTableRows
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return res, fmt.Errorf("report: %w", err)
	}
	date, err := latestNight(ctx, db, o.Date)
	if err != nil && ctx.Err() != nil {
		return res, ctx.Err()
	}
	base := common{Date: date, GeneratedAt: o.GeneratedAt.UTC().Format("2006-01-02 15:04 UTC"), CSS: template.CSS(styleCSS), PrintCSS: template.CSS(printCSS)}
	for _, nb := range nbs {
		base.Nav = append(base.Nav, navItem{Name: nb.Name, Title: shortTitle(nb.Title), File: nb.Name + ".html"})
	}
	csDir := o.Changeset
	if csDir == "" && o.ChangesetRoot != "" && date != "" {
		csDir = filepath.Join(o.ChangesetRoot, date)
	}
	// The cells and the night summary are independent reads: a few run at
	// once, each on its own connection of db, while the pages are still
	// assembled and written in order, each once its cells are done.
	run := newRunner(ctx)
	defer run.stop()
	var night nightView
	var nerr error
	nightDone := run.add(func(ctx context.Context) { night, nerr = loadNight(ctx, db, date, csDir) })
	cells := make([][]cellView, len(nbs))
	cellsDone := make([][]<-chan struct{}, len(nbs))
	for i, nb := range nbs {
		cs := nb.Cells()
		cells[i] = make([]cellView, len(cs))
		for j, c := range cs {
			file := nb.Name + ".html"
			cellsDone[i] = append(cellsDone[i], run.add(func(ctx context.Context) { cells[i][j] = runCell(ctx, db, c, file, o.MaxTableRows) }))
		}
	}
	run.start(cellWorkers())
	var views []pageView
	for i, nb := range nbs {
		p := pageView{common: base, Notebook: nb, File: nb.Name + ".html"}
		p.Here, p.PageTitle, p.Heading = nb.Name, nb.Title+" · lapse", "lapse · "+nb.Title
		for j, c := range nb.Cells() {
			if err := run.wait(cellsDone[i][j]); err != nil {
				return res, err
			}
			cv := cells[i][j]
			res.Cells++
			if e := cellFailure(cv); e != nil {
				p.Failed++
				res.Failures = append(res.Failures, Failure{Notebook: nb.Name, Index: c.Index, Title: cv.Title, File: p.File, Err: e})
			}
			p.Cells = append(p.Cells, cv)
		}
		var b bytes.Buffer
		if err := pages.ExecuteTemplate(&b, "page", p); err != nil {
			return res, fmt.Errorf("report: page %s: %w", nb.Name, err)
		}
		path := filepath.Join(o.Dir, p.File)
		if err := atomicfile.WriteFile(path, b.Bytes(), FileMode); err != nil {
			return res, fmt.Errorf("report: %w", err)
		}
		res.Files = append(res.Files, path)
		views = append(views, p)
	}
	iv := indexView{common: base, Pages: views}
	iv.Here, iv.PageTitle = "index", "lapse report"
	iv.Heading = "lapse · trend report"
	if date != "" {
		iv.PageTitle = "lapse report · " + date
	}
	if err := run.wait(nightDone); err != nil {
		return res, err
	}
	iv.Night = night
	if nerr != nil {
		res.Failures = append(res.Failures, Failure{Notebook: "night summary", File: "index.html", Err: nerr})
	}
	for _, p := range views {
		for _, c := range p.Cells {
			if c.Headline != "" {
				iv.Headlines = append(iv.Headlines, headlineView{Big: c.Headline, Text: c.HeadlineText, File: p.File, Index: c.Cell.Index})
			}
		}
	}
	for _, f := range res.Failures {
		iv.Failures = append(iv.Failures, failureView{Notebook: f.Notebook, Title: f.Title, File: f.File, Index: f.Index, Message: firstLine(f.Err.Error())})
	}
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, "index", iv); err != nil {
		return res, fmt.Errorf("report: index: %w", err)
	}
	path := filepath.Join(o.Dir, "index.html")
	if err := atomicfile.WriteFile(path, b.Bytes(), FileMode); err != nil {
		return res, fmt.Errorf("report: %w", err)
	}
	res.Files = append(res.Files, path)
	return res, nil
}

// cellWorkers is how many of a report's queries run at once: one per
// core, at most 4.
func cellWorkers() int { return min(max(runtime.GOMAXPROCS(0), 1), 4) }

// runner runs Build's queries on a few goroutines, in the order they were
// added.
type runner struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	jobs   []func()
}

func newRunner(ctx context.Context) *runner {
	r := &runner{}
	r.ctx, r.cancel = context.WithCancel(ctx)
	return r
}

// add queues f, to run with the runner's context once start is called;
// the channel is closed when it has run.
func (r *runner) add(f func(ctx context.Context)) <-chan struct{} {
	done := make(chan struct{})
	r.jobs = append(r.jobs, func() {
		defer close(done)
		f(r.ctx)
	})
	return done
}

// start runs the queued jobs on up to workers goroutines, in order.
func (r *runner) start(workers int) {
	next := make(chan func())
	go func() {
		defer close(next)
		for _, f := range r.jobs {
			next <- f
		}
	}()
	for range min(max(workers, 1), len(r.jobs)) {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for f := range next {
				f()
			}
		}()
	}
}

// wait waits for a job; the error is the context's, once it ended.
func (r *runner) wait(done <-chan struct{}) error {
	select {
	case <-done:
	case <-r.ctx.Done():
	}
	return r.ctx.Err()
}

// stop ends the context of the jobs (those not started yet return at
// once) and waits for the workers.
func (r *runner) stop() {
	r.cancel()
	r.wg.Wait()
}

func cellFailure(cv cellView) error {
	if cv.Err != nil {
		return cv.Err
	}
	return cv.ChartErr
}

// shortTitle is a notebook's title for the navigation bar.
func shortTitle(t string) string {
	if len(t) > 40 {
		return t[:39] + "…"
	}
	return t
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// runCell runs one cell and prepares its view.
func runCell(ctx context.Context, db *sql.DB, c notebooks.Cell, file string, maxRows int) cellView {
	cv := cellView{Cell: c, File: file, Title: c.Title, ChartErr: c.ChartErr}
	r, err := notebooks.Query(ctx, db, c.SQL)
	if err != nil {
		cv.Err = err
		cv.Title = fillTitle(c.Title, notebooks.Result{})
		return cv
	}
	cv.Result = r
	cv.Title = fillTitle(c.Title, r)
	for _, t := range r.Types {
		cv.NumCols = append(cv.NumCols, numericType(t))
	}
	for i, row := range r.Rows {
		if i == maxRows {
			cv.More = len(r.Rows) - maxRows
			break
		}
		cells := make([]string, len(row))
		for j, v := range row {
			cells[j] = notebooks.Format(v)
		}
		cv.Rows = append(cv.Rows, cells)
	}
	if cv.ChartErr != nil {
		return cv
	}
	if c.Chart.Kind == notebooks.ChartHeadline {
		i := r.Col(c.Chart.Value)
		if i < 0 {
			cv.ChartErr = fmt.Errorf("chart: headline value column %q is not in the result (its columns: %s)", c.Chart.Value, strings.Join(r.Columns, ", "))
			return cv
		}
		cv.Headline = "0"
		if len(r.Rows) > 0 {
			cv.Headline = display(r.Rows[0][i])
		}
		text := strings.ReplaceAll(c.Title, "{"+c.Chart.Value+"}", "")
		cv.HeadlineText = strings.TrimSpace(fillTitle(text, r))
		return cv
	}
	cv.Chart, cv.ChartErr = renderChart(c.Chart, r)
	return cv
}

// fillTitle fills a title's {col} from the first row, numbers grouped.
func fillTitle(t string, r notebooks.Result) string { return notebooks.FillTitle(t, r, display) }

// display is a value for prose: numbers grouped by thousands.
func display(v any) string {
	if f, ok := notebooks.Number(v); ok {
		return num(f, "")
	}
	if v == nil {
		return "–"
	}
	return notebooks.Format(v)
}

func numericType(t string) bool {
	for _, p := range []string{"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL", "REAL"} {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	return false
}

// latestNight is date, or the latest night the database recorded.
func latestNight(ctx context.Context, db *sql.DB, date string) (string, error) {
	if date != "" {
		return date, nil
	}
	var d sql.NullString
	err := db.QueryRowContext(ctx, `SELECT strftime(max(date), '%Y-%m-%d') FROM (
		SELECT max(date) AS date FROM changesets UNION ALL SELECT max(date) FROM nightly_metrics)`).Scan(&d)
	return d.String, err
}

// loadNight reads the night's changeset summary (manifest.json, approval)
// and figures (nightly_metrics).
func loadNight(ctx context.Context, db *sql.DB, date, dir string) (nightView, error) {
	n := nightView{Status: "none", StatusClass: "none"}
	if date == "" {
		n.Missing = "No night recorded in the database yet."
		return n, nil
	}
	if dir == "" {
		var d sql.NullString
		err := db.QueryRowContext(ctx, `SELECT dir FROM changesets WHERE date = CAST(? AS DATE)`, date).Scan(&d)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return n, fmt.Errorf("changeset of %s: %w", date, err)
		}
		dir = d.String
	}
	var errs []error
	if dir == "" {
		n.Missing = "No changeset recorded for " + date + "."
	} else if _, err := os.Stat(filepath.Join(dir, changeset.FileManifest)); errors.Is(err, fs.ErrNotExist) {
		n.Missing = "No changeset at " + dir + " (its manifest.json is missing: the night did not finish publishing, or the folder moved)."
	} else if m, _, err := changeset.ReadManifest(dir); err != nil {
		n.Missing = "The changeset's manifest cannot be read: " + err.Error()
		errs = append(errs, err)
	} else {
		// Relative to the data dir: the page is the same wherever the data
		// dir lives (a resumed demo writes byte-identical reports).
		n.Dir = filepath.Join(filepath.Base(filepath.Dir(dir)), filepath.Base(dir))
		n.Status, n.StatusClass, n.Policy = m.Status, m.Status, m.Policy
		if m.Status != changeset.StatusBlocked && m.Status != "proposed" {
			n.StatusClass = "none"
		}
		c := m.Counts
		n.Flagged, n.Verified = num(float64(c.Flagged), ""), num(float64(c.Verified), "")
		if c.Flagged > 0 {
			n.Users, n.Domains = num(float64(c.Users), ""), num(float64(c.FlaggedDomains), "")
		}
		n.New = num(float64(c.New), "")
		n.BlockReasons = m.BlockReasons
		if a, err := changeset.ReadApproval(dir); err == nil {
			n.Approval = fmt.Sprintf("Approved by %s at %s", a.By, a.ApprovedAt.UTC().Format("2006-01-02 15:04 UTC"))
			if a.OverrideBrake {
				n.Approval += ", overriding the brake"
			}
			if a.Note != "" {
				n.Approval += ": " + a.Note
			}
			n.Approval += "."
		} else if errors.Is(err, changeset.ErrNotApproved) {
			n.Approval = "Not approved yet: `lapse review`, then `lapse approve --by NAME`."
		}
		domain, mail := splitReasons(c.ByReason)
		n.ByReason = countsChart("reason", domain, 0)
		n.MailByReason = countsChart("reason", mail, 0)
		if len(mail) > 0 {
			var t int64
			for _, v := range mail {
				t += v
			}
			n.MailFlagged = num(float64(t), "") + " addresses"
			if t == 1 {
				n.MailFlagged = "1 address"
			}
		}
		n.ByTLD = countsChart("tld", c.ByTLD, 12)
	}
	figs, err := nightFigures(ctx, db, date)
	if err != nil {
		errs = append(errs, err)
	}
	n.Figures = figs
	top, err := topDomains(ctx, db, date, 10)
	if err != nil {
		errs = append(errs, err)
	}
	n.TopDomains = top
	return n, errors.Join(errs...)
}

// splitReasons splits a manifest's counts by reason into the domain flags
// and the mail-path flags (changeset.IsMailPath).
func splitReasons(by map[string]int64) (domain, mail map[string]int64) {
	domain, mail = map[string]int64{}, map[string]int64{}
	for k, v := range by {
		if changeset.IsMailPath(k) {
			mail[k] = v
		} else {
			domain[k] = v
		}
	}
	return domain, mail
}

// countsChart draws a manifest's counts as horizontal bars, largest first
// (top n; 0 = all).
func countsChart(label string, counts map[string]int64, top int) template.HTML {
	if len(counts) == 0 {
		return ""
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool {
		if counts[keys[a]] != counts[keys[b]] {
			return counts[keys[a]] > counts[keys[b]]
		}
		return keys[a] < keys[b]
	})
	if top > 0 && len(keys) > top {
		keys = keys[:top]
	}
	r := notebooks.Result{Columns: []string{label, "flagged"}, Types: []string{"VARCHAR", "BIGINT"}}
	for _, k := range keys {
		name := k
		if label == "tld" {
			name = "." + k
		}
		r.Rows = append(r.Rows, []any{name, counts[k]})
	}
	c := notebooks.Chart{Kind: notebooks.ChartBar, X: label, Y: []string{"flagged"}, Horizontal: true}
	d, err := readChart(c, r)
	if err != nil {
		return ""
	}
	return hbarChart(c, d, 480)
}

// nightFigures are the night's headline figures from nightly_metrics.
func nightFigures(ctx context.Context, db *sql.DB, date string) ([]figure, error) {
	rows, err := db.QueryContext(ctx, `SELECT metric, key, value FROM nightly_metrics
		WHERE date = CAST(? AS DATE) AND (key = '' OR metric IN ('lookups', 'decisions'))`, date)
	if err != nil {
		return nil, fmt.Errorf("figures of %s: %w", date, err)
	}
	defer rows.Close()
	got := map[string]float64{}
	for rows.Next() {
		var m, k string
		var v float64
		if err := rows.Scan(&m, &k, &v); err != nil {
			return nil, fmt.Errorf("figures of %s: %w", date, err)
		}
		switch m {
		case "lookups":
			got[m] += v
		case "decisions":
			got["decisions_"+k] = v
		default:
			got[m] = v
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("figures of %s: %w", date, err)
	}
	var out []figure
	for _, f := range []struct{ key, label string }{
		{"addresses_verified", "verified addresses"},
		{"domains", "registrable domains"},
		{"domains_planned", "domains planned for lookup"},
		{"domains_deferred", "deferred to tomorrow (budget)"},
		{"cache_hits", "answered from the cache"},
		{"lookups", "provider lookups"},
		{"flagged", "flagged tonight"},
		{"decisions_watch", "on watch"},
		{"decisions_unknown", "unknown (no decision)"},
		{"unverified_cumulative", "un-verified so far"},
	} {
		if v, ok := got[f.key]; ok {
			out = append(out, figure{Label: f.label, Value: num(v, "")})
		}
	}
	return out, nil
}

// topDomains are the night's domains with the most addresses proposed for
// un-verification (from email_decisions: ids and domains only). The n
// largest are picked by a plain count first: the distinct, ordered
// aggregates (reasons, states, users) are then made for those n only, not
// for each of the night's thousands of flagged domains.
func topDomains(ctx context.Context, db *sql.DB, date string, n int) ([]topDomain, error) {
	rows, err := db.QueryContext(ctx, `WITH f AS (
			SELECT coalesce(domain, '') AS domain, reason, state, user_id
			FROM email_decisions WHERE date = CAST(? AS DATE) AND action = 'unverify' AND verified
		), t AS (
			SELECT domain, count(*) AS n FROM f GROUP BY domain ORDER BY n DESC, domain LIMIT ?
		)
		SELECT t.domain, string_agg(DISTINCT f.reason, ', ' ORDER BY f.reason),
		       string_agg(DISTINCT coalesce(f.state, ''), ', ' ORDER BY coalesce(f.state, '')), t.n, count(DISTINCT f.user_id)
		FROM t JOIN f USING (domain)
		GROUP BY t.domain, t.n ORDER BY t.n DESC, t.domain`, date, n)
	if err != nil {
		return nil, fmt.Errorf("largest domains of %s: %w", date, err)
	}
	defer rows.Close()
	var out []topDomain
	for rows.Next() {
		var d topDomain
		var a, u int64
		if err := rows.Scan(&d.Domain, &d.Reason, &d.State, &a, &u); err != nil {
			return nil, fmt.Errorf("largest domains of %s: %w", date, err)
		}
		d.Addresses, d.Users = num(float64(a), ""), num(float64(u), "")
		out = append(out, d)
	}
	return out, rows.Err()
}
