//! `budget_check(scope, scope_value [, estimated_cost])`: the decision an LLM gateway asks
//! for before it forwards a request — allow, warn or block — with the budget that decided
//! and what remains of it.
//!
//! It reads the shared [`BudgetBook`](super::status::BudgetBook), not `usage`, so a check
//! costs a lookup: the server's monitor re-evaluates budgets after every commit. The
//! `as_of` column says when the spend it reports was computed.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, Decimal128Array, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue, plan_err};
use datafusion::datasource::TableProvider;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;

use super::status::{BudgetState, Evaluation, MONEY_SCALE};
use crate::engine::Engine;
use crate::function_table::FunctionTable;
use crate::schema;

/// The name the function is registered under.
pub const NAME: &str = "budget_check";
/// Its arguments and description, as `\df` and `obj_description` show them.
pub const ARGUMENTS: &str = "scope text, scope_value text [, estimated_cost numeric]";
pub const DESCRIPTION: &str = "Allow, warn or block a request of estimated_cost USD under the \
     budgets of scope = scope_value and the global ones, with the deciding budget and what \
     remains of it.";

/// The columns a check returns.
pub fn result_schema() -> SchemaRef {
    Arc::clone(&RESULT_SCHEMA)
}

/// Budget scopes (SPEC §3 `budgets.scope`).
const SCOPES: &[&str] = &[
    "global",
    "team",
    "feature",
    "customer",
    "environment",
    "provider",
    "model",
    "api_key",
    "project",
    "cost_center",
];

static RESULT_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("decision", DataType::Utf8, false),
        Field::new("budget_id", DataType::Utf8, true),
        Field::new("budget_name", DataType::Utf8, true),
        Field::new("scope", DataType::Utf8, true),
        Field::new("scope_value", DataType::Utf8, true),
        Field::new("period", DataType::Utf8, true),
        Field::new("amount", schema::MONEY, true),
        Field::new("spend", schema::MONEY, true),
        Field::new("estimated_cost", schema::MONEY, false),
        Field::new("remaining", schema::MONEY, true),
        Field::new("pct_used", DataType::Float64, true),
        Field::new("enforcement", DataType::Utf8, true),
        Field::new("period_end", schema::timestamptz(), true),
        Field::new("as_of", schema::timestamptz(), false),
    ]))
});

/// The table function. Holds the engine whose budgets it reads.
#[derive(Debug)]
pub struct BudgetCheck {
    engine: Engine,
}

impl BudgetCheck {
    pub fn new(engine: Engine) -> Self {
        BudgetCheck { engine }
    }
}

impl TableFunctionImpl for BudgetCheck {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        if args.exprs().iter().any(is_parameter) {
            // A prepared statement being described: the server binds the values into the
            // statement before it runs (server::table_args), so this table never executes.
            let run = CheckRun {
                engine: self.engine.clone(),
                request: None,
            };
            let table = BudgetCheckTable::new(Arc::clone(&RESULT_SCHEMA), Arc::new(run))?;
            return Ok(Arc::new(table));
        }
        let (scope, value, estimate) = match args.exprs() {
            [scope, value] => (scope, value, None),
            [scope, value, estimate] => (scope, value, Some(estimate)),
            _ => {
                return plan_err!(
                    "{NAME} takes (scope, scope_value) or (scope, scope_value, estimated_cost)"
                );
            }
        };
        let Some(scope) = text(scope)? else {
            return invalid("the scope must not be NULL".into());
        };
        let scope = scope.to_ascii_lowercase();
        if !SCOPES.contains(&scope.as_str()) {
            return invalid(format!(
                "unknown scope '{scope}' (one of {})",
                SCOPES.join(", ")
            ));
        }
        let value = text(value)?;
        let estimate = match estimate {
            None => 0,
            Some(expr) => money(expr)?,
        };
        if estimate < 0 {
            return invalid("estimated_cost must not be negative".into());
        }
        let run = CheckRun {
            engine: self.engine.clone(),
            request: Some(Request {
                scope,
                value,
                estimate,
            }),
        };
        let table = BudgetCheckTable::new(Arc::clone(&RESULT_SCHEMA), Arc::new(run))?;
        Ok(Arc::new(table))
    }
}

