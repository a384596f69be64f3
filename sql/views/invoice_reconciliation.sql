-- invoice_reconciliation: each invoice against the effective cost SpendQL computes for the
-- same provider and period (period_end inclusive). Invoices in another currency are converted
-- to USD at the fx_rates rate of period_end (NULL when that rate is missing).
WITH invoiced AS (
  SELECT i.*,
    CASE WHEN i.currency = 'USD' THEN i.amount
         ELSE CAST(i.amount * fx.usd_per_unit AS DECIMAL(38, 12)) END AS invoiced_usd
  FROM invoices i
  LEFT JOIN fx_rates fx ON fx.currency = i.currency AND fx.day = i.period_end
)
SELECT i.provider, i.invoice_id, i.period_start, i.period_end, i.currency,
  i.amount AS invoiced,
  i.invoiced_usd,
  COALESCE(sum(s.effective_cost), CAST(0 AS DECIMAL(38, 12))) AS computed,
  i.invoiced_usd - COALESCE(sum(s.effective_cost), CAST(0 AS DECIMAL(38, 12))) AS difference,
  CAST(i.invoiced_usd - COALESCE(sum(s.effective_cost), CAST(0 AS DECIMAL(38, 12))) AS DOUBLE)
    / NULLIF(CAST(i.invoiced_usd AS DOUBLE), 0) AS difference_pct
FROM invoiced i
LEFT JOIN spend s
  ON s.provider = i.provider
 AND CAST(s.ts AS DATE) >= i.period_start
 AND CAST(s.ts AS DATE) <= i.period_end
GROUP BY i.provider, i.invoice_id, i.period_start, i.period_end, i.currency, i.amount, i.invoiced_usd
