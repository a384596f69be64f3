-- title: AI spend: monthly leadership report
-- A month of AI spend for leadership: the total and its trend, the forecast, who spends it
-- and on which providers, what moved, budgets, and the savings found and realised.

-- Placeholders ({{period_start}}, {{period_end}}, {{previous_start}}, {{period}}) are filled
-- in by `spendql report`; costs are effective USD (after contract discounts).

-- section: Summary
SELECT
  CAST(cur.cost AS DECIMAL(38, 2)) AS spend_usd,
  CAST(prev.cost AS DECIMAL(38, 2)) AS previous_usd,
  round(CAST(cur.cost - prev.cost AS DOUBLE) * 100 / NULLIF(CAST(prev.cost AS DOUBLE), 0), 1) AS change_pct,
  cur.requests,
  CAST(cur.cost / NULLIF(cur.requests, 0) * 1000 AS DECIMAL(38, 4)) AS usd_per_1k_requests,
  CAST(next.projected AS DECIMAL(38, 2)) AS next_month_forecast_usd,
  CAST(found.savings AS DECIMAL(38, 2)) AS savings_found_usd_month,
  CAST(realised.savings AS DECIMAL(38, 2)) AS savings_realised_usd_month
FROM (SELECT COALESCE(sum(effective_cost), 0) AS cost, COALESCE(sum(requests), 0) AS requests
      FROM spend WHERE ts >= {{period_start}} AND ts < {{period_end}}) cur
CROSS JOIN (SELECT COALESCE(sum(effective_cost), 0) AS cost
            FROM spend WHERE ts >= {{previous_start}} AND ts < {{period_start}}) prev
CROSS JOIN (SELECT sum(point['yhat']) AS projected FROM (
              SELECT unnest(forecast(day, cost, 30)) AS point FROM (
                SELECT date_trunc('day', ts) AS day, CAST(sum(effective_cost) AS DOUBLE) AS cost
                FROM spend WHERE ts >= {{period_start}} - INTERVAL '90 days' AND ts < {{period_end}}
                GROUP BY 1))) next
CROSS JOIN (SELECT COALESCE(sum(estimated_monthly_savings), 0) AS savings FROM recommendations) found
CROSS JOIN (SELECT CAST(COALESCE(sum(monthly_savings), 0) AS DECIMAL(38, 2)) AS savings
            FROM optimisation_impact WHERE significant) realised

-- section: Daily spend and 30-day forecast
-- chart: line x=day y=spend_usd,forecast_usd band=lo,hi
WITH daily AS (
  SELECT date_trunc('day', ts) AS day, CAST(sum(effective_cost) AS DOUBLE) AS cost
  FROM spend WHERE ts >= {{period_start}} - INTERVAL '90 days' AND ts < {{period_end}}
  GROUP BY 1
)
SELECT CAST(day AS DATE) AS day, round(cost, 2) AS spend_usd, CAST(NULL AS DOUBLE) AS forecast_usd,
  CAST(NULL AS DOUBLE) AS lo, CAST(NULL AS DOUBLE) AS hi
FROM daily WHERE day >= {{period_start}}
UNION ALL
SELECT CAST(point['ts'] AS DATE), CAST(NULL AS DOUBLE), round(point['yhat'], 2),
  round(point['lo'], 2), round(point['hi'], 2)
FROM (SELECT unnest(forecast(day, cost, 30)) AS point FROM daily)
ORDER BY day

-- section: Spend by team
-- chart: bar label=team value=spend_usd
SELECT COALESCE(c.team, '(unattributed)') AS team,
  CAST(c.cost AS DECIMAL(38, 2)) AS spend_usd,
  CAST(COALESCE(p.cost, 0) AS DECIMAL(38, 2)) AS previous_usd,
  round(CAST(c.cost - p.cost AS DOUBLE) * 100 / NULLIF(CAST(p.cost AS DOUBLE), 0), 1) AS change_pct
FROM (SELECT team, sum(effective_cost) AS cost FROM spend
      WHERE ts >= {{period_start}} AND ts < {{period_end}} GROUP BY 1) c
LEFT JOIN (SELECT team, sum(effective_cost) AS cost FROM spend
           WHERE ts >= {{previous_start}} AND ts < {{period_start}} GROUP BY 1) p
  ON p.team IS NOT DISTINCT FROM c.team
ORDER BY c.cost DESC, team

-- section: Spend by provider and model
-- chart: bar label=model value=spend_usd
SELECT provider, COALESCE(resolved_model, model) AS model,
  CAST(sum(effective_cost) AS DECIMAL(38, 2)) AS spend_usd,
  sum(requests) AS requests,
  sum(input_tokens + cached_input_tokens + cache_write_tokens + cache_write_1h_tokens) AS input_tokens,
  sum(output_tokens) AS output_tokens
FROM spend WHERE ts >= {{period_start}} AND ts < {{period_end}}
GROUP BY 1, 2
ORDER BY sum(effective_cost) DESC, provider, model
LIMIT 15

-- section: Top movers (features, against the previous month)
SELECT COALESCE(c.feature, p.feature) AS feature,
  CAST(COALESCE(c.cost, 0) AS DECIMAL(38, 2)) AS spend_usd,
  CAST(COALESCE(p.cost, 0) AS DECIMAL(38, 2)) AS previous_usd,
  CAST(COALESCE(c.cost, 0) - COALESCE(p.cost, 0) AS DECIMAL(38, 2)) AS change_usd
FROM (SELECT feature, sum(effective_cost) AS cost FROM spend
      WHERE feature IS NOT NULL AND ts >= {{period_start}} AND ts < {{period_end}} GROUP BY 1) c
FULL OUTER JOIN (SELECT feature, sum(effective_cost) AS cost FROM spend
                 WHERE feature IS NOT NULL AND ts >= {{previous_start}} AND ts < {{period_start}} GROUP BY 1) p
  ON p.feature = c.feature
ORDER BY abs(COALESCE(c.cost, 0) - COALESCE(p.cost, 0)) DESC, feature
LIMIT 10

-- section: Budgets (current periods)
-- chart: budget label=budget value=spend_usd limit=amount_usd
SELECT COALESCE(name, budget_id) AS budget, period,
  CAST(amount AS DECIMAL(38, 2)) AS amount_usd,
  CAST(spend AS DECIMAL(38, 2)) AS spend_usd,
  round(pct_used * 100, 1) AS pct_used,
  round(projected_pct * 100, 1) AS projected_pct,
  status
FROM budget_status
ORDER BY pct_used DESC, budget

-- section: Savings found (top 10 recommendations)
SELECT kind, COALESCE(team, '-') AS team, COALESCE(feature, '-') AS feature, model, alternative,
  CAST(estimated_monthly_savings AS DECIMAL(38, 2)) AS usd_per_month
FROM recommendations
WHERE estimated_monthly_savings > 0
ORDER BY estimated_monthly_savings DESC, recommendation_id
LIMIT 10

-- section: Savings realised (model and tier moves)
SELECT feature, from_setup, to_setup, CAST(change_ts AS DATE) AS changed_on,
  round(pct_change, 1) AS cost_change_pct, round(monthly_savings, 2) AS usd_per_month,
  significant
FROM optimisation_impact
ORDER BY monthly_savings DESC, feature
