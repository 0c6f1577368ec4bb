{{- /*
The decisions file's rows from the decided table (exportQuery): the
addresses whose action is not keep (.NotKeep, their rule numbers), their
address columns read back from the snapshot by row number, and the
evidence summary of their domains (computed for those domains only). A
rule number maps to its action and reason by a CASE over the number: a
list literal indexed by it ([...][rule]) builds the list for every row.
.Mail (nil: no mail path) reads the links of the addresses decided by a
mail-path rule (.MailRules, their numbers): each rule's evidence names
one link of its role (.MailEvidence: the one its Filter picks, the
greatest by Rank) before the own domain's.
*/}}
WITH nk AS MATERIALIZED (
	SELECT s.email_id, CAST(s.user_id AS VARCHAR) AS user_id, s.email, s.verified, s."primary",
	       CAST(s.created AS TIMESTAMPTZ) AS created, CAST(s.verified_at AS TIMESTAMPTZ) AS verified_at,
	       s.domain, s.invalid_reason, d.rule, d.first_seen
	FROM (SELECT srow, rule, first_seen FROM decided WHERE rule IN ({{.NotKeep}})) d
	JOIN read_parquet({{q .Snapshot}}, file_row_number = true) s ON s.file_row_number = d.srow
), st AS (
	SELECT domain, state, source, {{template "evidence"}} AS dom_evidence
	FROM (SELECT *, {{template "evidence_parse"}} AS ev FROM ({{.States}}) WHERE domain IN (SELECT domain FROM nk))
{{- if .Mail}}
), mail_nk AS (
	SELECT DISTINCT domain, rule FROM nk WHERE rule IN ({{.MailRules}})
), mail_links AS (
	{{template "mail_links" .Mail}}
), mev_links AS (
	SELECT m.rule, ml.*, CASE m.rule{{range .MailEvidence}} WHEN {{.Number}} THEN {{.Rank}}{{end}} END AS rank,
	       m.rule IN ({{.MailRereg}}) AS rereg
	FROM mail_nk m JOIN mail_links ml ON ml.domain = m.domain
	WHERE CASE m.rule{{range .MailEvidence}} WHEN {{.Number}} THEN ml.role = {{q .Role}} AND ({{.Filter}}){{end}} ELSE false END
), mev AS (
	SELECT domain, rule, first({{template "mail_dep_evidence"}} ORDER BY rank DESC NULLS LAST, host, dep) AS mail_evidence
	FROM mev_links
	GROUP BY domain, rule
{{- end}}
), decided_nk AS (
	SELECT nk.*, st.state, st.source, st.dom_evidence, {{if .Mail}}mev.mail_evidence{{else}}CAST(NULL AS VARCHAR) AS mail_evidence{{end}}, CASE rule{{range $i, $r := .Rules}} WHEN {{number $i}} THEN {{q $r.Action}}{{end}} END AS action, CASE rule{{range $i, $r := .Rules}} WHEN {{number $i}} THEN {{q $r.Reason}}{{end}} END AS reason
	FROM nk LEFT JOIN st ON st.domain = nk.domain
	{{- if .Mail}}
	LEFT JOIN (SELECT domain AS mev_domain, rule AS mev_rule, mail_evidence FROM mev) mev ON mev.mev_domain = nk.domain AND mev.mev_rule = nk.rule{{end}}
)
SELECT email_id, user_id, email, verified, "primary", created, verified_at, domain,
       regexp_extract(domain, '[^.]+$') AS tld, invalid_reason, state, source, action, reason,
       CASE WHEN mail_evidence IS NOT NULL THEN mail_evidence || '; domain ' || coalesce(dom_evidence, '?')
            WHEN reason = {{q .Reregistered}} THEN dom_evidence || ' first seen ' || {{day "first_seen"}}
            ELSE dom_evidence END AS evidence,
       first_seen
FROM decided_nk
