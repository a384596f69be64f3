-- api_key_spend: spend per API key and UTC month against the key's monthly_budget, with the
-- key's owner and environment (NULL for keys not registered in api_keys).
SELECT date_trunc('month', s.ts) AS month, s.api_key_id, s.provider,
  k.team AS owner_team, k.environment AS key_environment, k.status,
  sum(s.requests) AS requests,
  sum(s.effective_cost) AS spend,
  max(k.monthly_budget) AS monthly_budget,
  CAST(sum(s.effective_cost) AS DOUBLE) / NULLIF(CAST(max(k.monthly_budget) AS DOUBLE), 0)
    AS pct_of_budget,
  COALESCE(sum(s.effective_cost) > max(k.monthly_budget), false) AS over_budget
FROM spend s
LEFT JOIN api_keys k ON k.api_key_id = s.api_key_id
WHERE s.api_key_id IS NOT NULL
GROUP BY 1, 2, 3, 4, 5, 6
