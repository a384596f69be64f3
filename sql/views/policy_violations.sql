-- policy_violations: usage that breaks a policy, per UTC day, policy, violation, feature and
-- model: the spend involved, and the cheapest compliant model for the same tokens at today's
-- list prices, with the excess. A policy applies to usage whose scope column equals
-- scope_value (scope 'global' applies to all) and, when environment is set, to that
-- environment only. Violations: a model tier above max_model_tier, a provider or model not
-- in the allowed lists (comma-separated), max_tokens above max_output_tokens; and, from
-- api_keys rather than a policy, a key registered for another environment (dev, staging)
-- used for prod traffic ('key_environment').
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
  LEFT JOIN models m ON m.provider = s.provider AND m.model = COALESCE(s.resolved_model, s.model)
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
),
all_violations AS (
  SELECT ts, policy_id, violation, scope, scope_value, team, feature, environment, provider,
         model, max_model_tier, allowed_providers, allowed_models, requests, input_tokens,
         cached_input_tokens, output_tokens, list_cost
  FROM violations
  UNION ALL
  SELECT s.ts, CAST(NULL AS VARCHAR), 'key_environment', 'api_key', s.api_key_id, s.team,
         s.feature, s.environment, s.provider, s.model, CAST(NULL AS INT), CAST(NULL AS VARCHAR),
         CAST(NULL AS VARCHAR), s.requests, s.input_tokens, s.cached_input_tokens,
         s.output_tokens, s.list_cost
  FROM spend s JOIN api_keys k ON k.api_key_id = s.api_key_id
  WHERE k.environment IS NOT NULL AND k.environment <> 'prod' AND s.environment = 'prod'
),
grouped AS (
  -- Ordered by the group's key: the CTE is planned once per use, so the id must not
  -- depend on the order rows arrive in.
  SELECT row_number() OVER (ORDER BY day, policy_id, violation, scope, scope_value, team,
                                     feature, environment, provider, model) AS group_id, g.*
  FROM (
    SELECT date_trunc('day', ts) AS day, policy_id, violation, scope, scope_value,
      team, feature, environment, provider, model,
      max(max_model_tier) AS max_model_tier, max(allowed_providers) AS allowed_providers,
      max(allowed_models) AS allowed_models,
      sum(requests) AS requests, sum(input_tokens) AS input_tokens,
      sum(cached_input_tokens) AS cached_input_tokens, sum(output_tokens) AS output_tokens,
      sum(list_cost) AS list_cost
    FROM all_violations
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
  ) AS g
),
alternatives AS (
  SELECT g.group_id, m.provider, m.model,
    token_cost(m.provider, m.model, now(), g.input_tokens, g.output_tokens,
               g.cached_input_tokens) AS cost
  FROM grouped g
  JOIN models m
    ON g.violation IN ('model_tier', 'provider_not_allowed', 'model_not_allowed')
   AND (m.deprecated_on IS NULL OR m.deprecated_on > CAST(now() AS DATE))
   AND (g.max_model_tier IS NULL OR m.tier <= g.max_model_tier)
   AND (g.allowed_providers IS NULL OR strpos(',' || replace(g.allowed_providers, ' ', '') || ',',
                                              ',' || m.provider || ',') > 0)
   AND (g.allowed_models IS NULL OR strpos(',' || replace(g.allowed_models, ' ', '') || ',',
                                           ',' || m.model || ',') > 0)
),
cheapest AS (
  SELECT group_id, provider, model, cost FROM (
    SELECT a.*, row_number() OVER (PARTITION BY group_id ORDER BY cost, provider, model) AS rank
    FROM alternatives a WHERE cost IS NOT NULL
  ) AS ranked WHERE rank = 1
)
SELECT g.day, g.policy_id, g.violation, g.scope, g.scope_value, g.team, g.feature,
  g.environment, g.provider, g.model, g.requests, g.input_tokens, g.output_tokens, g.list_cost,
  c.provider AS compliant_provider, c.model AS compliant_model, c.cost AS compliant_cost,
  g.list_cost - c.cost AS excess_cost
FROM grouped g LEFT JOIN cheapest c ON c.group_id = g.group_id
