//! The forecasting models behind `forecast`, `project_period_end` and `change_impact`:
//! turning (timestamp, value) pairs into an evenly spaced series, and fitting linear,
//! Holt and additive Holt-Winters models to it.
//!
//! The exponential-smoothing models are written in error-correction form (Hyndman et al.,
//! *Forecasting with Exponential Smoothing*, ETS(A,A,A)): with one-step error
//! `e = y − (ℓ + b + s)`, `ℓ ← ℓ + b + αe`, `b ← b + βe`, `s ← s + γe`, where
//! `0 ≤ β ≤ α ≤ 1` and `0 ≤ γ ≤ 1 − α`. Parameters minimise the sum of squared one-step
//! errors (as statsmodels' `ExponentialSmoothing.fit` does), and the h-step variance is
//! `σ²(1 + Σⱼ₌₁..ₕ₋₁ (α + βj + γ·[j mod m = 0])²)`.

use chrono::{DateTime, Datelike, Months, Utc};

/// Series longer than this after filling missing steps are refused: the timestamps are
/// most likely raw event times that need bucketing first.
pub const MAX_STEPS: usize = 1_000_000;
/// z of the 80% two-sided normal interval.
const Z80: f64 = 1.281_551_565_544_600_4;

/// The spacing of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A fixed number of microseconds.
    Micros(i64),
    /// Calendar months (1: monthly, 3: quarterly), same day and time of month.
    Months(u32),
}

impl Step {
    /// `t` moved `k` steps on (k may be negative).
    pub fn advance(self, t: i64, k: i64) -> Option<i64> {
        match self {
            Step::Micros(step) => step.checked_mul(k).and_then(|d| t.checked_add(d)),
            Step::Months(months) => {
                let start = DateTime::<Utc>::from_timestamp_micros(t)?;
                let total = i64::from(months).checked_mul(k)?;
                let moved = if total >= 0 {
                    start.checked_add_months(Months::new(u32::try_from(total).ok()?))
                } else {
                    start.checked_sub_months(Months::new(u32::try_from(-total).ok()?))
                }?;
                Some(moved.timestamp_micros())
            }
        }
    }

    /// The seasons a series with this spacing usually has, most common first: a week of
    /// days; a day and a week of hours (or of shorter steps); a year of weeks, months or
    /// quarters.
    pub fn usual_seasons(self) -> Vec<usize> {
        const MINUTE: i64 = 60_000_000;
        const HOUR: i64 = 60 * MINUTE;
        const DAY: i64 = 24 * HOUR;
        match self {
            Step::Micros(DAY) => vec![7],
            Step::Micros(s) if s == 7 * DAY => vec![52],
            Step::Micros(s) if s <= HOUR && HOUR % s == 0 => [DAY / s, 7 * DAY / s]
                .into_iter()
                .filter(|&m| m <= 2_000)
                .map(|m| m as usize)
                .collect(),
            Step::Months(1) => vec![12],
            Step::Months(3) => vec![4],
            _ => Vec::new(),
        }
    }
}

/// How steps with no value are filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Nothing recorded means nothing spent.
    Zero,
    /// A straight line between the neighbouring values.
    Interpolate,
}

impl Fill {
    pub fn parse(text: &str) -> Option<Fill> {
        match text.trim().to_ascii_lowercase().as_str() {
            "zero" => Some(Fill::Zero),
            "interpolate" | "linear" => Some(Fill::Interpolate),
            _ => None,
        }
    }
}

/// An evenly spaced series: `values[i]` is at `step.advance(start, i)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub start: i64,
    pub step: Step,
    pub values: Vec<f64>,
}

