-- unpriced_usage: usage the catalog does not price, with the reason: an unknown model, a
-- date before (or after) every price of the model, a service tier the model has no price
-- for, or a region / prompt size / token kind without one. A usage row is never silently
-- costed at zero.
SELECT
  date_trunc('day', ts) AS day, provider, model, resolved_model, service_tier,
  CASE WHEN resolved_model IS NULL THEN 'unknown model'
       WHEN price_per_mtok(provider, model, ts, 'input', service_tier) IS NOT NULL
         THEN 'no price for this region or prompt size, or a token kind without a price'
       WHEN service_tier <> 'standard' AND price_per_mtok(provider, model, ts, 'input') IS NOT NULL
         THEN 'no price for service tier ' || service_tier
       ELSE 'no price at this date' END AS reason,
  count(*) AS rows, sum(requests) AS requests,
  sum(input_tokens + cached_input_tokens + cache_write_tokens + cache_write_1h_tokens) AS prompt_tokens,
  sum(output_tokens) AS output_tokens
FROM spend
WHERE NOT priced
GROUP BY 1, 2, 3, 4, 5, 6
