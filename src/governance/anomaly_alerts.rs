//! Anomaly alerts (kind `anomaly`): days the `anomalies` view flags, sent to the budgets
//! that watch the same scope.
//!
//! A flagged day of team, feature, provider or model X goes to every budget whose scope
//! and scope value are that team, feature, provider or model; global budgets get the
//! provider-level anomalies (the coarsest breakdown the view has). Only complete UTC days
//! count (today's partial spend would look like a drop), and only the last two of them,
//! so a server that was down over midnight still reports yesterday. The id is
//! `budget:day:anomaly:scope=value`, so each fires once.

use std::collections::HashSet;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, Int64Type};
use chrono::{DateTime, Duration, Utc};

use super::alerts::{self, Alert};
use super::status::BudgetState;
use crate::engine::Engine;
use crate::error::Result;

const ANOMALIES_SQL: &str = include_str!("../../sql/views/anomalies.sql");

/// `alerts.kind`
pub const ANOMALY: &str = "anomaly";
/// Complete days looked back on for flags.
const RECENT_DAYS: i64 = 2;
/// History the scores need: 8 weeks for the seasonal pattern, with margin.
const HISTORY_DAYS: i64 = 70;

/// A day the `anomalies` view flags.
#[derive(Debug, Clone, PartialEq)]
pub struct FlaggedDay {
    pub scope: String,
    pub scope_value: String,
    /// Seconds since the epoch, UTC midnight.
    pub day: i64,
    pub spend: f64,
    pub baseline: Option<f64>,
    pub score: Option<f64>,
    pub shift: Option<f64>,
}

fn timestamp_sql(at: DateTime<Utc>) -> String {
    let nanos = at.timestamp_micros().saturating_mul(1000);
    format!("arrow_cast({nanos}, 'Timestamp(Nanosecond, Some(\"+00:00\"))')")
}

/// The days of the last [`RECENT_DAYS`] complete UTC days before `now` that the
/// `anomalies` view flags, computed from the [`HISTORY_DAYS`] before them only.
pub async fn flagged_at(engine: &Engine, now: DateTime<Utc>) -> Result<Vec<FlaggedDay>> {
    let today = now
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map_or(now, |midnight| midnight.and_utc());
    let history_start = today - Duration::days(HISTORY_DAYS);
    let recent_start = today - Duration::days(RECENT_DAYS);
    let view = ANOMALIES_SQL.replace(
        "FROM spend GROUP BY",
        &format!(
            "FROM spend WHERE ts >= {} AND ts < {} GROUP BY",
            timestamp_sql(history_start),
            timestamp_sql(today)
        ),
    );
    let sql = format!(
        "SELECT scope, scope_value, CAST(extract(epoch FROM day) AS BIGINT), spend, baseline, \
           score, shift \
         FROM ({view}) WHERE (is_anomaly OR is_level_shift) AND day >= {} \
         ORDER BY 3, 1, 2",
        timestamp_sql(recent_start)
    );
    let batches = engine.sql(&sql).await?.collect().await?;
    let mut out = Vec::new();
    for batch in &batches {
        let (Some(scope), Some(value), Some(day), Some(spend), Some(baseline)) = (
            batch.column(0).as_string_opt::<i32>(),
            batch.column(1).as_string_opt::<i32>(),
            batch.column(2).as_primitive_opt::<Int64Type>(),
            batch.column(3).as_primitive_opt::<Float64Type>(),
            batch.column(4).as_primitive_opt::<Float64Type>(),
        ) else {
            continue;
        };
        let (Some(score), Some(shift)) = (
            batch.column(5).as_primitive_opt::<Float64Type>(),
            batch.column(6).as_primitive_opt::<Float64Type>(),
        ) else {
            continue;
        };
        let float =
            |a: &arrow::array::Float64Array, row: usize| a.is_valid(row).then(|| a.value(row));
        for row in 0..batch.num_rows() {
            if !scope.is_valid(row) || !value.is_valid(row) || !day.is_valid(row) {
                continue;
            }
            out.push(FlaggedDay {
                scope: scope.value(row).to_string(),
                scope_value: value.value(row).to_string(),
                day: day.value(row),
                spend: float(spend, row).unwrap_or(0.0),
                baseline: float(baseline, row),
                score: float(score, row),
                shift: float(shift, row),
            });
        }
    }
    Ok(out)
}

/// Whether `budget` watches the scope of `day`.
fn watches(budget: &BudgetState, day: &FlaggedDay) -> bool {
    match budget.scope.as_str() {
        "global" => day.scope == "provider",
        scope => scope == day.scope && budget.scope_value.as_deref() == Some(&day.scope_value),
    }
}

