//! [`Engine`]: the durable built-in tables, the views over them and the SQL functions, as one
//! DataFusion catalog shared by every session.
//!
//! Each connection gets its own [`SessionContext`] ([`Engine::session`]) so that settings stay
//! per connection, while the catalog, the memory pool and the spill directory are shared.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider, SchemaProvider,
};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{MemoryPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::memory_pool::PartitionSharePool;
use crate::storage::{BulkWriter, ConfigTableProvider, Holder, Storage, UsageTable, WriteCounts};

/// The database name clients connect to, and the DataFusion catalog name.
pub const DATABASE: &str = "spendql";
/// The schema holding every built-in table and view.
pub const SCHEMA: &str = "public";

/// The built-in views, in creation order (later views may use earlier ones).
pub(crate) const VIEWS: &[(&str, &str)] = &[
    ("spend", include_str!("../sql/views/spend.sql")),
    ("spend_daily", include_str!("../sql/views/spend_daily.sql")),
    (
        "unpriced_usage",
        include_str!("../sql/views/unpriced_usage.sql"),
    ),
    (
        "unattributed_spend",
        include_str!("../sql/views/unattributed_spend.sql"),
    ),
    (
        "attribution_coverage",
        include_str!("../sql/views/attribution_coverage.sql"),
    ),
    (
        "spend_allocated",
        include_str!("../sql/views/spend_allocated.sql"),
    ),
    (
        "reported_cost_comparison",
        include_str!("../sql/views/reported_cost_comparison.sql"),
    ),
    (
        "budget_status",
        include_str!("../sql/views/budget_status.sql"),
    ),
    ("anomalies", include_str!("../sql/views/anomalies.sql")),
    (
        "policy_violations",
        include_str!("../sql/views/policy_violations.sql"),
    ),
    (
        "recommendation_detail",
        include_str!("../sql/views/recommendation_detail.sql"),
    ),
    (
        "recommendations",
        include_str!("../sql/views/recommendations.sql"),
    ),
    (
        "keys_due_for_rotation",
        include_str!("../sql/views/keys_due_for_rotation.sql"),
    ),
    (
        "api_key_spend",
        include_str!("../sql/views/api_key_spend.sql"),
    ),
    (
        "api_key_findings",
        include_str!("../sql/views/api_key_findings.sql"),
    ),
    (
        "unit_economics",
        include_str!("../sql/views/unit_economics.sql"),
    ),
    (
        "invoice_reconciliation",
        include_str!("../sql/views/invoice_reconciliation.sql"),
    ),
    ("focus", include_str!("../sql/views/focus.sql")),
    (
        "optimisation_impact",
        include_str!("../sql/views/optimisation_impact.sql"),
    ),
    ("maturity", include_str!("../sql/views/maturity.sql")),
];

/// Tunables; [`EngineConfig::default`] suits a laptop or a small server.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Bytes users' queries may hold in memory before they spill to disk (or fail).
    /// Background work (budget evaluations, anomaly alerts, scheduled reports) has a pool
    /// of its own, a quarter of this, so it never takes memory a user's query needs.
    pub memory_limit: usize,
    /// Where spill files go; the OS temp directory when `None`.
    pub spill_dir: Option<PathBuf>,
    /// Event ids kept in memory for duplicate detection (16 bytes each, plus overhead).
    pub id_cache_entries: usize,
    /// Fold the usage write-ahead log into Parquet once it holds this many rows...
    pub compact_rows: usize,
    /// ...or this long after the last fold, whichever comes first.
    pub compact_interval: Duration,
    /// Written to the LOCK file, shown to a second process that tries the directory.
    pub holder: String,
    /// Rewrite, in the background, Parquet parts whose stored costs were priced under
    /// another catalog, so that reads use stored costs again. Long-running servers do;
    /// one-shot commands leave it to them.
    pub reprice_stale_parts: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            memory_limit: 2 * 1024 * 1024 * 1024,
            spill_dir: None,
            id_cache_entries: 4_000_000,
            compact_rows: 200_000,
            compact_interval: Duration::from_secs(30),
            holder: format!("spendql (pid {})", std::process::id()),
            reprice_stale_parts: false,
        }
    }
}

