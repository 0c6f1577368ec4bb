-- notebook: Nightly overview
-- about: What each night saw and did: addresses and domains in the snapshot,
--   provider lookups, addresses flagged, and the running total un-verified.

-- title: {unverified} addresses un-verified since {since}
-- about: Verified addresses lapse proposed for un-verification in a changeset
--   the safety brake let through (view cumulative_unverified; blocked nights are
--   left out), counted once each, since the first night in the database.
-- chart: headline value=unverified
SELECT coalesce((SELECT max(cumulative) FROM cumulative_unverified), 0) AS unverified,
       strftime(min(date), '%Y-%m-%d') AS since,
       strftime(max(date), '%Y-%m-%d') AS last_night,
       count(DISTINCT date) AS nights
FROM nightly_metrics;

-- title: {applied} un-verified in the account database
-- about: What `lapse apply` changed (table applied_changes): addresses
--   un-verified, how many of those were reverted, and how many their owners
--   verified again afterwards (table reverifications).
-- chart: headline value=applied
SELECT (SELECT count(*) FROM applied_changes) AS applied,
       (SELECT count(*) FROM applied_changes WHERE reverted_at IS NOT NULL) AS reverted,
       (SELECT count(*) FROM reverifications) AS reverified_by_owner,
       (SELECT count(DISTINCT date) FROM applied_changes) AS changesets_applied;

-- title: Addresses and domains per night
-- about: Verified addresses in each night's snapshot and their distinct
--   registrable domains (nightly_metrics addresses_verified and domains): a
--   sudden drop means a partial export, a jump a new source.
-- chart: line x=date y=addresses,domains
SELECT date,
       max(value) FILTER (WHERE metric = 'addresses_verified')::BIGINT AS addresses,
       max(value) FILTER (WHERE metric = 'domains')::BIGINT AS domains
FROM nightly_metrics
GROUP BY date
ORDER BY date;

-- title: Provider lookups per night
-- about: Requests to Domainr, Fastly, RDAP and WHOIS each night (every
--   provider asked counts), beside the domains the cache answered without one.
-- chart: line x=date y=lookups,cache_hits
SELECT date,
       coalesce(sum(value) FILTER (WHERE metric = 'lookups'), 0)::BIGINT AS lookups,
       coalesce(max(value) FILTER (WHERE metric = 'cache_hits'), 0)::BIGINT AS cache_hits
FROM nightly_metrics
GROUP BY date
ORDER BY date;

-- title: Flagged per night
-- about: Verified addresses each night's changeset proposed to un-verify (view
--   daily_flags), blocked nights included; the next chart counts each address once.
-- chart: bar x=date y=flagged
SELECT n.date, coalesce(f.flagged, 0) AS flagged
FROM (SELECT DISTINCT date FROM nightly_metrics) n
LEFT JOIN (SELECT date, sum(flagged)::BIGINT AS flagged FROM daily_flags GROUP BY date) f USING (date)
ORDER BY n.date;

-- title: Cumulative un-verified
-- about: The running total of the headline: each address counted on the first
--   night a changeset the brake let through proposed it.
-- chart: line x=date y=cumulative
SELECT n.date,
       coalesce(c.new_unverified, 0) AS new_unverified,
       (SELECT coalesce(max(cumulative), 0) FROM cumulative_unverified u WHERE u.date <= n.date) AS cumulative
FROM (SELECT DISTINCT date FROM nightly_metrics) n
LEFT JOIN cumulative_unverified c USING (date)
ORDER BY n.date;

-- title: The nights, in figures
-- about: One row per night: the snapshot, the plan, the lookups and the
--   changeset's status (proposed, or blocked by the safety brake).
-- chart: table
SELECT m.date,
       max(m.value) FILTER (WHERE m.metric = 'addresses_verified')::BIGINT AS addresses,
       max(m.value) FILTER (WHERE m.metric = 'domains')::BIGINT AS domains,
       max(m.value) FILTER (WHERE m.metric = 'domains_planned')::BIGINT AS planned,
       max(m.value) FILTER (WHERE m.metric = 'domains_deferred')::BIGINT AS deferred,
       coalesce(sum(m.value) FILTER (WHERE m.metric = 'lookups'), 0)::BIGINT AS lookups,
       max(m.value) FILTER (WHERE m.metric = 'cache_hits')::BIGINT AS cache_hits,
       max(m.value) FILTER (WHERE m.metric = 'flagged')::BIGINT AS flagged,
       coalesce(max(m.value) FILTER (WHERE m.metric = 'decisions' AND m.key = 'watch'), 0)::BIGINT AS watch,
       max(c.status) AS changeset
FROM nightly_metrics m
LEFT JOIN changesets c USING (date)
GROUP BY m.date
ORDER BY m.date DESC;
