//! Small builders that turn plain vectors into Arrow columns of the built-in tables' types,
//! and assemble them in schema order so a table's batch always matches `schema::table_def`.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, Int32Array, Int64Array, StringArray,
    Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow::record_batch::RecordBatch;
use chrono::{NaiveDate, NaiveTime};
use rust_decimal::Decimal;

use crate::{Error, Result, schema};

pub(crate) fn text<S: AsRef<str>>(values: &[Option<S>]) -> ArrayRef {
    Arc::new(StringArray::from_iter(
        values.iter().map(|v| v.as_ref().map(|s| s.as_ref())),
    ))
}

pub(crate) fn text_nn<S: AsRef<str>>(values: &[S]) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(
        values.iter().map(|v| v.as_ref()),
    ))
}

pub(crate) fn int64(values: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(Int64Array::from(values))
}

pub(crate) fn int32(values: Vec<Option<i32>>) -> ArrayRef {
    Arc::new(Int32Array::from(values))
}

pub(crate) fn timestamps(values: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values).with_timezone("+00:00"))
}

pub(crate) fn dates(values: Vec<Option<i32>>) -> ArrayRef {
    Arc::new(Date32Array::from(values))
}

pub(crate) fn times(values: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(Time64MicrosecondArray::from(values))
}

/// Exact decimal column; values with more digits than `scale` are refused, not rounded.
fn decimal(values: &[Option<Decimal>], precision: u8, scale: u32) -> Result<ArrayRef> {
    let limit = 10i128.pow(u32::from(precision));
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        out.push(match v {
            None => None,
            Some(d) => {
                let mut x = d.normalize();
                if x.scale() > scale {
                    return Err(Error::Invalid(format!(
                        "demo value {d} has more than {scale} decimal places"
                    )));
                }
                x.rescale(scale);
                if x.scale() != scale || x.mantissa().abs() >= limit {
                    return Err(Error::Invalid(format!(
                        "demo value {d} does not fit DECIMAL({precision},{scale})"
                    )));
                }
                Some(x.mantissa())
            }
        });
    }
    let scale = i8::try_from(scale).map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(Arc::new(
        Decimal128Array::from(out).with_precision_and_scale(precision, scale)?,
    ))
}

/// `DECIMAL(38,12)`.
pub(crate) fn money(values: &[Option<Decimal>]) -> Result<ArrayRef> {
    decimal(values, 38, 12)
}

/// `DECIMAL(20,9)`.
pub(crate) fn price(values: &[Option<Decimal>]) -> Result<ArrayRef> {
    decimal(values, 20, 9)
}

/// `DECIMAL(9,4)`.
pub(crate) fn ratio(values: &[Option<Decimal>]) -> Result<ArrayRef> {
    decimal(values, 9, 4)
}

/// Days since the Unix epoch, for `Date32`.
pub(crate) fn day_number(d: NaiveDate) -> i32 {
    d.to_epoch_days()
}

/// Microseconds since the epoch at midnight UTC.
pub(crate) fn midnight_micros(d: NaiveDate) -> i64 {
    d.and_time(NaiveTime::MIN).and_utc().timestamp_micros()
}

/// Assembles `columns` (by name) into a batch with exactly the table's schema.
pub(crate) fn batch(table: &str, mut columns: Vec<(&str, ArrayRef)>) -> Result<RecordBatch> {
    let def = schema::table_def(table)
        .ok_or_else(|| Error::Invalid(format!("demo: no built-in table {table}")))?;
    let mut arrays = Vec::with_capacity(def.schema.fields().len());
    for field in def.schema.fields() {
        let pos = columns
            .iter()
            .position(|(name, _)| *name == field.name())
            .ok_or_else(|| {
                Error::Invalid(format!("demo: {table}.{} not generated", field.name()))
            })?;
        arrays.push(columns.swap_remove(pos).1);
    }
    if let Some((name, _)) = columns.first() {
        return Err(Error::Invalid(format!(
            "demo: {table} has no column {name}"
        )));
    }
    Ok(RecordBatch::try_new(Arc::clone(&def.schema), arrays)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;

    #[test]
    fn day_numbers_match_the_epoch() {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("date");
        assert_eq!(day_number(epoch), 0);
        let d = NaiveDate::from_ymd_opt(2026, 3, 1).expect("date");
        assert_eq!(day_number(d), (d - epoch).num_days() as i32);
    }

    #[test]
    fn decimals_are_exact() {
        let v = [Some(Decimal::new(125, 3)), None];
        let a = price(&v).expect("fits");
        let a = a
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .expect("decimal");
        assert_eq!(a.value(0), 125_000_000);
        assert!(a.is_null(1));
        assert!(ratio(&[Some(Decimal::new(1, 5))]).is_err());
    }
}
