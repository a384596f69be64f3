-- spend_allocated: chargeback per UTC month and team, totalling the bill. Cost without a
-- team, or assigned to team 'shared' (platform keys, say, by an attribution rule), is spread
-- over the teams in proportion to their own cost that month. Shares are cut to 12 decimals
-- and the remainder goes to the team with the largest cost, so the teams' total_cost adds up
-- to the month's effective cost exactly. A month whose teams' own costs sum to zero keeps the
-- pool on a row with team NULL.
WITH monthly AS (
  SELECT date_trunc('month', ts) AS month,
         CASE WHEN team = 'shared' THEN NULL ELSE team END AS team,
         COALESCE(sum(effective_cost), CAST(0 AS DECIMAL(38, 12))) AS cost
  FROM spend
  GROUP BY 1, 2
),
pools AS (
  SELECT month,
    COALESCE(sum(CASE WHEN team IS NULL THEN cost END), CAST(0 AS DECIMAL(38, 12))) AS pool,
    COALESCE(sum(CASE WHEN team IS NOT NULL THEN cost END), CAST(0 AS DECIMAL(38, 12))) AS attributed
  FROM monthly
  GROUP BY month
),
shares AS (
  SELECT m.month, m.team, m.cost AS own_cost, p.pool, p.attributed,
    CASE WHEN p.attributed = 0 THEN CAST(0 AS DECIMAL(38, 12))
         ELSE CAST(CAST(p.pool AS DOUBLE) * CAST(m.cost AS DOUBLE) / CAST(p.attributed AS DOUBLE)
                   AS DECIMAL(38, 12)) END AS share,
    row_number() OVER (PARTITION BY m.month ORDER BY m.cost DESC, m.team) AS rank
  FROM monthly m JOIN pools p ON p.month = m.month
  WHERE m.team IS NOT NULL
),
allocated AS (
  SELECT month, team, own_cost,
    share + CASE WHEN rank = 1 AND attributed <> 0
                 THEN pool - sum(share) OVER (PARTITION BY month)
                 ELSE CAST(0 AS DECIMAL(38, 12)) END AS shared_cost
  FROM shares
)
SELECT month, team, own_cost, shared_cost, own_cost + shared_cost AS total_cost
FROM allocated
UNION ALL
SELECT month, CAST(NULL AS VARCHAR), CAST(0 AS DECIMAL(38, 12)), pool AS shared_cost, pool AS total_cost
FROM pools WHERE attributed = 0 AND pool <> 0
