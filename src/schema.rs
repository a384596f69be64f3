//! The built-in tables of SPEC §3: names, Arrow schemas, NOT NULL columns and defaults.
//!
//! This module is the single source of truth for the user-facing table surface. Storage,
//! ingest, the demo generator and the wire server all derive their column lists from it.

use std::sync::{Arc, LazyLock};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::Result;

/// `DECIMAL(38,12)`: USD amounts (costs, budgets, invoices, revenue).
pub const MONEY: DataType = DataType::Decimal128(38, 12);
/// `DECIMAL(20,9)`: USD per million tokens, and per-request prices.
pub const PRICE: DataType = DataType::Decimal128(20, 9);
/// `DECIMAL(9,4)`: ratios and percentages (discounts, thresholds).
pub const RATIO: DataType = DataType::Decimal128(9, 4);

/// `TIMESTAMPTZ`: UTC, microseconds.
pub fn timestamptz() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("+00:00")))
}

/// `TIME` for time-of-day price windows.
pub const TIME: DataType = DataType::Time64(TimeUnit::Microsecond);

/// How a table is stored. `usage` is large and append-mostly; every other table is small
/// configuration that is rewritten whole on each change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// Write-ahead logged, compacted into day-partitioned Parquet.
    Usage,
    /// Held in memory, persisted as one Parquet file replaced atomically on each change.
    Config,
}

/// A column default, applied when an INSERT omits the column.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnDefault {
    Int(i64),
    Text(&'static str),
    /// The statement's time (`now()`).
    Now,
}

