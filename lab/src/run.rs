//! The lab runner: replays a scenario or a runbook against every system in one process and
//! records, per step and system, what was measured.
//!
//! ```text
//! Driver (scenario | runbook) ─▶ Action ─▶ live set (ground truth by exact search)
//!                                      └─▶ each index: Transport (direct | kafka+sql) ─▶ engine
//!                                      └─▶ each system: search ─▶ recall@k, latency ─▶ raw.jsonl
//! ```
//!
//! Systems that differ only in search options share one index, so writes and maintenance run
//! once per index. Raw records go to `raw.jsonl` as each step ends; `report` renders the rest.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use drift_engine::distance::Distance;
use drift_engine::{
    Collection, CollectionConfig, CollectionStats, Database, IndexSettings, Metric, PolicyKind,
    Record, Scoring, SearchParams, Write,
};
use hdrhistogram::Histogram;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::datasets::{Mixture, MixtureSpec};
use crate::error::{LabError, Result};
use crate::runbook::{Operation, Runbook};
use crate::scenario::{BaselineKind, DataSpec, DeleteSpec, Scenario, Step};
use crate::truth::{exact_knn_prepared, exact_top, prepare, recall_with_ties};
use crate::vecfile::read_all;
use drift_engine::SearchOverrides;

/// How writes reach an index and searches are asked of it.
pub trait Transport {
    /// Name in reports (`direct`, `kafka+sql`).
    fn name(&self) -> &'static str;
    /// Sends upserts and deletes, in order.
    fn write(&mut self, coll: &Arc<Collection>, writes: Vec<Write>) -> Result<()>;
    /// Returns once every write sent so far is applied to the collection.
    fn sync(&mut self, coll: &Arc<Collection>) -> Result<()>;
    /// Top-k ids of one query with `params` (derived from `over` on the collection defaults).
    fn search(
        &mut self,
        coll: &Arc<Collection>,
        query: &[f32],
        params: &SearchParams,
        over: &SearchOverrides,
    ) -> Result<Vec<u64>>;
    /// Stops whatever the transport runs (consumers, producers) at the end of a run.
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Makes the transport of the index stored in collection `name` of the run's database.
pub type TransportFactory<'a> = &'a dyn Fn(&Arc<Database>, &str) -> Result<Box<dyn Transport>>;

/// Calls the engine API in process.
pub struct Direct;

impl Transport for Direct {
    fn name(&self) -> &'static str {
        "direct"
    }
    fn write(&mut self, coll: &Arc<Collection>, writes: Vec<Write>) -> Result<()> {
        coll.write(writes, &drift_engine::SourceMark::default())?;
        Ok(())
    }
    fn sync(&mut self, _coll: &Arc<Collection>) -> Result<()> {
        Ok(())
    }
    fn search(
        &mut self,
        coll: &Arc<Collection>,
        query: &[f32],
        params: &SearchParams,
        _over: &SearchOverrides,
    ) -> Result<Vec<u64>> {
        Ok(coll.search(query, params)?.iter().map(|h| h.id).collect())
    }
}

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
    /// Rows inserted (upserted) so far.
    #[serde(default)]
    pub inserted: u64,
    /// The engine's live recall monitor: mean recall@k of its exact re-runs so far in its
    /// current window (index systems).
    #[serde(default)]
    pub monitored_recall: Option<f64>,
}

/// What one step does, with the data it needs.
#[derive(Debug, Clone)]
pub enum Action {
    /// Upserts and deletes, in order.
    Write {
        /// Operation name.
        op: &'static str,
        /// Description.
        detail: String,
        /// The writes.
        writes: Vec<Write>,
    },
    /// Time moves on (no system work).
    Drift(f32),
    /// Maintenance passes.
    Maintain(usize),
    /// Queries, row-major.
    Search(Vec<f32>),
}

/// Produces the actions of a run one at a time.
pub trait Driver {
    /// Name of the run (scenario or runbook data set).
    fn name(&self) -> &str;
    /// Dimension.
    fn dim(&self) -> usize;
    /// Steps in all.
    fn len(&self) -> usize;
    /// True when there are no steps.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The action of step `i` given the live set.
    fn action(&mut self, i: usize, live: &Live) -> Result<Action>;
    /// Scenario time (0 for runbooks).
    fn time(&self) -> f32 {
        0.0
    }
}

