//! `drift bench`: Drift beside faiss and hnswlib on the same files in one run. Builds each
//! index from one base file, sweeps each system's search knob over the same queries (one
//! query per call, single thread), scores every answer against one exact ground truth
//! (recall@k with ties), and reports recall, q/s, p50/p99, memory and build time per point,
//! plus Drift's q/s over each peer's at recall 0.90 / 0.95 / 0.99.

use std::path::{Path, PathBuf};
use std::time::Instant;

use drift_engine::distance::Distance;
use drift_engine::{Catalog, CollectionStats, IndexSettings, Metric, Record, SearchParams};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;

use crate::error::{LabError, Result};
use crate::peer::{Peer, PeerKind};
use crate::truth::{exact_knn_prepared, prepare, recall_with_ties, GroundTruth};
use crate::vecfile::{read_base_and_queries, split_rows};

/// Most maintenance passes run after the build before the sweep starts.
const QUIESCE_PASSES: usize = 1_000;
/// Longest the warm-up (from its start) goes on waiting for the monitor to replace a
/// provisional calibration.
const SETTLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(180);

/// One peer to run, with its build parameters and knob values.
#[derive(Debug, Clone)]
pub struct PeerSpec {
    /// Which system.
    pub kind: PeerKind,
    /// Build parameters (`scripts/peers.py` documents the keys).
    pub params: Value,
    /// Knob values to sweep (hnswlib ef, faiss nprobe).
    pub knobs: Vec<usize>,
}

