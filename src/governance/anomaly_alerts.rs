//! Anomaly alerts (kind `anomaly`): days the `anomalies` view flags, sent to the budgets
//! that watch the same scope.
//!
//! A flagged day of team, feature, provider or model X goes to every budget whose scope
//! and scope value are that team, feature, provider or model; global budgets get the
//! provider-level anomalies (the coarsest breakdown the view has). Only complete UTC days
//! count (today's partial spend would look like a drop), and only the last two of them,
//! so a server that was down over midnight still reports yesterday. A run of flagged days
//! (a level shift stays flagged until the data acknowledges it) alerts on its first day
//! only. The id is `budget:day:anomaly:scope=value`, so each fires once.

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

/// The days among the last [`RECENT_DAYS`] complete UTC days before `now` on which the
/// `anomalies` view starts flagging a scope (the day before was not flagged), computed
/// from the [`HISTORY_DAYS`] before them only.
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
         FROM ( \
           SELECT *, is_anomaly OR is_level_shift AS flagged, \
             lag(is_anomaly OR is_level_shift) \
               OVER (PARTITION BY scope, scope_value ORDER BY day) AS was_flagged \
           FROM ({view})) AS days \
         WHERE flagged AND NOT COALESCE(was_flagged, false) AND day >= {} \
         ORDER BY 3, 1, 2",
        timestamp_sql(recent_start)
    );
    let batches = engine.background_sql(&sql).await?.collect().await?;
    let mut out = Vec::new();
    for batch in &batches {
        let (scope, value) = (
            super::text_column(batch.column(0))?,
            super::text_column(batch.column(1))?,
        );
        let (Some(day), Some(spend), Some(baseline)) = (
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

    #[tokio::test]
    async fn a_run_of_flagged_days_alerts_on_its_first_day() {
        use chrono::TimeZone;
        let engine = Engine::in_memory().await.unwrap();
        let run = |sql: String| {
            let engine = engine.clone();
            async move { engine.sql(&sql).await.unwrap().collect().await.unwrap() }
        };
        run(
            "INSERT INTO pricing (provider, model, effective_from, input_per_mtok, \
             output_per_mtok) VALUES ('acme', 'm1', '2020-01-01T00:00:00Z', 1, 1)"
                .into(),
        )
        .await;
        // February at about $10 a day, then $60 on March 1 and 2.
        let mut rows: Vec<String> = (1..=28)
            .map(|d| {
                format!(
                    "('d{d}', '2026-02-{d:02}T12:00:00Z', 'acme', 'm1', {}, 0, 'search')",
                    (10 + d % 3 - 1) * 1_000_000
                )
            })
            .collect();
        for d in 1..=2 {
            rows.push(format!(
                "('m{d}', '2026-03-{d:02}T12:00:00Z', 'acme', 'm1', 60000000, 0, 'search')"
            ));
        }
        run(format!(
            "INSERT INTO usage (event_id, ts, provider, model, input_tokens, output_tokens, \
             team) VALUES {}",
            rows.join(", ")
        ))
        .await;
        let now = Utc.with_ymd_and_hms(2026, 3, 3, 8, 0, 0).single().unwrap();
        let flagged = flagged_at(&engine, now).await.unwrap();
        let team: Vec<(&str, i64)> = flagged
            .iter()
            .filter(|d| d.scope == "team")
            .map(|d| (d.scope_value.as_str(), d.day))
            .collect();
        let march_1 = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).single().unwrap();
        assert_eq!(team, [("search", march_1.timestamp())], "{flagged:?}");
        // The next day the run goes on: nothing new.
        let later = Utc.with_ymd_and_hms(2026, 3, 4, 8, 0, 0).single().unwrap();
        let flagged = flagged_at(&engine, later).await.unwrap();
        assert!(
            flagged
                .iter()
                .all(|d| d.day != march_1.timestamp() + 86_400),
            "{flagged:?}"
        );
    }
}
