//! Recall that holds on the collection's own data: fitting the recall calibration, exact
//! k-NN over a snapshot, and the live recall monitor.
//!
//! ```text
//! flush / maintenance ─▶ layer changed by a quarter? ─▶ calibrate from rows: sample stored
//!     rows as queries ─▶ exact top-k over every visible row ─▶ trace each in probe order ─▶
//!     alpha per target (ivf::Calibration) ─▶ searches by recall target use it at once
//! search (1% of them, within a CPU share) ─▶ worker: exact top-k over the same snapshot ─▶
//!     recall window with a 95% interval, and the query kept with its truth ─▶ interval below
//!     the target (or well above it)? refit from those real queries: the calibration now
//!     follows the workload's own distribution, deeper or shallower; stats say so
//! ```

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use rand::seq::index::sample;
use rand::SeedableRng;
use serde::Serialize;

use super::{Collection, Version};
use crate::columns::U64View;
use crate::distance::Distance;
use crate::error::Result;
use crate::ivf::Calibration;
use crate::topk::TopK;

/// File in the collection directory holding the last fitted calibration (a cache: it is
/// refitted whenever missing, unreadable or stale).
const CALIBRATION_FILE: &str = "calibration.json";
/// Neighbours per calibration query (searches for other k use the same stretch).
pub const CALIBRATION_K: usize = 10;
/// Fewest stored rows before calibrating makes sense.
const MIN_ROWS: usize = 500;
/// Fewest calibration queries, whatever the budget.
const MIN_QUERIES: usize = 32;
/// Monitored searches needed before the monitor judges the recall.
const MIN_JUDGED: usize = 32;
/// Real queries (with their exact answers) needed to refit from the workload.
const MIN_REAL: usize = 48;
/// Real queries needed to replace a provisional calibration (fitted on stored rows) whose
/// searches show no shortfall: more queries, a steadier fit. A suspected shortfall replaces
/// it at [`MIN_REAL`].
const CONFIRM_REAL: usize = crate::ivf::CONFIRM_QUERIES;
/// Most real queries kept for refits (the newest).
const MAX_REAL: usize = 512;
/// Sampling share while the calibration is provisional, while the window holds fewer than
/// [`MIN_JUDGED`] searches (after open and after each refit), or while its mean lies below the
/// target (a shortfall suspected, not yet confirmed), so that a fresh calibration is judged,
/// and a shortfall corrected, within a few hundred searches; the CPU cap still holds.
const EAGER_RATE: f64 = 0.5;
/// Normal quantile of the one-sided test that confirms a shortfall (95% one-sided): a refit
/// from real queries costs one fit, a missed shortfall costs recall.
const Z_SHORT: f64 = 1.645;
/// Normal quantile of the test that confirms a surplus (97.5% one-sided): shallower searches
/// are only worth a refit when the surplus is clear.
const Z_SURPLUS: f64 = 1.96;
/// CPU the monitor may spend ahead of its share (a burst), microseconds.
const BURST_MICROS: f64 = 200_000.0;

/// One search handed to the monitor, with the snapshot it saw: its pin keeps the id map's
/// versions for that sequence, and its version keeps the rows compaction may drop before
/// the sample runs (a row deleted after the search and compacted away would otherwise be
/// missing from the exact answer and count as a miss).
pub(crate) struct Sample {
    query: Vec<f32>,
    k: usize,
    returned: Vec<u64>,
    target: f32,
    pin: crate::idmap::Pin,
    version: Arc<Version>,
}

/// State of the live recall monitor.
#[derive(Debug)]
pub(crate) struct Monitor {
    inner: Mutex<MonitorState>,
    /// CPU spent on monitored searches and the refits they triggered, microseconds.
    pub(crate) micros: AtomicU64,
    /// Samples admitted and not yet run.
    pending: AtomicU64,
    /// What the last sample cost, microseconds: queued samples are charged this much ahead,
    /// so a queue cannot outgrow the CPU share before the first of them has run.
    cost: AtomicU64,
    started: Instant,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor {
            inner: Mutex::default(),
            micros: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            cost: AtomicU64::new(0),
            started: Instant::now(),
        }
    }
}

