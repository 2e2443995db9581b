//! What a lab run measured: one row per step and system, and the whole run's outcome (the
//! contents of `raw.jsonl`, which `report` renders).

use serde::{Deserialize, Serialize};

/// One row of raw results: one step as one system saw it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepRecord {
    /// Step number, from 1.
    pub step: usize,
    /// `insert`, `delete`, `replace`, `drift`, `maintain` or `search`.
    pub op: String,
    /// What the step did, in words.
    pub detail: String,
    /// System name.
    pub system: String,
    /// How the system was driven (`direct`, `kafka+sql`, `in-process` for brute force).
    pub path: String,
    /// Live vectors after the step.
    pub live: usize,
    /// Scenario time after the step.
    pub time: f32,
    /// Wall time of the step for this system, seconds (writes include flush and healing).
    pub secs: f64,
    /// Mean recall@k with ties (search steps).
    pub recall: Option<f64>,
    /// Queries searched.
    pub queries: usize,
    /// Single-thread queries per second (1 / mean latency).
    pub qps: Option<f64>,
    /// Latency percentiles, microseconds.
    pub p50_us: Option<f64>,
    /// 95th percentile.
    pub p95_us: Option<f64>,
    /// 99th percentile.
    pub p99_us: Option<f64>,
    /// L1 buckets after the step (index systems).
    pub buckets: Option<usize>,
    /// Splits so far.
    pub splits: Option<u64>,
    /// Merges so far.
    pub merges: Option<u64>,
    /// Vectors reassigned to another bucket so far (the vectors maintenance moved).
    pub reassigned: Option<u64>,
    /// Rows maintenance rewrote so far.
    pub rewritten: Option<u64>,
    /// Buckets scanned per query in this step.
    pub buckets_per_query: Option<f64>,
    /// SQ8 codes scanned per query in this step.
    pub codes_per_query: Option<f64>,
    /// Microseconds per query spent inside the engine in this step (index systems): the rest
    /// of the latency is the system's path (SQL, a topic, a network hop).
    #[serde(default)]
    pub engine_us: Option<f64>,
    /// Rows inserted (upserted) so far.
    #[serde(default)]
    pub inserted: u64,
    /// The engine's live recall monitor: mean recall@k of its exact re-runs so far in its
    /// current window (index systems).
    #[serde(default)]
    pub monitored_recall: Option<f64>,
    /// Bytes the index holds after the step: Drift's resident memory by its own accounting
    /// (codes, sketches, ids, per-bucket data, memtables, cache), a peer's index by its
    /// library's layout (codes or vectors, links, ids, centroids); none for brute force.
    #[serde(default)]
    pub index_bytes: Option<u64>,
}

/// Everything measured, in memory (also written to `raw.jsonl`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunOutcome {
    /// Run name.
    pub name: String,
    /// Path of the index under test.
    pub via: String,
    /// Neighbours per query.
    pub k: usize,
    /// System names in order.
    pub systems: Vec<String>,
    /// Raw rows.
    pub records: Vec<StepRecord>,
    /// Wall time of the whole run, seconds.
    pub secs: f64,
}
