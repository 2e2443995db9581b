//! The engine's one error type.
//!
//! Variants are split by whose mistake it is: [`Error::is_user_error`] is true for bad input
//! (wrong dimension, NaN, unknown collection, bad name), false for our own failures (I/O,
//! corruption). Network layers map the first kind to "invalid argument"/"not found" answers.

use std::path::PathBuf;

/// Result alias used across the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong inside the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A vector's length differs from the collection's dimension.
    #[error(
        "vector for id {id} has dimension {got}, collection '{collection}' expects {expected}"
    )]
    DimensionMismatch {
        /// Collection name.
        collection: String,
        /// Offending id (or query row).
        id: u64,
        /// Dimension received.
        got: usize,
        /// Dimension of the collection.
        expected: usize,
    },
    /// A vector contains NaN or an infinity.
    #[error("vector for id {id} has a non-finite value ({value}) at position {position}")]
    NonFinite {
        /// Offending id (or query row).
        id: u64,
        /// Index of the first bad component.
        position: usize,
        /// The bad value, as text.
        value: String,
    },
    /// A vector holds a value so large that distances or quantizer ranges could overflow.
    #[error(
        "vector for id {id} has a value out of range ({value}) at position {position}: \
         values must lie within ±{limit:e} so that distances stay finite"
    )]
    OutOfRange {
        /// Offending id (or query row).
        id: u64,
        /// Index of the first bad component.
        position: usize,
        /// The bad value, as text.
        value: String,
        /// The largest magnitude accepted.
        limit: f32,
    },
    /// A payload is not a JSON object or is too large.
    #[error("payload for id {id} is invalid: {reason}")]
    InvalidPayload {
        /// Offending id.
        id: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A collection name breaks the naming rules.
    #[error("invalid collection name '{name}': {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// No collection of that name exists.
    #[error("collection '{0}' does not exist")]
    CollectionNotFound(String),
    /// A collection of that name exists already.
    #[error("collection '{0}' already exists")]
    CollectionExists(String),
    /// A setting or search option is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Another process holds the data directory.
    #[error("data directory {path} is locked by another process (only one writer may open it)")]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
    /// A file on disk failed validation.
    #[error("corrupt file {path} at offset {offset}: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset where the damage was found.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// An operating-system I/O failure.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The object store (OpenDAL) failed.
    #[error("storage error: {0}")]
    Storage(String),
    /// The collection exists on disk but could not be opened (damage, a missing object
    /// store); the rest of the database works. Drop it, or repair its files and re-open.
    #[error("collection '{name}' is unavailable: it failed to open: {reason}")]
    Unavailable {
        /// Collection name.
        name: String,
        /// Why it failed to open (file and offset when known).
        reason: String,
    },
    /// A write carrying source offsets came from a writer whose claim on the source was
    /// superseded (another writer claimed it since) or that never claimed it.
    #[error("write to source '{key}' refused: {reason}")]
    Fenced {
        /// The source key (e.g. `topic/partition`).
        key: String,
        /// Which epoch was presented and which one holds the source.
        reason: String,
    },
    /// The collection was dropped or the database closed while the call was running.
    #[error("collection '{0}' is closed")]
    Closed(String),
    /// A background task failed unexpectedly.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// True when the caller sent something invalid (as opposed to a failure on our side).
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Error::DimensionMismatch { .. }
                | Error::NonFinite { .. }
                | Error::OutOfRange { .. }
                | Error::InvalidPayload { .. }
                | Error::InvalidName { .. }
                | Error::CollectionNotFound(_)
                | Error::CollectionExists(_)
                | Error::InvalidArgument(_)
        )
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Builds a corruption error naming file and offset.
    pub fn corrupt(path: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }
}

/// Adds a path to `std::io::Result`s.
pub(crate) trait IoContext<T> {
    /// Converts the error into [`Error::Io`] naming `path`.
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
