//! Which alerts a budget evaluation fires, and their rows in the `alerts` table.
//!
//! An alert's id is derived from its budget, period, kind and threshold, so "once per
//! budget, period and threshold" is a lookup in the (durable) table: a restart, or an
//! evaluation repeated after a crash, finds the id and fires nothing.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use chrono::{DateTime, Utc};

use super::status::{BudgetState, MONEY_SCALE};
use crate::error::{Error, Result};
use crate::schema;
use crate::storage::ConfigTable;

/// A forecast alert waits until this share of the period has passed: a run rate from
/// the first hours of a month says little about its end.
pub const FORECAST_MIN_ELAPSED: f64 = 0.1;

/// Alerts older than this are not delivered any more (e.g. after a `notify` URL is set on
/// a budget that fired long ago).
pub const DELIVERY_WINDOW_SECONDS: i64 = 86_400;

/// `alerts.kind`
pub const THRESHOLD: &str = "budget_threshold";
pub const FORECAST: &str = "budget_forecast";

/// One alert row.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub alert_id: String,
    pub fired_at: DateTime<Utc>,
    pub kind: &'static str,
    pub budget_id: String,
    pub budget_name: Option<String>,
    pub scope: String,
    pub scope_value: Option<String>,
    /// Fraction of the amount (1.0 for forecast alerts).
    pub threshold: f64,
    /// USD at scale 12.
    pub spend: i128,
    pub amount: i128,
    pub projected: Option<f64>,
    pub period: String,
    pub period_start: i64,
    pub period_end: i64,
    pub message: String,
}

/// The alerts `states` call for at `now`, leaving out ids in `fired`.
pub fn due(states: &[BudgetState], now: DateTime<Utc>, fired: &HashSet<String>) -> Vec<Alert> {
    let mut out = Vec::new();
    for state in states {
        let thresholds = match state.threshold_fractions() {
            Ok(t) => t,
            Err(reason) => {
                tracing::warn!("budget {}: {reason}; no threshold alerts", state.budget_id);
                Vec::new()
            }
        };
        let spend = money_to_f64(state.spend);
        let amount = money_to_f64(state.amount);
        // The highest threshold crossed is the one reported; lower ones crossed in the same
        // evaluation still get their own rows so none is ever fired later.
        for threshold in thresholds {
            if amount > 0.0 && spend >= threshold * amount {
                push(&mut out, state, now, THRESHOLD, threshold, fired);
            }
        }
        let projected_over = state
            .projected
            .is_some_and(|p| amount > 0.0 && p > amount && spend < amount);
        if projected_over && state.elapsed_fraction(now) >= FORECAST_MIN_ELAPSED {
            push(&mut out, state, now, FORECAST, 1.0, fired);
        }
    }
    out
}

