-- attribution_coverage: per UTC day, how much of the effective cost is attributed: to a
-- team, and to both a team and a feature (`coverage`, the figure to drive towards 1), with
-- the unattributed remainder.
SELECT date_trunc('day', ts) AS day,
  sum(effective_cost) AS cost,
  sum(CASE WHEN team IS NOT NULL THEN effective_cost ELSE 0 END) AS team_cost,
  sum(CASE WHEN team IS NOT NULL AND feature IS NOT NULL THEN effective_cost ELSE 0 END)
    AS attributed_cost,
  sum(CASE WHEN team IS NULL OR feature IS NULL THEN effective_cost ELSE 0 END)
    AS unattributed_cost,
  CAST(sum(CASE WHEN team IS NOT NULL THEN effective_cost ELSE 0 END) AS DOUBLE)
    / NULLIF(CAST(sum(effective_cost) AS DOUBLE), 0) AS team_coverage,
  CAST(sum(CASE WHEN team IS NOT NULL AND feature IS NOT NULL THEN effective_cost ELSE 0 END)
    AS DOUBLE) / NULLIF(CAST(sum(effective_cost) AS DOUBLE), 0) AS coverage
FROM spend
GROUP BY 1
