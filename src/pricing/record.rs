//! One `pricing` row in plain Rust, and its CSV and Arrow forms.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Decimal128Array, Int32Array, Int64Array, StringArray,
    Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{
    DataType, Decimal128Type, Int64Type, Time64MicrosecondType, TimeUnit, TimestampMicrosecondType,
};
use arrow::record_batch::RecordBatch;
use chrono::Timelike;

use crate::ingest::{parse_decimal, parse_timestamp};
use crate::schema::{PRICE, TIME, table_def};
use crate::{Error, Result};

/// Scale of `DECIMAL(20,9)` prices.
pub(crate) const SCALE: u32 = 9;

/// Names of the six price columns, in [`PriceRecord::prices`] order.
pub(crate) const PRICE_COLUMNS: [&str; 6] = [
    "input_per_mtok",
    "cached_input_per_mtok",
    "cache_write_per_mtok",
    "cache_write_1h_per_mtok",
    "output_per_mtok",
    "per_request",
];
const SHORT: [&str; 6] = [
    "input",
    "cached_input",
    "cache_write",
    "cache_write_1h",
    "output",
    "per_request",
];

/// One `pricing` row; prices are mantissas at scale 9, times are microseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceRecord {
    pub provider: String,
    pub model: String,
    pub effective_from: i64,
    pub effective_to: Option<i64>,
    pub service_tier: String,
    pub region: Option<String>,
    pub min_prompt_tokens: i64,
    pub utc_start_time: Option<i64>,
    pub utc_end_time: Option<i64>,
    /// input, cached_input, cache_write, cache_write_1h, output, per_request.
    pub prices: [Option<i128>; 6],
    pub currency: String,
    pub source: Option<String>,
}

/// The upsert key: (provider, model, service_tier, region, min_prompt_tokens,
/// utc_start_time, effective_from).
pub(crate) type Key = (
    String,
    String,
    String,
    Option<String>,
    i64,
    Option<i64>,
    i64,
);

impl PriceRecord {
    /// A standard-tier, all-day, all-region row with no prices yet.
    pub(crate) fn new(provider: &str, model: &str, effective_from: i64, source: &str) -> Self {
        PriceRecord {
            provider: provider.to_string(),
            model: model.to_string(),
            effective_from,
            effective_to: None,
            service_tier: "standard".to_string(),
            region: None,
            min_prompt_tokens: 0,
            utc_start_time: None,
            utc_end_time: None,
            prices: [None; 6],
            currency: "USD".to_string(),
            source: Some(source.to_string()),
        }
    }

    pub(crate) fn key(&self) -> Key {
        (
            self.provider.clone(),
            self.model.clone(),
            self.service_tier.clone(),
            self.region.clone(),
            self.min_prompt_tokens,
            self.utc_start_time,
            self.effective_from,
        )
    }

    /// `standard`, `batch >200000`, `standard 00:30:00` … for reports.
    pub(crate) fn label(&self) -> String {
        let mut s = self.service_tier.clone();
        if let Some(region) = &self.region {
            s.push_str(&format!(" {region}"));
        }
        if self.min_prompt_tokens > 0 {
            s.push_str(&format!(" >{}", self.min_prompt_tokens));
        }
        if let Some(t) = self.utc_start_time {
            s.push_str(&format!(" {}", format_time(t)));
        }
        s
    }

    /// `input 2.5 → 2` for each price (or end date) that differs from `other`.
    pub(crate) fn describe_changes(&self, other: &PriceRecord) -> Vec<String> {
        let mut out = Vec::new();
        for (i, name) in SHORT.iter().enumerate() {
            if self.prices[i] != other.prices[i] {
                out.push(format!(
                    "{name} {} → {}",
                    format_price(self.prices[i]),
                    format_price(other.prices[i])
                ));
            }
        }
        if self.effective_to != other.effective_to {
            out.push(format!(
                "effective_to {} → {}",
                format_ts(self.effective_to),
                format_ts(other.effective_to)
            ));
        }
        if self.utc_end_time != other.utc_end_time {
            out.push(format!(
                "utc_end_time {} → {}",
                self.utc_end_time
                    .map(format_time)
                    .unwrap_or_else(|| "NULL".into()),
                other
                    .utc_end_time
                    .map(format_time)
                    .unwrap_or_else(|| "NULL".into())
            ));
        }
        out
    }
}

