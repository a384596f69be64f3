//! Robust statistics over a series' trailing window, shared by `anomaly_score` and
//! `level_shift`: median and a scale that single outliers barely move.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Float64Array};
use arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{Result, exec_err};

/// How many earlier points the trailing window holds.
pub const WINDOW: usize = 28;
/// Fewer earlier points than this and a score is NULL.
pub const MIN_HISTORY: usize = 7;
/// MAD × this estimates a normal distribution's standard deviation.
const MAD_TO_SIGMA: f64 = 1.4826;
/// Mean absolute deviation × this estimates it too (used when the MAD is zero).
const MEAN_AD_TO_SIGMA: f64 = 1.2533;
/// The spread never counts as less than this share of the median's size, so a flat
/// history does not turn a cent's change into a huge score.
const MIN_RELATIVE_SPREAD: f64 = 0.01;

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Median and robust spread (σ estimate) of `reference`; `None` below [`MIN_HISTORY`].
pub fn center_and_spread(reference: &[f64]) -> Option<(f64, f64)> {
    if reference.len() < MIN_HISTORY {
        return None;
    }
    let mut sorted = reference.to_vec();
    sorted.sort_by(f64::total_cmp);
    let center = median(&sorted);
    let mut deviations: Vec<f64> = sorted.iter().map(|v| (v - center).abs()).collect();
    deviations.sort_by(f64::total_cmp);
    let mad = median(&deviations) * MAD_TO_SIGMA;
    let mean_ad = deviations.iter().sum::<f64>() / deviations.len() as f64 * MEAN_AD_TO_SIGMA;
    let spread = if mad > 0.0 { mad } else { mean_ad };
    let spread = spread.max(center.abs() * MIN_RELATIVE_SPREAD).max(1e-9);
    Some((center, spread))
}

/// The robust z-score of every point against the up to [`WINDOW`] earlier non-NULL points
/// of its series (`season`: only those of the same phase, `season`, `2·season`, ... points
/// back). NULL for NULL points and during warm-up.
pub fn scores(values: &[Option<f64>], season: usize) -> Vec<Option<f64>> {
    let step = season.max(1);
    (0..values.len())
        .map(|i| {
            let current = values[i]?;
            let reference: Vec<f64> = (1..)
                .map_while(|k| i.checked_sub(k * step))
                .filter_map(|j| values[j])
                .take(WINDOW)
                .collect();
            let (center, spread) = center_and_spread(&reference)?;
            Some((current - center) / spread)
        })
        .collect()
}

/// The partition's first argument as `f64`s.
pub fn series(values: &[ArrayRef], name: &str) -> Result<Vec<Option<f64>>> {
    let Some(first) = values.first() else {
        return exec_err!("{name} needs a value");
    };
    let floats = arrow::compute::cast(first, &DataType::Float64)?;
    Ok(floats
        .as_primitive::<Float64Type>()
        .iter()
        .map(|v| v.filter(|v| v.is_finite()))
        .collect())
}

/// The optional season argument: a constant positive integer (NULL or absent: none).
pub fn season(values: &[ArrayRef], name: &str) -> Result<usize> {
    let Some(arg) = values.get(1) else {
        return Ok(1);
    };
    let ints = arrow::compute::cast(arg, &DataType::Int64)?;
    let ints = ints.as_primitive::<arrow::datatypes::Int64Type>();
    match ints.iter().flatten().next() {
        None => Ok(1),
        Some(s) if (1..=10_000).contains(&s) => Ok(s as usize),
        Some(s) => exec_err!("{name}: season must be between 1 and 10000, not {s}"),
    }
}

pub fn to_array(values: Vec<Option<f64>>) -> ArrayRef {
    Arc::new(Float64Array::from(values))
}

/// Argument types accepted by both functions: a number, and optionally an integer season.
pub fn coerce(arg_types: &[DataType], name: &str) -> Result<Vec<DataType>> {
    match arg_types {
        [v] if v.is_numeric() || v.is_null() => Ok(vec![DataType::Float64]),
        [v, s] if (v.is_numeric() || v.is_null()) && (s.is_integer() || s.is_null()) => {
            Ok(vec![DataType::Float64, DataType::Int64])
        }
        _ => exec_err!("{name} takes a number and optionally an integer season, not {arg_types:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn center_and_spread_use_median_and_mad() {
        assert_eq!(center_and_spread(&[1.0; 6]), None);
        let (c, s) = center_and_spread(&[10.0, 12.0, 9.0, 11.0, 10.0, 8.0, 30.0]).unwrap();
        assert_eq!(c, 10.0);
        // |deviations| sorted: 0 0 1 1 2 2 20 → MAD 1.
        assert!((s - 1.4826).abs() < 1e-12, "{s}");
        // A flat history falls back to the mean absolute deviation, then to 1% of the median.
        let (_, s) = center_and_spread(&[10.0, 10.0, 12.0, 9.0, 11.0, 10.0, 10.0]).unwrap();
        assert!((s - 4.0 / 7.0 * 1.2533).abs() < 1e-12, "{s}");
        let (_, s) = center_and_spread(&[5.0; 7]).unwrap();
        assert!((s - 0.05).abs() < 1e-12, "{s}");
    }

    #[test]
    fn scores_skip_nulls_and_warm_up() {
        let mut values: Vec<Option<f64>> = [10.0, 12.0, 9.0, 11.0, 10.0, 8.0]
            .into_iter()
            .map(Some)
            .collect();
        values.push(None);
        values.push(Some(30.0));
        values.push(Some(10.0));
        let out = scores(&values, 1);
        assert!(out[..7].iter().all(Option::is_none), "{out:?}");
        // 30 against 10 12 9 11 10 8: six points, still warming up.
        assert_eq!(out[7], None);
        // 10 against 8 10 11 9 12 10 30: median 10.
        assert_eq!(out[8], Some(0.0));
    }

    #[test]
    fn seasonal_scores_compare_the_same_phase() {
        // Weekly pattern: Mondays (every 7th) are 100, other days 10.
        let values: Vec<Option<f64>> = (0..70)
            .map(|d| Some(if d % 7 == 0 { 100.0 } else { 10.0 }))
            .collect();
        let plain = scores(&values, 1);
        let seasonal = scores(&values, 7);
        // Day 63 is a Monday: unusual against all days, ordinary against Mondays.
        assert!(plain[63].unwrap() > 4.0, "{:?}", plain[63]);
        assert_eq!(seasonal[63], Some(0.0));
        // Seasonal warm-up needs 7 earlier Mondays.
        assert_eq!(seasonal[42], None);
        assert_eq!(seasonal[49], Some(0.0));
    }
}
