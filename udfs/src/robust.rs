//! Robust statistics over a series' trailing window, shared by `anomaly_score` and
//! `level_shift`: median and a scale that single outliers barely move.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::PartitionEvaluator;

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

/// The median of `values`, reordering them.
fn median_unordered(values: &mut [f64]) -> f64 {
    let n = values.len();
    let (_, upper, _) = values.select_nth_unstable_by(n / 2, f64::total_cmp);
    let upper = *upper;
    if n % 2 == 1 {
        upper
    } else {
        let lower = values[..n / 2]
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        (lower + upper) / 2.0
    }
}

/// Median and robust spread (σ estimate) of `reference`; `None` below [`MIN_HISTORY`].
pub fn center_and_spread(reference: &[f64]) -> Option<(f64, f64)> {
    if reference.len() < MIN_HISTORY {
        return None;
    }
    let mut sorted = reference.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(center_and_spread_of_sorted(&sorted, &mut Vec::new()))
}

/// [`center_and_spread`] of values already in order, with `deviations` as scratch space.
/// The absolute deviations from the median fall to the left of it and rise to the right,
/// so merging the two runs orders them without a sort.
fn center_and_spread_of_sorted(sorted: &[f64], deviations: &mut Vec<f64>) -> (f64, f64) {
    let center = median(sorted);
    let split = sorted.partition_point(|v| *v < center);
    let (mut left, mut right) = (split, split);
    deviations.clear();
    while left > 0 || right < sorted.len() {
        let take_left = match (left > 0, right < sorted.len()) {
            (true, true) => center - sorted[left - 1] <= sorted[right] - center,
            (true, false) => true,
            _ => false,
        };
        if take_left {
            left -= 1;
            deviations.push(center - sorted[left]);
        } else {
            deviations.push(sorted[right] - center);
            right += 1;
        }
    }
    let mad = median(deviations) * MAD_TO_SIGMA;
    let mean_ad = deviations.iter().sum::<f64>() / deviations.len() as f64 * MEAN_AD_TO_SIGMA;
    let spread = if mad > 0.0 { mad } else { mean_ad };
    let spread = spread.max(center.abs() * MIN_RELATIVE_SPREAD).max(1e-9);
    (center, spread)
}

/// Scores a series one point at a time, keeping only what the next points need (the
/// trailing window, or for a season the last 8 seasons): the window functions use it for
/// whole partitions and for DataFusion's bounded (streaming) execution alike.
#[derive(Debug)]
pub struct Scorer {
    season: usize,
    window: usize,
    min_history: usize,
    /// Position of the next point in the series.
    index: usize,
    /// Without a season: the window's values in arrival order and sorted, so each point
    /// costs one insertion and one removal rather than a sort.
    recent: VecDeque<f64>,
    sorted: Vec<f64>,
    deviations: Vec<f64>,
    /// With a season: the last `2 × window` non-NULL points (position, value), oldest
    /// first, and the pattern and noise level learnt for the current season.
    history: VecDeque<(usize, f64)>,
    learnt: Option<Learnt>,
    adjusted: Vec<f64>,
}

/// What a season's first scored point learns from the history before it.
#[derive(Debug)]
struct Learnt {
    block: usize,
    pattern: Pattern,
    noise: Option<f64>,
    per_phase: f64,
}

impl Scorer {
    pub fn new(season: usize) -> Scorer {
        let season = season.max(1);
        let (window, min_history) = if season >= 2 {
            (WINDOW.max(4 * season), MIN_HISTORY.max(3 * season))
        } else {
            (WINDOW, MIN_HISTORY)
        };
        Scorer {
            season,
            window,
            min_history,
            index: 0,
            recent: VecDeque::with_capacity(window),
            sorted: Vec::with_capacity(window + 1),
            deviations: Vec::with_capacity(window),
            history: VecDeque::with_capacity(2 * window),
            learnt: None,
            adjusted: Vec::with_capacity(window),
        }
    }

