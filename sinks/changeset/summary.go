package changeset

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/lapse-dev/lapse/internal/duck"
)

// Unknowns is what a night could not tell: the domains of its snapshot
// whose state is unknown (every source failed or could not tell) and the
// addresses decided unknown. A changeset says nothing of them, so the
// summary does.
type Unknowns struct {
	// Domains of OfDomains (the snapshot's distinct domains) are unknown.
	Domains, OfDomains int64
	Addresses          int64
	// MaxFraction is resolve.max_unknown_fraction (0: no limit); Degraded
	// says Domains is over it.
	MaxFraction float64
	Degraded    bool
}

// Share is the unknown share of the domains, 0 when there are none.
func (u Unknowns) Share() float64 {
	if u.OfDomains <= 0 {
		return 0
	}
	return float64(u.Domains) / float64(u.OfDomains)
}

// summaryMarkdown renders summary.md for the reviewer from the changeset's
// rows (rel: a table name or a read_parquet call). It names domains and
// email ids, not addresses: the addresses are in changeset.csv.
func summaryMarkdown(ctx context.Context, db querier, s Spec, m Manifest, rel string) (string, error) {
	var b strings.Builder
	c := m.Counts
	fmt.Fprintf(&b, "# lapse changeset %s: %s\n\n", s.Date, m.Status)
	pct := 0.0
	if c.Verified > 0 {
		pct = 100 * float64(c.Flagged) / float64(c.Verified)
	}
	fmt.Fprintf(&b, "Policy `%s`: **%d** verified addresses to un-verify (%.3f%% of %d verified), %d users, %d domains; %d new since the previous changeset.\n\n",
		m.Policy, c.Flagged, pct, c.Verified, c.Users, c.FlaggedDomains, c.New)
	if m.Status == StatusBlocked {
		b.WriteString("**Blocked by the safety brake.** Review before anything is applied:\n\n")
		for _, r := range m.BlockReasons {
			fmt.Fprintf(&b, "- %s\n", r)
		}
		b.WriteString("\n")
	}
	u := s.Unknowns
	if u.Degraded {
		fmt.Fprintf(&b, "**Degraded night: %d of %d domains (%.1f%%) are unknown**, over `resolve.max_unknown_fraction` %g: "+
			"their lookups failed or no source could tell. This changeset misses whatever those domains hide; "+
			"check the providers and the network (failed lookups are asked again next night).\n\n",
			u.Domains, u.OfDomains, 100*u.Share(), u.MaxFraction)
	}
	b.WriteString("Nothing is applied automatically: review `changeset.csv`, then `lapse approve` and `lapse apply`.\n\n")

	fmt.Fprintf(&b, "Unknown tonight: %d of %d domains (%.1f%%), %d addresses decided `unknown`.\n\n",
		u.Domains, u.OfDomains, 100*u.Share(), u.Addresses)
	if c.Flagged == 0 {
		if u.Degraded {
			b.WriteString("Nothing to un-verify among the domains that could be checked.\n\n")
		} else {
			b.WriteString("Nothing to un-verify tonight.\n\n")
		}
	}
	if err := summaryByReason(ctx, db, &b, c, rel); err != nil {
		return "", err
	}
	b.WriteString("\n## By TLD\n\n| tld | addresses |\n|---|---:|\n")
	for i, k := range sortedByCount(c.ByTLD) {
		if i == 20 {
			fmt.Fprintf(&b, "| … %d more | |\n", len(c.ByTLD)-20)
			break
		}
		fmt.Fprintf(&b, "| .%s | %d |\n", k, c.ByTLD[k])
	}

	b.WriteString("\n## Top domains\n\n| domain | state | reason | addresses | new |\n|---|---|---|---:|---:|\n")
	newExpr := "true"
	if s.Previous != "" {
		newExpr = fmt.Sprintf("email_id NOT IN (SELECT email_id FROM read_parquet(%s))", duck.String(s.Previous))
	}
	rows, err := db.QueryContext(ctx, fmt.Sprintf(`SELECT domain, coalesce(state, ''), reason, count(*) AS n, count(*) FILTER (%s)
		FROM %s GROUP BY ALL ORDER BY n DESC, domain LIMIT 20`, newExpr, rel))
	if err != nil {
		return "", err
	}
	for rows.Next() {
		var d, st, r string
		var n, nw int64
		if err := rows.Scan(&d, &st, &r, &n, &nw); err != nil {
			rows.Close()
			return "", err
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d |\n", d, st, r, n, nw)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return "", err
	}

	b.WriteString("\n## New since the previous changeset\n\n")
	if s.Previous == "" {
		b.WriteString("No earlier changeset: everything is new.\n")
	} else {
		rows, err := db.QueryContext(ctx, fmt.Sprintf(`SELECT domain, count(*) AS n FROM %s WHERE %s
			GROUP BY ALL ORDER BY n DESC, domain LIMIT 20`, rel, newExpr))
		if err != nil {
			return "", err
		}
		any := false
		for rows.Next() {
			var d string
			var n int64
			if err := rows.Scan(&d, &n); err != nil {
				rows.Close()
				return "", err
			}
			fmt.Fprintf(&b, "- %s: %d\n", d, n)
			any = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return "", err
		}
		if !any {
			b.WriteString("Nothing new.\n")
		}
	}

	b.WriteString("\n## Sample evidence\n\n| email_id | domain | reason | evidence |\n|---:|---|---|---|\n")
	// The first address of each of up to 10 domains, so every reason shows.
	// email_id breaks the ties of r: a domain's addresses share its name,
	// and DuckDB numbers tied rows in any order, which made the sample of
	// the same changeset differ between runs.
	rows, err = db.QueryContext(ctx, fmt.Sprintf(`SELECT email_id, domain, reason, coalesce(evidence, '') FROM (
			SELECT *, row_number() OVER (PARTITION BY domain ORDER BY email_id) AS k,
			          row_number() OVER (PARTITION BY reason ORDER BY domain, email_id) AS r
			FROM %s) WHERE k = 1 ORDER BY r, reason, domain LIMIT 10`, rel))
	if err != nil {
		return "", err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var d, r, ev string
		if err := rows.Scan(&id, &d, &r, &ev); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s |\n", id, d, r, strings.ReplaceAll(RedactAddresses(ev), "|", "\\|"))
	}
	return b.String(), rows.Err()
}

// summaryByReason writes the counts by reason in two sections, the
// domain flags and the mail-path flags, each with its total; the mail-path
// section lists the dependency domains behind its flags. A changeset
// without mail-path rows says so in one line.
func summaryByReason(ctx context.Context, db querier, b *strings.Builder, c Counts, rel string) error {
	domain, mail, domainN, mailN := splitByReason(c.ByReason)
	b.WriteString("## By reason\n\n")
	fmt.Fprintf(b, "### %s: %s\n\n", domainTitle, plural(domainN, "address", "addresses"))
	if len(domain) > 0 {
		b.WriteString("| reason | addresses |\n|---|---:|\n")
		for _, k := range sortedByCount(domain) {
			fmt.Fprintf(b, "| %s | %d |\n", k, domain[k])
		}
		b.WriteString("\n")
	}
	if mailN == 0 {
		fmt.Fprintf(b, "### %s: none\n", mailPathTitle)
		return nil
	}
	deps, err := dependencies(ctx, db, rel, 20, 0)
	if err != nil {
		return err
	}
	var mailDomains int64
	if err := db.QueryRowContext(ctx, fmt.Sprintf(`SELECT count(DISTINCT domain) FROM %s WHERE %s`, rel, mailPathSQL("reason"))).Scan(&mailDomains); err != nil {
		return fmt.Errorf("mail-path domains: %w", err)
	}
	fmt.Fprintf(b, "### %s: %s\n\n", mailPathTitle, plural(mailN, "address", "addresses"))
	fmt.Fprintf(b, "The address's own domain is healthy; the registrable domain of one of its MX hosts or name servers lapsed or was re-registered. %s.\n\n",
		plural(mailDomains, "address domain", "address domains"))
	b.WriteString("| reason | addresses |\n|---|---:|\n")
	for _, k := range sortedByCount(mail) {
		fmt.Fprintf(b, "| %s | %d |\n", k, mail[k])
	}
	b.WriteString("\n#### Dependency domains\n\n| dependency domain | reasons | addresses | address domains |\n|---|---|---:|---:|\n")
	for _, d := range deps {
		fmt.Fprintf(b, "| %s | %s | %d | %d |\n", depName(d.Domain), d.Reasons, d.Addresses, d.AddressDomains)
	}
	return nil
}

// sortedByCount orders keys by count, largest first, then by name.
func sortedByCount(m map[string]int64) []string {
	ks := slices.Collect(maps.Keys(m))
	slices.SortFunc(ks, func(a, b string) int {
		if c := cmp.Compare(m[b], m[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	return ks
}
