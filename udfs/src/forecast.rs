//! `forecast(ts, value, horizon [, method [, season [, fill]]])`: the next `horizon` points
//! of a series, with 80% prediction intervals, per group.

use std::sync::{Arc, LazyLock};

use arrow::array::{ArrayRef, Float64Array, StructArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};

use crate::forecasting::{self, Fill, Method};
use crate::series_agg::{
    self, Finish, Points, SeriesAccumulator, is_number, is_time, timestamp_type,
};

const NAME: &str = "forecast";
/// The longest horizon accepted.
pub const MAX_HORIZON: i64 = 10_000;

/// The aggregate function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ForecastFunc {
    signature: Signature,
}

impl Default for ForecastFunc {
    fn default() -> Self {
        ForecastFunc {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// The fields of each forecast point.
pub fn point_fields() -> Fields {
    Fields::from(vec![
        Field::new("ts", timestamp_type(), true),
        Field::new("yhat", DataType::Float64, true),
        Field::new("lo", DataType::Float64, true),
        Field::new("hi", DataType::Float64, true),
    ])
}

/// `LIST<STRUCT<ts, yhat, lo, hi>>`.
pub fn return_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(
        DataType::Struct(point_fields()),
        true,
    )))
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::DOC_SECTION,
        "Forecasts the `horizon` points that follow a series, one per step after its last \
         timestamp, as a list of (ts, yhat, lo, hi) where lo and hi bound an 80% prediction \
         interval that widens with the horizon. The step is the series' own spacing: the \
         largest interval that divides every gap between timestamps (calendar months or \
         quarters when the points fall on the same day of month), so bucket raw events first \
         (`date_trunc('day', ts)` with `sum(effective_cost)`). Input order does not matter; values at \
         the same timestamp are added up; missing steps count as zero (fill \
         'interpolate' draws a line instead). Methods: 'linear' (least squares), 'holt' \
         (level and trend), 'holt_winters' (additive season), 'seasonal_naive' (the last \
         season repeated), and 'auto' (default), which scores Holt, Holt-Winters and \
         seasonal naive on the last two held-back tails of the history and averages the \
         best two, weighted by the inverse of their errors. Smoothing \
         parameters minimise the one-step squared error, as statsmodels' \
         ExponentialSmoothing does. The season is detected when not given (e.g. 7 for daily \
         data with a weekly pattern). Too little history falls back to a simpler method \
         (Holt-Winters needs two seasons and 3 points, Holt 5 points); fewer than 2 \
         timestamps give NULL. When no value is negative, forecasts and bounds are at least 0. \
         Use `unnest` to turn the list into rows.",
        "forecast(ts, value, horizon [, method [, season [, fill]]])",
    )
    .with_argument("ts", "Timestamp or date of each point.")
    .with_argument("value", "The series: a number per point (cost, tokens, requests).")
    .with_argument("horizon", "Constant number of steps to forecast, 1 to 10000.")
    .with_argument(
        "method",
        "Constant 'auto' (default), 'linear', 'holt', 'holt_winters' or 'seasonal_naive'.",
    )
    .with_argument(
        "season",
        "Constant seasonal period in steps for holt_winters; NULL or absent: detected.",
    )
    .with_argument(
        "fill",
        "Constant 'zero' (default: missing steps spent nothing) or 'interpolate'.",
    )
    .with_sql_example(
        "```sql\n> SELECT team, unnest(forecast(day, cost, 30)) AS point\n  FROM (SELECT team, date_trunc('day', ts) AS day, sum(effective_cost) AS cost FROM spend GROUP BY 1, 2)\n  GROUP BY team;\n```",
    )
    .build()
});