/// Marks the table a `budget_check(...)` call scans, so privilege checks can tell it apart
/// (it reports spend across teams).
#[derive(Debug)]
pub enum BudgetCheckCall {}

/// The table a `budget_check(...)` call scans.
pub type BudgetCheckTable = FunctionTable<BudgetCheckCall>;

fn is_parameter(expr: &Expr) -> bool {
    match expr {
        Expr::Placeholder(_) => true,
        Expr::Cast(cast) => is_parameter(&cast.expr),
        _ => false,
    }
}

fn invalid<T>(reason: String) -> DfResult<T> {
    // 22023 over the wire, like other bad arguments.
    Err(DataFusionError::External(Box::new(crate::Error::Invalid(
        format!("{NAME}: {reason}"),
    ))))
}

fn text(expr: &Expr) -> DfResult<Option<String>> {
    match expr {
        Expr::Literal(value, _) if value.is_null() => Ok(None),
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
            _,
        ) => Ok(Some(s.clone())),
        Expr::Cast(cast) => text(&cast.expr),
        _ => plan_err!("{NAME}: scope and scope_value must be text literals"),
    }
}

/// A numeric literal as USD at scale 12, exactly.
fn money(expr: &Expr) -> DfResult<i128> {
    let digits = match expr {
        Expr::Literal(value, _) if value.is_null() => return Ok(0),
        Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)), _) => s.clone(),
        Expr::Literal(
            value @ (ScalarValue::Int64(_)
            | ScalarValue::Int32(_)
            | ScalarValue::Float64(_)
            | ScalarValue::Decimal128(..)),
            _,
        ) => value.to_string(),
        Expr::Cast(cast) => return money(&cast.expr),
        _ => return plan_err!("{NAME}: estimated_cost must be a numeric literal"),
    };
    let parsed = digits
        .trim()
        .parse::<rust_decimal::Decimal>()
        .or_else(|_| rust_decimal::Decimal::from_scientific(digits.trim()));
    let Ok(mut decimal) = parsed else {
        return invalid(format!("estimated_cost '{digits}' is not a number"));
    };
    decimal.rescale(MONEY_SCALE);
    if decimal.scale() != MONEY_SCALE {
        return invalid(format!("estimated_cost '{digits}' is out of range"));
    }
    Ok(decimal.mantissa())
}

/// What the caller asked.
#[derive(Debug, Clone)]
struct Request {
    scope: String,
    value: Option<String>,
    /// USD at scale 12.
    estimate: i128,
}

/// allow < warn < block
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Decision {
    Allow,
    Warn,
    Block,
}

impl Decision {
    fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Warn => "warn",
            Decision::Block => "block",
        }
    }
}

/// Does `budget` govern requests in (scope, value)? Global budgets govern everything.
fn applies(budget: &BudgetState, request: &Request) -> bool {
    budget.scope == "global"
        || (budget.scope == request.scope
            && request.value.is_some()
            && budget.scope_value == request.value)
}

/// One budget's decision for a request of `estimate`.
///
/// Reaching the amount counts as exhausted, as `budget_status` calls it `exceeded`; a
/// zero amount is exhausted by any spend.
fn decide(budget: &BudgetState, estimate: i128) -> Decision {
    let after = budget.spend.saturating_add(estimate);
    let exhausted = if budget.amount > 0 {
        after >= budget.amount
    } else {
        after > 0
    };
    if exhausted {
        return if budget.enforcement.eq_ignore_ascii_case("block") {
            Decision::Block
        } else {
            Decision::Warn
        };
    }
    if budget.amount <= 0 {
        return Decision::Allow;
    }
    // Warn from the highest threshold below 100%.
    let warn_at = budget
        .threshold_fractions()
        .unwrap_or_default()
        .into_iter()
        .filter(|t| *t < 1.0)
        .fold(None, |acc: Option<f64>, t| {
            Some(acc.map_or(t, |a| a.max(t)))
        });
    match warn_at {
        Some(t) if (after as f64) >= t * budget.amount as f64 => Decision::Warn,
        _ => Decision::Allow,
    }
}

