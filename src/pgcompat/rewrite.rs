//! PostgreSQL-only syntax rewritten into what DataFusion plans, on the parsed statement:
//!
//! - `pg_catalog.f(...)` → `f(...)` (DataFusion has no function schemas);
//! - `a OPERATOR(pg_catalog.~) b` → `a ~ b` (psql's `\d NAME`);
//! - `expr COLLATE name` → `expr` (one collation: byte order);
//! - `'name'::regclass` → the relation's id; `x::regclass` → `to_regclass(x)`; `x::oid` →
//!   `x` as BIGINT;
//!   `x::regtype` → `format_type(x, NULL)`; `pg_catalog.text` and friends → DataFusion types;
//! - unqualified `pg_class`, `pg_type`, ... → `pg_catalog.pg_class` (on PostgreSQL's search
//!   path implicitly).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    ArrayElemTypeDef, BinaryOperator, CastKind, DataType, ExcludeSelectItem, Expr, Function,
    FunctionArgumentList, FunctionArguments, GroupByExpr, Ident, JoinOperator, ObjectName,
    ObjectNamePart, Query, Select, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, Statement,
    TableFactor, Value, ValueWithSpan, VisitMut, VisitorMut, visit_expressions_mut,
    visit_relations_mut,
};

use super::PG_CATALOG;

/// Rewrite one statement in place.
pub fn rewrite(statement: &mut Statement) {
    let _ = visit_relations_mut(statement, |name: &mut ObjectName| {
        if let [ObjectNamePart::Identifier(table)] = name.0.as_slice()
            && table.quote_style.is_none()
            && is_catalog_table(&table.value)
        {
            name.0
                .insert(0, ObjectNamePart::Identifier(Ident::new(PG_CATALOG)));
        }
        ControlFlow::<()>::Continue(())
    });
    let _ = VisitMut::visit(statement, &mut EmptyCatalogSelects);
    let _ = VisitMut::visit(statement, &mut ColumnNames);
    let _ = visit_expressions_mut(statement, |expr: &mut Expr| {
        rewrite_expr(expr);
        ControlFlow::<()>::Continue(())
    });
}

fn is_catalog_table(name: &str) -> bool {
    name.starts_with("pg_") && super::catalog::is_table(name)
}

fn rewrite_expr(expr: &mut Expr) {
    match expr {
        Expr::Function(function) => {
            strip_pg_catalog(&mut function.name);
            if let Some(replacement) = array_bound(function) {
                *expr = replacement;
                return;
            }
            if is_catalog_array_subquery(function) {
                *expr = cast_to(
                    Expr::value(Value::Null),
                    DataType::Array(ArrayElemTypeDef::SquareBracket(
                        Box::new(DataType::Text),
                        None,
                    )),
                );
            }
        }
        Expr::Collate { expr: inner, .. } => {
            let inner = std::mem::replace(inner.as_mut(), Expr::value(Value::Null));
            *expr = inner;
        }
        Expr::BinaryOp { op, .. } => {
            if let BinaryOperator::PGCustomBinaryOperator(parts) = op
                && let Some(plain) = parts.last().and_then(|symbol| operator(symbol))
            {
                *op = plain;
            }
        }
        Expr::Subquery(query) => {
            if reads_an_empty_catalog_table(query) {
                *expr = Expr::value(Value::Null);
            } else {
                aggregate_catalog_lookup(query);
            }
        }
        Expr::Cast {
            expr: inner,
            data_type,
            ..
        } => {
            if let Some(replacement) = cast(inner, data_type) {
                *expr = replacement;
            }
        }
        _ => {}
    }
}

/// A SELECT over a catalog table that never has rows (psql's `\d` asks for policies,
/// publications, inherited tables, ...) returns nothing whatever it computes, so its
/// values become NULLs: the columns stay, and functions DataFusion lacks (`array(SELECT
/// ...)`, `pg_get_statisticsobjdef_columns`) are never planned.
struct EmptyCatalogSelects;

impl VisitorMut for EmptyCatalogSelects {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if nullify_empty_selects(query.body.as_mut()) && matches!(*query.body, SetExpr::Select(_)) {
            query.order_by = None;
        }
        ControlFlow::Continue(())
    }
}

