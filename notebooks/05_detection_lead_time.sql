-- notebook: Detection lead time
-- about: How many days before a domain became registrable by anyone lapse
--   first raised it (an address on it watched or flagged). The day a domain
--   became registrable is its first lookup in state available; its first alert
--   is the first watch or unverify decision on it since its last lookup as
--   plainly registered before that day. Positive is good: lapse was first.
--   A domain is looked up only while a verified address uses it, so one whose
--   addresses were all un-verified may never be seen registrable: it is then
--   not counted here.

-- title: Lead time, in days
-- about: Domains that became registrable, by the days between lapse's first
--   alert and that night (0: the same night; negative: after it).
-- chart: histogram x=lead_days y=domains unit=days
WITH registrable AS (
    SELECT domain, min(date) AS registrable_on
    FROM domain_observations WHERE state = 'available' GROUP BY domain
), last_ok AS (
    SELECT o.domain, max(o.date) AS last_registered
    FROM domain_observations o JOIN registrable r USING (domain)
    WHERE o.state = 'registered' AND o.date < r.registrable_on
    GROUP BY o.domain
), alerts AS (
    SELECT d.domain, min(d.date) AS first_alert
    FROM email_decisions d JOIN registrable r USING (domain) LEFT JOIN last_ok l USING (domain)
    WHERE d.action IN ('watch', 'unverify') AND d.date > coalesce(l.last_registered, DATE '1970-01-01')
    GROUP BY d.domain
)
SELECT date_diff('day', a.first_alert, r.registrable_on) AS lead_days, count(*) AS domains
FROM registrable r JOIN alerts a USING (domain)
GROUP BY ALL
ORDER BY lead_days;

-- title: Median lead time, by week
-- about: The median (and the shortest) lead time of the domains that became
--   registrable each week: a falling line means lapse is raising them later.
-- chart: line x=week y=median_lead_days,min_lead_days unit=days
WITH registrable AS (
    SELECT domain, min(date) AS registrable_on
    FROM domain_observations WHERE state = 'available' GROUP BY domain
), last_ok AS (
    SELECT o.domain, max(o.date) AS last_registered
    FROM domain_observations o JOIN registrable r USING (domain)
    WHERE o.state = 'registered' AND o.date < r.registrable_on
    GROUP BY o.domain
), alerts AS (
    SELECT d.domain, min(d.date) AS first_alert
    FROM email_decisions d JOIN registrable r USING (domain) LEFT JOIN last_ok l USING (domain)
    WHERE d.action IN ('watch', 'unverify') AND d.date > coalesce(l.last_registered, DATE '1970-01-01')
    GROUP BY d.domain
)
SELECT CAST(date_trunc('week', r.registrable_on) AS DATE) AS week,
       count(*) AS domains,
       median(date_diff('day', a.first_alert, r.registrable_on)) AS median_lead_days,
       min(date_diff('day', a.first_alert, r.registrable_on)) AS min_lead_days
FROM registrable r JOIN alerts a USING (domain)
GROUP BY ALL
ORDER BY week;

-- title: Lead time, in figures
-- about: Domains that became registrable; how many lapse had raised before
--   (positive lead), the same night, after, or never (no address watched or
--   flagged); and the median lead.
-- chart: table
WITH registrable AS (
    SELECT domain, min(date) AS registrable_on
    FROM domain_observations WHERE state = 'available' GROUP BY domain
), last_ok AS (
    SELECT o.domain, max(o.date) AS last_registered
    FROM domain_observations o JOIN registrable r USING (domain)
    WHERE o.state = 'registered' AND o.date < r.registrable_on
    GROUP BY o.domain
), alerts AS (
    SELECT d.domain, min(d.date) AS first_alert
    FROM email_decisions d JOIN registrable r USING (domain) LEFT JOIN last_ok l USING (domain)
    WHERE d.action IN ('watch', 'unverify') AND d.date > coalesce(l.last_registered, DATE '1970-01-01')
    GROUP BY d.domain
), leads AS (
    SELECT r.domain, date_diff('day', a.first_alert, r.registrable_on) AS lead_days
    FROM registrable r LEFT JOIN alerts a USING (domain)
)
SELECT count(*) AS registrable_domains,
       count(*) FILTER (WHERE lead_days > 0) AS raised_before,
       count(*) FILTER (WHERE lead_days = 0) AS same_night,
       count(*) FILTER (WHERE lead_days < 0) AS after,
       count(*) FILTER (WHERE lead_days IS NULL) AS never_raised,
       median(lead_days) AS median_lead_days,
       min(lead_days) AS min_lead_days,
       max(lead_days) AS max_lead_days
FROM leads;

-- title: The shortest lead times
-- about: The 25 domains lapse raised latest relative to the night they became
--   registrable (never raised first), with the first flag night (view
--   detection_lead_time counts from the first unverify).
-- chart: table
WITH registrable AS (
    SELECT domain, min(date) AS registrable_on
    FROM domain_observations WHERE state = 'available' GROUP BY domain
), last_ok AS (
    SELECT o.domain, max(o.date) AS last_registered
    FROM domain_observations o JOIN registrable r USING (domain)
    WHERE o.state = 'registered' AND o.date < r.registrable_on
    GROUP BY o.domain
), alerts AS (
    SELECT d.domain, min(d.date) AS first_alert,
           min(d.date) FILTER (WHERE d.action = 'unverify') AS first_flag
    FROM email_decisions d JOIN registrable r USING (domain) LEFT JOIN last_ok l USING (domain)
    WHERE d.action IN ('watch', 'unverify') AND d.date > coalesce(l.last_registered, DATE '1970-01-01')
    GROUP BY d.domain
)
SELECT r.domain, a.first_alert, a.first_flag, r.registrable_on,
       date_diff('day', a.first_alert, r.registrable_on) AS lead_days
FROM registrable r LEFT JOIN alerts a USING (domain)
ORDER BY lead_days NULLS FIRST, r.registrable_on DESC, r.domain
LIMIT 25;