/// The live set: what exact search runs over.
#[derive(Debug, Default)]
pub struct Live {
    rows: HashMap<u64, (u64, Vec<f32>)>,
    order: BTreeMap<u64, u64>,
    next: u64,
}

impl Live {
    /// Live vectors.
    pub fn len(&self) -> usize {
        self.rows.len()
    }
    /// True when nothing is live.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
    /// Live ids, oldest write first.
    pub fn ids_by_age(&self) -> Vec<u64> {
        self.order.values().copied().collect()
    }
    /// Whether `id` is live.
    pub fn contains(&self, id: u64) -> bool {
        self.rows.contains_key(&id)
    }
    fn apply(&mut self, writes: &[Write]) {
        for w in writes {
            match w {
                Write::Upsert(r) => {
                    if let Some((o, _)) = self.rows.remove(&r.id) {
                        self.order.remove(&o);
                    }
                    self.order.insert(self.next, r.id);
                    self.rows.insert(r.id, (self.next, r.vector.clone()));
                    self.next += 1;
                }
                Write::Delete(id) => {
                    if let Some((o, _)) = self.rows.remove(id) {
                        self.order.remove(&o);
                    }
                }
            }
        }
    }
    fn flat(&self, dim: usize) -> (Vec<u64>, Vec<f32>) {
        let mut ids = Vec::with_capacity(self.rows.len());
        let mut data = Vec::with_capacity(self.rows.len() * dim);
        for id in self.order.values() {
            ids.push(*id);
            data.extend_from_slice(&self.rows[id].1);
        }
        (ids, data)
    }
}

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
            variants,
            out: out.to_path_buf(),
        })
    }
}

/// An index: one collection, the transport that feeds it, and whether it heals.
struct Index {
    coll: Arc<Collection>,
    transport: Box<dyn Transport>,
}

