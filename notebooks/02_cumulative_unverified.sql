-- Cumulative un-verified addresses ("1,800 since June"): new per night and
-- the running total, with blocked changesets left out.
SELECT date, new_unverified, cumulative
FROM cumulative_unverified
ORDER BY date;

-- Per month.
SELECT date_trunc('month', date) AS month, sum(new_unverified) AS unverified
FROM cumulative_unverified
GROUP BY ALL
ORDER BY month;
