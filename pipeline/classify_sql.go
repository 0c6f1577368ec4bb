package pipeline

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"strconv"
	"strings"
	"text/template"

	"github.com/lapse-dev/lapse/internal/duck"
	"github.com/lapse-dev/lapse/lifecycle"
)

// classifySQL holds classify's queries (classify_decide.sql,
// classify_export.sql) and the expressions they share
// (classify_evidence.sql), as text/template templates. Values are quoted
// by q in the template; the policy's conditions come from its rule table
// (lifecycle.Policy.Rules).
//
//go:embed classify_*.sql
var classifySQLFiles embed.FS

var classifySQL = template.Must(template.New("classify").Funcs(template.FuncMap{
	// q quotes a value (a path, a date, an action or reason) as a SQL string.
	"q": func(v any) string { return duck.String(fmt.Sprint(v)) },
	// number is a rule's number in the CASE: its index from 1.
	"number": func(i int) int { return i + 1 },
	// bestEffort is "col IN ('domainr', 'fastly')".
	"bestEffort": func(col string) string { return lifecycle.SQLIn(col, lifecycle.BestEffortSources...) },
}).ParseFS(classifySQLFiles, "classify_*.sql"))

// renderClassifySQL executes the template of file name over data.
func renderClassifySQL(name string, data any) (string, error) {
	var b strings.Builder
	if err := classifySQL.ExecuteTemplate(&b, name, data); err != nil {
		return "", fmt.Errorf("render %s: %w", name, err)
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// classifyPlan is a night's classify in SQL: the policy's rule table, the
// query that decides every address into the table decided, and the query
// that exports its non-keep rows.
type classifyPlan struct {
	rules          []lifecycle.Rule
	decide, export string
}

func planClassify(ctx context.Context, db *sql.DB, o ClassifyOptions) (classifyPlan, error) {
	p := classifyPlan{rules: o.Policy.Rules(o.AsOf)}
	if len(p.rules) > lifecycle.MaxRules {
		return p, fmt.Errorf("policy %s has %d rules, at most %d", o.Policy.Name, len(p.rules), lifecycle.MaxRules)
	}
	states, err := statesSelect(ctx, db, o.States)
	if err != nil {
		return p, err
	}
	if p.decide, err = decideQuery(ctx, db, o, p.rules, states); err != nil {
		return p, err
	}
	if p.export, err = exportQuery(o, p.rules, states); err != nil {
		return p, err
	}
	return p, nil
}

// decideQuery is classify_decide.sql for the night: the join into the
// table decided, narrowed to what the policy needs. Keeping addresses,
// evidence and strings out of the table made the join less than half as
// costly.
func decideQuery(ctx context.Context, db *sql.DB, o ClassifyOptions, rules []lifecycle.Rule, states string) (string, error) {
	hist, err := historySelect(ctx, db, o)
	if err != nil {
		return "", err
	}
	rv := ""
	if o.Reverified != "" && fileExists(o.Reverified) {
		rv = o.Reverified
	}
	return renderClassifySQL("classify_decide.sql", struct {
		Hist, States, Date, Snapshot, Reverified string
		Flags                                    bool
		Rules                                    []lifecycle.Rule
	}{
		Hist: hist, States: states, Date: o.Date, Snapshot: o.Snapshot, Reverified: rv,
		Flags: o.Policy.Name == lifecycle.PolicyPyPI, Rules: rules,
	})
}

// exportQuery is classify_export.sql for the night: the decisions file's
// rows (the non-keep ones) from the decided table.
func exportQuery(o ClassifyOptions, rules []lifecycle.Rule, states string) (string, error) {
	var notKeep []string
	for i, r := range rules {
		if r.Action != lifecycle.ActionKeep {
			notKeep = append(notKeep, strconv.Itoa(i+1))
		}
	}
	return renderClassifySQL("classify_export.sql", struct {
		NotKeep, Snapshot, States string
		Rules                     []lifecycle.Rule
		Reregistered              lifecycle.Reason
	}{
		NotKeep: strings.Join(notKeep, ", "), Snapshot: o.Snapshot, States: states, Rules: rules,
		Reregistered: lifecycle.ReasonReregistered,
	})
}