/// The deciding budget: the most severe decision, then the least remaining.
fn choose<'a>(
    evaluation: &'a Evaluation,
    request: &Request,
) -> Option<(&'a BudgetState, Decision)> {
    evaluation
        .states
        .iter()
        .filter(|b| applies(b, request))
        .map(|b| (b, decide(b, request.estimate)))
        .max_by(|(a, da), (b, db)| {
            let remaining = |s: &BudgetState| s.amount - s.spend;
            da.cmp(db)
                .then_with(|| remaining(b).cmp(&remaining(a)))
                .then_with(|| b.budget_id.cmp(&a.budget_id))
        })
}

fn result_batch(evaluation: &Evaluation, request: &Request) -> DfResult<RecordBatch> {
    let chosen = choose(evaluation, request);
    let decision = chosen.map_or(Decision::Allow, |(_, d)| d);
    let budget = chosen.map(|(b, _)| b);
    let text = |value: Option<String>| -> ArrayRef { Arc::new(StringArray::from(vec![value])) };
    let money = |value: Option<i128>| -> DfResult<ArrayRef> {
        Ok(Arc::new(
            Decimal128Array::from(vec![value]).with_data_type(schema::MONEY),
        ))
    };
    let micros = |value: Option<i64>| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(vec![value]).with_timezone("+00:00"))
    };
    let after = budget.map(|b| b.spend.saturating_add(request.estimate));
    let pct =
        budget.and_then(|b| (b.amount > 0).then(|| after.unwrap_or(0) as f64 / b.amount as f64));
    let columns = vec![
        text(Some(decision.as_str().to_string())),
        text(budget.map(|b| b.budget_id.clone())),
        text(budget.and_then(|b| b.name.clone())),
        text(budget.map(|b| b.scope.clone())),
        text(budget.and_then(|b| b.scope_value.clone())),
        text(budget.map(|b| b.period.clone())),
        money(budget.map(|b| b.amount))?,
        money(budget.map(|b| b.spend))?,
        money(Some(request.estimate))?,
        money(budget.map(|b| b.amount - after.unwrap_or(0)))?,
        Arc::new(Float64Array::from(vec![pct])),
        text(budget.map(|b| b.enforcement.clone())),
        micros(budget.map(|b| b.period_end * 1_000_000)),
        micros(Some(evaluation.at.timestamp_micros())),
    ];
    Ok(RecordBatch::try_new(Arc::clone(&RESULT_SCHEMA), columns)?)
}

/// One execution of a check.
#[derive(Debug)]
struct CheckRun {
    engine: Engine,
    /// `None` while a prepared statement's parameters are unbound.
    request: Option<Request>,
}

impl PartitionStream for CheckRun {
    fn schema(&self) -> &SchemaRef {
        &RESULT_SCHEMA
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let engine = self.engine.clone();
        let request = self.request.clone();
        let check = async move {
            let Some(request) = request else {
                return invalid("its arguments are unbound parameters".into());
            };
            let evaluation = engine
                .budgets()
                .current(&engine)
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            result_batch(&evaluation, &request)
        };
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&RESULT_SCHEMA),
            futures::stream::once(check),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    const USD: i128 = 1_000_000_000_000;