impl PeerSpec {
    /// The default build and sweep of `kind` (faiss: nlist 4 * sqrt(rows), chosen by the
    /// adapter; nprobe values past nlist are clamped to it).
    pub fn default_for(kind: PeerKind) -> PeerSpec {
        match kind {
            PeerKind::Hnswlib => PeerSpec {
                kind,
                params: serde_json::json!({"M": 16, "ef_construction": 200}),
                knobs: vec![10, 16, 24, 32, 48, 64, 96, 128, 192, 256],
            },
            _ => PeerSpec {
                kind,
                params: serde_json::json!({}),
                knobs: vec![1, 2, 4, 8, 16, 32, 64, 96, 128, 192, 256],
            },
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Base vectors (a vector file, optionally `path@START..END`).
    pub base: PathBuf,
    /// Query vectors (same syntax).
    pub queries: PathBuf,
    /// Metric of every index.
    pub metric: Metric,
    /// Neighbours per query.
    pub k: usize,
    /// Drift recall targets to sweep.
    pub targets: Vec<f32>,
    /// Drift nprobe values to sweep (the expert knob).
    pub nprobes: Vec<usize>,
    /// Drift's index settings (defaults if `None`).
    pub settings: Option<IndexSettings>,
    /// Also sweep the targets with the binary prefilter off (system `drift-sq8`: every
    /// scanned row's SQ8 distance computed), to compare the two scans in one run.
    pub sq8_only: bool,
    /// Peers to run.
    pub peers: Vec<PeerSpec>,
    /// Rows per upsert call when building Drift.
    pub batch: usize,
    /// Rows re-upserted (same ids, same vectors) by a second thread while the queries run
    /// once more at the default target: latency under ingest (0 = skip).
    pub ingest_rows: usize,
    /// Searches Drift runs before measuring (cycling through the queries at the collection's
    /// default target), so that the live recall monitor has seen the workload as it would
    /// in service; at least one pass over the queries.
    pub warmup: usize,
    /// Rounds of the whole sweep: every system's knob values are measured once per round,
    /// the systems taking turns, and each point keeps its fastest round (so that a machine
    /// whose speed drifts over minutes slows every system alike).
    pub rounds: usize,
    /// Keep Drift's collection after the run, and measure the one a previous run kept instead
    /// of building anew when it holds the same rows under the same settings: two builds of
    /// one index (versions of the code, say) can then be compared on the same partitions.
    /// The ingest phase rewrites rows, so such comparisons pass `ingest_rows: 0`.
    pub keep_index: bool,
}

impl BenchConfig {
    /// Drift alone at the collection's default target (0.95): recall@10, one round after
    /// 10,000 warm-up searches, no peers, no ingest phase, rows upserted 1,000 at a time.
    /// Callers set what they sweep with struct update syntax.
    pub fn new(base: PathBuf, queries: PathBuf, metric: Metric) -> BenchConfig {
        BenchConfig {
            base,
            queries,
            metric,
            k: 10,
            targets: vec![0.95],
            nprobes: Vec::new(),
            settings: None,
            sq8_only: false,
            peers: Vec::new(),
            batch: 1000,
            ingest_rows: 0,
            warmup: 10_000,
            rounds: 1,
            keep_index: false,
        }
    }
}

/// One measured point of one system.
#[derive(Debug, Clone, Serialize)]
pub struct BenchPoint {
    /// System name (`drift`, `hnswlib`, `faiss_ivf_sq8`, ...).
    pub system: String,
    /// Knob name (`recall_target`, `nprobe`, `ef`).
    pub knob: String,
    /// Knob value.
    pub value: f64,
    /// Mean recall@k with ties.
    pub recall: f64,
    /// Queries per second, single thread (1 / mean latency).
    pub qps: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// Drift only: mean buckets probed per query.
    pub buckets: Option<f64>,
    /// Drift only: mean codes scanned per query.
    pub codes: Option<f64>,
    /// Drift only: mean codes per query whose SQ8 distance was computed.
    pub refined: Option<f64>,
}

/// Build figures of one system.
#[derive(Debug, Clone, Serialize)]
pub struct BenchSystem {
    /// System name.
    pub system: String,
    /// Seconds to build the index from the base file (Drift: upserts + flush).
    pub build_s: f64,
    /// Index bytes by the system's own accounting.
    pub index_bytes: u64,
    /// Growth of the resident set of the process holding the index.
    pub rss_growth_bytes: u64,
    /// Library versions (peers).
    pub versions: Value,
    /// System-specific detail (Drift: its recall calibration).
    pub detail: Value,
    /// Drift: its resident bytes by kind (`null` for peers).
    pub memory: Option<drift_engine::collection::MemoryUse>,
}

/// Drift's q/s over a peer's at one recall level (best measured point reaching it).
#[derive(Debug, Clone, Serialize)]
pub struct BenchRatio {
    /// Recall level.
    pub recall: f64,
    /// The peer.
    pub peer: String,
    /// Drift's best q/s at or above the level (None: never reached).
    pub drift_qps: Option<f64>,
    /// The peer's best q/s at or above the level.
    pub peer_qps: Option<f64>,
    /// `drift_qps / peer_qps` when both reached the level.
    pub ratio: Option<f64>,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Base file.
    pub base: String,
    /// Query file.
    pub queries: String,
    /// Rows in the base.
    pub rows: usize,
    /// Queries.
    pub nq: usize,
    /// Dimension.
    pub dim: usize,
    /// Metric.
    pub metric: String,
    /// Neighbours per query.
    pub k: usize,
    /// Per system build figures.
    pub systems: Vec<BenchSystem>,
    /// Every measured point.
    pub points: Vec<BenchPoint>,
    /// Drift over each peer at 0.90 / 0.95 / 0.99.
    pub ratios: Vec<BenchRatio>,
}

/// Progress callback: (phase, done, total).
pub type Progress<'a> = &'a dyn Fn(&str, u64, u64);

/// Resident set size of this process, bytes (0 where `/proc` is absent).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Scores answers (ids per query) against the truth.
struct Scorer<'a> {
    truth: &'a GroundTruth,
    base: &'a [f32],
    queries: &'a [f32],
    dim: usize,
    first_id: u64,
    dist: Distance,
    k: usize,
}

impl Scorer<'_> {
    fn recall(&self, qi: usize, ids: &[u64]) -> f64 {
        let dim = self.dim;
        let q = &self.queries[qi * dim..(qi + 1) * dim];
        let rows = (self.base.len() / dim) as u64;
        recall_with_ties(&self.truth.neighbours[qi], ids, self.k, |id| {
            let r = id.checked_sub(self.first_id)?;
            (r < rows).then(|| {
                let r = r as usize;
                self.dist.eval(q, &self.base[r * dim..(r + 1) * dim])
            })
        })
    }

