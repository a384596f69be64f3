//! `spendql ingest`: streaming CSV, JSON lines and Parquet into `usage`.
//!
//! A file is stored whole or not at all: rows stream into a [`BulkWriter`] that publishes
//! only on commit. The first bad record stops the file with `file:line: column: reason`,
//! unless `skip_bad`, which stores the good records and reports the bad ones. Memory stays
//! flat: rows are converted and written in batches of [`BATCH_ROWS`].

mod costs;
mod json;
pub mod providers;
mod rows;

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, new_null_array};
use arrow::datatypes::TimestampMicrosecondType;
use indicatif::{ProgressBar, ProgressStyle};

pub use costs::{CostReport, ingest_costs_file};
pub use rows::{Field, FieldError, UsageRows, parse_decimal, parse_timestamp};

use crate::error::{Error, Result};
use crate::schema::{self, ColumnDefault};
use crate::storage::{BulkWriter, WriteCounts};

/// Rows converted before they are handed to the writer.
pub const BATCH_ROWS: usize = 64 * 1024;
/// Bad records kept for the report when skipping them (all are counted).
const MAX_REPORTED_BAD: usize = 100;

/// Input formats `spendql ingest` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// CSV with a header row naming usage columns.
    Csv,
    /// JSON records (lines, an array, or documents) with usage column names as keys.
    Jsonl,
    /// Parquet with usage column names (types are cast).
    Parquet,
    /// OpenAI Usage API pages (`GET /v1/organization/usage/completions`).
    OpenaiUsage,
    /// OpenAI Costs API pages (`GET /v1/organization/costs`), into `provider_costs`.
    OpenaiCosts,
    /// Anthropic usage report pages (`GET /v1/organizations/usage_report/messages`).
    AnthropicUsage,
    /// Anthropic cost report pages (`GET /v1/organizations/cost_report`), into `provider_costs`.
    AnthropicCosts,
    /// Gemini / Vertex AI responses or logs carrying `usageMetadata`, one JSON record each.
    Gemini,
    /// OpenTelemetry OTLP/JSON trace exports with GenAI spans.
    OtelGenai,
    /// LiteLLM proxy SpendLogs exports (CSV or JSON).
    Litellm,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
            Format::Parquet => "parquet",
            Format::OpenaiUsage => "openai-usage",
            Format::OpenaiCosts => "openai-costs",
            Format::AnthropicUsage => "anthropic-usage",
            Format::AnthropicCosts => "anthropic-costs",
            Format::Gemini => "gemini",
            Format::OtelGenai => "otel-genai",
            Format::Litellm => "litellm",
        }
    }

    /// Formats whose records are provider-reported costs (`provider_costs`), not usage.
    pub fn is_costs(self) -> bool {
        matches!(self, Format::OpenaiCosts | Format::AnthropicCosts)
    }
}

/// How to ingest.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub format: Format,
    /// Store the good records of a file that has bad ones.
    pub skip_bad: bool,
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// Which OpenTelemetry attributes fill the attribution columns (`otel-genai`).
    pub otel_mapping: providers::otel::Mapping,
}

/// What one file produced.
#[derive(Debug, Default)]
pub struct FileReport {
    pub file: String,
    pub rows_read: u64,
    pub stored: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// The first bad records (up to 100), as `file:line: column: reason`.
    pub bad_records: Vec<String>,
    /// Where every bad record was written (`--skip-bad`), if there was one.
    pub reject_file: Option<std::path::PathBuf>,
    pub min_ts: Option<i64>,
    pub max_ts: Option<i64>,
    pub seconds: f64,
}

