-- anomalies: daily spend per team, feature, provider and model, scored against its own
-- history with its weekly pattern taken out (season 7). score is anomaly_score (robust
-- z-score against the previous 28 days of the same scope; NULL before 14 days) and shift
-- is level_shift (CUSUM evidence of a sustained move up or down). A day is flagged as an
-- anomaly when |score| >= 5 and as a level shift when |shift| >= 8 (thresholds measured
-- on testdata/anomaly, see BENCHMARKS.md). Days without spend are not rows (no zero
-- filling).
WITH daily AS (
  SELECT 'team' AS scope, COALESCE(team, '(unattributed)') AS scope_value,
         date_trunc('day', ts) AS day, CAST(sum(list_cost) AS DOUBLE) AS spend
  FROM spend GROUP BY 1, 2, 3
  UNION ALL
  SELECT 'feature' AS scope, COALESCE(feature, '(unattributed)') AS scope_value,
         date_trunc('day', ts) AS day, CAST(sum(list_cost) AS DOUBLE) AS spend
  FROM spend GROUP BY 1, 2, 3
  UNION ALL
  SELECT 'provider' AS scope, provider AS scope_value,
         date_trunc('day', ts) AS day, CAST(sum(list_cost) AS DOUBLE) AS spend
  FROM spend GROUP BY 1, 2, 3
  UNION ALL
  SELECT 'model' AS scope, provider || '/' || COALESCE(resolved_model, model) AS scope_value,
         date_trunc('day', ts) AS day, CAST(sum(list_cost) AS DOUBLE) AS spend
  FROM spend GROUP BY 1, 2, 3
),
scored AS (
  SELECT scope, scope_value, day, spend,
    avg(spend) OVER (PARTITION BY scope, scope_value ORDER BY day
                     ROWS BETWEEN 28 PRECEDING AND 1 PRECEDING) AS baseline,
    anomaly_score(spend, 7) OVER (PARTITION BY scope, scope_value ORDER BY day) AS score,
    level_shift(spend, 7) OVER (PARTITION BY scope, scope_value ORDER BY day) AS shift
  FROM daily
)
SELECT scope, scope_value, day, spend, baseline, score, shift,
  COALESCE(abs(score) >= 5, false) AS is_anomaly,
  COALESCE(abs(shift) >= 8, false) AS is_level_shift
FROM scored
