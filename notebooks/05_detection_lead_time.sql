-- Detection lead time: days between lapse flagging a domain's addresses
-- and the domain becoming available to anyone. Positive is good.
SELECT domain, first_flagged, first_available, lead_days
FROM detection_lead_time
ORDER BY lead_days NULLS LAST, domain;

SELECT count(*) AS domains,
       count(lead_days) AS reached_available,
       median(lead_days) AS median_lead_days,
       min(lead_days) AS min_lead_days,
       count(*) FILTER (WHERE lead_days < 0) AS flagged_too_late
FROM detection_lead_time;
