//! `date_trunc(granularity, ts)`: DataFusion's function, with arithmetic for UTC.
//!
//! Spend dashboards group by `date_trunc('day' | 'week' | 'month', ts)` over every row, and
//! `usage.ts` is `TIMESTAMP WITH TIME ZONE` in UTC. DataFusion 55 truncates a timestamp with
//! a time zone through chrono's calendar one value at a time (about 45 ns a row, a fifth of
//! a dashboard query). In UTC (or without a zone) every day has the same length, so
//! seconds to days are a remainder, weeks start on the Monday before, and months,
//! quarters and years come from the civil date of the day number. Everything else (other
//! zones, scalars, times of day, sub-second granularities) goes to DataFusion's function,
//! whose name, signature, return type, ordering and documentation this one keeps. One
//! difference: DataFusion truncates through nanoseconds, so it errs on timestamps outside
//! 1677–2262; here those truncate like any other.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, PrimitiveArray};
use arrow::datatypes::{
    ArrowTimestampType, DataType, FieldRef, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use arrow::error::ArrowError;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};

/// `date_trunc`, computed here for UTC timestamp arrays and by DataFusion otherwise.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DateTruncFunc {
    builtin: Arc<ScalarUDF>,
}

impl Default for DateTruncFunc {
    fn default() -> Self {
        DateTruncFunc {
            builtin: datafusion::functions::datetime::date_trunc(),
        }
    }
}

/// What a truncation computes, in the timestamp's own unit.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Truncation {
    /// To a multiple of this many units (seconds to days).
    Multiple(i64),
    /// To the Monday of the week.
    Week,
    /// To the first day of the month, quarter (every 3 months) or year (every 12).
    Months(u32),
}

impl Truncation {
    fn of(granularity: &str, unit: TimeUnit) -> Option<Truncation> {
        let per_second = per_second(unit);
        Some(match granularity.to_ascii_lowercase().as_str() {
            "second" => Truncation::Multiple(per_second),
            "minute" => Truncation::Multiple(60 * per_second),
            "hour" => Truncation::Multiple(3_600 * per_second),
            "day" => Truncation::Multiple(SECONDS_PER_DAY * per_second),
            "week" => Truncation::Week,
            "month" => Truncation::Months(1),
            "quarter" => Truncation::Months(3),
            "year" => Truncation::Months(12),
            _ => return None,
        })
    }

    /// The period `value` falls in, `[start, end)`, for weeks, months, quarters and years
    /// (`None` for the others, which are cheap, or on overflow; an end past the range is
    /// `i64::MAX`).
    fn period(self, value: i64, per_day: i64) -> Option<(i64, i64)> {
        let start = self.apply(value, per_day)?;
        let end = match self {
            Truncation::Multiple(_) => return None,
            Truncation::Week => start.checked_add(7 * per_day),
            Truncation::Months(months) => {
                let (year, month, _) = civil_from_days(start.div_euclid(per_day));
                let next = month + months;
                let (year, month) = if next > 12 {
                    (year + 1, next - 12)
                } else {
                    (year, next)
                };
                days_from_civil(year, month, 1).checked_mul(per_day)
            }
        };
        Some((start, end.unwrap_or(i64::MAX)))
    }

    /// `value` (in units of which `per_day` make a day) truncated; `None` on overflow.
    fn apply(self, value: i64, per_day: i64) -> Option<i64> {
        match self {
            Truncation::Multiple(step) => value.checked_sub(value.rem_euclid(step)),
            Truncation::Week => {
                let day = value.div_euclid(per_day);
                // 1970-01-01 was a Thursday, three days after a Monday.
                let monday = day.checked_sub((day + 3).rem_euclid(7))?;
                monday.checked_mul(per_day)
            }
            Truncation::Months(months) => {
                let (year, month, _) = civil_from_days(value.div_euclid(per_day));
                let first_month = (month - 1) / months * months + 1;
                days_from_civil(year, first_month, 1).checked_mul(per_day)
            }
        }
    }
}

const SECONDS_PER_DAY: i64 = 86_400;

fn per_second(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    }
}

/// The proleptic Gregorian (year, month, day) of a day number counted from 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The day number (from 1970-01-01) of a proleptic Gregorian date (`days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Whether truncating in `tz` is truncating in UTC.
fn is_utc(tz: Option<&str>) -> bool {
    match tz {
        None => true,
        Some(tz) => matches!(tz, "UTC" | "utc" | "Z" | "+00:00" | "+00" | "Etc/UTC"),
    }
}

