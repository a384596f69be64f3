-- recommendations: one row per savings opportunity over the last 30 days, with the estimated
-- monthly USD saved (list prices) and the evidence. Each is the sum of its rows in
-- recommendation_detail (see there for the rules); ordered by nothing, sort by
-- estimated_monthly_savings.
SELECT recommendation_id, kind, team, feature, provider, model, alternative,
  CASE kind
    WHEN 'cheaper_model' THEN
      'outputs average ' || CAST(sum(output_tokens) / sum(requests) AS VARCHAR)
      || ' tokens per request: a lower tier of the same family serves such requests'
    WHEN 'prompt_caching' THEN
      'prompts average ' || CAST(sum(input_tokens + cached_input_tokens) / sum(requests) AS VARCHAR)
      || ' tokens, ' || CAST(sum(input_tokens + cached_input_tokens) / greatest(sum(output_tokens), 1) AS VARCHAR)
      || ' times the output, ' || CAST(sum(cached_input_tokens) * 100 / sum(input_tokens + cached_input_tokens) AS VARCHAR)
      || '% cached: caching half of each prompt at a 90% hit rate'
    WHEN 'batch_api' THEN
      'no one waits for this traffic (environment ' || COALESCE(max(environment), 'unknown')
      || ' or mostly between 00:00 and 06:00 UTC): the batch tier is cheaper'
    WHEN 'max_tokens' THEN
      CASE WHEN sum(savings) > 0
           THEN 'responses reach 95% of max_tokens on at least 5% of requests: cut off and usually retried'
           ELSE 'max_tokens is at least 4 times the largest average output: a tighter cap bounds runaway cost' END
    WHEN 'duplicate_requests' THEN
      CAST(sum(requests) AS VARCHAR) || ' requests repeated a prompt sent in the previous 10 minutes'
    ELSE 'usage breaks a policy; the cheapest compliant model costs less'
  END AS detail,
  sum(requests) AS requests,
  min(day) AS first_day,
  max(day) AS last_day,
  sum(current_cost) AS current_monthly_cost,
  sum(savings) AS estimated_monthly_savings,
  CAST(sum(savings) AS DOUBLE) / NULLIF(CAST(sum(current_cost) AS DOUBLE), 0) AS savings_share
FROM recommendation_detail
GROUP BY recommendation_id, kind, team, feature, provider, model, alternative
