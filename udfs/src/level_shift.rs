//! `level_shift(value) OVER (PARTITION BY ... ORDER BY ...)`: evidence that a series has
//! moved to a new level — gradual growth, or a drop after an optimisation — rather than
//! jumped once.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::Result;
use datafusion::logical_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion::logical_expr::{
    Documentation, LimitEffect, PartitionEvaluator, Signature, Volatility, WindowUDFImpl,
};
use datafusion::physical_expr::PhysicalExpr;

use crate::robust;

const NAME: &str = "level_shift";
/// CUSUM allowance: residuals within ±K spreads add nothing.
const K: f64 = 1.0;
/// Residuals are clipped to ±CLIP spreads, so one spike cannot look like a shift.
const CLIP: f64 = 4.0;

/// The window function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LevelShiftFunc {
    signature: Signature,
}

impl Default for LevelShiftFunc {
    fn default() -> Self {
        LevelShiftFunc {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::DOC_SECTION,
        "A two-sided CUSUM of each point's robust residual against its series' trailing \
         window (the residual `anomaly_score` computes, clipped to ±4): positive and growing \
         while the series runs above its recent median, negative and falling while it runs \
         below, near zero otherwise. Residuals within ±1 add nothing, and a point back at \
         or across the trailing median ends the run, so the statistic returns to zero once \
         the trailing median has caught up with a new level (the data has acknowledged it). \
         |level_shift| ≥ 8 flags a sustained shift (the `anomalies` view's threshold). NULL for NULL \
         values and during `anomaly_score`'s warm-up.",
        "level_shift(value [, season]) OVER (PARTITION BY ... ORDER BY ...)",
    )
    .with_argument("value", "The series: a number per row.")
    .with_argument(
        "season",
        "Optional constant period in rows: residuals with seasonality taken out, as anomaly_score's.",
    )
    .with_sql_example(
        "```sql\n> SELECT day, cost, level_shift(cost) OVER (PARTITION BY feature ORDER BY day)\n  FROM daily_feature_cost;\n```",
    )
    .build()
});

impl WindowUDFImpl for LevelShiftFunc {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        robust::coerce(arg_types, NAME)
    }

    fn partition_evaluator(
        &self,
        _args: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        Ok(Box::new(robust::SeriesEvaluator::<Cusum>::new(NAME)))
    }

    fn field(&self, field_args: WindowUDFFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(
            field_args.name(),
            DataType::Float64,
            true,
        )))
    }

    fn limit_effect(&self, _args: &[Arc<dyn PhysicalExpr>]) -> LimitEffect {
        LimitEffect::None
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

/// The two one-sided sums, advanced one score at a time.
#[derive(Debug, Default)]
struct Cusum {
    up: f64,
    down: f64,
}

impl robust::PointStatistic for Cusum {
    fn step(&mut self, score: Option<f64>) -> Option<f64> {
        let residual = score?.clamp(-CLIP, CLIP);
        // A point back at (or across) the trailing median ends that side's run.
        self.up = if residual <= 0.0 {
            0.0
        } else {
            (self.up + residual - K).max(0.0)
        };
        self.down = if residual >= 0.0 {
            0.0
        } else {
            (self.down - residual - K).max(0.0)
        };
        Some(if self.up >= self.down {
            self.up
        } else {
            -self.down
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use robust::PointStatistic;

    /// The statistic for a whole series.
    fn cusum(values: &[Option<f64>], season: usize) -> Vec<Option<f64>> {
        let mut sums = Cusum::default();
        robust::scores(values, season)
            .into_iter()
            .map(|score| sums.step(score))
            .collect()
    }

    fn series(values: &[f64]) -> Vec<Option<f64>> {
        values.iter().copied().map(Some).collect()
    }

    #[test]
    fn a_step_up_accumulates_then_resets_once_the_median_catches_up() {
        // 20 days around 100, then a new level around 150.
        let mut values: Vec<f64> = (0..20).map(|d| 100.0 + f64::from(d % 3) - 1.0).collect();
        values.extend((0..30).map(|d| 150.0 + f64::from(d % 3) - 1.0));
        let out = cusum(&series(&values), 1);
        assert!(out[..7].iter().all(Option::is_none));
        // Flat before the step.
        assert!(out[7..20].iter().all(|v| v.unwrap().abs() < 1.0), "{out:?}");
        // Clipped residuals of 4 each, less the allowance: 3 a day.
        assert!((out[20].unwrap() - 3.0).abs() < 1e-9, "{:?}", out[20]);
        let peak = out[20..].iter().map(|v| v.unwrap()).fold(0.0, f64::max);
        assert!(peak >= 8.0 * 3.0, "a sustained shift: {peak}");
        // Once the trailing median is at the new level, back to about zero.
        assert!(out[40..].iter().all(|v| v.unwrap().abs() < 1.0), "{out:?}");
    }

    #[test]
    fn a_single_spike_is_not_a_shift_and_a_drop_is_negative() {
        let mut values = vec![100.0; 20];
        values[12] = 1000.0;
        let out = cusum(&series(&values), 1);
        assert!(out[12].unwrap() <= 3.0 + 1e-9, "{:?}", out[12]);
        assert!(out[19].unwrap().abs() < 1e-9, "{:?}", out[19]);

        let mut values = vec![100.0; 10];
        values.extend(vec![60.0; 10]);
        let out = cusum(&series(&values), 1);
        assert!(out[15].unwrap() < -8.0, "{:?}", out[15]);
    }

    #[test]
    fn nulls_stay_null() {
        let mut values = series(&[100.0; 8]);
        values.push(None);
        values.push(Some(100.0));
        let out = cusum(&values, 1);
        assert_eq!(out[8], None);
        assert_eq!(out[9], Some(0.0));
    }
}