/// The anomaly alerts `flagged` calls for, leaving out ids in `fired`.
pub fn due(
    flagged: &[FlaggedDay],
    budgets: &[BudgetState],
    now: DateTime<Utc>,
    fired: &HashSet<String>,
) -> Vec<Alert> {
    let mut out = Vec::new();
    for day in flagged {
        let date = DateTime::from_timestamp(day.day, 0)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        for budget in budgets.iter().filter(|b| watches(b, day)) {
            let alert_id = format!(
                "{}:{date}:{ANOMALY}:{}={}",
                budget.budget_id, day.scope, day.scope_value
            );
            if fired.contains(&alert_id) || out.iter().any(|a: &Alert| a.alert_id == alert_id) {
                continue;
            }
            out.push(Alert {
                message: message(day, &date),
                alert_id,
                fired_at: now,
                kind: ANOMALY,
                budget_id: budget.budget_id.clone(),
                budget_name: budget.name.clone(),
                scope: day.scope.clone(),
                scope_value: Some(day.scope_value.clone()),
                // The score (or, for a shift alone, the shift statistic) in the threshold
                // column, within its DECIMAL(9, 4).
                threshold: day
                    .score
                    .filter(|s| s.abs() >= day.shift.unwrap_or(0.0).abs() || day.shift.is_none())
                    .or(day.shift)
                    .unwrap_or(0.0)
                    .clamp(-99_999.0, 99_999.0),
                spend: alerts::f64_to_money(day.spend).unwrap_or(0),
                amount: budget.amount,
                projected: day.baseline,
                period: budget.period.clone(),
                period_start: budget.period_start,
                period_end: budget.period_end,
            });
        }
    }
    out
}

fn message(day: &FlaggedDay, date: &str) -> String {
    let spend = alerts::usd(alerts::f64_to_money(day.spend).unwrap_or(0));
    let baseline = day
        .baseline
        .and_then(alerts::f64_to_money)
        .map(|b| {
            format!(
                " against ${} a day over the previous 4 weeks",
                alerts::usd(b)
            )
        })
        .unwrap_or_default();
    let what = match (day.score, day.shift) {
        (Some(score), _) if score.abs() >= 5.0 => format!(
            "an anomaly (score {score:.1}: {} than its usual day)",
            if score > 0.0 { "higher" } else { "lower" }
        ),
        (_, Some(shift)) => format!(
            "a sustained {} (level shift {shift:.1})",
            if shift > 0.0 { "rise" } else { "drop" }
        ),
        _ => "an anomaly".to_string(),
    };
    format!(
        "Spend of {}={} on {date} was ${spend}{baseline}: {what}.",
        day.scope, day.scope_value
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(id: &str, scope: &str, value: Option<&str>) -> BudgetState {
        BudgetState {
            budget_id: id.into(),
            name: None,
            scope: scope.into(),
            scope_value: value.map(str::to_string),
            period: "month".into(),
            period_start: 0,
            period_end: 86_400 * 31,
            amount: 0,
            spend: 0,
            projected: None,
            thresholds: String::new(),
            enforcement: "alert".into(),
            notify: None,
        }
    }

    fn day(scope: &str, value: &str, score: f64) -> FlaggedDay {
        FlaggedDay {
            scope: scope.into(),
            scope_value: value.into(),
            day: 86_400 * 10,
            spend: 50.0,
            baseline: Some(10.0),
            score: Some(score),
            shift: Some(3.0),
        }
    }

    #[test]
    fn flagged_days_go_to_budgets_of_their_scope_once() {
        let budgets = [
            budget("t", "team", Some("search")),
            budget("other", "team", Some("ads")),
            budget("g", "global", None),
        ];
        let flagged = [day("team", "search", 9.5), day("provider", "acme", 6.0)];
        let now = Utc::now();
        let due = due(&flagged, &budgets, now, &HashSet::new());
        let ids: Vec<&str> = due.iter().map(|a| a.alert_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "t:1970-01-11:anomaly:team=search",
                "g:1970-01-11:anomaly:provider=acme"
            ]
        );
        assert_eq!(due[0].kind, ANOMALY);
        assert_eq!(due[0].threshold, 9.5);
        assert_eq!(
            due[0].message,
            "Spend of team=search on 1970-01-11 was $50.00 against $10.00 a day over the \
             previous 4 weeks: an anomaly (score 9.5: higher than its usual day)."
        );
        let fired: HashSet<String> = ids.iter().map(|s| s.to_string()).collect();
        assert!(super::due(&flagged, &budgets, now, &fired).is_empty());
    }
}
