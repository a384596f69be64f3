-- spend_daily: UTC day x provider x model x team x feature x customer x environment totals.
SELECT
  date_trunc('day', ts) AS day, provider, model, team, feature, customer, environment,
  sum(requests) AS requests,
  sum(input_tokens) AS input_tokens,
  sum(cached_input_tokens) AS cached_input_tokens,
  sum(cache_write_tokens + cache_write_1h_tokens) AS cache_write_tokens,
  sum(output_tokens) AS output_tokens,
  sum(list_cost) AS list_cost,
  sum(effective_cost) AS effective_cost,
  bool_and(priced) AS priced
FROM spend
GROUP BY 1, 2, 3, 4, 5, 6, 7
