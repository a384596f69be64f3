-- unattributed_spend: cost per UTC day that has no team or no feature, by key and project,
-- with the day's attribution coverage (share of cost that has both team and feature).
WITH daily AS (
  SELECT date_trunc('day', ts) AS day,
         sum(list_cost) AS day_cost,
         sum(CASE WHEN team IS NOT NULL AND feature IS NOT NULL THEN list_cost ELSE 0 END) AS attributed_cost
  FROM spend GROUP BY 1
)
SELECT
  date_trunc('day', s.ts) AS day, s.provider, s.api_key_id, s.project,
  s.team IS NULL AS missing_team, s.feature IS NULL AS missing_feature,
  sum(s.requests) AS requests,
  sum(s.list_cost) AS list_cost,
  CAST(max(d.attributed_cost) / NULLIF(max(d.day_cost), 0) AS DOUBLE) AS day_coverage
FROM spend s
JOIN daily d ON d.day = date_trunc('day', s.ts)
WHERE s.team IS NULL OR s.feature IS NULL
GROUP BY 1, 2, 3, 4, 5, 6