fn format_price(p: Option<i128>) -> String {
    match p {
        Some(m) => rust_decimal::Decimal::from_i128_with_scale(m, SCALE)
            .normalize()
            .to_string(),
        None => "NULL".to_string(),
    }
}

fn format_ts(t: Option<i64>) -> String {
    t.and_then(chrono::DateTime::from_timestamp_micros)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "NULL".to_string())
}

/// `YYYY-MM-DD HH:MM:SS UTC` of a microsecond timestamp, for reports.
pub(crate) fn format_timestamp(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| micros.to_string())
}

fn format_time(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// `HH:MM:SS[.ffffff]` (an optional trailing `Z` means UTC) to microseconds after midnight.
pub(crate) fn parse_time(text: &str) -> std::result::Result<i64, String> {
    let t = text.trim().trim_end_matches('Z');
    let time = chrono::NaiveTime::parse_from_str(t, "%H:%M:%S%.f")
        .or_else(|_| chrono::NaiveTime::parse_from_str(t, "%H:%M"))
        .map_err(|_| format!("expected a time like 16:30:00, got {t:?}"))?;
    Ok(i64::from(time.num_seconds_from_midnight()) * 1_000_000
        + i64::from(time.nanosecond() / 1000))
}

/// Header positions of a CSV file, for looking columns up by name.
struct Columns(Vec<String>);

impl Columns {
    fn get<'r>(&self, record: &'r csv::StringRecord, name: &str) -> Option<&'r str> {
        let i = self.0.iter().position(|h| h == name)?;
        record.get(i).map(str::trim).filter(|v| !v.is_empty())
    }
}

fn bad(file: &str, line: u64, column: &str, reason: impl ToString) -> Error {
    Error::BadRecord {
        file: file.to_string(),
        line,
        column: column.to_string(),
        reason: reason.to_string(),
    }
}

fn read_csv<R: std::io::Read>(
    input: R,
    file: &str,
) -> Result<(Columns, Vec<(u64, csv::StringRecord)>)> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| bad(file, 1, "header", e))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            bad(file, line, "record", e)
        })?;
        let line = record.position().map_or(0, |p| p.line());
        rows.push((line, record));
    }
    Ok((Columns(headers), rows))
}

/// Parses a CSV in the `pricing` layout. Missing optional columns take the table defaults.
pub(crate) fn records_from_csv<R: std::io::Read>(input: R, file: &str) -> Result<Vec<PriceRecord>> {
    let (cols, rows) = read_csv(input, file)?;
    for required in ["provider", "model", "effective_from"] {
        if !cols.0.iter().any(|h| h == required) {
            return Err(bad(file, 1, required, "missing column"));
        }
    }
    let mut out = Vec::with_capacity(rows.len());
    for (line, rec) in rows {
        let text = |name: &str| -> Result<&str> {
            cols.get(&rec, name)
                .ok_or_else(|| bad(file, line, name, "must not be empty"))
        };
        let ts = |name: &str| -> Result<Option<i64>> {
            cols.get(&rec, name)
                .map(|v| parse_timestamp(v).map_err(|e| bad(file, line, name, e)))
                .transpose()
        };
        let time = |name: &str| -> Result<Option<i64>> {
            cols.get(&rec, name)
                .map(|v| parse_time(v).map_err(|e| bad(file, line, name, e)))
                .transpose()
        };
        let mut prices = [None; 6];
        for (slot, name) in prices.iter_mut().zip(PRICE_COLUMNS) {
            *slot = cols
                .get(&rec, name)
                .map(|v| parse_decimal(v, SCALE).map_err(|e| bad(file, line, name, e)))
                .transpose()?;
        }
        let effective_from = ts("effective_from")?
            .ok_or_else(|| bad(file, line, "effective_from", "must not be empty"))?;
        let min_prompt_tokens = match cols.get(&rec, "min_prompt_tokens") {
            Some(v) => v.parse::<i64>().map_err(|_| {
                bad(
                    file,
                    line,
                    "min_prompt_tokens",
                    format!("expected an integer, got {v:?}"),
                )
            })?,
            None => 0,
        };
        out.push(PriceRecord {
            provider: text("provider")?.to_string(),
            model: text("model")?.to_string(),
            effective_from,
            effective_to: ts("effective_to")?,
            service_tier: cols
                .get(&rec, "service_tier")
                .unwrap_or("standard")
                .to_string(),
            region: cols.get(&rec, "region").map(str::to_string),
            min_prompt_tokens,
            utc_start_time: time("utc_start_time")?,
            utc_end_time: time("utc_end_time")?,
            prices,
            currency: cols.get(&rec, "currency").unwrap_or("USD").to_string(),
            source: cols.get(&rec, "source").map(str::to_string),
        });
    }
    Ok(out)
}

