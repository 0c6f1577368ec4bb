-- notebook: Flags by reason and TLD
-- about: Which rule flagged addresses each night, the address's own domain
--   or its mail path (an MX host's or name server's domain) apart, and on
--   which top-level domains: the TLDs whose registries release names fastest
--   show up first.

-- title: Flagged per night, domain or mail path
-- about: Verified addresses proposed for un-verification each night (view
--   daily_flags), by kind: domain when the address's own domain lapsed or
--   was re-registered, mail_path when its domain is healthy but the
--   registrable domain of one of its MX hosts or name servers did (reasons
--   mx_domain_… and ns_domain_…).
-- chart: bar x=date y=flagged series=kind
SELECT date,
       CASE WHEN starts_with(reason, 'mx_domain_') OR starts_with(reason, 'ns_domain_') THEN 'mail_path' ELSE 'domain' END AS kind,
       sum(flagged)::BIGINT AS flagged
FROM daily_flags
GROUP BY ALL
ORDER BY date, kind;

-- title: Domain flags per night, by reason
-- about: The addresses flagged for their own domain, stacked by the
--   changeset reason: domain_redemption, domain_pending_delete and
--   domain_available follow a lapse, domain_reregistered is a resurrection.
-- chart: bar x=date y=flagged series=reason
SELECT date, reason, sum(flagged)::BIGINT AS flagged
FROM daily_flags
WHERE NOT (starts_with(reason, 'mx_domain_') OR starts_with(reason, 'ns_domain_'))
GROUP BY ALL
ORDER BY date, reason;

-- title: Mail-path flags per night, by reason
-- about: The addresses flagged for their mail path (MX or name-server domain
--   lapsed): their own domain is healthy, the registrable domain of an MX
--   host (mx_domain_…) or a name server (ns_domain_…) lapsed or was
--   re-registered; `lapse review` lists those dependency domains.
-- chart: bar x=date y=flagged series=reason
SELECT date, reason, sum(flagged)::BIGINT AS flagged
FROM daily_flags
WHERE starts_with(reason, 'mx_domain_') OR starts_with(reason, 'ns_domain_')
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
--   lookup): what may be flagged in the nights to come. Kind mail_path is a
--   watched MX or name-server domain (mx_domain_watch, ns_domain_watch).
-- chart: bar x=date y=addresses series=reason
SELECT date,
       CASE WHEN starts_with(reason, 'mx_domain_') OR starts_with(reason, 'ns_domain_') THEN 'mail_path' ELSE 'domain' END AS kind,
       reason, count(*) AS addresses
FROM email_decisions
WHERE action = 'watch' AND verified
GROUP BY ALL
ORDER BY date, kind, reason;
