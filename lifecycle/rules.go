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
// and the mail path's, per role r of MailRoles (ns, mx): the facts of the
// dependency domains the address domain's links of role r lead to
// (MailFactsOf in Go; per address domain in SQL, from the links file
// joined with the states file on dep, MailDepSQL per link):
//
//	r_state                   NS.State, MX.State ("" reads as NULL)
//	r_state_checked_at        NS.StateCheckedAt, MX.StateCheckedAt
//	r_rereg_at                NS.ReregisteredAt, MX.ReregisteredAt
//	r_watch                   NS.Watch, MX.Watch (NULL reads as false)
//
// (MailFacts.Host and Dep are evidence only: no rule reads them.)
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
// rule per state, each with its reason); then the mail path, for ns then
// mx: a dependency domain re-registered after the anchor → unverify
// (<role>_reregistered), a dependency confirmed available, pending delete
// or in redemption, looked up since the owner's latest re-verification →
// unverify (<role>_<state>); a decisive own domain unconfirmed → watch
// (awaiting_confirmation); a dependency on watch, or confirmed decisive
// but looked up before the re-verification → watch (<role>_watch);
// expiring, grace, or registered with expiry inside the watch window →
// watch; registered, reserved, invalid → keep; anything else → unknown.
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
	for _, role := range MailRoles {
		rules = append(rules, mailRules(role)...)
	}
	rules = append(rules,
		Rule{Name: "awaiting_confirmation", SQL: decisive,
			Holds:    func(f Facts) bool { return f.State.Decisive() },
			Decision: Decision{ActionWatch, ReasonAwaitConfirm}})
	for _, role := range MailRoles {
		rules = append(rules, mailWatchRule(role))
	}
	return append(rules,
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

// MailRoles are the mail path's roles in the order of their rules: a name
// server answers for the whole domain, its MX records included.
var MailRoles = []string{RoleNS, RoleMX}

// MailFactColumns are one role's mail-fact columns of classify's facts
// relation, named role + "_" + Name (MailColumn), with their SQL types.
var MailFactColumns = []struct{ Name, SQL string }{
	{"state", "VARCHAR"}, {"state_checked_at", "TIMESTAMPTZ"}, {"rereg_at", "TIMESTAMPTZ"}, {"watch", "BOOLEAN"},
}

// MailColumn is the facts relation's column of role's mail fact name
// (MailFactColumns), e.g. "mx_state".
func MailColumn(role, name string) string { return role + "_" + name }

// mailOf reads role's MailFacts from Facts.
func mailOf(role string) func(Facts) MailFacts {
	if role == RoleMX {
		return func(f Facts) MailFacts { return f.MX }
	}
	return func(f Facts) MailFacts { return f.NS }
}

// staleFor reports whether the owner re-verified the address (at rv)
// after the dependency in State was looked up.
func (m MailFacts) staleFor(rv *time.Time) bool {
	return rv != nil && (m.StateCheckedAt == nil || m.StateCheckedAt.Before(*rv))
}

// mailRules are role's un-verifying mail-path rules: a dependency
// re-registered after the anchor, then one rule per decisive state.
func mailRules(role string) []Rule {
	col := func(name string) string { return MailColumn(role, name) }
	mf := mailOf(role)
	rules := []Rule{{Name: role + "_reregistered",
		SQL: "anchor IS NOT NULL AND " + col("rereg_at") + " > anchor",
		Holds: func(f Facts) bool {
			a, r := f.Anchor(), mf(f).ReregisteredAt
			return a != nil && r != nil && r.After(*a)
		},
		Decision: Decision{ActionUnverify, MailReason(role, "reregistered")}}}
	fresh := fmt.Sprintf("(reverified_at IS NULL OR %s >= reverified_at)", col("state_checked_at"))
	for _, st := range DecisiveStates {
		rules = append(rules, Rule{Name: role + "_" + string(st),
			SQL: SQLIs(col("state"), st) + " AND " + fresh,
			Holds: func(f Facts) bool {
				m := mf(f)
				return m.State == st && !m.staleFor(f.ReverifiedAt)
			},
			Decision: Decision{ActionUnverify, MailReason(role, string(st))}})
	}
	return rules
}

// mailWatchRule: a dependency on watch, or in a confirmed decisive state
// looked up before the owner's re-verification.
func mailWatchRule(role string) Rule {
	col := func(name string) string { return MailColumn(role, name) }
	mf := mailOf(role)
	return Rule{Name: role + "_watch",
		SQL: fmt.Sprintf("coalesce(%s, false) OR (%s AND reverified_at IS NOT NULL AND (%s IS NULL OR %s < reverified_at))",
			col("watch"), SQLIn(col("state"), DecisiveStates...), col("state_checked_at"), col("state_checked_at")),
		Holds: func(f Facts) bool {
			m := mf(f)
			return m.Watch || (m.State.Decisive() && m.staleFor(f.ReverifiedAt))
		},
		Decision: Decision{ActionWatch, MailReason(role, "watch")}}
}

// MailDep is one link of an address domain's mail path (the links file's
// role, host, dep and first_seen) with its dependency domain's state row
// (the states file's row of dep; zero fields when there is none).
type MailDep struct {
	Role, Host, Dep string
	// FirstSeen is when lapse first saw the link.
	FirstSeen *time.Time

	State                 State
	Source                Source
	Corroborated          bool
	CheckedAt             *time.Time
	RegisteredAt          *time.Time
	ExpiresAt             *time.Time
	PreviousRegisteredAt  *time.Time
	RegisteredAtChangedAt *time.Time
}

// usable: the dependency's state says something (not unknown, not
// missing). A dependency of unknown state contributes no fact.
func (d MailDep) usable() bool { return !d.State.IsUnknown() }

// Confirmed reports whether the dependency's answer is authoritative
// (RDAP/WHOIS) or corroborated.
func (d MailDep) Confirmed() bool { return d.Source.Authoritative() || d.Corroborated }

// ConfirmedState is the dependency's state when it is decisive and
// confirmed, else "".
func (d MailDep) ConfirmedState() State {
	if d.State.Decisive() && d.Confirmed() {
		return d.State
	}
	return ""
}

// ReregisteredAt is the dependency's registration date (registered_at)
// when it is later than the link's first sighting: a dependency
// registered before lapse saw the link is a provider the domain moved
// to, not a resurrection. Nil when none.
func (d MailDep) ReregisteredAt() *time.Time {
	if !d.usable() || d.FirstSeen == nil {
		return nil
	}
	// The registry's own registration date, not when lapse noticed it
	// changed: a dependency is often watched only while some address
	// uses it, so a change noticed late would pass for one after an
	// address that came later (the address-domain rule keeps the
	// noticed time: lapse looks at its domain whenever it has one).
	if d.RegisteredAt != nil && d.RegisteredAt.After(*d.FirstSeen) {
		return d.RegisteredAt
	}
	return nil
}

// MailDepWatch reports whether dependency d is on watch at asOf: expiring,
// in grace, decisive but not confirmed, or registered with expiry inside
// p's watch window.
func (p Policy) MailDepWatch(d MailDep, asOf time.Time) bool {
	switch {
	case !d.usable():
		return false
	case d.State == Expiring || d.State == Grace:
		return true
	case d.State.Decisive():
		return !d.Confirmed()
	}
	return d.State == Registered && d.ExpiresAt != nil && !d.ExpiresAt.After(asOf.Add(p.WatchWindow))
}

// MailFactsOf folds the links of role among deps into role's MailFacts at
// asOf (classify computes the same per address domain in SQL, from
// MailDepSQL's per-link columns).
func (p Policy) MailFactsOf(role string, deps []MailDep, asOf time.Time) MailFacts {
	var m MailFacts
	var rereg, state, watch *MailDep
	less := func(a, b *MailDep) bool { return a.Host < b.Host || (a.Host == b.Host && a.Dep < b.Dep) }
	for i := range deps {
		d := &deps[i]
		if d.Role != role || !d.usable() {
			continue
		}
		if r := d.ReregisteredAt(); r != nil && (m.ReregisteredAt == nil || r.After(*m.ReregisteredAt) ||
			(r.Equal(*m.ReregisteredAt) && less(d, rereg))) {
			m.ReregisteredAt, rereg = r, d
		}
		if cs := d.ConfirmedState(); cs != "" {
			switch {
			case m.State == "" || slices.Index(DecisiveStates, cs) < slices.Index(DecisiveStates, m.State):
				m.State, m.StateCheckedAt, state = cs, d.CheckedAt, d
			case cs == m.State:
				if d.CheckedAt != nil && (m.StateCheckedAt == nil || d.CheckedAt.After(*m.StateCheckedAt)) {
					m.StateCheckedAt = d.CheckedAt
				}
				if less(d, state) {
					state = d
				}
			}
		}
		if p.MailDepWatch(*d, asOf) {
			m.Watch = true
			if watch == nil || less(d, watch) {
				watch = d
			}
		}
	}
	for _, d := range []*MailDep{rereg, state, watch} {
		if d != nil {
			m.Host, m.Dep = d.Host, d.Dep
			break
		}
	}
	return m
}

// MailDepSQL is MailDep's per-link facts in SQL, over a row of the links
// file joined with its dependency's state row: columns state, source,
// corroborated, checked_at, registered_at, expires_at,
// previous_registered_at, registered_at_changed_at (the dependency's) and
// link_first_seen (the link's first_seen).
type MailDepSQL struct {
	// ConfirmedState is MailDep.ConfirmedState (NULL for "").
	ConfirmedState string
	// ReregisteredAt is MailDep.ReregisteredAt.
	ReregisteredAt string
	// Watch is Policy.MailDepWatch (never NULL).
	Watch string
}

// MailDepSQL renders the per-link mail facts for the night's reference
// time asOf (the watch window's horizon is bound in).
func (p Policy) MailDepSQL(asOf time.Time) MailDepSQL {
	usable := "NOT (" + UnknownStateSQL("state") + ")"
	confirmed := fmt.Sprintf("(coalesce(%s, false) OR coalesce(corroborated, false))", SQLIn("source", AuthoritativeSources...))
	decisive := SQLIn("state", DecisiveStates...)
	return MailDepSQL{
		ConfirmedState: fmt.Sprintf("CASE WHEN %s AND %s THEN state END", decisive, confirmed),
		ReregisteredAt: fmt.Sprintf("CASE WHEN %s AND registered_at > link_first_seen THEN registered_at END", usable),
		Watch: fmt.Sprintf("coalesce(%s AND (%s OR (%s AND NOT %s) OR (%s AND expires_at IS NOT NULL AND expires_at <= %s)), false)",
			usable, SQLIn("state", Expiring, Grace), decisive, confirmed, SQLIs("state", Registered), SQLTimestamp(asOf.Add(p.WatchWindow))),
	}
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
