package changeset

import (
	"context"
	"fmt"
	"strings"

	"github.com/lapse-dev/lapse/lifecycle"
)

// The mail path (issue 12): a row whose reason begins mx_domain_ or
// ns_domain_ un-verifies an address whose own domain is healthy, because
// the registrable domain of one of its MX hosts or name servers lapsed or
// was re-registered. Its domain, state and source are the address
// domain's; its evidence names each host and the domain it depends on
// ("ns ns1.tinydns.com → tinydns.com rdap:available checked …; …"). The
// summary and the review count those rows apart from the domain flags and
// list the dependency domains behind them.

// mailPathTitle names the mail-path flags wherever they are shown.
const mailPathTitle = "Mail-path flags (MX or name-server domain lapsed)"

// domainTitle names the other flags: the address's own domain.
const domainTitle = "Domain flags (the address's own domain)"

// IsMailPath reports whether a changeset reason is a mail-path one
// (lifecycle.Reason.MailPath).
func IsMailPath(reason string) bool { return lifecycle.Reason(reason).MailPath() }

// mailPathSQL is the SQL condition that col (a reason column) is a
// mail-path reason, the same test as lifecycle.Reason.MailPath.
func mailPathSQL(col string) string {
	return fmt.Sprintf("(starts_with(coalesce(%[1]s, ''), '%[2]s_domain_') OR starts_with(coalesce(%[1]s, ''), '%[3]s_domain_'))",
		col, lifecycle.RoleMX, lifecycle.RoleNS)
}

// depsSQL is the SQL list of the dependency domains a mail-path row's
// evidence column names: the text after each "→ " up to the next space
// (a trailing ";" or "," dropped), lowercased, distinct; empty when the
// evidence names none (dependencies counts such a row under [”]).
func depsSQL(col string) string {
	return fmt.Sprintf(`list_distinct(list_transform(regexp_extract_all(coalesce(%[1]s, ''), '→ ([^\s;,]+)', 1), x -> lower(x)))`, col)
}

// splitByReason splits counts by reason into the domain flags and the
// mail-path flags, with each one's total.
func splitByReason(by map[string]int64) (domain, mail map[string]int64, domainN, mailN int64) {
	domain, mail = map[string]int64{}, map[string]int64{}
	for k, v := range by {
		if IsMailPath(k) {
			mail[k] = v
			mailN += v
		} else {
			domain[k] = v
			domainN += v
		}
	}
	return domain, mail, domainN, mailN
}

// Dependency is one domain the mail path of flagged addresses depends on:
// an MX host's or a name server's registrable domain that lapsed or was
// re-registered.
type Dependency struct {
	Domain string `json:"domain"`
	// Addresses and AddressDomains are the flagged addresses (and their
	// distinct domains) whose evidence names it.
	Addresses      int64 `json:"addresses"`
	AddressDomains int64 `json:"address_domains"`
	// Reasons are the reasons of those rows, comma-separated.
	Reasons string `json:"reasons"`
	// SampleEvidence are the most common evidence lines naming it.
	SampleEvidence []EvidenceSample `json:"sample_evidence"`
}

// dependencies lists the dependency domains of the mail-path rows of rel
// (a table, or a parenthesized query, with email_id, domain, reason and
// evidence), most addresses first, up to limit, each with up to samples
// evidence lines (addresses redacted). A row whose evidence names no
// dependency domain is counted under [”]. Each evidence is searched once
// (x); without samples, the evidence lines are not grouped at all.
func dependencies(ctx context.Context, db querier, rel string, limit, samples int) ([]Dependency, error) {
	// Only the samples need the evidence lines carried past x.
	ev := ""
	if samples > 0 {
		ev = "evidence, "
	}
	with := fmt.Sprintf(`WITH x AS (
			SELECT email_id, domain, reason, coalesce(evidence, '') AS evidence, %[2]s AS deps
			FROM %[1]s WHERE %[3]s
		), m AS (
			SELECT email_id, domain, reason, %[5]sunnest(CASE WHEN len(deps) = 0 THEN [''] ELSE deps END) AS dep
			FROM x
		), d AS (
			SELECT dep, count(DISTINCT email_id) AS n, count(DISTINCT domain) AS nd,
			       array_to_string(list_sort(list_distinct(list(coalesce(reason, '')))), ',') AS reasons
			FROM m GROUP BY dep ORDER BY n DESC, dep LIMIT %[4]d
		)`, rel, depsSQL("evidence"), mailPathSQL("reason"), limit, ev)
	q := with + `
		SELECT d.dep, d.n, d.nd, d.reasons, 0 AS first, 0 AS k, '' AS evidence
		FROM d ORDER BY d.n DESC, d.dep`
	if samples > 0 {
		q = with + fmt.Sprintf(`, e AS (
			SELECT dep, evidence, min(email_id) AS first, count(DISTINCT email_id) AS k,
			       row_number() OVER (PARTITION BY dep ORDER BY count(DISTINCT email_id) DESC, min(email_id)) AS i
			FROM m WHERE dep IN (SELECT dep FROM d) GROUP BY dep, evidence
		)
		SELECT d.dep, d.n, d.nd, d.reasons, e.first, e.k, e.evidence
		FROM d JOIN e ON e.dep = d.dep AND e.i <= %[1]d
		ORDER BY d.n DESC, d.dep, e.i`, samples)
	}
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("mail-path dependencies: %w", err)
	}
	defer rows.Close()
	out := []Dependency{}
	for rows.Next() {
		var d Dependency
		var e EvidenceSample
		if err := rows.Scan(&d.Domain, &d.Addresses, &d.AddressDomains, &d.Reasons, &e.EmailID, &e.Addresses, &e.Evidence); err != nil {
			return nil, err
		}
		if n := len(out); n == 0 || out[n-1].Domain != d.Domain {
			d.SampleEvidence = []EvidenceSample{}
			out = append(out, d)
		}
		last := &out[len(out)-1]
		if samples > 0 {
			e.Evidence = RedactAddresses(e.Evidence)
			last.SampleEvidence = append(last.SampleEvidence, e)
		}
	}
	return out, rows.Err()
}

// plural is "1 address", "2 addresses".
func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// lowerFirst is s with its first letter lowercased (a title used inside a
// line).
func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}
