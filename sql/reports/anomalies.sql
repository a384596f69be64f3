-- title: Spend anomalies of the period
-- Days whose spend the anomalies view flags (a robust score of at least 5 against the same
-- weekday's history, or a sustained level shift), per scope, with the spend and the usual
-- level for that day.

-- section: Flagged days
SELECT CAST(day AS DATE) AS day, scope, scope_value,
  round(spend, 2) AS spend_usd, round(baseline, 2) AS usual_usd,
  round(score, 1) AS score, round(shift, 1) AS shift,
  CASE WHEN is_anomaly AND is_level_shift THEN 'spike and level shift'
       WHEN is_anomaly THEN 'spike' ELSE 'level shift' END AS kind
FROM anomalies
WHERE (is_anomaly OR is_level_shift) AND day >= {{period_start}} AND day < {{period_end}}
ORDER BY day, scope, scope_value
