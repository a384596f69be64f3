//! `change_impact(ts, value, change_ts)`: how much a series moved when something changed
//! (a model switch, prompt caching turned on), with its weekly or daily pattern taken out.

use std::sync::{Arc, LazyLock};

use arrow::array::{ArrayRef, Float64Array, StructArray};
use arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};

use crate::forecasting::{self, Fill};
use crate::series_agg::{Finish, Points, SeriesAccumulator, is_number, is_time, timestamp_type};

const NAME: &str = "change_impact";
/// z of the 95% two-sided normal interval.
const Z95: f64 = 1.959_963_984_540_054;
/// At most this many seasons (or 8 × 7 steps without a season) on each side are compared.
const MAX_SEASONS: usize = 8;

/// The aggregate function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ChangeImpactFunc {
    signature: Signature,
}

impl Default for ChangeImpactFunc {
    fn default() -> Self {
        ChangeImpactFunc {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

fn fields() -> Fields {
    Fields::from(
        ["before", "after", "pct_change", "lo", "hi"]
            .map(|name| Field::new(name, DataType::Float64, true))
            .to_vec(),
    )
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::DOC_SECTION,
        "The effect of a change at `change_ts` on a series: `before` and `after` are the \
         mean value per step (the series' own spacing, as in `forecast`; missing steps count \
         as zero) just before and from the change, `pct_change` is (after − before) / before \
         in percent, and `lo`/`hi` bound it with a 95% interval. Seasonality is accounted for: \
         when a season is detected (e.g. 7 for daily data), both sides cover the same number \
         of whole seasons (up to 8) next to the change, and each point is adjusted by its \
         phase's effect estimated before the change, so a weekend does not pass for savings. \
         Without a season, up to 56 steps on each side are compared. The interval treats \
         adjusted points as independent. NULL with fewer than 2 steps on either side; \
         pct_change, lo and hi are NULL when `before` is 0.",
        "change_impact(ts, value, change_ts)",
    )
    .with_argument("ts", "Timestamp or date of each point.")
    .with_argument("value", "The series: cost, tokens, requests per step.")
    .with_argument("change_ts", "When the change took effect; the latest per group counts.")
    .with_sql_example(
        "```sql\n> SELECT feature, change_impact(day, cost, TIMESTAMP '2026-10-15') AS impact\n  FROM (SELECT feature, date_trunc('day', ts) AS day, sum(effective_cost) AS cost FROM spend GROUP BY 1, 2)\n  GROUP BY feature;\n```",
    )
    .build()
});

impl AggregateUDFImpl for ChangeImpactFunc {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [ts, v, at] if is_time(ts) && is_number(v) && is_time(at) => {
                Ok(vec![timestamp_type(), DataType::Float64, timestamp_type()])
            }
            _ => plan_err!(
                "{NAME} takes (timestamp, number, timestamp change_ts), not {arg_types:?}"
            ),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(fields()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(Points::state_fields(args.name, 1))
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(SeriesAccumulator::new(1, Measure)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

/// The measured effect.
#[derive(Debug, Clone, PartialEq)]
pub struct Impact {
    pub before: f64,
    pub after: f64,
    pub pct_change: Option<f64>,
    pub lo: Option<f64>,
    pub hi: Option<f64>,
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

fn variance(values: &[f64]) -> f64 {
    let m = mean(values);
    values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (values.len().max(2) - 1) as f64
}

/// The effect of the change at index `split` of an evenly spaced series.
pub fn impact(values: &[f64], split: usize, usual_seasons: &[usize]) -> Option<Impact> {
    let (before, after) = values.split_at(split.min(values.len()));
    if before.len() < 2 || after.len() < 2 {
        return None;
    }
    let season = forecasting::detect_season(before, usual_seasons).unwrap_or(0);
    let width = if season >= 2 {
        let seasons = (before.len() / season)
            .min(after.len() / season)
            .min(MAX_SEASONS);
        if seasons >= 1 {
            seasons * season
        } else {
            before.len().min(after.len())
        }
    } else {
        before.len().min(after.len()).min(MAX_SEASONS * 7)
    };
    // Each phase's average distance from the level, estimated before the change.
    let effects: Vec<f64> = if season >= 2 {
        let level = mean(before);
        (0..season)
            .map(|phase| {
                let same: Vec<f64> = (phase..before.len())
                    .step_by(season)
                    .map(|i| before[i])
                    .collect();
                mean(&same) - level
            })
            .collect()
    } else {
        vec![0.0]
    };
    let adjusted = |range: std::ops::Range<usize>| -> Vec<f64> {
        range
            .map(|i| values[i] - effects[i % effects.len()])
            .collect()
    };
    let window_before = adjusted(split - width..split);
    let window_after = adjusted(split..split + width);
    let (b, a) = (mean(&window_before), mean(&window_after));
    let se =
        (variance(&window_before) / width as f64 + variance(&window_after) / width as f64).sqrt();
    let percent = |x: f64| (b != 0.0).then(|| x / b.abs() * 100.0);
    Some(Impact {
        before: b,
        after: a,
        pct_change: percent(a - b),
        lo: percent(a - b - Z95 * se),
        hi: percent(a - b + Z95 * se),
    })
}

/// Points to impact: the mark is `change_ts`.
#[derive(Debug)]
struct Measure;

impl Finish for Measure {
    fn finish(&self, points: &mut Points) -> Result<ScalarValue> {
        let null = || ScalarValue::try_from(DataType::Struct(fields()));
        let Some(change) = points.marks[0] else {
            return null();
        };
        let grid = match forecasting::regularize(&mut points.points, Fill::Zero) {
            Ok(Some(grid)) => grid,
            Ok(None) => return null(),
            Err(message) => return exec_err!("{NAME}: {message}"),
        };
        let split = (0..grid.values.len())
            .find(|&i| grid.time_of(i as i64).is_none_or(|t| t >= change))
            .unwrap_or(grid.values.len());
        let Some(result) = impact(&grid.values, split, &grid.step.usual_seasons()) else {
            return null();
        };
        let column = |v: Option<f64>| -> ArrayRef { Arc::new(Float64Array::from(vec![v])) };
        let columns = vec![
            column(Some(result.before)),
            column(Some(result.after)),
            column(result.pct_change),
            column(result.lo),
            column(result.hi),
        ];
        Ok(ScalarValue::Struct(Arc::new(StructArray::try_new(
            fields(),
            columns,
            None,
        )?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use datafusion::logical_expr::AggregateUDF;
    use datafusion::prelude::SessionContext;

    fn weekly(weeks: usize, level: f64) -> Vec<f64> {
        let pattern = [1.0, 1.1, 1.2, 1.1, 1.0, 0.4, 0.3];
        (0..weeks * 7).map(|i| level * pattern[i % 7]).collect()
    }

    #[test]
    fn a_drop_is_measured_across_whole_weeks() {
        let mut values = weekly(6, 100.0);
        values.extend(weekly(3, 70.0));
        let result = impact(&values, 42, &[7]).unwrap();
        assert!(
            (result.pct_change.unwrap() + 30.0).abs() < 1e-9,
            "{result:?}"
        );
        assert!(result.lo.unwrap() <= -30.0 && result.hi.unwrap() >= -30.0);
        assert!(
            result.hi.unwrap() < 0.0,
            "a 30% drop is significant: {result:?}"
        );
    }

    #[test]
    fn a_change_on_a_weekend_is_not_mistaken_for_savings() {
        // No change at all, split on a Saturday with only two days after it.
        let values = weekly(6, 100.0);
        let result = impact(&values[..42], 40, &[7]).unwrap();
        assert!(result.pct_change.unwrap().abs() < 1e-9, "{result:?}");
    }

    #[test]
    fn too_little_data_or_a_zero_base() {
        assert_eq!(impact(&[1.0, 2.0, 3.0], 1, &[]), None);
        let result = impact(&[0.0, 0.0, 5.0, 5.0], 2, &[]).unwrap();
        assert_eq!(
            (result.before, result.after, result.pct_change),
            (0.0, 5.0, None)
        );
    }

    #[tokio::test]
    async fn per_group_in_sql() {
        let ctx = SessionContext::new();
        ctx.register_udaf(AggregateUDF::new_from_impl(ChangeImpactFunc::default()));
        let sql = "SELECT g, change_impact(d, v, DATE '2026-01-03') AS i FROM (VALUES \
            ('a', DATE '2026-01-01', 10), ('a', DATE '2026-01-02', 10), \
            ('a', DATE '2026-01-03', 5), ('a', DATE '2026-01-04', 5), \
            ('b', DATE '2026-01-01', 1)) AS x(g, d, v) GROUP BY g ORDER BY g";
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let impacts = batches[0].column(1).as_struct();
        let pct = impacts
            .column_by_name("pct_change")
            .unwrap()
            .as_primitive::<arrow::datatypes::Float64Type>();
        assert_eq!(pct.value(0), -50.0);
        assert!(impacts.is_null(1) || pct.is_null(1));
    }
}