/// A monitored query and the ids within its true k-th distance.
#[derive(Debug)]
struct RealQuery {
    query: Vec<f32>,
    truth: HashSet<u64>,
}

/// Monitored searches of one target, newest last.
#[derive(Debug, Default)]
struct Window {
    /// Measured recall minus target.
    dev: VecDeque<f32>,
    /// Measured recall.
    recalls: VecDeque<f32>,
    /// Sum of `dev` (kept so that admitting a search needs no pass over the window).
    dev_sum: f64,
}

impl Window {
    /// Whether enough searches are in to judge, and their mean lies below the target.
    fn short(&self) -> bool {
        self.dev.len() >= MIN_JUDGED && self.dev_sum < 0.0
    }

    /// Whether the monitor should sample eagerly: too few searches to judge, or a mean
    /// below the target that is not yet confirmed.
    fn eager(&self) -> bool {
        self.dev.len() < MIN_JUDGED || self.short()
    }
}

#[derive(Debug, Default)]
struct MonitorState {
    /// One window per recall target (by its bits): searches at different targets are judged
    /// apart, so a surplus at one cannot hide a shortfall at another.
    windows: std::collections::BTreeMap<u32, Window>,
    /// The newest monitored queries with their exact answers.
    real: VecDeque<RealQuery>,
    target: f32,
    samples: u64,
    refits: u64,
}

/// Recall as measured and as aimed for, for `drift collection stats` and `/metrics`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, Default)]
pub struct RecallStats {
    /// The collection's default recall target (None: bucket-score confidence).
    pub target: Option<f32>,
    /// Whether a calibration is in use.
    pub calibrated: bool,
    /// The fitted calibration (targets, stretch, buckets and recall on its queries).
    pub calibration: Option<Calibration>,
    /// Calibration fits since open.
    pub calibrations: u64,
    /// Time spent fitting calibrations since open, milliseconds.
    pub calibration_ms: f64,
    /// Searches re-run exactly by the monitor since open.
    pub monitored: u64,
    /// Time spent re-running them and on the refits they triggered (which also count in
    /// `calibration_ms`), milliseconds: what the `recall.monitor_cpu` share limits.
    pub monitor_ms: f64,
    /// Monitored searches in the current window of the latest monitored target.
    pub window: usize,
    /// Mean recall@k over that window.
    pub measured: Option<f64>,
    /// 95% confidence interval of the mean (normal approximation).
    pub ci_low: Option<f64>,
    /// Upper end of the interval.
    pub ci_high: Option<f64>,
    /// Target of the latest monitored search.
    pub monitored_target: Option<f32>,
    /// Times the calibration was refitted from the monitored queries: measured recall left
    /// its band (deeper when it fell short, shallower when far above), or a provisional
    /// calibration from stored rows was replaced.
    pub refits_from_queries: u64,
    /// Monitored queries kept for such refits.
    pub real_queries: usize,
}