/// Result columns named as PostgreSQL names them (`count`, `version`, `?column?`), not as
/// DataFusion does (`count(*)`, `version()`, `Int64(1)`): clients show these names, and
/// analysts refer to them (`SELECT count FROM (SELECT count(*) FROM usage) t`). A name that
/// would repeat one already in the list keeps DataFusion's name, since DataFusion requires
/// distinct names where PostgreSQL does not.
struct ColumnNames;

impl VisitorMut for ColumnNames {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        name_columns(query.body.as_mut());
        ControlFlow::Continue(())
    }
}

fn name_columns(body: &mut SetExpr) {
    let select = match body {
        SetExpr::Select(select) => select,
        SetExpr::SetOperation { left, right, .. } => {
            name_columns(left);
            name_columns(right);
            return;
        }
        _ => return,
    };
    exclude_repeated_columns(&mut select.projection);
    let mut taken: Vec<String> = select
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
            SelectItem::UnnamedExpr(Expr::Identifier(i)) => Some(i.value.clone()),
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => {
                parts.last().map(|i| i.value.clone())
            }
            _ => None,
        })
        .collect();
    for item in &mut select.projection {
        let SelectItem::UnnamedExpr(expr) = item else {
            continue;
        };
        let Some(name) = postgres_name(expr) else {
            continue;
        };
        if taken.contains(&name) {
            continue;
        }
        taken.push(name.clone());
        let expr = std::mem::replace(expr, Expr::value(Value::Null));
        *item = SelectItem::ExprWithAlias {
            expr,
            alias: Ident::with_quote('"', name),
        };
    }
}

/// `SELECT n.oid, n.* FROM ...` (DBeaver's habit) names `oid` twice, which PostgreSQL allows
/// and DataFusion refuses; the wildcard then leaves out the columns listed on their own
/// (`n.* EXCLUDE (oid)`), so every name still comes back once.
fn exclude_repeated_columns(projection: &mut [SelectItem]) {
    let explicit: Vec<(Option<String>, Ident)> = projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::UnnamedExpr(Expr::Identifier(column)) => Some((None, column.clone())),
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) if parts.len() == 2 => {
                Some((Some(parts[0].value.clone()), parts[1].clone()))
            }
            _ => None,
        })
        .collect();
    if explicit.is_empty() {
        return;
    }
    for item in projection.iter_mut() {
        let (qualifier, options) = match item {
            SelectItem::QualifiedWildcard(
                SelectItemQualifiedWildcardKind::ObjectName(name),
                options,
            ) => (
                name.0
                    .last()
                    .and_then(|p| p.as_ident())
                    .map(|i| i.value.clone()),
                options,
            ),
            SelectItem::Wildcard(options) => (None, options),
            _ => continue,
        };
        if options.opt_exclude.is_some() || options.opt_except.is_some() {
            continue;
        }
        let excluded: Vec<ObjectName> = explicit
            .iter()
            .filter(|(q, _)| qualifier.is_none() || q.is_none() || *q == qualifier)
            .map(|(_, column)| ObjectName::from(vec![column.clone()]))
            .collect();
        if !excluded.is_empty() {
            options.opt_exclude = Some(ExcludeSelectItem::Multiple(excluded));
        }
    }
}

/// PostgreSQL's name for an unaliased result column (its `FigureColname`), where it differs
/// from DataFusion's; `None` for column references, which both name the same.
fn postgres_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Function(f) => f.name.0.last().and_then(|part| match part {
            ObjectNamePart::Identifier(i) => Some(i.value.to_ascii_lowercase()),
            _ => None,
        }),
        Expr::Nested(inner) => postgres_name(inner),
        Expr::Cast {
            expr: inner,
            data_type,
            ..
        } => match inner.as_ref() {
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => None,
            Expr::Value(_) => Some(type_name(data_type)),
            other => postgres_name(other),
        },
        Expr::Case { .. } => Some("case".to_owned()),
        Expr::Value(_)
        | Expr::BinaryOp { .. }
        | Expr::UnaryOp { .. }
        | Expr::IsNull(_)
        | Expr::IsNotNull(_)
        | Expr::IsTrue(_)
        | Expr::IsFalse(_)
        | Expr::Between { .. }
        | Expr::InList { .. }
        | Expr::Like { .. }
        | Expr::ILike { .. }
        | Expr::TypedString { .. } => Some("?column?".to_owned()),
        _ => None,
    }
}

