//! Rendering query results for `spendql sql`: an aligned table, CSV or JSON.

use std::io::Write;

use arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};

/// Output formats of `spendql sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// An aligned text table with a row count.
    Table,
    /// CSV with a header row.
    Csv,
    /// A JSON array of objects.
    Json,
}

/// Write `batches` to `out` in `format`.
pub fn write_batches(
    out: &mut dyn Write,
    batches: &[RecordBatch],
    format: OutputFormat,
) -> Result<()> {
    let io = |e: std::io::Error| Error::io("<stdout>", e);
    match format {
        OutputFormat::Table => {
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            if batches.is_empty() {
                writeln!(out, "(0 rows)").map_err(io)?;
                return Ok(());
            }
            let table = arrow::util::pretty::pretty_format_batches(batches)?;
            writeln!(out, "{table}").map_err(io)?;
            let noun = if rows == 1 { "row" } else { "rows" };
            writeln!(out, "({rows} {noun})").map_err(io)?;
        }
        OutputFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            for batch in batches {
                writer.write(batch)?;
            }
        }
        OutputFormat::Json => {
            let mut writer = arrow::json::ArrayWriter::new(&mut *out);
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            writer.write_batches(&refs)?;
            writer.finish()?;
            drop(writer);
            writeln!(out).map_err(io)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Decimal128Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("team", DataType::Utf8, true),
            Field::new("cost", DataType::Decimal128(38, 12), true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("search"), None])),
                Arc::new(
                    Decimal128Array::from(vec![Some(12_500_000_000_000i128), Some(1)])
                        .with_precision_and_scale(38, 12)
                        .expect("decimal"),
                ),
            ],
        )
        .expect("batch")
    }

    #[test]
    fn table_prints_exact_decimals_and_a_row_count() {
        let mut out = Vec::new();
        write_batches(&mut out, &[batch()], OutputFormat::Table).expect("write");
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.contains("12.500000000000"), "{text}");
        assert!(text.contains("0.000000000001"), "{text}");
        assert!(text.ends_with("(2 rows)\n"), "{text}");
    }

    #[test]
    fn csv_and_json_carry_every_row() {
        let mut out = Vec::new();
        write_batches(&mut out, &[batch()], OutputFormat::Csv).expect("csv");
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(
            text.starts_with("team,cost\nsearch,12.500000000000\n"),
            "{text}"
        );
        let mut out = Vec::new();
        write_batches(&mut out, &[batch()], OutputFormat::Json).expect("json");
        let value: serde_json::Value = serde_json::from_slice(&out).expect("valid json");
        assert_eq!(value.as_array().map(Vec::len), Some(2));
    }
}
