//! The `usage` table: write-ahead logged rows in memory plus day-partitioned Parquet files.
//!
//! Writes come two ways. Statements (`INSERT`, and later `COPY` and OTLP) append one WAL
//! record each, fsynced before they are acknowledged, and the rows join an in-memory buffer
//! that a background task folds into Parquet ([`UsageStore::compact`]). Bulk ingest
//! ([`BulkWriter`]) streams straight into staged Parquet files and publishes them with one
//! manifest update, so a file is stored whole or not at all and memory stays flat.
//!
//! Every write goes through one writer lock, which also guards the event-id index used to
//! skip rows whose `event_id` is already stored.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, filter_record_batch, take_record_batch};
use arrow::datatypes::{Decimal128Type, SchemaRef, TimestampMicrosecondType};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{ColumnarValue, Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan};
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use spendql_udfs::usage_cost;
use spendql_udfs::{CatalogSource, PriceCatalog};

use super::dedupe::{DayGroups, EventIdIndex, IdSet, day_of_micros, day_string};
use super::durable;
use super::manifest::{Manifest, RetiredFile, UsageFile, model_pairs};
use super::wal::{self, Wal};
use crate::error::{Error, Result};
use crate::schema;

/// Rows per Parquet row group written by compaction and ingest.
const ROW_GROUP_ROWS: usize = 128 * 1024;
/// Bulk ingest flushes row groups once its open writers buffer this many bytes in all.
const BULK_BUFFER_BYTES: usize = 64 * 1024 * 1024;
/// Bulk writes split rows by day in chunks of about this many rows.
const BULK_PENDING_ROWS: usize = 256 * 1024;
/// Settling a bulk write's day part sorts at most this many rows at a time.
const SETTLE_CHUNK_ROWS: usize = 256 * 1024;
/// Parts re-priced per call of [`UsageStore::maintain_stored_costs`], so that one call
/// (one tick of the background task) stays short.
const REPRICE_PARTS_PER_CALL: usize = 4;
/// How long a part replaced by a rewrite stays on disk for queries planned before the
/// swap, as Delta Lake keeps files for a retention period before VACUUM. A query still
/// opening files this long after it was planned fails to find one: an error, never a
/// wrong answer.
pub const RETIRED_GRACE: std::time::Duration = std::time::Duration::from_secs(600);

/// Counts from one write.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteCounts {
    pub stored: u64,
    pub duplicates: u64,
}

/// What readers see: the published Parquet files and the rows still only in the WAL.
#[derive(Debug, Default)]
struct Snapshot {
    files: Vec<UsageFile>,
    buffer: Vec<RecordBatch>,
    buffered_rows: usize,
}

/// State only the writer touches.
#[derive(Debug)]
struct Writer {
    wal: Option<Wal>,
    manifest: Manifest,
    ids: EventIdIndex,
}

/// The `usage` table.
#[derive(Debug)]
pub struct UsageStore {
    /// `None` for an in-memory engine: nothing is written to disk.
    data_dir: Option<PathBuf>,
    schema: SchemaRef,
    /// The schema queries see: text as `Utf8View`, so a scan hands on the Parquet
    /// dictionary's strings without copying them into one buffer per batch.
    read_schema: SchemaRef,
    snapshot: RwLock<Snapshot>,
    writer: Mutex<Writer>,
    defaults: HashMap<String, Expr>,
    /// Counts commits that stored rows, so budget evaluation runs after each one.
    commits: tokio::sync::watch::Sender<u64>,
    /// The price catalog in force: new Parquet parts store each row's cost parts priced
    /// with it (see [`crate::storage::priced`]). Set once by the engine.
    prices: OnceLock<Arc<dyn CatalogSource>>,
    /// (part, its fingerprint under the catalog) pairs re-pricing could not rewrite (rows
    /// it cannot price, or an error): not tried again while its models' prices stay.
    unpriceable: Mutex<std::collections::HashSet<(String, String)>>,
}

/// What opening found in the data directory.
#[derive(Debug, Default)]
pub struct OpenReport {
    pub replayed_rows: u64,
    pub truncated_bytes: u64,
    pub truncated_file: Option<PathBuf>,
}

impl UsageStore {
    /// Open `usage` in `data_dir` (or in memory), replaying the write-ahead log.
    pub fn open(
        data_dir: Option<&Path>,
        id_cache_entries: usize,
        defaults: HashMap<String, Expr>,
    ) -> Result<(Arc<Self>, OpenReport)> {
        let schema = schema::usage_schema();
        let mut report = OpenReport::default();
        let mut snapshot = Snapshot::default();
        let (manifest, wal) = match data_dir {
            None => (Manifest::default(), None),
            Some(dir) => {
                let manifest = Manifest::load(dir)?;
                for file in &manifest.usage_files {
                    check_part(&dir.join(&file.path), file.rows)?;
                }
                let wal_dir = dir.join("wal");
                let replay = wal::replay(&wal_dir, manifest.wal_checkpoint, &schema)?;
                report.truncated_bytes = replay.truncated_bytes;
                report.truncated_file = replay.truncated_file;
                let mut newest = manifest.wal_checkpoint + 1;
                for record in replay.records {
                    newest = newest.max(record.segment);
                    report.replayed_rows += record.batch.num_rows() as u64;
                    snapshot.buffered_rows += record.batch.num_rows();
                    snapshot.buffer.push(record.batch);
                }
                snapshot.files = manifest.usage_files.clone();
                let wal = Wal::open(&wal_dir, newest)?;
                (manifest, Some(wal))
            }
        };
        let store = Arc::new(UsageStore {
            data_dir: data_dir.map(Path::to_path_buf),
            read_schema: schema::read_schema(&schema),
            schema,
            snapshot: RwLock::new(snapshot),
            writer: Mutex::new(Writer {
                wal,
                manifest,
                ids: EventIdIndex::new(id_cache_entries),
            }),
            defaults,
            commits: tokio::sync::watch::Sender::new(0),
            prices: OnceLock::new(),
            unpriceable: Mutex::default(),
        });
        Ok((store, report))
    }

    /// Background upkeep of stored costs: rewrite a few parts priced under another catalog
    /// (after a price is added or corrected, or written before costs were stored), and
    /// delete parts retired longer than [`RETIRED_GRACE`] ago. Blocking.
    pub fn maintain_stored_costs(&self) -> Result<()> {
        self.reprice_stale(REPRICE_PARTS_PER_CALL)?;
        let cutoff = unix_seconds().saturating_sub(RETIRED_GRACE.as_secs());
        self.purge_retired(cutoff)?;
        Ok(())
    }

    /// Rewrite up to `limit` parts whose stored costs are not the current catalog's, with
    /// their costs priced under it. Returns the parts rewritten. Blocking.
    pub fn reprice_stale(&self, limit: usize) -> Result<usize> {
        let (Some(dir), Some(catalog)) = (self.data_dir.clone(), self.catalog()) else {
            return Ok(0);
        };
        let stale: Vec<UsageFile> = {
            let unpriceable = self.unpriceable.lock().unwrap_or_else(|p| p.into_inner());
            self.read_snapshot()
                .files
                .iter()
                .filter(|file| !file.costs_current(&catalog))
                .filter(|file| {
                    !unpriceable.contains(&(file.path.clone(), file.fingerprint_under(&catalog)))
                })
                .take(limit)
                .cloned()
                .collect()
        };
        let mut rewritten = 0;
        for old in stale {
            let outcome = self.reprice_part(&dir, &old, &catalog);
            if !matches!(outcome, Ok(true)) {
                // Not tried again under this catalog: queries price it when read.
                self.unpriceable
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert((old.path.clone(), old.fingerprint_under(&catalog)));
            }
            match outcome {
                Ok(true) => rewritten += 1,
                Ok(false) => {}
                Err(e) => {
                    return Err(Error::Invalid(format!(
                        "cannot re-price {} (its costs are priced when read): {e}",
                        old.path
                    )));
                }
            }
        }
        Ok(rewritten)
    }