/// PostgreSQL's internal name of a cast's target type (`'1'::int` is named `int4`).
fn type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Int(_) | DataType::Integer(_) | DataType::Int4(_) => "int4".to_owned(),
        DataType::BigInt(_) | DataType::Int8(_) => "int8".to_owned(),
        DataType::SmallInt(_) | DataType::Int2(_) => "int2".to_owned(),
        DataType::Boolean | DataType::Bool => "bool".to_owned(),
        DataType::Double(_) | DataType::DoublePrecision | DataType::Float8 => "float8".to_owned(),
        DataType::Real | DataType::Float4 => "float4".to_owned(),
        DataType::Varchar(_) | DataType::CharacterVarying(_) => "varchar".to_owned(),
        DataType::Numeric(_) | DataType::Decimal(_) => "numeric".to_owned(),
        DataType::Timestamp(_, tz) if tz.to_string().contains("WITH TIME ZONE") => {
            "timestamptz".to_owned()
        }
        DataType::Timestamp(..) => "timestamp".to_owned(),
        other => other.to_string().to_ascii_lowercase(),
    }
}

/// [`EmptyCatalogSelects`] on a query body, through UNION branches; true if it changed the
/// body's only SELECT.
fn nullify_empty_selects(body: &mut SetExpr) -> bool {
    let select = match body {
        SetExpr::Select(select) => select,
        SetExpr::SetOperation { left, right, .. } => {
            nullify_empty_selects(left);
            nullify_empty_selects(right);
            return false;
        }
        _ => return false,
    };
    if !select_reads_an_empty_catalog_table(select) {
        return false;
    }
    for (i, item) in select.projection.iter_mut().enumerate() {
        let alias = match item {
            SelectItem::ExprWithAlias { alias, .. } => alias.clone(),
            SelectItem::UnnamedExpr(Expr::Identifier(name)) => name.clone(),
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => parts
                .last()
                .cloned()
                .unwrap_or_else(|| Ident::new(format!("c{}", i + 1))),
            _ => Ident::new(format!("c{}", i + 1)),
        };
        *item = SelectItem::ExprWithAlias {
            expr: Expr::value(Value::Null),
            alias,
        };
    }
    select.selection = Some(Expr::value(Value::Boolean(false)));
    select.group_by = GroupByExpr::Expressions(Vec::new(), Vec::new());
    select.having = None;
    true
}

/// `array_upper(a, d)` is `array_length(a, d)` and `array_lower(a, d)` is 1 (NULL for a NULL
/// array): DataFusion's arrays always start at 1.
fn array_bound(function: &Function) -> Option<Expr> {
    let name = function.name.to_string().to_ascii_lowercase();
    if name != "array_upper" && name != "array_lower" {
        return None;
    }
    let mut length = function.clone();
    length.name = ObjectName::from(vec![Ident::new("array_length")]);
    // BIGINT, as table functions such as generate_series take (array_length is UInt64).
    let length = cast_to(Expr::Function(length), DataType::BigInt(None));
    Some(if name == "array_upper" {
        length
    } else {
        Expr::Nested(Box::new(Expr::BinaryOp {
            left: Box::new(Expr::BinaryOp {
                left: Box::new(length),
                op: BinaryOperator::Multiply,
                right: Box::new(Expr::value(Value::Number("0".into(), false))),
            }),
            op: BinaryOperator::Plus,
            right: Box::new(Expr::value(Value::Number("1".into(), false))),
        }))
    })
}

/// `array(SELECT ... FROM pg_catalog....)`: psql collects option lists this way (`\d+`).
/// SpendQL's catalog objects have no options, so the list is NULL.
fn is_catalog_array_subquery(function: &Function) -> bool {
    let FunctionArguments::Subquery(query) = &function.args else {
        return false;
    };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    function.name.to_string().eq_ignore_ascii_case("array")
        && select.from.iter().any(|from| {
            matches!(&from.relation, TableFactor::Table { name, .. }
                if matches!(name.0.first(), Some(ObjectNamePart::Identifier(schema))
                    if schema.value == PG_CATALOG))
        })
}

/// A scalar subquery whose FROM list has a catalog table that never has rows (psql's `\d`
/// asks `pg_attrdef` for defaults and `pg_collation` for collations) is NULL, as it would
/// be on PostgreSQL; DataFusion could not plan most of these correlated lookups anyway.
fn reads_an_empty_catalog_table(query: &Query) -> bool {
    match query.body.as_ref() {
        SetExpr::Select(select) => select_reads_an_empty_catalog_table(select),
        _ => false,
    }
}

