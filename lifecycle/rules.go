package lifecycle

import (
	"fmt"
	"slices"
	"time"
)

// Rule is one row of a policy's rule table: a condition, written once in
// SQL (for pipeline's classify stage, over a million addresses a night)
// and once in Go (Policy.Decide), and the decision it makes. The first
// rule of the table whose condition holds decides an address; the last
// rule always holds. Every rule has exactly one action and one reason, so
// classify keeps only the rule's number (from 1) per address.
//
// The conditions read these facts; the SQL column, then the Facts field
// (classify's facts relation, pipeline/classify_decide.sql, selects the
// columns):
//
//	invalid                   InvalidAddress
//	checked                   Checked
//	state, source             State, Source
//	corroborated              Corroborated (NULL reads as false)
//	decisive_nights           DecisiveNights (NULL reads as 0)
//	flags                     Flags (the pypi preset only: BestEffortFlags in SQL)
//	registered_at, expires_at RegisteredAt, ExpiresAt
//	previous_registered_at    PreviousRegisteredAt
//	registered_at_changed_at  RegisteredAtChangedAt
//	first_seen                FirstSeen
//	checked_at                CheckedAt
//	reverified_at             ReverifiedAt
//	anchor                    Anchor(): greatest(first_seen, reverified_at)
//
// A NULL column is a nil or zero field: a condition must be false on
// NULL where Holds is false on nil (SQL's NULL comparisons are, CASE
// skips them; coalesce where Go reads a zero).
//
// # Adding a rule
//
// Insert a Rule where its precedence puts it in corroboratedRules or
// pypiRules below, with a Name unique in its table, SQL rendered from the
// constants (SQLIs, SQLIn, UnknownStateSQL, SQLTimestamp: no state or
// source name spelled out by hand), Holds the same condition in Go, and
// its Decision. Give it a case in TestRules (lifecycle/rules_test.go fails
// on a rule no case decides) and, in pipeline's classify tests, one in
// gPolicyCases: SQL and Go are held to the same cases there.
//
// A rule that needs a fact not listed above (say the MX domain's state
// for the mail path): add the field to Facts, the column to classify's
// facts relation (classify_decide.sql; a state column also to
// stateColumns), a line to the list above, and fill the field in
// pipeline's gCase.facts so the agreement test sees it. A column no
// relation provides fails every classify at bind time ("Referenced column
// … not found"), so a missing one cannot go unnoticed. Classify stores the
// rule number as UTINYINT: a table holds at most 255 rules.
type Rule struct {
	// Name identifies the rule in tests and errors, e.g. "reregistered".
	Name string
	// SQL is the condition over the fact columns.
	SQL string
	// Holds is the condition over Facts: true exactly where SQL is true.
	Holds func(Facts) bool
	Decision
}

// MaxRules is how many rules a table may hold (classify's UTINYINT).
const MaxRules = 255

// NewPolicy is the policy the configuration names ([policy]: name,
// watch_window, confirm_nights).
func NewPolicy(name string, watchWindow time.Duration, confirmNights int) Policy {
	return Policy{Name: name, WatchWindow: watchWindow, ConfirmNights: confirmNights}
}

// Rules is policy p's rule table at the night's reference time asOf (the
// watch window's horizon and ConfirmNights are bound into the
// conditions), in order of precedence. See Rule.
func (p Policy) Rules(asOf time.Time) []Rule {
	rules := []Rule{
		{Name: "invalid_address", SQL: "invalid",
			Holds:    func(f Facts) bool { return f.InvalidAddress },
			Decision: Decision{ActionUnknown, ReasonInvalidAddr}},
		{Name: "not_checked", SQL: "NOT checked",
			Holds:    func(f Facts) bool { return !f.Checked },
			Decision: Decision{ActionUnknown, ReasonNotChecked}},
	}
	if p.Name == PolicyPyPI {
		return append(rules, pypiRules()...)
	}
	return append(rules, p.corroboratedRules(asOf)...)
}

