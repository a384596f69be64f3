//! Budgets in their current period, computed by the `budget_status` view at a given time.
//!
//! The alert monitor and `budget_check` both read budgets through [`evaluate_at`], so an
//! alert and a gateway decision always agree with what `SELECT * FROM budget_status` shows.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Decimal128Type, Float64Type, Int64Type};
use chrono::{DateTime, Utc};

use crate::engine::Engine;
use crate::error::{Error, Result};

/// The `budget_status` view's SQL.
const BUDGET_STATUS_SQL: &str = include_str!("../../sql/views/budget_status.sql");

/// Scale of `MONEY` (`DECIMAL(38,12)`).
pub(crate) const MONEY_SCALE: u32 = 12;

/// One budget in its current period.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetState {
    pub budget_id: String,
    pub name: Option<String>,
    pub scope: String,
    pub scope_value: Option<String>,
    pub period: String,
    /// Period bounds, seconds since the epoch (UTC day boundaries).
    pub period_start: i64,
    pub period_end: i64,
    /// USD at scale 12.
    pub amount: i128,
    /// Spend so far in the period, USD at scale 12.
    pub spend: i128,
    /// Period-end spend at the run rate so far.
    pub projected: Option<f64>,
    pub thresholds: String,
    pub enforcement: String,
    pub notify: Option<String>,
}

impl BudgetState {
    /// The thresholds as fractions of the amount, ascending. Unparsable entries are
    /// skipped (and reported once per evaluation by the caller).
    pub fn threshold_fractions(&self) -> std::result::Result<Vec<f64>, String> {
        let mut out = Vec::new();
        for part in self.thresholds.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            match part.parse::<f64>() {
                Ok(t) if t.is_finite() && t > 0.0 => out.push(t),
                _ => return Err(format!("threshold {part:?} is not a positive number")),
            }
        }
        out.sort_by(f64::total_cmp);
        out.dedup();
        Ok(out)
    }

    /// Fraction of the period elapsed at `now`, in [0, 1].
    pub fn elapsed_fraction(&self, now: DateTime<Utc>) -> f64 {
        let length = (self.period_end - self.period_start).max(1) as f64;
        ((now.timestamp() - self.period_start) as f64 / length).clamp(0.0, 1.0)
    }
}

/// The view's SQL with `now()` fixed at `now`, so a budget can be evaluated at any time.
fn budget_status_sql_at(now: DateTime<Utc>) -> String {
    let nanos = now.timestamp_micros().saturating_mul(1000);
    let at = format!("arrow_cast({nanos}, 'Timestamp(Nanosecond, Some(\"+00:00\"))')");
    BUDGET_STATUS_SQL.replace("now()", &at)
}

/// Every active budget in its period containing `now`.
pub async fn evaluate_at(engine: &Engine, now: DateTime<Utc>) -> Result<Vec<BudgetState>> {
    let sql = format!(
        "SELECT budget_id, name, scope, scope_value, period, \
           CAST(extract(epoch FROM period_start) AS BIGINT), \
           CAST(extract(epoch FROM period_end) AS BIGINT), \
           CAST(amount AS DECIMAL(38, 12)), CAST(spend AS DECIMAL(38, 12)), \
           CAST(projected_spend AS DOUBLE), thresholds, enforcement, notify \
         FROM ({}) ORDER BY budget_id",
        budget_status_sql_at(now)
    );
    let batches = engine.background_sql(&sql).await?.collect().await?;
    let mut states = Vec::new();
    for batch in &batches {
        read_states(batch, &mut states)?;
    }
    Ok(states)
}

fn read_states(batch: &RecordBatch, out: &mut Vec<BudgetState>) -> Result<()> {
    // The text columns, by their index in the result.
    let texts = [0, 1, 2, 3, 4, 10, 11, 12]
        .map(|i| super::text_column(batch.column(i)).map(|column| (i, column)));
    let texts = texts.into_iter().collect::<Result<Vec<_>>>()?;
    let text = |i: usize, row: usize| -> Option<String> {
        let (_, column) = texts.iter().find(|(index, _)| *index == i)?;
        column.is_valid(row).then(|| column.value(row).to_string())
    };
    let required = |i: usize, row: usize| {
        text(i, row).ok_or_else(|| Error::Invalid(format!("budget_status column {i} is NULL")))
    };
    let int = batch.column(5).as_primitive_opt::<Int64Type>();
    let end = batch.column(6).as_primitive_opt::<Int64Type>();
    let amount = batch.column(7).as_primitive_opt::<Decimal128Type>();
    let spend = batch.column(8).as_primitive_opt::<Decimal128Type>();
    let projected = batch.column(9).as_primitive_opt::<Float64Type>();
    let (Some(start), Some(end), Some(amount), Some(spend), Some(projected)) =
        (int, end, amount, spend, projected)
    else {
        return Err(Error::Invalid(
            "budget_status returned unexpected column types".into(),
        ));
    };
    for row in 0..batch.num_rows() {
        out.push(BudgetState {
            budget_id: required(0, row)?,
            name: text(1, row),
            scope: required(2, row)?,
            scope_value: text(3, row),
            period: required(4, row)?,
            period_start: start.value(row),
            period_end: end.value(row),
            amount: amount.value(row),
            spend: spend.value(row),
            projected: projected.is_valid(row).then(|| projected.value(row)),
            thresholds: required(10, row)?,
            enforcement: required(11, row)?,
            notify: text(12, row).filter(|url| !url.trim().is_empty()),
        });
    }
    Ok(())
}

