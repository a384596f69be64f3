//! The queries a spend dashboard runs, over the demo data set.

/// What a spend dashboard asks, over the demo data set.
pub const DASHBOARD: &[&str] = &[
    "SELECT date_trunc('month', ts) AS month, team, sum(list_cost) AS cost \
     FROM spend GROUP BY 1, 2 ORDER BY 1, 2",
    "SELECT customer, sum(list_cost) AS cost FROM spend \
     WHERE ts >= TIMESTAMPTZ '2026-09-01 00:00:00+00' GROUP BY 1 ORDER BY 2 DESC LIMIT 10",
    "SELECT date_trunc('day', ts) AS day, feature, sum(list_cost) AS cost FROM spend \
     WHERE team = 'search' GROUP BY 1, 2 ORDER BY 1, 2",
    "SELECT model, service_tier, sum(list_cost) AS cost, sum(input_tokens + output_tokens) AS tokens \
     FROM spend GROUP BY 1, 2 ORDER BY 3 DESC",
    "SELECT * FROM budget_status",
    "SELECT provider, sum(list_cost) AS cost FROM spend_daily \
     WHERE environment = 'prod' GROUP BY 1 ORDER BY 2 DESC",
];
