//! The end-to-end demo: load or generate vectors, upsert them through the engine API, flush,
//! search every query, and report recall@k against brute force plus latency percentiles.

use std::path::PathBuf;
use std::time::Instant;

use drift_engine::distance::Distance;
use drift_engine::{Catalog, Metric, Record};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::datasets::{Clustered, Dataset};
use crate::error::{LabError, Result};
use crate::truth::{exact_knn_prepared, prepare, recall_with_ties};
use crate::vecfile::read_base_and_queries;

/// What the demo runs on.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Rows generated when no base file is given.
    pub rows: usize,
    /// Dimension of generated data.
    pub dim: usize,
    /// Clusters of generated data.
    pub clusters: usize,
    /// Queries generated when no query file is given.
    pub queries: usize,
    /// Neighbours per query.
    pub k: usize,
    /// Metric of the collection.
    pub metric: Metric,
    /// Seed of generated data.
    pub seed: u64,
    /// Base vectors file (instead of generated data).
    pub base_file: Option<PathBuf>,
    /// Query vectors file (instead of generated queries).
    pub query_file: Option<PathBuf>,
    /// Rows per upsert call.
    pub batch: usize,
    /// Explicit number of buckets to probe (default: the collection's adaptive selection).
    pub nprobe: Option<usize>,
    /// Re-rank factor override.
    pub rerank: Option<usize>,
    /// Geometric sharpness override.
    pub lambda: Option<f32>,
    /// Target confidence override.
    pub target_confidence: Option<f32>,
    /// Search by recall target instead of target confidence.
    pub recall_target: Option<f32>,
    /// Settings of the created collection (defaults if `None`).
    pub settings: Option<drift_engine::IndexSettings>,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            rows: 50_000,
            dim: 64,
            clusters: 100,
            queries: 1000,
            k: 10,
            metric: Metric::L2,
            seed: 42,
            base_file: None,
            query_file: None,
            batch: 1000,
            nprobe: None,
            rerank: None,
            lambda: None,
            target_confidence: None,
            recall_target: None,
            settings: None,
        }
    }
}

/// Measured outcome of a demo run.
#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    /// Where the data came from.
    pub data: String,
    /// Rows upserted.
    pub rows: usize,
    /// Dimension.
    pub dim: usize,
    /// Queries searched.
    pub queries: usize,
    /// Neighbours per query.
    pub k: usize,
    /// Upsert throughput (rows/s, each batch durable before the next).
    pub upsert_rows_per_s: f64,
    /// Time of the final flush (ms).
    pub flush_ms: f64,
    /// Mean recall@k while every row was still in L0 (memtables), before the flush.
    pub recall_l0: f64,
    /// Mean recall@k after the flush (L1 buckets).
    pub recall: f64,
    /// Single-thread queries per second after the flush (1 / mean latency).
    pub qps: f64,
    /// Latency percentiles after the flush, microseconds.
    pub p50_us: f64,
    /// 95th percentile.
    pub p95_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Buckets in L1.
    pub buckets: usize,
    /// Mean buckets probed per query.
    pub mean_buckets_probed: f64,
    /// SIMD kernel in use.
    pub kernel: String,
}

/// Progress callback: (phase name, done, total).
pub type Progress<'a> = &'a dyn Fn(&str, u64, u64);

fn load(cfg: &DemoConfig) -> Result<(Dataset, Dataset, String)> {
    match (&cfg.base_file, &cfg.query_file) {
        (Some(b), Some(q)) => {
            let (bv, qv, dim) = read_base_and_queries(b, q)?;
            let name = format!("{} + {}", b.display(), q.display());
            Ok((
                Dataset { vectors: bv, dim },
                Dataset { vectors: qv, dim },
                name,
            ))
        }
        (None, None) => {
            let gen = Clustered::new(cfg.dim, cfg.clusters, cfg.seed);
            let name = format!(
                "generated: {} clustered Gaussian vectors, {} dims, {} clusters",
                cfg.rows, cfg.dim, cfg.clusters
            );
            Ok((gen.sample(cfg.rows, 0), gen.sample(cfg.queries, 1), name))
        }
        _ => Err(LabError::Invalid(
            "give both a base file and a query file, or neither".into(),
        )),
    }
}

