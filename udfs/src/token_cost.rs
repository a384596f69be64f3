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
use crate::catalog::{CatalogHandle, CatalogSource, SourceHandle};
use crate::costing::{self, CostInputs};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TokenCostFunc {
    signature: Signature,
    source: CatalogHandle,
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
            source: SourceHandle(source),
        }
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
            provider: args::text_view(&a[0], rows, "provider")?,
            model: args::text_view(&a[1], rows, "model")?,
            ts: args::timestamp(&a[2], rows, "ts")?,
            input: args::int(&a[3], rows, "input_tokens")?,
            output: args::int(&a[4], rows, "output_tokens")?,
            cached_input: opt_int(5, "cached_input_tokens")?,
            cache_write: opt_int(6, "cache_write_tokens")?,
            cache_write_1h: None,
            requests: None,
            service_tier: a
                .get(7)
                .map(|v| args::text_view(v, rows, "service_tier"))
                .transpose()?,
            region: None,
        };
        let catalog = self.source.current()?;
        let mut out = Decimal128Builder::with_capacity(rows).with_data_type(args::cost_type());
        costing::compute(&catalog, &inputs, rows, |parts| {
            out.append_option(parts.map(|p| p.total()))
        })?;
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::prelude::SessionContext;

    async fn context() -> SessionContext {
        let ctx = SessionContext::new();
        let pricing = ctx
            .sql(
                "SELECT 'openai' AS provider, 'gpt-4o' AS model,
                        CAST('2024-01-01T00:00:00Z' AS TIMESTAMP WITH TIME ZONE) AS effective_from,
                        CAST(NULL AS TIMESTAMP WITH TIME ZONE) AS effective_to,
                        'standard' AS service_tier, CAST(NULL AS VARCHAR) AS region,
                        CAST(0 AS BIGINT) AS min_prompt_tokens,
                        CAST(NULL AS TIME) AS utc_start_time, CAST(NULL AS TIME) AS utc_end_time,
                        CAST(2.5 AS DECIMAL(20, 9)) AS input_per_mtok,
                        CAST(1.25 AS DECIMAL(20, 9)) AS cached_input_per_mtok,
                        CAST(NULL AS DECIMAL(20, 9)) AS cache_write_per_mtok,
                        CAST(NULL AS DECIMAL(20, 9)) AS cache_write_1h_per_mtok,
                        CAST(10 AS DECIMAL(20, 9)) AS output_per_mtok,
                        CAST(NULL AS DECIMAL(20, 9)) AS per_request",
            )
            .await
            .expect("plan")
            .collect()
            .await
            .expect("pricing batch");
        crate::register_all_with_batches(&ctx, &pricing, &[]).expect("register");
        ctx
    }

    async fn text(ctx: &SessionContext, sql: &str) -> String {
        let batches = ctx
            .sql(sql)
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        pretty_format_batches(&batches).expect("format").to_string()
    }

    #[tokio::test]
    async fn scalar_and_array_paths_agree_and_nulls_pass_through() {
        let ctx = context().await;
        let array = text(
            &ctx,
            "SELECT token_cost('openai', model, CAST('2026-01-01T00:00:00Z' AS TIMESTAMP WITH TIME ZONE), i, o, c) AS cost
             FROM (VALUES ('gpt-4o', 1000, 200, 500), ('gpt-4o', NULL, 1, 0), ('nope', 1, 1, 0)) AS t(model, i, o, c)",
        )
        .await;
        let scalars = text(
            &ctx,
            "SELECT token_cost('openai', 'gpt-4o', '2026-01-01T00:00:00Z', 1000, 200, 500) AS cost
             UNION ALL SELECT token_cost('openai', 'gpt-4o', '2026-01-01T00:00:00Z', NULL, 1, 0)
             UNION ALL SELECT token_cost('openai', 'nope', '2026-01-01T00:00:00Z', 1, 1, 0)",
        )
        .await;
        assert!(array.contains("| 0.005125000000 |"), "{array}");
        assert_eq!(
            array.matches("|                |").count(),
            2,
            "two NULLs: {array}"
        );
        let sorted = |s: &str| {
            let mut lines: Vec<&str> = s.lines().collect();
            lines.sort_unstable();
            lines.join("\n")
        };
        assert_eq!(sorted(&array), sorted(&scalars));
    }

    #[tokio::test]
    async fn negative_tokens_are_an_error_naming_the_value() {
        let ctx = context().await;
        let err = ctx
            .sql("SELECT token_cost('openai', 'gpt-4o', '2026-01-01T00:00:00Z', 1, -3)")
            .await
            .expect("plan")
            .collect()
            .await
            .expect_err("negative");
        assert!(
            err.to_string()
                .contains("output_tokens must not be negative, got -3"),
            "{err}"
        );
    }

    async fn column(ctx: &SessionContext, sql: &str) -> Vec<String> {
        let batches = ctx
            .sql(sql)
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        let mut out = Vec::new();
        for batch in batches {
            for row in 0..batch.num_rows() {
                out.push(
                    arrow::util::display::array_value_to_string(batch.column(0), row)
                        .expect("display"),
                );
            }
        }
        out
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(16))]

            /// A column of calls gives what each call gives alone (literal arguments take the
            /// scalar path: they are folded at planning).
            #[test]
            fn scalar_and_array_paths_agree(
                rows in proptest::collection::vec(
                    (0..5_000_000i64, 0..5_000_000i64, 0..5_000_000i64),
                    1..6,
                )
            ) {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("runtime");
                let (array, scalars) = runtime.block_on(async {
                    let ctx = context().await;
                    let call = |i: &str, o: &str, c: &str| {
                        format!(
                            "CAST(token_cost('openai', 'gpt-4o', \
                             TIMESTAMPTZ '2026-01-01T00:00:00Z', {i}, {o}, {c}) AS VARCHAR)"
                        )
                    };
                    let values: Vec<String> =
                        rows.iter().map(|(i, o, c)| format!("({i}, {o}, {c})")).collect();
                    let array = column(
                        &ctx,
                        &format!(
                            "SELECT {} FROM (VALUES {}) AS t(i, o, c)",
                            call("i", "o", "c"),
                            values.join(", ")
                        ),
                    )
                    .await;
                    let mut scalars = Vec::new();
                    for (i, o, c) in &rows {
                        let (i, o, c) = (i.to_string(), o.to_string(), c.to_string());
                        scalars.extend(column(&ctx, &format!("SELECT {}", call(&i, &o, &c))).await);
                    }
                    (array, scalars)
                });
                prop_assert_eq!(array, scalars);
            }
        }
    }
}
