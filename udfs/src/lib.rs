//! SpendQL's SQL functions, usable in any DataFusion `SessionContext`.
//!
//! One function per file, as in DataFusion's `functions` crate; [`registry`] lists them.
//! Register everything with [`register_all`].

use datafusion::prelude::SessionContext;

pub mod registry;

/// Register every SpendQL function with `ctx`.
pub fn register_all(ctx: &SessionContext) {
    for udf in registry::scalar_functions() {
        ctx.register_udf(udf.as_ref().clone());
    }
}