    fn budget(
        id: &str,
        scope: &str,
        value: Option<&str>,
        amount: i128,
        spend: i128,
    ) -> BudgetState {
        BudgetState {
            budget_id: id.into(),
            name: None,
            scope: scope.into(),
            scope_value: value.map(str::to_string),
            period: "month".into(),
            period_start: 0,
            period_end: 86_400,
            amount: amount * USD,
            spend: spend * USD,
            projected: None,
            thresholds: "0.5,0.8,1.0".into(),
            enforcement: "block".into(),
            notify: None,
        }
    }

    fn request(scope: &str, value: &str, estimate_usd: i128) -> Request {
        Request {
            scope: scope.into(),
            value: Some(value.into()),
            estimate: estimate_usd * USD,
        }
    }

    fn evaluation(states: Vec<BudgetState>) -> Evaluation {
        Evaluation {
            at: Utc::now(),
            states,
        }
    }

    #[test]
    fn decisions_follow_thresholds_and_enforcement() {
        let b = budget("s", "team", Some("search"), 100, 70);
        assert_eq!(decide(&b, 0), Decision::Allow);
        assert_eq!(decide(&b, 10 * USD), Decision::Warn);
        assert_eq!(decide(&b, 30 * USD), Decision::Block);
        let alert_only = BudgetState {
            enforcement: "alert".into(),
            ..b
        };
        assert_eq!(decide(&alert_only, 30 * USD), Decision::Warn);
    }

    #[test]
    fn reaching_the_amount_exhausts_and_zero_budgets_block_any_spend() {
        let b = budget("s", "team", Some("search"), 100, 95);
        assert_eq!(decide(&b, 5 * USD), Decision::Block);
        let zero = budget("z", "team", Some("search"), 0, 0);
        assert_eq!(decide(&zero, 0), Decision::Allow);
        assert_eq!(decide(&zero, 1), Decision::Block);
        let shouting = BudgetState {
            enforcement: "BLOCK".into(),
            ..budget("s", "team", Some("search"), 10, 10)
        };
        assert_eq!(decide(&shouting, 0), Decision::Block);
    }

    #[test]
    fn the_most_severe_budget_decides_and_other_scopes_do_not_count() {
        let states = evaluation(vec![
            budget("global", "global", None, 1000, 100),
            budget("search", "team", Some("search"), 100, 99),
            budget("ads", "team", Some("ads"), 10, 10),
        ]);
        let (chosen, decision) = choose(&states, &request("team", "search", 2)).unwrap();
        assert_eq!(
            (chosen.budget_id.as_str(), decision),
            ("search", Decision::Block)
        );
        let (chosen, decision) = choose(&states, &request("team", "infra", 2)).unwrap();
        assert_eq!(
            (chosen.budget_id.as_str(), decision),
            ("global", Decision::Allow)
        );
        assert!(choose(&evaluation(vec![]), &request("team", "x", 1)).is_none());
    }

    #[test]
    fn the_result_row_reports_remaining_exactly() {
        let states = evaluation(vec![budget("s", "team", Some("search"), 100, 70)]);
        let batch = result_batch(&states, &request("team", "search", 5)).unwrap();
        let remaining = batch
            .column(9)
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .unwrap();
        assert_eq!(remaining.value(0), 25 * USD);
        let none = result_batch(&states, &request("team", "other", 5)).unwrap();
        let decision = none
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(decision.value(0), "allow");
        assert!(none.column(1).is_null(0));
    }

    #[test]
    fn estimates_parse_exactly_from_literals() {
        let lit = |v: ScalarValue| Expr::Literal(v, None);
        assert_eq!(money(&lit(ScalarValue::Int64(Some(3)))).unwrap(), 3 * USD);
        assert_eq!(
            money(&lit(ScalarValue::Utf8(Some("0.000001".into())))).unwrap(),
            1_000_000
        );
        assert_eq!(
            money(&lit(ScalarValue::Decimal128(Some(125), 10, 2))).unwrap(),
            USD + USD / 4
        );
        assert!(money(&lit(ScalarValue::Utf8(Some("lots".into())))).is_err());
    }
}
