-- 003: the mail path (issue 12). One row per link of each address domain
-- whose MX and NS records a night looked up (one row with NULL role for a
-- domain without a link outside itself): the address domain, the host and
-- the registrable domain it depends on. The dependency's state is in
-- domain_observations like any domain's.
CREATE TABLE mail_links (
    date             DATE NOT NULL,
    domain           VARCHAR NOT NULL,
    checked_at       TIMESTAMPTZ,
    mx_outcome       VARCHAR,
    ns_outcome       VARCHAR,
    null_mx          BOOLEAN,
    ns_from_referral BOOLEAN,
    role             VARCHAR,   -- mx | ns | NULL
    host             VARCHAR,
    dep              VARCHAR,
    pref             INTEGER,
    first_seen       TIMESTAMPTZ
);

-- Each address domain's latest links, with the latest observed state of
-- the domain each depends on.
CREATE VIEW mail_dependencies AS
WITH latest AS (
    SELECT * FROM mail_links
    QUALIFY date = max(date) OVER (PARTITION BY domain)
), dep_state AS (
    SELECT domain AS dep, state, source, checked_at AS dep_checked_at, registered_at, expires_at
    FROM domain_observations
    QUALIFY row_number() OVER (PARTITION BY domain ORDER BY date DESC, checked_at DESC) = 1
)
SELECT l.date, l.domain, l.role, l.host, l.dep, l.pref, l.first_seen, l.mx_outcome, l.ns_outcome,
       d.state AS dep_state, d.source AS dep_source, d.dep_checked_at, d.registered_at AS dep_registered_at,
       d.expires_at AS dep_expires_at
FROM latest l LEFT JOIN dep_state d USING (dep)
WHERE l.role IS NOT NULL;