/// A system: a name, what it searches, and with which options.
struct System {
    name: String,
    /// Transport name of its index (`in-process` for brute force).
    path: String,
    /// Index position, or `None` for brute force.
    index: Option<usize>,
    over: SearchOverrides,
    params: Option<SearchParams>,
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
    let (mut indexes, systems) = build(&db, dim, cfg, transport)?;
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
            inserted,
            monitored_recall: None,
        };
        match action {
            Action::Write { writes, .. } => {
                let mut secs = vec![0.0; indexes.len()];
                for (x, idx) in indexes.iter_mut().enumerate() {
                    let t = Instant::now();
                    for chunk in writes.chunks(cfg.batch.max(1)) {
                        idx.transport.write(&idx.coll, chunk.to_vec())?;
                    }
                    idx.transport.sync(&idx.coll)?;
                    if cfg.flush_each_step {
                        idx.coll.flush()?;
                    }
                    heal(&idx.coll, cfg.heal_passes)?;
                    secs[x] = t.elapsed().as_secs_f64();
                }
                live.apply(&writes);
                for s in &systems {
                    let secs = s.index.map_or(0.0, |x| secs[x]);
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
                    heal(&idx.coll, passes)?;
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
                    let before = s.index.map(|x| indexes[x].coll.stats());
                    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
                        .map_err(|e| LabError::Invalid(e.to_string()))?;
                    let mut recall = 0.0;
                    let nq = queries.len() / dim;
                    for qi in 0..nq {
                        let q = &queries[qi * dim..(qi + 1) * dim];
                        let qv = &prepared_q[qi * dim..(qi + 1) * dim];
                        let qt = Instant::now();
                        let got = match s.index {
                            Some(x) => {
                                let idx = &mut indexes[x];
                                let params = s.params.as_ref().expect("index systems have params");
                                idx.transport.search(&idx.coll, q, params, &s.over)?
                            }
                            None => exact_top(&dist, qv, &prepared, &ids, dim, cfg.k)
                                .into_iter()
                                .map(|(id, _)| id)
                                .collect(),
                        };
                        hist.saturating_record(qt.elapsed().as_nanos().max(1) as u64);
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
                        let (buckets, codes) = scanned_per_search(&b, &indexes[x].coll.stats());
                        row.buckets_per_query = Some(buckets);
                        row.codes_per_query = Some(codes);
                    }
                    rows.push(row);
                }
            }
        }
        rows.sort_by_key(|r| systems.iter().position(|s| s.name == r.system));
        // One stats snapshot per index; every step has one row per system, in system order.
        let stats: Vec<CollectionStats> = indexes.iter().map(|x| x.coll.stats()).collect();
        for (row, s) in rows.iter_mut().zip(&systems) {
            if let Some(x) = s.index {
                fill_stats(row, &stats[x]);
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
        idx.coll.close();
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

fn heal(coll: &Collection, passes: usize) -> Result<()> {
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
    db: &Arc<Database>,
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
                let coll = db.create_collection(&coll_name, config)?;
                let transport = transport(db, &coll_name)?;
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
            BaselineKind::BruteForce => {}
        }
    }
    if cfg.baselines.contains(&BaselineKind::BruteForce) {
        systems.push(System {
            name: BaselineKind::BruteForce.name().into(),
            path: "in-process".into(),
            index: None,
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

/// Drives a scenario: generated or file data, steps unrolled.
pub struct ScenarioDriver {
    name: String,
    steps: Vec<Step>,
    data: Data,
    query_rng: rand::rngs::StdRng,
    rng: rand::rngs::StdRng,
    time: f32,
    next_id: u64,
}

enum Data {
    Mixture(Mixture),
    Files {
        base: Vec<f32>,
        queries: Vec<f32>,
        dim: usize,
        next_row: usize,
        next_query: usize,
    },
}

impl ScenarioDriver {
    /// Prepares the data of `s` (reads its files).
    pub fn new(s: &Scenario) -> Result<ScenarioDriver> {
        let data = match &s.data {
            DataSpec::Clusters(c) => Data::Mixture(Mixture::new(&MixtureSpec {
                dim: c.dim.0,
                clusters: c.count.0,
                centre_spread: c.centre_spread.0 as f32,
                point_spread: c.point_spread.0 as f32,
                speed: c.speed.0 as f32,
                skew: c.skew.0 as f32,
                births: c.births.clone(),
                deaths: c.deaths.clone(),
                seed: s.seed,
            })),
            DataSpec::Files(f) => {
                let (base, dim) = read_all(&f.base)?;
                let (queries, qdim) = read_all(&f.queries)?;
                if dim != qdim {
                    return Err(LabError::Invalid(format!(
                        "{} has dimension {dim} but {} has {qdim}",
                        f.base.display(),
                        f.queries.display()
                    )));
                }
                Data::Files {
                    base,
                    queries,
                    dim,
                    next_row: 0,
                    next_query: 0,
                }
            }
        };
        Ok(ScenarioDriver {
            name: s.name.clone(),
            steps: s.flat_steps(),
            data,
            query_rng: rand::rngs::StdRng::seed_from_u64(s.seed ^ 0x51ab_0001),
            rng: rand::rngs::StdRng::seed_from_u64(s.seed ^ 0x51ab_0002),
            time: 0.0,
            next_id: 0,
        })
    }

    fn draw(&mut self, n: usize, queries: bool) -> Result<Vec<f32>> {
        let t = self.time;
        match &mut self.data {
            Data::Mixture(m) => {
                let rng = if queries {
                    &mut self.query_rng
                } else {
                    &mut self.rng
                };
                m.sample(t, n, rng)
                    .ok_or_else(|| LabError::Invalid(format!("no cluster is alive at time {t}")))
            }
            Data::Files {
                base,
                queries: qs,
                dim,
                next_row,
                next_query,
            } => {
                let dim = *dim;
                if queries {
                    let rows = qs.len() / dim;
                    let mut out = Vec::with_capacity(n * dim);
                    for _ in 0..n {
                        let r = *next_query % rows;
                        out.extend_from_slice(&qs[r * dim..(r + 1) * dim]);
                        *next_query += 1;
                    }
                    Ok(out)
                } else {
                    let rows = base.len() / dim;
                    if *next_row + n > rows {
                        return Err(LabError::Invalid(format!(
                            "the base file has {rows} rows; the scenario asks for row {}",
                            *next_row + n
                        )));
                    }
                    let out = base[*next_row * dim..(*next_row + n) * dim].to_vec();
                    *next_row += n;
                    Ok(out)
                }
            }
        }
    }
}

impl Driver for ScenarioDriver {
    fn name(&self) -> &str {
        &self.name
    }
    fn dim(&self) -> usize {
        match &self.data {
            Data::Mixture(m) => m.dim(),
            Data::Files { dim, .. } => *dim,
        }
    }
    fn len(&self) -> usize {
        self.steps.len()
    }
    fn time(&self) -> f32 {
        self.time
    }
    fn action(&mut self, i: usize, live: &Live) -> Result<Action> {
        let dim = self.dim();
        Ok(match self.steps[i].clone() {
            Step::Insert(n) => {
                let data = self.draw(n.0, false)?;
                let first = self.next_id;
                let writes = data
                    .chunks_exact(dim)
                    .map(|v| {
                        let w = Write::Upsert(Record::new(self.next_id, v.to_vec()));
                        self.next_id += 1;
                        w
                    })
                    .collect();
                Action::Write {
                    op: "insert",
                    detail: format!("{} vectors, ids {first}..{}", n.0, self.next_id),
                    writes,
                }
            }
            Step::Delete(spec) => {
                let (ids, detail): (Vec<u64>, String) = match spec {
                    DeleteSpec::Fraction(f) => {
                        let mut all = live.ids_by_age();
                        all.shuffle(&mut self.rng);
                        let n = (all.len() as f64 * f.0).round() as usize;
                        all.truncate(n);
                        (all, format!("random {:.0}%", f.0 * 100.0))
                    }
                    DeleteSpec::Oldest(f) => {
                        let mut all = live.ids_by_age();
                        let n = (all.len() as f64 * f.0).round() as usize;
                        all.truncate(n);
                        (all, format!("oldest {:.0}%", f.0 * 100.0))
                    }
                    DeleteSpec::Range([a, b]) => (
                        (a..b).filter(|id| live.contains(*id)).collect(),
                        format!("ids {a}..{b}"),
                    ),
                };
                let detail = format!("{detail}: {} vectors", ids.len());
                Action::Write {
                    op: "delete",
                    detail,
                    writes: ids.into_iter().map(Write::Delete).collect(),
                }
            }
            Step::Drift(t) => {
                self.time += t.0 as f32;
                Action::Drift(t.0 as f32)
            }
            Step::Maintain(p) => Action::Maintain(p.0),
            Step::Search(n) => Action::Search(self.draw(n.0, true)?),
            Step::Repeat(_) => unreachable!("repeats are unrolled"),
        })
    }
}

/// Drives a Big-ANN runbook over a base and a query file.
pub struct RunbookDriver {
    book: Runbook,
    base: Vec<f32>,
    queries: Vec<f32>,
    dim: usize,
}

impl RunbookDriver {
    /// Reads the files and checks that the base file covers every row the runbook reads.
    pub fn new(book: Runbook, base: &Path, queries: &Path) -> Result<RunbookDriver> {
        let (b, dim) = read_all(base)?;
        let (q, qdim) = read_all(queries)?;
        if dim != qdim {
            return Err(LabError::Invalid(format!(
                "{} has dimension {dim} but {} has {qdim}",
                base.display(),
                queries.display()
            )));
        }
        let rows = (b.len() / dim) as u64;
        if book.rows_needed() > rows {
            return Err(LabError::Invalid(format!(
                "the runbook reads base rows up to {} but {} has {rows}",
                book.rows_needed(),
                base.display()
            )));
        }
        Ok(RunbookDriver {
            book,
            base: b,
            queries: q,
            dim,
        })
    }

    fn row(&self, r: u64) -> Vec<f32> {
        let r = r as usize;
        self.base[r * self.dim..(r + 1) * self.dim].to_vec()
    }
}

impl Driver for RunbookDriver {
    fn name(&self) -> &str {
        &self.book.dataset
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn len(&self) -> usize {
        self.book.steps.len()
    }
    fn action(&mut self, i: usize, _live: &Live) -> Result<Action> {
        let op = self.book.steps[i];
        Ok(match op {
            Operation::Insert { start, end } => Action::Write {
                op: "insert",
                detail: format!("rows {start}..{end}"),
                writes: (start..end)
                    .map(|r| Write::Upsert(Record::new(r, self.row(r))))
                    .collect(),
            },
            Operation::Delete { start, end } => Action::Write {
                op: "delete",
                detail: format!("ids {start}..{end}"),
                writes: (start..end).map(Write::Delete).collect(),
            },
            Operation::Replace {
                tags_start,
                tags_end,
                ids_start,
                ..
            } => Action::Write {
                op: "replace",
                detail: format!("ids {tags_start}..{tags_end} from rows {ids_start}.."),
                writes: (tags_start..tags_end)
                    .map(|t| Write::Upsert(Record::new(t, self.row(ids_start + (t - tags_start)))))
                    .collect(),
            },
            Operation::Search => Action::Search(self.queries.clone()),
        })
    }
}
