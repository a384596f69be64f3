-- unpriced_usage: usage the catalog does not price, with the reason. A usage row is never
-- silently costed at zero.
SELECT
  date_trunc('day', ts) AS day, provider, model, resolved_model, service_tier,
  CASE WHEN resolved_model IS NULL THEN 'unknown model'
       ELSE 'no price for this date, tier, region or prompt size' END AS reason,
  count(*) AS rows, sum(requests) AS requests,
  sum(input_tokens + cached_input_tokens + cache_write_tokens + cache_write_1h_tokens) AS prompt_tokens,
  sum(output_tokens) AS output_tokens
FROM spend
WHERE NOT priced
GROUP BY 1, 2, 3, 4, 5, 6
