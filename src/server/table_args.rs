//! Parameters in table-function arguments: `SELECT * FROM budget_check($1, $2, $3)`.
//!
//! DataFusion calls a table function while it plans, with the arguments as expressions; a
//! `$n` there has no value yet, and binding later replaces parameters only in the plan's own
//! expressions, which a function's table does not expose. So when a statement runs with
//! bound values, the values of the `$n` inside table-function arguments are written into the
//! statement as literals before it is planned; at Describe those parameters are reported
//! (as text unless the client declared a type), so drivers that prepare server-side —
//! pgJDBC, psycopg 3, node-postgres with values — can call the function like any query.

use std::ops::ControlFlow;

use datafusion::common::ScalarValue;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, TableFactor, Value, ValueWithSpan, Visit, VisitMut,
    Visitor, VisitorMut,
};

/// The argument expressions of every table function in `factor`.
fn table_args(factor: &TableFactor) -> impl Iterator<Item = &Expr> {
    let args = match factor {
        TableFactor::Table {
            args: Some(args), ..
        } => args.args.as_slice(),
        _ => &[],
    };
    args.iter().filter_map(|arg| match arg {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e))
        | FunctionArg::Named {
            arg: FunctionArgExpr::Expr(e),
            ..
        }
        | FunctionArg::ExprNamed {
            arg: FunctionArgExpr::Expr(e),
            ..
        } => Some(e),
        _ => None,
    })
}

fn placeholder_index(value: &Value) -> Option<usize> {
    match value {
        Value::Placeholder(name) => name.strip_prefix('$')?.parse().ok(),
        _ => None,
    }
}

/// Collects the `$n` used inside table-function arguments.
struct Collect(Vec<usize>);

impl Visitor for Collect {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        for arg in table_args(factor) {
            let _ = Visit::visit(arg, &mut Values(&mut self.0));
        }
        ControlFlow::Continue(())
    }
}

struct Values<'a>(&'a mut Vec<usize>);

impl Visitor for Values<'_> {
    type Break = ();

    fn pre_visit_value(&mut self, value: &ValueWithSpan) -> ControlFlow<()> {
        self.0.extend(placeholder_index(&value.value));
        ControlFlow::Continue(())
    }
}

/// The parameter numbers (`$n` → n) used in table-function arguments of `statement`.
pub fn table_arg_params(statement: &DFStatement) -> Vec<usize> {
    let mut collect = Collect(Vec::new());
    if let DFStatement::Statement(inner) = statement {
        let _ = Visit::visit(inner.as_ref(), &mut collect);
    }
    collect.0
}

/// Replaces `$n` inside table-function arguments with literals.
struct Bind<'a> {
    values: &'a [ScalarValue],
    missing: Option<usize>,
}

impl VisitorMut for Bind<'_> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            args: Some(args), ..
        } = factor
        {
            for arg in &mut args.args {
                if let FunctionArg::Unnamed(FunctionArgExpr::Expr(e))
                | FunctionArg::Named {
                    arg: FunctionArgExpr::Expr(e),
                    ..
                }
                | FunctionArg::ExprNamed {
                    arg: FunctionArgExpr::Expr(e),
                    ..
                } = arg
                {
                    let _ = VisitMut::visit(e, &mut BindValues(self));
                }
            }
        }
        ControlFlow::Continue(())
    }
}

struct BindValues<'a, 'b>(&'a mut Bind<'b>);

impl VisitorMut for BindValues<'_, '_> {
    type Break = ();

    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
        if let Some(n) = placeholder_index(&value.value) {
            match n
                .checked_sub(1)
                .and_then(|i| self.0.values.get(i))
                .and_then(literal)
            {
                Some(bound) => value.value = bound,
                None => self.0.missing = Some(n),
            }
        }
        ControlFlow::Continue(())
    }
}

