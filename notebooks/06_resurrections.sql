-- notebook: Resurrections, re-verifications
-- about: Domains that lapsed and were registered again by someone else while
--   an address on them was still verified (the ctx takeover), what the account
--   database applied, and owners who verified an un-verified address again.

-- title: {caught} addresses on resurrected domains caught
-- about: Verified addresses flagged because their domain, or the domain of
--   its mail or name servers, was registered again after the address was
--   first seen (reasons domain_reregistered, mx_domain_reregistered,
--   ns_domain_reregistered), counted once each.
-- chart: headline value=caught
SELECT count(DISTINCT email_id) AS caught,
       count(DISTINCT domain) AS domains,
       strftime(min(date), '%Y-%m-%d') AS first_night,
       strftime(max(date), '%Y-%m-%d') AS last_night
FROM email_decisions
WHERE action = 'unverify' AND verified AND reason LIKE '%reregistered';

-- title: Resurrections caught per night
-- about: Addresses flagged each night for a re-registration, by reason.
-- chart: bar x=date y=flagged series=reason
SELECT date, reason, count(*) AS flagged
FROM email_decisions
WHERE action = 'unverify' AND verified AND reason LIKE '%reregistered'
GROUP BY ALL
ORDER BY date, reason;

-- title: Resurrected domains
-- about: Each domain flagged for a re-registration: the first night, the
--   addresses and users on it, and the registration date its latest lookup
--   reported (the new holder's).
-- chart: table
WITH flagged AS (
    SELECT domain, min(date) AS first_flagged, count(DISTINCT email_id) AS addresses,
           count(DISTINCT user_id) AS users, string_agg(DISTINCT reason, ', ') AS reasons
    FROM email_decisions
    WHERE action = 'unverify' AND verified AND reason LIKE '%reregistered'
    GROUP BY domain
), latest AS (
    SELECT domain, state, registered_at
    FROM domain_observations
    WHERE domain IN (SELECT domain FROM flagged)
    QUALIFY row_number() OVER (PARTITION BY domain ORDER BY date DESC, checked_at DESC NULLS LAST) = 1
)
SELECT f.domain, f.first_flagged, f.addresses, f.users, f.reasons,
       l.state AS latest_state, CAST(l.registered_at AS DATE) AS registered_on
FROM flagged f LEFT JOIN latest l USING (domain)
ORDER BY f.first_flagged DESC, f.addresses DESC, f.domain
LIMIT 100;

-- title: Applied to the account database, per changeset night
-- about: Addresses `lapse apply` un-verified for each night's changeset (view
--   applied_by_night), and how many of them `lapse revert` restored since.
-- chart: bar x=date y=unverified,reverted
SELECT date, unverified, reverted
FROM applied_by_night
ORDER BY date;

-- title: Re-verified by their owners, per night
-- about: Addresses an applied changeset un-verified that a later snapshot
--   showed verified again (view reverified_by_night), and how many of those
--   lapse flagged again: with lapse's rule a re-verification is proof of
--   control, so re-flags need a fresh decisive lookup and should stay rare.
-- chart: bar x=date y=reverified,reflagged
SELECT date, reverified, reflagged
FROM reverified_by_night
ORDER BY date;

-- title: Re-verifications, in figures
-- about: Per domain, the re-verifications seen and of how many addresses, how
--   long after the un-verify (median days), and how many were flagged again
--   since (top 50).
-- chart: table
SELECT r.domain, count(*) AS reverifications, count(DISTINCT r.email_id) AS addresses,
       median(date_diff('day', r.unverified_on, CAST(r.reverified_at AS DATE))) AS median_days_unverified,
       count(*) FILTER (WHERE EXISTS (
           SELECT 1 FROM email_decisions d
           WHERE d.email_id = r.email_id AND d.date >= r.date AND d.action = 'unverify')) AS reflagged
FROM reverifications r
GROUP BY r.domain
ORDER BY reverifications DESC, r.domain
LIMIT 50;
