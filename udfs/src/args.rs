//! Argument handling shared by the functions: every argument becomes an array of one
//! canonical type, so each function has one code path for scalars and columns.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray, StringViewArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::ColumnarValue;

fn cast(arg: &ColumnarValue, rows: usize, to: &DataType) -> Result<ArrayRef> {
    let array = arg.to_array(rows)?;
    Ok(arrow::compute::cast(&array, to)?)
}

pub fn text(arg: &ColumnarValue, rows: usize, name: &str) -> Result<StringArray> {
    let array = cast(arg, rows, &DataType::Utf8)?;
    array
        .as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(|| DataFusionError::Plan(format!("{name} must be text")))
}

/// Text as views: a scan of `usage` hands its text on as `Utf8View`, and other text
/// becomes views without copying its bytes.
pub fn text_view(arg: &ColumnarValue, rows: usize, name: &str) -> Result<StringViewArray> {
    let array = cast(arg, rows, &DataType::Utf8View)?;
    array
        .as_any()
        .downcast_ref::<StringViewArray>()
        .cloned()
        .ok_or_else(|| DataFusionError::Plan(format!("{name} must be text")))
}

pub fn int(arg: &ColumnarValue, rows: usize, name: &str) -> Result<Int64Array> {
    let array = cast(arg, rows, &DataType::Int64)?;
    array
        .as_any()
        .downcast_ref::<Int64Array>()
        .cloned()
        .ok_or_else(|| DataFusionError::Plan(format!("{name} must be an integer")))
}

pub fn timestamp(
    arg: &ColumnarValue,
    rows: usize,
    name: &str,
) -> Result<TimestampMicrosecondArray> {
    let array = cast(
        arg,
        rows,
        &DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("+00:00"))),
    )?;
    array
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .cloned()
        .ok_or_else(|| DataFusionError::Plan(format!("{name} must be a timestamp")))
}

/// `DECIMAL(38,12)`, the type of every cost.
pub fn cost_type() -> DataType {
    DataType::Decimal128(38, crate::catalog::COST_SCALE)
}

/// `DECIMAL(20,9)`, the type of every price.
pub fn price_type() -> DataType {
    DataType::Decimal128(20, crate::catalog::PRICE_SCALE)
}