    fn point(
        &self,
        system: &str,
        knob: &str,
        value: f64,
        ids: &[Vec<u64>],
        ns: &[u64],
    ) -> Result<BenchPoint> {
        let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000_000, 3)
            .map_err(|e| LabError::Invalid(e.to_string()))?;
        for &n in ns {
            hist.saturating_record(n.max(1));
        }
        let recall = ids
            .iter()
            .enumerate()
            .map(|(qi, a)| self.recall(qi, a))
            .sum::<f64>()
            / ids.len().max(1) as f64;
        Ok(BenchPoint {
            system: system.into(),
            knob: knob.into(),
            value,
            recall,
            qps: 1e9 / hist.mean().max(1.0),
            p50_us: hist.value_at_quantile(0.5) as f64 / 1e3,
            p99_us: hist.value_at_quantile(0.99) as f64 / 1e3,
            buckets: None,
            codes: None,
            refined: None,
        })
    }
}

/// Runs the benchmark; Drift's collection `name` in `db` is replaced.
pub fn run(
    catalog: &dyn Catalog,
    name: &str,
    cfg: &BenchConfig,
    progress: Progress,
) -> Result<BenchReport> {
    let (base_file, base_rows) = split_rows(&cfg.base)?;
    let (query_file, query_rows) = split_rows(&cfg.queries)?;
    let (base, queries, dim) = read_base_and_queries(&cfg.base, &cfg.queries)?;
    let rows = base.len() / dim;
    let nq = queries.len() / dim;
    let first_id = base_rows.start;
    let ids: Vec<u64> = (first_id..first_id + rows as u64).collect();
    progress("ground truth", 0, 1);
    let pb = prepare(cfg.metric, &base, dim);
    let pq = prepare(cfg.metric, &queries, dim);
    let truth = exact_knn_prepared(cfg.metric, &pb, &ids, &pq, dim, cfg.k);
    progress("ground truth", 1, 1);
    let scorer = Scorer {
        truth: &truth,
        base: &pb,
        queries: &pq,
        dim,
        first_id,
        dist: Distance::for_metric(cfg.metric),
        k: cfg.k,
    };

    let mut systems = Vec::new();
    let mut points = Vec::new();

    // Drift.
    let settings = cfg.settings.clone().unwrap_or_default();
    let kept = cfg
        .keep_index
        .then(|| catalog.open(name).ok())
        .flatten()
        .filter(|c| {
            c.stats().is_ok_and(|st| {
                st.dim == dim
                    && st.metric == cfg.metric.name()
                    && st.live_vectors == rows
                    && st.l0_rows == 0
            }) && c.config().settings == settings
        });
    let rss0 = rss_bytes();
    let reused = kept.is_some();
    let coll = match kept {
        Some(c) => c,
        None => crate::fresh_collection(catalog, name, dim, cfg.metric, cfg.settings.as_ref())?,
    };
    // Upserts base rows `0..n` (ids from `first_id`) in the bench's batch size.
    let upsert_rows = |n: usize, each: &dyn Fn(usize)| -> Result<()> {
        for start in (0..n).step_by(cfg.batch.max(1)) {
            let end = (start + cfg.batch.max(1)).min(n);
            let batch = (start..end)
                .map(|i| Record::new(ids[i], base[i * dim..(i + 1) * dim].to_vec()))
                .collect();
            coll.upsert(batch)?;
            each(end);
        }
        Ok(())
    };
    // Buckets, codes and SQ8 distances per search between two stats snapshots.
    let with_scan_counts =
        |mut p: BenchPoint, before: &CollectionStats, after: &CollectionStats| {
            let (b, c) = crate::run::scanned_per_search(before, after);
            p.buckets = Some(b);
            p.codes = Some(c);
            p.refined = Some(crate::run::per_search(before, after, |s| {
                s.mean_codes_refined
            }));
            p
        };
    let t = Instant::now();
    if reused {
        progress("drift build (kept index reused)", 1, 1);
    } else {
        upsert_rows(rows, &|end| {
            progress("drift build", end as u64, rows as u64)
        })?;
        coll.flush()?;
        // The index is measured at rest: with background maintenance on, the janitor would go
        // on splitting and merging during the sweep (one run measured 30.9k codes per query at
        // nprobe 64 falling to 26.3k), so maintenance runs here until its policy finds nothing
        // to do (counted in the build time). With it off, the layer the writes left is the one
        // measured.
        if coll.config().settings.maintenance.background {
            coll.maintain(QUIESCE_PASSES)?;
        }
    }
    let build_s = t.elapsed().as_secs_f64();
    let by_target = |system: &'static str, prefilter: bool| {
        let coll = &coll;
        cfg.targets.iter().map(move |&r| {
            let mut p = coll.search_params(cfg.k);
            p.recall_target = Some(r);
            p.prefilter = prefilter;
            (system, "recall_target", r as f64, p)
        })
    };
    let drift_sweep: Vec<(&str, &str, f64, SearchParams)> = by_target("drift", true)
        .chain(cfg.nprobes.iter().map(|&n| {
            let mut p = coll.search_params(cfg.k);
            p.nprobe = Some(n);
            p.recall_target = None;
            ("drift", "nprobe", n as f64, p)
        }))
        .chain(by_target("drift-sq8", false).take(if cfg.sq8_only { usize::MAX } else { 0 }))
        .collect();
    // Untimed warm-up at the default target: caches fill, and the recall monitor samples
    // the workload and sets its depth, as it would in service. Past `warm` searches it goes
    // on while the calibration is still the provisional one fitted on stored rows (up to
    // SETTLE_LIMIT), so that the sweep measures the steady state rather than the refit.
    let default = coll.search_params(cfg.k);
    let warm = cfg.warmup.max(nq);
    let started = Instant::now();
    // Whether the calibration is still the provisional one, checked every 256 searches.
    let provisional = || -> Result<bool> {
        let st = coll.stats()?;
        Ok(st.recall.calibration.is_some_and(|c| c.provisional()))
    };
    let mut i = 0;
    let mut settling = true;
    while i < warm || (settling && started.elapsed() < SETTLE_LIMIT) {
        let qi = i % nq;
        coll.search(&queries[qi * dim..(qi + 1) * dim], &default)?;
        i += 1;
        if i % 256 == 0 {
            progress("drift warm-up", i.min(warm) as u64, warm as u64);
            if i >= warm {
                settling = provisional()?;
            }
        }
    }
    // Peers are built now, beside the Drift collection, so that the rounds below interleave
    // the systems on the same files.
    let mut peers = Vec::new();
    for spec in &cfg.peers {
        let label = spec.kind.name();
        progress(&format!("{label} build"), 0, 1);
        let mut peer = Peer::spawn(spec.kind, dim, cfg.metric, &spec.params)?;
        peer.insert_rows(&base_file, base_rows.start, base_rows.start + rows as u64)?;
        progress(&format!("{label} build"), 1, 1);
        peers.push((spec, peer));
    }
    let rounds = cfg.rounds.max(1);
    let drift_points = drift_sweep.len();
    let slots = drift_points + peers.iter().map(|p| p.0.knobs.len()).sum::<usize>();
    let total = (rounds * slots) as u64;
    let mut done = 0u64;
    // Slot `i` holds the fastest measurement so far of sweep point `i` (Drift's, then each
    // peer's in turn).
    let mut best: Vec<Option<BenchPoint>> = vec![None; slots];
    let keep = |slot: &mut Option<BenchPoint>, p: BenchPoint| {
        if slot.as_ref().is_none_or(|b| p.qps > b.qps) {
            *slot = Some(p);
        }
    };
    for round in 0..rounds {
        for (i, (system, knob, value, params)) in drift_sweep.iter().enumerate() {
            let before = coll.stats()?;
            let mut answers = Vec::with_capacity(nq);
            let mut ns = Vec::with_capacity(nq);
            for qi in 0..nq {
                let q = &queries[qi * dim..(qi + 1) * dim];
                let t = Instant::now();
                let hits = coll.search(q, params)?;
                ns.push(t.elapsed().as_nanos() as u64);
                answers.push(hits.iter().map(|h| h.id).collect::<Vec<_>>());
            }
            let p = scorer.point(system, knob, *value, &answers, &ns)?;
            keep(&mut best[i], with_scan_counts(p, &before, &coll.stats()?));
            done += 1;
            progress(&format!("sweep round {}/{rounds}", round + 1), done, total);
        }
        let mut slot = drift_points;
        for (spec, peer) in peers.iter_mut() {
            let label = spec.kind.name();
            for &knob in &spec.knobs {
                let a = peer.search(
                    &query_file,
                    query_rows.start,
                    query_rows.start + nq as u64,
                    cfg.k,
                    knob,
                )?;
                if a.ids.len() != nq {
                    return Err(LabError::Invalid(format!(
                        "peer {label} answered {} of {nq} queries",
                        a.ids.len()
                    )));
                }
                let p = scorer.point(label, spec.kind.knob(), knob as f64, &a.ids, &a.ns)?;
                keep(&mut best[slot], p);
                slot += 1;
                done += 1;
                progress(&format!("sweep round {}/{rounds}", round + 1), done, total);
            }
        }
    }
    let mut best = best.into_iter().flatten();
    points.extend(best.by_ref().take(drift_points));
    let peer_points: Vec<BenchPoint> = best.collect();
    if cfg.ingest_rows > 0 {
        // Latency under ingest: the same vectors re-upserted under the same ids (the truth
        // stays valid) on another thread, in the bench's batch size, while the queries run
        // at the default target, cycling until the writer is done.
        let n = cfg.ingest_rows.min(rows);
        let done = std::sync::atomic::AtomicBool::new(false);
        let (mut answers, mut ns) = (vec![Vec::new(); nq], Vec::new());
        let before = coll.stats()?;
        let t = Instant::now();
        let written = std::thread::scope(|s| -> Result<usize> {
            let writer = s.spawn(|| -> Result<usize> {
                let out = upsert_rows(n, &|_| {})
                    .and_then(|()| Ok(coll.flush()?))
                    .map(|_| n);
                done.store(true, std::sync::atomic::Ordering::Release);
                out
            });
            let mut i = 0;
            while !done.load(std::sync::atomic::Ordering::Acquire) || i < nq {
                let qi = i % nq;
                let q = &queries[qi * dim..(qi + 1) * dim];
                let t = Instant::now();
                let hits = coll.search(q, &default)?;
                ns.push(t.elapsed().as_nanos() as u64);
                answers[qi] = hits.iter().map(|h| h.id).collect();
                i += 1;
            }
            writer
                .join()
                .map_err(|_| LabError::Invalid("the ingest thread panicked".into()))?
        })?;
        let p = scorer.point("drift-ingest", "rows", written as f64, &answers, &ns)?;
        let p = with_scan_counts(p, &before, &coll.stats()?);
        progress(
            &format!(
                "drift under ingest ({:.0} rows/s)",
                written as f64 / t.elapsed().as_secs_f64()
            ),
            1,
            1,
        );
        points.push(p);
        // Memory is measured at rest, as the build is: the janitor compacts the buckets the
        // re-upserts left stale copies in before the resident bytes are counted.
        if coll.config().settings.maintenance.background {
            coll.maintain(QUIESCE_PASSES)?;
        }
    }
    let st = coll.stats()?;
    systems.push(BenchSystem {
        system: "drift".into(),
        build_s,
        index_bytes: st.resident_bytes,
        rss_growth_bytes: rss_bytes().saturating_sub(rss0),
        versions: serde_json::json!({ "drift": env!("CARGO_PKG_VERSION"), "kernel": st.kernel, "reused_index": reused }),
        detail: serde_json::to_value(&st.recall).unwrap_or(Value::Null),
        memory: Some(st.memory),
    });
    drop(coll);
    if !cfg.keep_index {
        catalog.drop_collection(name)?;
    }

    // Peers, measured in the rounds above.
    points.extend(peer_points);
    for (spec, mut peer) in peers {
        let st = peer.stats()?;
        systems.push(BenchSystem {
            system: spec.kind.name().into(),
            build_s: st.build_s,
            index_bytes: st.bytes,
            rss_growth_bytes: st.rss_growth,
            versions: peer.versions.clone(),
            detail: Value::Null,
            memory: None,
        });
    }

    let ratios = ratios(&points, &cfg.peers);
    Ok(BenchReport {
        base: cfg.base.display().to_string(),
        queries: cfg.queries.display().to_string(),
        rows,
        nq,
        dim,
        metric: format!("{:?}", cfg.metric),
        k: cfg.k,
        systems,
        points,
        ratios,
    })
}