/// Ingest one file into `usage` through `writer`, committing it if it is accepted.
/// Blocking: run on a blocking thread.
pub fn ingest_file(writer: BulkWriter, path: &Path, options: &IngestOptions) -> Result<FileReport> {
    let started = Instant::now();
    let file_name = path.display().to_string();
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let total_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    let progress = progress_bar(options.progress, total_bytes, &file_name);
    let source = format!("{}:{}", options.format.name(), file_name);
    let ingested_at = chrono::Utc::now().timestamp_micros();
    let gz = file_name.ends_with(".gz");
    // Two stages on two threads: this one parses and converts, the other dedupes and
    // encodes Parquet. The bounded channel keeps memory flat.
    let (tx, rx) = std::sync::mpsc::sync_channel::<RecordBatch>(2);
    let (read_result, report, write_result) = std::thread::scope(|scope| {
        let writer_thread = scope.spawn(move || -> Result<BulkWriter> {
            let mut writer = writer;
            for batch in rx {
                writer.write(&batch)?;
            }
            Ok(writer)
        });
        let mut sink = Sink {
            tx: Some(tx),
            report: FileReport {
                file: file_name.clone(),
                ..FileReport::default()
            },
            skip_bad: options.skip_bad,
            rejects: Rejects::for_input(path),
        };
        let read_result = match options.format {
            Format::Csv => read_csv(
                open_text(file, gz),
                &file_name,
                &source,
                ingested_at,
                &mut sink,
                &progress,
            ),
            Format::Parquet => {
                read_parquet(file, &file_name, &source, ingested_at, &mut sink, &progress)
            }
            Format::OpenaiCosts | Format::AnthropicCosts => Err(Error::Invalid(format!(
                "{} records are costs, not usage",
                options.format.name()
            ))),
            format => {
                let mut input = BufReader::with_capacity(1 << 20, open_text(file, gz));
                let context = RecordContext {
                    file: &file_name,
                    source: &source,
                    ingested_at,
                    progress: &progress,
                };
                match starts_with_json(&mut input, &file_name) {
                    Ok(false) if format == Format::Litellm => {
                        read_litellm_csv(input, &context, &mut sink)
                    }
                    Ok(_) => read_json(input, format, &options.otel_mapping, &context, &mut sink),
                    Err(e) => Err(e),
                }
            }
        };
        // Closing the channel lets the writer finish.
        sink.tx = None;
        let write_result = writer_thread
            .join()
            .unwrap_or_else(|_| Err(Error::Invalid("the ingest writer thread failed".into())));
        let mut report = sink.report;
        let read_result = read_result.and_then(|()| {
            report.reject_file = sink.rejects.finish()?;
            Ok(())
        });
        (read_result, report, write_result)
    });
    progress.finish_and_clear();
    // A writer error explains a reader that stopped because the channel closed.
    let writer = write_result?;
    read_result?;
    let mut report = report;
    let counts: WriteCounts = writer.commit()?;
    report.stored = counts.stored;
    report.duplicates = counts.duplicates;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn open_text(file: File, gz: bool) -> Box<dyn Read + Send> {
    if gz {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    }
}

fn progress_bar(enabled: bool, total: u64, name: &str) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(name.to_string());
    bar
}

/// `--skip-bad` writes every rejected record's location and reason here: the input's path
/// plus `.rejects`, created at the first rejection.
struct Rejects {
    path: std::path::PathBuf,
    out: Option<std::io::BufWriter<File>>,
}

impl Rejects {
    fn for_input(input: &Path) -> Rejects {
        let mut name = input.as_os_str().to_owned();
        name.push(".rejects");
        Rejects {
            path: name.into(),
            out: None,
        }
    }

    fn write(&mut self, line: &str) -> Result<()> {
        use std::io::Write;
        if self.out.is_none() {
            let file = File::create(&self.path).map_err(|e| Error::io(&self.path, e))?;
            self.out = Some(std::io::BufWriter::new(file));
        }
        if let Some(out) = self.out.as_mut() {
            writeln!(out, "{line}").map_err(|e| Error::io(&self.path, e))?;
        }
        Ok(())
    }

    /// Flush; the path if anything was written.
    fn finish(self) -> Result<Option<std::path::PathBuf>> {
        use std::io::Write;
        match self.out {
            Some(mut out) => {
                out.flush().map_err(|e| Error::io(&self.path, e))?;
                Ok(Some(self.path))
            }
            None => Ok(None),
        }
    }

    /// Note a rejected record: count it, keep the first few for the report, write it out.
    fn reject(&mut self, rejected: &mut u64, shown: &mut Vec<String>, err: &Error) -> Result<()> {
        *rejected += 1;
        let text = err.to_string();
        self.write(&text)?;
        if shown.len() < MAX_REPORTED_BAD {
            shown.push(text);
        }
        Ok(())
    }
}