fn push(
    out: &mut Vec<Alert>,
    state: &BudgetState,
    now: DateTime<Utc>,
    kind: &'static str,
    threshold: f64,
    fired: &HashSet<String>,
) {
    let period_day = DateTime::from_timestamp(state.period_start, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default();
    let alert_id = format!(
        "{}:{}:{}:{}",
        state.budget_id,
        period_day,
        kind,
        threshold_text(threshold)
    );
    // Already stored, or already due in this evaluation (two budget rows with one id, or
    // thresholds equal to 4 decimals): one alert either way.
    if fired.contains(&alert_id) || out.iter().any(|a| a.alert_id == alert_id) {
        return;
    }
    let alert = Alert {
        message: message(state, kind, threshold, &period_day),
        alert_id,
        fired_at: now,
        kind,
        budget_id: state.budget_id.clone(),
        budget_name: state.name.clone(),
        scope: state.scope.clone(),
        scope_value: state.scope_value.clone(),
        threshold,
        spend: state.spend,
        amount: state.amount,
        projected: state.projected,
        period: state.period.clone(),
        period_start: state.period_start,
        period_end: state.period_end,
    };
    out.push(alert);
}

fn threshold_text(threshold: f64) -> String {
    // 0.8 → "0.8", 1.0 → "1": the id stays the same however the list was written.
    let text = format!("{threshold:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn message(state: &BudgetState, kind: &str, threshold: f64, period_day: &str) -> String {
    let name = state.name.as_deref().unwrap_or(&state.budget_id);
    let scope = match &state.scope_value {
        Some(value) => format!("{}={value}", state.scope),
        None => state.scope.clone(),
    };
    let spend = usd(state.spend);
    let amount = usd(state.amount);
    let projected = state
        .projected
        .map(|p| format!("; projected ${p:.2} by period end"))
        .unwrap_or_default();
    match kind {
        FORECAST => format!(
            "Budget {name} ({scope}, {} from {period_day}) is forecast to exceed ${amount}: \
             ${spend} spent so far{projected}",
            state.period
        ),
        _ => format!(
            "Budget {name} ({scope}, {} from {period_day}) reached {}% of ${amount}: \
             ${spend} spent{projected}",
            state.period,
            threshold_text(threshold * 100.0)
        ),
    }
}

/// USD at scale 12 → `1234.56` (rounded half away from zero to the cent).
pub fn usd(money: i128) -> String {
    let unit = 10i128.pow(MONEY_SCALE - 2);
    let cents = (money + money.signum() * unit / 2) / unit;
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.abs();
    format!("{sign}{}.{:02}", cents / 100, cents % 100)
}

/// USD at scale 12 → exact decimal text with the full scale trimmed (`12.5`).
pub fn exact(money: i128) -> String {
    rust_decimal::Decimal::try_from_i128_with_scale(money, MONEY_SCALE)
        .map(|d| d.normalize().to_string())
        .unwrap_or_else(|_| money.to_string())
}

fn money_to_f64(money: i128) -> f64 {
    money as f64 / 10f64.powi(MONEY_SCALE as i32)
}

pub(crate) fn f64_to_money(value: f64) -> Option<i128> {
    let scaled = (value * 10f64.powi(MONEY_SCALE as i32)).round();
    (scaled.is_finite() && scaled.abs() < 1e37).then_some(scaled as i128)
}

/// The ids already in `alerts`.
pub fn fired_ids(table: &ConfigTable) -> HashSet<String> {
    let rows = table.rows();
    let mut ids = HashSet::with_capacity(rows.num_rows());
    if let Some(column) = column(&rows, "alert_id").and_then(|c| c.as_string_opt::<i32>()) {
        ids.extend(column.iter().flatten().map(str::to_string));
    }
    ids
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a ArrayRef> {
    batch
        .schema()
        .index_of(name)
        .ok()
        .map(|index| batch.column(index))
}

/// Store `alerts` in one durable append. Returns once they are fsynced.
pub fn store(table: &ConfigTable, alerts: &[Alert]) -> Result<()> {
    if alerts.is_empty() {
        return Ok(());
    }
    let def = schema::table_def("alerts")
        .ok_or_else(|| Error::Invalid("built-in table alerts is missing".into()))?;
    let text = |f: &dyn Fn(&Alert) -> Option<String>| -> ArrayRef {
        Arc::new(alerts.iter().map(f).collect::<StringArray>())
    };
    let money = |f: &dyn Fn(&Alert) -> Option<i128>, data_type| -> Result<ArrayRef> {
        let array = alerts.iter().map(f).collect::<Decimal128Array>();
        Ok(Arc::new(array.with_data_type(data_type)))
    };
    let micros = |f: &dyn Fn(&Alert) -> Option<i64>| -> ArrayRef {
        Arc::new(
            alerts
                .iter()
                .map(f)
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("+00:00"),
        )
    };
    let ratio_scale = match schema::RATIO {
        arrow::datatypes::DataType::Decimal128(_, scale) => scale as i32,
        _ => 4,
    };
    let columns: Vec<ArrayRef> = vec![
        text(&|a| Some(a.alert_id.clone())),
        micros(&|a| Some(a.fired_at.timestamp_micros())),
        text(&|a| Some(a.kind.to_string())),
        text(&|a| Some(a.budget_id.clone())),
        text(&|a| Some(a.scope.clone())),
        text(&|a| a.scope_value.clone()),
        money(
            &|a| Some((a.threshold * 10f64.powi(ratio_scale)).round() as i128),
            schema::RATIO,
        )?,
        money(&|a| Some(a.spend), schema::MONEY)?,
        money(&|a| a.projected.and_then(f64_to_money), schema::MONEY)?,
        text(&|a| Some(a.message.clone())),
        micros(&|_| None),
        text(&|_| None),
    ];
    let batch = RecordBatch::try_new(Arc::clone(&def.schema), columns)?;
    table.append(&[batch])?;
    Ok(())
}

/// An alert that still has to be delivered to its budget's webhook.
#[derive(Debug, Clone)]
pub struct Pending {
    pub alert_id: String,
    pub url: String,
    pub body: serde_json::Value,
    pub message: String,
}

/// Alerts fired within the delivery window with neither `delivered_at` nor
/// `delivery_error`, for budgets that have a `notify` URL now.
pub fn pending(
    table: &ConfigTable,
    budgets: &[BudgetState],
    now: DateTime<Utc>,
) -> Result<Vec<Pending>> {
    let rows = table.rows();
    let get = |name: &str| {
        column(&rows, name).ok_or_else(|| Error::Invalid(format!("alerts has no column {name}")))
    };
    let ids = get("alert_id")?.as_string::<i32>();
    let kinds = get("kind")?.as_string::<i32>();
    let budget_ids = get("budget_id")?.as_string::<i32>();
    let messages = get("message")?.as_string::<i32>();
    let fired_at = get("fired_at")?.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
    let threshold = get("threshold")?.as_primitive::<arrow::datatypes::Decimal128Type>();
    let spend = get("spend")?.as_primitive::<arrow::datatypes::Decimal128Type>();
    let projected = get("projected")?.as_primitive::<arrow::datatypes::Decimal128Type>();
    let delivered = get("delivered_at")?;
    let errors = get("delivery_error")?;
    let oldest = now.timestamp_micros() - DELIVERY_WINDOW_SECONDS * 1_000_000;
    let mut out = Vec::new();
    for row in 0..rows.num_rows() {
        if delivered.is_valid(row) || errors.is_valid(row) || fired_at.value(row) < oldest {
            continue;
        }
        if !budget_ids.is_valid(row) {
            continue;
        }
        let Some(budget) = budgets
            .iter()
            .find(|b| b.budget_id == budget_ids.value(row))
        else {
            continue;
        };
        let Some(url) = budget.notify.clone() else {
            continue;
        };
        let message = if messages.is_valid(row) {
            messages.value(row).to_string()
        } else {
            String::new()
        };
        let decimal = |array: &Decimal128Array, scale: u32| {
            array.is_valid(row).then(|| {
                rust_decimal::Decimal::try_from_i128_with_scale(array.value(row), scale)
                    .map(|d| d.normalize().to_string())
                    .unwrap_or_default()
            })
        };
        let body = serde_json::json!({
            "alert_id": ids.value(row),
            "kind": kinds.value(row),
            "fired_at": DateTime::from_timestamp_micros(fired_at.value(row)).map(|t| t.to_rfc3339()),
            "budget_id": budget.budget_id,
            "budget_name": budget.name,
            "scope": budget.scope,
            "scope_value": budget.scope_value,
            "period": budget.period,
            "period_start": DateTime::from_timestamp(budget.period_start, 0).map(|t| t.to_rfc3339()),
            "period_end": DateTime::from_timestamp(budget.period_end, 0).map(|t| t.to_rfc3339()),
            "amount": exact(budget.amount),
            "threshold": decimal(threshold, 4),
            "spend": decimal(spend, MONEY_SCALE),
            "projected": decimal(projected, MONEY_SCALE),
            "enforcement": budget.enforcement,
            "message": message,
        });
        out.push(Pending {
            alert_id: ids.value(row).to_string(),
            url,
            body,
            message,
        });
    }
    Ok(out)
}

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered(DateTime<Utc>),
    Failed(String),
}

/// Record a delivery's outcome on its alert row (durably). Retries if another writer
/// changed the table in between.
pub fn record(table: &ConfigTable, alert_id: &str, outcome: &Outcome) -> Result<()> {
    let mut last_error = None;
    for _ in 0..5 {
        let (rows, version) = table.rows_with_version();
        let updated = with_outcome(&rows, alert_id, outcome)?;
        let Some(updated) = updated else {
            // The row was deleted meanwhile: nothing to record.
            return Ok(());
        };
        match table.replace(updated, version) {
            Ok(()) => return Ok(()),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| Error::Invalid("alerts changed repeatedly".into())))
}

fn with_outcome(
    rows: &RecordBatch,
    alert_id: &str,
    outcome: &Outcome,
) -> Result<Option<RecordBatch>> {
    let schema = rows.schema();
    let index = |name: &str| {
        schema
            .index_of(name)
            .map_err(|_| Error::Invalid(format!("alerts has no column {name}")))
    };
    let ids = rows.column(index("alert_id")?).as_string::<i32>();
    // Every row with the id (ids are unique unless a user inserted a copy).
    let targets: Vec<bool> = (0..rows.num_rows())
        .map(|r| ids.is_valid(r) && ids.value(r) == alert_id)
        .collect();
    if !targets.contains(&true) {
        return Ok(None);
    }
    let delivered_index = index("delivered_at")?;
    let error_index = index("delivery_error")?;
    let old_delivered = rows
        .column(delivered_index)
        .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
    let old_errors = rows.column(error_index).as_string::<i32>();
    let delivered: TimestampMicrosecondArray = (0..rows.num_rows())
        .map(|r| match outcome {
            Outcome::Delivered(at) if targets[r] => Some(at.timestamp_micros()),
            _ => old_delivered.is_valid(r).then(|| old_delivered.value(r)),
        })
        .collect();
    let errors: StringArray = (0..rows.num_rows())
        .map(|r| match outcome {
            Outcome::Failed(reason) if targets[r] => Some(reason.clone()),
            _ => old_errors
                .is_valid(r)
                .then(|| old_errors.value(r).to_string()),
        })
        .collect();
    let mut columns = rows.columns().to_vec();
    columns[delivered_index] = Arc::new(delivered.with_timezone("+00:00"));
    columns[error_index] = Arc::new(errors);
    Ok(Some(RecordBatch::try_new(schema, columns)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const USD: i128 = 1_000_000_000_000;

    fn state(spend_usd: i128, projected: Option<f64>) -> BudgetState {
        let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).single().unwrap();
        BudgetState {
            budget_id: "search-monthly".into(),
            name: Some("Search".into()),
            scope: "team".into(),
            scope_value: Some("search".into()),
            period: "month".into(),
            period_start: start.timestamp(),
            period_end: start.timestamp() + 30 * 86_400,
            amount: 100 * USD,
            spend: spend_usd * USD,
            projected,
            thresholds: "0.5,0.8,1.0".into(),
            enforcement: "alert".into(),
            notify: None,
        }
    }

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, 12, 0, 0)
            .single()
            .unwrap()
    }

    #[test]
    fn crossing_thresholds_fires_each_once() {
        let mut fired = HashSet::new();
        let first = due(&[state(55, None)], at(20), &fired);
        assert_eq!(first.len(), 1);
        assert_eq!(
            first[0].alert_id,
            "search-monthly:2026-11-01:budget_threshold:0.5"
        );
        assert_eq!(first[0].kind, THRESHOLD);
        assert!(
            first[0].message.contains("reached 50% of $100.00"),
            "{}",
            first[0].message
        );
        fired.extend(first.into_iter().map(|a| a.alert_id));
        assert!(due(&[state(60, None)], at(21), &fired).is_empty());
        // A jump over two thresholds fires both.
        let next: Vec<_> = due(&[state(130, None)], at(22), &fired)
            .into_iter()
            .map(|a| a.alert_id)
            .collect();
        assert_eq!(
            next,
            [
                "search-monthly:2026-11-01:budget_threshold:0.8",
                "search-monthly:2026-11-01:budget_threshold:1"
            ]
        );
    }

    #[test]
    fn one_id_fires_once_even_from_two_budget_rows() {
        let twice = [state(90, None), state(90, None)];
        let due_now = due(&twice, at(20), &HashSet::new());
        assert_eq!(due_now.len(), 2, "0.5 and 0.8, once each: {due_now:?}");
    }

    #[test]
    fn a_new_period_fires_again() {
        let fired: HashSet<_> = due(&[state(90, None)], at(20), &HashSet::new())
            .into_iter()
            .map(|a| a.alert_id)
            .collect();
        let mut december = state(90, None);
        december.period_start += 30 * 86_400;
        december.period_end += 31 * 86_400;
        let again = due(&[december], at(20), &fired);
        assert_eq!(again.len(), 2);
        assert!(again[0].alert_id.starts_with("search-monthly:2026-12-01:"));
    }

    #[test]
    fn forecast_alert_waits_for_a_tenth_of_the_period_and_stops_once_exceeded() {
        let fired = HashSet::new();
        // Day 2 of 30: too early to trust a run rate.
        assert!(due(&[state(10, Some(150.0))], at(2), &fired).is_empty());
        let later = due(&[state(40, Some(120.0))], at(10), &fired);
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].kind, FORECAST);
        assert!(later[0].message.contains("forecast to exceed $100.00"));
        // Under the projection: nothing.
        assert!(due(&[state(40, Some(99.0))], at(10), &fired).is_empty());
    }

    #[test]
    fn zero_amount_budgets_and_bad_thresholds_fire_no_threshold_alert() {
        let mut zero = state(5, None);
        zero.amount = 0;
        assert!(due(&[zero], at(20), &HashSet::new()).is_empty());
        let mut bad = state(90, None);
        bad.thresholds = "half".into();
        assert!(due(&[bad], at(20), &HashSet::new()).is_empty());
    }

    #[test]
    fn money_text_is_exact_and_rounds_to_cents_for_messages() {
        assert_eq!(usd(12_345_678_900_000), "12.35");
        assert_eq!(usd(-5_000_000_000), "-0.01");
        assert_eq!(exact(12_500_000_000_000), "12.5");
        assert_eq!(threshold_text(0.8), "0.8");
        assert_eq!(threshold_text(1.0), "1");
    }

    #[test]
    fn stored_alerts_are_found_pending_and_recorded() {
        let def = schema::table_def("alerts").unwrap();
        let table =
            ConfigTable::open("alerts", Arc::clone(&def.schema), None, Default::default()).unwrap();
        let mut budget = state(90, Some(120.0));
        let alerts = due(std::slice::from_ref(&budget), at(20), &HashSet::new());
        store(&table, &alerts).unwrap();
        // 50% and 80% crossed, and the projection is over the amount.
        assert_eq!(fired_ids(&table).len(), 3);
        // No URL: nothing to deliver.
        assert!(
            pending(&table, std::slice::from_ref(&budget), at(20))
                .unwrap()
                .is_empty()
        );
        budget.notify = Some("http://127.0.0.1:9/hook".into());
        let todo = pending(&table, std::slice::from_ref(&budget), at(20)).unwrap();
        assert_eq!(todo.len(), 3);
        assert_eq!(todo[0].body["spend"], "90");
        assert_eq!(todo[0].body["amount"], "100");
        assert_eq!(todo[0].body["threshold"], "0.5");
        assert_eq!(todo[0].body["projected"], "120");
        record(&table, &todo[0].alert_id, &Outcome::Delivered(at(20))).unwrap();
        record(
            &table,
            &todo[1].alert_id,
            &Outcome::Failed("HTTP 500".into()),
        )
        .unwrap();
        record(&table, &todo[2].alert_id, &Outcome::Delivered(at(20))).unwrap();
        assert_eq!(todo[2].body["kind"], FORECAST);
        assert!(
            pending(&table, std::slice::from_ref(&budget), at(20))
                .unwrap()
                .is_empty()
        );
        // Long-past alerts are not delivered late.
        let fresh = due(
            std::slice::from_ref(&{
                let mut s = state(100, None);
                s.notify = budget.notify.clone();
                s
            }),
            at(20),
            &fired_ids(&table),
        );
        store(&table, &fresh).unwrap();
        assert_eq!(
            pending(&table, std::slice::from_ref(&budget), at(20))
                .unwrap()
                .len(),
            1
        );
        assert!(
            pending(&table, std::slice::from_ref(&budget), at(22))
                .unwrap()
                .is_empty()
        );
    }
}