    /// Rewrite `old` as a new part with costs priced under `catalog` and swap it in with
    /// one manifest update; `old` is retired, not deleted. False when its rows cannot all
    /// be priced (nothing is swapped) or it left the table meanwhile.
    fn reprice_part(
        &self,
        dir: &Path,
        old: &UsageFile,
        catalog: &Arc<PriceCatalog>,
    ) -> Result<bool> {
        use parquet::arrow::ProjectionMask;
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let source = dir.join(&old.path);
        let day = chrono::NaiveDate::parse_from_str(&old.day, "%Y-%m-%d")
            .map_err(|e| Error::corrupt(&source, format!("manifest day {:?}: {e}", old.day)))?
            .signed_duration_since(chrono::NaiveDate::default())
            .num_days();
        let day = i32::try_from(day).map_err(|_| Error::corrupt(&source, "day out of range"))?;
        let unreadable = |e: &dyn std::fmt::Display| Error::corrupt(&source, e.to_string());
        let file = File::open(&source).map_err(|e| Error::io(&source, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| unreadable(&e))?;
        // Only `usage`'s columns: the costs are what is being replaced.
        let usage_columns: Vec<usize> = builder
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, field)| self.schema.field_with_name(field.name()).is_ok())
            .map(|(i, _)| i)
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), usage_columns);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(ROW_GROUP_ROWS)
            .build()
            .map_err(|e| unreadable(&e))?;
        let (relative, full) = {
            let mut writer = self.lock_writer();
            part_path(dir, &mut writer.manifest, day)
        };
        let mut part = StagedPart::create(
            day,
            relative,
            full,
            Encoding::Compact,
            Some(Arc::clone(catalog)),
        )?;
        for batch in reader {
            let batch = batch.map_err(|e| unreadable(&e))?;
            // By name: a part written before a column was added reads it as NULLs.
            let columns = self
                .schema
                .fields()
                .iter()
                .map(|field| match batch.column_by_name(field.name()) {
                    Some(column) => arrow::compute::cast(column, field.data_type()),
                    None => Ok(arrow::array::new_null_array(
                        field.data_type(),
                        batch.num_rows(),
                    )),
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            part.write(&RecordBatch::try_new(Arc::clone(&self.schema), columns)?)?;
        }
        if !part.costs.as_ref().is_some_and(|costs| costs.complete) {
            // `part` drops here, removing its temporary file.
            return Ok(false);
        }
        let new = part.publish()?;
        let remove_new = || {
            let _ = std::fs::remove_file(dir.join(&new.path));
        };
        let mut writer = self.lock_writer();
        let Some(index) = writer
            .manifest
            .usage_files
            .iter()
            .position(|file| file.path == old.path)
        else {
            remove_new();
            return Ok(false);
        };
        let mut manifest = writer.manifest.clone();
        manifest.usage_files[index] = new.clone();
        manifest.retired.push(RetiredFile {
            path: old.path.clone(),
            retired_at: unix_seconds(),
        });
        if let Err(e) = manifest.store(dir) {
            remove_new();
            return Err(e);
        }
        writer.manifest = manifest;
        let mut snap = self.write_snapshot();
        if let Some(file) = snap.files.iter_mut().find(|file| file.path == old.path) {
            *file = new;
        }
        Ok(true)
    }

    /// Delete the parts retired at or before `cutoff` (seconds since the Unix epoch) and
    /// drop them from the manifest. Returns how many. Blocking.
    pub fn purge_retired(&self, cutoff: u64) -> Result<usize> {
        let Some(dir) = self.data_dir.clone() else {
            return Ok(0);
        };
        let mut writer = self.lock_writer();
        let (due, kept): (Vec<RetiredFile>, Vec<RetiredFile>) = writer
            .manifest
            .retired
            .iter()
            .cloned()
            .partition(|file| file.retired_at <= cutoff);
        if due.is_empty() {
            return Ok(0);
        }
        for file in &due {
            let path = dir.join(&file.path);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                // Deleted before a crash that kept the manifest from saying so.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        let mut manifest = writer.manifest.clone();
        manifest.retired = kept;
        manifest.store(&dir)?;
        writer.manifest = manifest;
        Ok(due.len())
    }

    /// Delete Parquet parts under `usage/` that the manifest neither lists nor retired:
    /// parts of writes interrupted between renaming a part and storing the manifest. Only
    /// safe while no write runs, i.e. at open. Returns how many.
    pub fn remove_unlisted_parts(&self) -> Result<usize> {
        let Some(dir) = self.data_dir.clone() else {
            return Ok(0);
        };
        let writer = self.lock_writer();
        let listed: std::collections::HashSet<PathBuf> = writer
            .manifest
            .usage_files
            .iter()
            .map(|file| dir.join(&file.path))
            .chain(
                writer
                    .manifest
                    .retired
                    .iter()
                    .map(|file| dir.join(&file.path)),
            )
            .collect();
        let usage_dir = dir.join("usage");
        let days = match std::fs::read_dir(&usage_dir) {
            Ok(days) => days,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io(&usage_dir, e)),
        };
        let mut removed = 0;
        for day in days {
            let day = day.map_err(|e| Error::io(&usage_dir, e))?.path();
            if !day.is_dir() {
                continue;
            }
            for part in std::fs::read_dir(&day).map_err(|e| Error::io(&day, e))? {
                let part = part.map_err(|e| Error::io(&day, e))?.path();
                let is_part = part.extension().is_some_and(|e| e == "parquet");
                if is_part && !listed.contains(&part) {
                    std::fs::remove_file(&part).map_err(|e| Error::io(&part, e))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Price the rows of new Parquet parts with `source`'s catalog (the first call wins).
    pub fn set_prices(&self, source: Arc<dyn CatalogSource>) {
        let _ = self.prices.set(source);
    }

    /// The catalog in force; None before [`UsageStore::set_prices`] or when it cannot be
    /// built (rows are then costed when read, which reports why).
    pub(crate) fn catalog(&self) -> Option<Arc<PriceCatalog>> {
        self.prices.get().and_then(|source| source.current().ok())
    }

    /// The published files and the rows only in the WAL, as one consistent view.
    pub(crate) fn contents(&self) -> (Vec<UsageFile>, Vec<RecordBatch>) {
        let snap = self.read_snapshot();
        (snap.files.clone(), snap.buffer.clone())
    }

    /// The schema queries read `usage` with.
    pub(crate) fn read_schema(&self) -> &SchemaRef {
        &self.read_schema
    }

    /// A receiver that changes after every commit that stored rows.
    pub fn subscribe_commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// How many commits have stored rows since the store was opened.
    pub fn commit_count(&self) -> u64 {
        *self.commits.borrow()
    }

    fn committed(&self) {
        self.commits.send_modify(|n| *n += 1);
    }

    /// Rows buffered in the WAL and not yet in Parquet.
    pub fn buffered_rows(&self) -> usize {
        self.read_snapshot().buffered_rows
    }

    /// Rows in the table.
    pub fn row_count(&self) -> u64 {
        let snap = self.read_snapshot();
        snap.files.iter().map(|f| f.rows).sum::<u64>() + snap.buffered_rows as u64
    }

    fn read_snapshot(&self) -> std::sync::RwLockReadGuard<'_, Snapshot> {
        self.snapshot.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_snapshot(&self) -> std::sync::RwLockWriteGuard<'_, Snapshot> {
        self.snapshot.write().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Store one statement's rows: skip stored event ids, log, fsync, then publish.
    /// Blocking: call from a blocking thread.
    pub fn append(&self, batch: &RecordBatch) -> Result<WriteCounts> {
        validate(batch)?;
        let mut writer = self.lock_writer();
        let writer = &mut *writer;
        let mut pins = std::collections::HashSet::new();
        let result = self.append_locked(writer, batch, &mut pins);
        for day in pins {
            writer.ids.unpin(day);
        }
        result
    }

    fn append_locked(
        &self,
        writer: &mut Writer,
        batch: &RecordBatch,
        pins: &mut std::collections::HashSet<i32>,
    ) -> Result<WriteCounts> {
        let keep = self.dedupe(&mut writer.ids, batch, pins)?;
        let kept = filter_record_batch(batch, &keep.mask)?;
        let counts = WriteCounts {
            stored: kept.num_rows() as u64,
            duplicates: (batch.num_rows() - kept.num_rows()) as u64,
        };
        if kept.num_rows() == 0 {
            return Ok(counts);
        }
        if let Some(wal) = writer.wal.as_mut()
            && let Err(e) = wal.append(&kept)
        {
            writer.ids.forget(&keep.added);
            return Err(e);
        }
        {
            let mut snap = self.write_snapshot();
            snap.buffered_rows += kept.num_rows();
            snap.buffer.push(kept);
        }
        self.committed();
        Ok(counts)
    }

    /// Which rows of `batch` are new; records their ids as stored. Every day touched is
    /// pinned (and added to `pins`) so that loading another day cannot evict ids that are
    /// not yet in any file; the caller unpins when its write has ended.
    fn dedupe(
        &self,
        ids: &mut EventIdIndex,
        batch: &RecordBatch,
        pins: &mut std::collections::HashSet<i32>,
    ) -> Result<Kept> {
        let event_ids = batch.column(0).as_string::<i32>();
        let ts = batch.column(1).as_primitive::<TimestampMicrosecondType>();
        let mut mask = Vec::with_capacity(batch.num_rows());
        let mut added = Vec::new();
        for row in 0..batch.num_rows() {
            let day = day_of_micros(ts.value(row));
            if !ids.is_loaded(day) {
                let loaded = self.load_day_ids(day)?;
                ids.insert_day(day, loaded);
            }
            if pins.insert(day) {
                ids.pin(day);
            }
            let hash = EventIdIndex::hash(event_ids.value(row));
            let new = ids.insert(day, hash);
            if new {
                added.push((day, hash));
            }
            mask.push(new);
        }
        Ok(Kept {
            mask: BooleanArray::from(mask),
            added,
        })
    }

    /// The new rows of a bulk write, grouped by day: not stored, and not earlier in the
    /// same write. The write's own ids live in `local` until it commits, so the shared index
    /// only ever holds ids that can be reloaded from published files, and an abort just
    /// drops `local`. Each day's index is looked up once per batch, not once per row.
    fn dedupe_bulk(
        &self,
        ids: &mut EventIdIndex,
        batch: &RecordBatch,
        mut local: Option<&mut HashMap<i32, IdSet>>,
    ) -> Result<DayGroups> {
        let event_ids = batch.column(0).as_string::<i32>();
        let ts = batch.column(1).as_primitive::<TimestampMicrosecondType>();
        let groups = DayGroups::of(ts.values()).ok_or_else(too_many_rows)?;
        let mut kept = DayGroups {
            order: Vec::with_capacity(groups.order.len()),
            days: Vec::with_capacity(groups.days.len()),
        };
        for (day, range) in groups.days {
            if !ids.is_loaded(day) {
                let loaded = self.load_day_ids(day)?;
                ids.insert_day(day, loaded);
            }
            let stored = ids.day(day);
            let mut written = local.as_deref_mut().map(|l| l.entry(day).or_default());
            let start = kept.order.len();
            for row in &groups.order[range] {
                let hash = EventIdIndex::hash(event_ids.value(*row as usize));
                if !stored.is_some_and(|set| set.contains(&hash))
                    && written.as_deref_mut().is_none_or(|set| set.insert(hash))
                {
                    kept.order.push(*row);
                }
            }
            if kept.order.len() > start {
                kept.days.push((day, start..kept.order.len()));
            }
        }
        Ok(kept)
    }

    /// The hashed event ids already stored for `day` (files and buffer).
    fn load_day_ids(&self, day: i32) -> Result<Vec<u128>> {
        let mut hashes = Vec::new();
        let (paths, buffer) = {
            let snap = self.read_snapshot();
            let day_name = day_string(day);
            let paths: Vec<PathBuf> = match &self.data_dir {
                Some(dir) => snap
                    .files
                    .iter()
                    .filter(|f| f.day == day_name)
                    .map(|f| dir.join(&f.path))
                    .collect(),
                None => Vec::new(),
            };
            (paths, snap.buffer.clone())
        };
        for path in paths {
            read_event_ids(&path, &mut hashes)?;
        }
        for batch in &buffer {
            let event_ids = batch.column(0).as_string::<i32>();
            let ts = batch.column(1).as_primitive::<TimestampMicrosecondType>();
            for row in 0..batch.num_rows() {
                if day_of_micros(ts.value(row)) == day {
                    hashes.push(EventIdIndex::hash(event_ids.value(row)));
                }
            }
        }
        Ok(hashes)
    }

    /// Fold the WAL-buffered rows into day-partitioned Parquet files and retire the log
    /// segments they came from. Blocking. Returns the rows moved.
    pub fn compact(&self) -> Result<u64> {
        let Some(dir) = self.data_dir.clone() else {
            return Ok(0);
        };
        let mut writer = self.lock_writer();
        let buffer = self.read_snapshot().buffer.clone();
        if buffer.is_empty() {
            return Ok(0);
        }
        let sealed = match writer.wal.as_mut() {
            Some(wal) => wal.rotate()?,
            None => return Ok(0),
        };
        let all = concat_batches(&self.schema, &buffer)?;
        let mut manifest = writer.manifest.clone();
        let mut new_files = Vec::new();
        let catalog = self.catalog();
        for (day, rows) in split_by_day(&all)? {
            let file = write_part(
                &dir,
                &mut manifest,
                day,
                std::slice::from_ref(&rows),
                catalog.clone(),
            )?;
            new_files.push(file);
        }
        manifest.usage_files.extend(new_files.iter().cloned());
        manifest.wal_checkpoint = sealed;
        manifest.store(&dir)?;
        writer.manifest = manifest;
        {
            let mut snap = self.write_snapshot();
            snap.files.extend(new_files);
            snap.buffer.clear();
            snap.buffered_rows = 0;
        }
        if let Some(wal) = writer.wal.as_ref() {
            wal.remove_through(sealed)?;
        }
        Ok(all.num_rows() as u64)
    }

    /// Start a bulk write that stores whole or not at all. Blocking.
    pub fn bulk_writer(self: &Arc<Self>) -> BulkWriter {
        BulkWriter {
            store: Arc::clone(self),
            days: HashMap::new(),
            local_ids: HashMap::new(),
            local_ids_deferred: false,
            written_days: Vec::new(),
            pending: Vec::new(),
            pending_rows: 0,
            memory: Vec::new(),
            counts: WriteCounts::default(),
        }
    }

    /// `files` as one table of `schema`: `read_schema`, or it with the stored cost parts.
    pub(crate) fn listing_table(
        &self,
        files: &[UsageFile],
        schema: SchemaRef,
    ) -> DfResult<Option<ListingTable>> {
        let Some(dir) = &self.data_dir else {
            return Ok(None);
        };
        if files.is_empty() {
            return Ok(None);
        }
        let urls = files
            .iter()
            .map(|f| {
                let path = dir.join(&f.path);
                ListingTableUrl::parse(path.to_string_lossy())
            })
            .collect::<DfResult<Vec<_>>>()?;
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(schema);
        Ok(Some(ListingTable::try_new(config)?))
    }
}

struct Kept {
    mask: BooleanArray,
    added: Vec<(i32, u128)>,
}

/// Reject values no adapter should produce: negative token counts.
fn validate(batch: &RecordBatch) -> Result<()> {
    for name in [
        "input_tokens",
        "cached_input_tokens",
        "cache_write_tokens",
        "cache_write_1h_tokens",
        "output_tokens",
        "reasoning_tokens",
        "requests",
    ] {
        let Some(column) = batch.column_by_name(name) else {
            continue;
        };
        let values = column.as_primitive::<arrow::datatypes::Int64Type>();
        if let Some(bad) = values.iter().flatten().find(|v| *v < 0) {
            return Err(Error::Invalid(format!(
                "usage.{name} must not be negative (got {bad})"
            )));
        }
    }
    Ok(())
}

/// Check that a published part is present, has a readable footer and the rows the manifest
/// says, so damage is reported at start with the file's name rather than mid-query.
fn check_part(path: &Path, rows: u64) -> Result<()> {
    const ADVICE: &str = "the data directory is damaged; restore the file from a backup";
    let file = File::open(path).map_err(|e| {
        Error::corrupt(
            path,
            format!("listed in manifest.json but unreadable ({e}): {ADVICE}"),
        )
    })?;
    let metadata = parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(&file)
        .map_err(|e| Error::corrupt(path, format!("not a valid Parquet file ({e}): {ADVICE}")))?;
    let found = u64::try_from(metadata.file_metadata().num_rows()).unwrap_or(0);
    if found != rows {
        return Err(Error::corrupt(
            path,
            format!("has {found} rows but manifest.json says {rows}: {ADVICE}"),
        ));
    }
    Ok(())
}

fn read_event_ids(path: &Path, out: &mut Vec<u128>) -> Result<()> {
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| Error::corrupt(path, format!("unreadable Parquet file: {e}")))?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), [0]);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| Error::corrupt(path, format!("unreadable Parquet file: {e}")))?;
    for batch in reader {
        let batch =
            batch.map_err(|e| Error::corrupt(path, format!("unreadable Parquet file: {e}")))?;
        let ids = batch
            .column(0)
            .as_string_opt::<i32>()
            .ok_or_else(|| Error::corrupt(path, "event_id column is not text"))?;
        if ids.null_count() > 0 {
            return Err(Error::corrupt(path, "event_id column has NULLs"));
        }
        for id in ids.iter().flatten() {
            out.push(EventIdIndex::hash(id));
        }
    }
    Ok(())
}

