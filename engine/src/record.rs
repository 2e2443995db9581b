//! The data every interface exchanges with a collection: records, the changes a write
//! carries, where a batch of writes came from, and search hits. At the bottom of the crate:
//! it depends on nothing else in it.

use serde::{Deserialize, Serialize};

/// A stored record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Caller-chosen id; writes are upserts by id.
    pub id: u64,
    /// The vector (normalized, for cosine collections).
    pub vector: Vec<f32>,
    /// Optional JSON object, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
}

impl Record {
    /// A record without payload.
    pub fn new(id: u64, vector: Vec<f32>) -> Self {
        Record {
            id,
            vector,
            payload: None,
        }
    }
}

/// One change in an ordered batch (see [`VectorWrite::write`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Insert or replace the record with this id.
    Upsert(Record),
    /// Remove the id (nothing happens if it does not exist).
    Delete(u64),
}

impl Write {
    /// The id the change concerns.
    pub fn id(&self) -> u64 {
        match self {
            Write::Upsert(r) => r.id,
            Write::Delete(id) => *id,
        }
    }
}

/// Where a batch of writes came from: the source offsets it reaches (key → next offset to
/// read, e.g. `topic/partition`) and, for a writer that claimed those sources with
/// [`VectorWrite::claim_sources`], the epoch of its claim. A source that was claimed only
/// accepts writes carrying the latest claim's epoch, so a writer that lost its partitions
/// cannot apply a stale batch after the new owner moved on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceMark {
    /// Offsets reached by the batch, logged in the same durable batch as the writes.
    pub offsets: Vec<(String, i64)>,
    /// The writer's claim epoch; `None` for a writer that never claims.
    pub epoch: Option<u64>,
}

impl SourceMark {
    /// Offsets from an unfenced writer.
    pub fn offsets(offsets: Vec<(String, i64)>) -> SourceMark {
        SourceMark {
            offsets,
            epoch: None,
        }
    }

    /// Offsets from a writer holding the claim `epoch`.
    pub fn fenced(offsets: Vec<(String, i64)>, epoch: u64) -> SourceMark {
        SourceMark {
            offsets,
            epoch: Some(epoch),
        }
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// Record id.
    pub id: u64,
    /// Distance under the collection's metric (squared L2, `1 - cos`, or `-<q, x>`).
    pub distance: f32,
    /// Payload, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// Stored vector, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
}
