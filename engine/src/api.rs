//! The engine's public read and write interfaces. Connectors depend on the one they need:
//! SQL only reads ([`VectorRead`]); the Kafka sink and the gRPC server also write
//! ([`VectorWrite`]). Async variants run the blocking work off tokio's worker threads.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::collection::{Collection, CollectionStats, FlushReport, TrainReport};
use crate::config::{CollectionConfig, SearchOverrides, SearchParams};
use crate::error::{Error, Result};
use crate::maintain::MaintainReport;
pub use crate::record::{Hit, Record, SourceMark, Write};

/// Batches of live records from one snapshot, as a [`VectorRead::scan`] yields them.
pub type RecordBatches = Box<dyn Iterator<Item = Result<Vec<Record>>> + Send>;

/// Read access to a collection: a local [`Collection`] or one on a server (the gRPC
/// connector's `RemoteCollection`). Every call that may cross a network is fallible.
pub trait VectorRead: Send + Sync {
    /// Dimension, metric and settings (a remote collection knows its dimension and metric;
    /// its settings are the server's).
    fn config(&self) -> &CollectionConfig;
    /// Default search parameters for `k` results.
    fn search_params(&self, k: usize) -> SearchParams;
    /// Nearest records to `query`.
    fn search(&self, query: &[f32], params: &SearchParams) -> Result<Vec<Hit>>;
    /// Nearest `k` records to `query` with `overrides` over the collection's own defaults
    /// (where a remote collection's defaults live on the server, this is the call that
    /// leaves them there).
    fn search_with(
        &self,
        query: &[f32],
        k: usize,
        overrides: &SearchOverrides,
        with_payload: bool,
    ) -> Result<Vec<Hit>> {
        let mut p = self.search_params(k);
        overrides.apply(&mut p);
        p.with_payload = with_payload;
        p.validate()?;
        self.search(query, &p)
    }
    /// The current record with `id`.
    fn get(&self, id: u64) -> Result<Option<Record>>;
    /// All live records of one snapshot, in batches of up to `batch_size`.
    fn scan(self: Arc<Self>, batch_size: usize) -> Result<RecordBatches>;
    /// Counts and sizes.
    fn stats(&self) -> Result<CollectionStats>;
}

/// Write access to a collection.
pub trait VectorWrite: VectorRead {
    /// Inserts or replaces records; returns once durable.
    fn upsert(&self, records: Vec<Record>) -> Result<u64>;
    /// Deletes ids; returns how many existed.
    fn delete(&self, ids: &[u64]) -> Result<u64>;
    /// Applies upserts and deletes in order and records the source offsets they reach in
    /// the same durable batch; returns once durable.
    fn write(&self, writes: Vec<Write>, source: &SourceMark) -> Result<u64>;
    /// Claims source keys for the caller: returns a new epoch, above every earlier claim of
    /// any of them, that its writes to those sources must carry from now on (durable).
    fn claim_sources(&self, keys: &[String]) -> Result<u64>;
    /// Checks a record (dimension, finite values, payload) without writing it.
    fn validate(&self, record: &Record) -> Result<()>;
    /// Source offsets covered by the durable state (key → next offset to read).
    fn source_offsets(&self) -> Result<std::collections::BTreeMap<String, i64>>;
    /// True while rows frozen for flushing exceed the collection's backlog limit; writers
    /// that can wait (the Kafka sink) should pause until it clears.
    fn backlogged(&self) -> bool;
    /// Moves memtable rows into buckets and checkpoints.
    fn flush(&self) -> Result<FlushReport>;
    /// Re-trains centroids from a sample.
    fn train(&self, sample: &[f32]) -> Result<TrainReport>;
    /// Runs up to `passes` maintenance passes (split, merge, compact) now, with the
    /// collection's policy; stops early once a pass changes nothing.
    fn maintain(&self, passes: usize) -> Result<MaintainReport>;
}

impl std::fmt::Debug for dyn VectorRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = self.config();
        f.debug_struct("VectorRead")
            .field("dim", &c.dim)
            .field("metric", &c.metric)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for dyn Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").finish_non_exhaustive()
    }
}

/// A collection as a [`Catalog`] lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionEntry {
    /// Name.
    pub name: String,
    /// Vector dimension (0 when unavailable).
    pub dim: usize,
    /// Metric name (empty when unavailable).
    pub metric: String,
    /// Live vectors.
    pub live_vectors: u64,
    /// Why the collection cannot be opened, when it cannot.
    pub error: Option<String>,
}

impl CollectionEntry {
    /// The entry of the open collection `c`, called `name`.
    pub fn of(name: &str, c: &dyn VectorRead) -> Result<CollectionEntry> {
        Ok(CollectionEntry {
            name: name.to_string(),
            dim: c.config().dim,
            metric: c.config().metric.name().to_string(),
            live_vectors: c.stats()?.live_vectors as u64,
            error: None,
        })
    }
}

