//! What a run comes to, per system (`summary.json`): recall, speed, index shape and the
//! maintenance it cost, computed from the raw step records. The report writes it and the
//! charts draw from it.

use serde::{Deserialize, Serialize};

use crate::record::{RunOutcome, StepRecord};

/// The family a system belongs to, for curves: a peer's knob values (`"hnswlib ef=64"`)
/// belong to the peer, Drift's sweep points (`"nprobe=8"`, `"recall_target=0.9"`) to
/// `drift`; any other system is a family of its own.
pub fn family(system: &str) -> &str {
    match system.split_once(' ') {
        Some((peer, _)) => peer,
        None if system.contains('=') => "drift",
        None => system,
    }
}

/// Totals of one system over a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SystemSummary {
    /// System name.
    pub system: String,
    /// How it was driven.
    pub path: String,
    /// Mean recall@k over the search steps.
    pub mean_recall: f64,
    /// Lowest recall of a search step.
    pub min_recall: f64,
    /// Recall of the last search step.
    pub final_recall: f64,
    /// Mean of the search steps' queries per second.
    pub mean_qps: f64,
    /// Median of the search steps' p50 latencies, microseconds.
    pub p50_us: f64,
    /// Highest p99 latency of a search step, microseconds.
    pub max_p99_us: f64,
    /// Mean buckets scanned per query over the search steps.
    pub buckets_per_query: Option<f64>,
    /// Mean SQ8 codes scanned per query over the search steps.
    pub codes_per_query: Option<f64>,
    /// Queries per second inside the engine alone (1 / mean engine time per query; index
    /// systems): beside `mean_qps`, the cost of the system's path shows as the gap.
    #[serde(default)]
    pub engine_qps: Option<f64>,
    /// Buckets at the end.
    pub final_buckets: Option<usize>,
    /// Splits in all.
    pub splits: Option<u64>,
    /// Merges in all.
    pub merges: Option<u64>,
    /// Vectors reassigned to other buckets in all (moved by maintenance).
    pub reassigned: Option<u64>,
    /// Rows rewritten by maintenance in all.
    pub rewritten: Option<u64>,
    /// Rows rewritten by maintenance per row inserted.
    #[serde(default)]
    pub rewritten_per_insert: Option<f64>,
    /// The engine's recall monitor at the end: mean recall@k of its exact re-runs.
    #[serde(default)]
    pub monitored_recall: Option<f64>,
    /// Seconds spent in write steps (writes, flushes, healing): the build and ingest cost.
    pub write_secs: f64,
    /// Bytes the index held at the end (see [`StepRecord::index_bytes`]).
    #[serde(default)]
    pub index_bytes: Option<u64>,
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Run name.
    pub name: String,
    /// Path of the index under test (`direct` or `kafka+sql`).
    pub via: String,
    /// Neighbours per query.
    pub k: usize,
    /// Steps replayed.
    pub steps: usize,
    /// Search steps.
    pub search_steps: usize,
    /// Wall time of the run, seconds.
    pub secs: f64,
    /// Per system, in run order.
    pub systems: Vec<SystemSummary>,
}

/// Totals of every system.
pub fn summarize(out: &RunOutcome) -> Summary {
    let systems = out
        .systems
        .iter()
        .map(|name| {
            let rows: Vec<&StepRecord> = out.records.iter().filter(|r| &r.system == name).collect();
            let searches: Vec<&StepRecord> = rows
                .iter()
                .copied()
                .filter(|r| r.recall.is_some())
                .collect();
            let n = searches.len().max(1) as f64;
            let recalls: Vec<f64> = searches.iter().filter_map(|r| r.recall).collect();
            let mut p50s: Vec<f64> = searches.iter().filter_map(|r| r.p50_us).collect();
            p50s.sort_by(f64::total_cmp);
            let last = rows.last();
            let bpq: Vec<f64> = searches
                .iter()
                .filter_map(|r| r.buckets_per_query)
                .collect();
            let cpq: Vec<f64> = searches.iter().filter_map(|r| r.codes_per_query).collect();
            let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
            SystemSummary {
                system: name.clone(),
                path: last.map(|r| r.path.clone()).unwrap_or_default(),
                mean_recall: recalls.iter().sum::<f64>() / n,
                min_recall: recalls
                    .iter()
                    .copied()
                    .fold(f64::INFINITY, f64::min)
                    .min(1.0),
                final_recall: recalls.last().copied().unwrap_or(0.0),
                mean_qps: searches.iter().filter_map(|r| r.qps).sum::<f64>() / n,
                p50_us: p50s.get(p50s.len() / 2).copied().unwrap_or(0.0),
                max_p99_us: searches.iter().filter_map(|r| r.p99_us).fold(0.0, f64::max),
                buckets_per_query: mean(&bpq),
                codes_per_query: mean(&cpq),
                // Averaged like `mean_qps` (per step, then over steps), so the two compare.
                engine_qps: mean(
                    &searches
                        .iter()
                        .filter_map(|r| r.engine_us.filter(|us| *us > 0.0).map(|us| 1e6 / us))
                        .collect::<Vec<_>>(),
                ),
                final_buckets: last.and_then(|r| r.buckets),
                splits: last.and_then(|r| r.splits),
                merges: last.and_then(|r| r.merges),
                reassigned: last.and_then(|r| r.reassigned),
                rewritten: last.and_then(|r| r.rewritten),
                rewritten_per_insert: last
                    .and_then(|r| r.rewritten.map(|w| w as f64 / r.inserted.max(1) as f64)),
                monitored_recall: rows.iter().rev().find_map(|r| r.monitored_recall),
                write_secs: rows
                    .iter()
                    .filter(|r| matches!(r.op.as_str(), "insert" | "delete" | "replace"))
                    .map(|r| r.secs)
                    .sum(),
                index_bytes: rows.iter().rev().find_map(|r| r.index_bytes),
            }
        })
        .collect();
    let first = out.systems.first();
    let steps: Vec<&StepRecord> = out
        .records
        .iter()
        .filter(|r| Some(&r.system) == first)
        .collect();
    Summary {
        name: out.name.clone(),
        via: out.via.clone(),
        k: out.k,
        steps: steps.len(),
        search_steps: steps.iter().filter(|r| r.recall.is_some()).count(),
        secs: out.secs,
        systems,
    }
}

#[cfg(test)]
mod tests {
    use super::family;

    #[test]
    fn systems_fall_into_curves_by_family() {
        assert_eq!(family("hnswlib ef=64"), "hnswlib");
        assert_eq!(family("faiss-ivf-sq8 nprobe=4"), "faiss-ivf-sq8");
        assert_eq!(family("nprobe=8"), "drift");
        assert_eq!(family("recall_target=0.9"), "drift");
        assert_eq!(family("static-ivf"), "static-ivf");
        assert_eq!(family("drift"), "drift");
    }
}
