//! `price_per_mtok(provider, model, ts, kind [, service_tier])`: the price in force.

use std::sync::Arc;

use arrow::array::{Array, Decimal128Builder};
use arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use crate::args;
use crate::catalog::{CatalogHandle, CatalogSource, PriceKind, Request, SourceHandle, pick};
use crate::costing::Resolver;
use crate::rules;

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PricePerMtokFunc {
    signature: Signature,
    source: CatalogHandle,
}

impl PricePerMtokFunc {
    pub fn new(source: Arc<dyn CatalogSource>) -> Self {
        PricePerMtokFunc {
            signature: Signature::one_of(
                vec![TypeSignature::Any(4), TypeSignature::Any(5)],
                Volatility::Stable,
            ),
            source: SourceHandle(source),
        }
    }
}

static DOC: std::sync::LazyLock<Documentation> = std::sync::LazyLock::new(|| {
    Documentation::builder(
        crate::DOC_SECTION,
        "The price in USD per million tokens, DECIMAL(20,9), in force at `ts` for the model and \
         service tier (base context, all-day rows), after the cache-price rules for prices the \
         catalog leaves NULL. NULL when no price applies.",
        "price_per_mtok(provider, model, ts, kind [, service_tier])",
    )
    .with_sql_example("```sql\n> SELECT price_per_mtok('anthropic', 'claude-sonnet-4', now(), 'cache_write_1h');\n```")
    .with_argument("provider", "Canonical provider id.")
    .with_argument("model", "Model name as reported.")
    .with_argument("ts", "The time (TIMESTAMPTZ).")
    .with_argument("kind", "input, cached_input, cache_write, cache_write_1h or output.")
    .with_argument("service_tier", "standard (default), batch, flex or priority.")
    .build()
});

impl ScalarUDFImpl for PricePerMtokFunc {
    fn name(&self) -> &str {
        "price_per_mtok"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(args::price_type())
    }

    fn invoke_with_args(&self, call: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = call.number_rows;
        let a = &call.args;
        let provider = args::text(&a[0], rows, "provider")?;
        let model = args::text(&a[1], rows, "model")?;
        let ts = args::timestamp(&a[2], rows, "ts")?;
        let kind = args::text(&a[3], rows, "kind")?;
        let tier = a
            .get(4)
            .map(|v| args::text(v, rows, "service_tier"))
            .transpose()?;
        let catalog = self.source.current()?;
        let mut resolver = Resolver::new(&catalog);
        let mut out = Decimal128Builder::with_capacity(rows).with_data_type(args::price_type());
        for i in 0..rows {
            if provider.is_null(i) || model.is_null(i) || ts.is_null(i) || kind.is_null(i) {
                out.append_null();
                continue;
            }
            let price_kind = PriceKind::parse(kind.value(i)).ok_or_else(|| {
                DataFusionError::Execution(format!(
                    "invalid parameter value: price kind {:?} is not one of input, cached_input, \
                     cache_write, cache_write_1h, output",
                    kind.value(i)
                ))
            })?;
            let resolved = resolver.get(provider.value(i), model.value(i));
            let service_tier = match &tier {
                Some(t) if t.is_valid(i) => t.value(i),
                _ => "standard",
            };
            let request = Request {
                ts: ts.value(i),
                service_tier,
                region: None,
                prompt_tokens: 0,
            };
            let price = resolved.and_then(|r| {
                pick(r.series, &request)
                    .and_then(|row| rules::price_per_mtok(r.family, row, price_kind))
            });
            out.append_option(price);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}
