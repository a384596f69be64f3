//! PostgreSQL's `timezone(zone, ts)` and `age(a [, b])`, which Metabase's generated questions
//! use (convert-timezone, datetime-diff) and DataFusion lacks. Both follow PostgreSQL's
//! definitions exactly rather than approximating them with DataFusion's interval arithmetic:
//! `age` is calendar-aware (`age('2026-03-01', '2026-02-01')` is `1 mon`, not `28 days`).

use std::sync::Arc;

use arrow::array::timezone::Tz;
use arrow::array::{
    Array, ArrayRef, AsArray, IntervalMonthDayNanoArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, IntervalMonthDayNano, TimeUnit, TimestampMicrosecondType};
use chrono::{DateTime, Datelike, NaiveDateTime, TimeZone, Timelike};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::PG_CATALOG;

/// `timezone(zone, ts)`: a `timestamptz` as the wall-clock time in `zone` (a `timestamp`),
/// or a `timestamp` read as wall-clock time in `zone` (a `timestamptz`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Timezone {
    signature: Signature,
    aliases: Vec<String>,
}

/// `age(a, b)` (and `age(a)`, from today's midnight): the calendar difference as years,
/// months, days and time.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Age {
    signature: Signature,
    aliases: Vec<String>,
}

pub fn timezone() -> ScalarUDF {
    ScalarUDF::new_from_impl(Timezone {
        signature: Signature::any(2, Volatility::Immutable),
        aliases: vec![format!("{PG_CATALOG}.timezone")],
    })
}

pub fn age() -> ScalarUDF {
    ScalarUDF::new_from_impl(Age {
        signature: Signature::variadic_any(Volatility::Stable),
        aliases: vec![format!("{PG_CATALOG}.age")],
    })
}

const UTC: &str = "+00:00";

impl ScalarUDFImpl for Timezone {
    fn name(&self) -> &str {
        "timezone"
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args.get(1) {
            Some(DataType::Timestamp(_, Some(_))) => {
                Ok(DataType::Timestamp(TimeUnit::Microsecond, None))
            }
            Some(DataType::Timestamp(_, None)) => {
                Ok(DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())))
            }
            other => exec_err!("timezone(zone, ts) needs a timestamp, not {other:?}"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [zone, ts] = args.args.as_slice() else {
            return exec_err!("timezone(zone, ts) takes two arguments");
        };
        let ColumnarValue::Scalar(zone) = zone else {
            return exec_err!("timezone(zone, ts): the zone must be a constant");
        };
        let zone: Tz = match zone {
            ScalarValue::Utf8(Some(z))
            | ScalarValue::Utf8View(Some(z))
            | ScalarValue::LargeUtf8(Some(z)) => z.parse().map_err(|e| {
                datafusion::error::DataFusionError::Execution(format!(
                    "time zone \"{z}\" not recognized: {e}"
                ))
            })?,
            _ => return exec_err!("timezone(zone, ts): the zone must be text"),
        };
        let scalar = matches!(ts, ColumnarValue::Scalar(_));
        let input = ts.to_array(args.number_rows)?;
        let to_naive = matches!(input.data_type(), DataType::Timestamp(_, Some(_)));
        let micros = arrow::compute::cast(
            &input,
            &DataType::Timestamp(TimeUnit::Microsecond, to_naive.then(|| UTC.into())),
        )?;
        let micros = micros.as_primitive::<TimestampMicrosecondType>();
        let mut out = Vec::with_capacity(micros.len());
        for value in micros.iter() {
            out.push(match value {
                None => None,
                Some(v) if to_naive => {
                    let utc = DateTime::from_timestamp_micros(v);
                    utc.map(|u| {
                        u.with_timezone(&zone)
                            .naive_local()
                            .and_utc()
                            .timestamp_micros()
                    })
                }
                Some(v) => {
                    let naive = DateTime::from_timestamp_micros(v).map(|d| d.naive_utc());
                    naive
                        .and_then(|n| zone.from_local_datetime(&n).earliest())
                        .map(|d| d.timestamp_micros())
                }
            });
        }
        let out = TimestampMicrosecondArray::from(out);
        let out: ArrayRef = if to_naive {
            Arc::new(out)
        } else {
            Arc::new(out.with_timezone(UTC))
        };
        Ok(if scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(out)
        })
    }
}

