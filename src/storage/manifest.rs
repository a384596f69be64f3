//! `manifest.json`: the list of Parquet files that make up `usage`, and how far the
//! write-ahead log has been folded into them. Replaced atomically; a Parquet file that is
//! not listed here is not part of the table (it is the leftover of an interrupted write).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use spendql_udfs::PriceCatalog;

use super::durable;
use crate::error::{Error, Result};

pub const MANIFEST_FILE: &str = "manifest.json";
pub const FORMAT_VERSION: u32 = 1;

/// One Parquet file of `usage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageFile {
    /// Relative to the data directory, e.g. `usage/day=2026-10-01/part-00000000000000000007.parquet`.
    pub path: String,
    /// The UTC day every row of the file falls on, `YYYY-MM-DD`.
    pub day: String,
    pub rows: u64,
    pub bytes: u64,
    /// The fingerprint, for the file's `models`, of the price catalog its stored cost parts
    /// were priced with ([`spendql_udfs::PriceCatalog::fingerprint`]); None when it stores
    /// none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prices: Option<String>,
    /// The distinct models of its rows, by provider: what its fingerprint is taken over.
    /// Empty for files written before fingerprints were per model.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, BTreeSet<String>>,
}

impl UsageFile {
    /// Whether the file's stored costs are what `catalog` prices its rows at: a change
    /// to the prices of models it has no rows of leaves them current. A file with rows
    /// but no `models` was stamped before fingerprints were per model.
    pub fn costs_current(&self, catalog: &PriceCatalog) -> bool {
        (!self.models.is_empty() || self.rows == 0)
            && self.prices.as_deref() == Some(self.fingerprint_under(catalog).as_str())
    }

    /// The fingerprint `catalog` gives the file's rows.
    pub fn fingerprint_under(&self, catalog: &PriceCatalog) -> String {
        catalog.fingerprint(model_pairs(&self.models))
    }
}

/// The (provider, model) pairs of a file's `models`.
pub fn model_pairs(
    models: &BTreeMap<String, BTreeSet<String>>,
) -> impl Iterator<Item = (&str, &str)> {
    models.iter().flat_map(|(provider, models)| {
        models
            .iter()
            .map(move |model| (provider.as_str(), model.as_str()))
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    /// Write-ahead log segments up to and including this one are in the Parquet files.
    pub wal_checkpoint: u64,
    /// The next number for a Parquet part file.
    pub next_part: u64,
    pub usage_files: Vec<UsageFile>,
    /// Parts replaced by a rewrite (re-priced after a catalog change), kept on disk for
    /// queries planned before the swap and deleted once old enough or at the next open.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<RetiredFile>,
}

/// A part no longer in the table, awaiting deletion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetiredFile {
    /// Relative to the data directory.
    pub path: String,
    /// When it left the table, in seconds since the Unix epoch.
    pub retired_at: u64,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            format_version: FORMAT_VERSION,
            wal_checkpoint: 0,
            next_part: 1,
            usage_files: Vec::new(),
            retired: Vec::new(),
        }
    }
}

impl Manifest {
    /// Load the manifest of `data_dir`, or an empty one if there is none yet.
    pub fn load(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join(MANIFEST_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Manifest::default()),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| Error::corrupt(&path, format!("not a valid manifest: {e}")))?;
        if manifest.format_version != FORMAT_VERSION {
            return Err(Error::corrupt(
                &path,
                format!(
                    "data directory format {} is not supported by this SpendQL (format {FORMAT_VERSION})",
                    manifest.format_version
                ),
            ));
        }
        Ok(manifest)
    }

    /// Write the manifest durably (atomic replace).
    pub fn store(&self, data_dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Invalid(format!("cannot encode manifest: {e}")))?;
        durable::write_atomic(&data_dir.join(MANIFEST_FILE), &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_defaults_when_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            Manifest::load(dir.path()).expect("load"),
            Manifest::default()
        );
        let mut m = Manifest::default();
        m.usage_files.push(UsageFile {
            path: "usage/day=2026-01-01/part-1.parquet".into(),
            day: "2026-01-01".into(),
            rows: 3,
            bytes: 100,
            prices: Some("00ff".into()),
            models: BTreeMap::from([("acme".into(), BTreeSet::from(["m1".into()]))]),
        });
        m.wal_checkpoint = 4;
        m.store(dir.path()).expect("store");
        assert_eq!(Manifest::load(dir.path()).expect("load"), m);
    }

    #[test]
    fn stored_costs_are_current_only_under_the_fingerprint_of_their_models() {
        let catalog = PriceCatalog::default();
        let mut file = UsageFile {
            path: "usage/day=2026-01-01/part-1.parquet".into(),
            day: "2026-01-01".into(),
            rows: 3,
            bytes: 100,
            prices: None,
            models: BTreeMap::from([("acme".into(), BTreeSet::from(["m1".into()]))]),
        };
        assert!(!file.costs_current(&catalog), "no stored costs");
        file.prices = Some(file.fingerprint_under(&catalog));
        assert!(file.costs_current(&catalog));
        file.models
            .entry("acme".into())
            .or_default()
            .insert("m2".into());
        assert!(!file.costs_current(&catalog), "other models");
        // Written before fingerprints were per model: stale whatever its stamp.
        let models = std::mem::take(&mut file.models);
        file.prices = Some(catalog.fingerprint(model_pairs(&models)));
        assert!(!file.costs_current(&catalog));
        file.prices = Some(catalog.fingerprint([]));
        assert!(!file.costs_current(&catalog));
        // A part without rows has no models and is current, not re-priced on every pass.
        file.rows = 0;
        assert!(file.costs_current(&catalog));
    }

    #[test]
    fn garbage_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(MANIFEST_FILE), b"{not json").expect("write");
        let err = Manifest::load(dir.path()).expect_err("corrupt");
        assert!(err.to_string().contains("manifest.json"), "{err}");
    }
}
