-- notebook: Lookup cost
-- about: What the nightly lookups cost, where the cache saved them, and how
--   that compares with asking about every address every night. Lookups are
--   provider requests (nightly_metrics "lookups", by provider and outcome: ok
--   or error); a cache hit is a domain of the snapshot not due tonight.

-- title: {lookups} lookups so far, {saved_pct}% fewer than one per address per night
-- about: All lookups so far against one lookup per verified address per night
--   (how a per-address job that asks every night would spend).
-- chart: headline value=lookups
SELECT coalesce(sum(value) FILTER (WHERE metric = 'lookups'), 0)::BIGINT AS lookups,
       coalesce(sum(value) FILTER (WHERE metric = 'addresses_verified'), 0)::BIGINT AS one_per_address,
       coalesce(sum(value) FILTER (WHERE metric = 'domains'), 0)::BIGINT AS one_per_domain,
       coalesce(round(100 - 100.0 * sum(value) FILTER (WHERE metric = 'lookups')
             / nullif(sum(value) FILTER (WHERE metric = 'addresses_verified'), 0), 1), 0) AS saved_pct
FROM nightly_metrics;

-- title: Lookups per night, by provider and outcome
-- about: Provider requests each night, stacked by provider and outcome; errors
--   (throttling, timeouts, resets) are asked again, never read as an answer.
-- chart: bar x=date y=lookups series=provider_outcome
SELECT date, provider || ' ' || outcome AS provider_outcome, lookups
FROM lookup_cost
ORDER BY date, provider_outcome;

-- title: Lookups against one per address per night
-- about: The night's lookups beside what one lookup per domain and one per
--   address of the snapshot would have cost (log scale: each gridline is ten
--   times the one below).
-- chart: line x=date y=lookups,one_per_domain,one_per_address scale=log
SELECT date,
       coalesce(sum(value) FILTER (WHERE metric = 'lookups'), 0)::BIGINT AS lookups,
       coalesce(max(value) FILTER (WHERE metric = 'domains'), 0)::BIGINT AS one_per_domain,
       coalesce(max(value) FILTER (WHERE metric = 'addresses_verified'), 0)::BIGINT AS one_per_address
FROM nightly_metrics
GROUP BY date
ORDER BY date;

-- title: Cache hit rate per night
-- about: The share of the snapshot's domains answered from the cache (not due
--   for a re-check), and each provider's share of failed requests.
-- chart: line x=date y=rate_pct series=measure unit=%
SELECT date, 'cache hits' AS measure,
       round(100.0 * max(value) FILTER (WHERE metric = 'cache_hits')
             / nullif(max(value) FILTER (WHERE metric = 'domains'), 0), 2) AS rate_pct
FROM nightly_metrics
GROUP BY date
UNION ALL
SELECT date, provider || ' errors' AS measure,
       round(100.0 * coalesce(sum(lookups) FILTER (WHERE outcome = 'error'), 0) / nullif(sum(lookups), 0), 2) AS rate_pct
FROM lookup_cost
GROUP BY ALL
ORDER BY date, measure;

-- title: Lookups by provider and outcome, in total
-- about: Every night added up: requests per provider and outcome, their share,
--   and the nights each provider was asked.
-- chart: table
SELECT provider, outcome, sum(lookups)::BIGINT AS lookups,
       round(100.0 * sum(lookups) / sum(sum(lookups)) OVER (), 2) AS share_pct,
       count(DISTINCT date) AS nights
FROM lookup_cost
GROUP BY ALL
ORDER BY lookups DESC, provider, outcome;