impl Grid {
    /// The timestamp of point `i` (may be past the end, for forecasts).
    pub fn time_of(&self, i: i64) -> Option<i64> {
        self.step.advance(self.start, i)
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    let (mut a, mut b) = (a.abs(), b.abs());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Calendar-month spacing when every timestamp falls on the same day of month and time of
/// day and they are at least 28 days apart.
fn month_step(times: &[i64]) -> Option<(u32, Vec<i64>)> {
    let dates: Vec<DateTime<Utc>> = times
        .iter()
        .map(|&t| DateTime::<Utc>::from_timestamp_micros(t))
        .collect::<Option<_>>()?;
    let first = dates.first()?;
    let same_place = dates
        .iter()
        .all(|d| d.day() == first.day() && d.time() == first.time());
    if !same_place || first.day() > 28 {
        return None;
    }
    let month_index = |d: &DateTime<Utc>| i64::from(d.year()) * 12 + i64::from(d.month0());
    let indices: Vec<i64> = dates
        .iter()
        .map(|d| month_index(d) - month_index(first))
        .collect();
    let step = indices.windows(2).fold(0, |g, w| gcd(g, w[1] - w[0]));
    let step = u32::try_from(step).ok().filter(|&s| s >= 1)?;
    Some((step, indices.iter().map(|i| i / i64::from(step)).collect()))
}

/// The evenly spaced series behind `points` (any order; values at the same timestamp are
/// summed): the spacing is the largest that divides every gap (calendar months when the
/// points are whole months apart), and missing steps are filled as `fill` says.
/// `None` for fewer than two distinct timestamps.
pub fn regularize(points: &mut [(i64, f64)], fill: Fill) -> Result<Option<Grid>, String> {
    points.sort_unstable_by_key(|&(t, _)| t);
    let mut merged: Vec<(i64, f64)> = Vec::with_capacity(points.len());
    for &(t, v) in points.iter() {
        match merged.last_mut() {
            Some((last, sum)) if *last == t => *sum += v,
            _ => merged.push((t, v)),
        }
    }
    if merged.len() < 2 {
        return Ok(None);
    }
    let times: Vec<i64> = merged.iter().map(|&(t, _)| t).collect();
    let (step, indices) = match month_step(&times) {
        Some((months, indices)) => (Step::Months(months), indices),
        None => {
            let first = times[0];
            // Sorted: if the whole span fits, every gap and offset does (it only overflows
            // for timestamps some 290,000 years apart).
            if times[times.len() - 1].checked_sub(first).is_none() {
                return Err("the timestamps are too far apart".to_string());
            }
            let step = times.windows(2).fold(0, |g, w| gcd(g, w[1] - w[0]));
            (
                Step::Micros(step),
                times.iter().map(|t| (t - first) / step).collect(),
            )
        }
    };
    let len = indices.last().map_or(0, |&last| last + 1);
    if len as u64 > MAX_STEPS as u64 {
        return Err(format!(
            "the timestamps are not evenly spaced ({len} steps between the first and last); \
             bucket them first, e.g. date_trunc('day', ts) with sum(value)"
        ));
    }
    let mut values = vec![f64::NAN; len as usize];
    for (&i, &(_, v)) in indices.iter().zip(&merged) {
        values[i as usize] = v;
    }
    fill_gaps(&mut values, fill);
    Ok(Some(Grid {
        start: times[0],
        step,
        values,
    }))
}

fn fill_gaps(values: &mut [f64], fill: Fill) {
    let mut last_known: Option<usize> = None;
    for i in 0..values.len() {
        if values[i].is_nan() {
            continue;
        }
        if let Some(k) = last_known.filter(|&k| i > k + 1) {
            for j in k + 1..i {
                values[j] = match fill {
                    Fill::Zero => 0.0,
                    Fill::Interpolate => {
                        values[k] + (values[i] - values[k]) * (j - k) as f64 / (i - k) as f64
                    }
                };
            }
        }
        last_known = Some(i);
    }
}

/// The forecasting methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Linear,
    Holt,
    HoltWinters,
    /// The last season repeated (the last value without a season).
    SeasonalNaive,
    /// The two of Holt, Holt-Winters and seasonal naive that best forecast held-back
    /// tails, weighted by the inverse of their errors.
    Auto,
}

impl Method {
    pub fn parse(text: &str) -> Option<Method> {
        match text.trim().to_ascii_lowercase().as_str() {
            "linear" => Some(Method::Linear),
            "holt" => Some(Method::Holt),
            "holt_winters" | "holt-winters" | "holtwinters" => Some(Method::HoltWinters),
            "seasonal_naive" | "naive" => Some(Method::SeasonalNaive),
            "auto" => Some(Method::Auto),
            _ => None,
        }
    }
}

/// Forecasts for the steps after a series, with 80% prediction intervals.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// The method used (never `Auto`; for a combination, the better of the two).
    pub method: Method,
    pub season: usize,
    pub yhat: Vec<f64>,
    pub lo: Vec<f64>,
    pub hi: Vec<f64>,
}

/// The smallest history each method needs; with less, a simpler one is used.
fn min_points(method: Method, season: usize) -> usize {
    match method {
        Method::Linear => 2,
        Method::Holt => 5,
        Method::HoltWinters => 2 * season + 3,
        Method::SeasonalNaive => season.max(1) + 1,
        Method::Auto => 2,
    }
}

