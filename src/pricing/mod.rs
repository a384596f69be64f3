//! The bundled price catalog and price imports.
//!
//! SpendQL ships `catalog/pricing.csv` and `catalog/models.csv` (built by
//! `scripts/build_catalog.py` from genai-prices and LiteLLM, both MIT) inside the binary so a
//! fresh data directory can cost usage without network access. [`read_import`] turns a newer
//! genai-prices or LiteLLM file (or a CSV in the same layout) into `pricing` rows, and
//! [`upsert`] merges them into the table without ever deleting history.

mod genai;
mod litellm;
mod record;
pub mod sql;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use arrow::record_batch::RecordBatch;

use crate::storage::ConfigTable;
use crate::{Error, Result};
pub use record::PriceRecord;
use record::{models_from_csv, records_from_batch, records_from_csv, records_to_batch};

const PRICING_CSV: &str = include_str!("../../catalog/pricing.csv");
const MODELS_CSV: &str = include_str!("../../catalog/models.csv");

/// `effective_from` of the first price period when a source has no date for it.
pub(crate) const FIRST_FROM: &str = "2023-01-01T00:00:00Z";

/// The bundled catalog as `(pricing, models)` batches with the built-in table schemas.
pub fn bundled() -> Result<(RecordBatch, RecordBatch)> {
    let pricing = records_from_csv(PRICING_CSV.as_bytes(), "catalog/pricing.csv")?;
    let pricing = records_to_batch(&pricing)?;
    let models = models_from_csv(MODELS_CSV.as_bytes(), "catalog/models.csv")?;
    Ok((pricing, models))
}

/// The file formats `read_import` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFormat {
    /// pydantic/genai-prices `data.json`.
    GenaiPrices,
    /// LiteLLM `model_prices_and_context_window.json`.
    Litellm,
    /// A CSV with the columns of `pricing` (the layout of `catalog/pricing.csv`).
    Csv,
}

impl ImportFormat {
    /// How the format's rows are dated, for an import at `now` (µs since the epoch).
    /// LiteLLM's file has no dates: it is the prices in force today.
    pub fn dating(self, now: i64) -> Dating {
        if self == ImportFormat::Litellm {
            Dating::CurrentAt(now)
        } else {
            Dating::Dated
        }
    }
}

/// Reads `path` as `format` into `pricing` rows.
///
/// The JSON readers apply the conversion of `scripts/build_catalog.py`; see the
/// `genai` and `litellm` submodules for what they skip.
pub fn read_import(format: ImportFormat, path: &Path) -> Result<RecordBatch> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_import(format, &bytes, path)
}

/// Parses a document in `format` into `pricing` rows; `name` labels errors.
pub fn parse_import(format: ImportFormat, bytes: &[u8], name: &Path) -> Result<RecordBatch> {
    let records = match format {
        ImportFormat::Csv => records_from_csv(bytes, &name.display().to_string())?,
        ImportFormat::GenaiPrices | ImportFormat::Litellm => {
            let value: serde_json::Value = serde_json::from_slice(bytes)
                .map_err(|e| Error::corrupt(name, format!("invalid JSON: {e}")))?;
            let rows = if format == ImportFormat::GenaiPrices {
                genai::records(&value)
            } else {
                litellm::records(&value)
            };
            rows.map_err(|reason| Error::corrupt(name, reason))?
        }
    };
    records_to_batch(&dedup(records))
}

/// Upserts `incoming` into the `pricing` table durably (blocking). Fails rather than
/// overwrite if another writer changed the table meanwhile.
pub fn import_into(
    table: &ConfigTable,
    incoming: &RecordBatch,
    dating: Dating,
) -> Result<ImportReport> {
    let version = table.version();
    let (merged, report) = upsert(&table.rows(), incoming, dating)?;
    table.replace(merged, version)?;
    Ok(report)
}

/// What [`upsert`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// `provider/model` pairs that had no row before.
    pub new_models: Vec<String>,
    /// Rows whose key was not present before.
    pub new_rows: usize,
    /// One line per replaced row whose prices changed, e.g.
    /// `openai/gpt-4o standard: input 2.5 → 2.0`.
    pub changed: Vec<String>,
    /// Replaced rows with identical prices.
    pub unchanged: usize,
}

impl ImportReport {
    /// One line: what was read and what changed.
    pub fn summary(&self, rows_read: usize) -> String {
        format!(
            "{rows_read} price rows read; {} new, {} changed, {} unchanged; {} new models",
            self.new_rows,
            self.changed.len(),
            self.unchanged,
            self.new_models.len()
        )
    }
}

