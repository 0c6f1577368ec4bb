-- Lookup cost: provider requests per night by outcome, and how many
-- lookups each flagged address cost.
SELECT date, provider, outcome, lookups
FROM lookup_cost
ORDER BY date, provider, outcome;

SELECT l.date,
       sum(l.lookups) AS lookups,
       coalesce(max(f.flagged), 0) AS flagged,
       round(sum(l.lookups) / nullif(max(f.flagged), 0), 1) AS lookups_per_flag
FROM lookup_cost l
LEFT JOIN (SELECT date, sum(flagged) AS flagged FROM daily_flags GROUP BY date) f USING (date)
GROUP BY l.date
ORDER BY l.date;
