package changeset

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// The formats a review renders in.
const (
	FormatText     = "text"
	FormatMarkdown = "markdown"
	FormatJSON     = "json"
)

// ReviewFormats are the formats Render knows.
var ReviewFormats = []string{FormatText, FormatMarkdown, FormatJSON}

// reviewTLDs is how many TLDs the text and markdown list.
const reviewTLDs = 20

// Render writes the review in format: text for a terminal, markdown for a
// ticket, json for tooling.
func (r ReviewReport) Render(w io.Writer, format string) error {
	switch format {
	case FormatText:
		return r.WriteText(w)
	case FormatMarkdown:
		return r.WriteMarkdown(w)
	case FormatJSON:
		return r.WriteJSON(w)
	}
	return fmt.Errorf("review format %q: want %s", format, strings.Join(ReviewFormats, ", "))
}

// WriteJSON writes the review as indented JSON.
func (r ReviewReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// headline is the changeset's status as the reviewer should read it.
func (r ReviewReport) headline() string {
	switch {
	case !r.Integrity.OK:
		return "FILES DO NOT MATCH THE MANIFEST: CANNOT BE APPROVED"
	case r.Brake.Blocked:
		return "BLOCKED by the safety brake"
	}
	return r.Status
}

func (r ReviewReport) flaggedLine() string {
	return fmt.Sprintf("%d of %d verified addresses (%.3f%%), %d users, %d domains",
		r.Counts.Flagged, r.Counts.Verified, 100*r.Counts.Fraction, r.Counts.Users, r.Counts.FlaggedDomains)
}

func (r ReviewReport) newLine() string {
	switch {
	case r.New.Since == "":
		return fmt.Sprintf("%d: everything (no earlier changeset was applied)", r.New.New)
	case r.New.Problem != "":
		return fmt.Sprintf("cannot tell against the changeset applied on %s: %s", r.New.Since, r.New.Problem)
	}
	return fmt.Sprintf("%d of %d since the last applied changeset (%s)", r.New.New, r.Counts.Flagged, r.New.Since)
}

func (r ReviewReport) brakeLimits() string {
	frac, count, prot := "off", "off", "none"
	if r.Brake.MaxFraction > 0 {
		frac = fmt.Sprintf("%.3f%%", 100*r.Brake.MaxFraction)
	}
	if r.Brake.MaxCount > 0 {
		count = fmt.Sprint(r.Brake.MaxCount)
	}
	if len(r.Brake.Protected) > 0 {
		prot = strings.Join(r.Brake.Protected, ", ")
	}
	return fmt.Sprintf("max_fraction %s, max_count %s, protected %s", frac, count, prot)
}

func (r ReviewReport) approvalLine() string {
	a := r.Approval
	switch {
	case a == nil:
		return "not approved"
	case a.Problem != "":
		return "approval.json cannot be read: " + a.Problem
	}
	s := fmt.Sprintf("approved by %s at %s, pinning %s", a.By, a.ApprovedAt.UTC().Format(time.RFC3339), a.ManifestSHA256)
	if a.OverrideBrake {
		s += ", overriding the brake"
	}
	if a.Note != "" {
		s += "; note: " + a.Note
	}
	if !a.Current {
		s += " — NOT this manifest or its files: no longer valid, approve again"
	}
	return s
}

func (r ReviewReport) appliedLine() string {
	s := applyLine(r.Applied, "applied", "changed")
	if r.Reverted != nil {
		s += "; " + applyLine(r.Reverted, "reverted", "restored")
	}
	return s
}

func applyLine(a *AppliedReview, what, changed string) string {
	switch {
	case a == nil:
		return "not " + what
	case a.Problem != "":
		return what + " state cannot be read: " + a.Problem
	}
	s := what
	if a.By != "" {
		s += " by " + a.By
	}
	s += fmt.Sprintf(", finished %s: %d %s, %d skipped", a.FinishedAt.UTC().Format(time.RFC3339), a.Changed, changed, a.Skipped)
	if len(a.SkippedBy) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(a.SkippedBy)) {
			parts = append(parts, fmt.Sprintf("%s %d", k, a.SkippedBy[k]))
		}
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	if !a.Current {
		s += fmt.Sprintf(" — from manifest %s, not this one", short(a.ManifestSHA256))
	}
	return s
}

func (r ReviewReport) filesLine() string {
	if r.Integrity.OK {
		return fmt.Sprintf("all %d match the manifest", r.Integrity.Files)
	}
	return fmt.Sprintf("%d problem(s): see above", len(r.Integrity.Problems))
}