fn truncate<T: ArrowTimestampType>(
    array: &ArrayRef,
    truncation: Truncation,
    tz: Option<Arc<str>>,
) -> Option<ArrayRef> {
    let per_day = SECONDS_PER_DAY * per_second(T::UNIT);
    let values = array.as_primitive_opt::<T>()?;
    // Only valid slots are computed; an overflow leaves the batch to DataFusion's function,
    // which reports it.
    let overflow = || ArrowError::ComputeError("overflow".into());
    let truncated: PrimitiveArray<T> = match truncation {
        Truncation::Multiple(_) => values
            .try_unary(|v| truncation.apply(v, per_day).ok_or_else(overflow))
            .ok()?,
        // Calendar periods take a civil date conversion each way; rows come in time order
        // or a day at a time, so nearly every one falls in the previous row's period.
        Truncation::Week | Truncation::Months(_) => {
            let last = std::cell::Cell::new((1, 0));
            values
                .try_unary(|v| -> Result<i64, ArrowError> {
                    let (start, end) = last.get();
                    if start <= v && v < end {
                        return Ok(start);
                    }
                    let Some((start, end)) = truncation.period(v, per_day) else {
                        return Err(overflow());
                    };
                    last.set((start, end));
                    Ok(start)
                })
                .ok()?
        }
    };
    Some(Arc::new(truncated.with_timezone_opt(tz)))
}

impl DateTruncFunc {
    /// The truncated array, if this is a case computed here.
    fn fast(&self, args: &ScalarFunctionArgs) -> Option<ArrayRef> {
        let [granularity, ColumnarValue::Array(array)] = args.args.as_slice() else {
            return None;
        };
        let granularity = match granularity {
            ColumnarValue::Scalar(
                ScalarValue::Utf8(Some(g))
                | ScalarValue::Utf8View(Some(g))
                | ScalarValue::LargeUtf8(Some(g)),
            ) => g,
            _ => return None,
        };
        let DataType::Timestamp(unit, tz) = array.data_type() else {
            return None;
        };
        if !is_utc(tz.as_deref()) {
            return None;
        }
        let truncation = Truncation::of(granularity, *unit)?;
        let tz = tz.clone();
        match unit {
            TimeUnit::Second => truncate::<TimestampSecondType>(array, truncation, tz),
            TimeUnit::Millisecond => truncate::<TimestampMillisecondType>(array, truncation, tz),
            TimeUnit::Microsecond => truncate::<TimestampMicrosecondType>(array, truncation, tz),
            TimeUnit::Nanosecond => truncate::<TimestampNanosecondType>(array, truncation, tz),
        }
    }
}

impl ScalarUDFImpl for DateTruncFunc {
    fn name(&self) -> &str {
        self.builtin.name()
    }

    fn aliases(&self) -> &[String] {
        self.builtin.aliases()
    }

    fn signature(&self) -> &Signature {
        self.builtin.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.builtin.inner().return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.builtin.return_field_from_args(args)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match self.fast(&args) {
            Some(array) => Ok(ColumnarValue::Array(array)),
            None => self.builtin.invoke_with_args(args),
        }
    }