/// Receives converted rows and bad records for one file.
struct Sink {
    /// To the writer thread; `None` once the input is exhausted.
    tx: Option<std::sync::mpsc::SyncSender<RecordBatch>>,
    report: FileReport,
    skip_bad: bool,
    rejects: Rejects,
}

impl Sink {
    /// A bad record: stop the file, or note it and go on.
    fn bad(&mut self, file: &str, line: u64, error: FieldError) -> Result<()> {
        let err = Error::BadRecord {
            file: file.to_string(),
            line,
            column: error.column,
            reason: error.reason,
        };
        if !self.skip_bad {
            return Err(err);
        }
        self.rejects.reject(
            &mut self.report.rejected,
            &mut self.report.bad_records,
            &err,
        )
    }

    fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let ts = batch.column(1).as_primitive::<TimestampMicrosecondType>();
        if let Some(min) = arrow::compute::min(ts) {
            self.report.min_ts = Some(self.report.min_ts.map_or(min, |m| m.min(min)));
        }
        if let Some(max) = arrow::compute::max(ts) {
            self.report.max_ts = Some(self.report.max_ts.map_or(max, |m| m.max(max)));
        }
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(batch).is_ok());
        if sent {
            Ok(())
        } else {
            Err(Error::Invalid("the ingest writer stopped".into()))
        }
    }

    fn flush(&mut self, rows: &mut UsageRows) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let batch = rows.finish()?;
        self.write(batch)
    }
}

fn stable_id(bytes: &[u8]) -> String {
    format!("sha:{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

fn header_error(file: &str, column: &str, reason: String) -> Error {
    Error::BadRecord {
        file: file.to_string(),
        line: 1,
        column: column.to_string(),
        reason,
    }
}

enum CsvStep {
    Record,
    /// A bad record was reported (and `--skip-bad` goes on).
    Skipped,
    End,
}

/// Read the next CSV record; a malformed one is a bad record at its line.
fn next_csv_record<R: Read>(
    reader: &mut csv::Reader<R>,
    record: &mut csv::StringRecord,
    sink: &mut Sink,
    file: &str,
) -> Result<CsvStep> {
    match reader.read_record(record) {
        Ok(true) => Ok(CsvStep::Record),
        Ok(false) => Ok(CsvStep::End),
        Err(e) => {
            let line = e.position().map_or(0, |p| p.line());
            sink.report.rows_read += 1;
            sink.bad(file, line, FieldError::record(e.to_string()))?;
            Ok(if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                CsvStep::End
            } else {
                CsvStep::Skipped
            })
        }
    }
}

/// Usage columns that have no default and must be present in every input.
fn required_columns() -> Vec<String> {
    let def = schema::table_def("usage");
    schema::usage_schema()
        .fields()
        .iter()
        .filter(|f| !f.is_nullable())
        .filter(|f| !matches!(f.name().as_str(), "event_id" | "ingested_at"))
        .filter(|f| def.and_then(|d| d.default_for(f.name())).is_none())
        .map(|f| f.name().clone())
        .collect()
}

fn read_csv(
    input: Box<dyn Read>,
    file: &str,
    source: &str,
    ingested_at: i64,
    sink: &mut Sink,
    progress: &ProgressBar,
) -> Result<()> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| header_error(file, "header", e.to_string()))?
        .clone();
    let mut rows = UsageRows::new(ingested_at, source.to_string());
    let width = rows.column_names().len();
    let mut mapping = Vec::with_capacity(headers.len());
    for name in headers.iter() {
        let name = name.trim();
        let index = rows
            .column_index(name)
            .ok_or_else(|| header_error(file, name, "not a usage column".to_string()))?;
        if mapping.contains(&index) {
            return Err(header_error(file, name, "appears twice".into()));
        }
        mapping.push(index);
    }
    for required in required_columns() {
        if !headers.iter().any(|h| h.trim() == required.as_str()) {
            return Err(header_error(
                file,
                &required,
                "required column is missing".into(),
            ));
        }
    }
    let mut record = csv::StringRecord::new();
    loop {
        match next_csv_record(&mut reader, &mut record, sink, file)? {
            CsvStep::Record => {}
            CsvStep::Skipped => continue,
            CsvStep::End => break,
        }
        sink.report.rows_read += 1;
        let line = record.position().map_or(0, |p| p.line());
        let mut fields = vec![Field::Null; width];
        for (value, index) in record.iter().zip(&mapping) {
            if !value.is_empty() {
                fields[*index] = Field::Text(value);
            }
        }
        let bytes = record.as_slice().as_bytes();
        if let Err(e) = rows.push(&fields, || stable_id(bytes)) {
            sink.bad(file, line, e)?;
        }
        if rows.len() >= BATCH_ROWS {
            sink.flush(&mut rows)?;
            progress.set_position(reader.position().byte());
        }
    }
    sink.flush(&mut rows)
}

