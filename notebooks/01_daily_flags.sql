-- Daily flags: verified addresses proposed for un-verification each night,
-- by reason, over the last 90 nights.
SELECT date, reason, sum(flagged) AS flagged
FROM daily_flags
WHERE date >= (SELECT max(date) FROM daily_flags) - INTERVAL 90 DAY
GROUP BY ALL
ORDER BY date, reason;

-- The TLDs that lapse most: flagged addresses per TLD over all nights.
SELECT tld, sum(flagged) AS flagged, count(DISTINCT date) AS nights
FROM daily_flags
GROUP BY ALL
ORDER BY flagged DESC, tld
LIMIT 25;