/// Whether a SELECT certainly returns no rows because it reads a catalog table that never has
/// rows: as a FROM item, through an inner or cross join, or through a derived table that is
/// itself such a SELECT (pgJDBC's `getPrimaryKeys` wraps its `pg_index` join that way). A
/// RIGHT or FULL join anywhere makes no such promise.
fn select_reads_an_empty_catalog_table(select: &Select) -> bool {
    select.from.iter().any(|from| {
        let outer = from.joins.iter().any(|join| {
            matches!(
                join.join_operator,
                JoinOperator::Right(_) | JoinOperator::RightOuter(_) | JoinOperator::FullOuter(_)
            )
        });
        let inner_empty = from.joins.iter().any(|join| {
            matches!(
                join.join_operator,
                JoinOperator::Join(_) | JoinOperator::Inner(_) | JoinOperator::CrossJoin(_)
            ) && relation_is_empty(&join.relation)
        });
        !outer && (relation_is_empty(&from.relation) || inner_empty)
    })
}

fn relation_is_empty(relation: &TableFactor) -> bool {
    match relation {
        TableFactor::Table { name, .. } => matches!(
            name.0.as_slice(),
            [ObjectNamePart::Identifier(schema), ObjectNamePart::Identifier(table)]
                if schema.value == PG_CATALOG && super::catalog::always_empty(&table.value)
        ),
        TableFactor::Derived { subquery, .. } => reads_an_empty_catalog_table(subquery),
        _ => false,
    }
}

/// A scalar subquery that looks one value up in `pg_catalog` (`(SELECT pg_get_expr(...)
/// FROM pg_attrdef d WHERE d.adrelid = a.attrelid ...)`, as psql's `\d` sends) gets `max()`
/// around its value: DataFusion only plans correlated scalar subqueries that aggregate.
/// Only catalog lookups are changed, which return at most one row; a user's subquery keeps
/// its meaning.
fn aggregate_catalog_lookup(query: &mut Query) {
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    let reads_catalog = select.from.iter().any(|from| {
        matches!(&from.relation, TableFactor::Table { name, .. }
        if name.0.first().is_some_and(|part| {
            matches!(part, ObjectNamePart::Identifier(i) if i.value == PG_CATALOG)
        }))
    });
    let grouped = !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty());
    if !reads_catalog || grouped || select.projection.len() != 1 {
        return;
    }
    let item = &mut select.projection[0];
    let value = match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
        _ => return,
    };
    if matches!(value, Expr::Function(f) if is_aggregate(f)) {
        return;
    }
    let inner = std::mem::replace(value, Expr::value(Value::Null));
    *value = call("max", vec![inner]);
}

fn is_aggregate(function: &Function) -> bool {
    matches!(
        function.name.to_string().to_ascii_lowercase().as_str(),
        "max"
            | "min"
            | "count"
            | "sum"
            | "avg"
            | "array_agg"
            | "string_agg"
            | "bool_and"
            | "bool_or"
    )
}

fn strip_pg_catalog(name: &mut ObjectName) {
    if let [ObjectNamePart::Identifier(schema), _] = name.0.as_slice()
        && schema.value.eq_ignore_ascii_case(PG_CATALOG)
    {
        name.0.remove(0);
    }
}

/// The operator `OPERATOR(pg_catalog.<symbol>)` names.
fn operator(symbol: &str) -> Option<BinaryOperator> {
    Some(match symbol {
        "~" => BinaryOperator::PGRegexMatch,
        "~*" => BinaryOperator::PGRegexIMatch,
        "!~" => BinaryOperator::PGRegexNotMatch,
        "!~*" => BinaryOperator::PGRegexNotIMatch,
        "=" => BinaryOperator::Eq,
        "<>" | "!=" => BinaryOperator::NotEq,
        "<" => BinaryOperator::Lt,
        "<=" => BinaryOperator::LtEq,
        ">" => BinaryOperator::Gt,
        ">=" => BinaryOperator::GtEq,
        "||" => BinaryOperator::StringConcat,
        _ => return None,
    })
}