/// One built-in table.
#[derive(Debug)]
pub struct TableDef {
    pub name: &'static str,
    pub kind: TableKind,
    pub schema: SchemaRef,
    pub defaults: Vec<(&'static str, ColumnDefault)>,
}

impl TableDef {
    /// The default for `column`, if it has one.
    pub fn default_for(&self, column: &str) -> Option<&ColumnDefault> {
        self.defaults
            .iter()
            .find(|(name, _)| *name == column)
            .map(|(_, default)| default)
    }
}

fn col(name: &str, data_type: DataType, nullable: bool) -> Field {
    Field::new(name, data_type, nullable)
}

fn text(name: &str) -> Field {
    col(name, DataType::Utf8, true)
}

fn text_nn(name: &str) -> Field {
    col(name, DataType::Utf8, false)
}

fn ts(name: &str) -> Field {
    col(name, timestamptz(), true)
}

fn ts_nn(name: &str) -> Field {
    col(name, timestamptz(), false)
}

fn table(
    name: &'static str,
    kind: TableKind,
    fields: Vec<Field>,
    defaults: Vec<(&'static str, ColumnDefault)>,
) -> TableDef {
    TableDef {
        name,
        kind,
        schema: Arc::new(Schema::new(fields)),
        defaults,
    }
}

fn usage() -> TableDef {
    use ColumnDefault::*;
    table(
        "usage",
        TableKind::Usage,
        vec![
            text_nn("event_id"),
            ts_nn("ts"),
            text_nn("provider"),
            text_nn("model"),
            col("input_tokens", DataType::Int64, false),
            col("cached_input_tokens", DataType::Int64, false),
            col("cache_write_tokens", DataType::Int64, false),
            col("cache_write_1h_tokens", DataType::Int64, false),
            col("output_tokens", DataType::Int64, false),
            col("reasoning_tokens", DataType::Int64, false),
            col("requests", DataType::Int64, false),
            text_nn("service_tier"),
            text("region"),
            text("api_key_id"),
            text("project"),
            text("team"),
            text("feature"),
            text("customer"),
            text("environment"),
            text("user_id"),
            text("tags"),
            col("latency_ms", DataType::Int32, true),
            text("status"),
            text("prompt_hash"),
            col("max_tokens", DataType::Int32, true),
            col("reported_cost", MONEY, true),
            text("source"),
            ts_nn("ingested_at"),
        ],
        vec![
            ("cached_input_tokens", Int(0)),
            ("cache_write_tokens", Int(0)),
            ("cache_write_1h_tokens", Int(0)),
            ("reasoning_tokens", Int(0)),
            ("requests", Int(1)),
            ("service_tier", Text("standard")),
            ("ingested_at", Now),
        ],
    )
}

fn pricing() -> TableDef {
    use ColumnDefault::*;
    table(
        "pricing",
        TableKind::Config,
        vec![
            text_nn("provider"),
            text_nn("model"),
            ts_nn("effective_from"),
            ts("effective_to"),
            text_nn("service_tier"),
            text("region"),
            col("min_prompt_tokens", DataType::Int64, false),
            col("utc_start_time", TIME, true),
            col("utc_end_time", TIME, true),
            col("input_per_mtok", PRICE, true),
            col("cached_input_per_mtok", PRICE, true),
            col("cache_write_per_mtok", PRICE, true),
            col("cache_write_1h_per_mtok", PRICE, true),
            col("output_per_mtok", PRICE, true),
            col("per_request", PRICE, true),
            text_nn("currency"),
            text("source"),
        ],
        vec![
            ("service_tier", Text("standard")),
            ("min_prompt_tokens", Int(0)),
            ("currency", Text("USD")),
        ],
    )
}

fn models() -> TableDef {
    table(
        "models",
        TableKind::Config,
        vec![
            text_nn("provider"),
            text_nn("model"),
            text("family"),
            col("tier", DataType::Int32, true),
            col("context_window", DataType::Int64, true),
            col("deprecated_on", DataType::Date32, true),
            text("aliases"),
        ],
        vec![],
    )
}

fn contracts() -> TableDef {
    table(
        "contracts",
        TableKind::Config,
        vec![
            text_nn("provider"),
            text("model"),
            col("discount_pct", RATIO, false),
            ts_nn("effective_from"),
            ts("effective_to"),
            col("commitment", MONEY, true),
            text("note"),
        ],
        vec![],
    )
}

fn attribution_rules() -> TableDef {
    use ColumnDefault::*;
    table(
        "attribution_rules",
        TableKind::Config,
        vec![
            text_nn("rule_id"),
            col("priority", DataType::Int32, false),
            // match columns: NULL matches anything
            text("provider"),
            text("api_key_id"),
            text("project"),
            text("model_pattern"),
            text("environment"),
            text("tag_key"),
            text("tag_value"),
            // assignment columns: NULL leaves the value as it is
            text("team"),
            text("feature"),
            text("customer"),
            text("assign_environment"),
            text("cost_center"),
            ts("valid_from"),
            ts("valid_to"),
        ],
        vec![("priority", Int(100))],
    )
}

fn budgets() -> TableDef {
    use ColumnDefault::*;
    table(
        "budgets",
        TableKind::Config,
        vec![
            text_nn("budget_id"),
            text("name"),
            text_nn("scope"),
            text("scope_value"),
            text_nn("period"),
            col("amount", MONEY, false),
            col("starts_on", DataType::Date32, true),
            col("ends_on", DataType::Date32, true),
            text_nn("thresholds"),
            text_nn("enforcement"),
            text("owner"),
            text("notify"),
        ],
        vec![
            ("scope", Text("global")),
            ("period", Text("month")),
            ("thresholds", Text("0.5,0.8,1.0")),
            ("enforcement", Text("alert")),
        ],
    )
}

fn alerts() -> TableDef {
    use ColumnDefault::*;
    table(
        "alerts",
        TableKind::Config,
        vec![
            text_nn("alert_id"),
            ts_nn("fired_at"),
            text_nn("kind"),
            text("budget_id"),
            text("scope"),
            text("scope_value"),
            col("threshold", RATIO, true),
            col("spend", MONEY, true),
            col("projected", MONEY, true),
            text("message"),
            ts("delivered_at"),
            text("delivery_error"),
        ],
        vec![("fired_at", Now)],
    )
}

fn policies() -> TableDef {
    table(
        "policies",
        TableKind::Config,
        vec![
            text_nn("policy_id"),
            text_nn("scope"),
            text("scope_value"),
            text("environment"),
            col("max_model_tier", DataType::Int32, true),
            text("allowed_providers"),
            text("allowed_models"),
            col("max_output_tokens", DataType::Int64, true),
            text("note"),
        ],
        vec![],
    )
}

fn api_keys() -> TableDef {
    use ColumnDefault::*;
    table(
        "api_keys",
        TableKind::Config,
        vec![
            text_nn("api_key_id"),
            text("provider"),
            text("team"),
            text("application"),
            text("environment"),
            ts("created_at"),
            ts("last_rotated_at"),
            col("rotation_days", DataType::Int32, true),
            text_nn("status"),
            col("monthly_budget", MONEY, true),
        ],
        vec![("status", Text("active"))],
    )
}

fn revenue() -> TableDef {
    table(
        "revenue",
        TableKind::Config,
        vec![
            col("day", DataType::Date32, false),
            text("customer"),
            text("feature"),
            col("revenue", MONEY, false),
            col("units", DataType::Int64, true),
            text("unit_name"),
        ],
        vec![],
    )
}

fn invoices() -> TableDef {
    use ColumnDefault::*;
    table(
        "invoices",
        TableKind::Config,
        vec![
            text_nn("provider"),
            text_nn("invoice_id"),
            col("period_start", DataType::Date32, false),
            col("period_end", DataType::Date32, false),
            col("amount", MONEY, false),
            text_nn("currency"),
        ],
        vec![("currency", Text("USD"))],
    )
}

fn fx_rates() -> TableDef {
    table(
        "fx_rates",
        TableKind::Config,
        vec![
            col("day", DataType::Date32, false),
            text_nn("currency"),
            col("usd_per_unit", PRICE, false),
        ],
        vec![],
    )
}

/// Costs as the providers report them (the openai-costs and anthropic-costs imports), per
/// day, project and line item: for reconciliation against computed cost. Not part of SPEC
/// §3; see docs/ARCHITECTURE.md. Re-importing a day replaces its amount (by `event_id`).
fn provider_costs() -> TableDef {
    use ColumnDefault::*;
    table(
        "provider_costs",
        TableKind::Config,
        vec![
            text_nn("event_id"),
            col("day", DataType::Date32, false),
            text_nn("provider"),
            text("project"),
            text_nn("line_item"),
            text("model"),
            text("service_tier"),
            col("amount", MONEY, false),
            text_nn("currency"),
            text("source"),
            ts_nn("ingested_at"),
        ],
        vec![("currency", Text("USD")), ("ingested_at", Now)],
    )
}

/// One row per scheduled report run (`[[reports]]` in spendql.toml), written by the server.
fn report_runs() -> TableDef {
    table(
        "report_runs",
        TableKind::Config,
        vec![
            text_nn("run_id"),
            text_nn("report"),
            ts_nn("scheduled_for"),
            ts_nn("started_at"),
            ts_nn("finished_at"),
            text_nn("period"),
            text_nn("format"),
            text("output_file"),
            text_nn("status"),
            text("error"),
            ts("delivered_at"),
            text("delivery_error"),
        ],
        vec![],
    )
}

static TABLES: LazyLock<Vec<TableDef>> = LazyLock::new(|| {
    vec![
        usage(),
        pricing(),
        models(),
        contracts(),
        attribution_rules(),
        budgets(),
        alerts(),
        policies(),
        api_keys(),
        revenue(),
        invoices(),
        fx_rates(),
        provider_costs(),
        report_runs(),
    ]
});

/// What each built-in table holds, as `obj_description` and psql's `\dt+` show it.
const DESCRIPTIONS: &[(&str, &str)] = &[
    (
        "usage",
        "One row per model call or usage bucket from any provider: tokens by kind, requests, attribution, reported cost",
    ),
    (
        "pricing",
        "Effective-dated prices per provider, model, service tier, region, prompt tier and time window (USD per million tokens)",
    ),
    ("models", "Model families, tiers and aliases"),
    (
        "contracts",
        "Negotiated discounts per provider or model, effective-dated",
    ),
    (
        "attribution_rules",
        "Rules that assign team, feature, customer, environment and cost center at query time, first match by priority",
    ),
    (
        "budgets",
        "Spending limits per scope and period, with alert thresholds and enforcement",
    ),
    ("alerts", "Budget and anomaly alerts, and their delivery"),
    (
        "report_runs",
        "Scheduled report runs: when, which period, the file written, the webhook delivery",
    ),
    (
        "policies",
        "Spending policies: model tiers, allowed providers and models, token caps per scope and environment",
    ),
    (
        "api_keys",
        "Provider API keys: owner team, environment, rotation, monthly budget",
    ),
    (
        "revenue",
        "Revenue per customer, feature and period, for unit economics",
    ),
    (
        "invoices",
        "Provider invoices, for reconciliation with computed cost",
    ),
    ("fx_rates", "Currency conversion rates to USD by date"),
    (
        "provider_costs",
        "Costs as the providers' cost reports state them, per day, project and line item",
    ),
];

/// The description of a built-in table.
pub fn description(table: &str) -> Option<&'static str> {
    DESCRIPTIONS
        .iter()
        .find(|(name, _)| *name == table)
        .map(|(_, text)| *text)
}

/// Every built-in table, `usage` first.
pub fn tables() -> &'static [TableDef] {
    &TABLES
}

