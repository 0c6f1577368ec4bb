-- 001: the lifecycle database. Raw email addresses never enter it: only
-- email ids, user ids and domains.

-- One row per `lapse run` invocation of a night. A forced re-run marks the
-- night's earlier runs superseded so resume logic ignores them.
CREATE TABLE runs (
    run_id      BIGINT NOT NULL,
    date        DATE NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    outcome     VARCHAR NOT NULL,  -- running | ok | failed | blocked
    error       VARCHAR,
    superseded  BOOLEAN NOT NULL DEFAULT false
);
CREATE SEQUENCE run_ids START 1;

-- One row per stage of a run.
CREATE TABLE stages (
    run_id      BIGINT NOT NULL,
    stage       VARCHAR NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    rows_in     BIGINT,
    rows_out    BIGINT,
    outcome     VARCHAR NOT NULL,  -- running | ok | failed | blocked
    error       VARCHAR
);

-- History: every lookup of a night (observations/date=D/domains.parquet).
CREATE TABLE domain_observations (
    date          DATE NOT NULL,
    domain        VARCHAR NOT NULL,
    tld           VARCHAR,
    state         VARCHAR,
    source        VARCHAR,
    statuses      VARCHAR[],
    registered_at TIMESTAMPTZ,
    expires_at    TIMESTAMPTZ,
    checked_at    TIMESTAMPTZ,
    corroborated  BOOLEAN,
    error         VARCHAR,
    evidence_json VARCHAR
);

-- The night's decisions other than keep (keep is counted in
-- nightly_metrics): ids and domains only, never addresses.
CREATE TABLE email_decisions (
    date     DATE NOT NULL,
    email_id BIGINT NOT NULL,
    user_id  VARCHAR,
    verified BOOLEAN,
    domain   VARCHAR,
    tld      VARCHAR,
    state    VARCHAR,
    action   VARCHAR NOT NULL,
    reason   VARCHAR NOT NULL,
    policy   VARCHAR NOT NULL
);

-- Nightly figures in long form: metric, up to two labels, value.
CREATE TABLE nightly_metrics (
    date   DATE NOT NULL,
    metric VARCHAR NOT NULL,
    key    VARCHAR NOT NULL DEFAULT '',
    subkey VARCHAR NOT NULL DEFAULT '',
    value  DOUBLE NOT NULL
);

-- One row per night's changeset.
CREATE TABLE changesets (
    date            DATE NOT NULL,
    status          VARCHAR NOT NULL,  -- proposed | blocked
    policy          VARCHAR NOT NULL,
    flagged         BIGINT NOT NULL,
    verified        BIGINT NOT NULL,
    block_reasons   VARCHAR,
    dir             VARCHAR,
    manifest_sha256 VARCHAR,
    recorded_at     TIMESTAMPTZ NOT NULL
);

-- daily_flags: verified addresses proposed for un-verification per night,
-- by reason and TLD.
CREATE VIEW daily_flags AS
SELECT date, reason, tld, count(*) AS flagged
FROM email_decisions
WHERE action = 'unverify' AND verified
GROUP BY ALL;

-- cumulative_unverified: addresses first proposed per night (blocked
-- changesets excluded) and the running total ("1,800 since June").
CREATE VIEW cumulative_unverified AS
WITH firsts AS (
    SELECT min(d.date) AS date, d.email_id
    FROM email_decisions d
    LEFT JOIN changesets c USING (date)
    WHERE d.action = 'unverify' AND d.verified AND coalesce(c.status, 'proposed') <> 'blocked'
    GROUP BY d.email_id
), nights AS (
    SELECT date, count(*) AS new_unverified FROM firsts GROUP BY date
)
SELECT date, new_unverified,
       sum(new_unverified) OVER (ORDER BY date ROWS UNBOUNDED PRECEDING)::BIGINT AS cumulative
FROM nights;

-- states_by_tld: domains looked up per night by TLD and state.
CREATE VIEW states_by_tld AS
SELECT date, tld, state, count(*) AS domains
FROM domain_observations
GROUP BY ALL;

-- lookup_cost: lookups per night by provider and outcome (ok | error).
CREATE VIEW lookup_cost AS
SELECT date, key AS provider, subkey AS outcome, value::BIGINT AS lookups
FROM nightly_metrics
WHERE metric = 'lookups';

-- detection_lead_time: per domain, the first night an address on it was
-- proposed for un-verification and the first night the domain was seen
-- available (registrable by others); lead_days > 0 means lapse acted first.
CREATE VIEW detection_lead_time AS
WITH flagged AS (
    SELECT domain, min(date) AS first_flagged
    FROM email_decisions WHERE action = 'unverify' AND domain IS NOT NULL
    GROUP BY domain
), avail AS (
    SELECT domain, min(date) AS first_available
    FROM domain_observations WHERE state = 'available'
    GROUP BY domain
)
SELECT f.domain, f.first_flagged, a.first_available,
       date_diff('day', f.first_flagged, a.first_available) AS lead_days
FROM flagged f LEFT JOIN avail a USING (domain);
