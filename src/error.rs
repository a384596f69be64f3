//! The engine layer's error type. The wire server maps each variant to a SQLSTATE.

use std::path::PathBuf;

use datafusion::error::DataFusionError;

/// Errors from opening, storing, ingesting and querying.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file in the data directory is unreadable or damaged; names the file.
    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },

    /// An operating-system I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Another process holds the data directory.
    #[error("{0}")]
    Locked(String),

    /// A record in an input file is invalid: `file:line: column: reason`.
    #[error("{file}:{line}: {column}: {reason}")]
    BadRecord {
        file: String,
        line: u64,
        column: String,
        reason: String,
    },

    /// The caller asked for something invalid (a bad option, an unknown table).
    #[error("{0}")]
    Invalid(String),

    /// A query failed in DataFusion.
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),

    /// Arrow or Parquet encoding failed.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl ToString) -> Self {
        Error::Corrupt {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}

impl From<Error> for DataFusionError {
    fn from(e: Error) -> Self {
        match e {
            Error::DataFusion(e) => e,
            other => DataFusionError::External(Box::new(other)),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
