//! What the runbook tests share: small clustered files and a step-by-step run configuration.

use std::path::{Path, PathBuf};

use drift_lab::run::RunConfig;
use drift_lab::scenario::BaselineKind;
use drift_lab::vecfile::write_fbin;

/// `rows` base vectors in cluster order and `queries` fresh draws of `clusters` clusters in
/// `dim` dimensions, as `base.fbin` and `q.fbin` in `dir`.
pub fn runbook_files(
    dir: &Path,
    dim: usize,
    clusters: usize,
    seed: u64,
    rows: usize,
    queries: usize,
) -> (PathBuf, PathBuf) {
    let gen = drift_lab::datasets::Clustered::new(dim, clusters, seed);
    let (b, q) = (dir.join("base.fbin"), dir.join("q.fbin"));
    write_fbin(&b, &gen.sample_in_cluster_order(rows, 0).vectors, dim).unwrap();
    write_fbin(&q, &gen.sample(queries, 1).vectors, dim).unwrap();
    (b, q)
}

/// k = 10, L2, 32-row buckets, maintenance between steps only (no background thread), a
/// flush after every step, the given baselines and peer settings, results in `out`.
pub fn runbook_config(
    out: PathBuf,
    baselines: Vec<BaselineKind>,
    peers: std::collections::BTreeMap<String, serde_json::Value>,
) -> RunConfig {
    let mut engine = drift_engine::IndexSettings {
        target_bucket_size: 32,
        ..Default::default()
    };
    engine.maintenance.background = false;
    RunConfig {
        k: 10,
        metric: drift_engine::Metric::L2,
        engine,
        batch: 100,
        flush_each_step: true,
        heal_passes: 8,
        baselines,
        peers,
        variants: Vec::new(),
        out,
    }
}