/// The seasons the series shows: those of `usual` that its detrended autocorrelation
/// confirms (significant at about 5%, 2/√n, and at least 0.2; and a peak against the half
/// season before it); for a spacing with no usual season, its strongest autocorrelation
/// peak of at least 0.3, stricter because every lag is tried.
pub fn detect_seasons(values: &[f64], usual: &[usize]) -> Vec<usize> {
    let n = values.len();
    let residuals = detrend(values);
    let variance: f64 = residuals.iter().map(|r| r * r).sum();
    if variance <= f64::EPSILON {
        return Vec::new();
    }
    let acf = |lag: usize| -> f64 {
        residuals[lag..]
            .iter()
            .zip(&residuals)
            .map(|(a, b)| a * b)
            .sum::<f64>()
            / variance
    };
    let confirmed = |m: usize, threshold: f64| -> bool {
        m >= 2 && n >= 2 * m + 3 && {
            let at = acf(m);
            at >= threshold && (m / 2..m).all(|k| k == 0 || acf(k) <= at)
        }
    };
    if !usual.is_empty() {
        // The spacing's own seasons, or none: a peak at an odd lag is noise. Sparse spend
        // (random days without calls) weakens a real weekly pattern's autocorrelation to
        // just under 0.3, so a customary season needs less than an arbitrary lag.
        let threshold = (2.0 / (n as f64).sqrt()).max(0.2);
        return usual
            .iter()
            .copied()
            .filter(|&m| confirmed(m, threshold))
            .collect();
    }
    let max_lag = (n.saturating_sub(3) / 2).min(400);
    (2..=max_lag)
        .filter(|&m| confirmed(m, 0.3))
        .max_by(|&a, &b| acf(a).total_cmp(&acf(b)))
        .into_iter()
        .collect()
}

/// The first of [`detect_seasons`].
pub fn detect_season(values: &[f64], usual: &[usize]) -> Option<usize> {
    detect_seasons(values, usual).first().copied()
}

fn ols(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let x_mean = (n - 1.0) / 2.0;
    let y_mean = values.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, y) in values.iter().enumerate() {
        let dx = i as f64 - x_mean;
        sxy += dx * (y - y_mean);
        sxx += dx * dx;
    }
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (y_mean - slope * x_mean, slope)
}

fn detrend(values: &[f64]) -> Vec<f64> {
    let (intercept, slope) = ols(values);
    values
        .iter()
        .enumerate()
        .map(|(i, y)| y - intercept - slope * i as f64)
        .collect()
}

/// Forecast `horizon` steps after `values` with `method`; `season` is the seasonal period
/// for Holt-Winters (`None`: detected, `usual` being the spacing's customary ones; `Auto`
/// tries each). `None` for fewer than two points.
pub fn forecast(
    values: &[f64],
    horizon: usize,
    method: Method,
    season: Option<usize>,
    usual: &[usize],
) -> Option<Forecast> {
    if values.len() < 2 {
        return None;
    }
    let seasons: Vec<usize> = match season.filter(|&m| m >= 2) {
        Some(m) => vec![m],
        None => match method {
            Method::HoltWinters | Method::Auto => detect_seasons(values, usual),
            _ => Vec::new(),
        },
    };
    let season = seasons.first().copied().unwrap_or(0);
    let chosen = match method {
        Method::Auto => choose(values, horizon, &seasons),
        _ => Vec::new(),
    };
    // The trial fits left the last tails out: refit to all of the history from there.
    let refit = |model: Model| match model {
        Model::Smoothing {
            method,
            params,
            initial,
            ..
        } => train(
            values,
            method,
            initial.season(),
            Effort::From(params.to_unit()),
        ),
        other => other,
    };
    let chosen: Vec<(f64, Model)> = chosen
        .into_iter()
        .take(COMBINED)
        .map(|(error, model)| (error, refit(model)))
        .collect();
    if chosen.is_empty() {
        let method = match method {
            Method::Auto => Method::HoltWinters,
            other => other,
        };
        let model = train(
            values,
            usable(method, values.len(), season),
            season,
            Effort::Full,
        );
        return Some(finish(values, model.apply(values).forecast(horizon)));
    }
    // The best on the held-back tails, weighted by the inverse of their errors: a
    // combination is rarely worse than its parts and often better than all of them.
    let weights: Vec<f64> = if chosen.iter().any(|(error, _)| *error <= 0.0) {
        chosen
            .iter()
            .map(|(error, _)| if *error <= 0.0 { 1.0 } else { 0.0 })
            .collect()
    } else {
        chosen.iter().map(|(error, _)| 1.0 / error).collect()
    };
    let total: f64 = weights.iter().sum();
    let mut out: Option<Forecast> = None;
    for ((_, model), weight) in chosen.iter().zip(&weights) {
        let share = weight / total;
        let part = model.apply(values).forecast(horizon);
        match &mut out {
            None => {
                let mut first = part;
                for v in first
                    .yhat
                    .iter_mut()
                    .chain(&mut first.lo)
                    .chain(&mut first.hi)
                {
                    *v *= share;
                }
                out = Some(first);
            }
            Some(sum) => {
                for (mine, theirs) in [
                    (&mut sum.yhat, &part.yhat),
                    (&mut sum.lo, &part.lo),
                    (&mut sum.hi, &part.hi),
                ] {
                    for (a, b) in mine.iter_mut().zip(theirs) {
                        *a += share * b;
                    }
                }
            }
        }
    }
    out.map(|out| finish(values, out))
}

