-- 002: review, approve, apply and revert. Ids and domains only: the
-- addresses stay in the changeset folder and the account database.

-- One row per approval of a changeset (a re-approval of a changed
-- manifest adds a row; apply takes the one pinning the files on disk).
CREATE TABLE approvals (
    date            DATE NOT NULL,
    manifest_sha256 VARCHAR NOT NULL,
    status          VARCHAR NOT NULL,  -- the changeset's: proposed | blocked
    flagged         BIGINT NOT NULL,
    approved_by     VARCHAR NOT NULL,
    note            VARCHAR,
    override_brake  BOOLEAN NOT NULL,
    approved_at     TIMESTAMPTZ NOT NULL
);

-- One row per `lapse apply` or `lapse revert` that finished (dry runs
-- excluded): what it changed and skipped.
CREATE TABLE applies (
    date            DATE NOT NULL,
    manifest_sha256 VARCHAR NOT NULL,
    action          VARCHAR NOT NULL,  -- apply | revert
    changed         BIGINT NOT NULL,
    skipped         BIGINT NOT NULL,
    applied_by      VARCHAR,
    started_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ NOT NULL
);

-- One row per address an applied changeset un-verified; reverted_at is set
-- when revert restored it. The nightly run reads this to tell an owner's
-- re-verification from a first verification.
CREATE TABLE applied_changes (
    date            DATE NOT NULL,     -- the changeset's night
    manifest_sha256 VARCHAR NOT NULL,
    email_id        BIGINT NOT NULL,
    user_id         VARCHAR,
    domain          VARCHAR,
    reason          VARCHAR NOT NULL,
    applied_at      TIMESTAMPTZ NOT NULL,
    reverted_at     TIMESTAMPTZ
);

-- One row per address found verified again by its owner after an applied
-- changeset un-verified it (and no revert did).
CREATE TABLE reverifications (
    date          DATE NOT NULL,       -- the night it was seen verified again
    email_id      BIGINT NOT NULL,
    user_id       VARCHAR,
    domain        VARCHAR,
    unverified_on DATE NOT NULL,       -- the night of the changeset that un-verified it
    reverified_at TIMESTAMPTZ NOT NULL -- verified_at when the source has it, else the night's start
);

-- reverified_by_night: re-verifications per night, and how many of them
-- were proposed again (a re-flag) that same night or later.
CREATE VIEW reverified_by_night AS
SELECT r.date, count(*) AS reverified,
       count(*) FILTER (WHERE EXISTS (
           SELECT 1 FROM email_decisions d
           WHERE d.email_id = r.email_id AND d.date >= r.date AND d.action = 'unverify')) AS reflagged
FROM reverifications r
GROUP BY r.date;

-- applied_by_night: addresses un-verified in the account database per
-- changeset night, and how many were reverted since.
CREATE VIEW applied_by_night AS
SELECT date, count(*) AS unverified, count(reverted_at) AS reverted
FROM applied_changes
GROUP BY date;
