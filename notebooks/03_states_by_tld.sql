-- notebook: Domain states by TLD
-- about: Where the domains lapse knows stand, by top-level domain, and how
--   that changed night by night. A domain counts in the state of its latest
--   lookup (table domain_observations): the cache re-checks a healthy domain
--   every few weeks and a lapsing one every night.

-- title: Where domains stand now, by TLD
-- about: Every domain looked up at least once, in the state of its latest
--   lookup, for the twelve TLDs with the most domains (the rest as "other").
-- chart: bar x=tld y=domains series=state horizontal
WITH latest AS (
    SELECT domain, coalesce(tld, '?') AS tld, state
    FROM domain_observations
    QUALIFY row_number() OVER (PARTITION BY domain ORDER BY date DESC, checked_at DESC NULLS LAST) = 1
), top AS (
    SELECT tld FROM latest GROUP BY tld ORDER BY count(*) DESC, tld LIMIT 12
), grouped AS (
    SELECT CASE WHEN tld IN (SELECT tld FROM top) THEN '.' || tld ELSE 'other' END AS tld,
           coalesce(state, 'unknown') AS state, count(*) AS domains
    FROM latest
    GROUP BY ALL
)
SELECT tld, state, domains
FROM grouped
ORDER BY tld = 'other', sum(domains) OVER (PARTITION BY tld) DESC, tld, state;

-- title: Domains by state, night by night
-- about: The same count on every night: each domain in the state of its
--   latest lookup up to that night. Registered domains are left out so the
--   lapsing ones show: expiring, grace, redemption, pending_delete, available.
-- chart: bar x=date y=domains series=state
WITH obs AS (
    SELECT domain, date, coalesce(state, 'unknown') AS state
    FROM domain_observations
    QUALIFY row_number() OVER (PARTITION BY domain, date ORDER BY checked_at DESC NULLS LAST) = 1
), moves AS (
    SELECT domain, date, state, lag(state) OVER (PARTITION BY domain ORDER BY date) AS prev FROM obs
), deltas AS (
    SELECT date, state, 1 AS d FROM moves WHERE prev IS DISTINCT FROM state
    UNION ALL
    SELECT date, prev, -1 FROM moves WHERE prev IS NOT NULL AND prev <> state
), nights AS (
    SELECT DISTINCT date FROM nightly_metrics
), states AS (
    SELECT DISTINCT state FROM obs WHERE state <> 'registered'
), grid AS (
    SELECT n.date, s.state, coalesce(sum(d.d), 0) AS delta
    FROM nights n CROSS JOIN states s
    LEFT JOIN deltas d ON d.date = n.date AND d.state = s.state
    GROUP BY ALL
)
SELECT date, state, sum(delta) OVER (PARTITION BY state ORDER BY date)::BIGINT AS domains
FROM grid
ORDER BY date, state;

-- title: Share of domains lapsing, by TLD
-- about: Per night, the share of each TLD's known domains that are in a lapse
--   phase (expiring, grace, redemption, pending_delete or available), for the
--   six TLDs with the most domains.
-- chart: line x=date y=lapsing_pct series=tld unit=%
WITH obs AS (
    SELECT domain, date, coalesce(tld, '?') AS tld,
           coalesce(state IN ('expiring', 'grace', 'redemption', 'pending_delete', 'available'), false) AS lapsing
    FROM domain_observations
    QUALIFY row_number() OVER (PARTITION BY domain, date ORDER BY checked_at DESC NULLS LAST) = 1
), top AS (
    SELECT tld FROM obs GROUP BY tld ORDER BY count(DISTINCT domain) DESC, tld LIMIT 6
), moves AS (
    SELECT domain, date, tld, lapsing,
           lag(lapsing) OVER (PARTITION BY domain ORDER BY date) AS prev
    FROM obs WHERE tld IN (SELECT tld FROM top)
), deltas AS (
    SELECT date, tld,
           CASE WHEN prev IS NULL THEN 1 ELSE 0 END AS known,
           CASE WHEN prev IS NULL THEN lapsing::INT ELSE lapsing::INT - prev::INT END AS lapsing
    FROM moves
), grid AS (
    SELECT n.date, t.tld, coalesce(sum(d.known), 0) AS known, coalesce(sum(d.lapsing), 0) AS lapsing
    FROM (SELECT DISTINCT date FROM nightly_metrics) n CROSS JOIN top t
    LEFT JOIN deltas d ON d.date = n.date AND d.tld = t.tld
    GROUP BY ALL
), running AS (
    SELECT date, tld,
           sum(known) OVER (PARTITION BY tld ORDER BY date) AS known,
           sum(lapsing) OVER (PARTITION BY tld ORDER BY date) AS lapsing
    FROM grid
)
SELECT date, '.' || tld AS tld, known::BIGINT AS domains, lapsing::BIGINT AS lapsing,
       round(100.0 * lapsing / nullif(known, 0), 2) AS lapsing_pct
FROM running
ORDER BY date, tld;

-- title: States by TLD, in figures
-- about: Per TLD, the domains in each state of their latest lookup and the
--   share in a decisive state (available, pending_delete, redemption).
-- chart: table
WITH latest AS (
    SELECT domain, coalesce(tld, '?') AS tld, coalesce(state, 'unknown') AS state
    FROM domain_observations
    QUALIFY row_number() OVER (PARTITION BY domain ORDER BY date DESC, checked_at DESC NULLS LAST) = 1
)
SELECT '.' || tld AS tld, count(*) AS domains,
       count(*) FILTER (WHERE state = 'registered') AS registered,
       count(*) FILTER (WHERE state = 'expiring') AS expiring,
       count(*) FILTER (WHERE state = 'grace') AS grace,
       count(*) FILTER (WHERE state = 'redemption') AS redemption,
       count(*) FILTER (WHERE state = 'pending_delete') AS pending_delete,
       count(*) FILTER (WHERE state = 'available') AS available,
       count(*) FILTER (WHERE state NOT IN ('registered', 'expiring', 'grace', 'redemption', 'pending_delete', 'available')) AS other,
       round(100.0 * count(*) FILTER (WHERE state IN ('available', 'pending_delete', 'redemption')) / count(*), 2) AS decisive_pct
FROM latest
GROUP BY tld
ORDER BY domains DESC, tld;