/// Every budget as evaluated at one time.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub at: DateTime<Utc>,
    pub states: Vec<BudgetState>,
}

/// What a cached evaluation was computed from: a change to any of these makes it stale.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Inputs {
    usage_commits: u64,
    table_versions: Vec<u64>,
    day: i64,
}

/// The tables whose contents change a budget's spend or its definition.
const INPUT_TABLES: &[&str] = &[
    "budgets",
    "pricing",
    "models",
    "contracts",
    "attribution_rules",
];

/// Which cached evaluations a caller accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reuse {
    /// Only one computed from exactly the current inputs.
    Unchanged,
    /// Also one behind on usage by at most the book's `max_staleness`.
    WithinStaleness,
}

#[derive(Debug)]
struct Cached {
    inputs: Inputs,
    at: Instant,
    evaluation: Arc<Evaluation>,
}

/// The latest evaluation of every budget, shared by `budget_check` calls and the monitor.
///
/// A cached evaluation is reused while nothing it was computed from has changed, so by
/// default every answer is exact. With a `max_staleness` (`[alerts]
/// budget_check_staleness`), it is also reused for that long after new usage arrives —
/// the monitor re-evaluates after every commit — which keeps gateway checks at a lookup
/// while ingest runs continuously.
#[derive(Debug, Default)]
pub struct BudgetBook {
    cached: Mutex<Option<Cached>>,
    refresh: tokio::sync::Mutex<()>,
    max_staleness: Mutex<Duration>,
}

impl BudgetBook {
    /// Allow answers up to `staleness` old while usage keeps arriving.
    pub fn set_max_staleness(&self, staleness: Duration) {
        if let Ok(mut slot) = self.max_staleness.lock() {
            *slot = staleness;
        }
    }

    fn inputs(engine: &Engine) -> Inputs {
        Inputs {
            usage_commits: engine.usage_commit_count(),
            table_versions: INPUT_TABLES
                .iter()
                .map(|name| engine.config_table(name).map_or(0, |t| t.version()))
                .collect(),
            day: Utc::now().timestamp().div_euclid(86_400),
        }
    }

    fn usable(&self, inputs: &Inputs, reuse: Reuse) -> Option<Arc<Evaluation>> {
        let staleness = match reuse {
            Reuse::Unchanged => Duration::ZERO,
            Reuse::WithinStaleness => self.max_staleness.lock().map_or(Duration::ZERO, |s| *s),
        };
        let cached = self.cached.lock().ok()?;
        let cached = cached.as_ref()?;
        let same_config = cached.inputs.table_versions == inputs.table_versions
            && cached.inputs.day == inputs.day;
        let fresh_usage =
            cached.inputs.usage_commits == inputs.usage_commits || cached.at.elapsed() <= staleness;
        (same_config && fresh_usage).then(|| Arc::clone(&cached.evaluation))
    }

    /// Budgets now: the cached evaluation if still usable, else a new one.
    pub async fn current(&self, engine: &Engine) -> Result<Arc<Evaluation>> {
        self.current_with(engine, Reuse::WithinStaleness, None)
            .await
    }

    /// Budgets now for the monitor: the cached evaluation only if nothing it was computed
    /// from has changed (the staleness allowance does not apply) and it is younger than
    /// `max_age`, else a new one.
    pub async fn current_exact(
        &self,
        engine: &Engine,
        max_age: Duration,
    ) -> Result<Arc<Evaluation>> {
        self.current_with(engine, Reuse::Unchanged, Some(max_age))
            .await
    }

