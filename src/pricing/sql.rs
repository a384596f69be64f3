//! `pricing_import(format, document)`: the catalog refresh of `spendql pricing import`, from
//! SQL.
//!
//! The document is the file's text, so a client on another machine can send it (in psql:
//! `\set doc `cat prices.json`` then `SELECT * FROM pricing_import('litellm', :'doc')`); the
//! server never reads a path a client names. The import runs when the query executes, not
//! when it is planned, so `EXPLAIN` and a prepared statement that is never executed change
//! nothing. Each row of the result is one change, as the command prints them.

use std::path::Path;
use std::sync::{Arc, LazyLock};

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue, plan_err};
use datafusion::datasource::TableProvider;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;

use super::{ImportFormat, ImportReport, import_into, parse_import};
use crate::function_table::FunctionTable;
use crate::storage::ConfigTable;

/// The name the function is registered under.
pub const NAME: &str = "pricing_import";
/// Its arguments and description, as `\df` and `obj_description` show them.
pub const ARGUMENTS: &str = "format text, document text";
pub const DESCRIPTION: &str = "Import prices (genai-prices, litellm or csv) from the \
     document's text into pricing, keeping history; one row per change.";

/// The columns an import returns.
pub fn result_schema() -> SchemaRef {
    Arc::clone(&REPORT_SCHEMA)
}

static REPORT_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("change", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, false),
    ]))
});

/// The table function; holds the `pricing` table it writes to.
#[derive(Debug)]
pub struct PricingImport {
    pricing: Arc<ConfigTable>,
}

impl PricingImport {
    pub fn new(pricing: Arc<ConfigTable>) -> Self {
        PricingImport { pricing }
    }
}

impl TableFunctionImpl for PricingImport {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let [format, document] = args.exprs() else {
            return plan_err!("{NAME} takes two arguments: a format and the document text");
        };
        let format = match text_literal(format, "format")?.as_str() {
            "genai-prices" => ImportFormat::GenaiPrices,
            "litellm" => ImportFormat::Litellm,
            "csv" => ImportFormat::Csv,
            other => {
                return Err(DataFusionError::External(Box::new(crate::Error::Invalid(
                    format!("{NAME}: unknown format '{other}' (genai-prices, litellm or csv)"),
                ))));
            }
        };
        let run = ImportRun {
            pricing: Arc::clone(&self.pricing),
            format,
            document: Arc::new(text_literal(document, "document")?),
        };
        let table = ImportTable::new(Arc::clone(&REPORT_SCHEMA), Arc::new(run))?;
        Ok(Arc::new(table))
    }
}

/// Marks the table a `pricing_import(...)` call scans, so privilege checks can tell this
/// writing "table" from the read-only ones.
#[derive(Debug)]
pub enum ImportCall {}

/// The table a `pricing_import(...)` call scans.
pub type ImportTable = FunctionTable<ImportCall>;

fn text_literal(expr: &Expr, what: &str) -> DfResult<String> {
    match expr {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
            _,
        ) => Ok(s.clone()),
        _ => plan_err!("{NAME}: the {what} must be a text literal"),
    }
}

/// One execution of an import.
#[derive(Debug)]
struct ImportRun {
    pricing: Arc<ConfigTable>,
    format: ImportFormat,
    document: Arc<String>,
}

impl PartitionStream for ImportRun {
    fn schema(&self) -> &SchemaRef {
        &REPORT_SCHEMA
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let pricing = Arc::clone(&self.pricing);
        let format = self.format;
        let document = Arc::clone(&self.document);
        let import = async move {
            // Parsing and the fsynced table replace are blocking work.
            tokio::task::spawn_blocking(move || run_import(&pricing, format, &document))
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?
        };
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&REPORT_SCHEMA),
            futures::stream::once(import),
        ))
    }
}

fn run_import(
    pricing: &ConfigTable,
    format: ImportFormat,
    document: &str,
) -> DfResult<RecordBatch> {
    let incoming = parse_import(format, document.as_bytes(), Path::new("document"))
        .map_err(|e| DataFusionError::Execution(format!("invalid input syntax for {NAME}: {e}")))?;
    let rows = incoming.num_rows();
    let now = chrono::Utc::now().timestamp_micros();
    let report = import_into(pricing, &incoming, format.dating(now))?;
    report_batch(rows, &report)
}

/// The report as rows: new models, changed prices, then a summary.
fn report_batch(rows_read: usize, report: &ImportReport) -> DfResult<RecordBatch> {
    let mut change = Vec::new();
    let mut detail = Vec::new();
    for model in &report.new_models {
        change.push("new model");
        detail.push(model.clone());
    }
    for line in &report.changed {
        change.push("changed");
        detail.push(line.clone());
    }
    change.push("summary");
    detail.push(report.summary(rows_read));
    Ok(RecordBatch::try_new(
        Arc::clone(&REPORT_SCHEMA),
        vec![
            Arc::new(StringArray::from(change)),
            Arc::new(StringArray::from(detail)),
        ],
    )?)
}