impl Monitor {
    /// Whether to sample this search: a `rate` share of searches (the eager share while
    /// `provisional`, see [`EAGER_RATE`]), while the monitor's CPU stays within `cpu` of one
    /// core since open (a sample is charged what the last one cost, `estimate_us` before any
    /// has run).
    fn admit(
        &self,
        rate: f64,
        cpu: f64,
        provisional: impl FnOnce() -> bool,
        estimate_us: impl FnOnce() -> u64,
    ) -> bool {
        if rate <= 0.0 || cpu <= 0.0 {
            return false;
        }
        // One random draw per search; the lock is taken only for the rare draws that fall
        // between the steady rate and the eager one.
        let draw = rand::random::<f64>();
        if draw >= rate.max(EAGER_RATE) {
            return false;
        }
        if draw >= rate && !provisional() {
            let s = self.inner.lock();
            let eager = s.windows.get(&s.target.to_bits()).is_none_or(Window::eager);
            if !eager {
                return false;
            }
        }
        let allowed = self.started.elapsed().as_micros() as f64 * cpu + BURST_MICROS;
        // Until one sample has run its cost is unknown: charge the estimate (at thousands of
        // searches a second the eager rate would otherwise queue hundreds for free).
        let cost = match self.cost.load(Ordering::Relaxed) {
            0 => estimate_us(),
            c => c,
        };
        let queued = self.pending.load(Ordering::Relaxed) * cost;
        if ((self.micros.load(Ordering::Relaxed) + queued) as f64) < allowed {
            self.pending.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// Books one sample's run: `sample` microseconds for its exact search, `total` with any
    /// refit it triggered (refits are rare; queued samples are charged the search alone).
    fn ran(&self, sample: u64, total: u64) {
        self.micros.fetch_add(total, Ordering::Relaxed);
        self.cost.store(sample.max(1), Ordering::Relaxed);
        // Saturating, so that a miscount can never wrap and shut admission for good.
        let _ = self
            .pending
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| p.checked_sub(1));
    }

    /// Records one measured recall and keeps the query. Returns true when the window holds
    /// enough searches, its mean lies confidently below the target ([`Z_SHORT`]) or above
    /// `target + 3 * margin` (at least 0.03, [`Z_SURPLUS`]), and enough real queries are kept
    /// to refit from them.
    fn record(
        &self,
        recall: f32,
        target: f32,
        window: usize,
        margin: f32,
        real: RealQuery,
    ) -> bool {
        let mut s = self.inner.lock();
        s.samples += 1;
        s.target = target;
        s.real.push_back(real);
        while s.real.len() > MAX_REAL {
            s.real.pop_front();
        }
        let enough_real = s.real.len() >= MIN_REAL;
        let w = s.windows.entry(target.to_bits()).or_default();
        w.dev.push_back(recall - target);
        w.dev_sum += (recall - target) as f64;
        w.recalls.push_back(recall);
        while w.dev.len() > window {
            if let Some(d) = w.dev.pop_front() {
                w.dev_sum -= d as f64;
            }
            w.recalls.pop_front();
        }
        if w.dev.len() < MIN_JUDGED.min(window) || !enough_real {
            return false;
        }
        let (mean, sd_mean) = mean_sd(&w.dev);
        let slack = (3.0 * margin).max(0.03) as f64;
        mean + Z_SHORT * sd_mean < 0.0 || mean - Z_SURPLUS * sd_mean > slack
    }

    /// Whether a provisional calibration should now give way to one fitted on the kept real
    /// queries: enough of them, fewer when searches at `target` fall short on average.
    fn replace_provisional(&self, target: f32) -> bool {
        let s = self.inner.lock();
        let short = s.windows.get(&target.to_bits()).is_some_and(Window::short);
        s.real.len() >= CONFIRM_REAL || (short && s.real.len() >= MIN_REAL)
    }

    /// Starts a new window (after a refit, so that it measures the new calibration only);
    /// `refit` counts a refit the monitor asked for.
    fn restart(&self, refit: bool) {
        let mut s = self.inner.lock();
        s.windows.clear();
        if refit {
            s.refits += 1;
        }
    }
}

/// Mean and standard error of the mean.
fn mean_sd(w: &VecDeque<f32>) -> (f64, f64) {
    let n = w.len().max(1) as f64;
    let mean = w.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = w.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, (var / n).sqrt())
}

/// Mean and half-width of the 95% interval.
fn mean_ci(w: &VecDeque<f32>) -> (f64, f64) {
    let (mean, sd) = mean_sd(w);
    (mean, 1.96 * sd)
}