impl ScalarUDFImpl for Age {
    fn name(&self) -> &str {
        "age"
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Interval(
            arrow::datatypes::IntervalUnit::MonthDayNano,
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let as_micros = |value: &ColumnarValue| -> Result<Vec<Option<i64>>> {
            let array = arrow::compute::cast(
                &value.to_array(rows)?,
                &DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
            )?;
            Ok(array
                .as_primitive::<TimestampMicrosecondType>()
                .iter()
                .collect())
        };
        let (later, earlier) = match args.args.as_slice() {
            [a, b] => (as_micros(a)?, as_micros(b)?),
            [b] => {
                let today = chrono::Utc::now()
                    .date_naive()
                    .and_hms_opt(0, 0, 0)
                    .map(|d| d.and_utc().timestamp_micros());
                (vec![today; rows], as_micros(b)?)
            }
            _ => return exec_err!("age takes one or two timestamps"),
        };
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let out: IntervalMonthDayNanoArray = later
            .iter()
            .zip(&earlier)
            .map(|(a, b)| {
                let a = DateTime::from_timestamp_micros((*a)?)?.naive_utc();
                let b = DateTime::from_timestamp_micros((*b)?)?.naive_utc();
                Some(calendar_age(a, b))
            })
            .collect();
        Ok(if scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(Arc::new(out))
        })
    }
}

/// PostgreSQL's `timestamp_age`: field-by-field difference, borrowing from the next larger
/// field, a borrowed month being as long as the month of the earlier operand.
fn calendar_age(a: NaiveDateTime, b: NaiveDateTime) -> IntervalMonthDayNano {
    let field = |t: NaiveDateTime| {
        [
            i64::from(t.year()),
            i64::from(t.month()) - 1,
            i64::from(t.day()),
            i64::from(t.hour()),
            i64::from(t.minute()),
            i64::from(t.second()),
            i64::from(t.nanosecond() / 1000),
        ]
    };
    let (t1, t2) = (field(a), field(b));
    let negative = a < b;
    let sign = if negative { -1 } else { 1 };
    let [
        mut year,
        mut mon,
        mut mday,
        mut hour,
        mut min,
        mut sec,
        mut usec,
    ] = std::array::from_fn(|i| (t1[i] - t2[i]) * sign);
    let borrow = |low: &mut i64, high: &mut i64, size: i64| {
        while *low < 0 {
            *low += size;
            *high -= 1;
        }
    };
    borrow(&mut usec, &mut sec, 1_000_000);
    borrow(&mut sec, &mut min, 60);
    borrow(&mut min, &mut hour, 60);
    borrow(&mut hour, &mut mday, 24);
    while mday < 0 {
        // The month to borrow: the earlier operand's (as PostgreSQL does).
        let (y, m) = if negative {
            (t1[0], t1[1])
        } else {
            (t2[0], t2[1])
        };
        mday += days_in_month(y, m + 1);
        mon -= 1;
    }
    borrow(&mut mon, &mut year, 12);
    let months = (year * 12 + mon) * sign;
    let days = mday * sign;
    let nanos = (((hour * 60 + min) * 60 + sec) * 1_000_000 + usec) * 1000 * sign;
    IntervalMonthDayNano::new(
        i32::try_from(months).unwrap_or(i32::MAX),
        i32::try_from(days).unwrap_or(i32::MAX),
        nanos,
    )
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").expect("timestamp")
    }

    #[test]
    fn age_is_calendar_aware_like_postgres() {
        let month = |m, d, n| IntervalMonthDayNano::new(m, d, n);
        // SELECT age('2026-03-01', '2026-02-01') => 1 mon
        assert_eq!(
            calendar_age(at("2026-03-01 00:00:00"), at("2026-02-01 00:00:00")),
            month(1, 0, 0)
        );
        // age('2026-03-15', '2026-01-31') => 1 mon 15 days (January's 31 days borrowed)
        assert_eq!(
            calendar_age(at("2026-03-15 00:00:00"), at("2026-01-31 00:00:00")),
            month(1, 15, 0)
        );
        // age('2026-10-02 00:00', '2026-10-01 12:00') => 12:00:00
        assert_eq!(
            calendar_age(at("2026-10-02 00:00:00"), at("2026-10-01 12:00:00")),
            month(0, 0, 12 * 3600 * 1_000_000_000)
        );
        // age('2024-01-01', '2026-03-15') => -2 years -2 mons -14 days
        assert_eq!(
            calendar_age(at("2024-01-01 00:00:00"), at("2026-03-15 00:00:00")),
            month(-26, -14, 0)
        );
        // A leap-year February: age('2024-03-01', '2024-02-28') => 2 days
        assert_eq!(
            calendar_age(at("2024-03-01 00:00:00"), at("2024-02-28 00:00:00")),
            month(0, 2, 0)
        );
    }
}
