//! Role checks on the logical plan, not the SQL text: views are already inlined into it and
//! subqueries are walked, so `SELECT` through a view or `INSERT ... SELECT` is judged by what
//! it really reads and writes.
//!
//! | role | reads | writes |
//! |---|---|---|
//! | admin | everything | everything (config tables, external tables, server files) |
//! | analyst | every table and view | nothing |
//! | ingest | the catalogs and `budget_check` only | `INSERT` / `COPY FROM STDIN` into `usage` |
//! | team:X | usage rows attributed to X, the config tables | nothing |
//!
//! A team reader's scans of `usage` get a filter on the row's attributed team — the same
//! `attribute()` the `spend` view uses — so every view built on `usage` is scoped too.

use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::common::{DFSchema, DataFusionError, Result as DfResult, plan_err};
use datafusion::datasource::source_as_provider;
use datafusion::execution::SessionState;
use datafusion::logical_expr::logical_plan::dml::InsertOp;
use datafusion::logical_expr::{Filter, LogicalPlan, TableScan, TableSource, WriteOp, lit};

use super::Role;
use crate::governance::budget_check::BudgetCheckTable;
use crate::pricing::sql::ImportTable;
use crate::storage::priced::PricedUsageTable;
use crate::storage::{ConfigTableProvider, UsageTable};

/// Why a plan may not run.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// The role may not do this (SQLSTATE 42501).
    #[error("permission denied: {0}")]
    Denied(String),
    /// Building the team filter failed.
    #[error(transparent)]
    Plan(#[from] DataFusionError),
}

/// Check that `role` may run `plan`; returns the plan to run (for a team reader, with its
/// usage scans filtered to the team).
pub fn authorize(
    plan: LogicalPlan,
    role: &Role,
    state: &SessionState,
) -> Result<LogicalPlan, PrivilegeError> {
    if *role == Role::Admin {
        return Ok(plan);
    }
    let mut denied = None;
    plan.apply_with_subqueries(|node| {
        denied = denial(node, role);
        Ok(if denied.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    if let Some(reason) = denied {
        return Err(PrivilegeError::Denied(reason));
    }
    match role {
        Role::Team(team) => Ok(scope_to_team(plan, team, state)?),
        _ => Ok(plan),
    }
}

/// May `role` write into `table` with COPY FROM STDIN (an INSERT by another name)?
pub fn check_copy_into(table: &str, role: &Role) -> Result<(), PrivilegeError> {
    match role {
        Role::Admin => Ok(()),
        Role::Ingest if table == "usage" => Ok(()),
        Role::Ingest => Err(PrivilegeError::Denied(format!(
            "role ingest can only load usage, not {table}"
        ))),
        other => Err(PrivilegeError::Denied(format!(
            "role {other} is read-only: it cannot COPY into {table}"
        ))),
    }
}

/// The reason `role` may not run this one node, if any.
fn denial(node: &LogicalPlan, role: &Role) -> Option<String> {
    match node {
        LogicalPlan::Dml(dml) => {
            let insert = matches!(dml.op, WriteOp::Insert(InsertOp::Append));
            if *role == Role::Ingest && insert && provider_is::<UsageTable>(&dml.target) {
                None
            } else if *role == Role::Ingest {
                Some(format!(
                    "role ingest can only INSERT INTO usage, not {} {}",
                    verb(&dml.op),
                    dml.table_name
                ))
            } else {
                Some(format!(
                    "role {role} is read-only: it cannot {} {}",
                    verb(&dml.op),
                    dml.table_name
                ))
            }
        }
        LogicalPlan::Ddl(ddl) => Some(format!(
            "only admin can change the schema ({} is not allowed for role {role})",
            ddl.name()
        )),
        LogicalPlan::Copy(_) => Some(format!(
            "only admin can write server files (COPY ... TO a file is not allowed for role {role})"
        )),
        LogicalPlan::Extension(_) => Some(format!("role {role} cannot run this statement")),
        LogicalPlan::TableScan(scan) => scan_denial(scan, role),
        _ => None,
    }
}

/// The SQL words for a write.
fn verb(op: &WriteOp) -> &'static str {
    match op {
        WriteOp::Insert(_) => "INSERT INTO",
        WriteOp::Delete => "DELETE FROM",
        WriteOp::Update => "UPDATE",
        WriteOp::Ctas => "CREATE TABLE",
        WriteOp::Truncate => "TRUNCATE",
        _ => "write",
    }
}

fn scan_denial(scan: &TableScan, role: &Role) -> Option<String> {
    let catalog = matches!(
        scan.table_name.schema(),
        Some("information_schema" | "pg_catalog")
    );
    if catalog {
        return None;
    }
    let table = &scan.table_name;
    if provider_is::<ImportTable>(&scan.source) {
        return Some(format!(
            "only admin can import prices (pricing_import is not allowed for role {role})"
        ));
    }
    if provider_is::<BudgetCheckTable>(&scan.source) {
        // Gateways that log usage (ingest) also ask before each request; a team reader
        // would see other teams' budgets through it.
        return match role {
            Role::Team(_) => Some(format!(
                "role {role} cannot call budget_check: it reports spend across teams"
            )),
            _ => None,
        };
    }
    match role {
        Role::Admin | Role::Analyst => None,
        Role::Ingest => Some(format!(
            "role ingest can only INSERT or COPY into usage; it cannot read {table}"
        )),
        Role::Team(_) => {
            let built_in =
                is_usage(&scan.source) || provider_is::<ConfigTableProvider>(&scan.source);
            let generator = matches!(
                table.table().trim_end_matches("()"),
                "generate_series" | "range"
            ) && table.schema().is_none();
            (!built_in && !generator).then(|| {
                format!("role {role} can read the built-in tables and views only, not {table}")
            })
        }
    }
}

fn provider_is<T: TableProvider>(source: &Arc<dyn TableSource>) -> bool {
    source_as_provider(source).is_ok_and(|provider| provider.is::<T>())
}

/// A scan of `usage`'s rows: the table, or `priced_usage()` under `spend`.
fn is_usage(source: &Arc<dyn TableSource>) -> bool {
    provider_is::<UsageTable>(source) || provider_is::<PricedUsageTable>(source)
}

/// Put `attributed team = team` over every scan of `usage`, in subqueries too.
fn scope_to_team(plan: LogicalPlan, team: &str, state: &SessionState) -> DfResult<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| match node {
        LogicalPlan::TableScan(scan) if is_usage(&scan.source) => {
            if scan.projection.is_some() || !scan.filters.is_empty() || scan.fetch.is_some() {
                // Plans are scoped before optimisation, when scans are still whole.
                return plan_err!("cannot scope an optimised scan of usage to a team");
            }
            let predicate = team_predicate(&scan.projected_schema, team, state)?;
            let scan = Arc::new(LogicalPlan::TableScan(scan));
            Ok(Transformed::yes(LogicalPlan::Filter(Filter::try_new(
                predicate, scan,
            )?)))
        }
        other => Ok(Transformed::no(other)),
    })
    .map(|transformed| transformed.data)
}