/// A pool of `bytes` (see [`PartitionSharePool`] for its policy) whose "resources
/// exhausted" errors name the five largest consumers.
fn memory_pool(bytes: usize) -> Arc<dyn MemoryPool> {
    const TOP: std::num::NonZeroUsize = std::num::NonZeroUsize::new(5).expect("5 is not zero");
    // The partitions a plan runs at once: the sessions keep DataFusion's default.
    let partitions = SessionConfig::new().target_partitions();
    Arc::new(TrackConsumersPool::new(
        PartitionSharePool::new(bytes, partitions),
        TOP,
    ))
}

/// The background pool for a users' pool of `memory_limit` bytes: a quarter of it, and at
/// least 64 MiB so that a small limit still leaves budget evaluations room to run.
fn background_memory_limit(memory_limit: usize) -> usize {
    (memory_limit / 4).max(64 * 1024 * 1024)
}

/// Parse a size like `4GiB`, `512MiB`, `1GB` or a plain byte count.
pub fn parse_size(text: &str) -> Result<usize> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| Error::Invalid(format!("not a size: {text:?} (try 4GiB or 512MiB)")))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(Error::Invalid(format!("unknown size unit in {text:?}"))),
    };
    Ok((number * factor) as usize)
}

/// A catalog built from the tables at these (pricing, models) versions.
type CachedCatalog = Option<((u64, u64), Arc<spendql_udfs::PriceCatalog>)>;

/// The price catalog of the `pricing` and `models` tables, rebuilt when either changes, so
/// a changed price is visible to the next statement.
#[derive(Debug)]
struct TablePrices {
    pricing: Arc<crate::storage::ConfigTable>,
    models: Arc<crate::storage::ConfigTable>,
    cache: Mutex<CachedCatalog>,
}

impl spendql_udfs::CatalogSource for TablePrices {
    fn current(&self) -> datafusion::common::Result<Arc<spendql_udfs::PriceCatalog>> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        // Read versions before rows: a change in between only makes the cache stale once.
        let key = (self.pricing.version(), self.models.version());
        if let Some((cached_key, catalog)) = cache.as_ref()
            && *cached_key == key
        {
            return Ok(Arc::clone(catalog));
        }
        let catalog = Arc::new(spendql_udfs::PriceCatalog::from_batches(
            &[self.pricing.rows()],
            &[self.models.rows()],
        )?);
        *cache = Some((key, Arc::clone(&catalog)));
        Ok(catalog)
    }
}

/// The attribution rules of the `attribution_rules` table, rebuilt when it changes.
#[derive(Debug)]
struct TableRules {
    table: Arc<crate::storage::ConfigTable>,
    cache: Mutex<Option<(u64, Arc<spendql_udfs::AttributionRules>)>>,
}

impl spendql_udfs::RulesSource for TableRules {
    fn current(&self) -> datafusion::common::Result<Arc<spendql_udfs::AttributionRules>> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let version = self.table.version();
        if let Some((cached, rules)) = cache.as_ref()
            && *cached == version
        {
            return Ok(Arc::clone(rules));
        }
        let rules = Arc::new(spendql_udfs::AttributionRules::from_batches(&[self
            .table
            .rows()])?);
        *cache = Some((version, Arc::clone(&rules)));
        Ok(rules)
    }
}

struct Inner {
    storage: Storage,
    prices: Arc<dyn spendql_udfs::CatalogSource>,
    rules: Arc<dyn spendql_udfs::RulesSource>,
    /// Users' queries.
    runtime: Arc<RuntimeEnv>,
    /// Background work's queries: their own memory pool (see [`EngineConfig::memory_limit`]).
    background_runtime: Arc<RuntimeEnv>,
    catalogs: Arc<dyn CatalogProviderList>,
    config: EngineConfig,
    stop: watch::Sender<bool>,
    compactor: Mutex<Option<tokio::task::JoinHandle<()>>>,
    budgets: crate::governance::BudgetBook,
}

/// The SpendQL engine. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("data_dir", &self.inner.storage.dir)
            .finish()
    }
}

impl Engine {
    /// Open (or create) the data directory `dir` with default settings.
    pub async fn open(dir: impl AsRef<Path>) -> Result<Engine> {
        Engine::open_with(dir, EngineConfig::default()).await
    }