impl Collection {
    /// The calibration searches by recall target use, if one is fitted.
    pub fn calibration(&self) -> Option<Arc<Calibration>> {
        self.calibration.load_full()
    }

    /// The stretch of the recall estimate for `target` (1 when uncalibrated; deeper while
    /// the calibration is provisional, see [`Calibration::search_alpha`]).
    pub(crate) fn recall_alpha(&self, target: f32) -> f32 {
        match self.calibration.load().as_ref() {
            Some(c) => c.search_alpha(target),
            None => 1.0,
        }
    }

    /// Fits the recall calibration on the current index now (see `ivf::Calibration`); `None`
    /// when L1 holds too few rows or the metric has no L2 geometry (inner product).
    pub fn calibrate(&self) -> Result<Option<Arc<Calibration>>> {
        self.check_open()?;
        let started = Instant::now();
        let (pin, v) = self.snapshot();
        let snap = pin.seq();
        let fitted = match self.fit_from_real(snap, &v)? {
            Some(c) => Some(c),
            None => self.fit_calibration(snap, &v)?,
        };
        self.monitor.restart(false);
        Ok(fitted.map(|c| self.install_calibration(c, started)))
    }

    /// A fit from the queries the monitor kept, with their exact answers recomputed on this
    /// snapshot; `None` when too few are kept.
    fn fit_from_real(&self, snap: u64, v: &Version) -> Result<Option<Calibration>> {
        let dim = self.config.dim;
        let queries: Vec<f32> = {
            let st = self.monitor.inner.lock();
            if st.real.len() < MIN_REAL {
                return Ok(None);
            }
            st.real
                .iter()
                .flat_map(|r| r.query.iter().copied())
                .collect()
        };
        let nq = queries.len() / dim;
        let k = CALIBRATION_K;
        let truth = self.exact_many(v, snap, &queries, &vec![u64::MAX; nq], k, false)?;
        let visible = |id: u64, seq: u64| self.idmap.visible(id, seq, snap);
        let params = self.calibration_params();
        let l1 = &v.l1;
        let traces: Vec<_> = parallel_map(nq, |i| {
            let q = &queries[i * dim..(i + 1) * dim];
            l1.trace(q, &params, &within_kth(&truth[i], k), u64::MAX, &visible)
        });
        // The kept answers are now current again.
        {
            let mut st = self.monitor.inner.lock();
            for (r, t) in st.real.iter_mut().zip(&truth) {
                r.truth = within_kth(t, k);
            }
        }
        let rows: usize = l1.buckets().iter().map(|b| b.live_rows()).sum();
        let mut c = Calibration::fit(
            &traces,
            self.config.settings.recall.margin,
            rows,
            l1.buckets().len(),
        );
        c.source = "queries".into();
        Ok(Some(c))
    }

