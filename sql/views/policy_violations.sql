-- policy_violations: usage that breaks a policy, per UTC day, policy, feature and model.
-- A policy applies to usage whose scope column equals scope_value (scope 'global' applies
-- to all) and, when environment is set, to that environment only. Violations: a model tier
-- above max_model_tier, a provider or model not in the allowed lists (comma-separated),
-- or max_tokens above max_output_tokens.
WITH applicable AS (
  SELECT p.policy_id, p.scope, p.scope_value, p.max_model_tier, p.allowed_providers,
         p.allowed_models, p.max_output_tokens, s.*, m.tier AS model_tier
  FROM policies p
  JOIN spend s
    ON (p.environment IS NULL OR s.environment = p.environment)
   AND CASE p.scope
         WHEN 'global' THEN true
         WHEN 'team' THEN s.team = p.scope_value
         WHEN 'feature' THEN s.feature = p.scope_value
         WHEN 'customer' THEN s.customer = p.scope_value
         WHEN 'environment' THEN s.environment = p.scope_value
         WHEN 'api_key' THEN s.api_key_id = p.scope_value
         WHEN 'project' THEN s.project = p.scope_value
         ELSE false
       END
  LEFT JOIN models m ON m.provider = s.provider AND m.model = s.model
),
violations AS (
  SELECT *, 'model_tier' AS violation FROM applicable
   WHERE max_model_tier IS NOT NULL AND model_tier > max_model_tier
  UNION ALL
  SELECT *, 'provider_not_allowed' AS violation FROM applicable
   WHERE allowed_providers IS NOT NULL
     AND strpos(',' || replace(allowed_providers, ' ', '') || ',', ',' || provider || ',') = 0
  UNION ALL
  SELECT *, 'model_not_allowed' AS violation FROM applicable
   WHERE allowed_models IS NOT NULL
     AND strpos(',' || replace(allowed_models, ' ', '') || ',', ',' || model || ',') = 0
  UNION ALL
  SELECT *, 'max_tokens' AS violation FROM applicable
   WHERE max_output_tokens IS NOT NULL AND max_tokens > max_output_tokens
)
SELECT date_trunc('day', ts) AS day, policy_id, violation, scope, scope_value,
  team, feature, environment, provider, model,
  sum(requests) AS requests, sum(list_cost) AS list_cost
FROM violations
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