/// How the incoming rows of an import are dated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dating {
    /// Each row carries the date its price took effect.
    Dated,
    /// The rows are the prices in force at this instant (µs since the epoch), with no
    /// history: a price that differs from the one in force becomes a new row effective from
    /// this instant, so usage before it keeps the price it had.
    CurrentAt(i64),
}

/// Merges `incoming` into `existing` by the row key (provider, model, service_tier,
/// region, min_prompt_tokens, utc_start_time, effective_from).
///
/// An incoming row replaces the existing row with its key; new keys are appended; existing
/// rows absent from `incoming` are kept, so history is never deleted. Undated rows
/// ([`Dating::CurrentAt`]) are first given the date they apply from.
pub fn upsert(
    existing: &RecordBatch,
    incoming: &RecordBatch,
    dating: Dating,
) -> Result<(RecordBatch, ImportReport)> {
    let mut rows = records_from_batch(existing)?;
    let incoming = records_from_batch(incoming)?;
    let mut index: HashMap<_, usize> = rows.iter().enumerate().map(|(i, r)| (r.key(), i)).collect();
    let known: HashSet<(String, String)> = rows
        .iter()
        .map(|r| (r.provider.clone(), r.model.clone()))
        .collect();
    let mut report = ImportReport::default();
    for mut row in incoming {
        let repriced_from = match dating {
            Dating::CurrentAt(now) => date_current_price(&rows, &mut row, now),
            Dating::Dated => None,
        };
        match index.get(&row.key()) {
            Some(&i) => {
                let diff = rows[i].describe_changes(&row);
                if diff.is_empty() {
                    report.unchanged += 1;
                } else {
                    report.changed.push(format!(
                        "{}/{} {}: {}",
                        row.provider,
                        row.model,
                        row.label(),
                        diff.join(", ")
                    ));
                }
                rows[i] = row;
            }
            None => {
                if let Some(previous) = repriced_from {
                    report.changed.push(format!(
                        "{}/{} {}: {} (from {}; earlier usage keeps the earlier price)",
                        row.provider,
                        row.model,
                        row.label(),
                        previous.describe_changes(&row).join(", "),
                        record::format_timestamp(row.effective_from),
                    ));
                } else {
                    let name = format!("{}/{}", row.provider, row.model);
                    if !known.contains(&(row.provider.clone(), row.model.clone()))
                        && !report.new_models.contains(&name)
                    {
                        report.new_models.push(name);
                    }
                    report.new_rows += 1;
                }
                index.insert(row.key(), rows.len());
                rows.push(row);
            }
        }
    }
    Ok((records_to_batch(&rows)?, report))
}

/// Dates an undated price against its series (the key without the date): the same prices
/// as the row in force at `now` keep that row's date; any other price of a known series
/// starts at `now` (returning the row it replaces, if one was in force), so no earlier row
/// is ever overwritten. A series the table does not have keeps the row's own date.
fn date_current_price(
    existing: &[PriceRecord],
    row: &mut PriceRecord,
    now: i64,
) -> Option<PriceRecord> {
    let series = |r: &PriceRecord| {
        let mut key = r.key();
        key.6 = 0;
        key
    };
    let wanted = series(row);
    let mut known = existing.iter().filter(|r| series(r) == wanted).peekable();
    known.peek()?;
    let current = known
        .filter(|r| r.effective_from <= now && r.effective_to.is_none_or(|to| now < to))
        .max_by_key(|r| r.effective_from);
    match current {
        Some(current) if current.prices == row.prices => {
            row.effective_from = current.effective_from;
            row.effective_to = current.effective_to;
            row.source = current.source.clone();
            None
        }
        current => {
            row.effective_from = now;
            row.effective_to = None;
            current.cloned()
        }
    }
}

/// An exact decimal as a `DECIMAL(20,9)` mantissa, rounded half-even to 9 places.
pub(crate) fn to_price(d: rust_decimal::Decimal) -> Option<i128> {
    let mut d = d.round_dp(record::SCALE);
    d.rescale(record::SCALE);
    (d.scale() == record::SCALE).then(|| d.mantissa())
}

/// Keeps the first row of each key, as the catalog builder does.
fn dedup(records: Vec<PriceRecord>) -> Vec<PriceRecord> {
    let mut seen = HashSet::new();
    records
        .into_iter()
        .filter(|r| seen.insert(r.key()))
        .collect()
}

#[cfg(test)]
mod tests;