    async fn current_with(
        &self,
        engine: &Engine,
        reuse: Reuse,
        max_age: Option<Duration>,
    ) -> Result<Arc<Evaluation>> {
        let young_enough = |evaluation: Arc<Evaluation>| {
            let age = (Utc::now() - evaluation.at)
                .to_std()
                .unwrap_or(Duration::ZERO);
            max_age.is_none_or(|max| age <= max).then_some(evaluation)
        };
        if let Some(evaluation) = self
            .usable(&Self::inputs(engine), reuse)
            .and_then(young_enough)
        {
            return Ok(evaluation);
        }
        let _one_at_a_time = self.refresh.lock().await;
        if let Some(evaluation) = self
            .usable(&Self::inputs(engine), reuse)
            .and_then(young_enough)
        {
            return Ok(evaluation);
        }
        self.refresh_now(engine).await
    }

    /// Evaluate now and cache the result, whatever the cache holds.
    pub async fn refresh_now(&self, engine: &Engine) -> Result<Arc<Evaluation>> {
        // Inputs are read before the query: a change during it makes the cache stale.
        let inputs = Self::inputs(engine);
        let at = Utc::now();
        let evaluation = Arc::new(Evaluation {
            at,
            states: evaluate_at(engine, at).await?,
        });
        if let Ok(mut slot) = self.cached.lock() {
            *slot = Some(Cached {
                inputs,
                at: Instant::now(),
                evaluation: Arc::clone(&evaluation),
            });
        }
        Ok(evaluation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_view_sql_at_a_time_has_no_now_left() {
        let at = Utc
            .with_ymd_and_hms(2026, 3, 15, 12, 0, 0)
            .single()
            .unwrap();
        let sql = budget_status_sql_at(at);
        assert!(!sql.contains("now()"));
        assert!(sql.contains(&(at.timestamp() * 1_000_000_000).to_string()));
    }

    #[test]
    fn thresholds_parse_sorted_and_reject_garbage() {
        let mut state = BudgetState {
            budget_id: "b".into(),
            name: None,
            scope: "global".into(),
            scope_value: None,
            period: "month".into(),
            period_start: 0,
            period_end: 100,
            amount: 0,
            spend: 0,
            projected: None,
            thresholds: "1.0, 0.5,0.8,0.5".into(),
            enforcement: "alert".into(),
            notify: None,
        };
        assert_eq!(state.threshold_fractions(), Ok(vec![0.5, 0.8, 1.0]));
        state.thresholds = "0.5,lots".into();
        assert!(state.threshold_fractions().is_err());
        state.thresholds = "-1".into();
        assert!(state.threshold_fractions().is_err());
    }

    async fn run(engine: &Engine, sql: &str) {
        engine.sql(sql).await.unwrap().collect().await.unwrap();
    }

    #[tokio::test]
    async fn evaluation_at_a_time_uses_that_times_period() {
        let engine = Engine::in_memory().await.unwrap();
        run(
            &engine,
            "INSERT INTO pricing (provider, model, effective_from, input_per_mtok, \
                 output_per_mtok) VALUES ('openai', 'gpt-4o', '2020-01-01T00:00:00Z', 1, 1)",
        )
        .await;
        run(
            &engine,
            "INSERT INTO usage (event_id, ts, provider, model, input_tokens, output_tokens, \
                 team) VALUES ('a', '2026-03-02T00:00:00Z', 'openai', 'gpt-4o', 3000000, 0, 's'), \
                 ('b', '2026-04-02T00:00:00Z', 'openai', 'gpt-4o', 5000000, 0, 's')",
        )
        .await;
        run(
            &engine,
            "INSERT INTO budgets (budget_id, scope, scope_value, period, amount, notify) \
                 VALUES ('m', 'team', 's', 'month', 10, ' ')",
        )
        .await;
        let march = Utc.with_ymd_and_hms(2026, 3, 11, 0, 0, 0).single().unwrap();
        let states = evaluate_at(&engine, march).await.unwrap();
        assert_eq!(states.len(), 1);
        let m = &states[0];
        assert_eq!(m.spend, 3 * 10i128.pow(MONEY_SCALE));
        assert_eq!(m.amount, 10 * 10i128.pow(MONEY_SCALE));
        let march_1 = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).single().unwrap();
        assert_eq!(m.period_start, march_1.timestamp());
        assert_eq!(m.period_end, march_1.timestamp() + 31 * 86_400);
        // 3 USD in 10 of 31 days.
        let projected = m.projected.unwrap();
        assert!((projected - 3.0 * 31.0 / 10.0).abs() < 1e-9, "{projected}");
        assert_eq!(m.notify, None, "a blank URL is no URL");
        let april = Utc.with_ymd_and_hms(2026, 4, 20, 0, 0, 0).single().unwrap();
        let states = evaluate_at(&engine, april).await.unwrap();
        assert_eq!(states[0].spend, 5 * 10i128.pow(MONEY_SCALE));
    }

    #[tokio::test]
    async fn projection_follows_the_trend_once_there_are_five_complete_days() {
        let engine = Engine::in_memory().await.unwrap();
        run(
            &engine,
            "INSERT INTO pricing (provider, model, effective_from, input_per_mtok, \
                 output_per_mtok) VALUES ('openai', 'gpt-4o', '2020-01-01T00:00:00Z', 1, 1)",
        )
        .await;
        run(
            &engine,
            "INSERT INTO budgets (budget_id, scope, scope_value, period, amount) \
                 VALUES ('m', 'team', 's', 'month', 1000)",
        )
        .await;
        // Day d of March costs d USD.
        let insert_days = |days: std::ops::RangeInclusive<u32>| {
            let rows: Vec<String> = days
                .map(|d| {
                    format!(
                        "('e{d}', '2026-03-{d:02}T12:00:00Z', 'openai', 'gpt-4o', {}, 0, 's')",
                        d * 1_000_000
                    )
                })
                .collect();
            format!(
                "INSERT INTO usage (event_id, ts, provider, model, input_tokens, output_tokens, \
                 team) VALUES {}",
                rows.join(", ")
            )
        };
        run(&engine, &insert_days(1..=3)).await;
        // Three complete days: their mean for the remaining 3/4 of day 4 and days 5 to 31.
        let day_4 = Utc.with_ymd_and_hms(2026, 3, 4, 6, 0, 0).single().unwrap();
        let m = &evaluate_at(&engine, day_4).await.unwrap()[0];
        let projected = m.projected.unwrap();
        assert!(
            (projected - (6.0 + 2.0 * (0.75 + 27.0))).abs() < 1e-6,
            "{projected}"
        );

        run(&engine, &insert_days(4..=10)).await;
        let day_11 = Utc.with_ymd_and_hms(2026, 3, 11, 0, 0, 0).single().unwrap();
        let m = &evaluate_at(&engine, day_11).await.unwrap()[0];
        assert_eq!(m.spend, 55 * 10i128.pow(MONEY_SCALE));
        // The run rate would say 55 × 31 / 10 = 170.5; days 11 to 31 continuing the line
        // add 441.
        let projected = m.projected.unwrap();
        assert!((projected - (55.0 + 441.0)).abs() < 25.0, "{projected}");
    }

    #[tokio::test]
    async fn the_monitor_reuses_an_evaluation_only_while_its_inputs_and_age_allow() {
        let engine = Engine::in_memory().await.unwrap();
        run(
            &engine,
            "INSERT INTO budgets (budget_id, scope, period, amount) VALUES ('g', 'global', 'month', 10)",
        )
        .await;
        let book = engine.budgets();
        let hour = Duration::from_secs(3_600);
        let first = book.current_exact(&engine, hour).await.unwrap();
        let again = book.current_exact(&engine, hour).await.unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "nothing changed: no new evaluation"
        );

        // Any staleness allowance is for gateways, not for the monitor.
        book.set_max_staleness(hour);
        run(
            &engine,
            "INSERT INTO usage (event_id, ts, provider, model, input_tokens, output_tokens) \
             VALUES ('u', now(), 'openai', 'gpt-4o', 1, 1)",
        )
        .await;
        let after_usage = book.current_exact(&engine, hour).await.unwrap();
        assert!(
            !Arc::ptr_eq(&again, &after_usage),
            "new usage: re-evaluated"
        );
        let for_a_gateway = book.current(&engine).await.unwrap();
        assert!(Arc::ptr_eq(&after_usage, &for_a_gateway));

        run(&engine, "UPDATE budgets SET amount = 20").await;
        let after_budget = book.current_exact(&engine, hour).await.unwrap();
        assert!(
            !Arc::ptr_eq(&after_usage, &after_budget),
            "budget changed: re-evaluated"
        );
        assert_eq!(after_budget.states[0].amount, 20 * 10i128.pow(MONEY_SCALE));

        tokio::time::sleep(Duration::from_millis(20)).await;
        let aged = book
            .current_exact(&engine, Duration::from_millis(10))
            .await
            .unwrap();
        assert!(!Arc::ptr_eq(&after_budget, &aged), "too old: re-evaluated");
    }
}
