-- unit_economics: AI cost against revenue per UTC month and customer.
WITH cost AS (
  SELECT date_trunc('month', ts) AS month, customer, sum(effective_cost) AS ai_cost,
         sum(requests) AS requests
  FROM spend WHERE customer IS NOT NULL GROUP BY 1, 2
),
rev AS (
  SELECT date_trunc('month', CAST(day AS TIMESTAMP)) AS month, customer,
         sum(revenue) AS revenue, sum(units) AS units, max(unit_name) AS unit_name
  FROM revenue WHERE customer IS NOT NULL GROUP BY 1, 2
)
SELECT COALESCE(c.month, r.month) AS month, COALESCE(c.customer, r.customer) AS customer,
  COALESCE(c.ai_cost, CAST(0 AS DECIMAL(38, 12))) AS ai_cost,
  COALESCE(r.revenue, CAST(0 AS DECIMAL(38, 12))) AS revenue,
  c.requests, r.units, r.unit_name,
  CAST(c.ai_cost AS DOUBLE) / NULLIF(CAST(r.revenue AS DOUBLE), 0) AS cost_to_revenue,
  CAST(c.ai_cost AS DOUBLE) / NULLIF(CAST(r.units AS DOUBLE), 0) AS cost_per_unit,
  COALESCE(r.revenue, CAST(0 AS DECIMAL(38, 12))) - COALESCE(c.ai_cost, CAST(0 AS DECIMAL(38, 12))) AS gross_margin
FROM cost c
FULL OUTER JOIN rev r ON c.month = CAST(r.month AS TIMESTAMP WITH TIME ZONE) AND c.customer = r.customer
