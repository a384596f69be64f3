-- title: Policy violations of the period
-- Usage that broke a policy in the month, per policy, violation, team, feature and model, with
-- the spend involved and the excess over the cheapest compliant model.

-- section: Violations
SELECT COALESCE(policy_id, '(api key)') AS policy, violation, COALESCE(team, '-') AS team,
  COALESCE(feature, '-') AS feature, provider, model,
  sum(requests) AS requests,
  CAST(sum(list_cost) AS DECIMAL(38, 2)) AS spend_usd,
  CAST(sum(excess_cost) AS DECIMAL(38, 2)) AS excess_usd,
  max(compliant_model) AS compliant_model
FROM policy_violations
WHERE day >= {{period_start}} AND day < {{period_end}}
GROUP BY 1, 2, 3, 4, 5, 6
ORDER BY sum(list_cost) DESC, policy, violation, team, feature
