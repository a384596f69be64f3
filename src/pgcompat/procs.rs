//! SpendQL's own functions as `pg_proc` rows, so `\df`, `\df+ name`, DBeaver's function
//! list and `obj_description(oid, 'pg_proc')` show them with their descriptions.
//!
//! Like PostgreSQL, where `\df` lists functions outside `pg_catalog`, only SpendQL's
//! functions are listed (in `public`); DataFusion's built-ins play the part of PostgreSQL's
//! system functions. Descriptions come from each function's DataFusion `Documentation` (or
//! its module's constants for table functions), so they cannot drift from the code.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, SchemaRef};

use super::{format_type, relation_oid};

/// One function.
#[derive(Debug, Clone)]
pub struct Proc {
    pub oid: i64,
    pub name: String,
    /// `pg_get_function_result`: `numeric(38,12)`, `record`, `TABLE(decision text, ...)`.
    pub result: String,
    /// `pg_get_function_arguments`, as the documentation writes the call.
    pub arguments: String,
    pub returns_set: bool,
    /// `pg_proc.prokind`: `f` (function), `a` (aggregate) or `w` (window function).
    pub kind: &'static str,
    pub description: String,
}

/// A function's id: stable, and never the id of a relation.
pub fn proc_oid(name: &str) -> i64 {
    relation_oid(crate::engine::SCHEMA, &format!("{name}()"))
}

/// The PostgreSQL name of a result type.
fn type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Struct(_) => "record".to_owned(),
        DataType::Decimal128(p, s) => format!("numeric({p},{s})"),
        other => {
            let ty = crate::server::encode::pg_type(other);
            format_type(i64::from(ty.oid()), None).unwrap_or_else(|| ty.name().to_owned())
        }
    }
}

fn table_result(schema: &SchemaRef) -> String {
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), type_name(f.data_type())))
        .collect();
    format!("TABLE({})", columns.join(", "))
}

/// A function described by its DataFusion documentation.
fn documented(
    name: &str,
    doc: Option<&datafusion::logical_expr::Documentation>,
    result: String,
    kind: &'static str,
) -> Proc {
    let syntax = doc.map(|d| d.syntax_example.as_str()).unwrap_or_default();
    let arguments = syntax
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(args, _)| args.to_owned())
        .unwrap_or_default();
    Proc {
        oid: proc_oid(name),
        name: name.to_owned(),
        result,
        arguments,
        returns_set: false,
        kind,
        description: doc.map(|d| d.description.clone()).unwrap_or_default(),
    }
}

/// Every SpendQL function, by name.
pub fn procs() -> &'static [Proc] {
    static PROCS: LazyLock<Vec<Proc>> = LazyLock::new(|| {
        let prices: Arc<dyn spendql_udfs::catalog::CatalogSource> =
            Arc::new(spendql_udfs::catalog::StaticCatalog::default());
        let rules: Arc<dyn spendql_udfs::attribution::RulesSource> =
            Arc::new(spendql_udfs::attribution::StaticRules::default());
        let mut out: Vec<Proc> = spendql_udfs::registry::scalar_functions(&prices, &rules)
            .iter()
            .map(|udf| {
                let result = udf
                    .inner()
                    .return_type(&[])
                    .map(|t| type_name(&t))
                    .unwrap_or_else(|_| "record".to_owned());
                documented(udf.name(), udf.documentation(), result, "f")
            })
            .collect();
        out.extend(
            spendql_udfs::registry::window_functions()
                .iter()
                .map(|udwf| {
                    // Every SpendQL window function scores a series: DOUBLE.
                    let result = type_name(&DataType::Float64);
                    documented(udwf.name(), udwf.documentation(), result, "w")
                }),
        );
        out.extend(
            spendql_udfs::registry::aggregate_functions()
                .iter()
                .map(|udaf| {
                    let result = udaf
                        .inner()
                        .return_type(&[])
                        .map(|t| type_name(&t))
                        .unwrap_or_else(|_| "record".to_owned());
                    documented(udaf.name(), udaf.documentation(), result, "a")
                }),
        );
        for (name, arguments, description, schema) in [
            (
                crate::governance::budget_check::NAME,
                crate::governance::budget_check::ARGUMENTS,
                crate::governance::budget_check::DESCRIPTION,
                crate::governance::budget_check::result_schema(),
            ),
            (
                crate::pricing::sql::NAME,
                crate::pricing::sql::ARGUMENTS,
                crate::pricing::sql::DESCRIPTION,
                crate::pricing::sql::result_schema(),
            ),
        ] {
            out.push(Proc {
                oid: proc_oid(name),
                name: name.to_owned(),
                result: table_result(&schema),
                arguments: arguments.to_owned(),
                returns_set: true,
                kind: "f",
                description: description.to_owned(),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    });
    &PROCS
}

/// The function with id `oid`.
pub fn by_oid(oid: i64) -> Option<&'static Proc> {
    procs().iter().find(|p| p.oid == oid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spendql_function_is_listed_with_a_description_and_a_signature() {
        let names: Vec<&str> = procs().iter().map(|p| p.name.as_str()).collect();
        for name in [
            "anomaly_score",
            "level_shift",
            "forecast",
            "project_period_end",
            "change_impact",
            "attribute",
            "budget_check",
            "price_per_mtok",
            "pricing_import",
            "resolve_model",
            "token_cost",
            "usage_cost",
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        for proc in procs() {
            assert!(
                !proc.description.is_empty(),
                "{} has no description",
                proc.name
            );
            assert!(!proc.arguments.is_empty(), "{} has no arguments", proc.name);
            assert_eq!(by_oid(proc.oid).map(|p| &p.name), Some(&proc.name));
        }
        let token_cost = procs().iter().find(|p| p.name == "token_cost").unwrap();
        assert_eq!(token_cost.result, "numeric(38,12)");
        assert!(token_cost.arguments.starts_with("provider, model, ts"));
        let check = procs().iter().find(|p| p.name == "budget_check").unwrap();
        assert!(
            check
                .result
                .starts_with("TABLE(decision text, budget_id text"),
            "{}",
            check.result
        );
    }
}