/// The definition of the built-in table `name`.
pub fn table_def(name: &str) -> Option<&'static TableDef> {
    TABLES.iter().find(|t| t.name == name)
}

/// The schema of `usage`.
pub fn usage_schema() -> SchemaRef {
    Arc::clone(&TABLES[0].schema)
}

/// The (precision, scale) of the cost parts stored in Parquet parts: see
/// [`crate::storage::priced`].
pub const STORED_COST_TYPE: (u8, i8) = (18, spendql_udfs::catalog::COST_SCALE);

/// A Parquet part's schema when it stores its rows' cost parts: `usage`'s columns, then
/// one `DECIMAL(18,12)` per part of `usage_cost`.
pub fn usage_with_stored_costs() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let (precision, scale) = STORED_COST_TYPE;
        with_cost_parts(&usage_schema(), DataType::Decimal128(precision, scale))
    });
    Arc::clone(&SCHEMA)
}

/// `schema` followed by one nullable field of `data_type` per cost part.
pub fn with_cost_parts(schema: &Schema, data_type: DataType) -> SchemaRef {
    let parts = spendql_udfs::usage_cost::PARTS
        .iter()
        .map(|name| Arc::new(Field::new(*name, data_type.clone(), true)));
    let fields: Vec<_> = schema.fields().iter().cloned().chain(parts).collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `schema` with its text columns as `Utf8View`, the type queries read them as.
pub fn read_schema(schema: &Schema) -> SchemaRef {
    let fields = schema.fields().iter().map(|field| match field.data_type() {
        DataType::Utf8 => Arc::new(field.as_ref().clone().with_data_type(DataType::Utf8View)),
        _ => Arc::clone(field),
    });
    Arc::new(Schema::new_with_metadata(
        fields.collect::<Vec<_>>(),
        schema.metadata().clone(),
    ))
}

/// A stored batch as queries read it (`read_schema`); the cast shares the string buffers.
pub fn for_reading(batch: &RecordBatch, read_schema: &SchemaRef) -> Result<RecordBatch> {
    cast_batch(batch, read_schema)
}

/// A batch of `read_schema` (an INSERT's rows) as it is stored.
pub fn for_storing(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    cast_batch(batch, schema)
}

fn cast_batch(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| arrow::compute::cast(column, field.data_type()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_a_description() {
        for table in tables() {
            assert!(description(table.name).is_some(), "{}", table.name);
        }
        assert_eq!(DESCRIPTIONS.len(), tables().len());
    }
    use std::collections::HashSet;

    #[test]
    fn table_names_are_unique_and_usage_is_first() {
        let names: HashSet<_> = tables().iter().map(|t| t.name).collect();
        assert_eq!(names.len(), tables().len());
        assert_eq!(tables()[0].name, "usage");
        assert_eq!(tables()[0].kind, TableKind::Usage);
    }

    #[test]
    fn defaults_name_real_columns() {
        for t in tables() {
            for (column, _) in &t.defaults {
                assert!(
                    t.schema.field_with_name(column).is_ok(),
                    "{}.{column} has a default but no column",
                    t.name
                );
            }
        }
    }

    #[test]
    fn money_columns_are_exact_decimals() {
        let usage = table_def("usage").expect("usage");
        let reported = usage.schema.field_with_name("reported_cost").expect("col");
        assert_eq!(reported.data_type(), &DataType::Decimal128(38, 12));
        let pricing = table_def("pricing").expect("pricing");
        let input = pricing
            .schema
            .field_with_name("input_per_mtok")
            .expect("col");
        assert_eq!(input.data_type(), &DataType::Decimal128(20, 9));
    }
}