/// Structural zeros and the floor at zero for spend.
fn finish(values: &[f64], mut out: Forecast) -> Forecast {
    if out.season >= 2 {
        keep_structural_zeros(values, &mut out);
    }
    if values.iter().all(|v| *v >= 0.0) {
        for v in out.yhat.iter_mut().chain(&mut out.lo).chain(&mut out.hi) {
            *v = v.max(0.0);
        }
    }
    out
}

/// How many recent seasons must all be exactly zero at a phase for it to be forecast as
/// zero: spend that never happens on weekends should not be forecast to.
const ZERO_SEASONS: usize = 3;

fn keep_structural_zeros(values: &[f64], out: &mut Forecast) {
    let (m, n) = (out.season, values.len());
    if n < ZERO_SEASONS * m {
        return;
    }
    for h in 0..out.yhat.len() {
        let index = n + h;
        let always_zero = (1..=ZERO_SEASONS).all(|k| {
            let back = k * m * (1 + h / m);
            index >= back && values[index - back] == 0.0
        });
        if always_zero {
            out.yhat[h] = 0.0;
            out.lo[h] = 0.0;
            out.hi[h] = 0.0;
        }
    }
}

/// `method`, or the next simpler one if the history is too short for it.
fn usable(method: Method, n: usize, season: usize) -> Method {
    let mut method = method;
    if method == Method::HoltWinters && (season < 2 || n < min_points(Method::HoltWinters, season))
    {
        method = Method::Holt;
    }
    if method == Method::Holt && n < min_points(Method::Holt, 0) {
        method = Method::Linear;
    }
    method
}

/// The method (and season) whose forecast of a held-back tail has the smallest absolute
/// error: Holt, or Holt-Winters with each candidate season.
fn choose(values: &[f64], horizon: usize, seasons: &[usize]) -> Vec<(f64, Model)> {
    let n = values.len();
    let tail = horizon.clamp(1, (n / 4).max(1));
    // Linear is Holt with α = β = 0 from the same starting line, so Holt stands for it.
    let candidates = seasons
        .iter()
        .map(|&m| (Method::HoltWinters, m))
        .chain([(Method::Holt, 0)])
        .chain(seasons.iter().map(|&m| (Method::SeasonalNaive, m)));
    let mut scored: Vec<(f64, Model)> = Vec::new();
    for (method, season) in candidates {
        // Fitted once, before the held-back tails (the last and, when the history allows,
        // the one before it), then run over each tail's history to forecast it.
        let Some(folds) = (1..=HOLDOUT_FOLDS)
            .rev()
            .find(|&k| n >= k * tail + min_points(method, season))
        else {
            continue;
        };
        let model = train(&values[..n - folds * tail], method, season, Effort::Quick);
        let mut error = 0.0;
        for fold in 1..=folds {
            let end = n - (fold - 1) * tail;
            let predicted = model.apply(&values[..end - tail]).forecast(tail).yhat;
            error += predicted
                .iter()
                .zip(&values[end - tail..end])
                .map(|(p, a)| (p - a).abs())
                .sum::<f64>();
        }
        scored.push((error / folds as f64, model));
    }
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    scored
}

/// How many of the best-scoring methods `auto` averages.
const COMBINED: usize = 2;

/// How many consecutive held-back tails `auto` scores each method on.
const HOLDOUT_FOLDS: usize = 2;

/// A fitted model, ready to forecast.
enum Fitted {
    SeasonalNaive {
        last_season: Vec<f64>,
        sigma: f64,
    },
    Linear {
        intercept: f64,
        slope: f64,
        n: usize,
        sigma: f64,
    },
    Smoothing {
        method: Method,
        state: State,
        params: Params,
        sigma: f64,
    },
}

#[derive(Debug, Clone, Copy)]
struct Params {
    alpha: f64,
    beta: f64,
    gamma: f64,
}

impl Params {
    /// From the optimiser's unit cube: α, β as a share of α, γ as a share of 1 − α.
    fn from_unit(x: &[f64]) -> Params {
        let unit = |i: usize| x.get(i).map_or(0.0, |v| v.clamp(0.0, 1.0));
        let alpha = unit(0);
        Params {
            alpha,
            beta: alpha * unit(1),
            gamma: (1.0 - alpha) * unit(2),
        }
    }
}

impl Params {
    /// Back to the optimiser's unit cube.
    fn to_unit(self) -> [f64; 3] {
        let share = |part: f64, of: f64| if of > 0.0 { part / of } else { 0.0 };
        [
            self.alpha,
            share(self.beta, self.alpha),
            share(self.gamma, 1.0 - self.alpha),
        ]
    }
}

