-- reported_cost_comparison: what providers or gateways reported (usage.reported_cost)
-- against what SpendQL computes from the catalog, per UTC day and provider, over the rows
-- that carry a reported cost.
SELECT date_trunc('day', ts) AS day, provider,
  count(*) AS rows,
  sum(reported_cost) AS reported_cost,
  sum(list_cost) AS computed_list_cost,
  sum(effective_cost) AS computed_effective_cost,
  sum(reported_cost) - sum(effective_cost) AS difference,
  CAST(sum(reported_cost) - sum(effective_cost) AS DOUBLE) / NULLIF(CAST(sum(effective_cost) AS DOUBLE), 0) AS difference_pct,
  count(*) FILTER (WHERE NOT priced) AS unpriced_rows
FROM spend
WHERE reported_cost IS NOT NULL
GROUP BY 1, 2