/// The hashed event id of every row of a Parquet usage file, in row order.
fn read_event_id_hashes(path: &Path) -> Result<Vec<u128>> {
    let mut hashes = Vec::new();
    read_event_ids(path, &mut hashes)?;
    Ok(hashes)
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn too_many_rows() -> Error {
    Error::Invalid("a single write is limited to 4 billion rows".into())
}

/// Split rows by their UTC day: one gather into day order, then zero-copy slices.
fn split_by_day(batch: &RecordBatch) -> Result<Vec<(i32, RecordBatch)>> {
    let ts = batch.column(1).as_primitive::<TimestampMicrosecondType>();
    let groups = DayGroups::of(ts.values()).ok_or_else(too_many_rows)?;
    if groups.days.len() == 1 {
        return Ok(groups
            .days
            .into_iter()
            .map(|(day, _)| (day, batch.clone()))
            .collect());
    }
    let sorted = take_record_batch(batch, &UInt32Array::from(groups.order))?;
    Ok(groups
        .days
        .into_iter()
        .map(|(day, range)| (day, sorted.slice(range.start, range.len())))
        .collect())
}

/// One day of [`BulkWriter::settle`]: the new part and the repeats it left out. Memory:
/// the day's ids (when deferred) and [`SETTLE_CHUNK_ROWS`] rows, twice.
fn settle_part(
    store: &UsageStore,
    mut part: StagedPart,
    deferred: bool,
    dir: &Path,
) -> Result<(StagedPart, u64)> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    part.finish()?;
    let keep: Option<Vec<bool>> = if deferred {
        let hashes = read_event_id_hashes(&part.tmp)?;
        let mut seen = IdSet::default();
        seen.reserve(hashes.len());
        Some(hashes.iter().map(|hash| seen.insert(*hash)).collect())
    } else {
        None
    };
    let repeats = keep
        .as_ref()
        .map_or(0, |k| k.iter().filter(|kept| !**kept).count() as u64);
    let (relative, full) = {
        let mut writer = store.lock_writer();
        part_path(dir, &mut writer.manifest, part.day)
    };
    let mut settled =
        StagedPart::create(part.day, relative, full, Encoding::Compact, store.catalog())?;
    let file = File::open(&part.tmp).map_err(|e| Error::io(&part.tmp, e))?;
    let unreadable = |e: &dyn std::fmt::Display| Error::corrupt(&part.tmp, e.to_string());
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(ROW_GROUP_ROWS).build())
        .map_err(|e| unreadable(&e))?;
    let mut offset = 0;
    let mut chunk: Vec<RecordBatch> = Vec::new();
    let mut chunk_rows = 0;
    for batch in reader {
        let mut batch = batch.map_err(|e| unreadable(&e))?;
        let rows = batch.num_rows();
        if let Some(keep) = &keep {
            let mask = keep
                .get(offset..offset + rows)
                .ok_or_else(|| unreadable(&"more rows than event ids"))?;
            batch = filter_record_batch(&batch, &BooleanArray::from(mask.to_vec()))?;
        }
        offset += rows;
        chunk_rows += batch.num_rows();
        chunk.push(batch);
        if chunk_rows >= SETTLE_CHUNK_ROWS {
            settled.write(&sorted_for_reading(&store.schema, &chunk)?)?;
            chunk.clear();
            chunk_rows = 0;
        }
    }
    if chunk_rows > 0 {
        settled.write(&sorted_for_reading(&store.schema, &chunk)?)?;
    }
    // Written out now: an open writer would hold the day's last row group until commit.
    settled.finish()?;
    // `part` drops here, removing its temporary file.
    Ok((settled, repeats))
}