#[derive(Debug, Clone)]
struct State {
    level: f64,
    trend: f64,
    /// Seasonal terms by phase (one zero for non-seasonal models).
    seasonal: Vec<f64>,
    /// Index of the next point's phase.
    next_phase: usize,
}

impl State {
    /// Starting states from a classical decomposition of the whole history: seasonal
    /// terms are each phase's mean distance from a least-squares line, and level and trend
    /// come from a line through the deseasonalised values. With β = γ = 0 this is the
    /// model statsmodels' `initialization_method="estimated"` tends to find; smoothing then
    /// adapts it.
    fn initial(values: &[f64], season: usize) -> State {
        let seasonal = if season >= 2 && values.len() >= 2 * season {
            let residuals = detrend(values);
            let mut sums = vec![0.0; season];
            let mut counts = vec![0usize; season];
            for (i, r) in residuals.iter().enumerate() {
                sums[i % season] += r;
                counts[i % season] += 1;
            }
            let mut effects: Vec<f64> = sums
                .iter()
                .zip(&counts)
                .map(|(s, c)| s / (*c).max(1) as f64)
                .collect();
            let mean = effects.iter().sum::<f64>() / season as f64;
            effects.iter_mut().for_each(|e| *e -= mean);
            effects
        } else {
            vec![0.0]
        };
        let deseasonalised: Vec<f64> = values
            .iter()
            .enumerate()
            .map(|(i, y)| y - seasonal[i % seasonal.len()])
            .collect();
        let (intercept, slope) = ols(&deseasonalised);
        State {
            // ℓ + b is the level at the first point.
            level: intercept - slope,
            trend: slope,
            seasonal,
            next_phase: 0,
        }
    }

    /// The seasonal period (0 without a season).
    fn season(&self) -> usize {
        if self.seasonal.len() >= 2 {
            self.seasonal.len()
        } else {
            0
        }
    }

    /// Run the smoothing recursion over `values`; the sum of squared one-step errors.
    fn run(&mut self, values: &[f64], p: Params) -> f64 {
        let m = self.seasonal.len();
        let mut sse = 0.0;
        for &y in values {
            let phase = self.next_phase;
            let error = y - (self.level + self.trend + self.seasonal[phase]);
            sse += error * error;
            self.level += self.trend + p.alpha * error;
            self.trend += p.beta * error;
            self.seasonal[phase] += p.gamma * error;
            self.next_phase = if phase + 1 == m { 0 } else { phase + 1 };
        }
        sse
    }
}

/// A model ready to run over a series: its method, season and, for the smoothing
/// methods, the parameters and starting states fitted to some history.
enum Model {
    SeasonalNaive {
        season: usize,
    },
    Linear,
    Smoothing {
        method: Method,
        initial: State,
        params: Params,
        /// Parameters estimated, for the degrees of freedom of σ.
        estimated: usize,
    },
}

/// Fit `method` to `values`.
fn train(values: &[f64], method: Method, season: usize, effort: Effort) -> Model {
    match method {
        Method::SeasonalNaive => Model::SeasonalNaive { season },
        Method::Linear | Method::Auto => Model::Linear,
        Method::Holt | Method::HoltWinters => {
            let season = if method == Method::HoltWinters {
                season
            } else {
                0
            };
            let initial = State::initial(values, season);
            let dims = if season >= 2 { 3 } else { 2 };
            let objective = |x: &[f64]| initial.clone().run(values, Params::from_unit(x));
            let best = minimise(&objective, dims, effort);
            Model::Smoothing {
                method,
                initial,
                params: Params::from_unit(&best),
                estimated: dims + 2 + if season >= 2 { season - 1 } else { 0 },
            }
        }
    }
}

impl Model {
    /// The model run over `values` (which may be longer than what it was fitted to).
    fn apply(&self, values: &[f64]) -> Fitted {
        let n = values.len();
        match self {
            Model::SeasonalNaive { season } => {
                let m = (*season).max(1).min(n - 1);
                let differences: Vec<f64> = values.windows(m + 1).map(|w| w[m] - w[0]).collect();
                let sse: f64 = differences.iter().map(|d| d * d).sum();
                Fitted::SeasonalNaive {
                    last_season: values[n - m..].to_vec(),
                    sigma: (sse / differences.len().max(1) as f64).sqrt(),
                }
            }
            Model::Linear => {
                let (intercept, slope) = ols(values);
                let sse: f64 = values
                    .iter()
                    .enumerate()
                    .map(|(i, y)| (y - intercept - slope * i as f64).powi(2))
                    .sum();
                Fitted::Linear {
                    intercept,
                    slope,
                    n,
                    sigma: (sse / n.saturating_sub(2).max(1) as f64).sqrt(),
                }
            }
            Model::Smoothing {
                method,
                initial,
                params,
                estimated,
            } => {
                let mut state = initial.clone();
                let sse = state.run(values, *params);
                let dof = n.saturating_sub(*estimated).max(1);
                Fitted::Smoothing {
                    method: *method,
                    state,
                    params: *params,
                    sigma: (sse / dof as f64).sqrt(),
                }
            }
        }
    }
}

