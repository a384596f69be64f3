//! Configuration tables (pricing, budgets, rules, ...): small, read often, changed by hand.
//!
//! Each is held in memory and persisted as one Parquet file, `tables/<name>.parquet`, which
//! every INSERT, UPDATE or DELETE replaces atomically (temp file, fsync, rename, fsync the
//! directory) before the statement returns. A statement changes the table whole or not at all.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use arrow::array::{Array, BooleanArray, RecordBatch};
use arrow::compute::{concat_batches, filter_record_batch};
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, DataFusionError, Result as DfResult};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::create_physical_expr;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan};
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::durable;
use crate::error::{Error, Result};

#[derive(Debug)]
struct Contents {
    batch: RecordBatch,
    /// Bumped on every change, so a DELETE/UPDATE planned against an older version fails
    /// instead of overwriting a concurrent change.
    version: u64,
}

/// One configuration table.
#[derive(Debug)]
pub struct ConfigTable {
    name: &'static str,
    schema: SchemaRef,
    /// `None` for an in-memory engine.
    file: Option<PathBuf>,
    contents: RwLock<Contents>,
    /// Serialises writers so each sees the version it replaces.
    write_lock: Mutex<()>,
    defaults: HashMap<String, Expr>,
}

impl ConfigTable {
    /// Load `name` from `tables_dir` (empty if it has no file yet).
    pub fn open(
        name: &'static str,
        schema: SchemaRef,
        tables_dir: Option<&Path>,
        defaults: HashMap<String, Expr>,
    ) -> Result<Arc<Self>> {
        let file = tables_dir.map(|d| d.join(format!("{name}.parquet")));
        let batch = match &file {
            Some(path) if path.exists() => read_table(path, &schema)?,
            _ => RecordBatch::new_empty(Arc::clone(&schema)),
        };
        Ok(Arc::new(ConfigTable {
            name,
            schema,
            file,
            contents: RwLock::new(Contents { batch, version: 0 }),
            write_lock: Mutex::new(()),
            defaults,
        }))
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// True when the table has a file in the data directory (it has been written at least
    /// once); always false in memory.
    pub fn has_file(&self) -> bool {
        self.file.as_ref().is_some_and(|f| f.exists())
    }

    /// Replace the contents durably if the table is still at `expected_version`.
    /// Blocking.
    pub fn replace(&self, rows: RecordBatch, expected_version: u64) -> Result<()> {
        self.commit(rows, Some(expected_version))
    }

    /// Bumped by every committed change; lets readers cache what they derive from the rows.
    pub fn version(&self) -> u64 {
        self.read().version
    }

    /// The current rows.
    pub fn rows(&self) -> RecordBatch {
        self.read().batch.clone()
    }

    /// The current rows and the version they are at, for a later `replace`.
    pub fn rows_with_version(&self) -> (RecordBatch, u64) {
        let contents = self.read();
        (contents.batch.clone(), contents.version)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Contents> {
        self.contents.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Replace the contents with `new` if the table is still at `expected_version`
    /// (or unconditionally when `None`), durably. Blocking.
    fn commit(&self, new: RecordBatch, expected_version: Option<u64>) -> Result<()> {
        let _writer = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.read().version;
        if let Some(expected) = expected_version
            && expected != current
        {
            return Err(Error::Invalid(format!(
                "{} was changed by another statement while this one ran; run it again",
                self.name
            )));
        }
        if let Some(path) = &self.file {
            write_table(path, &new)?;
        }
        let mut contents = self.contents.write().unwrap_or_else(|p| p.into_inner());
        contents.batch = new;
        contents.version = current + 1;
        Ok(())
    }

    /// Append rows (already in this table's schema) durably. Blocking.
    pub fn append(&self, batches: &[RecordBatch]) -> Result<u64> {
        let _writer = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let (current, version) = {
            let c = self.read();
            (c.batch.clone(), c.version)
        };
        let mut all = Vec::with_capacity(batches.len() + 1);
        all.push(current);
        all.extend(batches.iter().cloned());
        let merged = concat_batches(&self.schema, &all)?;
        let added: usize = batches.iter().map(RecordBatch::num_rows).sum();
        drop(_writer);
        self.commit(merged, Some(version))?;
        Ok(added as u64)
    }

    /// Rows matching every filter (NULL counts as no match).
    fn matching(
        &self,
        state: &dyn Session,
        batch: &RecordBatch,
        filters: &[Expr],
    ) -> DfResult<BooleanArray> {
        let df_schema = DFSchema::try_from(Arc::clone(&self.schema))?;
        let mut mask = BooleanArray::from(vec![true; batch.num_rows()]);
        for filter in filters {
            let physical = create_physical_expr(
                filter,
                &df_schema,
                state.execution_props(),
                &PhysicalPlanningContext::default(),
            )?;
            let value = physical.evaluate(batch)?.into_array(batch.num_rows())?;
            let Some(values) = value.as_any().downcast_ref::<BooleanArray>() else {
                return Err(DataFusionError::Plan(format!(
                    "WHERE clause must be boolean, got {}",
                    value.data_type()
                )));
            };
            let values: BooleanArray = values.iter().map(|v| Some(v == Some(true))).collect();
            mask = arrow::compute::and(&mask, &values)?;
        }
        Ok(mask)
    }
}

fn read_table(path: &Path, schema: &SchemaRef) -> Result<RecordBatch> {
    let bad =
        |e: &dyn std::fmt::Display| Error::corrupt(path, format!("unreadable table file: {e}"));
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| bad(&e))?
        .build()
        .map_err(|e| bad(&e))?;
    let mut batches = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| bad(&e))?;
        if batch.schema().fields() != schema.fields() {
            return Err(Error::corrupt(
                path,
                "table file has different columns than this version of SpendQL expects",
            ));
        }
        batches.push(batch.with_schema(Arc::clone(schema)).map_err(|e| bad(&e))?);
    }
    Ok(concat_batches(schema, &batches)?)
}

