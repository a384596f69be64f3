//! SpendQL's SQL functions, usable in any DataFusion `SessionContext`.
//!
//! One function per file, as in DataFusion's `functions` crate; [`registry`] lists them.
//! The costing functions read a [`catalog::PriceCatalog`] through a [`CatalogSource`]: the
//! SpendQL engine passes one over its `pricing` and `models` tables; any other program can
//! build one from Arrow record batches with [`register_all_with_batches`].

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use datafusion::common::Result;
use datafusion::logical_expr::DocSection;
use datafusion::prelude::SessionContext;

#[cfg(test)]
mod accuracy_tests;
pub mod anomaly_score;
mod args;
pub mod attribute;
pub mod attribution;
pub mod catalog;
pub mod change_impact;
pub mod cost_part;
mod costing;
pub mod date_trunc;
pub mod forecast;
pub mod forecasting;
pub mod level_shift;
pub mod price_per_mtok;
pub mod project_period_end;
pub mod registry;
pub mod resolve_model;
mod robust;
pub mod rules;
mod series_agg;
pub mod token_cost;
pub mod usage_cost;

pub use attribution::{AttributionRules, RulesSource, StaticRules};
pub use catalog::{CatalogSource, PriceCatalog, StaticCatalog};

/// The documentation section of every SpendQL function.
pub const DOC_SECTION: DocSection = DocSection {
    include: true,
    label: "SpendQL Functions",
    description: Some("Token costing, model resolution, forecasting and anomaly scoring."),
};

/// Register every SpendQL function with `ctx`, over an empty price catalog (costing
/// functions return NULL). Use [`register_all_with_catalog`] or
/// [`register_all_with_batches`] to give them prices.
pub fn register_all(ctx: &SessionContext) {
    register_all_with_catalog(ctx, Arc::new(StaticCatalog::default()));
}

/// Register every SpendQL function, reading prices from `source` (and no attribution rules).
pub fn register_all_with_catalog(ctx: &SessionContext, source: Arc<dyn CatalogSource>) {
    register_all_with_sources(ctx, source, Arc::new(StaticRules::default()));
}

/// Register every SpendQL function, reading prices from `source` and attribution rules from
/// `rules`.
///
/// This also removes DataFusion's `eliminate_duplicated_expr` optimizer rule. In DataFusion
/// 55 an `Unnest` keeps its input's functional dependencies although it multiplies rows, and
/// that rule then prunes "redundant" ORDER BY keys: in
/// `SELECT team, unnest(forecast(...)) AS p ... GROUP BY team ORDER BY team, p['ts']` the
/// `p['ts']` key was dropped and points came back out of order.
pub fn register_all_with_sources(
    ctx: &SessionContext,
    source: Arc<dyn CatalogSource>,
    rules: Arc<dyn RulesSource>,
) {
    ctx.remove_optimizer_rule("eliminate_duplicated_expr");
    for udf in registry::scalar_functions(&source, &rules)
        .into_iter()
        .chain(registry::builtin_replacements())
    {
        ctx.register_udf(udf.as_ref().clone());
    }
    for udwf in registry::window_functions() {
        ctx.register_udwf(udwf.as_ref().clone());
    }
    for udaf in registry::aggregate_functions() {
        ctx.register_udaf(udaf.as_ref().clone());
    }
}

/// Register every SpendQL function over a catalog given as `pricing` and `models` record
/// batches (the columns of SpendQL's tables of those names).
pub fn register_all_with_batches(
    ctx: &SessionContext,
    pricing: &[RecordBatch],
    models: &[RecordBatch],
) -> Result<()> {
    let catalog = PriceCatalog::from_batches(pricing, models)?;
    register_all_with_catalog(ctx, Arc::new(StaticCatalog(Arc::new(catalog))));
    Ok(())
}
