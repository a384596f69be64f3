-- recommendations: savings opportunities over the last 30 days, with estimated monthly USD.
-- Covered so far: duplicate_requests (the same prompt_hash sent again by the same feature
-- and model: the repeats could be served from a cache). The optimisation issue adds the
-- model, caching, batch and max_tokens rules.
SELECT
  'duplicate_requests' AS kind,
  'feature' AS scope,
  COALESCE(feature, '(unattributed)') AS scope_value,
  provider, model,
  'the same prompt was sent ' || CAST(sum(requests) AS VARCHAR) || ' times (prompt_hash ' || prompt_hash || ')' AS detail,
  -- every request after the first could be a cache hit
  CAST(sum(list_cost) - sum(list_cost) / sum(requests) AS DECIMAL(38, 12)) AS estimated_monthly_savings
FROM spend
WHERE prompt_hash IS NOT NULL AND ts >= now() - INTERVAL '30 days'
GROUP BY feature, provider, model, prompt_hash
HAVING sum(requests) > 1
