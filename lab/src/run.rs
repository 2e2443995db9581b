//! The lab runner: replays a driver's actions against every system in one process and
//! records, per step and system, what was measured.
//!
//! ```text
//! Driver (scenario | runbook) ─▶ Action ─▶ live set (ground truth by exact search)
//!                                      └─▶ each index: Transport (direct | kafka+sql) ─▶ collection
//!                                      └─▶ each system: search ─▶ recall@k, latency ─▶ raw.jsonl
//! ```
//!
//! The runner creates its indexes in a catalog of its own and reaches them only through the
//! engine's [`Catalog`] and [`VectorWrite`]. Systems that differ only in search options share
//! one index, so writes and maintenance run once per index. Raw records go to `raw.jsonl` as
//! each step ends; `report` renders the rest.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use drift_engine::distance::Distance;
use drift_engine::{
    Catalog, CollectionConfig, CollectionStats, Database, IndexSettings, Metric, PolicyKind,
    Scoring, SearchOverrides, SearchParams, VectorWrite, Write,
};
use hdrhistogram::Histogram;

use crate::baseline::PeerSystem;
use crate::driver::{Action, Driver};
use crate::error::{LabError, Result};
use crate::live::Live;
use crate::record::{RunOutcome, StepRecord};
use crate::scenario::{BaselineKind, Scenario};
use crate::transport::{Transport, TransportFactory};
use crate::truth::{exact_knn_prepared, exact_top, prepare, recall_with_ties};

/// Options of a run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Neighbours per query.
    pub k: usize,
    /// Metric.
    pub metric: Metric,
    /// Settings of the index under test.
    pub engine: IndexSettings,
    /// Rows per write call.
    pub batch: usize,
    /// Flush after every write step.
    pub flush_each_step: bool,
    /// Maintenance passes after every write step.
    pub heal_passes: usize,
    /// Reference systems.
    pub baselines: Vec<BaselineKind>,
    /// Settings of the peer baselines by `--baselines` name (build settings and the knob:
    /// `ef` for hnswlib, `nprobe` for faiss); absent ones run at their defaults.
    pub peers: std::collections::BTreeMap<String, serde_json::Value>,
    /// Variants of the index under test: (name, settings, search options).
    pub variants: Vec<(String, IndexSettings, SearchOverrides)>,
    /// Output folder (raw results, the engine's data under `db/`).
    pub out: PathBuf,
}

impl RunConfig {
    /// The run of a scenario.
    pub fn from_scenario(s: &Scenario, out: &Path) -> Result<RunConfig> {
        let mut engine = s.engine.clone();
        engine.maintenance.background = s.run.background;
        let mut variants = Vec::new();
        for v in &s.variants {
            let mut settings = s.variant_settings(v)?;
            settings.maintenance.background = s.run.background;
            variants.push((v.name.clone(), settings, v.search.clone()));
        }
        for (name, over) in s.sweep.points() {
            variants.push((name, engine.clone(), over));
        }
        Ok(RunConfig {
            k: s.k.0,
            metric: s.metric,
            engine,
            batch: s.run.batch.0,
            flush_each_step: s.run.flush_each_step,
            heal_passes: s.run.heal_passes,
            baselines: s.baselines.clone(),
            peers: s.peers.clone(),
            variants,
            out: out.to_path_buf(),
        })
    }
}

/// An index: one collection (the runner's own handle, for flushes, maintenance and stats)
/// and the transport that feeds and searches it.
struct Index {
    coll: Arc<dyn VectorWrite>,
    transport: Box<dyn Transport>,
}

/// A system: a name, what it searches, and with which options.
struct System {
    name: String,
    /// Transport name of its index (`in-process` for brute force, `peer adapter` for peers).
    path: String,
    /// Index position, for Drift's indexes.
    index: Option<usize>,
    /// Peer position and knob value, for the peer baselines (neither: brute force).
    peer: Option<(usize, usize)>,
    over: SearchOverrides,
    params: Option<SearchParams>,
}

/// Progress callback: (step done, steps in all, what ran).
pub type Progress<'a> = &'a dyn Fn(usize, usize, &str);

