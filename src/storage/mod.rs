//! The data directory: durable built-in tables.
//!
//! Layout (stable, documented in docs/ARCHITECTURE.md):
//! ```text
//! <data>/LOCK                               held (flock) by the one process using the directory
//! <data>/manifest.json                      the Parquet files of usage + WAL checkpoint
//! <data>/wal/<seq>.wal                      usage write-ahead log segments
//! <data>/usage/day=YYYY-MM-DD/part-N.parquet usage, partitioned by UTC day
//! <data>/tables/<name>.parquet              each configuration table
//! ```

pub mod config;
pub mod dedupe;
pub mod durable;
pub mod manifest;
pub mod priced;
pub mod usage;
pub mod wal;

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::logical_expr::{Expr, lit};

pub use config::{ConfigTable, ConfigTableProvider};
pub use usage::{BulkWriter, OpenReport, UsageStore, UsageTable, WriteCounts};

use crate::error::{Error, Result};
use crate::schema::{self, ColumnDefault, TableKind};

/// The file whose lock marks a data directory as in use.
pub const LOCK_FILE: &str = "LOCK";

/// Who holds a data directory, written into its LOCK file.
#[derive(Debug, Clone)]
pub struct Holder {
    /// What the holder is doing, e.g. `spendql serve (listening on 127.0.0.1:5433)`.
    pub description: String,
}

/// The opened data directory (or an in-memory stand-in).
#[derive(Debug)]
pub struct Storage {
    pub dir: Option<PathBuf>,
    pub usage: Arc<UsageStore>,
    pub config: Vec<Arc<ConfigTable>>,
    pub open_report: OpenReport,
    /// Held for the life of the storage; dropping it releases the directory.
    _lock: Option<File>,
}

impl Storage {
    /// Open (creating if needed) the data directory `dir`, taking its lock.
    pub fn open(dir: &Path, holder: &Holder, id_cache_entries: usize) -> Result<Self> {
        durable::create_dir_durable(dir)?;
        let lock = take_lock(dir, holder)?;
        durable::remove_tmp_files(dir)?;
        let (usage, report) = UsageStore::open(Some(dir), id_cache_entries, defaults_for("usage"))?;
        // No query of this process can still be reading a part retired by an earlier one.
        usage.purge_retired(u64::MAX)?;
        usage.remove_unlisted_parts()?;
        let tables_dir = dir.join("tables");
        let config = open_config_tables(Some(&tables_dir))?;
        Ok(Storage {
            dir: Some(dir.to_path_buf()),
            usage,
            config,
            open_report: report,
            _lock: Some(lock),
        })
    }

    /// Storage that lives only in memory.
    pub fn in_memory(id_cache_entries: usize) -> Result<Self> {
        let (usage, report) = UsageStore::open(None, id_cache_entries, defaults_for("usage"))?;
        Ok(Storage {
            dir: None,
            usage,
            config: open_config_tables(None)?,
            open_report: report,
            _lock: None,
        })
    }

    /// The configuration table `name`.
    pub fn config_table(&self, name: &str) -> Option<&Arc<ConfigTable>> {
        self.config.iter().find(|t| t.name() == name)
    }
}

fn open_config_tables(tables_dir: Option<&Path>) -> Result<Vec<Arc<ConfigTable>>> {
    schema::tables()
        .iter()
        .filter(|t| t.kind == TableKind::Config)
        .map(|t| {
            ConfigTable::open(
                t.name,
                Arc::clone(&t.schema),
                tables_dir,
                defaults_for(t.name),
            )
        })
        .collect()
}

/// Column defaults of a built-in table as DataFusion expressions.
fn defaults_for(table: &str) -> HashMap<String, Expr> {
    let Some(def) = schema::table_def(table) else {
        return HashMap::new();
    };
    def.defaults
        .iter()
        .map(|(name, default)| {
            let expr = match default {
                ColumnDefault::Int(v) => lit(*v),
                ColumnDefault::Text(v) => lit(*v),
                ColumnDefault::Now => datafusion::functions::datetime::expr_fn::now(),
            };
            (name.to_string(), expr)
        })
        .collect()
}

/// Take the directory's exclusive lock, or explain who holds it.
fn take_lock(dir: &Path, holder: &Holder) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut who = String::new();
            let _ = file.read_to_string(&mut who);
            let who = who.trim();
            let who = if who.is_empty() {
                "another SpendQL process"
            } else {
                who
            };
            return Err(Error::Locked(format!(
                "the data directory {} is in use by {who}. Only one process may use a data \
                 directory at a time: query the running server with psql instead, or stop it first",
                dir.display()
            )));
        }
        Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
    }
    let info = format!("{} (pid {})\n", holder.description, std::process::id());
    file.set_len(0).map_err(|e| Error::io(&path, e))?;
    file.rewind().map_err(|e| Error::io(&path, e))?;
    file.write_all(info.as_bytes())
        .map_err(|e| Error::io(&path, e))?;
    file.sync_all().map_err(|e| Error::io(&path, e))?;
    Ok(file)
}

/// Minimal usage rows `(event_id, RFC 3339 ts)` for tests.
#[cfg(test)]
pub(crate) fn test_rows(rows: &[(&str, &str)]) -> arrow::record_batch::RecordBatch {
    use arrow::array::{ArrayRef, new_null_array};
    use arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray};
    let schema = schema::usage_schema();
    let n = rows.len();
    let ts: Vec<i64> = rows
        .iter()
        .map(|(_, t)| {
            chrono::DateTime::parse_from_rfc3339(t)
                .expect("test timestamp")
                .timestamp_micros()
        })
        .collect();
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| -> ArrayRef {
            match f.name().as_str() {
                "event_id" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                "ts" | "ingested_at" => {
                    Arc::new(TimestampMicrosecondArray::from(ts.clone()).with_timezone("+00:00"))
                }
                "provider" => Arc::new(StringArray::from(vec!["openai"; n])),
                "model" => Arc::new(StringArray::from(vec!["gpt-4o"; n])),
                "service_tier" => Arc::new(StringArray::from(vec!["standard"; n])),
                _ if f.data_type() == &arrow::datatypes::DataType::Int64 => {
                    Arc::new(Int64Array::from(vec![
                        if f.name() == "requests" {
                            1
                        } else {
                            10
                        };
                        n
                    ]))
                }
                _ => new_null_array(f.data_type(), n),
            }
        })
        .collect();
    arrow::record_batch::RecordBatch::try_new(schema, columns).expect("test batch")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_open_is_refused_with_a_message_naming_the_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let holder = Holder {
            description: "spendql serve (listening on 127.0.0.1:5433)".into(),
        };
        let _first = Storage::open(dir.path(), &holder, 1000).expect("open");
        let err = Storage::open(dir.path(), &holder, 1000).expect_err("locked");
        let msg = err.to_string();
        assert!(
            msg.contains("spendql serve (listening on 127.0.0.1:5433)"),
            "{msg}"
        );
        assert!(msg.contains("psql"), "{msg}");
    }

    #[test]
    fn every_config_table_is_created_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let holder = Holder {
            description: "test".into(),
        };
        let storage = Storage::open(dir.path(), &holder, 1000).expect("open");
        assert_eq!(storage.config.len(), schema::tables().len() - 1);
        assert_eq!(
            storage
                .config_table("pricing")
                .expect("pricing")
                .rows()
                .num_rows(),
            0
        );
    }
}