/// A bound value as a literal the planner reads back as the same value, or `None` for a
/// type table functions do not take. Decimals become text, which keeps every digit (a
/// number literal would be read as a float).
fn literal(value: &ScalarValue) -> Option<Value> {
    if value.is_null() {
        return Some(Value::Null);
    }
    Some(match value {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Value::SingleQuotedString(s.clone()),
        ScalarValue::Boolean(Some(b)) => Value::Boolean(*b),
        ScalarValue::Int8(_)
        | ScalarValue::Int16(_)
        | ScalarValue::Int32(_)
        | ScalarValue::Int64(_)
        | ScalarValue::UInt8(_)
        | ScalarValue::UInt16(_)
        | ScalarValue::UInt32(_)
        | ScalarValue::UInt64(_) => Value::Number(value.to_string(), false),
        ScalarValue::Float32(Some(f)) if f.is_finite() => Value::Number(value.to_string(), false),
        ScalarValue::Float64(Some(f)) if f.is_finite() => Value::Number(value.to_string(), false),
        ScalarValue::Decimal128(..) => Value::SingleQuotedString(value.to_string()),
        _ => return None,
    })
}

/// `statement` with the table-function parameters replaced by `values`, or `None` when it
/// has none. Errs naming a parameter that has no value, or one of a type (timestamp, bytes,
/// ...) no table function takes.
pub fn bind_table_args(
    statement: &DFStatement,
    values: &[ScalarValue],
) -> Result<Option<DFStatement>, usize> {
    if table_arg_params(statement).is_empty() {
        return Ok(None);
    }
    let mut bound = statement.clone();
    let mut bind = Bind {
        values,
        missing: None,
    };
    if let DFStatement::Statement(inner) = &mut bound {
        let _ = VisitMut::visit(inner.as_mut(), &mut bind);
    }
    match bind.missing {
        Some(n) => Err(n),
        None => Ok(Some(bound)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::parser::DFParser;

    fn parse(sql: &str) -> DFStatement {
        DFParser::parse_sql(sql).unwrap().pop_front().unwrap()
    }

    #[test]
    fn parameters_in_table_function_arguments_are_found_and_bound() {
        let statement = parse(
            "SELECT decision FROM budget_check($1, $2, CAST($3 AS NUMERIC)) WHERE decision <> $4",
        );
        assert_eq!(table_arg_params(&statement), [1, 2, 3]);
        let values = [
            ScalarValue::Utf8(Some("team".into())),
            ScalarValue::Utf8(Some("o'brien".into())),
            ScalarValue::Float64(Some(0.25)),
            ScalarValue::Utf8(Some("allow".into())),
        ];
        let bound = bind_table_args(&statement, &values).unwrap().unwrap();
        let text = bound.to_string();
        assert!(
            text.contains("budget_check('team', 'o''brien', CAST(0.25 AS NUMERIC))"),
            "{text}"
        );
        assert!(
            text.contains("decision <> $4"),
            "only table arguments: {text}"
        );
        assert_eq!(bind_table_args(&statement, &values[..2]), Err(3));
        // Decimals keep every digit; types no table function takes are refused.
        let exact = [
            values[0].clone(),
            values[1].clone(),
            ScalarValue::Decimal128(Some(12_345_678_901_234_567_890), 38, 12),
        ];
        let bound = bind_table_args(&statement, &exact).unwrap().unwrap();
        assert!(
            bound
                .to_string()
                .contains("CAST('12345678.901234567890' AS NUMERIC)"),
            "{bound}"
        );
        let when = [
            values[0].clone(),
            values[1].clone(),
            ScalarValue::TimestampMicrosecond(Some(0), None),
        ];
        assert_eq!(bind_table_args(&statement, &when), Err(3));
    }

    #[test]
    fn statements_without_table_function_parameters_are_left_alone() {
        let statement = parse("SELECT * FROM budget_check('team', 'x') WHERE decision = $1");
        assert!(table_arg_params(&statement).is_empty());
        assert_eq!(bind_table_args(&statement, &[ScalarValue::Null]), Ok(None));
    }
}