/// A PostgreSQL-only cast as something DataFusion plans, or `None` to leave it.
fn cast(inner: &mut Box<Expr>, data_type: &mut DataType) -> Option<Expr> {
    let name = match data_type {
        DataType::Regclass => "regclass".to_owned(),
        DataType::Custom(name, _) => {
            strip_pg_catalog(name);
            name.to_string().to_ascii_lowercase()
        }
        _ => return None,
    };
    let take = |inner: &mut Box<Expr>| std::mem::replace(inner.as_mut(), Expr::value(Value::Null));
    match name.as_str() {
        "regclass" => Some(match literal_text(inner) {
            Some(text) => Expr::value(Value::Number(super::regclass(&text).to_string(), false)),
            // An oid stays itself; a name (text) becomes its relation's id.
            None => call("to_regclass", vec![take(inner)]),
        }),
        // Procedures are compared by name (pg_type.typinput holds `array_in`, `int8in`, ...).
        "regproc" | "regprocedure" => Some(match literal_text(inner) {
            Some(text) => Expr::value(Value::SingleQuotedString(
                text.strip_prefix("pg_catalog.").unwrap_or(&text).to_owned(),
            )),
            None => take(inner),
        }),
        "oid" | "regnamespace" | "regrole" | "xid" | "int8" => {
            Some(cast_to(take(inner), DataType::BigInt(None)))
        }
        "regtype" => Some(
            match literal_text(inner).and_then(|name| super::type_oid(&name)) {
                Some(oid) => Expr::value(Value::Number(oid.to_string(), false)),
                None => call("format_type", vec![take(inner), Expr::value(Value::Null)]),
            },
        ),
        "text" | "name" | "char" | "\"char\"" | "bpchar" | "varchar" => {
            Some(cast_to(take(inner), DataType::Text))
        }
        "int4" => Some(cast_to(take(inner), DataType::Int(None))),
        "int2" => Some(cast_to(take(inner), DataType::SmallInt(None))),
        "bool" => Some(cast_to(take(inner), DataType::Boolean)),
        "float8" => Some(cast_to(take(inner), DataType::DoublePrecision)),
        _ => None,
    }
}

fn literal_text(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Value(ValueWithSpan {
            value: Value::SingleQuotedString(s),
            ..
        }) => Some(s.clone()),
        _ => None,
    }
}

fn cast_to(expr: Expr, data_type: DataType) -> Expr {
    Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(expr),
        data_type,
        array: false,
        format: None,
    }
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr};
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: Vec::new(),
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn rewritten(sql: &str) -> String {
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("parses");
        rewrite(&mut statements[0]);
        statements[0].to_string()
    }

    use crate::pgcompat::relation_oid;

    #[test]
    fn postgres_only_syntax_becomes_plain_sql() {
        assert_eq!(
            rewritten(
                "SELECT pg_catalog.pg_get_userbyid(c.relowner) AS owner FROM pg_class c \
                 WHERE c.relname OPERATOR(pg_catalog.~) '^(usage)$' COLLATE pg_catalog.default"
            ),
            "SELECT pg_get_userbyid(c.relowner) AS owner FROM pg_catalog.pg_class c \
             WHERE c.relname ~ '^(usage)$'"
        );
        let oid = relation_oid("public", "usage");
        assert_eq!(
            rewritten(
                "SELECT 'usage'::regclass AS a, c.oid::pg_catalog.regclass AS b, \
                 t::regtype AS c FROM x"
            ),
            format!("SELECT {oid} AS a, to_regclass(c.oid) AS b, format_type(t, NULL) AS c FROM x")
        );
    }

    #[test]
    fn a_column_listed_beside_its_wildcard_is_not_repeated() {
        assert_eq!(
            rewritten("SELECT n.oid, n.*, d.description FROM pg_namespace n, x d"),
            "SELECT n.oid, n.* EXCLUDE (oid), d.description FROM pg_catalog.pg_namespace n, x d"
        );
        assert_eq!(
            rewritten("SELECT a, * FROM t"),
            "SELECT a, * EXCLUDE (a) FROM t"
        );
    }

    #[test]
    fn result_columns_get_postgres_names_unless_they_would_repeat() {
        assert_eq!(
            rewritten("SELECT team, count(*), sum(x), 1, 'a', CAST('5' AS INT), y::text FROM t"),
            "SELECT team, count(*) AS \"count\", sum(x) AS \"sum\", 1 AS \"?column?\", 'a', \
             CAST('5' AS INT) AS \"int4\", y::TEXT FROM t"
        );
        assert_eq!(
            rewritten("SELECT count FROM (SELECT count(*) FROM usage) AS t"),
            "SELECT count FROM (SELECT count(*) AS \"count\" FROM usage) AS t"
        );
    }
}
