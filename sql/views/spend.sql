-- spend: every usage row with its cost. One row per usage row, never more.
-- Interim pricing (until the pricing issue lands): the catalog row for the same provider,
-- model and service tier in force at ts, with no region, long-context or time-of-day
-- condition. A NULL cache price falls back to the input price. effective_cost applies the
-- contract discount in force (discount_pct is a percentage). Attribution rules are not
-- applied yet, so cost_center is NULL.
SELECT costed.*,
  list_cost - CAST(list_cost * discount_pct / 100 AS DECIMAL(38, 12)) AS effective_cost
FROM (
SELECT priced_usage.*,
  input_cost + cached_cost + cache_write_cost + output_cost + request_cost AS list_cost
FROM (
SELECT
  u.event_id, u.ts, u.provider, u.model,
  u.input_tokens, u.cached_input_tokens, u.cache_write_tokens, u.cache_write_1h_tokens,
  u.output_tokens, u.reasoning_tokens, u.requests, u.service_tier, u.region,
  u.api_key_id, u.project, u.team, u.feature, u.customer, u.environment, u.user_id,
  u.tags, u.latency_ms, u.status, u.prompt_hash, u.max_tokens, u.reported_cost,
  u.source, u.ingested_at,
  CAST(NULL AS VARCHAR) AS cost_center,
  u.model AS resolved_model,
  CAST(CAST(u.input_tokens AS DECIMAL(38, 12)) * p.input_per_mtok / 1000000 AS DECIMAL(38, 12)) AS input_cost,
  CAST(CAST(u.cached_input_tokens AS DECIMAL(38, 12)) * COALESCE(p.cached_input_per_mtok, p.input_per_mtok) / 1000000 AS DECIMAL(38, 12)) AS cached_cost,
  CAST((CAST(u.cache_write_tokens AS DECIMAL(38, 12)) * COALESCE(p.cache_write_per_mtok, p.input_per_mtok)
      + CAST(u.cache_write_1h_tokens AS DECIMAL(38, 12)) * COALESCE(p.cache_write_1h_per_mtok, p.cache_write_per_mtok, p.input_per_mtok)) / 1000000 AS DECIMAL(38, 12)) AS cache_write_cost,
  CAST(CAST(u.output_tokens AS DECIMAL(38, 12)) * p.output_per_mtok / 1000000 AS DECIMAL(38, 12)) AS output_cost,
  CAST(CAST(u.requests AS DECIMAL(38, 12)) * COALESCE(p.per_request, 0) AS DECIMAL(38, 12)) AS request_cost,
  p.provider IS NOT NULL AS priced,
  -- a contract for the model wins over one for the whole provider
  COALESCE(cm.discount_pct, cp.discount_pct, CAST(0 AS DECIMAL(9, 4))) AS discount_pct
FROM usage u
LEFT JOIN pricing p
  ON p.provider = u.provider
 AND p.model = u.model
 AND p.service_tier = u.service_tier
 AND p.effective_from <= u.ts
 AND (p.effective_to IS NULL OR u.ts < p.effective_to)
 AND p.region IS NULL
 AND p.min_prompt_tokens = 0
 AND p.utc_start_time IS NULL
LEFT JOIN contracts cm
  ON cm.provider = u.provider AND cm.model = u.model
 AND cm.effective_from <= u.ts AND (cm.effective_to IS NULL OR u.ts < cm.effective_to)
LEFT JOIN contracts cp
  ON cp.provider = u.provider AND cp.model IS NULL
 AND cp.effective_from <= u.ts AND (cp.effective_to IS NULL OR u.ts < cp.effective_to)
) AS priced_usage
) AS costed