/// Builds a batch with exactly the schema of the `pricing` table.
pub(crate) fn records_to_batch(rows: &[PriceRecord]) -> Result<RecordBatch> {
    let schema = table_def("pricing")
        .ok_or_else(|| Error::Invalid("no built-in table pricing".into()))?
        .schema
        .clone();
    let text = |f: &dyn Fn(&PriceRecord) -> Option<&str>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<StringArray>())
    };
    let ts = |f: &dyn Fn(&PriceRecord) -> Option<i64>| -> ArrayRef {
        Arc::new(
            rows.iter()
                .map(f)
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("+00:00"),
        )
    };
    let time = |f: &dyn Fn(&PriceRecord) -> Option<i64>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<Time64MicrosecondArray>())
    };
    let mut columns: Vec<ArrayRef> = vec![
        text(&|r| Some(r.provider.as_str())),
        text(&|r| Some(r.model.as_str())),
        ts(&|r| Some(r.effective_from)),
        ts(&|r| r.effective_to),
        text(&|r| Some(r.service_tier.as_str())),
        text(&|r| r.region.as_deref()),
        Arc::new(
            rows.iter()
                .map(|r| Some(r.min_prompt_tokens))
                .collect::<Int64Array>(),
        ),
        time(&|r| r.utc_start_time),
        time(&|r| r.utc_end_time),
    ];
    for i in 0..PRICE_COLUMNS.len() {
        let DataType::Decimal128(p, s) = PRICE else {
            return Err(Error::Invalid("PRICE is not a decimal type".into()));
        };
        let array = rows
            .iter()
            .map(|r| r.prices[i])
            .collect::<Decimal128Array>()
            .with_precision_and_scale(p, s)?;
        columns.push(Arc::new(array));
    }
    columns.push(text(&|r| Some(r.currency.as_str())));
    columns.push(text(&|r| r.source.as_deref()));
    Ok(RecordBatch::try_new(schema, columns)?)
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| Error::Invalid(format!("pricing rows have no column {name}")))
}

fn cast(batch: &RecordBatch, name: &str, to: &DataType) -> Result<Option<ArrayRef>> {
    match batch.column_by_name(name) {
        Some(a) => Ok(Some(arrow::compute::cast(a, to)?)),
        None => Ok(None),
    }
}

