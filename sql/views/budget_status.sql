-- budget_status: each budget in its current UTC period (day, week, month, quarter, year):
-- spend to date, projected period-end spend (project_period_end over the period's daily
-- spend, hourly for daily budgets: the run rate while there are fewer than 5 complete
-- buckets, then a forecast that follows trend and weekly pattern), the date the budget
-- runs out at the run rate so far, and a status (ok, warning, exceeded, forecast_exceeds).
-- warning starts at the budget's highest threshold below 1.0 (0.8 with the default
-- '0.5,0.8,1.0'; never without one), as budget_check's warn does.
WITH warn_levels AS (
  SELECT budget_id, thresholds, max(level) AS warn_at
  FROM (
    SELECT budget_id, thresholds,
      TRY_CAST(trim(unnest(string_to_array(thresholds, ','))) AS DOUBLE) AS level
    FROM budgets
  ) AS levels
  WHERE level > 0 AND level < 1
  GROUP BY budget_id, thresholds
),
periods AS (
  SELECT b.*,
    CASE b.period
      WHEN 'day' THEN date_trunc('day', now())
      WHEN 'week' THEN date_trunc('week', now())
      WHEN 'month' THEN date_trunc('month', now())
      WHEN 'quarter' THEN date_trunc('quarter', now())
      ELSE date_trunc('year', now())
    END AS period_start,
    CASE b.period
      WHEN 'day' THEN date_trunc('day', now()) + INTERVAL '1 day'
      WHEN 'week' THEN date_trunc('week', now()) + INTERVAL '7 days'
      WHEN 'month' THEN date_trunc('month', now()) + INTERVAL '1 month'
      WHEN 'quarter' THEN date_trunc('quarter', now()) + INTERVAL '3 months'
      ELSE date_trunc('year', now()) + INTERVAL '1 year'
    END AS period_end
  FROM budgets b
  WHERE (b.starts_on IS NULL OR b.starts_on <= CAST(now() AS DATE))
    AND (b.ends_on IS NULL OR b.ends_on >= CAST(now() AS DATE))
),
buckets AS (
  SELECT p.budget_id,
    CASE WHEN p.period = 'day' THEN s.hour ELSE s.day END AS bucket,
    sum(s.effective_cost) AS cost
  FROM periods p
  JOIN (
    SELECT ts, date_trunc('hour', ts) AS hour, date_trunc('day', ts) AS day, effective_cost,
      team, feature, customer, environment, provider, model, api_key_id, project, cost_center
    FROM spend
  ) s
    ON s.ts >= p.period_start AND s.ts < p.period_end
   AND CASE p.scope
         WHEN 'global' THEN true
         WHEN 'team' THEN s.team = p.scope_value
         WHEN 'feature' THEN s.feature = p.scope_value
         WHEN 'customer' THEN s.customer = p.scope_value
         WHEN 'environment' THEN s.environment = p.scope_value
         WHEN 'provider' THEN s.provider = p.scope_value
         WHEN 'model' THEN s.model = p.scope_value
         WHEN 'api_key' THEN s.api_key_id = p.scope_value
         WHEN 'project' THEN s.project = p.scope_value
         WHEN 'cost_center' THEN s.cost_center = p.scope_value
         ELSE false
       END
  GROUP BY 1, 2
),
totals AS (
  SELECT p.budget_id,
    COALESCE(sum(b.cost), CAST(0 AS DECIMAL(38, 12))) AS spend,
    project_period_end(b.bucket, b.cost, p.period_end, now()) AS projected
  FROM periods p
  LEFT JOIN buckets b ON b.budget_id = p.budget_id
  GROUP BY p.budget_id
),
rated AS (
  SELECT p.budget_id, p.name, p.scope, p.scope_value, p.period, p.period_start, p.period_end,
    p.amount, p.thresholds, p.enforcement, p.owner, p.notify, t.spend, w.warn_at,
    CAST(t.spend AS DOUBLE) / NULLIF(CAST(p.amount AS DOUBLE), 0) AS pct_used,
    GREATEST(COALESCE(t.projected,
      CAST(t.spend AS DOUBLE)
        * (extract(epoch FROM p.period_end) - extract(epoch FROM p.period_start))
        / GREATEST(extract(epoch FROM now()) - extract(epoch FROM p.period_start), 1)),
      CAST(t.spend AS DOUBLE)) AS projected_spend,
    GREATEST(extract(epoch FROM now()) - extract(epoch FROM p.period_start), 1) AS elapsed_seconds
  FROM periods p JOIN totals t ON t.budget_id = p.budget_id
  LEFT JOIN warn_levels w ON w.budget_id = p.budget_id AND w.thresholds = p.thresholds
)
SELECT budget_id, name, scope, scope_value, period, period_start, period_end, amount, spend,
  pct_used,
  projected_spend,
  projected_spend / NULLIF(CAST(amount AS DOUBLE), 0) AS projected_pct,
  CASE
    WHEN CAST(spend AS DOUBLE) <= 0 THEN NULL
    WHEN spend >= amount THEN CAST(now() AS DATE)
    WHEN projected_spend > CAST(amount AS DOUBLE) THEN CAST(to_timestamp(
      extract(epoch FROM period_start)
      + elapsed_seconds * CAST(amount AS DOUBLE) / CAST(spend AS DOUBLE)) AS DATE)
    ELSE NULL
  END AS exhaustion_date,
  CASE
    WHEN spend >= amount THEN 'exceeded'
    WHEN projected_spend > CAST(amount AS DOUBLE) THEN 'forecast_exceeds'
    WHEN pct_used >= warn_at THEN 'warning'
    ELSE 'ok'
  END AS status,
  enforcement, thresholds, owner, notify
FROM rated
