-- optimisation_impact: optimisations acted on and what they saved. A feature that moved to
-- another model or service tier (the new setup started while the old one stopped within a
-- week; the last 180 days) is measured with change_impact on its daily effective cost from
-- the UTC day of the move (that mixed day counts as after, which understates the saving):
-- before and after are daily levels over whole weeks, pct_change with its 95% interval
-- (lo, hi). significant when the whole interval is below zero; monthly_savings is the drop
-- in daily cost times 30 (DOUBLE: an estimate, not a bill).
WITH setups AS (
  SELECT feature, COALESCE(resolved_model, model) || ' ' || service_tier AS setup,
    min(ts) AS first_ts, max(ts) AS last_ts
  FROM spend
  WHERE feature IS NOT NULL AND ts >= now() - INTERVAL '180 days'
  GROUP BY 1, 2
),
moves AS (
  SELECT n.feature, o.setup AS from_setup, n.setup AS to_setup,
    date_trunc('day', n.first_ts) AS change_ts
  FROM setups n
  JOIN setups o
    ON o.feature = n.feature AND o.setup <> n.setup AND o.first_ts < n.first_ts
   AND o.last_ts >= n.first_ts - INTERVAL '1 day' AND o.last_ts <= n.first_ts + INTERVAL '7 days'
),
measured AS (
  SELECT m.feature, m.from_setup, m.to_setup, m.change_ts,
    change_impact(d.day, CAST(d.cost AS DOUBLE), m.change_ts) AS impact
  FROM moves m
  JOIN (SELECT feature, date_trunc('day', ts) AS day, sum(effective_cost) AS cost
        FROM spend WHERE feature IS NOT NULL GROUP BY 1, 2) d
    ON d.feature = m.feature
  GROUP BY m.feature, m.from_setup, m.to_setup, m.change_ts
)
SELECT feature, from_setup, to_setup, change_ts,
  impact['before'] AS before, impact['after'] AS after, impact['pct_change'] AS pct_change,
  impact['lo'] AS lo, impact['hi'] AS hi,
  COALESCE(impact['hi'] < 0, false) AS significant,
  (impact['before'] - impact['after']) * 30 AS monthly_savings
FROM measured
