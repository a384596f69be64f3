//! `project_period_end(ts, value, period_end [, as_of])`: what a series will add up to by the
//! end of a period — the values so far plus the forecast of the rest.

use std::sync::LazyLock;

use arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};

use crate::forecasting::{self, Fill, Grid, Method};
use crate::series_agg::{Finish, Points, SeriesAccumulator, is_number, is_time, timestamp_type};

const NAME: &str = "project_period_end";
/// Fewer complete steps than this and the rest of the period is projected at their mean
/// (the run rate): a trend fitted to a handful of points swings too far.
pub const MIN_STEPS_FOR_TREND: usize = 5;
/// The most steps projected: a period end further away than this is refused.
const MAX_STEPS_AHEAD: i64 = 100_000;

/// The aggregate function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ProjectPeriodEndFunc {
    signature: Signature,
}

impl Default for ProjectPeriodEndFunc {
    fn default() -> Self {
        ProjectPeriodEndFunc {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::DOC_SECTION,
        "The expected total of a series by `period_end`: the sum of its values plus the \
         forecast (method 'auto', as `forecast` does it) of every step still to come before \
         `period_end`. Each point is a bucket of the series' own spacing (e.g. \
         `date_trunc('day', ts)`); missing buckets count as zero. With `as_of` (e.g. \
         `now()`), buckets that have not ended by then are partial: they are summed but not \
         fitted, only the part of the period after `as_of` is forecast, and buckets between \
         the last point and `as_of` count as zero. Without it, the last bucket is taken as \
         complete. With fewer than 5 complete buckets the rest of the period is projected at \
         their mean (the run rate); NULL with fewer than 2 distinct timestamps or no complete \
         bucket. `budget_status` uses it over daily (hourly for daily budgets) spend.",
        "project_period_end(ts, value, period_end [, as_of])",
    )
    .with_argument("ts", "Start of each bucket: timestamp or date.")
    .with_argument("value", "The bucket's total (cost, tokens, requests).")
    .with_argument("period_end", "When the period ends (exclusive); the latest per group counts.")
    .with_argument("as_of", "Optional: the time of the projection, usually now().")
    .with_sql_example(
        "```sql\n> SELECT team, project_period_end(day, cost, TIMESTAMP '2026-12-01', now())\n  FROM (SELECT team, date_trunc('day', ts) AS day, sum(effective_cost) AS cost FROM spend\n        WHERE ts >= date_trunc('month', now()) GROUP BY 1, 2)\n  GROUP BY team;\n```",
    )
    .build()
});

