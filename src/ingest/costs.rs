//! `spendql ingest --format openai-costs|anthropic-costs`: provider-reported costs into
//! `provider_costs`, for reconciliation against computed cost. They are not usage rows
//! (that would count the tokens twice).
//!
//! A file is merged whole or not at all: one atomic replace of the table. A record whose
//! `event_id` (day, project, line item, ...) is already stored replaces it, because
//! providers restate a day's cost until the day is closed.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Decimal128Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::compute::{concat_batches, filter_record_batch};

use super::providers::{self, CostRow};
use super::{FieldError, Format, IngestOptions, Rejects, json, open_text};
use crate::error::{Error, Result};
use crate::schema;
use crate::storage::ConfigTable;

/// More cost rows than this in one file is not a provider's cost export.
const MAX_COST_ROWS: usize = 1_000_000;

/// What one costs file did.
#[derive(Debug, Default)]
pub struct CostReport {
    pub file: String,
    pub rows_read: u64,
    /// Rows whose `event_id` was new.
    pub added: u64,
    /// Rows that replaced a stored row of the same `event_id`.
    pub replaced: u64,
    pub rejected: u64,
    pub bad_records: Vec<String>,
    /// Where every bad record was written (`--skip-bad`), if there was one.
    pub reject_file: Option<std::path::PathBuf>,
    /// The file's total in USD at scale 12.
    pub total: i128,
    pub seconds: f64,
}

/// Merge one costs file into `table` (`provider_costs`). Blocking.
pub fn ingest_costs_file(
    table: &ConfigTable,
    path: &Path,
    options: &IngestOptions,
) -> Result<CostReport> {
    let started = Instant::now();
    let file_name = path.display().to_string();
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let gz = file_name.ends_with(".gz");
    let input = BufReader::with_capacity(1 << 20, open_text(file, gz));
    let mut report = CostReport {
        file: file_name.clone(),
        ..CostReport::default()
    };
    let mut rows: Vec<CostRow> = Vec::new();
    let mut converted = Vec::new();
    let mut rejects = Rejects::for_input(path);
    let mut bad = |report: &mut CostReport, line: u64, e: FieldError| -> Result<()> {
        let err = Error::BadRecord {
            file: file_name.clone(),
            line,
            column: e.column,
            reason: e.reason,
        };
        if !options.skip_bad {
            return Err(err);
        }
        rejects.reject(&mut report.rejected, &mut report.bad_records, &err)
    };
    let outcome = json::for_each_raw_record(
        input,
        |line, record| -> Result<()> {
            let bytes = match record {
                Ok(bytes) => bytes,
                Err(reason) => {
                    report.rows_read += 1;
                    return bad(&mut report, line, FieldError::record(reason));
                }
            };
            let text = match std::str::from_utf8(&bytes) {
                Ok(text) => text,
                Err(e) => {
                    report.rows_read += 1;
                    let reason = format!("invalid JSON: {e}");
                    return bad(&mut report, line, FieldError::record(reason));
                }
            };
            converted.clear();
            let result = match options.format {
                Format::AnthropicCosts => providers::anthropic::costs(text, &mut converted),
                _ => providers::openai::costs(text, &mut converted),
            };
            if let Err(e) = result {
                report.rows_read += 1;
                bad(&mut report, line, e)?;
            }
            report.rows_read += converted.len() as u64;
            for row in converted.drain(..) {
                match row {
                    Ok(row) => rows.push(row),
                    Err(e) => bad(&mut report, line, e)?,
                }
            }
            if rows.len() > MAX_COST_ROWS {
                return Err(Error::Invalid(format!(
                    "{file_name}: more than {MAX_COST_ROWS} cost rows; split the file"
                )));
            }
            Ok(())
        },
        |_| {},
    )
    .map_err(|e| Error::io(path, e))?;
    outcome?;
    report.reject_file = rejects.finish()?;
    let source = format!("{}:{}", options.format.name(), report.file);
    let ingested_at = chrono::Utc::now().timestamp_micros();
    report.total = rows.iter().map(|r| r.amount).sum();
    let (added, replaced) = merge(table, rows, &source, ingested_at)?;
    report.added = added;
    report.replaced = replaced;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Replace the table with its rows minus those `incoming` restates, plus `incoming`.
fn merge(
    table: &ConfigTable,
    incoming: Vec<CostRow>,
    source: &str,
    ingested_at: i64,
) -> Result<(u64, u64)> {
    // The last record of an event id in the file wins.
    let mut by_id: HashMap<String, CostRow> = HashMap::with_capacity(incoming.len());
    let mut order = Vec::with_capacity(incoming.len());
    for row in incoming {
        if !by_id.contains_key(&row.event_id) {
            order.push(row.event_id.clone());
        }
        by_id.insert(row.event_id.clone(), row);
    }
    let rows: Vec<CostRow> = order.iter().filter_map(|id| by_id.remove(id)).collect();
    let version = table.version();
    let current = table.rows();
    let ids = current.column(0).as_string::<i32>();
    let restated: HashSet<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    let keep: BooleanArray = (0..current.num_rows())
        .map(|i| Some(!(ids.is_valid(i) && restated.contains(ids.value(i)))))
        .collect();
    let replaced = keep.false_count() as u64;
    let kept = filter_record_batch(&current, &keep)?;
    let new = batch(&rows, source, ingested_at)?;
    let merged = concat_batches(&current.schema(), &[kept, new])?;
    table.replace(merged, version)?;
    Ok((rows.len() as u64 - replaced, replaced))
}

fn batch(rows: &[CostRow], source: &str, ingested_at: i64) -> Result<RecordBatch> {
    let def = schema::table_def("provider_costs")
        .ok_or_else(|| Error::Invalid("built-in table provider_costs is missing".into()))?;
    fn text<'a>(rows: &'a [CostRow], f: impl Fn(&'a CostRow) -> Option<&'a str>) -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<StringArray>())
    }
    let columns: Vec<ArrayRef> = vec![
        text(rows, |r| Some(r.event_id.as_str())),
        Arc::new(rows.iter().map(|r| Some(r.day)).collect::<Date32Array>()),
        text(rows, |r| Some(r.provider)),
        text(rows, |r| r.project.as_deref()),
        text(rows, |r| Some(r.line_item.as_str())),
        text(rows, |r| r.model.as_deref()),
        text(rows, |r| r.service_tier.as_deref()),
        Arc::new(
            rows.iter()
                .map(|r| Some(r.amount))
                .collect::<Decimal128Array>()
                .with_precision_and_scale(38, 12)?,
        ),
        text(rows, |r| Some(r.currency.as_str())),
        Arc::new(StringArray::from(vec![source; rows.len()])),
        Arc::new(
            TimestampMicrosecondArray::from(vec![ingested_at; rows.len()]).with_timezone("+00:00"),
        ),
    ];
    Ok(RecordBatch::try_new(Arc::clone(&def.schema), columns)?)
}