impl Fitted {
    fn forecast(&self, horizon: usize) -> Forecast {
        let mut yhat = Vec::with_capacity(horizon);
        let mut lo = Vec::with_capacity(horizon);
        let mut hi = Vec::with_capacity(horizon);
        let mut push = |mean: f64, sd: f64| {
            yhat.push(mean);
            lo.push(mean - Z80 * sd);
            hi.push(mean + Z80 * sd);
        };
        match self {
            Fitted::SeasonalNaive { last_season, sigma } => {
                let m = last_season.len();
                for h in 0..horizon {
                    let seasons_ahead = (h / m + 1) as f64;
                    push(last_season[h % m], sigma * seasons_ahead.sqrt());
                }
                Forecast {
                    method: Method::SeasonalNaive,
                    season: if m >= 2 { m } else { 0 },
                    yhat,
                    lo,
                    hi,
                }
            }
            Fitted::Linear {
                intercept,
                slope,
                n,
                sigma,
            } => {
                let n = *n as f64;
                let x_mean = (n - 1.0) / 2.0;
                let sxx = n * (n * n - 1.0) / 12.0;
                for h in 1..=horizon {
                    let x = n - 1.0 + h as f64;
                    let leverage = if sxx > 0.0 {
                        (x - x_mean).powi(2) / sxx
                    } else {
                        0.0
                    };
                    push(
                        intercept + slope * x,
                        sigma * (1.0 + 1.0 / n + leverage).sqrt(),
                    );
                }
                Forecast {
                    method: Method::Linear,
                    season: 0,
                    yhat,
                    lo,
                    hi,
                }
            }
            Fitted::Smoothing {
                method,
                state,
                params,
                sigma,
            } => {
                let m = state.seasonal.len();
                let mut spread = 0.0;
                for h in 1..=horizon {
                    let phase = (state.next_phase + h - 1) % m;
                    let mean = state.level + h as f64 * state.trend + state.seasonal[phase];
                    if h > 1 {
                        let j = h - 1;
                        let seasonal_hit = if m >= 2 && j % m == 0 {
                            params.gamma
                        } else {
                            0.0
                        };
                        spread += (params.alpha + params.beta * j as f64 + seasonal_hit).powi(2);
                    }
                    push(mean, sigma * (1.0 + spread).sqrt());
                }
                Forecast {
                    method: *method,
                    season: if m >= 2 { m } else { 0 },
                    yhat,
                    lo,
                    hi,
                }
            }
        }
    }
}

/// How hard [`minimise`] works: quick for `auto`'s trial fits on held-back tails, full for
/// the fit that forecasts.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Effort {
    Quick,
    Full,
    /// A short search from a known good point (the trial fit's parameters).
    From([f64; 3]),
}