/// `batches` as one batch sorted by provider, model and time: the order parts are written
/// in, so that costing and grouping see runs of one model.
///
/// Sorts integer keys, not strings: each distinct (provider, model) gets its rank among
/// the few a day has (comparing strings in a lexicographic sort was a tenth of ingest).
fn sorted_for_reading(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch> {
    type Pair<'a> = (Option<&'a str>, Option<&'a str>);
    // (rank, ts, batch, row) per row; ranks filled in once every pair is known.
    let mut keys: Vec<(u32, i64, u32, u32)> = Vec::new();
    let mut pairs: Vec<Pair<'_>> = Vec::new();
    let mut index: HashMap<Pair<'_>, u32, foldhash::fast::FixedState> = HashMap::default();
    for (b, batch) in batches.iter().enumerate() {
        let text = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_string_opt::<i32>())
                .ok_or_else(|| Error::Invalid(format!("usage.{name} is not text")))
        };
        let (provider, model) = (text("provider")?, text("model")?);
        let ts = batch
            .column_by_name("ts")
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
            .ok_or_else(|| Error::Invalid("usage.ts is not a timestamp".into()))?;
        let b = u32::try_from(b).map_err(|_| too_many_rows())?;
        let mut previous: Option<(Pair<'_>, u32)> = None;
        for row in 0..batch.num_rows() {
            let pair = (
                provider.is_valid(row).then(|| provider.value(row)),
                model.is_valid(row).then(|| model.value(row)),
            );
            let id = match previous {
                Some((last, id)) if last == pair => id,
                _ => {
                    let next = pairs.len() as u32;
                    let id = *index.entry(pair).or_insert_with(|| {
                        pairs.push(pair);
                        next
                    });
                    previous = Some((pair, id));
                    id
                }
            };
            let row = u32::try_from(row).map_err(|_| too_many_rows())?;
            keys.push((id, ts.value(row as usize), b, row));
        }
    }
    // Pair ids in order of first appearance -> ranks in (provider, model) order.
    let mut by_pair: Vec<u32> = (0..pairs.len() as u32).collect();
    by_pair.sort_unstable_by_key(|id| pairs[*id as usize]);
    let mut rank = vec![0u32; pairs.len()];
    for (r, id) in by_pair.into_iter().enumerate() {
        rank[id as usize] = r as u32;
    }
    for key in &mut keys {
        key.0 = rank[key.0 as usize];
    }
    keys.sort_unstable();
    let indices: Vec<(usize, usize)> = keys
        .into_iter()
        .map(|(_, _, b, row)| (b as usize, row as usize))
        .collect();
    let columns = (0..schema.fields().len())
        .map(|c| {
            let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
            arrow::compute::interleave(&arrays, &indices)
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// How a Parquet part encodes numbers and times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// Delta-encoded integers and times: about a third smaller files. Each encoder
    /// reserves a 1 MiB buffer per row group, which fragments the heap when hundreds of
    /// parts are open (measured: +200 MiB peak RSS ingesting 10M rows over 270 days), so
    /// only compaction, which writes one part at a time, uses it.
    Compact,
    /// Plain integers and times: little memory per open part, for bulk writes that may
    /// spread over hundreds of days at once. No statistics either: these are the staged
    /// parts that settling reads back whole and rewrites, and min/max of every text
    /// column was about 4% of an ingest.
    Lean,
}

fn writer_properties(encoding: Encoding) -> WriterProperties {
    use arrow::datatypes::DataType;
    use parquet::schema::types::ColumnPath;
    // Dictionaries only for repeated text (provider, model, team, ...): each dictionary
    // column reserves a table of its own per open row group, which for ids, hashes,
    // numbers and times would only cost memory and time.
    const UNIQUE_TEXT: [&str; 2] = ["event_id", "prompt_hash"];
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS));
    if encoding == Encoding::Lean {
        builder = builder.set_statistics_enabled(EnabledStatistics::None);
    }
    for field in schema::usage_schema().fields() {
        let column = ColumnPath::from(field.name().as_str());
        let number = matches!(
            field.data_type(),
            DataType::Int64 | DataType::Timestamp(_, _)
        );
        if number && encoding == Encoding::Compact {
            builder = builder.set_column_encoding(
                column.clone(),
                parquet::basic::Encoding::DELTA_BINARY_PACKED,
            );
        }
        let repeated_text =
            field.data_type() == &DataType::Utf8 && !UNIQUE_TEXT.contains(&field.name().as_str());
        if !repeated_text {
            builder = builder.set_column_dictionary_enabled(column, false);
        }
    }
    builder.build()
}

