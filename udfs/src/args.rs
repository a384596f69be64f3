//! Argument handling shared by the functions: every argument becomes an array of one
//! canonical type, so each function has one code path for scalars and columns.

use std::sync::Arc;

use arrow::array::{Array, Int64Array, StringArray, StringViewArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::ColumnarValue;

/// `arg` as `rows` values of `to`, in the array type `A` of that data type.
fn cast<A: Array + Clone + 'static>(
    arg: &ColumnarValue,
    rows: usize,
    to: &DataType,
    wrong_type: impl FnOnce() -> String,
) -> Result<A> {
    let array = arrow::compute::cast(&arg.to_array(rows)?, to)?;
    array
        .as_any()
        .downcast_ref::<A>()
        .cloned()
        .ok_or_else(|| DataFusionError::Plan(wrong_type()))
}

pub fn text(arg: &ColumnarValue, rows: usize, name: &str) -> Result<StringArray> {
    cast(arg, rows, &DataType::Utf8, || {
        format!("{name} must be text")
    })
}

/// Text as views: a scan of `usage` hands its text on as `Utf8View`, and other text
/// becomes views without copying its bytes.
pub fn text_view(arg: &ColumnarValue, rows: usize, name: &str) -> Result<StringViewArray> {
    cast(arg, rows, &DataType::Utf8View, || {
        format!("{name} must be text")
    })
}

pub fn int(arg: &ColumnarValue, rows: usize, name: &str) -> Result<Int64Array> {
    cast(arg, rows, &DataType::Int64, || {
        format!("{name} must be an integer")
    })
}

pub fn timestamp(
    arg: &ColumnarValue,
    rows: usize,
    name: &str,
) -> Result<TimestampMicrosecondArray> {
    let utc = DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("+00:00")));
    cast(arg, rows, &utc, || format!("{name} must be a timestamp"))
}

/// `DECIMAL(38,12)`, the type of every cost.
pub fn cost_type() -> DataType {
    DataType::Decimal128(38, crate::catalog::COST_SCALE)
}

/// `DECIMAL(20,9)`, the type of every price.
pub fn price_type() -> DataType {
    DataType::Decimal128(20, crate::catalog::PRICE_SCALE)
}