/// Nelder-Mead over the unit cube `[0, 1]^dims` (the objective clamps), started from the
/// best point of a coarse grid.
fn minimise(objective: &dyn Fn(&[f64]) -> f64, dims: usize, effort: Effort) -> Vec<f64> {
    let (grid, max_evaluations): (&[f64], usize) = match effort {
        Effort::Quick => (&[0.1, 0.4, 0.8], 90),
        Effort::Full => (&[0.05, 0.2, 0.5, 0.9], 250),
        Effort::From(_) => (&[], 60),
    };
    let mut start = vec![0.5; dims];
    if let Effort::From(x) = effort {
        start.copy_from_slice(&x[..dims]);
    }
    let mut start_value = if grid.is_empty() {
        objective(&start)
    } else {
        f64::INFINITY
    };
    let mut candidate = vec![0.0; dims];
    let combinations = if grid.is_empty() {
        1
    } else {
        grid.len().pow(dims as u32)
    };
    for code in 0..combinations * usize::from(!grid.is_empty()) {
        let mut rest = code;
        for c in candidate.iter_mut() {
            *c = grid[rest % grid.len()];
            rest /= grid.len();
        }
        let value = objective(&candidate);
        if value < start_value {
            start_value = value;
            start.clone_from(&candidate);
        }
    }

    let clamp = |x: Vec<f64>| -> Vec<f64> { x.into_iter().map(|v| v.clamp(0.0, 1.0)).collect() };
    let mut simplex: Vec<(Vec<f64>, f64)> = vec![(start.clone(), start_value)];
    for d in 0..dims {
        let mut vertex = start.clone();
        vertex[d] = if vertex[d] > 0.5 {
            vertex[d] - 0.1
        } else {
            vertex[d] + 0.1
        };
        let value = objective(&vertex);
        simplex.push((vertex, value));
    }
    let mut evaluations = combinations + dims;
    while evaluations < max_evaluations {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let best = simplex[0].1;
        let worst = simplex[dims].1;
        let diameter = simplex[1..]
            .iter()
            .flat_map(|(x, _)| x.iter().zip(&simplex[0].0).map(|(a, b)| (a - b).abs()))
            .fold(0.0, f64::max);
        if (worst - best).abs() <= 1e-9 * (best.abs() + 1e-12) && diameter <= 1e-3 {
            break;
        }
        let centroid: Vec<f64> = (0..dims)
            .map(|d| simplex[..dims].iter().map(|(x, _)| x[d]).sum::<f64>() / dims as f64)
            .collect();
        let toward = |t: f64| -> Vec<f64> {
            clamp(
                centroid
                    .iter()
                    .zip(&simplex[dims].0)
                    .map(|(c, w)| c + t * (w - c))
                    .collect(),
            )
        };
        let reflected = toward(-1.0);
        let reflected_value = objective(&reflected);
        evaluations += 1;
        if reflected_value < best {
            let expanded = toward(-2.0);
            let expanded_value = objective(&expanded);
            evaluations += 1;
            simplex[dims] = if expanded_value < reflected_value {
                (expanded, expanded_value)
            } else {
                (reflected, reflected_value)
            };
        } else if reflected_value < simplex[dims - 1].1 {
            simplex[dims] = (reflected, reflected_value);
        } else {
            let contracted = if reflected_value < worst {
                toward(-0.5)
            } else {
                toward(0.5)
            };
            let contracted_value = objective(&contracted);
            evaluations += 1;
            if contracted_value < worst.min(reflected_value) {
                simplex[dims] = (contracted, contracted_value);
            } else {
                let best_point = simplex[0].0.clone();
                for (x, value) in simplex.iter_mut().skip(1) {
                    *x = x
                        .iter()
                        .zip(&best_point)
                        .map(|(v, b)| b + 0.5 * (v - b))
                        .collect();
                    *value = objective(x);
                }
                evaluations += dims;
            }
        }
    }
    simplex
        .into_iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(start, |(x, _)| x)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000_000;

    #[test]
    fn regularize_sorts_sums_and_fills() {
        let mut points = vec![(3 * DAY, 3.0), (0, 1.0), (0, 1.5), (DAY, 2.0)];
        let grid = regularize(&mut points, Fill::Zero).unwrap().unwrap();
        assert_eq!(grid.step, Step::Micros(DAY));
        assert_eq!(grid.values, vec![2.5, 2.0, 0.0, 3.0]);
        let grid = regularize(&mut points, Fill::Interpolate).unwrap().unwrap();
        assert_eq!(grid.values, vec![2.5, 2.0, 2.5, 3.0]);
        assert_eq!(regularize(&mut [(5, 1.0), (5, 2.0)], Fill::Zero), Ok(None));
    }

    #[test]
    fn monthly_points_step_by_calendar_months() {
        let month = |y: i32, m: u32| {
            chrono::NaiveDate::from_ymd_opt(y, m, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp_micros()
        };
        let mut points = vec![
            (month(2024, 1), 1.0),
            (month(2024, 2), 2.0),
            (month(2024, 4), 4.0),
        ];
        let grid = regularize(&mut points, Fill::Zero).unwrap().unwrap();
        assert_eq!(grid.step, Step::Months(1));
        assert_eq!(grid.values, vec![1.0, 2.0, 0.0, 4.0]);
        assert_eq!(grid.time_of(4), Some(month(2024, 5)));
        let mut quarters = vec![
            (month(2024, 1), 1.0),
            (month(2024, 7), 2.0),
            (month(2024, 4), 4.0),
        ];
        let grid = regularize(&mut quarters, Fill::Zero).unwrap().unwrap();
        assert_eq!(grid.step, Step::Months(3));
        assert_eq!(grid.time_of(3), Some(month(2024, 10)));
    }

    #[test]
    fn timestamps_too_far_apart_are_an_error_not_an_overflow() {
        let mut points = vec![(i64::MIN + 1, 1.0), (0, 1.0), (i64::MAX, 1.0)];
        let error = regularize(&mut points, Fill::Zero).unwrap_err();
        assert!(error.contains("too far apart"), "{error}");
    }

    #[test]
    fn raw_event_times_are_refused() {
        let mut points = vec![(0, 1.0), (1, 1.0), (10_000_000_000, 1.0)];
        let error = regularize(&mut points, Fill::Zero).unwrap_err();
        assert!(error.contains("bucket them first"), "{error}");
    }

    #[test]
    fn linear_extends_a_straight_line_exactly() {
        let values: Vec<f64> = (0..10).map(|i| 5.0 + 2.0 * i as f64).collect();
        let f = forecast(&values, 3, Method::Linear, None, &[]).unwrap();
        assert_eq!(f.method, Method::Linear);
        for (h, y) in f.yhat.iter().enumerate() {
            assert!((y - (5.0 + 2.0 * (10 + h) as f64)).abs() < 1e-9, "{f:?}");
        }
        assert!(f.lo.iter().zip(&f.hi).all(|(l, h)| (h - l).abs() < 1e-6));
    }

    #[test]
    fn holt_winters_recovers_trend_and_season() {
        let pattern = [10.0, 12.0, 14.0, 13.0, 11.0, 4.0, 3.0];
        let values: Vec<f64> = (0..84)
            .map(|i| pattern[i % 7] + 0.5 * i as f64 + if i % 3 == 0 { 0.3 } else { -0.15 })
            .collect();
        assert_eq!(detect_season(&values, &[7]), Some(7));
        let f = forecast(&values, 14, Method::Auto, None, &[7]).unwrap();
        assert_eq!((f.method, f.season), (Method::HoltWinters, 7));
        for h in 0..14 {
            let truth = pattern[(84 + h) % 7] + 0.5 * (84 + h) as f64;
            assert!((f.yhat[h] - truth).abs() < 1.0, "step {h}: {f:?}");
            assert!(f.lo[h] <= f.yhat[h] && f.yhat[h] <= f.hi[h]);
        }
    }

    #[test]
    fn intervals_widen_with_the_horizon() {
        // A noisy random walk with drift.
        let mut level = 100.0;
        let values: Vec<f64> = (0..60u64)
            .map(|i| {
                let x = i.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                level += 1.0 + ((x >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 6.0;
                level
            })
            .collect();
        let f = forecast(&values, 10, Method::Holt, None, &[]).unwrap();
        let widths: Vec<f64> = f.lo.iter().zip(&f.hi).map(|(l, h)| h - l).collect();
        assert!(widths.windows(2).all(|w| w[1] > w[0]), "{widths:?}");
    }

    /// Lag-7 autocorrelation of the detrended values, as `detect_seasons` measures it.
    fn weekly_autocorrelation(values: &[f64]) -> f64 {
        let residuals = detrend(values);
        let variance: f64 = residuals.iter().map(|r| r * r).sum();
        residuals[7..]
            .iter()
            .zip(&residuals)
            .map(|(a, b)| a * b)
            .sum::<f64>()
            / variance
    }

    #[test]
    fn a_customary_season_needs_less_evidence_than_an_arbitrary_lag() {
        // Weekday spend of about 6, weekends a third of it, and a random day in three
        // without any calls: the weekly pattern is real but its autocorrelation is weak.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut uniform = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let values: Vec<f64> = (0..196)
            .map(|i| {
                let day = if i % 7 >= 5 { 2.0 } else { 6.0 };
                let value = day * (0.8 + 0.4 * uniform());
                if uniform() < 0.35 { 0.0 } else { value }
            })
            .collect();
        let acf = weekly_autocorrelation(&values);
        assert!(
            (0.2..0.3).contains(&acf),
            "premise: lag-7 autocorrelation {acf}"
        );
        assert_eq!(detect_seasons(&values, &[7]), vec![7]);
        // Searched among every lag, the same evidence is not enough for 7.
        assert!(!detect_seasons(&values, &[]).contains(&7));
        // Nor is it for a short history, where 0.25 is within the noise (2/√n).
        assert_eq!(detect_seasons(&values[..40], &[7]), Vec::<usize>::new());
    }

    #[test]
    fn short_histories_fall_back_and_spend_stays_non_negative() {
        let f = forecast(&[1.0, 3.0], 2, Method::HoltWinters, Some(7), &[]).unwrap();
        assert_eq!(f.method, Method::Linear);
        let f = forecast(&[10.0, 8.0, 6.0, 4.0, 2.0, 1.0], 5, Method::Holt, None, &[]).unwrap();
        assert_eq!(f.method, Method::Holt);
        assert!(f.yhat.iter().chain(&f.lo).all(|v| *v >= 0.0), "{f:?}");
        assert_eq!(forecast(&[1.0], 2, Method::Auto, None, &[]), None);
    }

    #[test]
    fn minimise_finds_the_bottom_of_a_bowl() {
        let objective = |x: &[f64]| (x[0] - 0.3).powi(2) + (x[1] - 0.7).powi(2);
        let best = minimise(&objective, 2, Effort::Full);
        assert!(
            (best[0] - 0.3).abs() < 1e-3 && (best[1] - 0.7).abs() < 1e-3,
            "{best:?}"
        );
    }
}