fn part_path(dir: &Path, manifest: &mut Manifest, day: i32) -> (String, PathBuf) {
    let day_name = day_string(day);
    let relative = format!(
        "usage/day={day_name}/part-{:020}.parquet",
        manifest.next_part
    );
    manifest.next_part += 1;
    let full = dir.join(&relative);
    (relative, full)
}

/// Write `batches` (all on `day`) as one published Parquet part.
fn write_part(
    dir: &Path,
    manifest: &mut Manifest,
    day: i32,
    batches: &[RecordBatch],
    catalog: Option<Arc<PriceCatalog>>,
) -> Result<UsageFile> {
    let (relative, full) = part_path(dir, manifest, day);
    let mut staged = StagedPart::create(day, relative, full, Encoding::Compact, catalog)?;
    for batch in batches {
        staged.write(batch)?;
    }
    staged.publish()
}

/// `batch` with its rows' cost parts appended, as [`schema::usage_with_stored_costs`].
fn with_stored_costs(batch: &RecordBatch, costs: &mut StoredCosts) -> Result<RecordBatch> {
    costs.note_models(batch)?;
    let schema = schema::usage_with_stored_costs();
    let parts = match stored_cost_columns(&costs.catalog, batch) {
        Some(parts) => parts,
        None => {
            costs.complete = false;
            schema.fields()[batch.num_columns()..]
                .iter()
                .map(|field| arrow::array::new_null_array(field.data_type(), batch.num_rows()))
                .collect()
        }
    };
    let mut columns = batch.columns().to_vec();
    columns.extend(parts);
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The largest cost part stored, exclusive: `DECIMAL(18,12)` holds under $1M a row.
const STORED_COST_LIMIT: u128 = 10u128.pow(18);

/// The cost parts of `batch`'s rows as stored: `DECIMAL(18,12)`, which Parquet keeps as
/// 8-byte integers (a `DECIMAL(38,12)` is 16 big-endian bytes, several times slower to
/// decode). None when the rows cannot be priced here (a negative count: the query that
/// prices them reports it) or a part does not fit.
fn stored_cost_columns(catalog: &PriceCatalog, batch: &RecordBatch) -> Option<Vec<ArrayRef>> {
    let rows = batch.num_rows();
    let args = usage_cost::ARGUMENTS
        .iter()
        .map(|name| {
            batch
                .column_by_name(name)
                .map(|c| ColumnarValue::Array(Arc::clone(c)))
        })
        .collect::<Option<Vec<_>>>()?;
    let inputs = usage_cost::inputs(&args, rows).ok()?;
    let parts = usage_cost::parts_array(catalog, &inputs, rows).ok()?;
    parts
        .columns()
        .iter()
        .map(|part| {
            let part = part.as_primitive_opt::<Decimal128Type>()?;
            let fits = part
                .values()
                .iter()
                .all(|v| v.unsigned_abs() < STORED_COST_LIMIT);
            let (precision, scale) = schema::STORED_COST_TYPE;
            fits.then(|| {
                part.clone()
                    .with_precision_and_scale(precision, scale)
                    .ok()
                    .map(|narrow| Arc::new(narrow) as ArrayRef)
            })?
        })
        .collect()
}

/// A Parquet part being written at its temporary path.
struct StagedPart {
    day: i32,
    relative: String,
    full: PathBuf,
    tmp: PathBuf,
    writer: Option<ArrowWriter<File>>,
    rows: u64,
    /// Set once the file is at its final path; until then dropping removes it.
    published: bool,
    /// The catalog the part's rows are priced with, when it stores their costs.
    costs: Option<StoredCosts>,
}

/// Cost parts stored with a part's rows.
struct StoredCosts {
    catalog: Arc<PriceCatalog>,
    /// False once a batch could not be priced: its costs are then NULL and the part is
    /// published without a catalog fingerprint, so readers price it themselves.
    complete: bool,
    /// The distinct models of the rows written, by provider: what the fingerprint covers.
    models: BTreeMap<String, BTreeSet<String>>,
}

impl StoredCosts {
    /// Note the (provider, model) pairs of `batch`'s rows.
    fn note_models(&mut self, batch: &RecordBatch) -> Result<()> {
        let text = |name: &str| -> Result<ArrayRef> {
            let column = batch
                .column_by_name(name)
                .ok_or_else(|| Error::Invalid(format!("a usage batch without {name}")))?;
            Ok(arrow::compute::cast(
                column,
                &arrow::datatypes::DataType::Utf8,
            )?)
        };
        let (providers, models) = (text("provider")?, text("model")?);
        let (providers, models) = (providers.as_string::<i32>(), models.as_string::<i32>());
        let mut previous: Option<(&str, &str)> = None;
        for (provider, model) in providers.iter().zip(models.iter()) {
            let (Some(provider), Some(model)) = (provider, model) else {
                continue;
            };
            // Parts are sorted by provider and model: most rows repeat the one before.
            if previous == Some((provider, model)) {
                continue;
            }
            previous = Some((provider, model));
            let known = self.models.get(provider).is_some_and(|m| m.contains(model));
            if !known {
                self.models
                    .entry(provider.to_string())
                    .or_default()
                    .insert(model.to_string());
            }
        }
        Ok(())
    }
}

impl StagedPart {
    /// A part at `full`'s temporary path; with a `catalog`, it also stores each row's cost
    /// parts priced with it.
    fn create(
        day: i32,
        relative: String,
        full: PathBuf,
        encoding: Encoding,
        catalog: Option<Arc<PriceCatalog>>,
    ) -> Result<Self> {
        if let Some(parent) = full.parent() {
            durable::create_dir_durable(parent)?;
        }
        let tmp = durable::tmp_path(&full);
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let file_schema = match catalog {
            Some(_) => schema::usage_with_stored_costs(),
            None => schema::usage_schema(),
        };
        let writer = ArrowWriter::try_new(file, file_schema, Some(writer_properties(encoding)))
            .map_err(|e| Error::corrupt(&tmp, e))?;
        Ok(StagedPart {
            day,
            relative,
            full,
            tmp,
            writer: Some(writer),
            rows: 0,
            published: false,
            costs: catalog.map(|catalog| StoredCosts {
                catalog,
                complete: true,
                models: BTreeMap::new(),
            }),
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let priced;
        let batch = match self.costs.as_mut() {
            Some(costs) => {
                priced = with_stored_costs(batch, costs)?;
                &priced
            }
            None => batch,
        };
        if let Some(w) = self.writer.as_mut() {
            w.write(batch).map_err(|e| Error::corrupt(&self.tmp, e))?;
            self.rows += batch.num_rows() as u64;
        }
        Ok(())
    }

    fn buffered_bytes(&self) -> usize {
        self.writer.as_ref().map_or(0, |w| w.in_progress_size())
    }

    fn flush(&mut self) -> Result<()> {
        if let Some(w) = self.writer.as_mut() {
            w.flush().map_err(|e| Error::corrupt(&self.tmp, e))?;
        }
        Ok(())
    }

    /// Complete the file (footer written) at its temporary path, e.g. to read it back.
    fn finish(&mut self) -> Result<()> {
        if let Some(w) = self.writer.take() {
            w.close().map_err(|e| Error::corrupt(&self.tmp, e))?;
        }
        Ok(())
    }

    fn publish(mut self) -> Result<UsageFile> {
        self.finish()?;
        let models = self
            .costs
            .as_mut()
            .map(|costs| std::mem::take(&mut costs.models))
            .unwrap_or_default();
        durable::publish(&self.tmp, &self.full)?;
        self.published = true;
        let bytes = std::fs::metadata(&self.full)
            .map_err(|e| Error::io(&self.full, e))?
            .len();
        Ok(UsageFile {
            path: self.relative.clone(),
            day: day_string(self.day),
            rows: self.rows,
            bytes,
            prices: self
                .costs
                .as_ref()
                .filter(|costs| costs.complete)
                .map(|costs| costs.catalog.fingerprint(model_pairs(&models))),
            models,
        })
    }
}

impl Drop for StagedPart {
    fn drop(&mut self) {
        if !self.published {
            drop(self.writer.take());
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Each day in a batch sorted by day, with its rows' range.
type DaySlices = Vec<(i32, Range<usize>)>;

/// A whole-or-nothing write of many rows, e.g. one ingested file.
///
/// Rows go to one staged Parquet part per day; [`BulkWriter::commit`] publishes them all with
/// one manifest update. Dropping it without commit removes the staged files.
pub struct BulkWriter {
    store: Arc<UsageStore>,
    days: HashMap<i32, StagedPart>,
    /// Deduplicated rows in day order, with each day's slice, waiting to be written
    /// (at most [`BULK_PENDING_ROWS`]).
    pending: Vec<(RecordBatch, DaySlices)>,
    pending_rows: usize,
    /// Ids this write stored, per day; merged into the shared index on commit. Bounded by
    /// the shared index's capacity: past it they are dropped and `local_ids_deferred` set.
    local_ids: HashMap<i32, IdSet>,
    /// Repeats within this write are found at commit, one day at a time, by reading back
    /// each staged part (see [`BulkWriter::settle`]), so memory stays bounded by the
    /// largest day however large the write (16 bytes an id, twice that in a hash set: a
    /// 100M-row file held 3 GB of ids before).
    local_ids_deferred: bool,
    /// The days this write staged parts for (set at commit).
    written_days: Vec<i32>,
    /// Rows kept in memory for an in-memory engine.
    memory: Vec<RecordBatch>,
    counts: WriteCounts,
}

impl BulkWriter {
    /// Add rows. Rows whose event id is stored, or was written earlier in this bulk write,
    /// are skipped. Once a write has held more ids than the shared index's capacity, repeats
    /// within it are skipped at commit instead, and only [`BulkWriter::commit`]'s counts
    /// include them.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<WriteCounts> {
        validate(batch)?;
        let kept = {
            let mut writer = self.store.lock_writer();
            let local = (!self.local_ids_deferred).then_some(&mut self.local_ids);
            let kept = self.store.dedupe_bulk(&mut writer.ids, batch, local)?;
            let held: usize = self.local_ids.values().map(IdSet::len).sum();
            if held > writer.ids.capacity() && self.store.data_dir.is_some() {
                self.local_ids_deferred = true;
                self.local_ids = HashMap::new();
            }
            kept
        };
        let counts = WriteCounts {
            stored: kept.order.len() as u64,
            duplicates: (batch.num_rows() - kept.order.len()) as u64,
        };
        self.counts.stored += counts.stored;
        self.counts.duplicates += counts.duplicates;
        if kept.order.is_empty() {
            return Ok(counts);
        }
        // One gather does both jobs: drop the duplicates and put the rows in day order.
        let rows = take_record_batch(batch, &UInt32Array::from(kept.order))?;
        if self.store.data_dir.is_none() {
            self.memory.push(rows);
            return Ok(counts);
        }
        // Rows wait here until there are enough to write each day in few, large writes:
        // Parquet encoding has a cost per write, and input is not always sorted by time.
        self.pending_rows += rows.num_rows();
        self.pending.push((rows, kept.days));
        if self.pending_rows >= BULK_PENDING_ROWS {
            self.write_pending()?;
        }
        Ok(counts)
    }

    /// Hand the pending rows to the staged parts, one write per day. Only one day's rows
    /// are copied at a time, so memory peaks at the pending rows plus a day of them.
    fn write_pending(&mut self) -> Result<()> {
        let Some(dir) = self.store.data_dir.clone() else {
            return Ok(());
        };
        let mut by_day: BTreeMap<i32, Vec<RecordBatch>> = BTreeMap::new();
        for (rows, days) in self.pending.drain(..) {
            for (day, range) in days {
                by_day
                    .entry(day)
                    .or_default()
                    .push(rows.slice(range.start, range.len()));
            }
        }
        self.pending_rows = 0;
        for (day, slices) in by_day {
            let rows = match slices.as_slice() {
                [one] => one.clone(),
                many => concat_batches(&self.store.schema, many)?,
            };
            let part = match self.days.entry(day) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let mut writer = self.store.lock_writer();
                    let (relative, full) = part_path(&dir, &mut writer.manifest, day);
                    v.insert(StagedPart::create(
                        day,
                        relative,
                        full,
                        Encoding::Lean,
                        None,
                    )?)
                }
            };
            part.write(&rows)?;
        }
        self.limit_memory()
    }

    /// Keep the open writers' buffered row groups under [`BULK_BUFFER_BYTES`].
    fn limit_memory(&mut self) -> Result<()> {
        let total: usize = self.days.values().map(StagedPart::buffered_bytes).sum();
        if total <= BULK_BUFFER_BYTES {
            return Ok(());
        }
        for part in self.days.values_mut() {
            if part.buffered_bytes() > 0 {
                part.flush()?;
            }
        }
        Ok(())
    }

    /// Totals so far.
    pub fn counts(&self) -> WriteCounts {
        self.counts
    }

    /// Publish every staged part with one durable manifest update.
    pub fn commit(mut self) -> Result<WriteCounts> {
        let store = Arc::clone(&self.store);
        let counts = self.publish(&store)?;
        // Now durable: the ids join the shared index (for days it has loaded; others
        // reload from the published files when next needed).
        let mut writer = store.lock_writer();
        if self.local_ids_deferred {
            // The shared index never saw these ids: days it caches reload from the files.
            // No day is pinned here: appends pin only while they hold the writer lock.
            for day in &self.written_days {
                writer.ids.unload(*day);
            }
        }
        for (day, ids) in self.local_ids.drain() {
            writer.ids.extend_loaded(day, ids);
        }
        Ok(counts)
    }

    /// Rewrite every staged day part for reading: rows sorted by provider, model and time,
    /// in full row groups, without the rows whose event id came earlier that day in this
    /// write (when repeats were deferred). Days are settled in parallel, one part each.
    ///
    /// Why: input in random time order leaves each day's rows in row groups of ~4k rows
    /// (all days share [`BULK_BUFFER_BYTES`]), and unsorted. Measured on the 10M-row
    /// benchmark, full row groups took the dashboard from 7.38 s to 6.51 s and the sort
    /// order to 5.89 s, costing runs of the same model and the resolver memo hitting its
    /// last entry.
    fn settle(&mut self, dir: &Path) -> Result<()> {
        let queue: Mutex<Vec<StagedPart>> =
            Mutex::new(self.days.drain().map(|(_, part)| part).collect());
        let workers = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, 4);
        let deferred = self.local_ids_deferred;
        let store: &UsageStore = &self.store;
        let settled: Mutex<Vec<(StagedPart, u64)>> = Mutex::new(Vec::new());
        let failure: Mutex<Option<Error>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        if failure.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                            return;
                        }
                        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop();
                        let Some(part) = next else { return };
                        match settle_part(store, part, deferred, dir) {
                            Ok(done) => {
                                settled.lock().unwrap_or_else(|p| p.into_inner()).push(done)
                            }
                            Err(e) => {
                                *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                            }
                        }
                    }
                });
            }
        });
        if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
            // Parts not settled drop here with the queue, removing their files.
            return Err(e);
        }
        for (part, repeats) in settled.into_inner().unwrap_or_else(|p| p.into_inner()) {
            self.counts.stored -= repeats;
            self.counts.duplicates += repeats;
            self.days.insert(part.day, part);
        }
        Ok(())
    }

    fn publish(&mut self, store: &Arc<UsageStore>) -> Result<WriteCounts> {
        self.write_pending()?;
        self.written_days = self.days.keys().copied().collect();
        if let Some(dir) = store.data_dir.clone() {
            self.settle(&dir)?;
        }
        let Some(dir) = store.data_dir.clone() else {
            let rows: usize = self.memory.iter().map(RecordBatch::num_rows).sum();
            {
                let mut snap = store.write_snapshot();
                snap.buffered_rows += rows;
                snap.buffer.append(&mut self.memory);
            }
            if rows > 0 {
                store.committed();
            }
            return Ok(self.counts);
        };
        let mut published = Vec::with_capacity(self.days.len());
        let mut days: Vec<_> = self.days.drain().collect();
        days.sort_by_key(|(day, _)| *day);
        for (_, part) in days {
            published.push(part.publish()?);
        }
        let mut writer = store.lock_writer();
        let mut manifest = writer.manifest.clone();
        manifest.usage_files.extend(published.iter().cloned());
        if let Err(e) = manifest.store(&dir) {
            for file in &published {
                let _ = std::fs::remove_file(dir.join(&file.path));
            }
            return Err(e);
        }
        writer.manifest = manifest;
        let stored = !published.is_empty();
        store.write_snapshot().files.extend(published);
        drop(writer);
        if stored {
            store.committed();
        }
        Ok(self.counts)
    }
}