    /// Open (or create) the data directory `dir`.
    pub async fn open_with(dir: impl AsRef<Path>, config: EngineConfig) -> Result<Engine> {
        let dir = dir.as_ref().to_path_buf();
        let holder = Holder {
            description: config.holder.clone(),
        };
        let ids = config.id_cache_entries;
        let storage = tokio::task::spawn_blocking(move || Storage::open(&dir, &holder, ids))
            .await
            .map_err(|e| Error::Invalid(format!("open task failed: {e}")))??;
        Engine::build(storage, config).await
    }

    /// An engine whose tables live only in memory (tests, examples, scratch work).
    pub async fn in_memory() -> Result<Engine> {
        let config = EngineConfig::default();
        let storage = Storage::in_memory(config.id_cache_entries)?;
        Engine::build(storage, config).await
    }

    async fn build(storage: Storage, config: EngineConfig) -> Result<Engine> {
        let mut disk = DiskManagerBuilder::default();
        if let Some(dir) = &config.spill_dir {
            disk = disk.with_mode(DiskManagerMode::Directories(vec![dir.clone()]));
        }
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(memory_pool(config.memory_limit))
            .with_disk_manager_builder(disk.clone())
            .build_arc()?;
        let background_runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(memory_pool(background_memory_limit(config.memory_limit)))
            .with_disk_manager_builder(disk)
            .build_arc()?;

        let schema = MemorySchemaProvider::new();
        schema.register_table(
            "usage".into(),
            Arc::new(UsageTable(Arc::clone(&storage.usage))),
        )?;
        for table in &storage.config {
            schema.register_table(
                table.name().to_string(),
                Arc::new(ConfigTableProvider(Arc::clone(table))),
            )?;
        }
        let catalog: Arc<dyn CatalogProvider> = Arc::new(MemoryCatalogProvider::new());
        catalog.register_schema(SCHEMA, Arc::new(schema))?;
        catalog.register_schema(
            crate::pgcompat::PG_CATALOG,
            Arc::new(crate::pgcompat::catalog::PgCatalog::new(Arc::downgrade(
                &catalog,
            ))),
        )?;
        catalog.register_schema(
            crate::pgcompat::INFORMATION_SCHEMA,
            Arc::new(crate::pgcompat::information_schema::InformationSchema::new(
                Arc::downgrade(&catalog),
            )),
        )?;
        let catalogs = MemoryCatalogProviderList::new();
        catalogs.register_catalog(DATABASE.to_string(), catalog);

        let table = |name: &str| {
            storage
                .config_table(name)
                .map(Arc::clone)
                .ok_or_else(|| Error::Invalid(format!("built-in table {name} is missing")))
        };
        let prices: Arc<dyn spendql_udfs::CatalogSource> = Arc::new(TablePrices {
            pricing: table("pricing")?,
            models: table("models")?,
            cache: Mutex::new(None),
        });
        storage.usage.set_prices(Arc::clone(&prices));
        let rules: Arc<dyn spendql_udfs::RulesSource> = Arc::new(TableRules {
            table: table("attribution_rules")?,
            cache: Mutex::new(None),
        });
        let (stop, _) = watch::channel(false);
        let engine = Engine {
            inner: Arc::new(Inner {
                prices,
                rules,
                storage,
                runtime,
                background_runtime,
                catalogs: Arc::new(catalogs),
                config,
                stop,
                compactor: Mutex::new(None),
                budgets: crate::governance::BudgetBook::default(),
            }),
        };
        engine.seed_catalog().await?;
        engine.create_views().await?;
        engine.start_compactor();
        Ok(engine)
    }

    /// A new data directory starts with the bundled price catalog (`catalog/*.csv`), so
    /// usage is costed without any setup. Only tables never written are seeded: a user who
    /// emptied `pricing` keeps it empty.
    async fn seed_catalog(&self) -> Result<()> {
        if self.inner.storage.dir.is_none() {
            return Ok(());
        }
        let unseeded = |name: &str| {
            self.inner
                .storage
                .config_table(name)
                .is_some_and(|t| !t.has_file() && t.rows().num_rows() == 0)
        };
        if !unseeded("pricing") && !unseeded("models") {
            return Ok(());
        }
        let (pricing, models) = crate::pricing::bundled()?;
        if unseeded("pricing") {
            self.append("pricing", vec![pricing]).await?;
        }
        if unseeded("models") {
            self.append("models", vec![models]).await?;
        }
        Ok(())
    }

