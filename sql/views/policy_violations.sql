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
  -- One pass over applicable (a CTE is planned again at each use).
  SELECT a.*, v.violation FROM applicable a
  CROSS JOIN (VALUES ('model_tier'), ('provider_not_allowed'), ('model_not_allowed'),
                     ('max_tokens')) AS v(violation)
  WHERE COALESCE(CASE v.violation
    WHEN 'model_tier' THEN a.max_model_tier IS NOT NULL AND a.model_tier > a.max_model_tier
    WHEN 'provider_not_allowed' THEN a.allowed_providers IS NOT NULL
      AND strpos(',' || replace(a.allowed_providers, ' ', '') || ',', ',' || a.provider || ',') = 0
    WHEN 'model_not_allowed' THEN a.allowed_models IS NOT NULL
      AND strpos(',' || replace(a.allowed_models, ' ', '') || ',', ',' || a.model || ',') = 0
    ELSE a.max_output_tokens IS NOT NULL AND a.max_tokens > a.max_output_tokens
  END, false)
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
  SELECT date_trunc('day', ts) AS day, policy_id, violation, scope, scope_value,
    team, feature, environment, provider, model,
    max(max_model_tier) AS max_model_tier, max(allowed_providers) AS allowed_providers,
    max(allowed_models) AS allowed_models,
    sum(requests) AS requests, sum(input_tokens) AS input_tokens,
    sum(cached_input_tokens) AS cached_input_tokens, sum(output_tokens) AS output_tokens,
    sum(list_cost) AS list_cost
  FROM all_violations
  GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
),
-- Every compliant model priced at today's list prices for the group's tokens, ranked within
-- the group (one pipeline: joining back to grouped would plan it twice).
ranked AS (
  SELECT g.*, m.provider AS alt_provider, m.model AS alt_model,
    token_cost(m.provider, m.model, now(), g.input_tokens, g.output_tokens,
               g.cached_input_tokens) AS alt_cost
  FROM grouped g
  LEFT JOIN models m
    ON g.violation IN ('model_tier', 'provider_not_allowed', 'model_not_allowed')
   AND (m.deprecated_on IS NULL OR m.deprecated_on > CAST(now() AS DATE))
   AND (g.max_model_tier IS NULL OR m.tier <= g.max_model_tier)
   AND (g.allowed_providers IS NULL OR strpos(',' || replace(g.allowed_providers, ' ', '') || ',',
                                              ',' || m.provider || ',') > 0)
   AND (g.allowed_models IS NULL OR strpos(',' || replace(g.allowed_models, ' ', '') || ',',
                                           ',' || m.model || ',') > 0)
),
cheapest AS (
  SELECT r.*,
    row_number() OVER (PARTITION BY day, policy_id, violation, scope, scope_value, team,
                                    feature, environment, provider, model
                       ORDER BY alt_cost NULLS LAST, alt_provider, alt_model) AS rank
  FROM ranked r
)
SELECT day, policy_id, violation, scope, scope_value, team, feature, environment, provider,
  model, requests, input_tokens, output_tokens, list_cost,
  CASE WHEN alt_cost IS NOT NULL THEN alt_provider END AS compliant_provider,
  CASE WHEN alt_cost IS NOT NULL THEN alt_model END AS compliant_model,
  alt_cost AS compliant_cost,
  list_cost - alt_cost AS excess_cost
FROM cheapest WHERE rank = 1
