-- focus: daily usage charges in FinOps FOCUS 1.2 column names (a subset: the cost,
-- period, provider, service, SKU and quantity columns; tags as JSON text).
SELECT
  CAST(list_cost AS DECIMAL(38, 12)) AS "BilledCost",
  CAST(effective_cost AS DECIMAL(38, 12)) AS "EffectiveCost",
  CAST(list_cost AS DECIMAL(38, 12)) AS "ListCost",
  CAST(effective_cost AS DECIMAL(38, 12)) AS "ContractedCost",
  'USD' AS "BillingCurrency",
  day AS "ChargePeriodStart",
  day + INTERVAL '1 day' AS "ChargePeriodEnd",
  day AS "BillingPeriodStart",
  'Usage' AS "ChargeCategory",
  'Usage-Based' AS "PricingCategory",
  provider AS "ProviderName",
  provider AS "PublisherName",
  provider AS "InvoiceIssuerName",
  'AI and Machine Learning' AS "ServiceCategory",
  model AS "ServiceName",
  model AS "SkuId",
  CAST(input_tokens + cached_input_tokens + cache_write_tokens + output_tokens AS DECIMAL(38, 0)) AS "ConsumedQuantity",
  'Tokens' AS "ConsumedUnit",
  environment AS "SubAccountName",
  '{"team":' || COALESCE('"' || team || '"', 'null')
    || ',"feature":' || COALESCE('"' || feature || '"', 'null')
    || ',"customer":' || COALESCE('"' || customer || '"', 'null') || '}' AS "Tags"
FROM spend_daily
