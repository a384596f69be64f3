-- spend: every usage row with its cost. One row per usage row, never more.
-- priced_usage() is usage with each row's list cost parts, as usage_cost() prices the row
-- from the catalog in force at ts (stored with the row when it was written, and priced
-- again when read if the catalog has changed since; src/storage/priced.rs): the model as resolve_model()
-- resolves it, the service tier, the region, the long-context tier (prompt tokens per
-- request), time-of-day windows, cache reads and 5-minute / 1-hour cache writes, per-request
-- fees, and the providers' documented cache prices where the catalog has none.
-- effective_cost applies the contract discount in force (discount_pct is a percentage; a
-- contract for the model wins over one for the whole provider). team, feature, customer,
-- environment and cost_center are after the attribution rules (attribute()): applied at query
-- time, so a corrected rule re-attributes history; values tagged at the source win.
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
  u.api_key_id, u.project,
  u.attribution['team'] AS team, u.attribution['feature'] AS feature,
  u.attribution['customer'] AS customer, u.attribution['environment'] AS environment,
  u.user_id, u.tags, u.latency_ms, u.status, u.prompt_hash, u.max_tokens, u.reported_cost,
  u.source, u.ingested_at,
  u.attribution['cost_center'] AS cost_center,
  u.resolved_model,
  u.input_cost, u.cached_cost, u.cache_write_cost, u.output_cost, u.request_cost,
  u.input_cost IS NOT NULL AS priced,
  COALESCE(cm.discount_pct, cp.discount_pct, CAST(0 AS DECIMAL(9, 4))) AS discount_pct
FROM (
  SELECT priced.*,
    resolve_model(provider, model) AS resolved_model,
    attribute(ts, provider, api_key_id, project, model, environment, tags,
              team, feature, customer) AS attribution
  FROM priced_usage() AS priced
) AS u
LEFT JOIN contracts cm
  ON cm.provider = u.provider AND cm.model = u.resolved_model
 AND cm.effective_from <= u.ts AND (cm.effective_to IS NULL OR u.ts < cm.effective_to)
LEFT JOIN contracts cp
  ON cp.provider = u.provider AND cp.model IS NULL
 AND cp.effective_from <= u.ts AND (cp.effective_to IS NULL OR u.ts < cp.effective_to)
) AS priced_usage
) AS costed
