//! `priced_usage()`: the rows of `usage` with their list cost parts (`input_cost`,
//! `cached_cost`, `cache_write_cost`, `output_cost`, `request_cost`), which `spend` reads.
//!
//! Parquet parts store their rows' cost parts, priced when the part is written, and the
//! manifest records the fingerprint of the catalog they were priced with. A scan reads the
//! stored parts of every file whose fingerprint is the current catalog's, and prices the
//! rest as `usage_cost` does: files written before costs were stored or while the catalog
//! could not price them, files priced under another catalog (a price was added or
//! corrected since), and the rows still only in the write-ahead log. So a price change is
//! in every answer at once; only the speed differs.
//!
//! Why: pricing each row at query time was half of the dashboard's time at 10M rows
//! (see BENCHMARKS.md, "Costs stored with the rows").

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl};
use datafusion::common::{DFSchema, DataFusionError, Result, plan_err};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::functions::core::expr_fn::get_field;
use datafusion::logical_expr::ScalarUDF;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, col};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::union::UnionExec;
use spendql_udfs::catalog::{PriceCatalog, StaticCatalog};
use spendql_udfs::usage_cost;

use super::manifest::UsageFile;
use super::usage::UsageStore;
use crate::schema;

/// The table function's name.
pub const NAME: &str = "priced_usage";

/// The column that holds `usage_cost(...)` for rows priced when read.
const PRICED_HERE: &str = "__usage_cost";

/// `priced_usage()`, over the shared `usage` store.
#[derive(Debug)]
pub struct PricedUsage {
    store: Arc<UsageStore>,
}

impl PricedUsage {
    pub fn new(store: Arc<UsageStore>) -> Self {
        PricedUsage { store }
    }
}

impl TableFunctionImpl for PricedUsage {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        if !args.exprs().is_empty() {
            return plan_err!("{NAME}() takes no arguments");
        }
        Ok(Arc::new(PricedUsageTable::new(Arc::clone(&self.store))))
    }
}

/// The table a `priced_usage()` call scans: `usage`'s columns, then the cost parts.
#[derive(Debug)]
pub struct PricedUsageTable {
    store: Arc<UsageStore>,
    schema: SchemaRef,
}

impl PricedUsageTable {
    pub fn new(store: Arc<UsageStore>) -> Self {
        let schema = schema::with_cost_parts(
            store.read_schema(),
            DataType::Decimal128(38, spendql_udfs::catalog::COST_SCALE),
        );
        PricedUsageTable { store, schema }
    }

    /// How many of the columns are `usage`'s; the cost parts follow them.
    fn usage_columns(&self) -> usize {
        self.store.read_schema().fields().len()
    }

    /// Scan the rows of `unpriced`, pricing them here; `projection` is into
    /// [`PricedUsageTable::schema`].
    async fn price_when_read(
        &self,
        state: &dyn Session,
        unpriced: Unpriced<'_>,
        projection: &[usize],
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let usage = self.store.read_schema();
        let usage_columns = self.usage_columns();
        let mut needed: Vec<usize> = projection
            .iter()
            .copied()
            .filter(|&i| i < usage_columns)
            .collect();
        let wants_costs = needed.len() < projection.len();
        if wants_costs {
            for name in usage_cost::ARGUMENTS {
                let i = usage.index_of(name)?;
                if !needed.contains(&i) {
                    needed.push(i);
                }
            }
        }
        let scan = self
            .store
            .scan_contents(
                state,
                unpriced.files,
                unpriced.buffer,
                Some(&needed),
                filters,
                limit,
            )
            .await?;
        if !wants_costs {
            return Ok(scan);
        }
        // Without a catalog, the registered function reports why when it runs.
        let function = match unpriced.catalog {
            Some(catalog) => Arc::new(ScalarUDF::new_from_impl(usage_cost::UsageCostFunc::new(
                Arc::new(StaticCatalog(catalog)),
            ))),
            None => state
                .scalar_functions()
                .get(usage_cost::NAME)
                .cloned()
                .ok_or_else(|| {
                    DataFusionError::Plan(format!("{} is not registered", usage_cost::NAME))
                })?,
        };
        let arguments = usage_cost::ARGUMENTS
            .iter()
            .map(|name| col(*name))
            .collect();
        let scanned = DFSchema::try_from(scan.schema())?;
        let mut with_parts = scan
            .schema()
            .fields()
            .iter()
            .map(|field| {
                let column = state.create_physical_expr(col(field.name()), &scanned)?;
                Ok((column, field.name().clone()))
            })
            .collect::<Result<Vec<_>>>()?;
        with_parts.push((
            state.create_physical_expr(function.call(arguments), &scanned)?,
            PRICED_HERE.to_string(),
        ));
        let with_parts: Arc<dyn ExecutionPlan> =
            Arc::new(ProjectionExec::try_new(with_parts, scan)?);
        let priced = DFSchema::try_from(with_parts.schema())?;
        let output = projection
            .iter()
            .map(|&i| {
                let name = self.schema.field(i).name();
                let expr = if i < usage_columns {
                    col(name)
                } else {
                    get_field(col(PRICED_HERE), name.as_str())
                };
                Ok((state.create_physical_expr(expr, &priced)?, name.clone()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(ProjectionExec::try_new(output, with_parts)?))
    }
}

/// What a scan prices when read, and with which catalog: the one it chose the stored
/// parts by, so a price change while the statement runs cannot mix two catalogs in one
/// answer (`None` if it failed to load).
struct Unpriced<'a> {
    files: &'a [UsageFile],
    buffer: &'a [RecordBatch],
    catalog: Option<Arc<PriceCatalog>>,
}

#[async_trait]
impl TableProvider for PricedUsageTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Filters on `usage`'s columns prune files and row groups; filters on a cost part
    /// stay above the scan, since half of it computes them.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|filter| {
                let on_costs = filter
                    .column_refs()
                    .iter()
                    .any(|column| usage_cost::PARTS.contains(&column.name.as_str()));
                if on_costs {
                    TableProviderFilterPushDown::Unsupported
                } else {
                    TableProviderFilterPushDown::Inexact
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let projection: Vec<usize> = match projection {
            Some(projection) => projection.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let wants_costs = projection.iter().any(|&i| i >= self.usage_columns());
        let (files, buffer) = self.store.contents();
        // Without cost parts every file is read alike; with them, a file's stored parts
        // are used only if they were priced with the catalog in force.
        let current = if wants_costs {
            self.store.catalog()
        } else {
            None
        };
        let (stored, priced_here): (Vec<UsageFile>, Vec<UsageFile>) =
            files.into_iter().partition(|file| {
                !wants_costs
                    || current
                        .as_ref()
                        .is_some_and(|catalog| file.costs_current(catalog))
            });
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        if let Some(table) = self
            .store
            .listing_table(&stored, Arc::clone(&self.schema))?
        {
            inputs.push(table.scan(state, Some(&projection), filters, limit).await?);
        }
        if !priced_here.is_empty() || !buffer.is_empty() || inputs.is_empty() {
            inputs.push(
                self.price_when_read(
                    state,
                    Unpriced {
                        files: &priced_here,
                        buffer: &buffer,
                        catalog: current,
                    },
                    &projection,
                    filters,
                    limit,
                )
                .await?,
            );
        }
        match inputs.len() {
            1 => Ok(inputs.remove(0)),
            _ => UnionExec::try_new(inputs),
        }
    }
}