// WriteText writes the review for a terminal.
func (r ReviewReport) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "changeset %s: %s\n\n", r.Date, r.headline())
	if !r.Integrity.OK {
		b.WriteString("!!! The files no longer match manifest.json. This changeset cannot be approved or applied:\n")
		for _, p := range r.Integrity.Problems {
			fmt.Fprintf(&b, "!!!   %s %s\n", p.File, p.Problem)
		}
		b.WriteString("\n")
	}
	tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "folder\t%s\n", r.Dir)
	fmt.Fprintf(tw, "policy\t%s\n", r.Policy)
	fmt.Fprintf(tw, "manifest sha256\t%s (what an approval pins)\n", r.ManifestSHA256)
	fmt.Fprintf(tw, "files\t%s\n", r.filesLine())
	fmt.Fprintf(tw, "to un-verify\t%s\n", r.flaggedLine())
	fmt.Fprintf(tw, "new\t%s\n", r.newLine())
	if r.Brake.Blocked {
		fmt.Fprintf(tw, "safety brake\tBLOCKED (%s)\n", r.brakeLimits())
		for _, reason := range r.Brake.Reasons {
			fmt.Fprintf(tw, "\t- %s\n", reason)
		}
	} else {
		fmt.Fprintf(tw, "safety brake\tpasses (%s)\n", r.brakeLimits())
	}
	fmt.Fprintf(tw, "approval\t%s\n", r.approvalLine())
	fmt.Fprintf(tw, "apply\t%s\n", r.appliedLine())
	if r.Counts.From != FileParquet {
		fmt.Fprintf(tw, "counts\tfrom %s (%s cannot be read)\n", r.Counts.From, FileParquet)
	}
	tw.Flush()

	if len(r.Counts.ByReason) > 0 {
		b.WriteString("\nBY REASON\n")
		r.textByReason(&b)
	}
	for _, t := range []struct {
		title, col string
		rows       []Tally
		prefix     string
	}{{"BY STATE", "state", r.Counts.ByState, ""}, {"BY TLD", "tld", r.Counts.ByTLD, "."}} {
		if len(t.rows) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n%s\n", t.title)
		names := make([]string, 0, len(t.rows))
		width := len(t.col)
		for i, x := range t.rows {
			if i == reviewTLDs {
				names = append(names, fmt.Sprintf("… %d more", len(t.rows)-reviewTLDs))
				break
			}
			names = append(names, t.prefix+orNone(x.Name))
			width = max(width, len([]rune(names[i])))
		}
		fmt.Fprintf(&b, "%-*s  %9s\n", width, t.col, "addresses")
		for i, n := range names {
			if i == reviewTLDs {
				fmt.Fprintf(&b, "%s\n", n)
				break
			}
			fmt.Fprintf(&b, "%s%s  %9d\n", n, strings.Repeat(" ", width-len([]rune(n))), t.rows[i].Addresses)
		}
	}

	if len(r.TopDomains) > 0 {
		b.WriteString("\nLARGEST DOMAINS\n")
		tw = tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
		fmt.Fprintf(tw, "domain\tstate\treason\taddresses\tusers\tnew\n")
		for _, d := range r.TopDomains {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\n", orNone(d.Domain), d.State, d.Reason, d.Addresses, d.Users, d.New)
		}
		tw.Flush()
		b.WriteString("\nEVIDENCE (email id, addresses with it: which sources said what, when)\n")
		for _, d := range r.TopDomains {
			if len(d.Evidence) == 0 {
				continue
			}
			fmt.Fprintf(&b, "%s\n", orNone(d.Domain))
			for _, e := range d.Evidence {
				fmt.Fprintf(&b, "  #%d ×%d  %s\n", e.EmailID, e.Addresses, clip(orNone(e.Evidence), 200))
			}
			if more := d.EvidenceLines - int64(len(d.Evidence)); more > 0 {
				fmt.Fprintf(&b, "  … %d more distinct evidence line(s)\n", more)
			}
		}
	}

	if len(r.MailPath.Dependencies) > 0 {
		b.WriteString("\nLARGEST MAIL-PATH DEPENDENCIES (the MX or name-server domain that lapsed)\n")
		tw = tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
		fmt.Fprintf(tw, "dependency domain\treasons\taddresses\taddress domains\n")
		for _, d := range r.MailPath.Dependencies {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", depName(d.Domain), d.Reasons, d.Addresses, d.AddressDomains)
		}
		tw.Flush()
		b.WriteString("\nMAIL-PATH EVIDENCE (email id, addresses with it: host → its domain, which sources said what, when)\n")
		for _, d := range r.MailPath.Dependencies {
			if len(d.SampleEvidence) == 0 {
				continue
			}
			fmt.Fprintf(&b, "%s\n", depName(d.Domain))
			for _, e := range d.SampleEvidence {
				fmt.Fprintf(&b, "  #%d ×%d  %s\n", e.EmailID, e.Addresses, clip(orNone(e.Evidence), 200))
			}
		}
	}

	if r.New.Since != "" && r.New.Problem == "" {
		fmt.Fprintf(&b, "\nNEW SINCE %s (%s)\n", r.New.Since, r.New.SinceDir)
		if len(r.New.Domains) == 0 {
			b.WriteString("nothing new\n")
		}
		tw = tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
		for _, d := range r.New.Domains {
			fmt.Fprintf(tw, "%s\t%d\n", orNone(d.Name), d.Addresses)
		}
		tw.Flush()
	}
	for _, s := range r.New.Skipped {
		fmt.Fprintf(&b, "note: skipped an earlier changeset: %s\n", s)
	}

	b.WriteString("\nNEXT\n")
	for _, n := range r.Next {
		fmt.Fprintf(&b, "  %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteMarkdown writes the review for a ticket.
func (r ReviewReport) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# lapse changeset %s: %s\n\n", r.Date, r.headline())
	if !r.Integrity.OK {
		b.WriteString("> **The files no longer match `manifest.json`. This changeset cannot be approved or applied.**\n>\n")
		for _, p := range r.Integrity.Problems {
			fmt.Fprintf(&b, "> - `%s` %s\n", p.File, mdCell(p.Problem))
		}
		b.WriteString("\n")
	}
	b.WriteString("| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| folder | `%s` |\n", mdCell(r.Dir))
	fmt.Fprintf(&b, "| policy | `%s` |\n", mdCell(r.Policy))
	fmt.Fprintf(&b, "| manifest sha256 | `%s` (what an approval pins) |\n", r.ManifestSHA256)
	fmt.Fprintf(&b, "| files | %s |\n", r.filesLine())
	fmt.Fprintf(&b, "| to un-verify | %s |\n", r.flaggedLine())
	fmt.Fprintf(&b, "| new | %s |\n", mdCell(r.newLine()))
	if r.Brake.Blocked {
		fmt.Fprintf(&b, "| safety brake | **blocked** (%s) |\n", mdCell(r.brakeLimits()))
	} else {
		fmt.Fprintf(&b, "| safety brake | passes (%s) |\n", mdCell(r.brakeLimits()))
	}
	fmt.Fprintf(&b, "| approval | %s |\n", mdCell(r.approvalLine()))
	fmt.Fprintf(&b, "| apply | %s |\n", mdCell(r.appliedLine()))
	if r.Counts.From != FileParquet {
		fmt.Fprintf(&b, "| counts | from `%s` (`%s` cannot be read) |\n", r.Counts.From, FileParquet)
	}
	if r.Brake.Blocked {
		b.WriteString("\n## Safety brake\n\n")
		for _, reason := range r.Brake.Reasons {
			fmt.Fprintf(&b, "- %s\n", reason)
		}
	}

	if len(r.Counts.ByReason) > 0 {
		b.WriteString("\n## By reason\n")
		r.markdownByReason(&b)
	}
	for _, t := range []struct {
		title, col string
		rows       []Tally
		prefix     string
	}{{"By state", "state", r.Counts.ByState, ""}, {"By TLD", "tld", r.Counts.ByTLD, "."}} {
		if len(t.rows) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n## %s\n\n| %s | addresses |\n|---|---:|\n", t.title, t.col)
		for i, x := range t.rows {
			if i == reviewTLDs {
				fmt.Fprintf(&b, "| … %d more | |\n", len(t.rows)-reviewTLDs)
				break
			}
			fmt.Fprintf(&b, "| %s%s | %d |\n", t.prefix, mdCell(orNone(x.Name)), x.Addresses)
		}
	}

	if len(r.TopDomains) > 0 {
		b.WriteString("\n## Largest domains\n\n| domain | state | reason | addresses | users | new |\n|---|---|---|---:|---:|---:|\n")
		for _, d := range r.TopDomains {
			fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %d |\n", mdCell(orNone(d.Domain)), mdCell(d.State), mdCell(d.Reason), d.Addresses, d.Users, d.New)
		}
		b.WriteString("\n## Sample evidence\n\n| domain | email_id | addresses | evidence |\n|---|---:|---:|---|\n")
		for _, d := range r.TopDomains {
			for _, e := range d.Evidence {
				fmt.Fprintf(&b, "| %s | %d | %d | %s |\n", mdCell(orNone(d.Domain)), e.EmailID, e.Addresses, mdCell(orNone(e.Evidence)))
			}
			if more := d.EvidenceLines - int64(len(d.Evidence)); more > 0 && len(d.Evidence) > 0 {
				fmt.Fprintf(&b, "| %s | | | … %d more distinct evidence line(s) |\n", mdCell(orNone(d.Domain)), more)
			}
		}
	}

	if len(r.MailPath.Dependencies) > 0 {
		b.WriteString("\n## Largest mail-path dependencies\n\nThe MX hosts' or name servers' registrable domains that lapsed or were re-registered.\n\n" +
			"| dependency domain | reasons | addresses | address domains |\n|---|---|---:|---:|\n")
		for _, d := range r.MailPath.Dependencies {
			fmt.Fprintf(&b, "| %s | %s | %d | %d |\n", mdCell(depName(d.Domain)), mdCell(d.Reasons), d.Addresses, d.AddressDomains)
		}
		b.WriteString("\n## Mail-path sample evidence\n\n| dependency domain | email_id | addresses | evidence |\n|---|---:|---:|---|\n")
		for _, d := range r.MailPath.Dependencies {
			for _, e := range d.SampleEvidence {
				fmt.Fprintf(&b, "| %s | %d | %d | %s |\n", mdCell(depName(d.Domain)), e.EmailID, e.Addresses, mdCell(orNone(e.Evidence)))
			}
		}
	}

	if r.New.Since != "" && r.New.Problem == "" {
		fmt.Fprintf(&b, "\n## New since the changeset applied on %s\n\n", r.New.Since)
		if len(r.New.Domains) == 0 {
			b.WriteString("Nothing new.\n")
		}
		for _, d := range r.New.Domains {
			fmt.Fprintf(&b, "- %s: %d\n", mdCell(orNone(d.Name)), d.Addresses)
		}
	}
	for _, s := range r.New.Skipped {
		fmt.Fprintf(&b, "\nNote: skipped an earlier changeset: %s\n", mdCell(s))
	}

	b.WriteString("\n## Next\n\n")
	for _, n := range r.Next {
		if strings.HasPrefix(n, "lapse ") {
			fmt.Fprintf(&b, "- `%s`\n", n)
		} else {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// textByReason writes the counts by reason for a terminal: the domain
// flags, then the mail-path flags (or a line saying there are none), each
// with its total.
func (r ReviewReport) textByReason(b *strings.Builder) {
	width := len("reason")
	for _, t := range r.Counts.ByReason {
		width = max(width, len([]rune(orNone(t.Name))))
	}
	rows := func(ts []Tally) {
		fmt.Fprintf(b, "  %-*s  %9s\n", width, "reason", "addresses")
		for _, t := range ts {
			n := orNone(t.Name)
			fmt.Fprintf(b, "  %s%s  %9d\n", n, strings.Repeat(" ", width-len([]rune(n))), t.Addresses)
		}
	}
	fmt.Fprintf(b, "%s: %s\n", lowerFirst(domainTitle), plural(r.DomainFlags.Flagged, "address", "addresses"))
	if len(r.DomainFlags.ByReason) > 0 {
		rows(r.DomainFlags.ByReason)
	}
	if r.MailPath.Flagged == 0 {
		fmt.Fprintf(b, "%s: none\n", lowerFirst(mailPathTitle))
		return
	}
	fmt.Fprintf(b, "%s: %s%s\n", lowerFirst(mailPathTitle), plural(r.MailPath.Flagged, "address", "addresses"), r.mailDomainsNote())
	rows(r.MailPath.ByReason)
}

// markdownByReason is textByReason for a ticket.
func (r ReviewReport) markdownByReason(b *strings.Builder) {
	fmt.Fprintf(b, "\n### %s: %s\n\n", domainTitle, plural(r.DomainFlags.Flagged, "address", "addresses"))
	if len(r.DomainFlags.ByReason) > 0 {
		b.WriteString("| reason | addresses |\n|---|---:|\n")
		for _, t := range r.DomainFlags.ByReason {
			fmt.Fprintf(b, "| %s | %d |\n", mdCell(orNone(t.Name)), t.Addresses)
		}
	}
	if r.MailPath.Flagged == 0 {
		fmt.Fprintf(b, "\n### %s: none\n", mailPathTitle)
		return
	}
	fmt.Fprintf(b, "\n### %s: %s%s\n\n| reason | addresses |\n|---|---:|\n", mailPathTitle,
		plural(r.MailPath.Flagged, "address", "addresses"), r.mailDomainsNote())
	for _, t := range r.MailPath.ByReason {
		fmt.Fprintf(b, "| %s | %d |\n", mdCell(t.Name), t.Addresses)
	}
}

// mailDomainsNote is ", N address domains" when the rows could be read.
func (r ReviewReport) mailDomainsNote() string {
	if r.MailPath.AddressDomains == 0 {
		return ""
	}
	return ", " + plural(r.MailPath.AddressDomains, "address domain", "address domains")
}

// depName names a dependency domain, or says the evidence named none.
func depName(d string) string {
	if d == "" {
		return "(not named in the evidence)"
	}
	return d
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// mdCell makes s safe inside a markdown table cell.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}