/// Reads `pricing` rows back out of a batch (any column order; optional columns may be
/// missing and take the table defaults).
pub(crate) fn records_from_batch(batch: &RecordBatch) -> Result<Vec<PriceRecord>> {
    let utf8 = DataType::Utf8;
    let text = |name: &str| -> Result<Option<ArrayRef>> { cast(batch, name, &utf8) };
    let required =
        |name: &str| -> Result<ArrayRef> { Ok(arrow::compute::cast(column(batch, name)?, &utf8)?) };
    let provider = required("provider")?;
    let model = required("model")?;
    let ts_type = DataType::Timestamp(TimeUnit::Microsecond, None);
    let from = arrow::compute::cast(column(batch, "effective_from")?, &ts_type)?;
    let to = cast(batch, "effective_to", &ts_type)?;
    let tier = text("service_tier")?;
    let region = text("region")?;
    let min_prompt = cast(batch, "min_prompt_tokens", &DataType::Int64)?;
    let start = cast(batch, "utc_start_time", &TIME)?;
    let end = cast(batch, "utc_end_time", &TIME)?;
    let mut prices = Vec::new();
    for name in PRICE_COLUMNS {
        prices.push(cast(batch, name, &PRICE)?);
    }
    let currency = text("currency")?;
    let source = text("source")?;

    let s = |a: &Option<ArrayRef>, i: usize| -> Option<String> {
        a.as_ref()
            .map(|a| a.as_string::<i32>())
            .filter(|a| a.is_valid(i))
            .map(|a| a.value(i).to_string())
    };
    let t = |a: &Option<ArrayRef>, i: usize| -> Option<i64> {
        a.as_ref()
            .map(|a| a.as_primitive::<TimestampMicrosecondType>())
            .filter(|a| a.is_valid(i))
            .map(|a| a.value(i))
    };
    let tm = |a: &Option<ArrayRef>, i: usize| -> Option<i64> {
        a.as_ref()
            .map(|a| a.as_primitive::<Time64MicrosecondType>())
            .filter(|a| a.is_valid(i))
            .map(|a| a.value(i))
    };
    let from = Some(from);
    let (provider, model) = (Some(provider), Some(model));
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let (Some(p), Some(m), Some(f)) = (s(&provider, i), s(&model, i), t(&from, i)) else {
            return Err(Error::Invalid(format!(
                "pricing row {} has a NULL provider, model or effective_from",
                i + 1
            )));
        };
        let mut row = PriceRecord::new(&p, &m, f, "");
        row.source = s(&source, i);
        row.effective_to = t(&to, i);
        if let Some(tier) = s(&tier, i) {
            row.service_tier = tier;
        }
        row.region = s(&region, i);
        row.min_prompt_tokens = min_prompt
            .as_ref()
            .map(|a| a.as_primitive::<Int64Type>())
            .filter(|a| a.is_valid(i))
            .map_or(0, |a| a.value(i));
        row.utc_start_time = tm(&start, i);
        row.utc_end_time = tm(&end, i);
        for (slot, array) in row.prices.iter_mut().zip(&prices) {
            *slot = array
                .as_ref()
                .map(|a| a.as_primitive::<Decimal128Type>())
                .filter(|a| a.is_valid(i))
                .map(|a| a.value(i));
        }
        if let Some(c) = s(&currency, i) {
            row.currency = c;
        }
        out.push(row);
    }
    Ok(out)
}

/// Parses a CSV in the `models` layout into a batch with the `models` table schema.
pub(crate) fn models_from_csv<R: std::io::Read>(input: R, file: &str) -> Result<RecordBatch> {
    let schema = table_def("models")
        .ok_or_else(|| Error::Invalid("no built-in table models".into()))?
        .schema
        .clone();
    let (cols, rows) = read_csv(input, file)?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
        .ok_or_else(|| Error::Invalid("no epoch".into()))?;
    let n = rows.len();
    let (mut provider, mut model, mut family, mut aliases) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut tier, mut context, mut deprecated) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (line, rec) in &rows {
        let line = *line;
        let required = |name: &str| -> Result<String> {
            cols.get(rec, name)
                .map(str::to_string)
                .ok_or_else(|| bad(file, line, name, "must not be empty"))
        };
        provider.push(required("provider")?);
        model.push(required("model")?);
        family.push(cols.get(rec, "family").map(str::to_string));
        aliases.push(cols.get(rec, "aliases").map(str::to_string));
        tier.push(
            cols.get(rec, "tier")
                .map(|v| {
                    v.parse::<i32>().map_err(|_| {
                        bad(
                            file,
                            line,
                            "tier",
                            format!("expected an integer, got {v:?}"),
                        )
                    })
                })
                .transpose()?,
        );
        context.push(
            cols.get(rec, "context_window")
                .map(|v| {
                    v.parse::<i64>().map_err(|_| {
                        bad(
                            file,
                            line,
                            "context_window",
                            format!("expected an integer, got {v:?}"),
                        )
                    })
                })
                .transpose()?,
        );
        deprecated.push(
            cols.get(rec, "deprecated_on")
                .map(|v| {
                    chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
                        .map(|d| (d - epoch).num_days() as i32)
                        .map_err(|_| {
                            bad(
                                file,
                                line,
                                "deprecated_on",
                                format!("expected a date like 2026-12-01, got {v:?}"),
                            )
                        })
                })
                .transpose()?,
        );
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(provider)),
        Arc::new(StringArray::from(model)),
        Arc::new(StringArray::from(family)),
        Arc::new(Int32Array::from(tier)),
        Arc::new(Int64Array::from(context)),
        Arc::new(Date32Array::from(deprecated)),
        Arc::new(StringArray::from(aliases)),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}