/// Where records come from and what every row of them gets.
struct RecordContext<'a> {
    file: &'a str,
    source: &'a str,
    ingested_at: i64,
    progress: &'a ProgressBar,
}

/// True when the input's first non-blank byte opens JSON.
fn starts_with_json(input: &mut impl BufRead, file: &str) -> Result<bool> {
    loop {
        let buf = input.fill_buf().map_err(|e| Error::io(file, e))?;
        if buf.is_empty() {
            return Ok(false);
        }
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => return Ok(matches!(buf[i], b'{' | b'[')),
            None => {
                let n = buf.len();
                input.consume(n);
            }
        }
    }
}

/// Records per chunk handed to a parse worker, and the chunk's text cap.
const CHUNK_RECORDS: usize = 8 * 1024;
const CHUNK_BYTES: usize = 8 << 20;
/// Threads that parse and convert JSON chunks. Parsing is most of the work of a JSON
/// ingest, so it runs beside the reader and the writer, not in line with them.
const PARSE_WORKERS: usize = 2;

/// Records read but not yet parsed: their text back to back, each with its line.
#[derive(Default)]
struct Chunk {
    seq: u64,
    text: Vec<u8>,
    records: Vec<(u64, Result<std::ops::Range<usize>, String>)>,
}

/// A chunk converted: its good rows as batches, and its bad records in order.
struct Parsed {
    seq: u64,
    batches: Vec<RecordBatch>,
    rows_read: u64,
    bad: Vec<(u64, FieldError)>,
}

/// JSON records: SpendQL's own usage objects (`jsonl`) or a provider's export.
///
/// One thread reads records into chunks, [`PARSE_WORKERS`] threads convert chunks into
/// batches, and this thread takes the results back in file order, so bad records are
/// reported and rows written exactly as a single pass would. The channels are bounded, so
/// at most a few chunks are in flight whatever the file's size.
fn read_json(
    input: impl BufRead + Send,
    format: Format,
    mapping: &providers::otel::Mapping,
    context: &RecordContext<'_>,
    sink: &mut Sink,
) -> Result<()> {
    let skip_bad = sink.skip_bad;
    let (work_tx, work_rx) = std::sync::mpsc::sync_channel::<Chunk>(PARSE_WORKERS);
    // Owned by the workers only: when they are all gone, the reader's sends fail.
    let work_rx = Arc::new(std::sync::Mutex::new(work_rx));
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Result<Parsed>>();
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || read_chunks(input, work_tx, context.progress));
        for _ in 0..PARSE_WORKERS {
            let work_rx = Arc::clone(&work_rx);
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                loop {
                    let next = work_rx.lock().map(|rx| rx.recv());
                    let Ok(Ok(chunk)) = next else { break };
                    let parsed = parse_chunk(chunk, format, mapping, context, skip_bad);
                    if done_tx.send(parsed).is_err() {
                        break;
                    }
                }
            });
        }
        drop(work_rx);
        drop(done_tx);
        let collected = collect_in_order(done_rx, context.file, sink);
        let read = reader
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the JSON reader thread failed")));
        collected?;
        read.map_err(|e| Error::io(context.file, e))
    })
}

