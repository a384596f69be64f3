//! SpendQL: AI spend management in SQL.
//!
//! An embedded analytics engine on Apache DataFusion with durable built-in tables for
//! provider usage, prices, budgets and policies, SQL functions for token costing and
//! forecasting, and a PostgreSQL wire-protocol server.
//!
//! # Layout
//! - [`schema`]: the built-in tables of the spec (names, types, defaults).
//! - [`storage`]: the data directory: write-ahead log, day-partitioned Parquet, atomic files.
//! - [`engine`]: [`Engine`], the catalog, views and per-connection sessions.
//! - [`ingest`]: streaming CSV, JSON lines and Parquet ingest with whole-file atomicity.
//! - [`server`]: the PostgreSQL wire-protocol endpoint.
//! - [`governance`]: budget evaluation, alerts and webhooks, `budget_check`.
//! - [`background`]: the monitor's and scheduler's own low-priority runtime.
//! - [`demo`]: the seeded demo data set.
//! - [`output`]: table, CSV and JSON rendering for the CLI.
//! - [`pricing`]: the bundled price catalog and genai-prices / LiteLLM / CSV price imports.
//!
//! # Example
//! ```no_run
//! # async fn run() -> spendql::Result<()> {
//! let engine = spendql::Engine::in_memory().await?;
//! let rows = engine.sql("SELECT count(*) FROM usage").await?.collect().await?;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod background;
pub mod demo;
pub mod engine;
pub mod error;
pub mod function_table;
pub mod governance;
pub mod ingest;
pub mod memory_pool;
pub mod otlp;
pub mod output;
pub mod pgcompat;
pub mod pricing;
pub mod report;
pub mod schema;
pub mod server;
pub mod storage;

pub use engine::{Engine, EngineConfig};
pub use error::{Error, Result};