    /// The score of the next point against the ones before it; then it joins them.
    pub fn push(&mut self, value: Option<f64>) -> Option<f64> {
        let index = self.index;
        self.index += 1;
        let current = value?;
        if self.season < 2 {
            let score = self.plain_score(current);
            if self.recent.len() == self.window
                && let Some(oldest) = self.recent.pop_front()
            {
                let at = self
                    .sorted
                    .partition_point(|v: &f64| v.total_cmp(&oldest).is_lt());
                self.sorted.remove(at);
            }
            self.recent.push_back(current);
            let at = self
                .sorted
                .partition_point(|v: &f64| v.total_cmp(&current).is_lt());
            self.sorted.insert(at, current);
            score
        } else {
            let score = self.seasonal_score(index, current);
            if self.history.len() == 2 * self.window {
                self.history.pop_front();
            }
            self.history.push_back((index, current));
            score
        }
    }

    fn plain_score(&mut self, current: f64) -> Option<f64> {
        if self.sorted.len() < self.min_history {
            return None;
        }
        let (center, spread) = center_and_spread_of_sorted(&self.sorted, &mut self.deviations);
        Some((current - center) / spread)
    }

    fn seasonal_score(&mut self, index: usize, current: f64) -> Option<f64> {
        let season = self.season;
        let available = self.history.len().min(self.window);
        if available < self.min_history {
            return None;
        }
        // The pattern and the noise level move slowly: they are learnt once per season,
        // from the history before its first scored point.
        if self
            .learnt
            .as_ref()
            .is_none_or(|l| l.block != index / season)
        {
            let newest_first: Vec<(usize, f64)> = self.history.iter().rev().copied().collect();
            let pattern = Pattern::of(&newest_first, season);
            let adjusted: Vec<(usize, f64)> = newest_first
                .iter()
                .map(|&(j, v)| (j, pattern.remove(j, v)))
                .collect();
            self.learnt = Some(Learnt {
                block: index / season,
                noise: seasonal_spread(&adjusted, season),
                per_phase: (newest_first.len() / season).max(1) as f64,
                pattern,
            });
        }
        let learnt = self.learnt.as_ref()?;
        self.adjusted.clear();
        self.adjusted.extend(
            self.history
                .iter()
                .rev()
                .take(self.window)
                .map(|&(j, v)| learnt.pattern.remove(j, v)),
        );
        let (center, spread) = match learnt.noise {
            Some(noise) => (median_unordered(&mut self.adjusted), noise),
            None => center_and_spread(&self.adjusted)?,
        };
        // The phase effect and the center are medians of k and n points: their own
        // error (variance π/2 · σ²/k) widens what a point is compared with.
        let widening = (1.0
            + std::f64::consts::FRAC_PI_2 / learnt.per_phase
            + std::f64::consts::FRAC_PI_2 / self.adjusted.len() as f64)
            .sqrt();
        let spread = (spread * widening)
            .max(center.abs() * MIN_RELATIVE_SPREAD)
            .max(1e-9);
        Some((learnt.pattern.remove(index, current) - center) / spread)
    }
}

/// The robust z-score of every point against the up to [`WINDOW`] earlier non-NULL points
/// of its series. With a `season` of 2 or more the window is at least 4 seasons long and
/// seasonality is taken out first: each phase's effect is the median of its points over
/// up to 8 seasons less the median of those medians, and the point and its window are compared
/// with their phase's effect subtracted (so a Saturday is judged against earlier
/// Saturdays' distance from the week's level). The spread then comes from the differences
/// between points one season apart over up to 8 seasons, which phase medians fitted to
/// the same window cannot shrink. The pattern and the noise level are learnt once per
/// season, from the history before its first scored point. That needs 3 seasons of
/// history. NULL for NULL points and during warm-up.
pub fn scores(values: &[Option<f64>], season: usize) -> Vec<Option<f64>> {
    let mut scorer = Scorer::new(season);
    values.iter().map(|v| scorer.push(*v)).collect()
}

/// The noise level of a deseasonalised window, from the differences between points one
/// season apart (MAD × 1.4826 / √2): residuals from phase medians fitted to the same
/// window would understate it.
fn seasonal_spread(points: &[(usize, f64)], season: usize) -> Option<f64> {
    // `points` run from the latest back, so a point one season earlier is further on.
    let mut differences: Vec<f64> = points
        .iter()
        .enumerate()
        .filter_map(|(k, &(j, v))| {
            let earlier = j.checked_sub(season)?;
            let rest = &points[k + 1..];
            rest.binary_search_by(|p| earlier.cmp(&p.0))
                .ok()
                .map(|at| v - rest[at].1)
        })
        .collect();
    if differences.len() < MIN_HISTORY {
        return None;
    }
    differences.sort_by(f64::total_cmp);
    let center = median(&differences);
    let mut deviations: Vec<f64> = differences.iter().map(|d| (d - center).abs()).collect();
    deviations.sort_by(f64::total_cmp);
    let mad = median(&deviations) * MAD_TO_SIGMA;
    let mean_ad = deviations.iter().sum::<f64>() / deviations.len() as f64 * MEAN_AD_TO_SIGMA;
    let spread = if mad > 0.0 { mad } else { mean_ad };
    (spread > 0.0).then_some(spread / std::f64::consts::SQRT_2)
}

