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
greatest by Rank) before the own domain's. The rules are picked by
ranges of numbers (.NotKeep, .MailRules, .MailRereg are conditions on
rule): DuckDB turns a long IN list into a join over every row of
decided. The states and the links are matched by the state row number
(st_id; the links' domain_st_id when .Mail.StID), not by domain: joining
on the number cost a fourth of joining on the name.
*/}}
WITH nk AS MATERIALIZED (
	SELECT s.email_id, CAST(s.user_id AS VARCHAR) AS user_id, s.email, s.verified, s."primary",
	       CAST(s.created AS TIMESTAMPTZ) AS created, CAST(s.verified_at AS TIMESTAMPTZ) AS verified_at,
	       s.domain, s.invalid_reason, d.rule, d.first_seen, d.st_id
	FROM (SELECT srow, rule, first_seen, st_id FROM decided WHERE {{.NotKeep}}) d
	JOIN read_parquet({{q .Snapshot}}, file_row_number = true) s ON s.file_row_number = d.srow
), st AS (
	SELECT st_id, state, source, {{template "evidence"}} AS dom_evidence
	FROM (SELECT *, {{template "evidence_parse"}} AS ev FROM ({{.States}}) WHERE st_id IN (SELECT st_id FROM nk))
{{- if .Mail}}
), mail_nk AS (
	SELECT DISTINCT {{if .Mail.StID}}st_id{{else}}domain{{end}} AS mkey, rule FROM nk WHERE {{.MailRules}}
), mail_links AS (
	{{template "mail_links" .Mail}}
), mev_links AS (
	SELECT m.rule, m.mkey, ml.*, CASE m.rule{{range .MailEvidence}} WHEN {{.Number}} THEN {{.Rank}}{{end}} END AS rank,
	       {{.MailRereg}} AS rereg
	FROM mail_nk m JOIN mail_links ml ON ml.{{if .Mail.StID}}domain_st_id{{else}}domain{{end}} = m.mkey
	WHERE CASE m.rule{{range .MailEvidence}} WHEN {{.Number}} THEN ml.role = {{q .Role}} AND ({{.Filter}}){{end}} ELSE false END
), mev AS (
	SELECT mkey, rule, first({{template "mail_dep_evidence"}} ORDER BY rank DESC NULLS LAST, host, dep) AS mail_evidence
	FROM mev_links
	GROUP BY mkey, rule
{{- end}}
), decided_nk AS (
	SELECT nk.*, st.state, st.source, st.dom_evidence, {{if .Mail}}mev.mail_evidence{{else}}CAST(NULL AS VARCHAR) AS mail_evidence{{end}}, CASE rule{{range $i, $r := .Rules}} WHEN {{number $i}} THEN {{q $r.Action}}{{end}} END AS action, CASE rule{{range $i, $r := .Rules}} WHEN {{number $i}} THEN {{q $r.Reason}}{{end}} END AS reason
	FROM nk LEFT JOIN st ON st.st_id = nk.st_id
	{{- if .Mail}}
	LEFT JOIN (SELECT mkey AS mev_key, rule AS mev_rule, mail_evidence FROM mev) mev ON mev.mev_key = nk.{{if .Mail.StID}}st_id{{else}}domain{{end}} AND mev.mev_rule = nk.rule{{end}}
)
SELECT email_id, user_id, email, verified, "primary", created, verified_at, domain,
       regexp_extract(domain, '[^.]+$') AS tld, invalid_reason, state, source, action, reason,
       CASE WHEN mail_evidence IS NOT NULL THEN mail_evidence || '; domain ' || coalesce(dom_evidence, '?')
            WHEN reason = {{q .Reregistered}} THEN dom_evidence || ' first seen ' || {{day "first_seen"}}
            ELSE dom_evidence END AS evidence,
       first_seen
FROM decided_nk