/// The attributed team as `spend` computes it: rules applied, values tagged at the source
/// winning.
const ATTRIBUTED_TEAM: &str = "attribute(ts, provider, api_key_id, project, model, \
    environment, tags, team, feature, customer)['team']";

fn team_predicate(
    schema: &DFSchema,
    team: &str,
    state: &SessionState,
) -> DfResult<datafusion::logical_expr::Expr> {
    Ok(state
        .create_logical_expr(ATTRIBUTED_TEAM, schema)?
        .eq(lit(team.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Engine;

    async fn check(engine: &Engine, role: &Role, sql: &str) -> Result<(), String> {
        let ctx = engine.session();
        let plan = ctx
            .state()
            .create_logical_plan(sql)
            .await
            .map_err(|e| format!("plan: {e}"))?;
        authorize(plan, role, &ctx.state())
            .map(drop)
            .map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn each_role_gets_what_spec_section_7_gives_it() {
        let engine = Engine::in_memory().await.expect("engine");
        let analyst = Role::Analyst;
        let ingest = Role::Ingest;
        let team = Role::Team("search".into());
        let insert = "INSERT INTO usage (event_id, ts, provider, model, input_tokens, output_tokens) \
                      VALUES ('e1', TIMESTAMP '2026-01-01 00:00:00', 'openai', 'gpt-4o', 1, 1)";
        let reads = [
            "SELECT count(*) FROM usage",
            "SELECT sum(list_cost) FROM spend",
            "SELECT * FROM budget_status",
            "SELECT * FROM pricing WHERE provider IN (SELECT provider FROM usage)",
            "SELECT * FROM information_schema.tables",
        ];
        for sql in reads {
            assert_eq!(check(&engine, &analyst, sql).await, Ok(()), "{sql}");
            assert_eq!(check(&engine, &team, sql).await, Ok(()), "{sql}");
            assert_eq!(check(&engine, &Role::Admin, sql).await, Ok(()), "{sql}");
        }
        assert_eq!(
            check(&engine, &ingest, "SELECT * FROM information_schema.tables").await,
            Ok(())
        );
        assert_eq!(check(&engine, &ingest, "SELECT 1").await, Ok(()));
        assert_eq!(check(&engine, &ingest, insert).await, Ok(()));
        let gateway = "SELECT decision FROM budget_check('team', 'search', 0.01)";
        for role in [&ingest, &analyst, &Role::Admin] {
            assert_eq!(check(&engine, role, gateway).await, Ok(()), "{role}");
        }
        let denied = [
            (&team, gateway),
            (&ingest, "SELECT count(*) FROM usage"),
            (&ingest, "SELECT * FROM spend"),
            (&ingest, "INSERT INTO usage SELECT * FROM usage"),
            (&ingest, "INSERT INTO budgets (budget_id) VALUES ('b')"),
            (&ingest, "DELETE FROM usage"),
            (&analyst, insert),
            (&analyst, "DELETE FROM budgets"),
            (&analyst, "UPDATE budgets SET amount = 0"),
            (&analyst, "CREATE VIEW v AS SELECT 1"),
            (
                &analyst,
                "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
            ),
            (&analyst, "COPY (SELECT 1) TO '/tmp/x.csv'"),
            (&analyst, "SELECT * FROM pricing_import('csv', '')"),
            (
                &analyst,
                "EXPLAIN INSERT INTO budgets (budget_id) VALUES ('b')",
            ),
            (&team, insert),
            (&team, "SELECT * FROM pricing_import('csv', '')"),
            (&team, "DROP VIEW spend"),
        ];
        for (role, sql) in denied {
            let err = check(&engine, role, sql).await.expect_err(sql);
            assert!(err.starts_with("permission denied"), "{sql}: {err}");
        }
    }

    #[tokio::test]
    async fn team_readers_see_only_their_teams_usage_through_every_view() {
        let engine = Engine::in_memory().await.expect("engine");
        engine
            .sql(
                "INSERT INTO usage (event_id, ts, provider, model, input_tokens, output_tokens, team) \
                 VALUES ('a', TIMESTAMP '2026-01-01 00:00:00', 'openai', 'gpt-4o', 10, 1, 'search'), \
                 ('b', TIMESTAMP '2026-01-01 00:00:00', 'openai', 'gpt-4o', 20, 1, 'ads'), \
                 ('c', TIMESTAMP '2026-01-01 00:00:00', 'openai', 'gpt-4o', 40, 1, NULL)",
            )
            .await
            .expect("plan")
            .collect()
            .await
            .expect("insert");
        engine
            .sql(
                "INSERT INTO attribution_rules (rule_id, priority, provider, team) \
                 VALUES ('r1', 1, 'openai', 'search')",
            )
            .await
            .expect("plan")
            .collect()
            .await
            .expect("rule");
        let total = |role: Role, sql: &'static str| {
            let engine = engine.clone();
            async move {
                let ctx = engine.session();
                let plan = ctx.state().create_logical_plan(sql).await.expect("plan");
                let plan = authorize(plan, &role, &ctx.state()).expect("allowed");
                let batches = ctx
                    .execute_logical_plan(plan)
                    .await
                    .expect("run")
                    .collect()
                    .await
                    .expect("collect");
                arrow::util::pretty::pretty_format_batches(&batches)
                    .expect("format")
                    .to_string()
            }
        };
        let search = Role::Team("search".into());
        let sum = "SELECT sum(input_tokens) AS n FROM usage";
        // Row c has no team and the rule gives it to search; row b is tagged ads at the source.
        assert!(total(search.clone(), sum).await.contains("| 50 |"));
        assert!(
            total(Role::Team("ads".into()), sum)
                .await
                .contains("| 20 |")
        );
        assert!(total(Role::Analyst, sum).await.contains("| 70 |"));
        let via_view = "SELECT sum(input_tokens) AS n FROM spend_daily";
        assert_eq!(
            total(search.clone(), via_view).await,
            total(search.clone(), sum).await
        );
        let subquery = "SELECT (SELECT count(*) FROM usage) AS n";
        assert!(total(search, subquery).await.contains("| 2 |"));
    }
}