impl Drop for BulkWriter {
    fn drop(&mut self) {
        // Staged parts remove their temporary files as they drop; the write's ids were
        // never in the shared index.
        self.days.clear();
    }
}

impl UsageStore {
    /// Plan a scan over the published files and the buffered rows.
    pub async fn scan_plan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let (files, buffer) = self.contents();
        self.scan_contents(state, &files, &buffer, projection, filters, limit)
            .await
    }

    /// Plan a scan (in [`UsageStore::read_schema`]) over `files` and `buffer`, the
    /// buffered rows; an empty scan when both are empty.
    pub(crate) async fn scan_contents(
        &self,
        state: &dyn Session,
        files: &[UsageFile],
        buffer: &[RecordBatch],
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        if let Some(table) = self.listing_table(files, Arc::clone(&self.read_schema))? {
            inputs.push(table.scan(state, projection, filters, limit).await?);
        }
        if !buffer.is_empty() || inputs.is_empty() {
            let buffer = buffer
                .iter()
                .map(|batch| schema::for_reading(batch, &self.read_schema))
                .collect::<DfResult<Vec<_>>>()?;
            inputs.push(MemorySourceConfig::try_new_exec(
                &[buffer],
                Arc::clone(&self.read_schema),
                projection.cloned(),
            )?);
        }
        UnionExec::try_new(inputs)
    }
}