fn write_table(path: &Path, batch: &RecordBatch) -> Result<()> {
    if let Some(parent) = path.parent() {
        durable::create_dir_durable(parent)?;
    }
    let tmp = durable::tmp_path(path);
    let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut writer =
        ArrowWriter::try_new(file, batch.schema(), None).map_err(|e| Error::corrupt(&tmp, e))?;
    writer.write(batch).map_err(|e| Error::corrupt(&tmp, e))?;
    writer.close().map_err(|e| Error::corrupt(&tmp, e))?;
    durable::publish(&tmp, path)
}

/// A configuration table as registered in the catalog: a handle on the shared table.
#[derive(Debug, Clone)]
pub struct ConfigTableProvider(pub Arc<ConfigTable>);

#[async_trait]
impl TableProvider for ConfigTableProvider {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.0.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.0.defaults.get(column)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![
            TableProviderFilterPushDown::Unsupported;
            filters.len()
        ])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let batch = self.0.rows();
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            Arc::clone(&self.0.schema),
            projection.cloned(),
        )?)
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return Err(DataFusionError::NotImplemented(format!(
                "{insert_op} into {}",
                self.0.name
            )));
        }
        let sink = ConfigSink {
            table: Arc::clone(&self.0),
            change: Change::Append,
        };
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }

    async fn delete_from(
        &self,
        state: &dyn Session,
        filters: Vec<Expr>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let (batch, version) = {
            let c = self.0.read();
            (c.batch.clone(), c.version)
        };
        let mask = self.0.matching(state, &batch, &filters)?;
        let deleted = mask.true_count() as u64;
        let keep = arrow::compute::not(&mask)?;
        let remaining = filter_record_batch(&batch, &keep)?;
        replace_plan(&self.0, remaining, version, deleted)
    }

    async fn update(
        &self,
        state: &dyn Session,
        assignments: Vec<(String, Expr)>,
        filters: Vec<Expr>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let (batch, version) = {
            let c = self.0.read();
            (c.batch.clone(), c.version)
        };
        let mask = self.0.matching(state, &batch, &filters)?;
        let updated = mask.true_count() as u64;
        let df_schema = DFSchema::try_from(Arc::clone(&self.0.schema))?;
        let mut columns = batch.columns().to_vec();
        for (name, expr) in &assignments {
            let index = self.0.schema.index_of(name).map_err(|_| {
                DataFusionError::SchemaError(
                    Box::new(datafusion::common::SchemaError::FieldNotFound {
                        field: Box::new(datafusion::common::Column::from_name(name)),
                        valid_fields: vec![],
                    }),
                    Box::new(None),
                )
            })?;
            let target = self.0.schema.field(index).data_type();
            let physical = create_physical_expr(
                expr,
                &df_schema,
                state.execution_props(),
                &PhysicalPlanningContext::default(),
            )?;
            let new_values = physical.evaluate(&batch)?.into_array(batch.num_rows())?;
            let new_values = arrow::compute::cast(&new_values, target)?;
            columns[index] =
                arrow::compute::kernels::zip::zip(&mask, &new_values, &columns[index])?;
        }
        let updated_batch = RecordBatch::try_new(Arc::clone(&self.0.schema), columns)?;
        replace_plan(&self.0, updated_batch, version, updated)
    }
}

/// Plan that commits `new` as the table's contents when executed.
fn replace_plan(
    table: &Arc<ConfigTable>,
    new: RecordBatch,
    version: u64,
    count: u64,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    let sink = ConfigSink {
        table: Arc::clone(table),
        change: Change::Replace {
            rows: new,
            version,
            count,
        },
    };
    let empty = Arc::new(EmptyExec::new(Arc::clone(&table.schema)));
    Ok(Arc::new(DataSinkExec::new(empty, Arc::new(sink), None)))
}

#[derive(Debug)]
enum Change {
    Append,
    Replace {
        rows: RecordBatch,
        version: u64,
        count: u64,
    },
}

/// Applies one statement's change to a configuration table when the plan runs.
#[derive(Debug)]
struct ConfigSink {
    table: Arc<ConfigTable>,
    change: Change,
}

impl DisplayAs for ConfigSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "ConfigSink({})", self.table.name)
    }
}

#[async_trait]
impl DataSink for ConfigSink {
    fn schema(&self) -> &SchemaRef {
        &self.table.schema
    }

    async fn write_all(
        &self,
        mut data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> DfResult<u64> {
        let mut batches = Vec::new();
        while let Some(batch) = data.next().await {
            batches.push(batch?);
        }
        let table = Arc::clone(&self.table);
        let (rows, version, count) = match &self.change {
            Change::Append => {
                let n = tokio::task::spawn_blocking(move || table.append(&batches))
                    .await
                    .map_err(|e| DataFusionError::Execution(format!("write task failed: {e}")))??;
                return Ok(n);
            }
            Change::Replace {
                rows,
                version,
                count,
            } => (rows.clone(), *version, *count),
        };
        tokio::task::spawn_blocking(move || table.commit(rows, Some(version)))
            .await
            .map_err(|e| DataFusionError::Execution(format!("write task failed: {e}")))??;
        Ok(count)
    }
}