/// The reader stage: records into chunks, until the input ends or no worker is left.
fn read_chunks(
    input: impl BufRead,
    work: std::sync::mpsc::SyncSender<Chunk>,
    progress: &ProgressBar,
) -> std::io::Result<()> {
    let mut chunk = Chunk::default();
    let mut seq = 0;
    let mut send = |chunk: &mut Chunk| {
        let mut full = std::mem::take(chunk);
        full.seq = seq;
        seq += 1;
        work.send(full).map_err(drop)
    };
    let outcome = json::for_each_raw_record::<_, ()>(
        input,
        |line, record| {
            let range = record.map(|text| {
                let start = chunk.text.len();
                chunk.text.extend_from_slice(&text);
                start..chunk.text.len()
            });
            chunk.records.push((line, range));
            if chunk.records.len() >= CHUNK_RECORDS || chunk.text.len() >= CHUNK_BYTES {
                send(&mut chunk)?;
            }
            Ok(())
        },
        |bytes| progress.set_position(bytes),
    )?;
    // `Err` here only means the collector stopped; it reports why.
    if outcome.is_ok() && !chunk.records.is_empty() {
        let _ = send(&mut chunk);
    }
    Ok(())
}

/// The collecting stage: parsed chunks in file order into the sink.
fn collect_in_order(
    done: std::sync::mpsc::Receiver<Result<Parsed>>,
    file: &str,
    sink: &mut Sink,
) -> Result<()> {
    let mut pending = std::collections::BTreeMap::new();
    let mut next = 0;
    for parsed in done {
        let parsed = parsed?;
        pending.insert(parsed.seq, parsed);
        while let Some(parsed) = pending.remove(&next) {
            next += 1;
            sink.report.rows_read += parsed.rows_read;
            for (line, e) in parsed.bad {
                sink.bad(file, line, e)?;
            }
            for batch in parsed.batches {
                sink.write(batch)?;
            }
        }
    }
    Ok(())
}

/// The parsing stage: one chunk's records into usage rows. Without `skip_bad` it stops at
/// the first bad record, which stops the file.
fn parse_chunk(
    chunk: Chunk,
    format: Format,
    mapping: &providers::otel::Mapping,
    context: &RecordContext<'_>,
    skip_bad: bool,
) -> Result<Parsed> {
    let rows = UsageRows::new(context.ingested_at, context.source.to_string());
    let mut parser = ChunkParser {
        width: rows.column_names().len(),
        rows,
        converted: Vec::new(),
        parsed: Parsed {
            seq: chunk.seq,
            batches: Vec::new(),
            rows_read: 0,
            bad: Vec::new(),
        },
    };
    for (line, record) in chunk.records {
        let text = record
            .map(|range| &chunk.text[range])
            .map_err(FieldError::record);
        parser.convert(line, text, format, mapping);
        if !skip_bad && !parser.parsed.bad.is_empty() {
            break;
        }
        if parser.rows.len() >= BATCH_ROWS {
            parser.parsed.batches.push(parser.rows.finish()?);
        }
    }
    if !parser.rows.is_empty() {
        parser.parsed.batches.push(parser.rows.finish()?);
    }
    Ok(parser.parsed)
}

/// A parse worker's state for one chunk.
struct ChunkParser {
    rows: UsageRows,
    width: usize,
    converted: providers::Converted<providers::Row>,
    parsed: Parsed,
}

impl ChunkParser {
    /// One JSON record into `rows`; what was bad goes to `parsed.bad`.
    fn convert(
        &mut self,
        line: u64,
        text: Result<&[u8], FieldError>,
        format: Format,
        mapping: &providers::otel::Mapping,
    ) {
        let converted = &mut self.converted;
        converted.clear();
        let adapted = text.and_then(|text| {
            let as_str = || {
                std::str::from_utf8(text)
                    .map_err(|e| FieldError::record(format!("invalid JSON: {e}")))
            };
            match format {
                Format::OtelGenai => providers::otel::usage_json(text, mapping, converted),
                Format::OpenaiUsage => providers::openai::usage(as_str()?, converted),
                Format::AnthropicUsage => providers::anthropic::usage(as_str()?, converted),
                Format::Gemini => providers::gemini::usage(as_str()?, converted),
                Format::Litellm => providers::litellm::usage(as_str()?, converted),
                _ => {
                    let value = serde_json::from_slice::<serde_json::Value>(text)
                        .map_err(|e| FieldError::record(format!("invalid JSON: {e}")))?;
                    self.parsed.rows_read += 1;
                    if let Err(e) = push_usage_object(&mut self.rows, &value, self.width) {
                        self.parsed.bad.push((line, e));
                    }
                    Ok(())
                }
            }
        });
        if let Err(e) = adapted {
            self.parsed.rows_read += 1;
            self.parsed.bad.push((line, e));
            return;
        }
        self.parsed.rows_read += self.converted.len() as u64;
        for row in self.converted.drain(..) {
            let pushed = row.and_then(|row| self.rows.push(&row.fields(self.width), String::new));
            if let Err(e) = pushed {
                self.parsed.bad.push((line, e));
            }
        }
    }
}

