-- api_key_findings: what needs doing about API keys, one row per key and finding:
-- 'rotation_due' (rotation_days elapsed), 'no_owner' (an active key with no team),
-- 'environment_mismatch' (used in the last 30 days from an environment other than the
-- key's own), 'over_budget' (this UTC month's spend above monthly_budget) and
-- 'unregistered' (usage in the last 30 days from a key not in api_keys).
SELECT api_key_id, 'rotation_due' AS finding, team, environment,
  CAST(NULL AS DECIMAL(38, 12)) AS spend,
  'due on ' || CAST(due_on AS VARCHAR) || ', ' || CAST(days_overdue AS VARCHAR) || ' days ago'
    AS detail
FROM keys_due_for_rotation
UNION ALL
SELECT api_key_id, 'no_owner', team, environment, CAST(NULL AS DECIMAL(38, 12)),
  'active key with no owner team'
FROM api_keys WHERE status = 'active' AND team IS NULL
UNION ALL
SELECT k.api_key_id, 'environment_mismatch', k.team, k.environment, sum(s.effective_cost),
  'registered for ' || k.environment || ', used from ' || s.environment
FROM api_keys k JOIN spend s ON s.api_key_id = k.api_key_id
WHERE k.environment IS NOT NULL AND s.environment IS NOT NULL
  AND s.environment <> k.environment
  AND s.ts >= now() - INTERVAL '30 days'
GROUP BY k.api_key_id, k.team, k.environment, s.environment
UNION ALL
SELECT api_key_id, 'over_budget', owner_team, key_environment, spend,
  'spent ' || CAST(round(CAST(spend AS DOUBLE), 2) AS VARCHAR) || ' of a monthly budget of '
    || CAST(round(CAST(monthly_budget AS DOUBLE), 2) AS VARCHAR)
FROM api_key_spend
WHERE over_budget AND month = date_trunc('month', now())
UNION ALL
SELECT s.api_key_id, 'unregistered', CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR),
  sum(s.effective_cost), 'used in the last 30 days, not in api_keys'
FROM spend s LEFT JOIN api_keys k ON k.api_key_id = s.api_key_id
WHERE s.api_key_id IS NOT NULL AND k.api_key_id IS NULL AND s.ts >= now() - INTERVAL '30 days'
GROUP BY s.api_key_id
