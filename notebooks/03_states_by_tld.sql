-- Domain states by TLD over the last 30 nights of lookups: where lapse
-- finds expiring, redemption and available names.
SELECT tld, state, sum(domains) AS lookups
FROM states_by_tld
WHERE date >= (SELECT max(date) FROM states_by_tld) - INTERVAL 30 DAY
GROUP BY ALL
ORDER BY tld, lookups DESC;

-- Share of decisive answers per TLD (available, pending_delete, redemption).
SELECT tld,
       sum(domains) AS lookups,
       sum(domains) FILTER (WHERE state IN ('available', 'pending_delete', 'redemption')) AS decisive,
       round(100.0 * coalesce(decisive, 0) / sum(domains), 2) AS decisive_pct
FROM states_by_tld
GROUP BY ALL
ORDER BY lookups DESC, tld;