/// One JSON object whose keys are usage columns. A missing `event_id` is a stable hash of
/// the object (keys sorted, so key order and spacing do not matter).
fn push_usage_object(
    rows: &mut UsageRows,
    value: &serde_json::Value,
    width: usize,
) -> Result<(), FieldError> {
    let serde_json::Value::Object(object) = value else {
        return Err(FieldError::record("expected a JSON object".into()));
    };
    let mut owned: Vec<Option<String>> = vec![None; width];
    let mut fields = vec![Field::Null; width];
    for (key, value) in object {
        let index = rows.column_index(key).ok_or_else(|| FieldError {
            column: key.clone(),
            reason: "not a usage column".into(),
        })?;
        fields[index] = match value {
            serde_json::Value::Null => Field::Null,
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Field::Int(i),
                None => {
                    owned[index] = Some(n.to_string());
                    Field::Null
                }
            },
            serde_json::Value::String(s) => Field::Text(s),
            other => {
                owned[index] = Some(other.to_string());
                Field::Null
            }
        };
    }
    for (index, text) in owned.iter().enumerate() {
        if let Some(text) = text {
            fields[index] = Field::Text(text);
        }
    }
    rows.push(&fields, || stable_id(value.to_string().as_bytes()))
}

/// LiteLLM's CSV export: each row becomes the JSON record the JSON export would have, so
/// one adapter reads both.
fn read_litellm_csv(input: impl Read, context: &RecordContext<'_>, sink: &mut Sink) -> Result<()> {
    let file = context.file;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| header_error(file, "header", e.to_string()))?
        .clone();
    let mut rows = UsageRows::new(context.ingested_at, context.source.to_string());
    let width = rows.column_names().len();
    let mut converted = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match next_csv_record(&mut reader, &mut record, sink, file)? {
            CsvStep::Record => {}
            CsvStep::Skipped => continue,
            CsvStep::End => break,
        }
        sink.report.rows_read += 1;
        let line = record.position().map_or(0, |p| p.line());
        let object: serde_json::Map<String, serde_json::Value> = headers
            .iter()
            .zip(record.iter())
            .filter(|(_, cell)| !cell.is_empty())
            .map(|(name, cell)| (name.trim().to_string(), cell.into()))
            .collect();
        converted.clear();
        let text = serde_json::Value::Object(object).to_string();
        let result = providers::litellm::usage(&text, &mut converted);
        let pushed = result.and_then(|()| {
            converted
                .drain(..)
                .try_for_each(|row| row.and_then(|row| rows.push(&row.fields(width), String::new)))
        });
        if let Err(e) = pushed {
            sink.bad(file, line, e)?;
        }
        if rows.len() >= BATCH_ROWS {
            sink.flush(&mut rows)?;
            context.progress.set_position(reader.position().byte());
        }
    }
    sink.flush(&mut rows)
}

