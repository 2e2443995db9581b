//! # drift-engine
//!
//! The index behind Drift: durable, searchable at once, and kept in shape as data drifts.
//!
//! A [`Database`] is a directory of named collections; a [`Collection`] holds vectors of one
//! dimension under one [`Metric`], each with a caller-chosen id and an optional JSON payload.
//! Everything outside the engine (the Kafka sink, SQL, gRPC, the lab, the command line)
//! reaches collections through a [`Catalog`] (create, list, open, drop) and the
//! [`VectorRead`] / [`VectorWrite`] pair, which a local collection and a remote one (the
//! gRPC connector's) both implement; search options travel as one [`SearchOverrides`].
//! The engine has no network code.
//!
//! ```text
//!            write path                                  read path (one snapshot, no locks held across tiers)
//! upsert ─▶ wal (CRC32C, group commit, fsync)       query ─▶ metric rules prepare it (distance)
//!        ─▶ memtable: active buffer (visible)             ─▶ L0: exact scan of the active memtable
//!        ─▶ freeze ─▶ HNSW graph (background)             ─▶ L0: HNSW over frozen memtables
//!        ─▶ flush: route to the nearest centroid          ─▶ L1: probe buckets (recall model or P_geom × R)
//!        ─▶ ivf: bucket chunks (SQ8 codes, sketches)      ─▶ per bucket: the quantizer's prepared query
//!        ─▶ storage: checkpoint ─▶ retire the WAL              scores its chunks (sketch bounds, SQ8)
//!                                                         ─▶ exact re-rank ─▶ merge top-k
//! maintenance (janitor or `maintain`): split, merge, reassign, compact, recalibrate
//! ```
//!
//! Start with [`Database::open`], then [`Database::create_collection`] or
//! [`Database::collection`]; [`Collection::search`] with [`Collection::search_params`], or
//! [`VectorRead::search_with`] and a [`SearchOverrides`]. What to tune lives in
//! [`IndexSettings`]; the recall target ([`RecallSettings`]) is the one most users set.
//!
//! The public modules are the API and a few utilities (a metric's rules in [`distance`], a
//! bounded [`topk`], [`kmeans`]); the rest is internal (public only with the `internals`
//! feature, for the engine's own benches, tests and fuzz targets).
//!
//! ## Threads and async code
//!
//! Every engine call is synchronous and may block (a write waits for its WAL fsync, a search
//! may read cold blocks). From async code, run calls through [`run_cpu`] (or the
//! `Collection::*_async` methods built on it), never directly on a runtime's worker threads.
//! The engine owns two kinds of threads of its own: each collection's janitor (HNSW builds,
//! automatic flushes and maintenance; `collection/worker.rs`), and, once object storage is
//! first used, a private two-thread tokio runtime (`drift-io`) that OpenDAL's futures run on;
//! engine calls block on it from any thread, inside another runtime or not.

// The public API: collections, their settings, the read/write traits and the catalog.
pub mod api;
pub mod collection;
pub mod config;
pub mod db;
pub mod error;
pub mod maintain;
pub mod record;

// Small utilities the lab and connectors share with the engine: a metric's rules, a bounded
// top-k and k-means.
pub mod distance;
pub mod kmeans;
pub mod topk;

/// Declares the engine's internal modules: crate-private, or public with the `internals`
/// feature (the engine's own benches, integration tests and fuzz targets, and the lab's
/// storage example, reach inside; no stability is promised there).
macro_rules! internal {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[cfg(feature = "internals")]
        pub mod $name;
        $(#[$doc])*
        #[cfg(not(feature = "internals"))]
        #[allow(dead_code, unused_imports)]
        pub(crate) mod $name;
    )*};
}

internal! {
    /// Record and payload encodings.
    codec;
    /// Compact per-chunk columns (ids, sequence numbers, 16-bit levels, payloads).
    columns;
    /// Id → location map.
    idmap;
    /// L1: centroid-routed buckets, probing, the recall model.
    ivf;
    /// SIMD kernels (the only `unsafe` code).
    kernels;
    /// Resident memory accounting by kind.
    memory;
    /// L0: memtables and their HNSW graphs.
    memtable;
    /// Quantizers: SQ8 and binary sketches.
    quant;
    /// Row batches.
    rows;
    /// Object storage, segments, manifests, the cold tier's codecs.
    storage;
    /// The write-ahead log.
    wal;
}
mod per_dim;

pub use api::{
    run_cpu, Catalog, CollectionEntry, Hit, Record, RecordBatches, SourceMark, VectorRead,
    VectorWrite, Write,
};
pub use collection::{Backlog, Collection, CollectionStats, FlushReport, TrainReport};
pub use config::{
    AdcKernel, CollectionConfig, IndexSettings, MaintenanceSettings, Metric, PolicyKind,
    RecallSettings, Scoring, SearchDefaults, SearchOverrides, SearchParams, StorageSettings,
};
pub use db::{Database, RepairReport};
pub use error::{Error, Result};
pub use maintain::{MaintainReport, Policy};