/// The `usage` table as registered in the catalog: a handle on the shared store.
#[derive(Debug, Clone)]
pub struct UsageTable(pub Arc<UsageStore>);

#[async_trait]
impl TableProvider for UsageTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.0.read_schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.0.defaults.get(column)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.0.scan_plan(state, projection, filters, limit).await
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return Err(DataFusionError::NotImplemented(format!(
                "{insert_op} into usage: usage only takes INSERT"
            )));
        }
        let sink = UsageSink {
            store: Arc::clone(&self.0),
            input_schema: Arc::clone(&self.0.read_schema),
        };
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}

/// Collects an INSERT's rows and stores them as one WAL record.
#[derive(Debug)]
struct UsageSink {
    store: Arc<UsageStore>,
    /// The table's schema as queries see it, which the rows arrive in.
    input_schema: SchemaRef,
}

impl DisplayAs for UsageSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "UsageSink")
    }
}

#[async_trait]
impl DataSink for UsageSink {
    fn schema(&self) -> &SchemaRef {
        &self.input_schema
    }

    async fn write_all(
        &self,
        mut data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> DfResult<u64> {
        let mut batches = Vec::new();
        while let Some(batch) = data.next().await {
            batches.push(schema::for_storing(&batch?, &self.store.schema)?);
        }
        let batch = concat_batches(&self.store.schema, &batches)?;
        let store = Arc::clone(&self.store);
        let counts = tokio::task::spawn_blocking(move || store.append(&batch))
            .await
            .map_err(|e| DataFusionError::Execution(format!("insert task failed: {e}")))??;
        Ok(counts.stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn rows(ids: &[(&str, &str)]) -> RecordBatch {
        crate::storage::test_rows(ids)
    }

    #[test]
    fn append_skips_stored_and_repeated_event_ids() {
        let (store, _) = UsageStore::open(None, 1000, HashMap::new()).expect("open");
        let first = store
            .append(&rows(&[
                ("a", "2026-01-01T10:00:00Z"),
                ("b", "2026-01-01T11:00:00Z"),
            ]))
            .expect("append");
        assert_eq!(
            first,
            WriteCounts {
                stored: 2,
                duplicates: 0
            }
        );
        let second = store
            .append(&rows(&[
                ("a", "2026-01-01T10:00:00Z"),
                ("c", "2026-01-02T00:00:00Z"),
                ("c", "2026-01-02T00:00:00Z"),
            ]))
            .expect("append");
        assert_eq!(
            second,
            WriteCounts {
                stored: 1,
                duplicates: 2
            }
        );
        assert_eq!(store.row_count(), 3);
    }

    #[test]
    fn compaction_moves_rows_to_parquet_and_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (store, _) =
                UsageStore::open(Some(dir.path()), 1000, HashMap::new()).expect("open");
            store
                .append(&rows(&[
                    ("a", "2026-01-01T10:00:00Z"),
                    ("b", "2026-01-03T11:00:00Z"),
                ]))
                .expect("append");
            assert_eq!(store.compact().expect("compact"), 2);
            store
                .append(&rows(&[("c", "2026-01-03T12:00:00Z")]))
                .expect("append");
        }
        let (store, report) =
            UsageStore::open(Some(dir.path()), 1000, HashMap::new()).expect("reopen");
        assert_eq!(report.replayed_rows, 1);
        assert_eq!(store.row_count(), 3);
        assert!(dir.path().join("usage/day=2026-01-03").is_dir());
        // A re-sent compacted row is still recognised after restart.
        let again = store
            .append(&rows(&[("b", "2026-01-03T11:00:00Z")]))
            .expect("append");
        assert_eq!(again.duplicates, 1);
    }

    #[test]
    fn dropped_bulk_writer_stores_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = UsageStore::open(Some(dir.path()), 1000, HashMap::new()).expect("open");
        {
            let mut bulk = store.bulk_writer();
            bulk.write(&rows(&[("a", "2026-01-01T10:00:00Z")]))
                .expect("write");
        }
        assert_eq!(store.row_count(), 0);
        let mut bulk = store.bulk_writer();
        let counts = bulk
            .write(&rows(&[("a", "2026-01-01T10:00:00Z")]))
            .expect("write");
        assert_eq!(
            counts.stored, 1,
            "an aborted write must not leave its ids behind"
        );
        bulk.commit().expect("commit");
        assert_eq!(store.row_count(), 1);
        let leftovers = durable::remove_tmp_files(dir.path()).expect("clean");
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn bulk_write_dedupes_across_batches_and_days_and_sorts_each_day() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = UsageStore::open(Some(dir.path()), 1000, HashMap::new()).expect("open");
        store
            .append(&rows(&[("stored", "2026-01-02T00:00:00Z")]))
            .expect("append");
        let mut bulk = store.bulk_writer();
        let first = bulk
            .write(&rows(&[
                ("c", "2026-01-02T09:00:00Z"),
                ("a", "2026-01-01T10:00:00Z"),
                ("stored", "2026-01-02T00:00:00Z"),
                ("b", "2026-01-02T08:00:00Z"),
                ("a", "2026-01-01T10:00:00Z"),
            ]))
            .expect("write");
        assert_eq!((first.stored, first.duplicates), (3, 2));
        // The same id on another day is another event; on the same day it is a repeat.
        let second = bulk
            .write(&rows(&[
                ("a", "2026-01-03T10:00:00Z"),
                ("b", "2026-01-02T08:00:00Z"),
            ]))
            .expect("write");
        assert_eq!((second.stored, second.duplicates), (1, 1));
        bulk.commit().expect("commit");
        assert_eq!(store.row_count(), 5);

        let ids = day_ids(&store, dir.path(), "2026-01-02");
        assert_eq!(
            ids,
            vec!["b", "c"],
            "a day's rows are sorted by provider, model and time"
        );
    }

