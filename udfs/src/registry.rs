//! The list of SpendQL functions. No logic lives here.

use std::sync::Arc;

use datafusion::logical_expr::{AggregateUDF, ScalarUDF, WindowUDF};

use crate::anomaly_score::AnomalyScoreFunc;
use crate::attribute::AttributeFunc;
use crate::attribution::RulesSource;
use crate::catalog::CatalogSource;
use crate::change_impact::ChangeImpactFunc;
use crate::cost_part::CostPartFunc;
use crate::date_trunc::DateTruncFunc;
use crate::forecast::ForecastFunc;
use crate::level_shift::LevelShiftFunc;
use crate::price_per_mtok::PricePerMtokFunc;
use crate::project_period_end::ProjectPeriodEndFunc;
use crate::resolve_model::ResolveModelFunc;
use crate::token_cost::TokenCostFunc;
use crate::usage_cost::UsageCostFunc;

/// Every scalar function, reading prices from `source` and attribution rules from `rules`.
pub fn scalar_functions(
    source: &Arc<dyn CatalogSource>,
    rules: &Arc<dyn RulesSource>,
) -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(ScalarUDF::new_from_impl(TokenCostFunc::new(Arc::clone(
            source,
        )))),
        Arc::new(ScalarUDF::new_from_impl(PricePerMtokFunc::new(Arc::clone(
            source,
        )))),
        Arc::new(ScalarUDF::new_from_impl(ResolveModelFunc::new(Arc::clone(
            source,
        )))),
        Arc::new(ScalarUDF::new_from_impl(UsageCostFunc::new(Arc::clone(
            source,
        )))),
        Arc::new(ScalarUDF::new_from_impl(AttributeFunc::new(Arc::clone(
            rules,
        )))),
        Arc::new(ScalarUDF::new_from_impl(CostPartFunc::default())),
    ]
}

/// DataFusion functions replaced by faster ones of the same name and behaviour.
pub fn builtin_replacements() -> Vec<Arc<ScalarUDF>> {
    vec![Arc::new(ScalarUDF::new_from_impl(DateTruncFunc::default()))]
}

/// Every aggregate function.
pub fn aggregate_functions() -> Vec<Arc<AggregateUDF>> {
    vec![
        Arc::new(AggregateUDF::new_from_impl(ForecastFunc::default())),
        Arc::new(AggregateUDF::new_from_impl(ProjectPeriodEndFunc::default())),
        Arc::new(AggregateUDF::new_from_impl(ChangeImpactFunc::default())),
    ]
}

/// Every window function.
pub fn window_functions() -> Vec<Arc<WindowUDF>> {
    vec![
        Arc::new(WindowUDF::new_from_impl(AnomalyScoreFunc::default())),
        Arc::new(WindowUDF::new_from_impl(LevelShiftFunc::default())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn no_duplicate_names_and_every_function_is_documented() {
        let source: Arc<dyn CatalogSource> = Arc::new(crate::catalog::StaticCatalog::default());
        let rules: Arc<dyn RulesSource> = Arc::new(crate::attribution::StaticRules::default());
        let mut names = HashSet::new();
        for udf in scalar_functions(&source, &rules) {
            for name in std::iter::once(udf.name()).chain(udf.aliases().iter().map(String::as_str))
            {
                assert!(
                    names.insert(name.to_lowercase()),
                    "duplicate function name {name}"
                );
            }
            assert!(
                udf.documentation().is_some(),
                "{} has no documentation",
                udf.name()
            );
        }
        for udwf in window_functions() {
            assert!(
                names.insert(udwf.name().to_lowercase()),
                "duplicate function name {}",
                udwf.name()
            );
            assert!(
                udwf.documentation().is_some(),
                "{} has no documentation",
                udwf.name()
            );
        }
        for udaf in aggregate_functions() {
            assert!(
                names.insert(udaf.name().to_lowercase()),
                "duplicate function name {}",
                udaf.name()
            );
            assert!(
                udaf.documentation().is_some(),
                "{} has no documentation",
                udaf.name()
            );
        }
        assert_eq!(names.len(), 11);
    }

    #[test]
    fn replacements_keep_the_builtin_names_and_documentation() {
        let builtins = datafusion::functions::all_default_functions();
        for udf in builtin_replacements() {
            let builtin = builtins
                .iter()
                .find(|b| b.name() == udf.name())
                .unwrap_or_else(|| panic!("{} replaces no DataFusion function", udf.name()));
            assert_eq!(udf.aliases(), builtin.aliases());
            assert_eq!(udf.signature(), builtin.signature());
            assert_eq!(
                udf.documentation().map(|d| &d.description),
                builtin.documentation().map(|d| &d.description)
            );
        }
    }
}
