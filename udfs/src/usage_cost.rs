//! `usage_cost(provider, model, ts, service_tier, region, input_tokens, cached_input_tokens,
//! cache_write_tokens, cache_write_1h_tokens, output_tokens, requests)`: the cost parts of a
//! usage row, as the `spend` view needs them.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanBufferBuilder, Decimal128Array, StructArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use crate::args;
use crate::catalog::{CatalogHandle, CatalogSource, PriceCatalog, SourceHandle};
use crate::costing::{self, CostInputs};

/// The function's name.
pub const NAME: &str = "usage_cost";

/// The arguments, in order, named as `usage`'s columns that `spend` passes.
pub const ARGUMENTS: [&str; 11] = [
    "provider",
    "model",
    "ts",
    "service_tier",
    "region",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "requests",
];

/// The parts, in the order of the STRUCT's fields.
pub const PARTS: [&str; 5] = [
    "input_cost",
    "cached_cost",
    "cache_write_cost",
    "output_cost",
    "request_cost",
];

/// The function's eleven arguments, in its order, as costing's columns.
pub fn inputs(a: &[ColumnarValue], rows: usize) -> Result<CostInputs> {
    if a.len() != ARGUMENTS.len() {
        return datafusion::common::exec_err!(
            "usage_cost takes {} arguments, got {}",
            ARGUMENTS.len(),
            a.len()
        );
    }
    Ok(CostInputs {
        provider: args::text_view(&a[0], rows, "provider")?,
        model: args::text_view(&a[1], rows, "model")?,
        ts: args::timestamp(&a[2], rows, "ts")?,
        service_tier: Some(args::text_view(&a[3], rows, "service_tier")?),
        region: Some(args::text_view(&a[4], rows, "region")?),
        input: args::int(&a[5], rows, "input_tokens")?,
        cached_input: Some(args::int(&a[6], rows, "cached_input_tokens")?),
        cache_write: Some(args::int(&a[7], rows, "cache_write_tokens")?),
        cache_write_1h: Some(args::int(&a[8], rows, "cache_write_1h_tokens")?),
        output: args::int(&a[9], rows, "output_tokens")?,
        requests: Some(args::int(&a[10], rows, "requests")?),
    })
}

/// The parts of `rows` rows as `usage_cost` returns them: also what storage keeps with
/// each Parquet part, so that queries read rather than compute them.
pub fn parts_array(
    catalog: &PriceCatalog,
    inputs: &CostInputs,
    rows: usize,
) -> Result<StructArray> {
    // Five plain columns sharing the struct's validity: appending to five builders,
    // each with its own null bitmap, was a tenth of a dashboard query's CPU.
    let mut values: [Vec<i128>; PARTS.len()] = std::array::from_fn(|_| Vec::with_capacity(rows));
    let mut valid = BooleanBufferBuilder::new(rows);
    costing::compute(catalog, inputs, rows, |parts| {
        let row = parts.map_or([0; PARTS.len()], |p| {
            [p.input, p.cached_input, p.cache_write, p.output, p.request]
        });
        for (column, v) in values.iter_mut().zip(row) {
            column.push(v);
        }
        valid.append(parts.is_some());
    })?;
    let nulls = NullBuffer::new(valid.finish());
    let nulls = (nulls.null_count() > 0).then_some(nulls);
    let columns = values
        .into_iter()
        .map(|column| {
            Decimal128Array::try_new(column.into(), nulls.clone())
                .map(|a| Arc::new(a.with_data_type(args::cost_type())) as ArrayRef)
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(StructArray::try_new(fields(), columns, nulls)?)
}

/// The STRUCT's fields: the [`PARTS`], each `DECIMAL(38,12)`.
pub fn fields() -> Fields {
    PARTS
        .iter()
        .map(|name| Field::new(*name, args::cost_type(), true))
        .collect()
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UsageCostFunc {
    signature: Signature,
    source: CatalogHandle,
}

impl UsageCostFunc {
    pub fn new(source: Arc<dyn CatalogSource>) -> Self {
        UsageCostFunc {
            signature: Signature::new(TypeSignature::Any(11), Volatility::Stable),
            source: SourceHandle(source),
        }
    }
}

static DOC: std::sync::LazyLock<Documentation> = std::sync::LazyLock::new(|| {
    Documentation::builder(
        crate::DOC_SECTION,
        "The list cost parts of a usage row as STRUCT<input_cost, cached_cost, cache_write_cost, \
         output_cost, request_cost>, each DECIMAL(38,12): every pricing dimension of the catalog \
         (effective date, service tier, region, long-context tier by prompt tokens per request, \
         time-of-day window, cache reads, 5-minute and 1-hour cache writes, per-request fees). \
         NULL when no price applies.",
        "usage_cost(provider, model, ts, service_tier, region, input_tokens, cached_input_tokens, cache_write_tokens, cache_write_1h_tokens, output_tokens, requests)",
    )
    .with_argument("provider", "Canonical provider id.")
    .with_argument("model", "Model name as reported.")
    .with_argument("ts", "Time of the call or bucket.")
    .with_argument("service_tier", "standard, batch, flex or priority.")
    .with_argument("region", "Region, or NULL.")
    .with_argument("input_tokens", "Uncached input tokens.")
    .with_argument("cached_input_tokens", "Cache reads.")
    .with_argument("cache_write_tokens", "5-minute cache writes.")
    .with_argument("cache_write_1h_tokens", "1-hour cache writes.")
    .with_argument("output_tokens", "Output tokens.")
    .with_argument("requests", "Calls the row stands for.")
    .build()
});

impl ScalarUDFImpl for UsageCostFunc {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(fields()))
    }

    fn invoke_with_args(&self, call: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = call.number_rows;
        let inputs = inputs(&call.args, rows)?;
        let catalog = self.source.current()?;
        let array = parts_array(&catalog, &inputs, rows)?;
        Ok(ColumnarValue::Array(Arc::new(array)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}