impl AggregateUDFImpl for ForecastFunc {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let text = |t: &DataType| {
            matches!(
                t,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
            )
        };
        let int = |t: &DataType| t.is_integer() || t.is_null();
        let ok = match arg_types {
            [ts, v, h, rest @ ..] if is_time(ts) && is_number(v) && int(h) => match rest {
                [] => true,
                [m] => text(m),
                [m, s] => text(m) && int(s),
                [m, s, f] => text(m) && int(s) && text(f),
                _ => false,
            },
            _ => false,
        };
        if !ok {
            return plan_err!(
                "{NAME} takes (timestamp, number, integer horizon [, text method [, integer \
                 season [, text fill]]]), not {arg_types:?}"
            );
        }
        let mut types = vec![timestamp_type(), DataType::Float64, DataType::Int64];
        let optional = [DataType::Utf8, DataType::Int64, DataType::Utf8];
        types.extend(optional.into_iter().take(arg_types.len() - 3));
        Ok(types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(return_type())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(Points::state_fields(args.name, 0))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let exprs = args.exprs;
        let Some(horizon) = series_agg::constant_int(exprs, 2, NAME, "horizon", 1..=MAX_HORIZON)?
        else {
            return plan_err!("{NAME}: horizon must not be NULL");
        };
        let method = match series_agg::constant_text(exprs, 3, NAME, "method")? {
            None => Method::Auto,
            Some(text) => match Method::parse(&text) {
                Some(m) => m,
                None => {
                    return plan_err!(
                        "{NAME}: unknown method '{text}' (use auto, linear, holt, holt_winters or seasonal_naive)"
                    );
                }
            },
        };
        let season = series_agg::constant_int(exprs, 4, NAME, "season", 2..=10_000)?;
        let fill = match series_agg::constant_text(exprs, 5, NAME, "fill")? {
            None => Fill::Zero,
            Some(text) => match Fill::parse(&text) {
                Some(f) => f,
                None => {
                    return plan_err!("{NAME}: unknown fill '{text}' (use zero or interpolate)");
                }
            },
        };
        Ok(Box::new(SeriesAccumulator::new(
            0,
            Settings {
                horizon: horizon as usize,
                method,
                season: season.map(|s| s as usize),
                fill,
            },
        )))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

/// The constant arguments of one call.
#[derive(Debug)]
struct Settings {
    horizon: usize,
    method: Method,
    season: Option<usize>,
    fill: Fill,
}

impl Finish for Settings {
    fn finish(&self, points: &mut Points) -> Result<ScalarValue> {
        let null = || ScalarValue::try_from(return_type());
        let grid = match forecasting::regularize(&mut points.points, self.fill) {
            Ok(Some(grid)) => grid,
            Ok(None) => return null(),
            Err(message) => return exec_err!("{NAME}: {message}"),
        };
        let Some(result) = forecasting::forecast(
            &grid.values,
            self.horizon,
            self.method,
            self.season,
            &grid.step.usual_seasons(),
        ) else {
            return null();
        };
        let last = grid.values.len() as i64 - 1;
        let times: Vec<Option<i64>> = (1..=self.horizon as i64)
            .map(|h| grid.time_of(last + h))
            .collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampMicrosecondArray::from(times).with_timezone("+00:00")),
            Arc::new(Float64Array::from(result.yhat)),
            Arc::new(Float64Array::from(result.lo)),
            Arc::new(Float64Array::from(result.hi)),
        ];
        let points = StructArray::try_new(point_fields(), columns, None)?;
        Ok(ScalarValue::List(Arc::new(series_agg::single_list(
            Arc::new(points),
            DataType::Struct(point_fields()),
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use datafusion::logical_expr::AggregateUDF;
    use datafusion::prelude::SessionContext;

    async fn run(sql: &str) -> Result<Vec<arrow::record_batch::RecordBatch>> {
        let ctx = SessionContext::new();
        ctx.register_udaf(AggregateUDF::new_from_impl(ForecastFunc::default()));
        ctx.sql(sql).await?.collect().await
    }

    #[tokio::test]
    async fn forecasts_per_group_in_any_order_and_unnests() {
        let batches = run(
            "SELECT g, p['ts'] AS ts, p['yhat'] AS yhat FROM ( \
               SELECT g, unnest(forecast(t, v, 2, 'linear')) AS p FROM (VALUES \
                 ('a', DATE '2026-01-03', 30), ('a', DATE '2026-01-01', 10), ('a', DATE '2026-01-02', 20), \
                 ('b', DATE '2026-01-01', 5), ('b', DATE '2026-01-02', 5), ('c', DATE '2026-01-01', 1) \
               ) AS x(g, t, v) GROUP BY g) ORDER BY g, ts",
        )
        .await
        .unwrap();
        let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        assert_eq!(batch.num_rows(), 4, "c has one point: NULL, no rows");
        let yhat = batch
            .column(2)
            .as_primitive::<arrow::datatypes::Float64Type>();
        let expected = [40.0, 50.0, 5.0, 5.0];
        for (i, e) in expected.iter().enumerate() {
            assert!((yhat.value(i) - e).abs() < 1e-9, "{batch:?}");
        }
        let ts = arrow::compute::cast(batch.column(1), &DataType::Utf8).unwrap();
        assert_eq!(ts.as_string::<i32>().value(0), "2026-01-04T00:00:00Z");
        assert_eq!(ts.as_string::<i32>().value(1), "2026-01-05T00:00:00Z");
    }

    #[tokio::test]
    async fn nulls_and_scalars() {
        // All values NULL: no points, NULL result.
        let batches = run("SELECT forecast(CAST(NULL AS TIMESTAMP), CAST(NULL AS DOUBLE), 3)")
            .await
            .unwrap();
        assert!(batches[0].column(0).is_null(0));
        let batches = run(
            "SELECT forecast(t, v, 1, 'holt') FROM (VALUES (TIMESTAMP '2026-01-01 00:00:00', 1.5), \
             (TIMESTAMP '2026-01-01 01:00:00', NULL), (TIMESTAMP '2026-01-01 02:00:00', 1.5)) AS x(t, v)",
        )
        .await
        .unwrap();
        let list = batches[0].column(0).as_list::<i32>();
        assert_eq!(list.value(0).len(), 1);
    }

    #[tokio::test]
    async fn bad_arguments_are_plan_errors() {
        for (sql, message) in [
            (
                "SELECT forecast(now(), 1.0, 0)",
                "horizon must be between 1 and 10000",
            ),
            (
                "SELECT forecast(now(), 1.0, 3, 'prophet')",
                "unknown method 'prophet'",
            ),
            (
                "SELECT forecast(now(), 1.0, 3, 'auto', 1)",
                "season must be between 2",
            ),
            (
                "SELECT forecast(now(), 1.0, 3, 'auto', 7, 'mean')",
                "unknown fill 'mean'",
            ),
            (
                "SELECT forecast(v, v, 3) FROM (VALUES (1)) AS x(v)",
                "forecast takes",
            ),
            (
                "SELECT forecast(now(), v, v) FROM (VALUES (1)) AS x(v)",
                "horizon must be a constant",
            ),
        ] {
            let error = run(sql).await.unwrap_err().to_string();
            assert!(error.contains(message), "{sql}: {error}");
        }
    }
}