// corroboratedRules: state unknown → unknown; reregistered (after the
// first sighting or the owner's latest re-verification) → unverify;
// decisive state looked up before the owner's re-verification → watch
// (reverified_awaiting_lookup); decisive on an authoritative or
// corroborated answer, or seen on ≥ ConfirmNights nights → unverify (one
// rule per state, each with its reason), otherwise watch; expiring, grace,
// or registered with expiry inside the watch window → watch; registered,
// reserved, invalid → keep; anything else → unknown.
func (p Policy) corroboratedRules(asOf time.Time) []Rule {
	decisive := SQLIn("state", DecisiveStates...)
	confirmedSQL := fmt.Sprintf("(%s OR coalesce(corroborated, false) OR coalesce(decisive_nights, 0) >= %d)",
		SQLIn("source", AuthoritativeSources...), p.ConfirmNights)
	confirmed := func(f Facts) bool {
		return f.Source.Authoritative() || f.Corroborated || f.DecisiveNights >= p.ConfirmNights
	}
	horizon := asOf.Add(p.WatchWindow)
	is := func(s State) func(Facts) bool { return func(f Facts) bool { return f.State == s } }

	rules := []Rule{
		{Name: "unknown_state", SQL: UnknownStateSQL("state"),
			Holds:    func(f Facts) bool { return f.State.IsUnknown() },
			Decision: Decision{ActionUnknown, ReasonUnknown}},
		{Name: "reregistered",
			SQL:      "anchor IS NOT NULL AND (registered_at > anchor OR (previous_registered_at IS NOT NULL AND registered_at_changed_at > anchor))",
			Holds:    Facts.Reregistered,
			Decision: Decision{ActionUnverify, ReasonReregistered}},
		// A decisive state older than the owner's re-verification is stale.
		{Name: "reverified_awaiting_lookup",
			SQL:      decisive + " AND reverified_at IS NOT NULL AND (checked_at IS NULL OR checked_at < reverified_at)",
			Holds:    func(f Facts) bool { return f.State.Decisive() && f.StaleForReverified() },
			Decision: Decision{ActionWatch, ReasonAwaitLookup}},
	}
	for _, st := range DecisiveStates {
		rules = append(rules, Rule{Name: "confirmed_" + string(st),
			SQL:      SQLIs("state", st) + " AND " + confirmedSQL,
			Holds:    func(f Facts) bool { return f.State == st && confirmed(f) },
			Decision: Decision{ActionUnverify, StateReason(st)}})
	}
	return append(rules,
		Rule{Name: "awaiting_confirmation", SQL: decisive,
			Holds:    func(f Facts) bool { return f.State.Decisive() },
			Decision: Decision{ActionWatch, ReasonAwaitConfirm}},
		Rule{Name: "expiring", SQL: SQLIs("state", Expiring), Holds: is(Expiring),
			Decision: Decision{ActionWatch, ReasonExpiring}},
		Rule{Name: "grace", SQL: SQLIs("state", Grace), Holds: is(Grace),
			Decision: Decision{ActionWatch, ReasonGrace}},
		Rule{Name: "registered_expiring",
			SQL: SQLIs("state", Registered) + " AND expires_at IS NOT NULL AND expires_at <= " + SQLTimestamp(horizon),
			Holds: func(f Facts) bool {
				return f.State == Registered && f.ExpiresAt != nil && !f.ExpiresAt.After(horizon)
			},
			Decision: Decision{ActionWatch, ReasonExpiring}},
		Rule{Name: "registered", SQL: SQLIs("state", Registered), Holds: is(Registered),
			Decision: Decision{ActionKeep, ReasonRegistered}},
		Rule{Name: "reserved", SQL: SQLIs("state", Reserved), Holds: is(Reserved),
			Decision: Decision{ActionKeep, ReasonReserved}},
		Rule{Name: "invalid_name", SQL: SQLIs("state", Invalid), Holds: is(Invalid),
			Decision: Decision{ActionKeep, ReasonInvalidName}},
		Rule{Name: "otherwise", SQL: "true", Holds: func(Facts) bool { return true },
			Decision: Decision{ActionUnknown, ReasonUnknown}},
	)
}

// pypiRules: no best-effort answer → unknown; un-verify when the flags
// overlap PyPIFlags (the first flag in their order gives the reason);
// otherwise keep.
func pypiRules() []Rule {
	rules := []Rule{{Name: "no_best_effort_answer", SQL: "len(flags) = 0",
		Holds:    func(f Facts) bool { return len(f.Flags) == 0 },
		Decision: Decision{ActionUnknown, ReasonNotChecked}}}
	for _, pf := range PyPIFlags {
		rules = append(rules, Rule{Name: "flag_" + pf.Flag, SQL: "list_contains(flags, " + SQLString(pf.Flag) + ")",
			Holds:    func(f Facts) bool { return slices.Contains(f.Flags, pf.Flag) },
			Decision: Decision{ActionUnverify, pf.Reason}})
	}
	return append(rules, Rule{Name: "no_flag", SQL: "true", Holds: func(Facts) bool { return true },
		Decision: Decision{ActionKeep, ReasonRegistered}})
}

// SQLTimestamp renders t as a TIMESTAMPTZ literal in UTC, to the
// microsecond (DuckDB's precision).
func SQLTimestamp(t time.Time) string {
	return "TIMESTAMPTZ " + SQLString(t.UTC().Format("2006-01-02 15:04:05.999999")+"+00")
}

// DecidingRule is the first rule of p's table that holds for f.
func (p Policy) DecidingRule(f Facts, asOf time.Time) Rule {
	rules := p.Rules(asOf)
	for _, r := range rules {
		if r.Holds(f) {
			return r
		}
	}
	return rules[len(rules)-1] // always holds; never reached
}
