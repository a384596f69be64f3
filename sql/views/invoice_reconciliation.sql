-- invoice_reconciliation: each invoice against the cost SpendQL computes for the same
-- provider and period (period_end inclusive).
SELECT i.provider, i.invoice_id, i.period_start, i.period_end, i.currency,
  i.amount AS invoiced,
  COALESCE(sum(s.effective_cost), CAST(0 AS DECIMAL(38, 12))) AS computed,
  i.amount - COALESCE(sum(s.effective_cost), CAST(0 AS DECIMAL(38, 12))) AS difference,
  CAST(i.amount - COALESCE(sum(s.effective_cost), CAST(0 AS DECIMAL(38, 12))) AS DOUBLE)
    / NULLIF(CAST(i.amount AS DOUBLE), 0) AS difference_pct
FROM invoices i
LEFT JOIN spend s
  ON s.provider = i.provider
 AND CAST(s.ts AS DATE) >= i.period_start
 AND CAST(s.ts AS DATE) <= i.period_end
GROUP BY i.provider, i.invoice_id, i.period_start, i.period_end, i.currency, i.amount