    fn output_ordering(&self, input: &[ExprProperties]) -> Result<SortProperties> {
        self.builtin.output_ordering(input)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.builtin.documentation()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::TimestampMicrosecondArray;
    use arrow::datatypes::Field;
    use datafusion::config::ConfigOptions;
    use proptest::prelude::*;

    const GRANULARITIES: [&str; 8] = [
        "second", "minute", "hour", "day", "week", "month", "quarter", "year",
    ];

    fn invoke(udf: &dyn ScalarUDFImpl, granularity: &str, array: ArrayRef) -> ArrayRef {
        try_invoke(udf, granularity, array).unwrap()
    }

    fn try_invoke(udf: &dyn ScalarUDFImpl, granularity: &str, array: ArrayRef) -> Result<ArrayRef> {
        let arg_fields = vec![
            Arc::new(Field::new("g", DataType::Utf8, false)),
            Arc::new(Field::new("ts", array.data_type().clone(), true)),
        ];
        let return_field = Arc::new(Field::new("out", array.data_type().clone(), true));
        let args = ScalarFunctionArgs {
            number_rows: array.len(),
            args: vec![
                ColumnarValue::Scalar(ScalarValue::Utf8(Some(granularity.into()))),
                ColumnarValue::Array(array),
            ],
            arg_fields,
            return_field,
            config_options: Arc::new(ConfigOptions::default()),
        };
        match udf.invoke_with_args(args)? {
            ColumnarValue::Array(a) => Ok(a),
            ColumnarValue::Scalar(s) => s.to_array(),
        }
    }

    fn utc(values: Vec<Option<i64>>, tz: Option<&str>) -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from(values).with_timezone_opt(tz.map(Arc::<str>::from)),
        )
    }

    /// 2026-03-15T13:45:30.123456Z and a few around the edges of months and weeks.
    const MICROS: [i64; 5] = [
        1_773_582_330_123_456,
        0,
        -1,
        951_782_400_000_000,   // 2000-02-29T00:00:00Z
        1_767_225_599_999_999, // 2025-12-31T23:59:59.999999Z
    ];

    #[test]
    fn utc_truncations_equal_datafusions_and_keep_nulls_and_the_zone() {
        let ours = DateTruncFunc::default();
        let builtin = datafusion::functions::datetime::date_trunc();
        let mut values: Vec<Option<i64>> = MICROS.iter().copied().map(Some).collect();
        values.push(None);
        for tz in [Some("UTC"), Some("+00:00"), None] {
            for granularity in GRANULARITIES {
                let array = utc(values.clone(), tz);
                let fast = invoke(&ours, granularity, Arc::clone(&array));
                let slow = invoke(builtin.inner().as_ref(), granularity, array);
                assert_eq!(fast.as_ref(), slow.as_ref(), "{granularity} in {tz:?}");
                assert!(fast.is_null(values.len() - 1));
            }
        }
        let month = invoke(&ours, "MONTH", utc(vec![Some(MICROS[0])], Some("UTC")));
        let month = month.as_primitive::<TimestampMicrosecondType>();
        // 2026-03-01T00:00:00Z
        assert_eq!(month.value(0), 1_772_323_200_000_000);
        assert_eq!(month.timezone(), Some("UTC"));
    }

    #[test]
    fn other_zones_and_granularities_and_scalars_go_to_datafusion() {
        let ours = DateTruncFunc::default();
        let builtin = datafusion::functions::datetime::date_trunc();
        for (granularity, tz) in [
            ("day", Some("America/New_York")),
            ("month", Some("+05:30")),
            ("millisecond", Some("UTC")),
        ] {
            let array = utc(MICROS.iter().copied().map(Some).collect(), tz);
            let fast = invoke(&ours, granularity, Arc::clone(&array));
            let slow = invoke(builtin.inner().as_ref(), granularity, array);
            assert_eq!(fast.as_ref(), slow.as_ref(), "{granularity} in {tz:?}");
        }
        let error = try_invoke(&ours, "fortnight", utc(vec![Some(0)], Some("UTC"))).unwrap_err();
        assert!(error.to_string().contains("fortnight"), "{error}");
        assert_eq!(ours.name(), "date_trunc");
        assert_eq!(ours.aliases(), ["datetrunc"]);
        assert!(ours.documentation().is_some());
    }

    #[test]
    fn overflow_is_datafusions_error_not_a_wrong_answer() {
        let ours = DateTruncFunc::default();
        let builtin = datafusion::functions::datetime::date_trunc();
        let array: ArrayRef = Arc::new(
            PrimitiveArray::<TimestampNanosecondType>::from(vec![i64::MIN]).with_timezone("UTC"),
        );
        // The week before the earliest nanosecond timestamp cannot be represented.
        assert!(
            Truncation::Week
                .apply(i64::MIN, SECONDS_PER_DAY * 1_000_000_000)
                .is_none()
        );
        let ours = try_invoke(&ours, "week", Arc::clone(&array)).map_err(|e| e.to_string());
        let theirs = try_invoke(builtin.inner().as_ref(), "week", array).map_err(|e| e.to_string());
        assert_eq!(ours, theirs);
    }

    #[test]
    fn microseconds_early_in_1677_truncate_where_datafusion_errs() {
        // 1677-01-01T00:00:00Z is before the nanosecond range; a time in March 1677 is not.
        let start_of_1677 = days_from_civil(1677, 1, 1) * SECONDS_PER_DAY * 1_000_000;
        let micros = start_of_1677 + 70 * SECONDS_PER_DAY * 1_000_000 + 1;
        let array = utc(vec![Some(micros)], Some("UTC"));
        let builtin = datafusion::functions::datetime::date_trunc();
        let theirs = try_invoke(builtin.inner().as_ref(), "year", Arc::clone(&array));
        assert!(theirs.is_err_and(|e| e.to_string().contains("out of range")));
        let ours = invoke(&DateTruncFunc::default(), "year", array);
        let ours = ours.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(ours.value(0), start_of_1677);
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-719_468, -1, 0, 59, 10_957, 20_527, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn timestamps_past_2262_truncate_too() {
        // DataFusion truncates through nanoseconds, so beyond 1677–2262 it errs; in UTC
        // the arithmetic needs no such detour. 3000-07-04T05:06:07Z to 3000-07-01.
        let ours = DateTruncFunc::default();
        let july = invoke(
            &ours,
            "month",
            utc(
                vec![Some(
                    (days_from_civil(3000, 7, 4) * 86_400 + 5 * 3_600 + 6 * 60 + 7) * 1_000_000,
                )],
                Some("UTC"),
            ),
        );
        assert_eq!(
            july.as_primitive::<TimestampMicrosecondType>().value(0),
            days_from_civil(3000, 7, 1) * 86_400_000_000
        );
    }

    #[test]
    fn a_batch_across_period_boundaries_truncates_each_value() {
        // Every month start of 2023–2025 and the microseconds either side, in time order:
        // what a day-sorted scan feeds the memo.
        let ours = DateTruncFunc::default();
        let mut values = Vec::new();
        for year in 2023..=2025 {
            for month in 1..=12 {
                let start = days_from_civil(year, month, 1) * 86_400_000_000;
                values.extend([start - 1, start, start + 1]);
            }
        }
        for granularity in ["week", "month", "quarter", "year"] {
            let batch = invoke(
                &ours,
                granularity,
                utc(values.iter().copied().map(Some).collect(), Some("UTC")),
            );
            let batch = batch.as_primitive::<TimestampMicrosecondType>();
            let truncation = Truncation::of(granularity, TimeUnit::Microsecond).unwrap();
            for (i, v) in values.iter().enumerate() {
                assert_eq!(
                    Some(batch.value(i)),
                    truncation.apply(*v, 86_400_000_000),
                    "{granularity} of {v}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn batches_truncate_as_their_values_do_one_at_a_time(
            base in -2_000_000_000_000_000i64..4_000_000_000_000_000,
            // Up to three years either side, sorted or not, so that consecutive values
            // share a period, cross into the next, or jump back.
            offsets in proptest::collection::vec(-94_000_000_000_000i64..94_000_000_000_000, 1..200),
            sorted in any::<bool>(),
            g in 4usize..8,
        ) {
            let ours = DateTruncFunc::default();
            let mut values: Vec<i64> = offsets.iter().map(|o| base + o).collect();
            if sorted {
                values.sort_unstable();
            }
            let batch = invoke(
                &ours,
                GRANULARITIES[g],
                utc(values.iter().copied().map(Some).collect(), Some("UTC")),
            );
            let batch = batch.as_primitive::<TimestampMicrosecondType>();
            for (i, v) in values.iter().enumerate() {
                let alone = invoke(&ours, GRANULARITIES[g], utc(vec![Some(*v)], Some("UTC")));
                prop_assert_eq!(
                    batch.value(i),
                    alone.as_primitive::<TimestampMicrosecondType>().value(0),
                    "{} of {}", GRANULARITIES[g], v
                );
            }
        }

        #[test]
        fn any_utc_timestamp_truncates_as_datafusion_does(
            // Where DataFusion's nanosecond detour can represent it.
            micros in -9_223_372_036_854_775i64..9_223_372_036_854_775,
            g in 0usize..8,
        ) {
            let ours = DateTruncFunc::default();
            let builtin = datafusion::functions::datetime::date_trunc();
            let array = utc(vec![Some(micros)], Some("UTC"));
            let fast = invoke(&ours, GRANULARITIES[g], Arc::clone(&array));
            match try_invoke(builtin.inner().as_ref(), GRANULARITIES[g], array) {
                Ok(slow) => prop_assert_eq!(fast.as_ref(), slow.as_ref()),
                // Truncating a 1677 time to its year, quarter or month can fall before the
                // nanosecond range's start (1677-09-21): DataFusion errs, ours answers, and
                // the answer is still the start of a period containing the input.
                Err(e) => {
                    prop_assert!(e.to_string().contains("out of range"), "{}", e);
                    let start = fast
                        .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                        .value(0);
                    prop_assert!(start <= micros && micros - start < 366 * 86_400_000_000);
                }
            }
        }
    }
}
