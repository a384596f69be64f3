//! Budgets that warn and block: evaluation, alerts and their delivery, and the
//! `budget_check` function gateways call before a request.
//!
//! - [`status`]: budgets in their current period, as the `budget_status` view computes
//!   them, at any given time; the shared [`BudgetBook`](status::BudgetBook).
//! - [`alerts`]: which alerts are due (once per budget, period and threshold) and their
//!   rows in `alerts`.
//! - [`anomaly_alerts`]: days the `anomalies` view flags, as alerts to the budgets of
//!   their scope.
//! - [`webhook`]: delivery by HTTP POST with retries and backoff.
//! - [`monitor`]: the server task that ties them together.
//! - [`budget_check`]: the table function.

pub mod alerts;
pub mod anomaly_alerts;
pub mod budget_check;
pub mod monitor;
pub mod status;
pub mod webhook;

pub use monitor::{Monitor, MonitorOptions};
pub use status::{BudgetBook, BudgetState, Evaluation};

use arrow::array::{ArrayRef, AsArray, StringArray};
use arrow::datatypes::DataType;

/// A text column of a query's result as `Utf8`, whichever string type the plan gave it
/// (`usage` is read as `Utf8View`, configuration tables as `Utf8`).
fn text_column(column: &ArrayRef) -> crate::error::Result<StringArray> {
    Ok(arrow::compute::cast(column, &DataType::Utf8)?
        .as_string::<i32>()
        .clone())
}