/// A seasonal pattern: how each phase compares with the level of its own season (the
/// median of that season's points), as the median over seasons of that comparison. It is
/// a factor when every level is positive (spend scales its weekends with its weekdays)
/// and an offset otherwise. Comparing within each season keeps a level shift or a trend in
/// the history out of the pattern.
#[derive(Debug)]
enum Pattern {
    Factors(Vec<f64>),
    Offsets(Vec<f64>),
}

impl Pattern {
    fn of(points: &[(usize, f64)], season: usize) -> Pattern {
        // Points grouped by season; consecutive because `points` are in (reverse) order.
        let seasons = points.chunk_by(|a, b| a.0 / season == b.0 / season);
        // Only seasons with at least half their points say anything about their level.
        let levels: Vec<(f64, &[(usize, f64)])> = seasons
            .filter(|members| 2 * members.len() >= season)
            .map(|members| {
                let mut values: Vec<f64> = members.iter().map(|m| m.1).collect();
                values.sort_by(f64::total_cmp);
                (median(&values), members)
            })
            .collect();
        let multiplicative = !levels.is_empty() && levels.iter().all(|(level, _)| *level > 0.0);
        let mut by_phase: Vec<Vec<f64>> = vec![Vec::new(); season];
        for &(level, members) in &levels {
            for &(j, v) in members {
                by_phase[j % season].push(if multiplicative { v / level } else { v - level });
            }
        }
        let neutral = if multiplicative { 1.0 } else { 0.0 };
        let mut effects: Vec<f64> = by_phase
            .iter_mut()
            .map(|phase| {
                phase.sort_by(f64::total_cmp);
                if phase.is_empty() {
                    neutral
                } else {
                    median(phase)
                }
            })
            .collect();
        let mut sorted = effects.clone();
        sorted.sort_by(f64::total_cmp);
        let middle = median(&sorted);
        if multiplicative && middle > 0.0 {
            effects.iter_mut().for_each(|e| *e /= middle);
            Pattern::Factors(effects)
        } else if multiplicative {
            Pattern::Offsets(vec![0.0; season])
        } else {
            effects.iter_mut().for_each(|e| *e -= middle);
            Pattern::Offsets(effects)
        }
    }

    /// `value` at position `j` with its phase's effect taken out.
    fn remove(&self, j: usize, value: f64) -> f64 {
        match self {
            Pattern::Factors(f) => value / f[j % f.len()],
            Pattern::Offsets(o) => value - o[j % o.len()],
        }
    }
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

/// The value at `idx` of the partition's first argument (already `DOUBLE` by
/// `coerce`); non-finite values count as NULL, as in [`series`].
pub fn point(values: &[ArrayRef], idx: usize, name: &str) -> Result<Option<f64>> {
    let Some(floats) = values
        .first()
        .and_then(|first| first.as_primitive_opt::<Float64Type>())
    else {
        return exec_err!("{name} needs a DOUBLE value");
    };
    if idx >= floats.len() {
        return exec_err!("{name}: row {idx} is outside the partition");
    }
    Ok(floats
        .is_valid(idx)
        .then(|| floats.value(idx))
        .filter(|v| v.is_finite()))
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

/// What a window function makes of each point's robust score.
pub trait PointStatistic: std::fmt::Debug + Default + Send + 'static {
    fn step(&mut self, score: Option<f64>) -> Option<f64>;
}

/// The score itself (`anomaly_score`).
#[derive(Debug, Default)]
pub struct Score;

impl PointStatistic for Score {
    fn step(&mut self, score: Option<f64>) -> Option<f64> {
        score
    }
}

/// The partition evaluator of both window functions: a whole partition at once, or row by
/// row when DataFusion streams sorted input (bounded execution: the state is the trailing
/// window, not the partition).
#[derive(Debug)]
pub struct SeriesEvaluator<S> {
    name: &'static str,
    state: Option<(Scorer, S)>,
}

impl<S: PointStatistic> SeriesEvaluator<S> {
    pub fn new(name: &'static str) -> SeriesEvaluator<S> {
        SeriesEvaluator { name, state: None }
    }
}

impl<S: PointStatistic> PartitionEvaluator for SeriesEvaluator<S> {
    fn evaluate_all(&mut self, values: &[ArrayRef], _num_rows: usize) -> Result<ArrayRef> {
        let series = series(values, self.name)?;
        let mut statistic = S::default();
        Ok(to_array(
            scores(&series, season(values, self.name)?)
                .into_iter()
                .map(|score| statistic.step(score))
                .collect(),
        ))
    }

