{{- /*
The night's join, narrowed to what the policy needs (decideQuery): per
address of the snapshot its row number there (srow), email_id, verified,
the number (from 1) of the first rule of the policy's table whose
condition holds (lifecycle.Policy.Rules: one CASE, so each condition is
evaluated once per address), its first_seen, and for counting distinct
domains the state row it matched (st_id) or, when it matched none, its
domain. The relation anchored holds every fact column a rule's condition
may read (listed at lifecycle.Rule): a new fact is a new column here.

.Hist is the first-seen history ("": no night before tonight, no join;
least ignores the NULL), .States the states relation, .Flags whether the
policy reads the best-effort flags (pypi only: parsing every domain's
evidence for them is skipped otherwise), .Reverified the re-verified
addresses' file ("": none; they are few, joined only when present).
.Mail is the mail path (nil: no links file, or the pypi policy): its
facts are folded per address domain (mail_facts, classify_mail.sql),
keyed by the domain's state row (mail_st, a few thousand rows: with
.Mail.StID the links carry it, otherwise a join with the states finds it) and
joined on that number after the join on domain: carried through the
join on domain, their columns doubled its cost. Without it .MailCols,
the mail-fact columns, are NULL.
*/}}
WITH hist AS ({{if .Hist}}{{.Hist}}{{else}}SELECT NULL::BIGINT AS email_id WHERE false{{end}}),
{{- if .Mail}}
mail_links AS ({{template "mail_links" .Mail}}),
mail AS ({{template "mail_facts" .Mail}}),
mail_st AS ({{if .Mail.StID}}SELECT * EXCLUDE (domain) FROM mail WHERE st_id IS NOT NULL{{else}}SELECT s0.st_id, mail.* EXCLUDE (domain) FROM ({{.States}}) s0 JOIN mail USING (domain){{end}}),
{{- end}}
st AS (SELECT * FROM {{if .Flags}}(SELECT *, {{template "flags"}} AS flags FROM (SELECT *, {{template "evidence_parse"}} AS ev FROM ({{.States}}))){{else}}({{.States}}){{end}}),
facts AS (
	SELECT s.file_row_number AS srow, s.email_id, s.verified, s.domain, st.st_id,
	       s.domain IS NULL AS invalid, st.domain IS NOT NULL AS checked,
	       st.state, st.source, st.registered_at, st.expires_at, st.corroborated, st.decisive_nights,
	       st.previous_registered_at, st.registered_at_changed_at, st.checked_at{{if .Flags}}, st.flags{{end}},
	       least(CAST(s.created AS TIMESTAMPTZ), CAST(s.verified_at AS TIMESTAMPTZ), {{if .Hist}}h.first_seen{{else}}NULL::TIMESTAMPTZ{{end}},
	             CAST(CAST({{q .Date}} AS DATE) + INTERVAL 1 DAY AS TIMESTAMPTZ)) AS first_seen,
	       {{if .Reverified}}rv.reverified_at{{else}}CAST(NULL AS TIMESTAMPTZ){{end}} AS reverified_at
	       {{- range .MailCols}}, {{if $.Mail}}ms.{{.Name}}{{else}}CAST(NULL AS {{.SQL}}) AS {{.Name}}{{end}}{{end}}
	FROM read_parquet({{q .Snapshot}}, file_row_number = true) s
	{{if .Hist}}LEFT JOIN hist h USING (email_id){{end}}
	{{if .Reverified}}LEFT JOIN (SELECT email_id, max(CAST(reverified_at AS TIMESTAMPTZ)) AS reverified_at FROM read_parquet({{q .Reverified}}) GROUP BY email_id) rv USING (email_id){{end}}
	LEFT JOIN st ON st.domain = s.domain
	{{- if .Mail}}
	LEFT JOIN mail_st ms ON ms.st_id = st.st_id{{end}}
),
anchored AS (
	-- A re-verification moves the anchor of the re-registration rule
	-- forward (greatest ignores a NULL).
	SELECT *, greatest(first_seen, reverified_at) AS anchor FROM facts
)
SELECT srow, email_id, verified, CASE WHEN NOT checked THEN domain END AS domain, st_id,
       CAST(CASE{{range $i, $r := .Rules}}
		WHEN {{$r.SQL}} THEN {{number $i}}{{end}} END AS UTINYINT) AS rule, first_seen
FROM anchored
