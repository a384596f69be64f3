-- invoice_reconciliation: per provider and UTC month, the effective cost SpendQL computes
-- against what the provider says: invoices (attributed to the month their period starts in;
-- other currencies converted at the fx_rates rate of period_end, NULL when missing), the
-- provider's cost exports (provider_costs, from the openai-costs and anthropic-costs imports)
-- and per-call reported costs (usage.reported_cost, against the cost of those same rows).
-- Each variance is provider figure minus computed; the export's only over the days it
-- covers (export_days). The largest per-model and per-day gaps
-- between the provider's export (or reported costs) and the computed cost say where a
-- variance comes from; unpriced_rows counts usage the catalog could not price.
WITH computed AS (
  SELECT provider, date_trunc('month', ts) AS month,
    sum(effective_cost) AS computed_cost, sum(list_cost) AS computed_list_cost,
    count(*) FILTER (WHERE NOT priced) AS unpriced_rows,
    sum(reported_cost) AS reported_cost,
    sum(CASE WHEN reported_cost IS NOT NULL THEN effective_cost END) AS computed_for_reported
  FROM spend GROUP BY 1, 2
),
invoiced AS (
  SELECT i.provider,
    CAST(date_trunc('month', CAST(i.period_start AS TIMESTAMP)) AS TIMESTAMP WITH TIME ZONE) AS month,
    sum(CASE WHEN i.currency = 'USD' THEN i.amount
             ELSE CAST(i.amount * fx.usd_per_unit AS DECIMAL(38, 12)) END) AS invoiced,
    string_agg(i.invoice_id, ',' ORDER BY i.invoice_id) AS invoice_ids
  FROM invoices i
  LEFT JOIN fx_rates fx ON fx.currency = i.currency AND fx.day = i.period_end
  GROUP BY 1, 2
),
exporting AS (
  SELECT DISTINCT provider FROM provider_costs
),
exported AS (
  SELECT p.provider, CAST(p.day AS TIMESTAMP WITH TIME ZONE) AS day,
    COALESCE(resolve_model(p.provider, p.model), p.model) AS model,
    CASE WHEN p.currency = 'USD' THEN p.amount
         ELSE CAST(p.amount * fx.usd_per_unit AS DECIMAL(38, 12)) END AS amount
  FROM provider_costs p
  LEFT JOIN fx_rates fx ON fx.currency = p.currency AND fx.day = p.day
),
-- What the provider says per day and model: its export where there is one, else the
-- reported costs on the usage rows.
said AS (
  SELECT provider, day, model, sum(amount) AS amount FROM exported GROUP BY 1, 2, 3
  UNION ALL
  SELECT s.provider, date_trunc('day', s.ts), COALESCE(s.resolved_model, s.model),
    sum(s.reported_cost)
  FROM spend s LEFT JOIN exporting x ON x.provider = s.provider
  WHERE s.reported_cost IS NOT NULL AND x.provider IS NULL
  GROUP BY 1, 2, 3
),
-- The computed cost of what the provider speaks about: every row of a provider with an
-- export, else the rows that carry a reported cost; on the days the provider covers.
computed_said AS (
  SELECT s.provider, date_trunc('day', s.ts) AS day,
    COALESCE(s.resolved_model, s.model) AS model, sum(s.effective_cost) AS computed
  FROM spend s LEFT JOIN exporting x ON x.provider = s.provider
  WHERE x.provider IS NOT NULL OR s.reported_cost IS NOT NULL
  GROUP BY 1, 2, 3
),
day_gaps AS (
  SELECT provider, month, day, gap,
    row_number() OVER (PARTITION BY provider, month ORDER BY abs(gap) DESC, day) AS rank
  FROM (
    SELECT a.provider, date_trunc('month', a.day) AS month, a.day,
      a.amount - COALESCE(c.computed, CAST(0 AS DECIMAL(38, 12))) AS gap
    FROM (SELECT provider, day, sum(amount) AS amount FROM said GROUP BY 1, 2) a
    LEFT JOIN (SELECT provider, day, sum(computed) AS computed FROM computed_said GROUP BY 1, 2) c
      ON c.provider = a.provider AND c.day = a.day
  ) AS d
),
-- Per model only where the provider names its models (daily totals cannot say).
modelled_days AS (
  SELECT provider, day FROM said GROUP BY 1, 2 HAVING bool_and(model IS NOT NULL)
),
model_gaps AS (
  SELECT provider, month, model, gap,
    row_number() OVER (PARTITION BY provider, month ORDER BY abs(gap) DESC, model) AS rank
  FROM (
    SELECT COALESCE(a.provider, c.provider) AS provider,
      date_trunc('month', COALESCE(a.day, c.day)) AS month, COALESCE(a.model, c.model) AS model,
      sum(COALESCE(a.amount, CAST(0 AS DECIMAL(38, 12)))
          - COALESCE(c.computed, CAST(0 AS DECIMAL(38, 12)))) AS gap
    FROM (SELECT s.* FROM said s JOIN modelled_days m ON m.provider = s.provider AND m.day = s.day) a
    FULL OUTER JOIN (SELECT c.* FROM computed_said c
                     JOIN modelled_days m ON m.provider = c.provider AND m.day = c.day) c
      ON c.provider = a.provider AND c.day = a.day AND c.model = a.model
    GROUP BY 1, 2, 3
  ) AS g
),
exported_monthly AS (
  SELECT e.provider, e.month, e.exported, e.export_days, g.gap AS export_variance
  FROM (SELECT provider, date_trunc('month', day) AS month, sum(amount) AS exported,
          count(DISTINCT day) AS export_days
        FROM exported GROUP BY 1, 2) e
  LEFT JOIN (SELECT provider, month, sum(gap) AS gap FROM day_gaps GROUP BY 1, 2) g
    ON g.provider = e.provider AND g.month = e.month
),
months AS (
  SELECT provider, month FROM computed
  UNION SELECT provider, month FROM invoiced
  UNION SELECT provider, month FROM exported_monthly
)
SELECT m.provider, m.month,
  COALESCE(c.computed_cost, CAST(0 AS DECIMAL(38, 12))) AS computed_cost,
  c.computed_list_cost,
  i.invoice_ids, i.invoiced,
  i.invoiced - COALESCE(c.computed_cost, CAST(0 AS DECIMAL(38, 12))) AS invoice_variance,
  CAST(i.invoiced - COALESCE(c.computed_cost, CAST(0 AS DECIMAL(38, 12))) AS DOUBLE)
    / NULLIF(CAST(c.computed_cost AS DOUBLE), 0) AS invoice_variance_pct,
  e.exported AS provider_export,
  e.export_days,
  e.export_variance,
  c.reported_cost,
  c.reported_cost - c.computed_for_reported AS reported_variance,
  COALESCE(c.unpriced_rows, 0) AS unpriced_rows,
  CASE WHEN mg.gap <> 0 THEN mg.model || ' ' || CAST(mg.gap AS VARCHAR) END AS largest_model_gap,
  CASE WHEN dg.gap <> 0 THEN CAST(CAST(dg.day AS DATE) AS VARCHAR) || ' ' || CAST(dg.gap AS VARCHAR) END AS largest_day_gap
FROM months m
LEFT JOIN computed c ON c.provider = m.provider AND c.month = m.month
LEFT JOIN invoiced i ON i.provider = m.provider AND i.month = m.month
LEFT JOIN exported_monthly e ON e.provider = m.provider AND e.month = m.month
LEFT JOIN model_gaps mg ON mg.provider = m.provider AND mg.month = m.month AND mg.rank = 1
LEFT JOIN day_gaps dg ON dg.provider = m.provider AND dg.month = m.month AND dg.rank = 1
