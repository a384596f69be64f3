//! Markdown, CSV and JSON renderings of a report (HTML is in `html.rs`). Cells are printed
//! exactly as the query returned them: a DECIMAL keeps every digit (reports round money in
//! SQL, where a reader can see it).

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Value, json};

use super::{ReportFormat, ReportOutput, SectionOutput};
use crate::error::Result;

/// `output` in `format`.
pub fn render(output: &ReportOutput, format: ReportFormat) -> Result<Vec<u8>> {
    Ok(match format {
        ReportFormat::Md => markdown(output)?.into_bytes(),
        ReportFormat::Csv => csv(output)?.into_bytes(),
        ReportFormat::Json => {
            let mut bytes = serde_json::to_vec_pretty(&json_value(output)?)
                .map_err(|e| crate::error::Error::Invalid(e.to_string()))?;
            bytes.push(b'\n');
            bytes
        }
        ReportFormat::Html => super::html::page(output)?.into_bytes(),
    })
}

/// A section's cells as text, row by row (NULL as an empty string).
pub(super) struct Table {
    pub columns: Vec<String>,
    pub numeric: Vec<bool>,
    pub rows: Vec<Vec<String>>,
}

pub(super) fn table(section: &SectionOutput) -> Result<Table> {
    let schema: &SchemaRef = &section.schema;
    let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
    let numeric = schema
        .fields()
        .iter()
        .map(|f| f.data_type().is_numeric())
        .collect();
    let options = FormatOptions::default().with_null("");
    let mut rows = Vec::new();
    for batch in &section.batches {
        let formatters = formatters(batch, &options)?;
        for row in 0..batch.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect(),
            );
        }
    }
    Ok(Table {
        columns,
        numeric,
        rows,
    })
}

/// A text formatter per column of `batch`.
fn formatters<'a>(
    batch: &'a RecordBatch,
    options: &'a FormatOptions<'a>,
) -> Result<Vec<ArrayFormatter<'a>>> {
    Ok(batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), options))
        .collect::<Result<Vec<_>, _>>()?)
}

/// The header lines every text format starts with.
fn period_line(output: &ReportOutput) -> String {
    format!(
        "Period: {} ({} to {}, UTC)",
        output.period.label,
        output.period.start.format("%Y-%m-%d"),
        output.period.end.format("%Y-%m-%d"),
    )
}

fn generated_line(output: &ReportOutput) -> String {
    format!(
        "Generated {} by SpendQL {}",
        output.generated_at.format("%Y-%m-%d %H:%M:%S UTC"),
        env!("CARGO_PKG_VERSION")
    )
}

fn markdown(output: &ReportOutput) -> Result<String> {
    let cell = |text: &str| text.replace('|', "\\|").replace(['\n', '\r'], " ");
    let mut out = format!(
        "# {}\n\n{}\n\n{}\n",
        output.def.title,
        period_line(output),
        generated_line(output)
    );
    if !output.def.description.is_empty() {
        out.push_str(&format!("\n{}\n", output.def.description));
    }
    for section in &output.sections {
        let t = table(section)?;
        out.push_str(&format!("\n## {}\n\n", section.def.title));
        if t.rows.is_empty() {
            out.push_str("_No rows._\n");
            continue;
        }
        let header: Vec<String> = t.columns.iter().map(|c| cell(c)).collect();
        out.push_str(&format!("| {} |\n", header.join(" | ")));
        let rule: Vec<&str> = t
            .numeric
            .iter()
            .map(|&n| if n { "---:" } else { "---" })
            .collect();
        out.push_str(&format!("| {} |\n", rule.join(" | ")));
        for row in &t.rows {
            let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
    }
    Ok(out)
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn csv(output: &ReportOutput) -> Result<String> {
    let mut out = String::new();
    for (index, section) in output.sections.iter().enumerate() {
        if index > 0 {
            out.push('\n');
        }
        let t = table(section)?;
        out.push_str(&csv_field(&section.def.title));
        out.push('\n');
        let header: Vec<String> = t.columns.iter().map(|c| csv_field(c)).collect();
        out.push_str(&header.join(","));
        out.push('\n');
        for row in &t.rows {
            let cells: Vec<String> = row.iter().map(|c| csv_field(c)).collect();
            out.push_str(&cells.join(","));
            out.push('\n');
        }
    }
    Ok(out)
}

/// Integers, floats and booleans as JSON numbers and booleans; DECIMALs as strings so that
/// no digit is lost; everything else as its text.
fn cell_json(array: &ArrayRef, row: usize, text: String) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => text.parse::<i128>().map_or(Value::String(text), |n| {
            serde_json::Number::from_i128(n).map_or(Value::Null, Value::Number)
        }),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
        _ => Value::String(text),
    }
}

fn json_value(output: &ReportOutput) -> Result<Value> {
    let options = FormatOptions::default().with_null("");
    let mut sections = Vec::new();
    for section in &output.sections {
        let columns: Vec<&String> = section.schema.fields().iter().map(|f| f.name()).collect();
        let mut rows = Vec::new();
        for batch in &section.batches {
            let formatters = formatters(batch, &options)?;
            for row in 0..batch.num_rows() {
                let cells: Vec<Value> = batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(array, f)| cell_json(array, row, f.value(row).to_string()))
                    .collect();
                rows.push(Value::Array(cells));
            }
        }
        sections.push(json!({
            "title": section.def.title,
            "columns": columns,
            "rows": rows,
        }));
    }
    Ok(json!({
        "report": output.def.name,
        "title": output.def.title,
        "period": {
            "label": output.period.label,
            "start": output.period.start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "end": output.period.end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        },
        "generated_at": output.generated_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "sections": sections,
    }))
}
