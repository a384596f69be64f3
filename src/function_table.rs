//! The result table of a table function that runs when the query executes (a
//! `StreamingTable` over one `PartitionStream`), with a marker type so that privilege
//! checks can tell which function a scan belongs to.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::Result;
use datafusion::datasource::TableProvider;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::streaming::PartitionStream;

/// One call's table; `M` names the function.
#[derive(Debug)]
pub struct FunctionTable<M> {
    table: StreamingTable,
    function: PhantomData<M>,
}

impl<M> FunctionTable<M> {
    /// The table that runs `run` when scanned.
    pub fn new(schema: SchemaRef, run: Arc<dyn PartitionStream>) -> Result<Self> {
        Ok(FunctionTable {
            table: StreamingTable::try_new(schema, vec![run])?,
            function: PhantomData,
        })
    }
}

#[async_trait]
impl<M: Debug + Send + Sync + 'static> TableProvider for FunctionTable<M> {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> TableType {
        self.table.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.table.scan(state, projection, filters, limit).await
    }
}