    fn evaluate(&mut self, values: &[ArrayRef], range: &Range<usize>) -> Result<ScalarValue> {
        let (scorer, statistic) = match &mut self.state {
            Some(state) => state,
            None => self
                .state
                .insert((Scorer::new(season(values, self.name)?), S::default())),
        };
        let value = point(values, range.start, self.name)?;
        Ok(ScalarValue::Float64(statistic.step(scorer.push(value))))
    }

    fn supports_bounded_execution(&self) -> bool {
        true
    }

    fn is_causal(&self) -> bool {
        true
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

    /// 2% multiplicative noise from a fixed linear congruential sequence.
    fn noise(d: u64) -> f64 {
        let x = d
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        1.0 + 0.02 * ((x >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 2.0
    }

    #[test]
    fn seasonal_scores_take_each_phase_s_effect_out() {
        // Weekly pattern: Mondays (every 7th) are 100, other days 10, 2% noise.
        let values: Vec<Option<f64>> = (0..70u64)
            .map(|d| Some(if d % 7 == 0 { 100.0 } else { 10.0 } * noise(d)))
            .collect();
        let plain = scores(&values, 1);
        let seasonal = scores(&values, 7);
        // Day 63 is a Monday: unusual against all days, ordinary against Mondays.
        assert!(plain[63].unwrap() > 5.0, "{:?}", plain[63]);
        assert!(
            seasonal.iter().flatten().all(|s| s.abs() < 5.0),
            "{seasonal:?}"
        );
        // Seasonal warm-up needs three weeks.
        assert_eq!(seasonal[20], None);
        assert!(seasonal[21].is_some());
        // A Tuesday at Monday's level stands out.
        let mut spiked = values.clone();
        spiked[64] = Some(100.0);
        assert!(scores(&spiked, 7)[64].unwrap() > 5.0);
    }

    #[test]
    fn a_seasonal_pattern_learnt_before_a_level_shift_still_fits_after_it() {
        // Weekends at half the weekday level; from day 35 everything drops to 40%.
        let values: Vec<Option<f64>> = (0..84u64)
            .map(|d| {
                let weekday = if d % 7 >= 5 { 0.5 } else { 1.0 };
                let level = if d >= 35 { 40.0 } else { 100.0 };
                Some(level * weekday * noise(d))
            })
            .collect();
        let seasonal = scores(&values, 7);
        assert!(
            seasonal[35].unwrap() < -5.0,
            "the drop itself: {:?}",
            seasonal[35]
        );
        // Four weeks on, the trailing window is at the new level: weekends are ordinary.
        assert!(
            seasonal[63..].iter().flatten().all(|s| s.abs() < 5.0),
            "{:?}",
            &seasonal[63..]
        );
    }

    proptest::proptest! {
        /// The sliding window gives exactly what sorting each trailing window gives.
        #[test]
        fn sliding_scores_equal_sorting_each_window(
            values in proptest::collection::vec(
                proptest::option::weighted(0.9, -1e6f64..1e6), 0..120)
        ) {
            let expected: Vec<Option<f64>> = (0..values.len())
                .map(|i| {
                    let current = values[i]?;
                    let reference: Vec<f64> =
                        (0..i).rev().filter_map(|j| values[j]).take(WINDOW).collect();
                    let (center, spread) = center_and_spread(&reference)?;
                    Some((current - center) / spread)
                })
                .collect();
            proptest::prop_assert_eq!(scores(&values, 1), expected);
        }
    }
}