    #[test]
    fn parts_are_sorted_by_provider_model_and_time() {
        use arrow::array::StringArray;
        let batch = rows(&[
            ("1", "2026-01-01T03:00:00Z"),
            ("2", "2026-01-01T01:00:00Z"),
            ("3", "2026-01-01T02:00:00Z"),
            ("4", "2026-01-01T00:00:00Z"),
        ]);
        let schema = batch.schema();
        let mut columns = batch.columns().to_vec();
        let column = |name: &str| schema.index_of(name).expect("column");
        columns[column("provider")] = Arc::new(StringArray::from(vec![
            "openai",
            "anthropic",
            "openai",
            "openai",
        ]));
        columns[column("model")] = Arc::new(StringArray::from(vec![
            "gpt-4o",
            "claude-sonnet-4",
            "gpt-4o-mini",
            "gpt-4o",
        ]));
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns).expect("batch");
        let sorted =
            sorted_for_reading(&schema, &[batch.slice(0, 2), batch.slice(2, 2)]).expect("sort");
        let ids: Vec<&str> = sorted
            .column(0)
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect();
        assert_eq!(ids, vec!["2", "4", "1", "3"]);
    }

    /// Event ids of the published parts of `day`, in file and row order.
    fn day_ids(store: &UsageStore, dir: &Path, day: &str) -> Vec<String> {
        let snap = store.read_snapshot();
        let mut ids = Vec::new();
        for file in snap.files.iter().filter(|f| f.day == day) {
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                File::open(dir.join(&file.path)).expect("open part"),
            )
            .expect("parquet")
            .build()
            .expect("reader");
            for batch in reader {
                let batch = batch.expect("batch");
                let col = batch.column(0).as_string::<i32>();
                ids.extend(col.iter().flatten().map(str::to_string));
            }
        }
        ids
    }

    #[test]
    fn a_bulk_write_larger_than_the_id_cache_finds_its_repeats_at_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        // An id cache of 3: the write below holds more ids than that and defers.
        let (store, _) = UsageStore::open(Some(dir.path()), 3, HashMap::new()).expect("open");
        store
            .append(&rows(&[("stored", "2026-01-02T00:00:00Z")]))
            .expect("append");
        let mut bulk = store.bulk_writer();
        let first = bulk
            .write(&rows(&[
                ("c", "2026-01-02T09:00:00Z"),
                ("a", "2026-01-01T10:00:00Z"),
                ("stored", "2026-01-02T00:00:00Z"),
                ("b", "2026-01-02T08:00:00Z"),
                ("d", "2026-01-02T07:00:00Z"),
            ]))
            .expect("write");
        assert_eq!((first.stored, first.duplicates), (4, 1));
        assert!(bulk.local_ids_deferred, "4 ids held > a capacity of 3");
        assert!(bulk.local_ids.is_empty(), "deferring frees the ids");
        // Repeats of rows written before and after deferring, and within one batch.
        let second = bulk
            .write(&rows(&[
                ("b", "2026-01-02T08:00:00Z"),
                ("e", "2026-01-02T06:00:00Z"),
                ("a", "2026-01-03T10:00:00Z"),
                ("e", "2026-01-02T06:00:00Z"),
                ("stored", "2026-01-02T00:00:00Z"),
            ]))
            .expect("write");
        assert_eq!(
            (second.stored, second.duplicates),
            (4, 1),
            "only stored rows are known before commit"
        );
        let counts = bulk.commit().expect("commit");
        assert_eq!((counts.stored, counts.duplicates), (6, 4));
        assert_eq!(store.row_count(), 7);
        assert_eq!(day_ids(&store, dir.path(), "2026-01-01"), vec!["a"]);
        assert_eq!(day_ids(&store, dir.path(), "2026-01-03"), vec!["a"]);
        // (The appended row is still in the write-ahead log, not in a part.)
        assert_eq!(
            day_ids(&store, dir.path(), "2026-01-02"),
            vec!["e", "d", "b", "c"],
            "first occurrences, sorted by time"
        );
        assert_eq!(durable::remove_tmp_files(dir.path()).expect("clean"), 0);

        // The shared index dropped the day it had cached: re-sent rows are recognised, by
        // a bulk write and by an append.
        let mut again = store.bulk_writer();
        again
            .write(&rows(&[
                ("e", "2026-01-02T06:00:00Z"),
                ("c", "2026-01-02T09:00:00Z"),
            ]))
            .expect("write");
        assert_eq!(again.commit().expect("commit").duplicates, 2);
        let appended = store
            .append(&rows(&[("d", "2026-01-02T07:00:00Z")]))
            .expect("append");
        assert_eq!(appended.duplicates, 1);
        assert_eq!(store.row_count(), 7);
    }
}
