//! The lab's error type.

use std::path::PathBuf;

/// Result alias of the lab.
pub type Result<T, E = LabError> = std::result::Result<T, E>;

/// What can go wrong reading data or running an experiment.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File involved.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file's contents do not match its format.
    #[error("{path}: {reason}")]
    Format {
        /// File involved.
        path: PathBuf,
        /// What is wrong and where (row or byte offset).
        reason: String,
    },
    /// An engine call failed.
    #[error(transparent)]
    Engine(#[from] drift_engine::Error),
    /// An argument is out of range.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// A transport's own machinery failed (the broker, the sink, the SQL layer).
    #[error("{0}")]
    Transport(String),
}

impl LabError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        LabError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    pub(crate) fn format(path: &std::path::Path, reason: impl Into<String>) -> Self {
        LabError::Format {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}