    /// Load the bundled price catalog into this engine's `pricing` and `models` tables
    /// (for in-memory engines, which start empty).
    pub async fn load_bundled_catalog(&self) -> Result<()> {
        let (pricing, models) = crate::pricing::bundled()?;
        self.append("pricing", vec![pricing]).await?;
        self.append("models", vec![models]).await?;
        Ok(())
    }

    /// Merge `incoming` price rows into `pricing` (upsert by provider, model, tier, region,
    /// long-context threshold, time window and effective_from; nothing is deleted),
    /// durably, and report what changed.
    pub async fn import_prices(
        &self,
        incoming: arrow::record_batch::RecordBatch,
        dating: crate::pricing::Dating,
    ) -> Result<crate::pricing::ImportReport> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let table = inner
                .storage
                .config_table("pricing")
                .ok_or_else(|| Error::Invalid("built-in table pricing is missing".into()))?;
            crate::pricing::import_into(table, &incoming, dating)
        })
        .await
        .map_err(|e| Error::Invalid(format!("import task failed: {e}")))?
    }

    async fn create_views(&self) -> Result<()> {
        let ctx = self.session();
        for (name, sql) in VIEWS {
            let statement = format!("CREATE OR REPLACE VIEW {name} AS {sql}");
            ctx.sql(&statement)
                .await
                .map_err(|e| Error::Invalid(format!("built-in view {name} does not plan: {e}")))?;
        }
        Ok(())
    }

    /// A new session (one per connection): its own settings, the shared catalog and runtime.
    pub fn session(&self) -> SessionContext {
        self.session_on(Arc::clone(&self.inner.runtime))
    }

    /// A session for the server's own work — budget evaluations, anomaly alerts, scheduled
    /// reports — drawing on the background memory pool rather than the users' one. Under
    /// load such work can hold its reservations for a while; in the shared pool that made a
    /// user's query fail with 53200.
    pub fn background_session(&self) -> SessionContext {
        self.session_on(Arc::clone(&self.inner.background_runtime))
    }

    fn session_on(&self, runtime: Arc<RuntimeEnv>) -> SessionContext {
        let config = SessionConfig::new()
            .with_default_catalog_and_schema(DATABASE, SCHEMA)
            .with_create_default_catalog_and_schema(false)
            // Ours, with PostgreSQL's type names (pgcompat::information_schema).
            .with_information_schema(false)
            .set_str("datafusion.execution.time_zone", "+00:00");
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_catalog_list(Arc::clone(&self.inner.catalogs))
            .with_default_features()
            .build();
        let ctx = SessionContext::new_with_state(state);
        crate::pgcompat::functions::register(&ctx);
        spendql_udfs::register_all_with_sources(
            &ctx,
            Arc::clone(&self.inner.prices),
            Arc::clone(&self.inner.rules),
        );
        if let Some(pricing) = self.inner.storage.config_table("pricing") {
            ctx.register_udtf(
                crate::pricing::sql::NAME,
                Arc::new(crate::pricing::sql::PricingImport::new(Arc::clone(pricing))),
            );
        }
        ctx.register_udtf(
            crate::storage::priced::NAME,
            Arc::new(crate::storage::priced::PricedUsage::new(Arc::clone(
                &self.inner.storage.usage,
            ))),
        );
        ctx.register_udtf(
            crate::governance::budget_check::NAME,
            Arc::new(crate::governance::budget_check::BudgetCheck::new(
                self.clone(),
            )),
        );
        ctx
    }

    /// The latest evaluation of every budget, shared by `budget_check` and the monitor.
    pub fn budgets(&self) -> &crate::governance::BudgetBook {
        &self.inner.budgets
    }

    /// How many writes have stored usage rows since the engine opened.
    pub fn usage_commit_count(&self) -> u64 {
        self.inner.storage.usage.commit_count()
    }

    /// Changes after every write that stores usage rows.
    pub fn subscribe_usage_commits(&self) -> watch::Receiver<u64> {
        self.inner.storage.usage.subscribe_commits()
    }

    /// Plan `sql` in a new session. The DataFrame runs when collected or streamed.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        Ok(self.session().sql(sql).await?)
    }

    /// Plan `sql` in a new [`Engine::background_session`].
    pub async fn background_sql(&self, sql: &str) -> Result<DataFrame> {
        Ok(self.background_session().sql(sql).await?)
    }

    /// The data directory, `None` for an in-memory engine.
    pub fn data_dir(&self) -> Option<&Path> {
        self.inner.storage.dir.as_deref()
    }

    /// What opening found (WAL rows replayed, a torn tail cut).
    pub fn open_report(&self) -> &crate::storage::OpenReport {
        &self.inner.storage.open_report
    }

    /// Store usage rows the way `INSERT` does: skip stored event ids, append to the
    /// write-ahead log and fsync, then publish (queryable at once). Blocking.
    pub fn insert_usage(&self, batch: &arrow::record_batch::RecordBatch) -> Result<WriteCounts> {
        self.inner.storage.usage.append(batch)
    }

    /// A built-in configuration table (e.g. `provider_costs`), for whole-table writes.
    pub fn config_table(&self, name: &str) -> Option<Arc<crate::storage::ConfigTable>> {
        self.inner.storage.config_table(name).cloned()
    }

    /// Start a whole-or-nothing bulk write into `usage` (blocking; use from a blocking thread).
    pub fn usage_writer(&self) -> BulkWriter {
        self.inner.storage.usage.bulk_writer()
    }

    /// Append rows to a built-in table durably. Rows must have the table's schema.
    pub async fn append(
        &self,
        table: &str,
        batches: Vec<arrow::record_batch::RecordBatch>,
    ) -> Result<WriteCounts> {
        let inner = Arc::clone(&self.inner);
        let table = table.to_string();
        tokio::task::spawn_blocking(move || {
            if table == "usage" {
                let mut writer = inner.storage.usage.bulk_writer();
                for batch in &batches {
                    writer.write(batch)?;
                }
                writer.commit()
            } else {
                let t = inner
                    .storage
                    .config_table(&table)
                    .ok_or_else(|| Error::Invalid(format!("no built-in table named {table}")))?;
                let stored = t.append(&batches)?;
                Ok(WriteCounts {
                    stored,
                    duplicates: 0,
                })
            }
        })
        .await
        .map_err(|e| Error::Invalid(format!("write task failed: {e}")))?
    }

    /// Fold buffered usage rows into Parquet now.
    pub async fn compact(&self) -> Result<u64> {
        let usage = Arc::clone(&self.inner.storage.usage);
        tokio::task::spawn_blocking(move || usage.compact())
            .await
            .map_err(|e| Error::Invalid(format!("compaction task failed: {e}")))?
    }

    fn start_compactor(&self) {
        if self.inner.storage.dir.is_none() || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let usage = Arc::clone(&self.inner.storage.usage);
        let mut stop = self.inner.stop.subscribe();
        let threshold = self.inner.config.compact_rows;
        let interval = self.inner.config.compact_interval;
        let reprice = self.inner.config.reprice_stale_parts;
        let handle = tokio::spawn(async move {
            let mut since_last = Duration::ZERO;
            let tick = Duration::from_millis(500).min(interval);
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = tokio::time::sleep(tick) => {}
                }
                since_last += tick;
                let buffered = usage.buffered_rows();
                if buffered > 0 && (buffered >= threshold || since_last >= interval) {
                    since_last = Duration::ZERO;
                    let usage = Arc::clone(&usage);
                    match tokio::task::spawn_blocking(move || usage.compact()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => tracing::error!("usage compaction failed (will retry): {e}"),
                        Err(e) => tracing::error!("usage compaction task failed: {e}"),
                    }
                }
                if reprice {
                    let usage = Arc::clone(&usage);
                    match tokio::task::spawn_blocking(move || usage.maintain_stored_costs()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::error!("re-pricing usage failed (will retry): {e}"),
                        Err(e) => tracing::error!("re-pricing task failed: {e}"),
                    }
                }
            }
        });
        if let Ok(mut slot) = self.inner.compactor.lock() {
            *slot = Some(handle);
        }
    }

    /// Stop background work and fold the WAL into Parquet. Data is durable without this;
    /// it only makes the next start faster.
    pub async fn shutdown(&self) -> Result<()> {
        let _ = self.inner.stop.send(true);
        let handle = self.inner.compactor.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            let _ = handle.await;
        }
        self.compact().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("4GiB").expect("size"), 4 * 1024 * 1024 * 1024);
        assert_eq!(parse_size("512 MiB").expect("size"), 512 * 1024 * 1024);
        assert_eq!(parse_size("1000").expect("size"), 1000);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("4 parsecs").is_err());
    }

    /// An engine on a fresh data directory whose users' pool is `bytes`, spilling into a
    /// directory of its own; the directories live as long as the returned guard.
    async fn engine_with_memory_limit(bytes: usize) -> (Engine, [tempfile::TempDir; 2]) {
        let dir = tempfile::tempdir().expect("tempdir");
        let spill = tempfile::tempdir().expect("spill dir");
        let config = EngineConfig {
            memory_limit: bytes,
            spill_dir: Some(spill.path().to_path_buf()),
            ..EngineConfig::default()
        };
        let engine = Engine::open_with(dir.path(), config).await.expect("open");
        (engine, [dir, spill])
    }

    /// The text of `explain` (`EXPLAIN` or `EXPLAIN ANALYZE`) of `sql`.
    async fn explained(engine: &Engine, explain: &str, sql: &str) -> String {
        let plan = engine
            .sql(&format!("{explain} {sql}"))
            .await
            .expect("plan")
            .collect()
            .await
            .expect("explain");
        arrow::util::pretty::pretty_format_batches(&plan)
            .expect("format")
            .to_string()
    }

    /// Assert that running `sql` made an operator whose plan line contains `operator` spill.
    async fn assert_spilled(engine: &Engine, sql: &str, operator: &str) {
        let text = explained(engine, "EXPLAIN ANALYZE", sql).await;
        let spilled = text.lines().any(|line| {
            line.contains(operator)
                && line
                    .split("spill_count=")
                    .nth(1)
                    .is_some_and(|count| !count.starts_with('0'))
        });
        assert!(spilled, "{operator} did not spill:\n{text}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queries_larger_than_the_memory_limit_spill_and_complete() {
        let (engine, _dirs) = engine_with_memory_limit(32 * 1024 * 1024).await;
        // 6M rows to sort (48 MB of keys alone) and 6M groups, in a 32 MiB pool.
        let sorted = engine
            .sql(
                "SELECT v, r FROM (SELECT v, row_number() OVER (ORDER BY v DESC) AS r \
                   FROM generate_series(1, 6000000) AS t(v)) \
                 WHERE r IN (1, 6000000) ORDER BY r",
            )
            .await
            .expect("plan")
            .collect()
            .await
            .expect("the sort spills");
        let sorted = arrow::compute::concat_batches(&sorted[0].schema(), &sorted).expect("concat");
        let v = sorted
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>();
        let r = sorted
            .column(1)
            .as_primitive::<arrow::datatypes::UInt64Type>();
        assert_eq!(v.values().to_vec(), vec![6_000_000, 1]);
        assert_eq!(r.values().to_vec(), vec![1, 6_000_000]);
        // ...because the sort spilled (48 MB of keys in a 32 MiB pool).
        assert_spilled(
            &engine,
            "SELECT max(r) FROM (SELECT row_number() OVER (ORDER BY v DESC) \
               AS r FROM generate_series(1, 6000000) AS t(v))",
            "SortExec",
        )
        .await;
        let grouped = engine
            .sql(
                "SELECT count(*), sum(c) FROM \
                   (SELECT v % 5999999 AS k, count(*) AS c FROM generate_series(1, 6000000) AS t(v) \
                    GROUP BY 1)",
            )
            .await
            .expect("plan")
            .collect()
            .await
            .expect("the aggregate spills");
        let groups = grouped[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>();
        let rows = grouped[0]
            .column(1)
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!((groups.value(0), rows.value(0)), (5_999_999, 6_000_000));
        engine.shutdown().await.expect("shutdown");
    }

    #[tokio::test]
    async fn series_aggregates_over_more_points_than_the_memory_limit_spill_and_complete() {
        let (engine, _dirs) = engine_with_memory_limit(40 * 1024 * 1024).await;
        // 20,000 groups of 90 daily points: 29 MB of points, and more as the aggregate
        // holds them, in a 40 MiB pool shared by two partitions. Group g's values are
        // g, g + 1, ..., so its linear forecast one day on is g + 90.
        let forecasts = "SELECT g, forecast(to_timestamp(d * 86400), v, 1, 'linear') AS f \
             FROM (SELECT n % 20000 AS g, n / 20000 AS d, CAST(n % 20000 + n / 20000 AS DOUBLE) AS v \
                   FROM generate_series(0, 1799999) AS t(n)) GROUP BY g";
        let summary = format!("SELECT count(*), sum(f[1]['yhat']) FROM ({forecasts})");
        let batches = engine
            .sql(&summary)
            .await
            .expect("plan")
            .collect()
            .await
            .expect("the aggregate spills instead of failing");
        let groups = batches[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0);
        let total = batches[0]
            .column(1)
            .as_primitive::<arrow::datatypes::Float64Type>()
            .value(0);
        assert_eq!(groups, 20_000);
        // Σ (g + 90) for g below 20,000.
        let expected = (19_999.0 * 20_000.0) / 2.0 + 90.0 * 20_000.0;
        assert!(
            (total - expected).abs() < 1e-6 * expected,
            "{total} vs {expected}"
        );
        // ...because the grouped aggregate spilled.
        assert_spilled(&engine, &summary, "AggregateExec: mode=FinalPartitioned").await;
        engine.shutdown().await.expect("shutdown");
    }

    #[tokio::test]
    async fn background_work_cannot_take_memory_from_users_queries() {
        use datafusion::execution::memory_pool::MemoryConsumer;
        let engine = Engine::in_memory().await.expect("engine");
        let users = engine.session().runtime_env().memory_pool.clone();
        let background = engine
            .background_session()
            .runtime_env()
            .memory_pool
            .clone();
        let limit = EngineConfig::default().memory_limit;

        // Background work holding all it may hold...
        let held = MemoryConsumer::new("budget evaluation").register(&background);
        held.try_grow(limit / 4)
            .expect("the background pool's size");
        assert!(held.try_grow(1).is_err(), "the background pool is bounded");
        // ...leaves every byte of the users' limit to a user's query.
        let query = MemoryConsumer::new("user query").register(&users);
        query.try_grow(limit).expect("the whole users' pool");
        assert!(query.try_grow(1).is_err());
        assert_eq!(background.reserved(), limit / 4);
    }

    #[tokio::test]
    async fn every_table_and_view_is_queryable_in_memory() {
        let engine = Engine::in_memory().await.expect("engine");
        for def in crate::schema::tables() {
            let df = engine
                .sql(&format!("SELECT * FROM {}", def.name))
                .await
                .expect("plan");
            assert_eq!(
                df.schema().fields().len(),
                def.schema.fields().len(),
                "{}",
                def.name
            );
        }
        for (view, _) in VIEWS {
            engine
                .sql(&format!("SELECT * FROM {view}"))
                .await
                .expect("view plans")
                .collect()
                .await
                .expect("view runs");
        }
    }

    /// DataFusion copies an expensive call into each struct field read it pushes towards the
    /// scan; `spend` must still cost every row once, below a filter on `ts` too.
    #[tokio::test]
    async fn spend_costs_each_row_once_below_a_filter() {
        let engine = Engine::in_memory().await.expect("engine");
        for query in [
            "SELECT customer, sum(list_cost) FROM spend \
             WHERE ts >= now() - INTERVAL '30 days' GROUP BY customer",
            "SELECT sum(input_cost), sum(cached_cost), sum(cache_write_cost), \
             sum(output_cost), sum(request_cost), sum(effective_cost) FROM spend \
             WHERE ts >= TIMESTAMP '2026-10-01' AND team = 'search'",
        ] {
            let text = explained(&engine, "EXPLAIN", query).await;
            let physical = text.split("physical_plan").nth(1).expect("a physical plan");
            assert_eq!(
                physical.matches("usage_cost(").count(),
                1,
                "{query}\n{physical}"
            );
        }
    }

    #[tokio::test]
    async fn an_in_memory_engine_can_load_the_bundled_catalog() {
        let engine = Engine::in_memory().await.expect("engine");
        engine.load_bundled_catalog().await.expect("load");
        let rows = engine
            .sql(
                "SELECT CAST(token_cost('openai', 'gpt-4o-2024-08-06', now(), 1000, 100) IS NOT NULL AS VARCHAR) \
                 || ' ' || CAST((SELECT count(*) FROM pricing) > 1000 AS VARCHAR) AS ok",
            )
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        let text = arrow::util::pretty::pretty_format_batches(&rows)
            .expect("fmt")
            .to_string();
        assert!(text.contains("true true"), "{text}");
    }

    #[tokio::test]
    async fn insert_fills_defaults_and_skips_duplicates() {
        let engine = Engine::in_memory().await.expect("engine");
        let insert = "INSERT INTO usage (event_id, ts, provider, model, input_tokens, output_tokens) \
                      VALUES ('e1', '2026-10-01T12:00:00Z', 'openai', 'gpt-4o', 100, 20)";
        let first = engine
            .sql(insert)
            .await
            .expect("plan")
            .collect()
            .await
            .expect("insert");
        assert_eq!(
            first[0]
                .column(0)
                .as_primitive::<arrow::datatypes::UInt64Type>()
                .value(0),
            1
        );
        let again = engine
            .sql(insert)
            .await
            .expect("plan")
            .collect()
            .await
            .expect("insert");
        assert_eq!(
            again[0]
                .column(0)
                .as_primitive::<arrow::datatypes::UInt64Type>()
                .value(0),
            0
        );
        let rows = engine
            .sql("SELECT requests, service_tier, cached_input_tokens FROM usage")
            .await
            .expect("plan")
            .collect()
            .await
            .expect("select");
        let text = arrow::util::pretty::pretty_format_batches(&rows)
            .expect("fmt")
            .to_string();
        assert!(
            text.contains("| 1        | standard     | 0                   |"),
            "{text}"
        );
    }

    /// The one-row, one-column answer of `sql`, as text.
    async fn scalar(engine: &Engine, sql: &str) -> String {
        let batches = engine
            .sql(sql)
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        arrow::util::display::array_value_to_string(batches[0].column(0), 0).expect("text")
    }

    #[tokio::test]
    async fn a_price_change_after_a_statement_is_planned_does_not_reach_its_answer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).await.expect("open");
        let price = |per_mtok: &str, from: &str| {
            format!(
                "INSERT INTO pricing (provider, model, effective_from, input_per_mtok, \
                 output_per_mtok) VALUES ('acme', 'm1', TIMESTAMP '{from} 00:00:00', {per_mtok}, 0)"
            )
        };
        scalar(&engine, &price("2", "2026-01-01")).await;
        // A row in the WAL: priced when read, by the live function.
        scalar(
            &engine,
            "INSERT INTO usage (event_id, ts, provider, model, input_tokens, output_tokens) \
             VALUES ('a', TIMESTAMP '2026-10-01 10:00:00', 'acme', 'm1', 1000000, 0)",
        )
        .await;
        let total = "SELECT sum(input_cost) FROM priced_usage()";
        let planned = engine
            .sql(total)
            .await
            .expect("plan")
            .create_physical_plan()
            .await
            .expect("physical plan");
        // Corrected after the plan chose its catalog, before it runs.
        scalar(&engine, &price("3", "2026-09-01")).await;
        let batches = datafusion::physical_plan::collect(planned, engine.session().task_ctx())
            .await
            .expect("run");
        let answered =
            arrow::util::display::array_value_to_string(batches[0].column(0), 0).expect("text");
        assert_eq!(answered, "2.000000000000");
        assert_eq!(scalar(&engine, total).await, "3.000000000000");
        engine.shutdown().await.expect("shutdown");
    }
}