/// Runs the demo in collection `name` of `db` (replacing it if it exists).
pub fn run(
    catalog: &dyn Catalog,
    name: &str,
    cfg: &DemoConfig,
    progress: Progress,
) -> Result<DemoReport> {
    let (base, queries, data) = load(cfg)?;
    let dim = base.dim;
    let coll = crate::fresh_collection(catalog, name, dim, cfg.metric, cfg.settings.as_ref())?;

    let rows = base.len();
    let started = Instant::now();
    for start in (0..rows).step_by(cfg.batch.max(1)) {
        let end = (start + cfg.batch).min(rows);
        let batch = (start..end)
            .map(|i| Record::new(i as u64, base.row(i).to_vec()))
            .collect();
        coll.upsert(batch)?;
        progress("upsert", end as u64, rows as u64);
    }
    let upsert_secs = started.elapsed().as_secs_f64();

    let ids: Vec<u64> = (0..rows as u64).collect();
    progress("ground truth", 0, 1);
    let prepared = prepare(cfg.metric, &base.vectors, dim);
    let prepared_q = prepare(cfg.metric, &queries.vectors, dim);
    let truth = exact_knn_prepared(cfg.metric, &prepared, &ids, &prepared_q, dim, cfg.k);
    progress("ground truth", 1, 1);
    let dist = Distance::for_metric(cfg.metric);

    let mut params = coll.search_params(cfg.k);
    drift_engine::SearchOverrides {
        nprobe: cfg.nprobe,
        rerank: cfg.rerank,
        lambda: cfg.lambda,
        target_confidence: cfg.target_confidence,
        recall_target: cfg.recall_target,
        ..Default::default()
    }
    .apply(&mut params);
    let measure = |phase: &str| -> Result<(f64, Histogram<u64>, f64)> {
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
            .map_err(|e| LabError::Invalid(e.to_string()))?;
        let mut recall = 0.0;
        let nq = queries.len();
        // Small query sets are timed over several passes (recall is taken from the first).
        let passes = (2000 / nq.max(1)).clamp(1, 20);
        for _ in 1..passes {
            for qi in 0..nq {
                let t = Instant::now();
                coll.search(queries.row(qi), &params)?;
                hist.saturating_record(t.elapsed().as_nanos() as u64);
            }
        }
        for qi in 0..nq {
            let q = queries.row(qi);
            let t = Instant::now();
            let hits = coll.search(q, &params)?;
            hist.saturating_record(t.elapsed().as_nanos() as u64);
            let qv = &prepared_q[qi * dim..(qi + 1) * dim];
            let returned: Vec<u64> = hits.iter().map(|h| h.id).collect();
            recall += recall_with_ties(&truth.neighbours[qi], &returned, cfg.k, |id| {
                let r = id as usize;
                (r < rows).then(|| dist.eval(qv, &prepared[r * dim..(r + 1) * dim]))
            });
            if qi % 64 == 0 || qi + 1 == nq {
                progress(phase, qi as u64 + 1, nq as u64);
            }
        }
        let qps = 1e9 / hist.mean().max(1.0);
        Ok((recall / nq.max(1) as f64, hist, qps))
    };

    let (recall_l0, _, _) = measure("search (L0)")?;
    let t = Instant::now();
    coll.flush()?;
    let flush_ms = t.elapsed().as_secs_f64() * 1e3;
    // Warm up caches and the probe path once, then measure.
    let before = coll.stats()?;
    let (recall, hist, qps) = measure("search (L1)")?;
    let after = coll.stats()?;
    let (probed, _) = crate::run::scanned_per_search(&before, &after);
    Ok(DemoReport {
        data,
        rows,
        dim,
        queries: queries.len(),
        k: cfg.k,
        upsert_rows_per_s: rows as f64 / upsert_secs,
        flush_ms,
        recall_l0,
        recall,
        qps,
        p50_us: hist.value_at_quantile(0.5) as f64 / 1e3,
        p95_us: hist.value_at_quantile(0.95) as f64 / 1e3,
        p99_us: hist.value_at_quantile(0.99) as f64 / 1e3,
        buckets: after.buckets,
        mean_buckets_probed: probed,
        kernel: after.kernel,
    })
}
