-- maturity: the seed's five levels (Reactive, Aware, Managed, Optimized, Strategic), each
-- criterion scored from the data, with what was measured and, when unmet, the next step.
-- A level is reached when its criteria and those of every level below are met;
-- current_level is the highest level reached (0 before any usage). "Recent" is the last
-- 30 days. Optimisations acted on are optimisation_impact's moves to another model or tier
-- whose cost drop change_impact finds significant.
WITH recent AS (
  SELECT * FROM spend WHERE ts >= now() - INTERVAL '30 days'
),
feature_cost AS (
  SELECT feature, sum(effective_cost) AS cost FROM recent WHERE feature IS NOT NULL GROUP BY 1
),
customer_cost AS (
  SELECT customer, sum(effective_cost) AS cost FROM recent WHERE customer IS NOT NULL GROUP BY 1
),
facts AS (
  SELECT
    (SELECT count(*) FROM usage) AS usage_rows,
    (SELECT count(*) FROM unpriced_usage) AS unpriced_groups,
    (SELECT count(DISTINCT provider || '/' || model) FROM usage) AS models,
    (SELECT CAST(sum(CASE WHEN team IS NOT NULL AND feature IS NOT NULL THEN effective_cost ELSE 0 END) AS DOUBLE)
            / NULLIF(CAST(sum(effective_cost) AS DOUBLE), 0) FROM recent) AS attributed_share,
    (SELECT CAST(sum(CASE WHEN customer IS NOT NULL THEN effective_cost ELSE 0 END) AS DOUBLE)
            / NULLIF(CAST(sum(effective_cost) AS DOUBLE), 0) FROM recent) AS customer_share,
    (SELECT count(*) FROM budgets) AS budgets,
    (SELECT count(DISTINCT team) FROM recent WHERE team IS NOT NULL) AS teams,
    (SELECT count(DISTINCT r.team) FROM recent r JOIN budgets b ON b.scope = 'team' AND b.scope_value = r.team) AS budgeted_teams,
    (SELECT count(*) FROM budgets WHERE enforcement = 'block') AS blocking_budgets,
    (SELECT count(*) FROM budgets WHERE notify IS NOT NULL) AS notifying_budgets,
    (SELECT count(*) FROM alerts WHERE fired_at >= now() - INTERVAL '30 days' AND delivered_at IS NULL AND delivery_error IS NOT NULL) AS failed_alerts,
    (SELECT count(*) FROM budget_status WHERE projected_spend IS NOT NULL) AS projected_budgets,
    (SELECT CAST(sum(CASE WHEN r.feature IS NOT NULL THEN f.cost ELSE 0 END) AS DOUBLE)
            / NULLIF(CAST(sum(f.cost) AS DOUBLE), 0)
       FROM feature_cost f
       LEFT JOIN (SELECT DISTINCT feature FROM revenue WHERE units IS NOT NULL AND feature IS NOT NULL) r
         ON r.feature = f.feature) AS unit_cost_share,
    (SELECT CAST(sum(CASE WHEN r.customer IS NOT NULL THEN c.cost ELSE 0 END) AS DOUBLE)
            / NULLIF(CAST(sum(c.cost) AS DOUBLE), 0)
       FROM customer_cost c
       LEFT JOIN (SELECT DISTINCT customer FROM revenue WHERE customer IS NOT NULL) r
         ON r.customer = c.customer) AS margin_share,
    (SELECT count(*) FROM optimisation_impact WHERE significant) AS optimisations_with_impact,
    (SELECT count(*) FROM optimisation_impact) AS switches,
    (SELECT count(*) FROM policies) AS policies,
    (SELECT count(*) FROM policy_violations WHERE day >= date_trunc('day', now() - INTERVAL '30 days')) AS recent_violations,
    (SELECT count(*) FROM api_keys) AS api_keys,
    (SELECT count(*) FROM keys_due_for_rotation) AS keys_overdue,
    (SELECT count(*) FROM invoice_reconciliation WHERE invoiced IS NOT NULL) AS invoice_months,
    (SELECT count(*) FROM invoice_reconciliation WHERE invoiced IS NOT NULL AND abs(invoice_variance_pct) > 0.02) AS unreconciled_months
  FROM (VALUES (1)) AS one(x)
),
-- The criteria are rows of a table, not literal SELECTs in a UNION: DataFusion 55 takes a
-- column that is a constant in every UNION branch for a constant of the union, and then
-- drops the sort an ORDER BY level needs.
criteria_list AS (
  SELECT * FROM (VALUES
    (1, 'Reactive', 'provider usage is recorded', 'ingest provider usage (spendql ingest) or point an OTLP exporter at spendql serve'),
    (2, 'Aware', 'costs tracked by provider and model, every row priced', 'add the missing prices (SELECT * FROM unpriced_usage; spendql pricing import)'),
    (2, 'Aware', 'some teams have budgets', 'INSERT INTO budgets a monthly budget for your largest team'),
    (3, 'Managed', 'at least 90% of recent cost attributed to a team and a feature', 'tag calls at the source or add attribution_rules for what unattributed_spend shows'),
    (3, 'Managed', 'every team has a budget', 'add a team budget for each team that spends'),
    (3, 'Managed', 'budgets are enforced', 'set enforcement = ''block'' where overspend must stop calls (budget_check)'),
    (3, 'Managed', 'alerts reach people', 'set budgets.notify to a webhook and fix failed deliveries (alerts.delivery_error)'),
    (4, 'Optimized', 'cost per unit tracked for the AI features', 'load revenue with units per feature (unit_economics)'),
    (4, 'Optimized', 'spend is forecast', 'budgets need a few days of spend in their period to be projected (budget_status)'),
    (4, 'Optimized', 'spending policies defined', 'INSERT INTO policies the model tiers and providers each team may use'),
    (5, 'Strategic', 'AI cost weighed against revenue for 90% of customer cost', 'load revenue per customer so unit_economics shows margins'),
    (5, 'Strategic', 'optimisations acted on show a measured cost drop', 'act on a recommendation and check it with change_impact (optimisation_impact)'),
    (5, 'Strategic', 'governance is automatic: policies hold and keys rotate', 'resolve policy_violations and rotate keys_due_for_rotation'),
    (5, 'Strategic', 'invoices reconciled within 2%', 'load invoices and explain the gaps invoice_reconciliation shows')
  ) AS c(level, name, criterion, next_step)
),
criteria AS (
  SELECT c.level, c.name, c.criterion,
    CASE c.criterion
      WHEN 'provider usage is recorded' THEN CAST(usage_rows AS VARCHAR) || ' usage rows'
      WHEN 'costs tracked by provider and model, every row priced' THEN CAST(models AS VARCHAR) || ' models, ' || CAST(unpriced_groups AS VARCHAR) || ' unpriced model groups'
      WHEN 'some teams have budgets' THEN CAST(budgets AS VARCHAR) || ' budgets'
      WHEN 'at least 90% of recent cost attributed to a team and a feature' THEN CAST(round(COALESCE(attributed_share, 0) * 100, 1) AS VARCHAR) || '% attributed, '
        || CAST(round(COALESCE(customer_share, 0) * 100, 1) AS VARCHAR) || '% to a customer'
      WHEN 'every team has a budget' THEN CAST(budgeted_teams AS VARCHAR) || ' of ' || CAST(teams AS VARCHAR) || ' teams budgeted'
      WHEN 'budgets are enforced' THEN CAST(blocking_budgets AS VARCHAR) || ' blocking budgets'
      WHEN 'alerts reach people' THEN CAST(notifying_budgets AS VARCHAR) || ' budgets notify a webhook, '
        || CAST(failed_alerts AS VARCHAR) || ' recent alerts undelivered'
      WHEN 'cost per unit tracked for the AI features' THEN CAST(round(COALESCE(unit_cost_share, 0) * 100, 1) AS VARCHAR) || '% of recent feature cost has revenue units'
      WHEN 'spend is forecast' THEN CAST(projected_budgets AS VARCHAR) || ' of ' || CAST(budgets AS VARCHAR) || ' budgets projected'
      WHEN 'spending policies defined' THEN CAST(policies AS VARCHAR) || ' policies'
      WHEN 'AI cost weighed against revenue for 90% of customer cost' THEN CAST(round(COALESCE(margin_share, 0) * 100, 1) AS VARCHAR) || '% of recent customer cost has revenue'
      WHEN 'optimisations acted on show a measured cost drop' THEN CAST(optimisations_with_impact AS VARCHAR) || ' of ' || CAST(switches AS VARCHAR)
        || ' model or tier moves lowered cost significantly'
      WHEN 'governance is automatic: policies hold and keys rotate' THEN CAST(recent_violations AS VARCHAR) || ' recent policy violations, '
        || CAST(keys_overdue AS VARCHAR) || ' keys overdue of ' || CAST(api_keys AS VARCHAR)
      WHEN 'invoices reconciled within 2%' THEN CAST(invoice_months - unreconciled_months AS VARCHAR) || ' of ' || CAST(invoice_months AS VARCHAR)
        || ' invoice months within 2%'
    END AS measured,
    CASE c.criterion
      WHEN 'provider usage is recorded' THEN usage_rows > 0
      WHEN 'costs tracked by provider and model, every row priced' THEN models > 0 AND unpriced_groups = 0
      WHEN 'some teams have budgets' THEN budgets > 0
      WHEN 'at least 90% of recent cost attributed to a team and a feature' THEN COALESCE(attributed_share >= 0.9, false)
      WHEN 'every team has a budget' THEN teams > 0 AND budgeted_teams >= teams
      WHEN 'budgets are enforced' THEN blocking_budgets > 0
      WHEN 'alerts reach people' THEN notifying_budgets > 0 AND failed_alerts = 0
      WHEN 'cost per unit tracked for the AI features' THEN COALESCE(unit_cost_share >= 0.8, false)
      WHEN 'spend is forecast' THEN budgets > 0 AND projected_budgets >= budgets
      WHEN 'spending policies defined' THEN policies > 0
      WHEN 'AI cost weighed against revenue for 90% of customer cost' THEN COALESCE(margin_share >= 0.9, false)
      WHEN 'optimisations acted on show a measured cost drop' THEN optimisations_with_impact > 0
      WHEN 'governance is automatic: policies hold and keys rotate' THEN policies > 0 AND recent_violations = 0 AND api_keys > 0 AND keys_overdue = 0
      WHEN 'invoices reconciled within 2%' THEN invoice_months > 0 AND unreconciled_months = 0
    END AS met,
    c.next_step
  FROM criteria_list c CROSS JOIN facts
),
levels AS (
  SELECT level, bool_and(met) AS all_met FROM criteria GROUP BY level
),
reached AS (
  SELECT level, bool_and(all_met) OVER (ORDER BY level ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS level_reached
  FROM levels
)
SELECT c.level, c.name, c.criterion, c.measured, c.met, r.level_reached,
  (SELECT COALESCE(max(level), 0) FROM reached WHERE level_reached) AS current_level,
  CASE WHEN c.met THEN NULL ELSE c.next_step END AS next_step
FROM criteria c JOIN reached r ON r.level = c.level
