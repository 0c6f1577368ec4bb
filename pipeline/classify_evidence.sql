{{- /*
Expressions over one row of the states relation, used by
classify_decide.sql and classify_export.sql.
*/ -}}

{{- /*
evidence_parse parses a state row's evidence_json (ev), for the flags and
the evidence summary.
*/ -}}
{{define "evidence_parse" -}}
CASE WHEN evidence_json IS NULL OR trim(evidence_json) IN ('', 'null') THEN NULL
	ELSE from_json(evidence_json, '[{"source":"VARCHAR","state":"VARCHAR","statuses":["VARCHAR"]}]') END
{{- end}}

{{- /*
flags is lifecycle.BestEffortFlags in SQL: the raw Domainr/Fastly flags
from a best-effort answer's statuses and best-effort evidence, split on
spaces, lowercased, sorted and distinct.
*/ -}}
{{define "flags" -}}
list_sort(list_distinct(list_filter(flatten(list_transform(
	list_concat(
		CASE WHEN {{bestEffort "source"}} THEN coalesce(statuses, []::VARCHAR[]) ELSE []::VARCHAR[] END,
		flatten(list_transform(list_filter(coalesce(ev, []), e -> {{bestEffort "e.source"}}),
		                       e -> coalesce(e.statuses, []::VARCHAR[])))),
	x -> string_split(lower(x), ' '))), f -> f <> '')))
{{- end}}

{{- /*
evidence summarizes a domain's state for reviewers (per domain; the
first-seen date of a re-registration is added per address).
*/ -}}
{{define "evidence" -}}
concat_ws(' ',
	coalesce(source, '?') || ':' || coalesce(state, '?'),
	CASE WHEN len(statuses) > 0 THEN '[' || array_to_string(statuses, ', ') || ']' END,
	CASE WHEN registered_at IS NOT NULL THEN 'registered ' || {{day "registered_at"}} END,
	CASE WHEN expires_at IS NOT NULL THEN 'expires ' || {{day "expires_at"}} END,
	CASE WHEN corroborated THEN 'corroborated' END,
	CASE WHEN decisive_nights > 0 THEN 'decisive ' || decisive_nights || ' night(s)' END,
	CASE WHEN len(ev) > 0 THEN 'evidence ' || array_to_string(list_transform(ev, e -> coalesce(e.source, '?') || ':' || coalesce(e.state, '?')), ',') END,
	CASE WHEN checked_at IS NOT NULL THEN 'checked ' || {{day "checked_at"}} END,
	CASE WHEN coalesce(error, '') <> '' THEN 'last error: ' || left(error, 160) END)
{{- end}}
