-- focus: usage charges as FinOps FOCUS 1.2 rows, one per UTC day, provider account, project,
-- model, tier, region, attribution and token type (input, cached input, cache write, output,
-- request fees). Costs are exact: ListCost is the catalog price, EffectiveCost, BilledCost and
-- ContractedCost are after contract discounts, and the rows of a day add up to spend's
-- effective_cost to the last digit. Unit prices are per 1M tokens (or per request); where
-- one row mixes prices (a price change during the day) they are the average. Tags holds
-- team, feature, environment and cost_center as a JSON object.
WITH costed AS (
  SELECT date_trunc('day', ts) AS day, provider, model, service_tier, region, project,
    team, feature, environment, cost_center,
    input_tokens, cached_input_tokens, cache_write_tokens + cache_write_1h_tokens AS cache_write_tokens,
    output_tokens, requests,
    input_cost, cached_cost, cache_write_cost, output_cost, request_cost,
    input_cost - CAST(input_cost * discount_pct / 100 AS DECIMAL(38, 12)) AS input_effective,
    cached_cost - CAST(cached_cost * discount_pct / 100 AS DECIMAL(38, 12)) AS cached_effective,
    cache_write_cost - CAST(cache_write_cost * discount_pct / 100 AS DECIMAL(38, 12)) AS cache_write_effective,
    request_cost - CAST(request_cost * discount_pct / 100 AS DECIMAL(38, 12)) AS request_effective,
    effective_cost
  FROM spend
  WHERE priced
),
daily AS (
  SELECT day, provider, model, service_tier, region, project, team, feature, environment,
    cost_center,
    sum(input_tokens) AS input_tokens, sum(cached_input_tokens) AS cached_input_tokens,
    sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens,
    sum(requests) AS requests,
    sum(input_cost) AS input_cost, sum(cached_cost) AS cached_cost,
    sum(cache_write_cost) AS cache_write_cost, sum(output_cost) AS output_cost,
    sum(request_cost) AS request_cost,
    sum(input_effective) AS input_effective, sum(cached_effective) AS cached_effective,
    sum(cache_write_effective) AS cache_write_effective,
    sum(request_effective) AS request_effective,
    -- Output takes what rounding leaves, so that the parts add up to effective_cost.
    sum(effective_cost - input_effective - cached_effective - cache_write_effective - request_effective) AS output_effective
  FROM costed
  GROUP BY day, provider, model, service_tier, region, project, team, feature, environment,
    cost_center
),
charges AS (
  SELECT d.*, t.token_type, t.meter,
    CASE t.token_type WHEN 'input' THEN input_tokens WHEN 'cached_input' THEN cached_input_tokens
      WHEN 'cache_write' THEN cache_write_tokens WHEN 'output' THEN output_tokens
      ELSE requests END AS quantity,
    CASE t.token_type WHEN 'input' THEN input_cost WHEN 'cached_input' THEN cached_cost
      WHEN 'cache_write' THEN cache_write_cost WHEN 'output' THEN output_cost
      ELSE request_cost END AS list_part,
    CASE t.token_type WHEN 'input' THEN input_effective WHEN 'cached_input' THEN cached_effective
      WHEN 'cache_write' THEN cache_write_effective WHEN 'output' THEN output_effective
      ELSE request_effective END AS effective_part
  FROM daily d
  CROSS JOIN (VALUES ('input', 'Input Tokens'), ('cached_input', 'Cached Input Tokens'),
                     ('cache_write', 'Cache Write Tokens'), ('output', 'Output Tokens'),
                     ('request', 'Requests')) AS t(token_type, meter)
),
priced_charges AS (
  SELECT c.*,
    CASE WHEN token_type = 'request' THEN CAST(quantity AS DECIMAL(38, 6))
         ELSE CAST(CAST(quantity AS DECIMAL(38, 6)) / 1000000 AS DECIMAL(38, 6)) END AS pricing_quantity
  FROM charges c
  WHERE quantity > 0 AND (token_type <> 'request' OR list_part > 0)
)
SELECT
  CAST(effective_part AS DECIMAL(38, 12)) AS "BilledCost",
  provider AS "BillingAccountId",
  provider AS "BillingAccountName",
  'Provider Account' AS "BillingAccountType",
  'USD' AS "BillingCurrency",
  date_trunc('month', day) + INTERVAL '1 month' AS "BillingPeriodEnd",
  date_trunc('month', day) AS "BillingPeriodStart",
  'Usage' AS "ChargeCategory",
  CAST(NULL AS VARCHAR) AS "ChargeClass",
  model || ' ' || lower(meter) || ' (' || service_tier || ' tier)' AS "ChargeDescription",
  'Usage-Based' AS "ChargeFrequency",
  day + INTERVAL '1 day' AS "ChargePeriodEnd",
  day AS "ChargePeriodStart",
  CAST(quantity AS DECIMAL(38, 0)) AS "ConsumedQuantity",
  CASE WHEN token_type = 'request' THEN 'Requests' ELSE 'Tokens' END AS "ConsumedUnit",
  CAST(effective_part AS DECIMAL(38, 12)) AS "ContractedCost",
  CAST(effective_part / NULLIF(pricing_quantity, 0) AS DECIMAL(38, 12)) AS "ContractedUnitPrice",
  CAST(effective_part AS DECIMAL(38, 12)) AS "EffectiveCost",
  CASE provider
    WHEN 'openai' THEN 'OpenAI' WHEN 'anthropic' THEN 'Anthropic' WHEN 'google' THEN 'Google'
    WHEN 'azure_openai' THEN 'Microsoft' WHEN 'aws_bedrock' THEN 'Amazon Web Services'
    WHEN 'mistral' THEN 'Mistral AI' ELSE provider END AS "InvoiceIssuerName",
  CAST(list_part AS DECIMAL(38, 12)) AS "ListCost",
  CAST(list_part / NULLIF(pricing_quantity, 0) AS DECIMAL(38, 12)) AS "ListUnitPrice",
  'Standard' AS "PricingCategory",
  pricing_quantity AS "PricingQuantity",
  CASE WHEN token_type = 'request' THEN 'Requests' ELSE '1M Tokens' END AS "PricingUnit",
  CASE provider
    WHEN 'openai' THEN 'OpenAI' WHEN 'anthropic' THEN 'Anthropic' WHEN 'google' THEN 'Google'
    WHEN 'azure_openai' THEN 'Microsoft' WHEN 'aws_bedrock' THEN 'Amazon Web Services'
    WHEN 'mistral' THEN 'Mistral AI' ELSE provider END AS "ProviderName",
  CASE provider
    WHEN 'openai' THEN 'OpenAI' WHEN 'anthropic' THEN 'Anthropic' WHEN 'google' THEN 'Google'
    WHEN 'azure_openai' THEN 'Microsoft' WHEN 'aws_bedrock' THEN 'Amazon Web Services'
    WHEN 'mistral' THEN 'Mistral AI' ELSE provider END AS "PublisherName",
  region AS "RegionId",
  region AS "RegionName",
  'AI and Machine Learning' AS "ServiceCategory",
  CASE provider
    WHEN 'openai' THEN 'OpenAI API' WHEN 'anthropic' THEN 'Claude API'
    WHEN 'google' THEN 'Gemini API' WHEN 'azure_openai' THEN 'Azure OpenAI'
    WHEN 'aws_bedrock' THEN 'Amazon Bedrock' WHEN 'mistral' THEN 'Mistral API'
    ELSE provider || ' API' END AS "ServiceName",
  'Generative AI' AS "ServiceSubcategory",
  provider || '/' || model || '/' || service_tier AS "SkuId",
  meter AS "SkuMeter",
  provider || '/' || model || '/' || service_tier || '/' || token_type AS "SkuPriceId",
  COALESCE(project, provider) AS "SubAccountId",
  COALESCE(project, provider) AS "SubAccountName",
  CASE WHEN project IS NULL THEN 'Provider Account' ELSE 'Project' END AS "SubAccountType",
  '{' || concat_ws(',',
    '"team":"' || replace(replace(team, '\', '\\'), '"', '\"') || '"',
    '"feature":"' || replace(replace(feature, '\', '\\'), '"', '\"') || '"',
    '"environment":"' || replace(replace(environment, '\', '\\'), '"', '\"') || '"',
    '"cost_center":"' || replace(replace(cost_center, '\', '\\'), '"', '\"') || '"') || '}' AS "Tags",
  token_type AS "x_TokenType",
  team AS "x_Team",
  feature AS "x_Feature"
FROM priced_charges