fn read_parquet(
    file: File,
    name: &str,
    source: &str,
    ingested_at: i64,
    sink: &mut Sink,
    progress: &ProgressBar,
) -> Result<()> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let bad =
        |e: &dyn std::fmt::Display| Error::corrupt(name, format!("unreadable Parquet file: {e}"));
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| bad(&e))?;
    let total_rows = u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    progress.set_length(total_rows);
    let input_schema = Arc::clone(builder.schema());
    let usage = schema::usage_schema();
    let def = schema::table_def("usage");
    // The cost parts that SpendQL's own Parquet parts store are derived, not usage: they
    // are priced again here, so a part copied from a data directory ingests as usage.
    let mut read = Vec::with_capacity(input_schema.fields().len());
    for (index, field) in input_schema.fields().iter().enumerate() {
        if usage.field_with_name(field.name()).is_ok() {
            read.push(index);
        } else if !spendql_udfs::usage_cost::PARTS.contains(&field.name().as_str()) {
            return Err(header_error(
                name,
                field.name(),
                "not a usage column".into(),
            ));
        }
    }
    let read = parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), read);
    for required in required_columns() {
        if input_schema.field_with_name(&required).is_err() {
            return Err(header_error(
                name,
                &required,
                "required column is missing".into(),
            ));
        }
    }
    let reader = builder
        .with_batch_size(BATCH_ROWS)
        .with_projection(read)
        .build()
        .map_err(|e| bad(&e))?;
    let mut first_row = 1u64;
    for batch in reader {
        let batch = batch.map_err(|e| bad(&e))?;
        let n = batch.num_rows();
        sink.report.rows_read += n as u64;
        let mut keep = vec![true; n];
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(usage.fields().len());
        for field in usage.fields() {
            let column = match batch.column_by_name(field.name()) {
                Some(c) => arrow::compute::cast(c, field.data_type()).map_err(|e| {
                    header_error(
                        name,
                        field.name(),
                        format!("cannot read as {}: {e}", field.data_type()),
                    )
                })?,
                None => new_null_array(field.data_type(), n),
            };
            let column = fill_defaults(
                field.name(),
                column,
                def.and_then(|d| d.default_for(field.name())),
                ingested_at,
                source,
                &batch,
            )?;
            if !field.is_nullable() && column.null_count() > 0 {
                for (row, ok) in keep.iter_mut().enumerate() {
                    if column.is_null(row) && *ok {
                        *ok = false;
                        sink.bad(
                            name,
                            first_row + row as u64,
                            FieldError {
                                column: field.name().clone(),
                                reason: "a value is required".into(),
                            },
                        )?;
                    }
                }
            }
            columns.push(column);
        }
        let out = if keep.iter().all(|k| *k) {
            RecordBatch::try_new(Arc::clone(&usage), columns)?
        } else {
            let mask = arrow::array::BooleanArray::from(keep);
            let filtered: Vec<ArrayRef> = columns
                .iter()
                .map(|c| arrow::compute::filter(c, &mask))
                .collect::<std::result::Result<_, _>>()?;
            RecordBatch::try_new(Arc::clone(&usage), filtered)?
        };
        sink.write(out)?;
        first_row += n as u64;
        progress.set_position(first_row - 1);
    }
    Ok(())
}

/// Fill NULLs of one Parquet column with its default, the ingest time, the source, or a
/// stable hash of the row (for a missing `event_id`).
fn fill_defaults(
    column_name: &str,
    column: ArrayRef,
    default: Option<&ColumnDefault>,
    ingested_at: i64,
    source: &str,
    batch: &RecordBatch,
) -> Result<ArrayRef> {
    use arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray};
    if column.null_count() == 0 {
        return Ok(column);
    }
    let n = column.len();
    let filler: ArrayRef = match (column_name, default) {
        ("event_id", _) => {
            let formatters: Vec<_> = batch
                .columns()
                .iter()
                .map(|c| {
                    arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &Default::default())
                })
                .collect::<std::result::Result<_, _>>()?;
            let mut ids = Vec::with_capacity(n);
            let mut text = String::new();
            for row in 0..n {
                text.clear();
                for f in &formatters {
                    use std::fmt::Write;
                    let _ = write!(text, "{}\u{1f}", f.value(row));
                }
                ids.push(stable_id(text.as_bytes()));
            }
            Arc::new(StringArray::from(ids))
        }
        ("ingested_at", _) | (_, Some(ColumnDefault::Now)) => {
            Arc::new(TimestampMicrosecondArray::from(vec![ingested_at; n]).with_timezone("+00:00"))
        }
        ("source", _) => Arc::new(StringArray::from(vec![source; n])),
        (_, Some(ColumnDefault::Int(v))) => Arc::new(Int64Array::from(vec![*v; n])),
        (_, Some(ColumnDefault::Text(v))) => Arc::new(StringArray::from(vec![*v; n])),
        (_, None) => return Ok(column),
    };
    // A column the file does not have is all default: no merge needed.
    if column.null_count() == n {
        return Ok(filler);
    }
    let is_null = arrow::compute::is_null(&column)?;
    Ok(arrow::compute::kernels::zip::zip(
        &is_null, &filler, &column,
    )?)
}