/// Replays `driver` on every system and returns (and writes) the raw results.
pub fn run(
    driver: &mut dyn Driver,
    cfg: &RunConfig,
    transport: TransportFactory,
    progress: Progress,
) -> Result<RunOutcome> {
    let started = Instant::now();
    let dim = driver.dim();
    std::fs::create_dir_all(&cfg.out).map_err(|e| LabError::io(&cfg.out, e))?;
    let db_dir = cfg.out.join("db");
    if db_dir.exists() {
        std::fs::remove_dir_all(&db_dir).map_err(|e| LabError::io(&db_dir, e))?;
    }
    let db = Arc::new(Database::open(&db_dir)?);
    let catalog: Arc<dyn Catalog> = db.clone();
    let (mut indexes, systems) = build(&catalog, dim, cfg, transport)?;
    let mut peers = Vec::new();
    let mut systems = systems;
    for b in cfg
        .baselines
        .iter()
        .filter_map(|b| b.peer().map(|p| (b, p)))
    {
        let (baseline, kind) = b;
        let settings = cfg.peers.get(baseline.key());
        let peer = PeerSystem::start(kind, dim, cfg.metric, settings, &cfg.out.join("peers"))?;
        let (knobs, swept) = peer.knobs();
        for &knob in knobs {
            // A swept knob makes one system per value ("hnswlib ef=64"), drawn as one curve.
            let name = if swept {
                format!("{} {}={knob}", baseline.name(), kind.knob())
            } else {
                baseline.name().to_string()
            };
            systems.push(System {
                name,
                path: "peer adapter".into(),
                index: None,
                peer: Some((peers.len(), knob)),
                over: SearchOverrides::default(),
                params: None,
            });
        }
        peers.push(peer);
    }
    let via = indexes
        .first()
        .map(|i| i.transport.name())
        .unwrap_or("in-process")
        .to_string();
    let raw_path = cfg.out.join("raw.jsonl");
    let mut raw = std::io::BufWriter::new(
        std::fs::File::create(&raw_path).map_err(|e| LabError::io(&raw_path, e))?,
    );
    let mut live = Live::default();
    let mut records = Vec::new();
    let dist = Distance::for_metric(cfg.metric);
    let total = driver.len();
    let mut inserted = 0u64;
    for i in 0..total {
        let action = driver.action(i, &live)?;
        if let Action::Write { writes, .. } = &action {
            inserted += writes
                .iter()
                .filter(|w| matches!(w, Write::Upsert(_)))
                .count() as u64;
        }
        let (op, detail) = describe(&action);
        let time = driver.time();
        let mut rows: Vec<StepRecord> = Vec::new();
        let base = |system: &System, secs: f64, live: usize| StepRecord {
            step: i + 1,
            op: op.to_string(),
            detail: detail.clone(),
            system: system.name.clone(),
            path: system.path.clone(),
            live,
            time,
            secs,
            recall: None,
            queries: 0,
            qps: None,
            p50_us: None,
            p95_us: None,
            p99_us: None,
            buckets: None,
            splits: None,
            merges: None,
            reassigned: None,
            rewritten: None,
            buckets_per_query: None,
            codes_per_query: None,
            engine_us: None,
            inserted,
            monitored_recall: None,
            index_bytes: None,
        };
        match action {
            Action::Write { writes, .. } => {
                let mut secs = vec![0.0; indexes.len()];
                for (x, idx) in indexes.iter_mut().enumerate() {
                    let t = Instant::now();
                    for chunk in writes.chunks(cfg.batch.max(1)) {
                        idx.transport.write(chunk.to_vec())?;
                    }
                    idx.transport.sync()?;
                    if cfg.flush_each_step {
                        idx.coll.flush()?;
                    }
                    heal(&*idx.coll, cfg.heal_passes)?;
                    secs[x] = t.elapsed().as_secs_f64();
                }
                let mut peer_secs = vec![0.0; peers.len()];
                for (x, p) in peers.iter_mut().enumerate() {
                    let t = Instant::now();
                    p.write(&writes)?;
                    peer_secs[x] = t.elapsed().as_secs_f64();
                }
                live.apply(&writes);
                for s in &systems {
                    let secs = match (s.index, s.peer) {
                        (Some(x), _) => secs[x],
                        (None, Some((x, _))) => peer_secs[x],
                        (None, None) => 0.0,
                    };
                    rows.push(base(s, secs, live.len()));
                }
            }
            Action::Drift(_) => {
                for s in &systems {
                    rows.push(base(s, 0.0, live.len()));
                }
            }
            Action::Maintain(passes) => {
                let mut secs = vec![0.0; indexes.len()];
                for (x, idx) in indexes.iter().enumerate() {
                    let t = Instant::now();
                    heal(&*idx.coll, passes)?;
                    secs[x] = t.elapsed().as_secs_f64();
                }
                for s in &systems {
                    rows.push(base(s, s.index.map_or(0.0, |x| secs[x]), live.len()));
                }
            }
            Action::Search(queries) => {
                let (ids, data) = live.flat(dim);
                let prepared = prepare(cfg.metric, &data, dim);
                let prepared_q = prepare(cfg.metric, &queries, dim);
                let truth =
                    exact_knn_prepared(cfg.metric, &prepared, &ids, &prepared_q, dim, cfg.k);
                let pos: HashMap<u64, usize> =
                    ids.iter().enumerate().map(|(r, id)| (*id, r)).collect();
                // Each step starts with a different system, so that none always pays for
                // cold caches after the writes.
                let n = systems.len();
                for s in systems.iter().cycle().skip(i % n.max(1)).take(n) {
                    let t = Instant::now();
                    let before = s.index.map(|x| indexes[x].coll.stats()).transpose()?;
                    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
                        .map_err(|e| LabError::Invalid(e.to_string()))?;
                    let mut recall = 0.0;
                    let nq = queries.len() / dim;
                    // A peer answers the whole batch in one call and times each query itself.
                    let mut answered = match s.peer {
                        Some((x, knob)) => Some(peers[x].search(&queries, cfg.k, knob)?),
                        None => None,
                    };
                    for qi in 0..nq {
                        let q = &queries[qi * dim..(qi + 1) * dim];
                        let qv = &prepared_q[qi * dim..(qi + 1) * dim];
                        let qt = Instant::now();
                        let (got, ns) = match (s.index, answered.as_mut()) {
                            (_, Some(a)) => (std::mem::take(&mut a.ids[qi]), a.ns[qi]),
                            (Some(x), None) => {
                                let idx = &mut indexes[x];
                                let params = s.params.as_ref().expect("index systems have params");
                                let got = idx.transport.search(q, params, &s.over)?;
                                (got, qt.elapsed().as_nanos() as u64)
                            }
                            (None, None) => {
                                let got = exact_top(&dist, qv, &prepared, &ids, dim, cfg.k)
                                    .into_iter()
                                    .map(|(id, _)| id)
                                    .collect();
                                (got, qt.elapsed().as_nanos() as u64)
                            }
                        };
                        hist.saturating_record(ns.max(1));
                        recall += recall_with_ties(&truth.neighbours[qi], &got, cfg.k, |id| {
                            pos.get(&id)
                                .map(|&r| dist.eval(qv, &prepared[r * dim..(r + 1) * dim]))
                        });
                    }
                    let mut row = base(s, t.elapsed().as_secs_f64(), live.len());
                    row.queries = nq;
                    row.recall = Some(if nq == 0 { 1.0 } else { recall / nq as f64 });
                    row.qps = Some(1e9 / hist.mean().max(1.0));
                    row.p50_us = Some(hist.value_at_quantile(0.50) as f64 / 1e3);
                    row.p95_us = Some(hist.value_at_quantile(0.95) as f64 / 1e3);
                    row.p99_us = Some(hist.value_at_quantile(0.99) as f64 / 1e3);
                    if let (Some(x), Some(b)) = (s.index, before) {
                        let after = indexes[x].coll.stats()?;
                        let (buckets, codes) = scanned_per_search(&b, &after);
                        row.buckets_per_query = Some(buckets);
                        row.codes_per_query = Some(codes);
                        row.engine_us = Some(per_search(&b, &after, |s| s.mean_search_us));
                    }
                    rows.push(row);
                }
            }
        }
        rows.sort_by_key(|r| systems.iter().position(|s| s.name == r.system));
        // One stats snapshot per index; every step has one row per system, in system order.
        let stats: Vec<CollectionStats> = indexes
            .iter()
            .map(|x| x.coll.stats())
            .collect::<drift_engine::Result<_>>()?;
        let peer_bytes: Vec<u64> = peers
            .iter_mut()
            .map(|p| p.stats().map(|st| st.bytes))
            .collect::<Result<_>>()?;
        for (row, s) in rows.iter_mut().zip(&systems) {
            if let Some(x) = s.index {
                fill_stats(row, &stats[x]);
            }
            if let Some((x, _)) = s.peer {
                row.index_bytes = Some(peer_bytes[x]);
            }
            let line = serde_json::to_string(row).map_err(|e| LabError::Invalid(e.to_string()))?;
            writeln!(raw, "{line}").map_err(|e| LabError::io(&raw_path, e))?;
        }
        raw.flush().map_err(|e| LabError::io(&raw_path, e))?;
        records.extend(rows);
        progress(i + 1, total, op);
    }
    for idx in &mut indexes {
        idx.transport.finish()?;
    }
    db.close();
    Ok(RunOutcome {
        name: driver.name().to_string(),
        via,
        k: cfg.k,
        systems: systems.iter().map(|s| s.name.clone()).collect(),
        records,
        secs: started.elapsed().as_secs_f64(),
    })
}