impl AggregateUDFImpl for ProjectPeriodEndFunc {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [ts, v, end] if is_time(ts) && is_number(v) && is_time(end) => {
                Ok(vec![timestamp_type(), DataType::Float64, timestamp_type()])
            }
            [ts, v, end, at] if is_time(ts) && is_number(v) && is_time(end) && is_time(at) => {
                Ok(vec![
                    timestamp_type(),
                    DataType::Float64,
                    timestamp_type(),
                    timestamp_type(),
                ])
            }
            _ => plan_err!(
                "{NAME} takes (timestamp, number, timestamp period_end [, timestamp as_of]), \
                 not {arg_types:?}"
            ),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(Points::state_fields(args.name, 2))
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(SeriesAccumulator::new(2, Projection)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

/// Points to projection: marks are `period_end` and `as_of`.
#[derive(Debug)]
struct Projection;

/// The projection of `grid` to `period_end` as of `as_of` (None: the end of its last step).
pub fn project(grid: &Grid, period_end: i64, as_of: Option<i64>) -> Result<Option<f64>, String> {
    let total: f64 = grid.values.iter().sum();
    let end_of = |i: i64| grid.time_of(i + 1).unwrap_or(i64::MAX);
    let n = grid.values.len() as i64;
    let as_of = as_of.unwrap_or_else(|| end_of(n - 1));
    // Steps that have ended by `as_of`, including empty ones after the last point.
    let mut complete = 0i64;
    while end_of(complete) <= as_of {
        complete += 1;
        if complete > n + MAX_STEPS_AHEAD {
            return Err("as_of is too far after the last point".to_string());
        }
    }
    if complete == 0 {
        return Ok(None);
    }
    let history: Vec<f64> = (0..complete)
        .map(|i| grid.values.get(i as usize).copied().unwrap_or(0.0))
        .collect();
    // Steps overlapping [as_of, period_end), with the share of each that is still to come.
    let mut shares = Vec::new();
    let mut step = complete;
    while grid.time_of(step).is_some_and(|start| start < period_end) {
        let start = grid.time_of(step).unwrap_or(i64::MAX);
        let end = end_of(step);
        let from = start.max(as_of);
        let to = end.min(period_end);
        let length = (i128::from(end) - i128::from(start)).max(1) as f64;
        shares.push((i128::from(to) - i128::from(from)).max(0) as f64 / length);
        step += 1;
        if shares.len() as i64 > MAX_STEPS_AHEAD {
            return Err(format!(
                "period_end is more than {MAX_STEPS_AHEAD} steps after the last point"
            ));
        }
    }
    if shares.is_empty() {
        return Ok(Some(total));
    }
    let yhat = if history.len() < MIN_STEPS_FOR_TREND {
        let mean = history.iter().sum::<f64>() / history.len() as f64;
        vec![mean; shares.len()]
    } else {
        forecasting::forecast(
            &history,
            shares.len(),
            Method::Auto,
            None,
            &grid.step.usual_seasons(),
        )
        .map(|f| f.yhat)
        .unwrap_or_default()
    };
    Ok(Some(
        total + yhat.iter().zip(&shares).map(|(y, s)| y * s).sum::<f64>(),
    ))
}

impl Finish for Projection {
    fn finish(&self, points: &mut Points) -> Result<ScalarValue> {
        let Some(period_end) = points.marks[0] else {
            return Ok(ScalarValue::Float64(None));
        };
        let as_of = points.marks[1];
        let grid = match forecasting::regularize(&mut points.points, Fill::Zero) {
            Ok(Some(grid)) => grid,
            Ok(None) => return Ok(ScalarValue::Float64(None)),
            Err(message) => return exec_err!("{NAME}: {message}"),
        };
        match project(&grid, period_end, as_of) {
            Ok(value) => Ok(ScalarValue::Float64(value)),
            Err(message) => exec_err!("{NAME}: {message}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecasting::Step;
    use arrow::array::{Array, AsArray};
    use datafusion::logical_expr::AggregateUDF;
    use datafusion::prelude::SessionContext;

    const DAY: i64 = 86_400_000_000;

    fn days(values: &[f64]) -> Grid {
        Grid {
            start: 0,
            step: Step::Micros(DAY),
            values: values.to_vec(),
        }
    }

    #[test]
    fn few_steps_project_the_run_rate_with_partial_steps() {
        // Two complete days of 10, the third (partial, as of noon) has 3 so far: the rest
        // of day 3 is half a day at 10, then days 4 and 5.
        let grid = days(&[10.0, 10.0, 3.0]);
        let projected = project(&grid, 5 * DAY, Some(2 * DAY + DAY / 2)).unwrap();
        assert_eq!(projected, Some(23.0 + 5.0 + 20.0));
        // Without as_of the last day is complete: (10 + 10 + 3) / 3 per day for 2 days.
        let projected = project(&grid, 5 * DAY, None).unwrap().unwrap();
        assert!((projected - (23.0 + 2.0 * 23.0 / 3.0)).abs() < 1e-9);
        // Days without spend before as_of count as zero.
        let projected = project(&days(&[10.0, 10.0]), 5 * DAY, Some(4 * DAY)).unwrap();
        assert_eq!(projected, Some(20.0 + 20.0 / 4.0));
        // A period already over adds nothing; nothing complete yet gives NULL.
        assert_eq!(project(&grid, 2 * DAY, None).unwrap(), Some(23.0));
        assert_eq!(project(&grid, 5 * DAY, Some(DAY / 2)).unwrap(), None);
    }

    #[test]
    fn ten_days_of_a_rising_line() {
        let grid = days(&(1..=10).map(f64::from).collect::<Vec<_>>());
        let projected = project(&grid, 31 * DAY, Some(10 * DAY)).unwrap().unwrap();
        assert!((projected - 496.0).abs() < 25.0, "{projected}");
    }

    #[test]
    fn longer_histories_follow_the_trend() {
        let grid = days(&(0..20).map(|d| 10.0 + d as f64).collect::<Vec<_>>());
        let projected = project(&grid, 25 * DAY, None).unwrap().unwrap();
        let sum_so_far: f64 = (0..20).map(|d| 10.0 + d as f64).sum();
        let rest: f64 = (20..25).map(|d| 10.0 + d as f64).sum();
        assert!((projected - (sum_so_far + rest)).abs() < 1.0, "{projected}");
    }

    #[tokio::test]
    async fn per_group_in_sql_with_nulls() {
        let ctx = SessionContext::new();
        ctx.register_udaf(AggregateUDF::new_from_impl(ProjectPeriodEndFunc::default()));
        let sql = "SELECT g, project_period_end(d, v, DATE '2026-01-06') AS p FROM (VALUES \
            ('a', DATE '2026-01-01', 4.0), ('a', DATE '2026-01-02', 6.0), ('a', NULL, 100.0), \
            ('b', DATE '2026-01-01', 1.0)) AS x(g, d, v) GROUP BY g ORDER BY g";
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let p = batches[0]
            .column(1)
            .as_primitive::<arrow::datatypes::Float64Type>();
        // a: 10 so far, then Jan 3, 4, 5 at the mean of 5.
        assert_eq!(p.value(0), 25.0);
        assert!(p.is_null(1), "one timestamp: no step, NULL");
        let error = ctx
            .sql("SELECT project_period_end(1, 1, 1)")
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("project_period_end takes"), "{error}");
    }
}
