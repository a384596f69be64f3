-- title: Top customers by AI cost and margin
-- The customers whose AI cost was highest in the month, with their revenue, gross margin
-- after AI cost and the share of revenue AI takes (unit_economics).

-- section: Top 25 customers by AI cost
-- chart: bar label=customer value=ai_cost_usd
SELECT name AS customer, requests,
  CAST(ai_cost AS DECIMAL(38, 2)) AS ai_cost_usd,
  CASE WHEN has_revenue THEN CAST(revenue AS DECIMAL(38, 2)) END AS revenue_usd,
  CASE WHEN has_revenue THEN CAST(gross_margin AS DECIMAL(38, 2)) END AS margin_usd,
  round(ai_cost_share * 100, 1) AS ai_share_pct,
  CAST(cost_per_unit AS DECIMAL(38, 4)) AS cost_per_unit, unit_name,
  over_cost_share
FROM unit_economics
WHERE dimension = 'customer' AND month = {{period_start}}
ORDER BY ai_cost DESC, customer
LIMIT 25

-- section: Customers where AI takes more than 20% of revenue
SELECT name AS customer,
  CAST(ai_cost AS DECIMAL(38, 2)) AS ai_cost_usd,
  CAST(revenue AS DECIMAL(38, 2)) AS revenue_usd,
  round(ai_cost_share * 100, 1) AS ai_share_pct
FROM unit_economics
WHERE dimension = 'customer' AND month = {{period_start}} AND over_cost_share
ORDER BY ai_cost_share DESC, customer