fn heal(coll: &dyn VectorWrite, passes: usize) -> Result<()> {
    if passes > 0 && coll.config().settings.maintenance.policy != PolicyKind::Off {
        coll.maintain(passes)?;
    }
    Ok(())
}

/// Mean buckets and SQ8 codes scanned per search between two stats snapshots.
pub fn scanned_per_search(before: &CollectionStats, after: &CollectionStats) -> (f64, f64) {
    (
        per_search(before, after, |s| s.mean_buckets_probed),
        per_search(before, after, |s| s.mean_codes_scanned),
    )
}

/// The per-search mean of a since-open mean (`pick`) over the searches between two stats
/// snapshots.
pub fn per_search(
    before: &CollectionStats,
    after: &CollectionStats,
    pick: impl Fn(&CollectionStats) -> f64,
) -> f64 {
    let n = (after.searches - before.searches).max(1) as f64;
    (pick(after) * after.searches as f64 - pick(before) * before.searches as f64) / n
}

fn fill_stats(row: &mut StepRecord, st: &CollectionStats) {
    row.buckets = Some(st.buckets);
    row.splits = Some(st.maintenance.splits);
    row.merges = Some(st.maintenance.merges);
    row.reassigned = Some(st.maintenance.reassigned);
    row.rewritten = Some(st.maintenance.written);
    row.monitored_recall = st.recall.measured;
    row.index_bytes = Some(st.memory.total());
}

