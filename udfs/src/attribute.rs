//! `attribute(ts, provider, api_key_id, project, model, environment, tags, team, feature,
//! customer)`: who a usage row's spend belongs to, after the attribution rules.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, StringArray, StringViewArray, StructArray, UInt32Builder, new_null_array,
};
use arrow::compute::kernels::zip::zip;
use arrow::compute::{cast, is_not_null, take};
use arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::Result;
use datafusion::common::ScalarValue;
use datafusion::functions::core::expr_fn::named_struct;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    Cast, ColumnarValue, Documentation, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, TypeSignature, Volatility, lit,
};

use crate::args;
use crate::attribution::{AttributionRules, RowKey, RulesHandle, RulesSource};
use crate::catalog::SourceHandle;

const OUTPUT: [&str; 6] = [
    "team",
    "feature",
    "customer",
    "environment",
    "cost_center",
    "rule_id",
];

fn fields() -> Fields {
    OUTPUT
        .iter()
        .map(|name| Field::new(*name, DataType::Utf8View, true))
        .collect()
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AttributeFunc {
    signature: Signature,
    rules: RulesHandle,
}

impl AttributeFunc {
    pub fn new(rules: Arc<dyn RulesSource>) -> Self {
        AttributeFunc {
            signature: Signature::new(TypeSignature::Any(10), Volatility::Stable),
            rules: SourceHandle(rules),
        }
    }
}

impl AttributeFunc {
    /// The call with the pure match columns (provider, api_key_id, project, model, tags)
    /// that no rule sets replaced by NULL; environment stays, being an output too.
    fn without_unused_match_columns(
        &self,
        mut args: Vec<Expr>,
        rules: &AttributionRules,
    ) -> ExprSimplifyResult {
        let [provider, api_key_id, project, model, _environment, tags] = rules.match_columns_used();
        let mut changed = false;
        for (index, used) in [
            (1, provider),
            (2, api_key_id),
            (3, project),
            (4, model),
            (6, tags),
        ] {
            if !used && !matches!(args[index], Expr::Literal(..)) {
                args[index] = lit(ScalarValue::Utf8(None));
                changed = true;
            }
        }
        if !changed {
            return ExprSimplifyResult::Original(args);
        }
        let same = AttributeFunc {
            signature: self.signature.clone(),
            rules: SourceHandle(Arc::clone(&self.rules.0)),
        };
        ExprSimplifyResult::Simplified(Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(ScalarUDF::new_from_impl(same)),
            args,
        )))
    }
}

static DOC: std::sync::LazyLock<Documentation> = std::sync::LazyLock::new(|| {
    Documentation::builder(
        crate::DOC_SECTION,
        "Who a usage row's spend belongs to, as STRUCT<team, feature, customer, environment, \
         cost_center, rule_id>. Values tagged at the source win; for the others the first \
         attribution rule that matches decides (by priority, lower first, then rule_id): every \
         match column it sets must equal the row's value (NULL matches anything; model_pattern \
         is a LIKE on the model as reported; tag_key / tag_value look in the JSON tags), and \
         ts must be in [valid_from, valid_to). The rule's NULL assignments leave the value as \
         it is. rule_id names the deciding rule, NULL when none matched.",
        "attribute(ts, provider, api_key_id, project, model, environment, tags, team, feature, customer)",
    )
    .with_argument("ts", "Time of the call.")
    .with_argument("provider", "Provider id.")
    .with_argument("api_key_id", "API key, or NULL.")
    .with_argument("project", "Project, or NULL.")
    .with_argument("model", "Model name as reported.")
    .with_argument("environment", "Environment tagged at the source, or NULL.")
    .with_argument("tags", "JSON object of further labels, or NULL.")
    .with_argument("team", "Team tagged at the source, or NULL.")
    .with_argument("feature", "Feature tagged at the source, or NULL.")
    .with_argument("customer", "Customer tagged at the source, or NULL.")
    .build()
});

