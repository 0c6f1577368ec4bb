{{- /*
The mail path (issue 12), over a mailPlan (.): used by classify_decide.sql
(mail_links and mail_facts, every address domain) and classify_export.sql
(mail_links of the non-keep addresses' domains, for their evidence).
*/ -}}

{{- /*
mail_links is one row per link of the links file (.Links) whose
dependency domain has a state row that can give a fact (.Deps on dep):
the link, the dependency's state columns, and its per-link facts
(lifecycle.MailDepSQL): confirmed_state, rereg_at, watch. .Where
restricts the links.
*/ -}}
{{define "mail_links" -}}
SELECT *, {{.Dep.ConfirmedState}} AS confirmed_state, {{.Dep.ReregisteredAt}} AS rereg_at, {{.Dep.Watch}} AS watch
FROM (
	SELECT l.domain,{{if .StID}} l.domain_st_id,{{end}} l.role, l.host, l.dep, l.link_first_seen, d.state, d.source, d.corroborated, d.checked_at,
	       d.registered_at, d.expires_at, d.previous_registered_at, d.registered_at_changed_at
	FROM ({{.Links}}) l JOIN {{.Deps}} d ON d.domain = l.dep
	{{- if .Where}}
	WHERE {{.Where}}{{end}}
)
{{- end}}

{{- /*
mail_facts folds mail_links per address domain (with .StID, its state
row number st_id too) into the mail-fact columns of each role
(lifecycle.MailFactsOf in Go): the most severe confirmed decisive state
(DecisiveStates' order) and the latest lookup of a dependency in it, the
latest counted re-registration, and whether any dependency is on watch.
*/ -}}
{{define "mail_facts" -}}
SELECT domain{{if .StID}}, min(domain_st_id) AS st_id{{end}}{{range $r := .Roles}},
	CASE{{range $s := $.Decisive}} WHEN bool_or(confirmed_state = {{q $s}}) FILTER (WHERE role = {{q $r}}) THEN {{q $s}}{{end}} END AS {{mailcol $r "state"}},
	CASE{{range $s := $.Decisive}} WHEN bool_or(confirmed_state = {{q $s}}) FILTER (WHERE role = {{q $r}})
		THEN max(checked_at) FILTER (WHERE role = {{q $r}} AND confirmed_state = {{q $s}}){{end}} END AS {{mailcol $r "state_checked_at"}},
	max(rereg_at) FILTER (WHERE role = {{q $r}}) AS {{mailcol $r "rereg_at"}},
	bool_or(watch) FILTER (WHERE role = {{q $r}}) AS {{mailcol $r "watch"}}{{end}}
FROM mail_links
GROUP BY domain
{{- end}}

{{- /*
mail_dep_evidence summarizes a mail_links row for reviewers: the role,
the host and its domain, and the dependency's state; with rereg, when it
was registered after the link was first seen.
*/ -}}
{{define "mail_dep_evidence" -}}
concat_ws(' ',
	role, host, '→', dep,
	coalesce(source, '?') || ':' || coalesce(state, '?'),
	CASE WHEN corroborated THEN 'corroborated' END,
	CASE WHEN expires_at IS NOT NULL AND watch THEN 'expires ' || {{day "expires_at"}} END,
	CASE WHEN checked_at IS NOT NULL THEN 'checked ' || {{day "checked_at"}} END,
	CASE WHEN rereg THEN 'registered ' || {{day "rereg_at"}} || ' after link first seen ' || {{day "link_first_seen"}} END)
{{- end}}
