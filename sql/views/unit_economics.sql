-- unit_economics: AI cost against revenue per UTC month, for each customer and each feature
-- (dimension 'customer' or 'feature'): cost per request and per unit of revenue.units, gross
-- margin after AI cost, the share of revenue AI eats (flagged above 20%; NULL without revenue
-- rows, as for internal features), and the break-even
-- volume: the units that, at this month's revenue per unit, pay for this month's AI cost.
-- Costs are effective (after contract discounts); money stays DECIMAL, ratios are DOUBLE.
WITH cost AS (
  SELECT date_trunc('month', ts) AS month, 'customer' AS dimension, customer AS name,
    sum(effective_cost) AS ai_cost, sum(requests) AS requests
  FROM spend WHERE customer IS NOT NULL GROUP BY 1, 3
  UNION ALL
  SELECT date_trunc('month', ts), 'feature', feature, sum(effective_cost), sum(requests)
  FROM spend WHERE feature IS NOT NULL GROUP BY 1, 3
),
income AS (
  SELECT CAST(date_trunc('month', CAST(day AS TIMESTAMP)) AS TIMESTAMP WITH TIME ZONE) AS month,
    'customer' AS dimension, customer AS name,
    sum(revenue) AS revenue, sum(units) AS units, max(unit_name) AS unit_name
  FROM revenue WHERE customer IS NOT NULL GROUP BY 1, 3
  UNION ALL
  SELECT CAST(date_trunc('month', CAST(day AS TIMESTAMP)) AS TIMESTAMP WITH TIME ZONE),
    'feature', feature, sum(revenue), sum(units), max(unit_name)
  FROM revenue WHERE feature IS NOT NULL GROUP BY 1, 3
),
joined AS (
  SELECT COALESCE(c.month, i.month) AS month, COALESCE(c.dimension, i.dimension) AS dimension,
    COALESCE(c.name, i.name) AS name,
    COALESCE(c.requests, 0) AS requests,
    COALESCE(c.ai_cost, CAST(0 AS DECIMAL(38, 12))) AS ai_cost,
    COALESCE(i.revenue, CAST(0 AS DECIMAL(38, 12))) AS revenue,
    i.units, i.unit_name, i.name IS NOT NULL AS has_revenue
  FROM cost c
  FULL OUTER JOIN income i
    ON c.month = i.month AND c.dimension = i.dimension AND c.name = i.name
)
SELECT month, dimension, name, requests, ai_cost, has_revenue, revenue, units, unit_name,
  CAST(ai_cost / NULLIF(requests, 0) AS DECIMAL(38, 12)) AS cost_per_request,
  CAST(ai_cost / NULLIF(units, 0) AS DECIMAL(38, 12)) AS cost_per_unit,
  CAST(revenue / NULLIF(units, 0) AS DECIMAL(38, 12)) AS revenue_per_unit,
  revenue - ai_cost AS gross_margin,
  CAST(revenue - ai_cost AS DOUBLE) / NULLIF(CAST(revenue AS DOUBLE), 0) AS gross_margin_pct,
  CAST(ai_cost AS DOUBLE) / NULLIF(CAST(revenue AS DOUBLE), 0) AS ai_cost_share,
  CASE WHEN has_revenue THEN ai_cost > revenue * 0.2 END AS over_cost_share,
  CAST(ceil(CAST(ai_cost AS DOUBLE) / NULLIF(CAST(revenue AS DOUBLE) / CAST(units AS DOUBLE), 0)) AS BIGINT) AS break_even_units
FROM joined
