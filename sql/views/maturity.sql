-- maturity: the seed's five levels, each criterion scored from the data. A level is
-- reached when all of its criteria and those of the levels below are met.
WITH facts AS (
  SELECT
    (SELECT count(*) FROM usage) AS usage_rows,
    (SELECT count(DISTINCT provider) FROM usage) AS providers,
    (SELECT count(DISTINCT model) FROM usage) AS models,
    (SELECT CAST(sum(CASE WHEN team IS NOT NULL AND feature IS NOT NULL AND customer IS NOT NULL THEN list_cost ELSE 0 END) AS DOUBLE)
            / NULLIF(CAST(sum(list_cost) AS DOUBLE), 0) FROM spend) AS attributed_share,
    (SELECT count(*) FROM budgets) AS budgets,
    (SELECT count(DISTINCT team) FROM usage WHERE team IS NOT NULL) AS teams,
    (SELECT count(DISTINCT scope_value) FROM budgets WHERE scope = 'team') AS budgeted_teams,
    (SELECT count(*) FROM budgets WHERE enforcement = 'block') AS blocking_budgets,
    (SELECT count(*) FROM alerts) AS alerts,
    (SELECT count(*) FROM revenue) AS revenue_rows,
    (SELECT count(*) FROM policies) AS policies,
    (SELECT count(*) FROM contracts) AS contracts,
    (SELECT count(*) FROM api_keys) AS api_keys,
    (SELECT count(*) FROM invoices) AS invoices,
    (SELECT count(*) FROM unpriced_usage) AS unpriced_groups
),
criteria AS (
  SELECT 1 AS level, 'Reactive' AS name, 'provider usage is recorded' AS criterion, usage_rows > 0 AS met FROM facts
  UNION ALL SELECT 2, 'Aware', 'costs tracked by provider and model, every row priced', providers > 0 AND models > 0 AND unpriced_groups = 0 FROM facts
  UNION ALL SELECT 2, 'Aware', 'some teams have budgets', budgets > 0 FROM facts
  UNION ALL SELECT 3, 'Managed', 'at least 90% of cost attributed to team, feature and customer', COALESCE(attributed_share >= 0.9, false) FROM facts
  UNION ALL SELECT 3, 'Managed', 'every team has a budget', teams > 0 AND budgeted_teams >= teams FROM facts
  UNION ALL SELECT 3, 'Managed', 'budgets are enforced', blocking_budgets > 0 FROM facts
  UNION ALL SELECT 4, 'Optimized', 'cost per unit tracked (revenue data present)', revenue_rows > 0 FROM facts
  UNION ALL SELECT 4, 'Optimized', 'spending policies defined', policies > 0 FROM facts
  UNION ALL SELECT 5, 'Strategic', 'vendor agreements and invoices reconciled', contracts > 0 AND invoices > 0 FROM facts
  UNION ALL SELECT 5, 'Strategic', 'API keys governed per team and environment', api_keys > 0 FROM facts
)
SELECT level, name, criterion, met,
  bool_and(met) OVER (ORDER BY level RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS level_reached
FROM criteria
