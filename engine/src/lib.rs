//! # drift-engine
//!
//! The index behind Drift: durable, searchable at once, and kept in shape as data drifts.
//! It has no network code; connectors (Kafka, SQL, gRPC) use [`VectorRead`] / [`VectorWrite`].
//!
//! ```text
//!            write path                                  read path (one snapshot, no locks held across tiers)
//! upsert ─▶ wal/ (CRC32C, group commit, fsync)      query ─▶ L0: exact scan of active memtable
//!        ─▶ memtable/ active buffer (visible)               ─▶ L0: HNSW over frozen memtables
//!        ─▶ freeze ─▶ HNSW graph (background)              ─▶ L1: ivf/probe (P_geom × R) ─▶ SQ8 ADC scan
//!        ─▶ flush: route to nearest centroid                     ─▶ exact re-rank ─▶ merge top-k
//!        ─▶ ivf/ bucket chunks (SQ8 + f32)
//!        ─▶ storage/ checkpoint ─▶ retire WAL
//! ```
//!
//! Start with [`Database::open`], then [`Database::create_collection`] or
//! [`Database::collection`].
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

pub mod api;
pub mod codec;
pub mod collection;
pub mod columns;
pub mod config;
pub mod db;
pub mod distance;
pub mod error;
pub mod idmap;
pub mod ivf;
pub mod kernels;
pub mod kmeans;
pub mod maintain;
pub mod memtable;
mod per_dim;
pub mod quant;
pub mod rows;
pub mod storage;
pub mod topk;
pub mod wal;

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