/// A value tagged at the source wins over the rule's.
fn source_wins(
    source: StringViewArray,
    by_rule: impl FnOnce() -> Result<ArrayRef>,
) -> Result<ArrayRef> {
    if source.null_count() == 0 {
        return Ok(Arc::new(source));
    }
    if source.null_count() == source.len() {
        return by_rule();
    }
    let tagged = is_not_null(&source)?;
    Ok(zip(&tagged, &source, &by_rule()?)?)
}

fn opt(array: &StringViewArray, i: usize) -> Option<&str> {
    array.is_valid(i).then(|| array.value(i))
}

impl ScalarUDFImpl for AttributeFunc {
    fn name(&self) -> &str {
        "attribute"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(fields()))
    }

    /// Without rules the result is the source values as they are: saying so as a
    /// `named_struct` lets DataFusion resolve `attribute(...)['team']` to the `team` column,
    /// so a query reads only the columns it uses instead of all ten arguments. With rules, a
    /// match column no rule sets becomes NULL (the key leaves it out anyway), so it is not
    /// read either. The rules are read when the statement is optimised, as
    /// `invoke_with_args` reads them when it runs.
    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        if args.len() != 10 {
            return Ok(ExprSimplifyResult::Original(args));
        }
        let rules = self.rules.current()?;
        if !rules.is_empty() {
            return Ok(self.without_unused_match_columns(args, &rules));
        }
        let mut as_text = Vec::with_capacity(4);
        for index in [7, 8, 9, 5] {
            let arg = args[index].clone();
            match info.get_data_type(&arg) {
                Ok(DataType::Utf8View) => as_text.push(arg),
                Ok(_) => as_text.push(Expr::Cast(Cast::new(Box::new(arg), DataType::Utf8View))),
                Err(_) => return Ok(ExprSimplifyResult::Original(args)),
            }
        }
        let none = || lit(ScalarValue::Utf8View(None));
        let values = as_text.into_iter().chain([none(), none()]);
        let pairs = OUTPUT
            .iter()
            .zip(values)
            .flat_map(|(name, value)| [lit(*name), value])
            .collect();
        Ok(ExprSimplifyResult::Simplified(named_struct(pairs)))
    }

    fn invoke_with_args(&self, call: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = call.number_rows;
        let a = &call.args;
        let ts = args::timestamp(&a[0], rows, "ts")?;
        let [
            provider,
            api_key_id,
            project,
            model,
            environment,
            tags,
            team,
            feature,
            customer,
        ] = [
            (1, "provider"),
            (2, "api_key_id"),
            (3, "project"),
            (4, "model"),
            (5, "environment"),
            (6, "tags"),
            (7, "team"),
            (8, "feature"),
            (9, "customer"),
        ]
        .map(|(i, name)| args::text_view(&a[i], rows, name));
        let (team, feature, customer, environment) = (team?, feature?, customer?, environment?);
        let rules = self.rules.current()?;
        if rules.is_empty() {
            // Nothing to apply: the source values as they are.
            let columns: Vec<ArrayRef> = vec![
                Arc::new(team),
                Arc::new(feature),
                Arc::new(customer),
                Arc::new(environment),
                new_null_array(&DataType::Utf8View, rows),
                new_null_array(&DataType::Utf8View, rows),
            ];
            let array = StructArray::try_new(fields(), columns, None)?;
            return Ok(ColumnarValue::Array(Arc::new(array)));
        }
        let (provider, api_key_id, project, model, tags) =
            (provider?, api_key_id?, project?, model?, tags?);
        // Per row only the deciding rule's index; the output columns are then gathered from
        // the rules' assignment columns in one pass each.
        let mut memo: HashMap<RowKey<'_>, Arc<[u32]>, foldhash::fast::FixedState> =
            HashMap::default();
        let mut decided = UInt32Builder::with_capacity(rows);
        // Neighbouring rows often share a key: compare before hashing.
        let mut previous: Option<(RowKey<'_>, Arc<[u32]>)> = None;
        for i in 0..rows {
            if ts.is_null(i) {
                decided.append_null();
                continue;
            }
            let key = rules.key(RowKey {
                provider: opt(&provider, i),
                api_key_id: opt(&api_key_id, i),
                project: opt(&project, i),
                model: opt(&model, i),
                environment: opt(&environment, i),
                tags: opt(&tags, i),
            });
            let candidates = match &previous {
                Some((last, candidates)) if *last == key => Arc::clone(candidates),
                _ => {
                    let candidates = Arc::clone(
                        memo.entry(key)
                            .or_insert_with(|| rules.cached_candidates(&key)),
                    );
                    previous = Some((key, Arc::clone(&candidates)));
                    candidates
                }
            };
            let at = ts.value(i);
            let rule = candidates
                .iter()
                .find(|index| rules.rule(**index).valid_at(at))
                .copied();
            decided.append_option(rule);
        }
        let decided = decided.finish();
        let [
            team_rule,
            feature_rule,
            customer_rule,
            environment_rule,
            cost_center,
            rule_id,
        ] = rules.assignments();
        // Columns no rule assigns, and rows tagged at the source, need no gathering.
        let gather = |values: &StringArray| -> Result<ArrayRef> {
            if values.null_count() == values.len() {
                return Ok(new_null_array(&DataType::Utf8View, rows));
            }
            Ok(cast(&take(values, &decided, None)?, &DataType::Utf8View)?)
        };
        let columns: Vec<ArrayRef> = vec![
            source_wins(team, || gather(team_rule))?,
            source_wins(feature, || gather(feature_rule))?,
            source_wins(customer, || gather(customer_rule))?,
            source_wins(environment, || gather(environment_rule))?,
            gather(cost_center)?,
            gather(rule_id)?,
        ];
        let array = StructArray::try_new(fields(), columns, None)?;
        Ok(ColumnarValue::Array(Arc::new(array)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::{AttributionRules, Rule, StaticRules};
    use arrow::array::AsArray;
    use datafusion::prelude::SessionContext;

    async fn run(rules: Vec<Rule>, sql: &str) -> Vec<Vec<Option<String>>> {
        let ctx = SessionContext::new();
        let source: Arc<dyn RulesSource> =
            Arc::new(StaticRules(Arc::new(AttributionRules::new(rules))));
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
            AttributeFunc::new(source),
        ));
        let batches = ctx
            .sql(sql)
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        let mut out = Vec::new();
        for batch in batches {
            let s = batch.column(0).as_struct();
            for row in 0..batch.num_rows() {
                out.push(
                    (0..OUTPUT.len())
                        .map(|c| {
                            let col = s.column(c).as_string_view();
                            col.is_valid(row).then(|| col.value(row).to_string())
                        })
                        .collect(),
                );
            }
        }
        out
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    const ROWS: &str = "SELECT attribute(ts, provider, key, NULL, model, env, tags, team, NULL, NULL) FROM \
        (VALUES (TIMESTAMP '2026-01-05T00:00:00Z', 'openai', 'k1', 'gpt-4o', 'prod', NULL, NULL), \
                (TIMESTAMP '2026-02-05T00:00:00Z', 'openai', 'k1', 'gpt-4o', 'prod', NULL, 'search'), \
                (TIMESTAMP '2026-01-05T00:00:00Z', 'openai', 'k2', 'gpt-4o', NULL, '{\"surface\":\"help\"}', NULL), \
                (NULL, 'openai', 'k1', 'gpt-4o', 'prod', NULL, NULL)) \
        AS u(ts, provider, key, model, env, tags, team)";

    #[tokio::test]
    async fn first_rule_by_priority_decides_and_source_values_win() {
        let rules = vec![
            Rule {
                rule_id: "k1-jan".into(),
                priority: 1,
                api_key_id: Some("k1".into()),
                team: Some("ads".into()),
                cost_center: Some("cc-ads".into()),
                valid_to: Some(1_769_904_000_000_000), // 2026-02-01
                ..Rule::default()
            },
            Rule {
                rule_id: "k1-later".into(),
                priority: 2,
                api_key_id: Some("k1".into()),
                team: Some("growth".into()),
                feature: Some("digest".into()),
                ..Rule::default()
            },
            Rule {
                rule_id: "help-tag".into(),
                priority: 3,
                tag_key: Some("surface".into()),
                tag_value: Some("help".into()),
                team: Some("support".into()),
                assign_environment: Some("prod".into()),
                ..Rule::default()
            },
        ];
        let rows = run(rules, ROWS).await;
        assert_eq!(
            rows,
            vec![
                vec![s("ads"), None, None, s("prod"), s("cc-ads"), s("k1-jan")],
                // After the first rule's validity the next one decides; a tagged team wins.
                vec![
                    s("search"),
                    s("digest"),
                    None,
                    s("prod"),
                    None,
                    s("k1-later")
                ],
                vec![s("support"), None, None, s("prod"), None, s("help-tag")],
                // No time, no rule.
                vec![None, None, None, s("prod"), None, None],
            ]
        );
    }

    #[tokio::test]
    async fn without_rules_the_source_values_pass_through() {
        let rows = run(vec![], ROWS).await;
        assert_eq!(
            rows[1],
            vec![s("search"), None, None, s("prod"), None, None]
        );
        assert_eq!(rows[2], vec![None, None, None, None, None, None]);
        assert_eq!(rows.len(), 4);
    }

    /// The physical plan of reading `team` from `attribute(...)`, and its answer.
    async fn team_plan_and_values(rules: Vec<Rule>) -> (String, Vec<Option<String>>) {
        let ctx = SessionContext::new();
        let source: Arc<dyn RulesSource> =
            Arc::new(StaticRules(Arc::new(AttributionRules::new(rules))));
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
            AttributeFunc::new(source),
        ));
        let sql = format!("SELECT a['team'] AS team FROM ({ROWS}) AS t(a)");
        let df = ctx.sql(&sql).await.expect("plan");
        let plan = df
            .clone()
            .create_physical_plan()
            .await
            .expect("physical plan");
        let plan = datafusion::physical_plan::displayable(plan.as_ref())
            .indent(true)
            .to_string();
        let batches = df.collect().await.expect("run");
        let values = batches
            .iter()
            .flat_map(|b| {
                let col = b.column(0).as_string_view();
                (0..b.num_rows())
                    .map(|i| col.is_valid(i).then(|| col.value(i).to_string()))
                    .collect::<Vec<_>>()
            })
            .collect();
        (plan, values)
    }

    #[tokio::test]
    async fn without_rules_a_field_read_is_the_source_column_and_nothing_is_called() {
        let (plan, values) = team_plan_and_values(vec![]).await;
        assert!(!plan.contains("attribute("), "{plan}");
        assert_eq!(values, vec![None, s("search"), None, None]);
        let rule = Rule {
            rule_id: "k1".into(),
            priority: 1,
            api_key_id: Some("k1".into()),
            team: Some("ads".into()),
            ..Rule::default()
        };
        let (plan, values) = team_plan_and_values(vec![rule]).await;
        // The rule matches on api_key_id only: provider, model and tags are not read.
        let call = plan
            .split("attribute(")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .unwrap_or_else(|| panic!("attribute is called: {plan}"));
        let args: Vec<&str> = call.split(", ").collect();
        assert_eq!(args.len(), 10, "{call}");
        assert_ne!(args[2], "NULL", "api_key_id is read: {call}");
        for unused in [1, 4, 6] {
            assert_eq!(args[unused], "NULL", "argument {unused} of {call}");
        }
        assert_eq!(values, vec![s("ads"), s("search"), None, None]);
    }
}
