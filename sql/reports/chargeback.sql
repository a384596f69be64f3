-- title: AI spend chargeback by team and cost center
-- The month's effective cost charged back to teams (shared and unattributed cost spread in
-- proportion to each team's own cost, as spend_allocated does) and to cost centers. Each
-- section ends with a total row that equals the month's bill to the last digit.

-- section: By team
-- chart: bar label=team value=total_usd
SELECT team, own_usd, shared_usd, total_usd FROM (
  SELECT COALESCE(team, '(no team)') AS team, own_cost AS own_usd, shared_cost AS shared_usd,
    total_cost AS total_usd, 0 AS is_total
  FROM spend_allocated WHERE month = {{period_start}}
  UNION ALL
  SELECT 'TOTAL', COALESCE(sum(own_cost), 0), COALESCE(sum(shared_cost), 0),
    COALESCE(sum(total_cost), 0), 1
  FROM spend_allocated WHERE month = {{period_start}}
) AS rows_and_total
ORDER BY is_total, total_usd DESC, team

-- section: By cost center
-- chart: bar label=cost_center value=cost_usd
SELECT cost_center, cost_usd, requests FROM (
  SELECT COALESCE(cost_center, '(unassigned)') AS cost_center, sum(effective_cost) AS cost_usd,
    sum(requests) AS requests, 0 AS is_total
  FROM spend WHERE ts >= {{period_start}} AND ts < {{period_end}}
  GROUP BY 1
  UNION ALL
  SELECT 'TOTAL', COALESCE(sum(effective_cost), 0), COALESCE(sum(requests), 0), 1
  FROM spend WHERE ts >= {{period_start}} AND ts < {{period_end}}
) AS rows_and_total
ORDER BY is_total, cost_usd DESC, cost_center
