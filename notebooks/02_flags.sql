-- notebook: Flags by reason and TLD
-- about: Which rule flagged addresses each night, and on which top-level
--   domains: the TLDs whose registries release names fastest show up first.

-- title: Flagged per night, by reason
-- about: Verified addresses proposed for un-verification each night (view
--   daily_flags), stacked by the changeset reason: domain_redemption,
--   domain_pending_delete and domain_available follow a lapse,
--   domain_reregistered is a resurrection, mx_ and ns_ the mail path.
-- chart: bar x=date y=flagged series=reason
SELECT date, reason, sum(flagged)::BIGINT AS flagged
FROM daily_flags
GROUP BY ALL
ORDER BY date, reason;

-- title: Flagged per night, by TLD
-- about: The same addresses stacked by top-level domain: the eight TLDs with
--   the most flags over all nights, the rest as "other".
-- chart: bar x=date y=flagged series=tld
WITH top AS (
    SELECT coalesce(tld, '?') AS tld FROM daily_flags
    GROUP BY ALL ORDER BY sum(flagged) DESC, tld LIMIT 8
)
SELECT f.date,
       CASE WHEN coalesce(f.tld, '?') IN (SELECT tld FROM top) THEN '.' || coalesce(f.tld, '?') ELSE 'other' END AS tld,
       sum(f.flagged)::BIGINT AS flagged
FROM daily_flags f
GROUP BY ALL
ORDER BY f.date, tld;

-- title: The TLDs that lapse most
-- about: Flagged addresses per TLD over all nights, with the number of
--   nights each TLD had a flag (top 25).
-- chart: bar x=tld y=flagged horizontal
SELECT '.' || coalesce(tld, '?') AS tld, sum(flagged)::BIGINT AS flagged, count(DISTINCT date) AS nights
FROM daily_flags
GROUP BY ALL
ORDER BY flagged DESC, tld
LIMIT 25;

-- title: On watch per night, by reason
-- about: Addresses lapse watches but does not un-verify yet (expiring, grace,
--   a decisive state awaiting corroboration, a re-verification awaiting a
--   lookup): what may be flagged in the nights to come.
-- chart: bar x=date y=addresses series=reason
SELECT date, reason, count(*) AS addresses
FROM email_decisions
WHERE action = 'watch' AND verified
GROUP BY ALL
ORDER BY date, reason;
