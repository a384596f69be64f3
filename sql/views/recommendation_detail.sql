-- recommendation_detail: the usage each recommendation cites, one row per recommendation,
-- UTC day and environment, with what those calls cost and what they would have cost had the
-- recommendation been followed. `recommendations` is the sum of these rows, so every estimate
-- can be checked against the usage it stands on.
--
-- Window: the last 30 days (a month of savings). Costs are list costs; an alternative is
-- priced by usage_cost() at each call's own time, tier, region and token counts.
-- Rules (per team, feature, provider and model unless said otherwise):
--   cheaper_model       outputs average at most 300 tokens per request (classification,
--                       extraction, routing): the lower-tier model of the same models.family
--                       that is priced, not deprecated, and cheapest for the average request.
--   prompt_caching      prompts of at least 1024 tokens per request, at least 10 times the
--                       output, under 10% cached, on a model whose cache reads cost less:
--                       assumes half of each prompt is a shared prefix, read from the cache
--                       90% of the time and written (5-minute TTL) the other 10%.
--   batch_api           standard-tier traffic that no one waits for: environments other than
--                       prod, or streams with at least 80% of their requests between 00:00
--                       and 06:00 UTC; priced at the model's batch tier.
--   max_tokens          calls whose output reached 95% of max_tokens on average (truncated,
--                       and usually retried: their cost is the estimate) when they are at
--                       least 5% of the requests; or caps at least 4 times the largest
--                       average output (no saving today; a tighter cap bounds runaway cost).
--   duplicate_requests  a row whose prompt_hash was already sent by the same feature and
--                       model within the previous 10 minutes: a response cache saves it all.
--   policy              policy_violations whose cheapest compliant model costs less.
WITH recent AS (
  SELECT * FROM spend
  WHERE priced AND requests > 0 AND ts >= now() - INTERVAL '30 days'
),
streams AS (
  SELECT team, feature, provider, COALESCE(resolved_model, model) AS model_id,
    sum(requests) AS requests, sum(input_tokens) AS input_tokens,
    sum(cached_input_tokens) AS cached_input_tokens,
    sum(cache_write_tokens + cache_write_1h_tokens) AS cache_write_tokens,
    sum(output_tokens) AS output_tokens
  FROM recent
  GROUP BY team, feature, provider, COALESCE(resolved_model, model)
),
lower_tiers AS (
  SELECT s.team, s.feature, s.provider, s.model_id, alt.model AS alternative,
    row_number() OVER (PARTITION BY s.team, s.feature, s.provider, s.model_id
                       ORDER BY token_cost(alt.provider, alt.model, now(),
                                           s.input_tokens / s.requests, s.output_tokens / s.requests),
                                alt.tier DESC, alt.model) AS rank
  FROM streams s
  JOIN models cur ON cur.provider = s.provider AND cur.model = s.model_id
  JOIN models alt
    ON alt.provider = cur.provider AND alt.family = cur.family AND alt.tier < cur.tier
   AND (alt.deprecated_on IS NULL OR alt.deprecated_on > CAST(now() AS DATE))
  WHERE s.output_tokens <= 300 * s.requests
    AND token_cost(alt.provider, alt.model, now(), 1000000, 1000000) IS NOT NULL
),
cheaper_model AS (
  SELECT 'cheaper_model' AS kind, r.*, l.alternative,
    usage_cost(r.provider, l.alternative, r.ts, r.service_tier, r.region, r.input_tokens,
               r.cached_input_tokens, r.cache_write_tokens, r.cache_write_1h_tokens,
               r.output_tokens, r.requests) AS alt
  FROM recent r
  JOIN lower_tiers l
    ON l.rank = 1 AND l.provider = r.provider AND l.model_id = COALESCE(r.resolved_model, r.model)
   AND (l.team IS NOT DISTINCT FROM r.team) AND (l.feature IS NOT DISTINCT FROM r.feature)
),
cacheable AS (
  SELECT team, feature, provider, model_id FROM streams
  WHERE input_tokens + cached_input_tokens + cache_write_tokens >= 1024 * requests
    AND input_tokens + cached_input_tokens + cache_write_tokens >= 10 * output_tokens
    AND cached_input_tokens * 10 < input_tokens + cached_input_tokens + cache_write_tokens
),
prompt_caching AS (
  SELECT 'prompt_caching' AS kind, r.*, 'prompt caching' AS alternative,
    usage_cost(r.provider, r.model, r.ts, r.service_tier, r.region,
               r.input_tokens - r.input_tokens / 2,
               r.cached_input_tokens + r.input_tokens / 2 - r.input_tokens / 20,
               r.cache_write_tokens + r.input_tokens / 20, r.cache_write_1h_tokens,
               r.output_tokens, r.requests) AS alt
  FROM recent r
  JOIN cacheable c
    ON c.provider = r.provider AND c.model_id = COALESCE(r.resolved_model, r.model)
   AND (c.team IS NOT DISTINCT FROM r.team) AND (c.feature IS NOT DISTINCT FROM r.feature)
),
unattended AS (
  SELECT team, feature, environment, provider, model FROM recent
  WHERE service_tier = 'standard'
  GROUP BY team, feature, environment, provider, model
  HAVING bool_or(environment IS NOT NULL AND lower(environment) NOT IN ('prod', 'production'))
      OR sum(CASE WHEN extract(hour FROM ts) < 6 THEN requests ELSE 0 END) * 5 >= sum(requests) * 4
),
batch_api AS (
  SELECT 'batch_api' AS kind, r.*, 'batch tier' AS alternative,
    usage_cost(r.provider, r.model, r.ts, 'batch', r.region, r.input_tokens,
               r.cached_input_tokens, r.cache_write_tokens, r.cache_write_1h_tokens,
               r.output_tokens, r.requests) AS alt
  FROM recent r
  JOIN unattended u
    ON u.provider = r.provider AND u.model = r.model
   AND (u.team IS NOT DISTINCT FROM r.team) AND (u.feature IS NOT DISTINCT FROM r.feature)
   AND (u.environment IS NOT DISTINCT FROM r.environment)
  WHERE r.service_tier = 'standard'
),
capped AS (
  SELECT team, feature, provider, model,
    sum(CASE WHEN output_tokens * 100 >= CAST(max_tokens AS BIGINT) * requests * 95 THEN requests ELSE 0 END) AS truncated,
    sum(requests) AS requests,
    min(max_tokens) AS cap,
    max(output_tokens / requests) AS largest_output
  FROM recent
  WHERE max_tokens IS NOT NULL AND max_tokens > 0
  GROUP BY team, feature, provider, model
),
max_tokens AS (
  SELECT 'max_tokens' AS kind, r.*,
    CASE WHEN c.truncated * 20 >= c.requests
         THEN 'review max_tokens ' || CAST(c.cap AS VARCHAR) || ' (responses cut off)'
         ELSE 'max_tokens ' || CAST(greatest(2 * c.largest_output, 16) AS VARCHAR) END AS alternative,
    CASE WHEN c.truncated * 20 < c.requests THEN r.list_cost
         WHEN r.output_tokens * 100 >= CAST(r.max_tokens AS BIGINT) * r.requests * 95 THEN CAST(0 AS DECIMAL(38, 12))
         ELSE r.list_cost END AS alternative_cost
  FROM recent r
  JOIN capped c
    ON c.provider = r.provider AND c.model = r.model
   AND (c.team IS NOT DISTINCT FROM r.team) AND (c.feature IS NOT DISTINCT FROM r.feature)
  WHERE r.max_tokens IS NOT NULL
    AND (c.truncated * 20 >= c.requests OR c.cap >= 4 * c.largest_output)
),
repeated AS (
  SELECT r.*,
    lag(ts) OVER (PARTITION BY team, feature, provider, model, prompt_hash ORDER BY ts, event_id) AS previous_ts
  FROM recent r
  WHERE prompt_hash IS NOT NULL
),
candidates AS (
  SELECT kind, team, feature, environment, provider, model, alternative, ts, requests,
    input_tokens, cached_input_tokens, output_tokens, list_cost,
    cost_part(alt, 'input_cost') + cost_part(alt, 'cached_cost')
      + cost_part(alt, 'cache_write_cost') + cost_part(alt, 'output_cost')
      + cost_part(alt, 'request_cost') AS alternative_cost
  FROM (SELECT * FROM cheaper_model UNION ALL SELECT * FROM prompt_caching
        UNION ALL SELECT * FROM batch_api) AS repriced
  UNION ALL
  SELECT kind, team, feature, environment, provider, model, alternative, ts, requests,
    input_tokens, cached_input_tokens, output_tokens, list_cost, alternative_cost
  FROM max_tokens
  UNION ALL
  SELECT 'duplicate_requests', team, feature, environment, provider, model, 'response cache', ts,
    requests, input_tokens, cached_input_tokens, output_tokens, list_cost,
    CAST(0 AS DECIMAL(38, 12))
  FROM repeated
  WHERE previous_ts >= ts - INTERVAL '10 minutes'
  UNION ALL
  SELECT 'policy', team, feature, environment, provider, model,
    COALESCE(policy_id, 'key') || ':' || violation || ' -> ' || compliant_provider || '/' || compliant_model,
    day, requests, input_tokens, CAST(0 AS BIGINT), output_tokens, list_cost, compliant_cost
  FROM policy_violations
  WHERE excess_cost > 0 AND day >= date_trunc('day', now() - INTERVAL '30 days')
),
rows_with_id AS (
  SELECT kind || ':' || COALESCE(team, '-') || ':' || COALESCE(feature, '-') || ':'
           || provider || '/' || model
           || CASE WHEN kind = 'batch_api' THEN ':' || COALESCE(environment, '-') ELSE '' END
           || CASE WHEN kind IN ('cheaper_model', 'policy') THEN ':' || alternative ELSE '' END
           AS recommendation_id,
    c.*
  FROM candidates c
  WHERE alternative_cost IS NOT NULL
),
daily AS (
  SELECT recommendation_id, kind, team, feature, environment, provider, model, alternative,
    date_trunc('day', ts) AS day,
    sum(requests) AS requests, sum(input_tokens) AS input_tokens,
    sum(cached_input_tokens) AS cached_input_tokens, sum(output_tokens) AS output_tokens,
    sum(list_cost) AS current_cost, sum(alternative_cost) AS alternative_cost,
    sum(list_cost) - sum(alternative_cost) AS savings
  FROM rows_with_id
  GROUP BY recommendation_id, kind, team, feature, environment, provider, model, alternative,
    date_trunc('day', ts)
)
-- Only what saves money (or, for max_tokens caps, bounds it) is recommended.
SELECT recommendation_id, kind, team, feature, environment, provider, model, alternative, day,
  requests, input_tokens, cached_input_tokens, output_tokens, current_cost, alternative_cost,
  savings
FROM (
  SELECT d.*, sum(savings) OVER (PARTITION BY recommendation_id) AS total_savings FROM daily d
) AS totals
WHERE total_savings > 0 OR (kind = 'max_tokens' AND total_savings = 0)
