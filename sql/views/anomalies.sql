-- anomalies: daily spend per team and per feature, scored against the previous 28 days.
-- Interim score (until the forecasting issue adds anomaly_score): z-score of the day's cost
-- against the mean and standard deviation of the 28 preceding days; NULL with fewer than
-- 7 preceding days. A day is flagged when |score| >= 4.
WITH daily AS (
  SELECT 'team' AS scope, COALESCE(team, '(unattributed)') AS scope_value,
         date_trunc('day', ts) AS day, CAST(sum(list_cost) AS DOUBLE) AS spend
  FROM spend GROUP BY 1, 2, 3
  UNION ALL
  SELECT 'feature' AS scope, COALESCE(feature, '(unattributed)') AS scope_value,
         date_trunc('day', ts) AS day, CAST(sum(list_cost) AS DOUBLE) AS spend
  FROM spend GROUP BY 1, 2, 3
),
scored AS (
  SELECT scope, scope_value, day, spend,
    avg(spend) OVER w AS baseline,
    stddev_samp(spend) OVER w AS spread,
    count(spend) OVER w AS history_days
  FROM daily
  WINDOW w AS (PARTITION BY scope, scope_value ORDER BY day ROWS BETWEEN 28 PRECEDING AND 1 PRECEDING)
)
SELECT scope, scope_value, day, spend, baseline,
  CASE WHEN history_days < 7 THEN NULL
       ELSE (spend - baseline) / GREATEST(spread, abs(baseline) * 0.01, 0.000001) END AS score,
  COALESCE(history_days >= 7
    AND abs((spend - baseline) / GREATEST(spread, abs(baseline) * 0.01, 0.000001)) >= 4, false) AS is_anomaly
FROM scored