    /// Refits the calibration from the queries the monitor kept (the real workload), their
    /// answers recomputed over L1 (the layer the traces cover).
    fn refit_from_queries(&self, reason: &'static str) {
        let started = Instant::now();
        let (pin, v) = self.snapshot();
        let snap = pin.seq();
        let c = match self.fit_from_real(snap, &v) {
            Ok(Some(c)) => self.install_calibration(c, started),
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(collection = %self.name, error = %e, "refit from monitored queries failed");
                return;
            }
        };
        self.monitor.restart(true);
        tracing::info!(
            collection = %self.name,
            queries = c.queries,
            reason,
            "recall calibration refitted from monitored queries"
        );
    }

    fn calibration_params(&self) -> crate::config::SearchParams {
        let mut params = self.search_params(CALIBRATION_K);
        params.nprobe = None;
        params
    }

    /// Puts a fitted calibration in use and saves it.
    fn install_calibration(&self, c: Calibration, started: Instant) -> Arc<Calibration> {
        self.counters
            .calibration_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        self.counters.calibrations.fetch_add(1, Ordering::Relaxed);
        match serde_json::to_vec_pretty(&c) {
            Ok(json) => {
                if let Err(e) =
                    crate::storage::atomic_write(&self.dir.join(CALIBRATION_FILE), &json)
                {
                    tracing::warn!(collection = %self.name, error = %e, "cannot save the recall calibration");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot encode the recall calibration"),
        }
        let c = Arc::new(c);
        self.calibration.store(Some(c.clone()));
        tracing::debug!(
            collection = %self.name,
            queries = c.queries,
            rows = c.rows,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "recall calibrated"
        );
        c
    }

    /// Takes up the calibration saved by an earlier process, if it still fits the layer.
    pub(crate) fn load_calibration(&self) {
        let path = self.dir.join(CALIBRATION_FILE);
        let Ok(raw) = std::fs::read(&path) else {
            return;
        };
        match serde_json::from_slice::<Calibration>(&raw) {
            Ok(c) => {
                let l1 = self.version.load().l1.clone();
                let rows: usize = l1.buckets().iter().map(|b| b.live_rows()).sum();
                if !c.stale(rows, l1.buckets().len()) {
                    self.calibration.store(Some(Arc::new(c)));
                }
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable recall calibration")
            }
        }
    }

    /// Calibrates if it is on and the layer changed enough since the last fit.
    pub(crate) fn calibrate_if_stale(&self) {
        if !self.config.settings.recall.calibrate
            || !Distance::for_metric(self.config.metric).is_euclidean()
        {
            return;
        }
        let l1 = self.version.load().l1.clone();
        let rows: usize = l1.buckets().iter().map(|b| b.live_rows()).sum();
        if rows < MIN_ROWS {
            return;
        }
        let stale = self
            .calibration
            .load()
            .as_ref()
            .is_none_or(|c| c.stale(rows, l1.buckets().len()));
        if stale {
            if let Err(e) = self.calibrate() {
                tracing::warn!(collection = %self.name, error = %e, "recall calibration failed");
            }
        }
    }

    fn fit_calibration(&self, snap: u64, v: &Version) -> Result<Option<Calibration>> {
        let l1 = &v.l1;
        let settings = &self.config.settings.recall;
        if !Distance::for_metric(self.config.metric).is_euclidean() || !l1.is_trained() {
            return Ok(None);
        }
        let visible = |id: u64, seq: u64| self.idmap.visible(id, seq, snap);
        // Every stored row, addressed; stale ones are skipped when read.
        let mut rows = Vec::new();
        for (b, bucket) in l1.buckets().iter().enumerate() {
            for (c, chunk) in bucket.chunks.iter().enumerate() {
                for r in 0..chunk.len() {
                    if visible(chunk.ids.get(r), chunk.seqs.get(r)) {
                        rows.push((b as u32, c as u32, r as u32));
                    }
                }
            }
        }
        if rows.len() < MIN_ROWS {
            return Ok(None);
        }
        let live = rows.len();
        // Queries come from the held-out rows (no centroid fit saw them), unless too few.
        let held: Vec<(u32, u32, u32)> = rows
            .iter()
            .copied()
            .filter(|p| crate::ivf::held_out(l1.chunk(*p).ids.get(p.2 as usize)))
            .collect();
        let pool = if held.len() >= MIN_QUERIES {
            held
        } else {
            rows
        };
        let dim = self.config.dim;
        let by_budget = settings.calibration_budget / (live as u64 * dim as u64).max(1);
        let nq = (by_budget as usize)
            .clamp(MIN_QUERIES, settings.calibration_queries.max(1))
            .min(settings.calibration_queries.max(1))
            .min(pool.len());
        let mut rng = rand::rngs::StdRng::seed_from_u64(live as u64 ^ snap);
        let picks: Vec<(u32, u32, u32)> = sample(&mut rng, pool.len(), nq)
            .into_iter()
            .map(|i| pool[i])
            .collect();
        let mut queries = Vec::with_capacity(nq * dim);
        let mut own = Vec::with_capacity(nq);
        for &p in &picks {
            let chunk = l1.chunk(p);
            queries.extend_from_slice(&chunk.vector(p.2 as usize)?);
            own.push(chunk.ids.get(p.2 as usize));
        }
        let k = CALIBRATION_K;
        let truth = self.exact_many(v, snap, &queries, &own, k, false)?;
        let params = self.calibration_params();
        let traces: Vec<_> = parallel_map(nq, |i| {
            let q = &queries[i * dim..(i + 1) * dim];
            l1.trace(q, &params, &within_kth(&truth[i], k), own[i], &visible)
        });
        Ok(Some(Calibration::fit(
            &traces,
            settings.margin,
            live,
            l1.buckets().len(),
        )))
    }

    /// Exact nearest rows (id, internal distance) of each query over the rows of `v` visible
    /// at `snap` (L1 only unless `with_l0`: a calibration traces L1 alone, the monitor judges
    /// whole searches), skipping each query's own id; keeps `k` plus room for ties.
    fn exact_many(
        &self,
        v: &Version,
        snap: u64,
        queries: &[f32],
        own: &[u64],
        k: usize,
        with_l0: bool,
    ) -> Result<Vec<Vec<(u64, f32)>>> {
        let dim = self.config.dim;
        let nq = queries.len() / dim;
        let keep = k + 16;
        let dist = Distance::for_metric(self.config.metric);
        let visible = |id: u64, seq: u64| self.idmap.visible(id, seq, snap);
        let mut tops: Vec<TopK<u64>> = (0..nq).map(|_| TopK::new(keep)).collect();
        // Many queries (calibration) use every core; one (the monitor) stays on its thread.
        let threads = if nq >= 8 { worker_threads() } else { 1 };
        let feed = |ids: U64View, seqs: U64View, vectors: &[f32], tops: &mut [TopK<u64>]| {
            let score = |first: usize, part: &mut [TopK<u64>]| {
                for (j, top) in part.iter_mut().enumerate() {
                    let qi = first + j;
                    let q = &queries[qi * dim..(qi + 1) * dim];
                    for (r, row) in vectors.chunks_exact(dim).enumerate() {
                        // Visibility (an id-map lookup) only for rows that would be kept.
                        let d = dist.eval(q, row);
                        if d < top.threshold()
                            && ids.get(r) != own[qi]
                            && visible(ids.get(r), seqs.get(r))
                        {
                            top.push(d, ids.get(r));
                        }
                    }
                }
            };
            if threads == 1 {
                return score(0, tops);
            }
            let per = nq.div_ceil(threads).max(1);
            std::thread::scope(|s| {
                for (t, part) in tops.chunks_mut(per).enumerate() {
                    s.spawn(move || score(t * per, part));
                }
            });
        };
        let l0: Vec<_> = if with_l0 {
            std::iter::once(&v.active).chain(v.frozen.iter()).collect()
        } else {
            Vec::new()
        };
        for m in l0 {
            let buf = m.buf.read();
            feed(
                (&buf.ids).into(),
                (&buf.seqs).into(),
                &buf.vectors,
                &mut tops,
            );
            drop(buf);
        }
        for bucket in v.l1.buckets() {
            for chunk in &bucket.chunks {
                // A calibration reads each row once (blocks not cached, one pass per chunk
                // over every query); the monitor comes back for every sample: it reads the
                // mapped copy (made on first use), or keeps blocks in the cache when mapping
                // is off.
                if nq > 1 {
                    feed(
                        chunk.ids.view(),
                        chunk.seqs.view(),
                        &chunk.vectors()?,
                        &mut tops,
                    );
                    continue;
                }
                chunk.cold.for_each_block(true, |first, vectors| {
                    let n = vectors.len() / dim;
                    let end = (first + n).min(chunk.ids.len());
                    feed(
                        chunk.ids.view().slice(first..end),
                        chunk.seqs.view().slice(first..end),
                        vectors,
                        &mut tops,
                    );
                })?;
            }
        }
        Ok(tops
            .into_iter()
            .map(|t| {
                t.into_sorted()
                    .into_iter()
                    .map(|s| (s.item, s.dist))
                    .collect()
            })
            .collect())
    }

    /// Hands a search to the monitor if it is sampled.
    pub(crate) fn maybe_monitor(
        &self,
        query: &[f32],
        k: usize,
        target: f32,
        (pin, version): (crate::idmap::Pin, &Arc<Version>),
        returned: &[crate::record::Hit],
    ) {
        let s = &self.config.settings.recall;
        // A provisional calibration waits for real queries: sample eagerly until it is
        // replaced (looked up only for the draws that fall in the eager band).
        let provisional = || {
            self.calibration
                .load()
                .as_ref()
                .is_some_and(|c| c.provisional())
        };
        // An exact re-run reads every live row: about a nanosecond per multiply-add.
        let estimate_us = || (self.idmap.live() as u64 * self.config.dim as u64) / 1000;
        if self
            .monitor
            .admit(s.monitor_rate, s.monitor_cpu, provisional, estimate_us)
        {
            self.worker
                .send(super::worker::Task::Monitor(Box::new(Sample {
                    query: query.to_vec(),
                    k,
                    returned: returned.iter().map(|h| h.id).collect(),
                    target,
                    pin,
                    version: version.clone(),
                })));
        }
    }

    /// Re-runs a sampled search exactly, records its recall@k (ties count), and refits the
    /// calibration from the kept queries when measured recall left its band.
    pub(crate) fn run_monitor(&self, s: Sample) {
        let started = Instant::now();
        let refit = match self.exact_many(&s.version, s.pin.seq(), &s.query, &[u64::MAX], s.k, true)
        {
            Ok(truth) => {
                let k = s.k.min(truth[0].len());
                let near = within_kth(&truth[0], k);
                let recall = if k == 0 {
                    1.0
                } else {
                    let mut seen = HashSet::new();
                    let hits = s
                        .returned
                        .iter()
                        .take(k)
                        .filter(|id| seen.insert(**id) && near.contains(id))
                        .count();
                    hits as f32 / k as f32
                };
                let set = &self.config.settings.recall;
                // Kept for refits at the calibration's k.
                let truth_k = within_kth(&truth[0], CALIBRATION_K.min(truth[0].len()));
                let real = RealQuery {
                    query: s.query,
                    truth: truth_k,
                };
                self.monitor
                    .record(recall, s.target, set.monitor_window, set.margin, real)
            }
            Err(e) => {
                tracing::warn!(collection = %self.name, error = %e, "recall monitor could not re-run a search");
                false
            }
        };
        let sample = started.elapsed().as_micros() as u64;
        // A calibration fitted on stored rows is replaced by one fitted on real queries as
        // soon as the monitor has kept enough of them.
        let provisional = self.calibration().is_some_and(|c| c.provisional())
            && self.monitor.replace_provisional(s.target);
        // The snapshot is released before a refit, which fits on the current layer.
        drop((s.pin, s.version));
        if (refit || provisional)
            && self.config.settings.recall.calibrate
            && self.version.load().l1.is_trained()
        {
            self.refit_from_queries(if refit {
                "measured recall left its band"
            } else {
                "the calibration from stored rows was provisional"
            });
        }
        self.monitor
            .ran(sample, started.elapsed().as_micros() as u64);
    }

    /// The recall part of [`Collection::stats`].
    pub(crate) fn recall_stats(&self) -> RecallStats {
        let cal = self.calibration();
        let st = self.monitor.inner.lock();
        // The window of the latest monitored target.
        let recalls = st.windows.get(&st.target.to_bits()).map(|w| &w.recalls);
        let (measured, ci) = match recalls {
            Some(r) if !r.is_empty() => {
                let (m, h) = mean_ci(r);
                (Some(m), Some(h))
            }
            _ => (None, None),
        };
        RecallStats {
            target: self.config.settings.search.recall_target,
            calibrated: cal.is_some(),
            calibration: cal.map(|c| (*c).clone()),
            calibrations: self.counters.calibrations.load(Ordering::Relaxed),
            calibration_ms: self.counters.calibration_micros.load(Ordering::Relaxed) as f64 / 1e3,
            monitored: st.samples,
            monitor_ms: self.monitor.micros.load(Ordering::Relaxed) as f64 / 1e3,
            window: recalls.map_or(0, |r| r.len()),
            measured,
            ci_low: measured.zip(ci).map(|(m, h)| (m - h).max(0.0)),
            ci_high: measured.zip(ci).map(|(m, h)| (m + h).min(1.0)),
            monitored_target: (st.samples > 0).then_some(st.target),
            refits_from_queries: st.refits,
            real_queries: st.real.len(),
        }
    }
}

/// The ids of `truth` (nearest first) within its `k`-th distance, ties included.
fn within_kth(truth: &[(u64, f32)], k: usize) -> HashSet<u64> {
    let Some(kth) = k.checked_sub(1).and_then(|i| truth.get(i)).map(|x| x.1) else {
        return truth.iter().map(|x| x.0).collect();
    };
    let limit = kth + kth.abs() * 1e-6 + 1e-12;
    truth.iter().filter(|x| x.1 <= limit).map(|x| x.0).collect()
}

fn worker_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// `f(0..n)` on every core, results in order.
fn parallel_map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let per = n.div_ceil(worker_threads()).max(1);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .step_by(per)
            .map(|start| s.spawn(move || (start..(start + per).min(n)).map(f).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("calibration thread"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CollectionConfig, Database, Metric, Record};
    use rand::Rng;

    #[test]
    fn a_sample_is_measured_against_the_snapshot_its_search_saw() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        let dim = 16;
        let mut cfg = CollectionConfig::new(dim, Metric::L2);
        cfg.settings.target_bucket_size = 64;
        cfg.settings.maintenance.background = false;
        cfg.settings.maintenance.compact_ratio = 0.01;
        // Samples are handed to the monitor by this test alone.
        cfg.settings.recall.monitor_rate = 0.0;
        cfg.settings.recall.calibrate = false;
        let c = db.create_collection("c", cfg).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let rows: Vec<Record> = (0..4000u64)
            .map(|i| Record::new(i, (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect()))
            .collect();
        c.upsert(rows).unwrap();
        c.flush().unwrap();
        let query: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let sample = |c: &Collection| {
            let (pin, version) = c.snapshot();
            let hits = c.search(&query, &c.search_params(10)).unwrap();
            let returned: Vec<u64> = hits.iter().map(|h| h.id).collect();
            let s = Sample {
                query: query.clone(),
                k: 10,
                returned: returned.clone(),
                target: 0.95,
                pin,
                version,
            };
            (s, returned)
        };
        let (first, _) = sample(&c);
        c.run_monitor(first);
        let before = c.stats().recall.measured.unwrap();
        // The same search again; then every row it returned is deleted and compacted away
        // before its sample runs.
        let (second, returned) = sample(&c);
        c.delete(&returned).unwrap();
        c.flush().unwrap();
        let report = c.maintain(100).unwrap();
        assert!(report.counts.compactions > 0, "{report:?}");
        assert!(returned.iter().all(|&id| c.get(id).unwrap().is_none()));
        c.run_monitor(second);
        let st = c.stats().recall;
        assert_eq!(st.monitored, 2);
        assert_eq!(st.measured, Some(before), "{st:?}");
    }
}
