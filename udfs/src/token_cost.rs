//! `token_cost(provider, model, ts, input_tokens, output_tokens [, cached_input_tokens,
//! cache_write_tokens, service_tier])`: the list cost of one call.

use std::sync::Arc;

use arrow::array::Decimal128Builder;
use arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use crate::args;
use crate::catalog::CatalogSource;
use crate::costing::{self, CostInputs};

#[derive(Debug)]
pub struct TokenCostFunc {
    signature: Signature,
    source: Arc<dyn CatalogSource>,
}

impl TokenCostFunc {
    pub fn new(source: Arc<dyn CatalogSource>) -> Self {
        TokenCostFunc {
            signature: Signature::one_of(
                vec![
                    TypeSignature::Any(5),
                    TypeSignature::Any(6),
                    TypeSignature::Any(7),
                    TypeSignature::Any(8),
                ],
                Volatility::Stable,
            ),
            source,
        }
    }
}

impl PartialEq for TokenCostFunc {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.source, &other.source)
    }
}

impl Eq for TokenCostFunc {}

impl std::hash::Hash for TokenCostFunc {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

static DOC: std::sync::LazyLock<Documentation> = std::sync::LazyLock::new(|| {
    Documentation::builder(
        crate::DOC_SECTION,
        "The list cost in USD, DECIMAL(38,12), of a call: the catalog price in force at `ts` for \
         the model (resolved as `resolve_model` does) and service tier, with long-context and \
         time-of-day rows applied, and the providers' documented cache prices where the \
         catalog has none. `input_tokens` excludes cache reads and writes. NULL when an \
         argument is NULL or no price applies; a negative token count is an error.",
        "token_cost(provider, model, ts, input_tokens, output_tokens [, cached_input_tokens, cache_write_tokens, service_tier])",
    )
    .with_sql_example("```sql\n> SELECT token_cost('openai', 'gpt-4o', '2026-10-01T00:00:00Z', 1000, 200, 500);\n```")
    .with_argument("provider", "Canonical provider id.")
    .with_argument("model", "Model name as reported.")
    .with_argument("ts", "Time of the call (TIMESTAMPTZ).")
    .with_argument("input_tokens", "Uncached input tokens.")
    .with_argument("output_tokens", "Output tokens, reasoning included.")
    .with_argument("cached_input_tokens", "Cache reads (default 0).")
    .with_argument("cache_write_tokens", "Cache writes (default 0).")
    .with_argument("service_tier", "standard (default), batch, flex or priority.")
    .build()
});

impl ScalarUDFImpl for TokenCostFunc {
    fn name(&self) -> &str {
        "token_cost"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(args::cost_type())
    }

    fn invoke_with_args(&self, call: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = call.number_rows;
        let a = &call.args;
        let opt_int = |i: usize, name: &str| -> Result<Option<_>> {
            a.get(i).map(|v| args::int(v, rows, name)).transpose()
        };
        let inputs = CostInputs {
            provider: args::text(&a[0], rows, "provider")?,
            model: args::text(&a[1], rows, "model")?,
            ts: args::timestamp(&a[2], rows, "ts")?,
            input: args::int(&a[3], rows, "input_tokens")?,
            output: args::int(&a[4], rows, "output_tokens")?,
            cached_input: opt_int(5, "cached_input_tokens")?,
            cache_write: opt_int(6, "cache_write_tokens")?,
            cache_write_1h: None,
            requests: None,
            service_tier: a
                .get(7)
                .map(|v| args::text(v, rows, "service_tier"))
                .transpose()?,
            region: None,
        };
        let catalog = self.source.current()?;
        let parts = costing::compute(&catalog, &inputs, rows)?;
        let mut out = Decimal128Builder::with_capacity(rows).with_data_type(args::cost_type());
        for p in parts {
            out.append_option(p.map(|p| p.total()));
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}