fn describe(a: &Action) -> (&'static str, String) {
    match a {
        Action::Write { op, detail, .. } => (op, detail.clone()),
        Action::Drift(t) => ("drift", format!("time +{t}")),
        Action::Maintain(p) => ("maintain", format!("{p} passes")),
        Action::Search(_) => ("search", String::new()),
    }
}

/// Creates the indexes and systems of a run: the index under test ("drift"), its variants
/// (sharing its index when only search options differ) and the baselines.
fn build(
    catalog: &Arc<dyn Catalog>,
    dim: usize,
    cfg: &RunConfig,
    transport: TransportFactory,
) -> Result<(Vec<Index>, Vec<System>)> {
    let mut indexes: Vec<(IndexSettings, Index)> = Vec::new();
    let mut systems = Vec::new();
    let mut add = |name: &str, settings: IndexSettings, over: SearchOverrides| -> Result<()> {
        let pos = match indexes.iter().position(|(s, _)| *s == settings) {
            Some(p) => p,
            None => {
                let coll_name = format!("lab-{}", sanitize(name));
                let mut config = CollectionConfig::new(dim, cfg.metric);
                config.settings = settings.clone();
                if cfg.flush_each_step {
                    // Only the runner flushes: the engine's own flush thresholds would fire at
                    // a moment that depends on thread timing, and with it which rows train the
                    // centroids, so runs would not repeat.
                    let s = &mut config.settings;
                    s.flush_threshold = usize::MAX;
                    s.max_flush_backlog = usize::MAX;
                    s.auto_train_min = usize::MAX;
                }
                let coll = catalog.create(&coll_name, config)?;
                let transport = transport(catalog, &coll_name)?;
                indexes.push((settings, Index { coll, transport }));
                indexes.len() - 1
            }
        };
        let mut params = indexes[pos].1.coll.search_params(cfg.k);
        over.apply(&mut params);
        params.validate()?;
        systems.push(System {
            name: name.to_string(),
            path: indexes[pos].1.transport.name().to_string(),
            index: Some(pos),
            peer: None,
            over,
            params: Some(params),
        });
        Ok(())
    };
    add("drift", cfg.engine.clone(), SearchOverrides::default())?;
    for (name, settings, over) in &cfg.variants {
        add(name, settings.clone(), over.clone())?;
    }
    for b in &cfg.baselines {
        match b {
            BaselineKind::StaticIvf => {
                let mut s = cfg.engine.clone();
                s.maintenance.policy = PolicyKind::Off;
                add(b.name(), s, SearchOverrides::default())?;
            }
            BaselineKind::V1 => {
                let mut s = cfg.engine.clone();
                s.maintenance.policy = PolicyKind::V1;
                s.search.scoring = Scoring::Linear;
                let over = SearchOverrides {
                    scoring: Some(Scoring::Linear),
                    ..Default::default()
                };
                add(b.name(), s, over)?;
            }
            // Brute force is added below; the peers are started by the runner.
            BaselineKind::BruteForce
            | BaselineKind::Hnswlib
            | BaselineKind::FaissIvfSq8
            | BaselineKind::FaissIvfFlat => {}
        }
    }
    if cfg.baselines.contains(&BaselineKind::BruteForce) {
        systems.push(System {
            name: BaselineKind::BruteForce.name().into(),
            path: "in-process".into(),
            index: None,
            peer: None,
            over: SearchOverrides::default(),
            params: None,
        });
    }
    Ok((indexes.into_iter().map(|(_, i)| i).collect(), systems))
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