/// The best q/s of `system` among points reaching `recall`.
pub fn best_qps(points: &[BenchPoint], system: &str, recall: f64) -> Option<f64> {
    points
        .iter()
        .filter(|p| p.system == system && p.recall >= recall)
        .map(|p| p.qps)
        .max_by(f64::total_cmp)
}

fn ratios(points: &[BenchPoint], peers: &[PeerSpec]) -> Vec<BenchRatio> {
    let mut out = Vec::new();
    for level in [0.90, 0.95, 0.99] {
        let drift = best_qps(points, "drift", level);
        for p in peers {
            let peer = best_qps(points, p.kind.name(), level);
            out.push(BenchRatio {
                recall: level,
                peer: p.kind.name().into(),
                drift_qps: drift,
                peer_qps: peer,
                ratio: drift.zip(peer).map(|(d, p)| d / p),
            });
        }
    }
    out
}

/// The report as a Markdown document (points table, build table, ratios).
pub fn markdown(r: &BenchReport, command: &str) -> String {
    let mut s = format!(
        "# Benchmark: {} ({} rows x {} dims, {}), queries {} ({}), recall@{}\n\n\
         Reproduce: `{command}`\n\nSingle thread, one query per call, recall with ties \
         against brute force; every system in the same run on the same files.\n\n",
        r.base, r.rows, r.dim, r.metric, r.queries, r.nq, r.k
    );
    s.push_str("| system | knob | value | recall | q/s | p50 us | p99 us | buckets | codes | SQ8 refined |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for p in &r.points {
        let opt = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v:.1}"));
        s.push_str(&format!(
            "| {} | {} | {} | {:.4} | {:.0} | {:.0} | {:.0} | {} | {} | {} |\n",
            p.system,
            p.knob,
            p.value,
            p.recall,
            p.qps,
            p.p50_us,
            p.p99_us,
            opt(p.buckets),
            opt(p.codes),
            opt(p.refined)
        ));
    }
    s.push_str(
        "\n| system | build s | index MiB | RSS growth MiB | versions |\n|---|---|---|---|---|\n",
    );
    for sy in &r.systems {
        s.push_str(&format!(
            "| {} | {:.1} | {:.1} | {:.1} | {} |\n",
            sy.system,
            sy.build_s,
            sy.index_bytes as f64 / 1048576.0,
            sy.rss_growth_bytes as f64 / 1048576.0,
            sy.versions
        ));
    }
    for (sy, m) in r.systems.iter().filter_map(|sy| Some((sy, sy.memory?))) {
        let mib = |b: u64| format!("{:.2}", b as f64 / 1048576.0);
        let base = m.codes_and_ids();
        s.push_str(&format!(
            "\n{} resident MiB by kind, at rest after the run ({} rows stored): codes {}, \
             sketches {}, ids {}, sequence numbers {}, norms {}, payloads {}, buckets \
             (quantizers, centroids, anchors) {}, vectors {}, memtables {}, block cache {}; \
             {:.3}x the SQ8 codes + 8-byte ids ({} MiB).\n",
            sy.system,
            m.rows,
            mib(m.codes),
            mib(m.sketches),
            mib(m.ids),
            mib(m.seqs),
            mib(m.norms),
            mib(m.payloads),
            mib(m.buckets),
            mib(m.vectors),
            mib(m.memtables),
            mib(m.cache),
            m.total() as f64 / base.max(1) as f64,
            mib(base),
        ));
    }
    s.push_str(
        "\n| recall >= | peer | drift q/s | peer q/s | drift / peer |\n|---|---|---|---|---|\n",
    );
    for x in &r.ratios {
        let f = |v: Option<f64>| v.map_or("not reached".to_string(), |v| format!("{v:.0}"));
        s.push_str(&format!(
            "| {:.2} | {} | {} | {} | {} |\n",
            x.recall,
            x.peer,
            f(x.drift_qps),
            f(x.peer_qps),
            x.ratio.map_or("-".to_string(), |v| format!("{v:.2}x"))
        ));
    }
    s
}

/// Writes `bench.json` and `bench.md` into `dir`.
pub fn write(dir: &Path, r: &BenchReport, command: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| LabError::io(dir, e))?;
    let json = dir.join("bench.json");
    let body = serde_json::to_string_pretty(r).map_err(|e| LabError::Invalid(e.to_string()))?;
    std::fs::write(&json, body).map_err(|e| LabError::io(&json, e))?;
    let md = dir.join("bench.md");
    std::fs::write(&md, markdown(r, command)).map_err(|e| LabError::io(&md, e))
}