/// Where collections live: create, list, open and drop them. The local
/// [`crate::Database`] and a server connection (the gRPC connector's `Remote`) are both
/// catalogs, and what they open is reached only through [`VectorRead`] / [`VectorWrite`].
pub trait Catalog: Send + Sync {
    /// Creates a collection and opens it.
    fn create(&self, name: &str, config: CollectionConfig) -> Result<Arc<dyn VectorWrite>>;
    /// Opens an existing collection.
    fn open(&self, name: &str) -> Result<Arc<dyn VectorWrite>>;
    /// Every collection, by name, unavailable ones included (with why).
    fn list(&self) -> Result<Vec<CollectionEntry>>;
    /// Drops a collection and its data.
    fn drop_collection(&self, name: &str) -> Result<()>;
}

impl Catalog for crate::Database {
    fn create(&self, name: &str, config: CollectionConfig) -> Result<Arc<dyn VectorWrite>> {
        Ok(self.create_collection(name, config)?)
    }
    fn open(&self, name: &str) -> Result<Arc<dyn VectorWrite>> {
        Ok(self.collection(name)?)
    }
    fn list(&self) -> Result<Vec<CollectionEntry>> {
        let mut out = Vec::new();
        for (name, _) in crate::Database::list(self) {
            out.push(CollectionEntry::of(&name, &*self.collection(&name)?)?);
        }
        for (name, error) in self.failed() {
            out.push(CollectionEntry {
                name,
                dim: 0,
                metric: String::new(),
                live_vectors: 0,
                error: Some(error),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
    fn drop_collection(&self, name: &str) -> Result<()> {
        crate::Database::drop_collection(self, name)
    }
}

impl VectorRead for Collection {
    fn config(&self) -> &CollectionConfig {
        Collection::config(self)
    }
    fn search_params(&self, k: usize) -> SearchParams {
        Collection::search_params(self, k)
    }
    fn search(&self, query: &[f32], params: &SearchParams) -> Result<Vec<Hit>> {
        Collection::search(self, query, params)
    }
    fn get(&self, id: u64) -> Result<Option<Record>> {
        Collection::get(self, id)
    }
    fn scan(self: Arc<Self>, batch_size: usize) -> Result<RecordBatches> {
        Ok(Box::new(Collection::scan(&self, batch_size)))
    }
    fn stats(&self) -> Result<CollectionStats> {
        Ok(Collection::stats(self))
    }
}

impl VectorWrite for Collection {
    fn upsert(&self, records: Vec<Record>) -> Result<u64> {
        Collection::upsert(self, records)
    }
    fn delete(&self, ids: &[u64]) -> Result<u64> {
        Collection::delete(self, ids)
    }
    fn write(&self, writes: Vec<Write>, source: &SourceMark) -> Result<u64> {
        Collection::write(self, writes, source)
    }
    fn claim_sources(&self, keys: &[String]) -> Result<u64> {
        Collection::claim_sources(self, keys)
    }
    fn validate(&self, record: &Record) -> Result<()> {
        Collection::validate(self, record)
    }
    fn source_offsets(&self) -> Result<std::collections::BTreeMap<String, i64>> {
        Ok(Collection::source_offsets(self))
    }
    fn backlogged(&self) -> bool {
        Collection::flush_backlog(self).over()
    }
    fn flush(&self) -> Result<FlushReport> {
        Collection::flush(self)
    }
    fn train(&self, sample: &[f32]) -> Result<TrainReport> {
        Collection::train(self, sample)
    }
    fn maintain(&self, passes: usize) -> Result<MaintainReport> {
        Collection::maintain(self, passes)
    }
}

/// Runs CPU-heavy or blocking engine work from async code (searches, writes that wait for
/// fsync, decoding, rendering): on tokio's blocking pool, so the caller's runtime threads keep
/// serving. Every connector goes through this one helper. A panic in `f` comes back as an
/// internal error. Must be called within a tokio runtime.
pub async fn run_cpu<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("blocking task failed: {e}")))
}

/// [`run_cpu`] for work that returns an engine result.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    run_cpu(f).await?
}

impl Collection {
    /// [`Collection::search`] on tokio's blocking pool.
    pub async fn search_async(
        self: &Arc<Self>,
        query: Vec<f32>,
        params: SearchParams,
    ) -> Result<Vec<Hit>> {
        let c = self.clone();
        blocking(move || c.search(&query, &params)).await
    }

    /// [`Collection::upsert`] on tokio's blocking pool; resolves once durable.
    pub async fn upsert_async(self: &Arc<Self>, records: Vec<Record>) -> Result<u64> {
        let c = self.clone();
        blocking(move || c.upsert(records)).await
    }

    /// [`Collection::delete`] on tokio's blocking pool; resolves once durable.
    pub async fn delete_async(self: &Arc<Self>, ids: Vec<u64>) -> Result<u64> {
        let c = self.clone();
        blocking(move || c.delete(&ids)).await
    }

    /// [`Collection::train`] (k-means) on tokio's blocking pool.
    pub async fn train_async(self: &Arc<Self>, sample: Vec<f32>) -> Result<TrainReport> {
        let c = self.clone();
        blocking(move || c.train(&sample)).await
    }

    /// [`Collection::flush`] on tokio's blocking pool.
    pub async fn flush_async(self: &Arc<Self>) -> Result<FlushReport> {
        let c = self.clone();
        blocking(move || c.flush()).await
    }
}
