//! L1: centroid-routed buckets of SQ8 codes.
//!
//! ```text
//! query ─▶ probe (P_geom × R, guardrail) ─▶ per bucket: LUT + ADC scan ─▶ top k·rerank ─▶ exact re-rank ─▶ top k
//! ```
//! An [`L1`] value is immutable: flushes and maintenance build a new one that shares every
//! untouched bucket (and every untouched chunk of a touched bucket) with the old one.

mod bucket;
mod calibrate;
mod probe;
mod recall;
mod reshape;

pub use bucket::{Bucket, BucketTally, Chunk};
pub use calibrate::{
    held_in_vectors, held_out, Calibration, CalibrationPoint, Trace, CONFIRM_QUERIES, HOLD_OUT,
    TARGET_GRID,
};
pub use probe::{select_buckets, ProbeOptions};
pub use recall::{CapTable, EstimateMemo, RecallPlan};
pub use reshape::{Placed, Reshape, REFIT_CLIPPED};

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{AdcKernel, Metric, SearchParams};
use crate::distance::Distance;
use crate::error::Result;
use crate::kernels;
use crate::quant::{sketch, QueryBuffers, SketchQuery, Sq8Query, Sq8Terms};
use crate::topk::{Scored, TopK};

/// Address of one row inside an L1 snapshot: (bucket position, chunk, row).
pub type RowRef = (u32, u32, u32);

/// The bucket layer: centroids plus their buckets.
#[derive(Debug, Clone)]
pub struct L1 {
    dim: usize,
    metric: Metric,
    buckets: Vec<Arc<Bucket>>,
    /// Each bucket's centroid (the bucket's own allocation, shared), in the same order.
    centroids: Vec<Arc<[f32]>>,
    /// Rows stored per bucket (stale ones included), so that routing does not visit every
    /// bucket's chunks.
    stored: Vec<u32>,
    by_id: HashMap<u32, usize>,
    next_id: u32,
}

/// Buffers reused across the bucket scans of one search, and what the scan covered.
#[derive(Default)]
struct Scratch {
    /// Two sets of prepared-query tables: the bucket being scanned and the one whose rows
    /// wait in `pending`.
    tables: [QueryBuffers; 2],
    rows: RowScratch,
    /// Rows of the bucket scanned before this one that wait for their SQ8 distance, and the
    /// rows the current bucket adds.
    pending: [Pending; 2],
    codes: usize,
    buckets: usize,
}

/// Rows of one bucket whose sketch estimate beat the pool, asked for from memory and waiting
/// to be scored until the next bucket's sketches are scanned: their scattered loads arrive
/// during that work instead of stalling the scan.
#[derive(Default)]
struct Pending {
    /// The bucket's position in the layer.
    bucket: usize,
    /// Which of [`Scratch::tables`] holds the bucket's prepared query, and its terms.
    slot: usize,
    terms: Option<Sq8Terms>,
    /// (chunk, row, sketch estimate).
    rows: Vec<(u32, u32, f32)>,
}

/// Per-chunk buffers of a scan, and how many code rows it scored.
#[derive(Default)]
struct RowScratch {
    dists: Vec<f32>,
    sketch: SketchQuery,
    order: Vec<u32>,
    refined: usize,
}

impl Scratch {
    /// Buffers for the scans of one query (its sketch rotation is computed once, on first use,
    /// however many scans follow).
    fn for_query(query: &[f32]) -> Scratch {
        let mut s = Scratch::default();
        s.rows.sketch.reset(query);
        s
    }
}

/// Bytes of a chunk's first code rows a scan asks for ahead of time.
const PREFETCH_BYTES: usize = 2048;

/// Stages of [`L1::prefetch_stage`]: a bucket is reached through this many dependent loads.
const PREFETCH_STAGES: usize = 4;

/// When a scan stops: a budget of codes, and optionally a recall target.
struct Stop<'a> {
    max_codes: usize,
    recall: Option<RecallStop<'a>>,
}

/// Stop once the estimated recall@k reaches `target`.
#[derive(Clone, Copy)]
struct RecallStop<'a> {
    plan: &'a RecallPlan,
    /// The layer the plan was made on (it settles the plan at the first k-th distance).
    layer: &'a L1,
    target: f32,
    k: usize,
    /// Stretch of the k-th distance.
    alpha: f32,
}

impl Stop<'_> {
    /// True when the scan ends before its next bucket: the code budget is spent, or, after one
    /// bucket at least, the estimated recall at the k-th distance so far reaches the target.
    fn reached(&self, s: &Scratch, pool: &mut Pool, memo: &mut EstimateMemo) -> bool {
        if s.codes >= self.max_codes {
            return true;
        }
        match self.recall {
            Some(r) if s.buckets >= 1 => {
                let rho = r.alpha * pool.kth(r.k).max(0.0).sqrt();
                if rho.is_finite() {
                    r.plan.settle(r.layer, rho);
                }
                r.plan.estimate_memo(memo, s.buckets, rho) >= r.target
            }
            _ => false,
        }
    }
}

/// What one scan reads, and how.
struct ScanJob<'a> {
    query: &'a [f32],
    kernel: AdcKernel,
    /// Rule rows out by their sketches' lower bounds before scoring their codes.
    prefilter: bool,
    /// Bucket positions, in scan order.
    probe: &'a [usize],
    /// Candidates kept.
    pool: usize,
    visible: &'a dyn Fn(u64, u64) -> bool,
    /// Check visibility of every row as it is read (otherwise only the rows that the stale
    /// filter of a bucket holding stale rows flags; the caller filters the rest).
    eager: bool,
    stop: Stop<'a>,
}

/// The best candidates so far: a flat buffer that rows beating `limit` are appended to,
/// cut back to the best `size` whenever it holds twice that many (one selection per `size`
/// rows admitted, where a heap pays a sift per row).
struct Pool {
    buf: Vec<Scored<RowRef>>,
    /// Candidates kept.
    size: usize,
    /// The distance a row must beat: infinity until `size` rows are in, then the worst of
    /// the best `size` as of the last cut (it only tightens).
    limit: f32,
    /// Scratch for [`Pool::kth`].
    dists: Vec<f32>,
}

impl Pool {
    fn new(size: usize) -> Pool {
        Pool {
            buf: Vec::with_capacity(2 * size),
            size,
            limit: if size == 0 { f32::NEG_INFINITY } else { f32::INFINITY },
            dists: Vec::new(),
        }
    }

    /// The distance a row must beat to enter.
    #[inline]
    fn limit(&self) -> f32 {
        self.limit
    }

    /// Rows still missing before the pool is full.
    fn room(&self) -> usize {
        self.size.saturating_sub(self.buf.len())
    }

    /// Offers a row (a caller checks [`Pool::limit`] first; a row that does not beat it is
    /// ignored here as well).
    #[inline]
    fn push(&mut self, d: f32, item: RowRef) {
        if d >= self.limit {
            return;
        }
        self.buf.push(Scored { dist: d, item });
        if self.buf.len() == self.size && self.limit == f32::INFINITY {
            self.limit = self.buf.iter().map(|s| s.dist).fold(f32::MIN, f32::max);
        } else if self.buf.len() >= 2 * self.size {
            self.cut();
        }
    }

    /// Keeps the best `size` rows and tightens the limit to the worst of them.
    fn cut(&mut self) {
        if self.buf.len() > self.size {
            // The selection leaves the largest of the kept rows at `size - 1`.
            self.buf.select_nth_unstable(self.size - 1);
            self.buf.truncate(self.size);
            self.limit = self.buf[self.size - 1].dist;
        }
    }

    /// The k-th best distance offered so far (infinity before k rows): the pool keeps the
    /// best `size >= k` of them, so it is the pool's k-th. Asked once per bucket by the
    /// recall estimate.
    fn kth(&mut self, k: usize) -> f32 {
        if k == 0 || self.buf.len() < k {
            return f32::INFINITY;
        }
        self.dists.clear();
        self.dists.extend(self.buf.iter().map(|s| s.dist));
        *self.dists.select_nth_unstable_by(k - 1, f32::total_cmp).1
    }

    /// The best `size` rows, nearest first.
    fn into_sorted(mut self) -> Vec<Scored<RowRef>> {
        self.cut();
        self.buf.sort_unstable();
        self.buf
    }
}

/// What one L1 search looked at.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScanCounts {
    /// Buckets probed.
    pub buckets: usize,
    /// Codes scanned.
    pub codes: usize,
    /// Of those, codes whose SQ8 distance was computed (the rest were ruled out by their
    /// binary sketch).
    pub refined: usize,
}

impl L1 {
    /// An untrained layer with no buckets.
    pub fn empty(dim: usize, metric: Metric) -> L1 {
        L1::from_buckets(dim, metric, Vec::new(), 0)
    }

    /// A layer made of `buckets`; `next_id` is the id the next new bucket gets.
    pub fn from_buckets(dim: usize, metric: Metric, buckets: Vec<Arc<Bucket>>, next_id: u32) -> L1 {
        let centroids = buckets.iter().map(|b| b.centroid.clone()).collect();
        let mut by_id = HashMap::with_capacity(buckets.len());
        let mut stored = Vec::with_capacity(buckets.len());
        for (i, b) in buckets.iter().enumerate() {
            by_id.insert(b.id, i);
            stored.push(u32::try_from(b.rows()).unwrap_or(u32::MAX));
        }
        let next_id = buckets
            .iter()
            .map(|b| b.id + 1)
            .max()
            .unwrap_or(0)
            .max(next_id);
        L1 {
            dim,
            metric,
            buckets,
            centroids,
            stored,
            by_id,
            next_id,
        }
    }

    /// Whether centroids exist yet.
    pub fn is_trained(&self) -> bool {
        !self.buckets.is_empty()
    }

    /// All buckets, in routing order.
    pub fn buckets(&self) -> &[Arc<Bucket>] {
        &self.buckets
    }

    /// Live rows of the bucket at position `pos`: its stored rows less its stale ones.
    pub fn live_rows(&self, pos: usize) -> usize {
        (self.stored[pos] as usize).saturating_sub(self.buckets[pos].tally.dead())
    }

    /// Centroid of the bucket at position `i` (in [`L1::buckets`]).
    pub fn centroid(&self, i: usize) -> &[f32] {
        &self.buckets[i].centroid
    }

    /// The bucket with id `id`.
    pub fn bucket(&self, id: u32) -> Option<&Arc<Bucket>> {
        self.by_id.get(&id).map(|&i| &self.buckets[i])
    }

    /// The id the next created bucket will get.
    pub fn next_id(&self) -> u32 {
        self.next_id
    }

    /// Position (in [`L1::buckets`]) of the bucket whose centroid is nearest to `v`.
    pub fn route(&self, v: &[f32]) -> usize {
        let dist = self.distance();
        let mut best = (0, f32::INFINITY);
        for (i, b) in self.buckets.iter().enumerate() {
            let d = dist.eval(v, &b.centroid);
            if d < best.1 {
                best = (i, d);
            }
        }
        best.0
    }

    /// The internal distance rows are ranked and buckets routed by.
    pub fn distance(&self) -> Distance {
        Distance::for_metric(self.metric)
    }

    /// The collection's metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Approximate search: probes buckets, scans their codes, and (if `params.rerank > 0`)
    /// re-scores the best `k * rerank` candidates with exact vectors (an error reading them
    /// from storage is returned). Only rows for which
    /// `visible(id, seq)` holds are returned. `tick` ages bucket temperatures.
    ///
    /// Visibility is checked lazily in buckets that hold no stale rows: their candidates are
    /// filtered once at the end, and the scan is repeated with eager checks in the rare case
    /// that filtering left the candidate pool short.
    pub fn search(
        &self,
        query: &[f32],
        params: &SearchParams,
        opts: &ProbeOptions,
        visible: &dyn Fn(u64, u64) -> bool,
        tick: u64,
    ) -> Result<(Vec<Scored<RowRef>>, ScanCounts)> {
        let mut counts = ScanCounts::default();
        if self.buckets.is_empty() {
            return Ok((Vec::new(), counts));
        }
        let pool = if params.rerank > 0 {
            params.k.saturating_mul(params.rerank)
        } else {
            params.k
        };
        let adaptive = params.nprobe.is_none()
            && params.recall_target.is_some()
            && self.distance().is_euclidean();
        let plan = adaptive.then(|| RecallPlan::pending(self, query, params.max_probes));
        let selected;
        let probe: &[usize] = match &plan {
            Some(p) => &p.order,
            None => {
                selected = match params.recall_target {
                    // Inner product has no bisector geometry: cover the same share of bucket scores.
                    Some(r) => {
                        let mut p = params.clone();
                        p.target_confidence = r;
                        select_buckets(self, query, &p, opts)
                    }
                    None => select_buckets(self, query, params, opts),
                };
                &selected
            }
        };
        let stop = Stop {
            max_codes: params.max_codes.unwrap_or(usize::MAX),
            recall: plan
                .as_ref()
                .zip(params.recall_target)
                .map(|(plan, target)| RecallStop {
                    plan,
                    layer: self,
                    target,
                    k: params.k,
                    alpha: opts.alpha,
                }),
        };
        let job = ScanJob {
            query,
            kernel: params.adc,
            prefilter: params.prefilter,
            probe,
            pool,
            visible,
            eager: false,
            stop,
        };
        let mut scratch = Scratch::for_query(query);
        let cands = self.scan(&job, &mut scratch);
        let scanned = scratch.buckets;
        for &bpos in &probe[..scanned] {
            self.buckets[bpos].tally.touch(tick);
        }
        counts.buckets = scanned;
        counts.codes = scratch.codes;
        counts.refined = scratch.rows.refined;
        let held = cands.len();
        let is_visible = |item: RowRef| {
            let chunk = self.chunk(item);
            let r = item.2 as usize;
            visible(chunk.ids.get(r), chunk.seqs.get(r))
        };
        // Lazily checked candidates that turn out hidden leave the pool short: scan the same
        // buckets again, checking every row as it is read.
        let rescan = |scratch: &mut Scratch| {
            let again = ScanJob {
                probe: &probe[..scanned],
                eager: true,
                stop: Stop {
                    max_codes: job.stop.max_codes,
                    recall: None,
                },
                ..job
            };
            self.scan(&again, scratch)
        };
        if params.rerank == 0 {
            let mut cands: Vec<_> = cands.into_iter().filter(|c| is_visible(c.item)).collect();
            if cands.len() < held && held == pool {
                cands = rescan(&mut scratch);
            }
            return Ok((cands, counts));
        }
        // Re-rank the whole pool, then check visibility in exact order only until k rows
        // pass (the id map lookups are cache misses; most candidates never need one).
        let ranked = self.rerank(query, &cands)?;
        let mut hits = Vec::with_capacity(params.k);
        let mut hidden = false;
        for c in ranked {
            if hits.len() == params.k {
                break;
            }
            if is_visible(c.item) {
                hits.push(c);
            } else {
                hidden = true;
            }
        }
        if hidden && hits.len() < params.k && held == pool {
            let cands = rescan(&mut scratch);
            hits = self.rerank(query, &cands)?;
            hits.truncate(params.k);
        }
        Ok((hits, counts))
    }

    /// Exact distances of `cands`, nearest first.
    fn rerank(&self, query: &[f32], cands: &[Scored<RowRef>]) -> Result<Vec<Scored<RowRef>>> {
        let dist = self.distance();
        // The candidates' vectors are scattered over the mapped files: ask for all of them
        // first so that their cache and TLB misses overlap, then compute.
        for cand in cands {
            let (b, c, r) = cand.item;
            self.buckets[b as usize].chunks[c as usize]
                .with_vector(r as usize, |v| kernels::prefetch(bytemuck::cast_slice(v)))?;
        }
        let mut exact: TopK<RowRef> = TopK::new(cands.len());
        for cand in cands {
            let (b, c, r) = cand.item;
            let d = self.buckets[b as usize].chunks[c as usize]
                .with_vector(r as usize, |v| dist.eval(query, v))?;
            exact.push(d, cand.item);
        }
        Ok(exact.into_sorted())
    }

    /// Scans the codes of the job's buckets in order and keeps the `pool` nearest by
    /// approximate distance, until its stop says enough. Each bucket's quantizer prepares
    /// the query once; its chunks are scored by that prepared query. The rows of a sketched
    /// bucket that its sketches let through are scored after the next bucket's sketch scan
    /// (see [`Pending`]).
    fn scan(&self, job: &ScanJob, s: &mut Scratch) -> Vec<Scored<RowRef>> {
        let mut pool = Pool::new(job.pool);
        s.codes = 0;
        s.buckets = 0;
        s.rows.refined = 0;
        for p in &mut s.pending {
            p.rows.clear();
            p.terms = None;
        }
        let mut memo = EstimateMemo::default();
        for (i, &bpos) in job.probe.iter().enumerate() {
            if job.stop.reached(s, &mut pool, &mut memo) {
                break;
            }
            s.buckets += 1;
            let bucket = &self.buckets[bpos];
            if i == 0 {
                for stage in 0..PREFETCH_STAGES {
                    for b in job.probe.iter().take(PREFETCH_STAGES - stage) {
                        self.prefetch_stage(*b, stage);
                    }
                }
            }
            for stage in 0..PREFETCH_STAGES {
                if let Some(&b) = job.probe.get(i + PREFETCH_STAGES - stage) {
                    self.prefetch_stage(b, stage);
                }
            }
            if bucket.chunks.is_empty() {
                continue;
            }
            // The rows still pending from the bucket before were prepared into the other slot.
            let slot = 1 - s.pending[0].slot;
            let [first, second] = &mut s.tables;
            let (tables, waiting) = if slot == 0 {
                (first, &*second)
            } else {
                (second, &*first)
            };
            let sketched = job.prefilter && bucket.chunks.iter().any(|c| c.sketch.is_some());
            let q = bucket
                .quant
                .prepare_query(job.query, self.distance(), job.kernel, sketched, tables);
            let offer = Offer::new(job, bucket, bpos);
            let [before, now] = &mut s.pending;
            now.bucket = bpos;
            now.slot = slot;
            now.terms = Some(q.terms());
            for (ci, chunk) in bucket.chunks.iter().enumerate() {
                let rows = chunk.len().min(job.stop.max_codes.saturating_sub(s.codes));
                if rows == 0 {
                    break;
                }
                s.codes += rows;
                let w = &mut s.rows;
                w.dists.clear();
                w.dists.resize(rows, 0f32);
                match (&chunk.sketch, q.centre()) {
                    (Some(sketch), Some(centre)) => {
                        sketch.lower_bounds(&mut w.sketch, centre, sketch::SCAN_EPS, &mut w.dists);
                        refine_below(&offer, ci, &q, &mut pool, w, now);
                    }
                    _ => {
                        q.score_rows(chunk.codes.as_slice(), &chunk.norms, &mut w.dists);
                        w.refined += rows;
                        // One vector pass finds the rows that beat the pool as it stands (it
                        // only tightens), and only those are offered.
                        w.order.clear();
                        kernels::indices_below(&w.dists, pool.limit(), &mut w.order);
                        for &r in &w.order {
                            offer.row(&mut pool, ci, r as usize, w.dists[r as usize]);
                        }
                    }
                }
            }
            self.score_pending(job, before, waiting, &mut pool, &mut s.rows.refined);
            s.pending.swap(0, 1);
        }
        let [before, _] = &mut s.pending;
        let waiting = &s.tables[before.slot];
        self.score_pending(job, before, waiting, &mut pool, &mut s.rows.refined);
        pool.into_sorted()
    }

    /// Scores the rows `pending` holds (those whose estimate still beats the pool) by the
    /// query prepared into `tables`, offers them, and empties it.
    fn score_pending(
        &self,
        job: &ScanJob,
        pending: &mut Pending,
        tables: &QueryBuffers,
        pool: &mut Pool,
        refined: &mut usize,
    ) {
        let Some(terms) = pending.terms.take() else {
            return;
        };
        let q = Sq8Query::over(tables, terms);
        let bucket = &self.buckets[pending.bucket];
        let offer = Offer::new(job, bucket, pending.bucket);
        for &(ci, r, estimate) in &pending.rows {
            // The pool tightened since: the estimate may no longer beat it.
            if estimate < pool.limit() {
                let chunk = &bucket.chunks[ci as usize];
                *refined += 1;
                let d = q.score_row(chunk.codes.as_slice(), &chunk.norms, r as usize);
                offer.row(pool, ci as usize, r as usize, d);
            }
        }
        pending.rows.clear();
    }

    /// Starts loading one level of what scanning the bucket at position `b` reads. A bucket
    /// is four dependent loads deep (its struct; its chunk list, quantizer and tally; its
    /// chunks and ranges; their sketches, or codes and norms), each a likely cache miss: a
    /// scan asks for stage `s` of the bucket `PREFETCH_STAGES - s` places ahead of the one it
    /// scans, so that every level has arrived by the time the next stage reads it.
    fn prefetch_stage(&self, b: usize, stage: usize) {
        let bucket = &self.buckets[b];
        match stage {
            0 => kernels::prefetch_at(Arc::as_ptr(bucket), std::mem::size_of::<Bucket>()),
            1 => {
                kernels::prefetch_at(
                    bucket.chunks.as_ptr(),
                    std::mem::size_of_val(bucket.chunks.as_slice()),
                );
                kernels::prefetch_at(Arc::as_ptr(&bucket.quant), 64);
                kernels::prefetch_at(Arc::as_ptr(&bucket.tally), 64);
            }
            2 => {
                for c in &bucket.chunks {
                    kernels::prefetch_at(Arc::as_ptr(c), std::mem::size_of::<Chunk>());
                }
                bucket.quant.prefetch();
            }
            _ => {
                // A sketched chunk is read through its sketch first; its codes row by row.
                for c in &bucket.chunks {
                    match &c.sketch {
                        Some(sketch) => sketch.prefetch(PREFETCH_BYTES),
                        None => {
                            let codes = c.codes.as_slice();
                            kernels::prefetch(&codes[..codes.len().min(PREFETCH_BYTES)]);
                            kernels::prefetch(bytemuck::cast_slice(c.norms.levels()));
                        }
                    }
                }
            }
        }
    }

    /// The chunk a [`RowRef`] points into.
    pub fn chunk(&self, r: RowRef) -> &Chunk {
        &self.buckets[r.0 as usize].chunks[r.1 as usize]
    }
}

/// Offers scored rows of one bucket to the pool. Rows whose id the bucket's stale filter does
/// not flag are taken as they are (the final check in `search` still sees every result); a
/// rescan (`eager`) checks every row.
struct Offer<'a, 'j> {
    job: &'a ScanJob<'j>,
    bucket: &'a Bucket,
    bpos: u32,
    /// Whether any row needs the check: a rescan, or a bucket holding stale rows.
    check: bool,
}

impl<'a, 'j> Offer<'a, 'j> {
    fn new(job: &'a ScanJob<'j>, bucket: &'a Bucket, bpos: usize) -> Self {
        Offer {
            job,
            bucket,
            bpos: bpos as u32,
            check: job.eager || bucket.tally.dead() > 0,
        }
    }

    /// Offers row `r` of chunk `ci` at distance `d`.
    #[inline]
    fn row(&self, pool: &mut Pool, ci: usize, r: usize, d: f32) {
        if d >= pool.limit() {
            return;
        }
        if self.check {
            let chunk = &self.bucket.chunks[ci];
            let id = chunk.ids.get(r);
            let flagged = self.job.eager || self.bucket.tally.maybe_dead(id);
            if flagged && !(self.job.visible)(id, chunk.seqs.get(r)) {
                return;
            }
        }
        pool.push(d, (self.bpos, ci as u32, r as u32));
    }
}

/// Handles the rows of sketched chunk `ci` whose sketch estimate (in `w.dists`, one per row
/// scanned) can still enter the pool. While the pool is not full it is first seeded with the
/// rows of smallest estimate, scored at once; then the rows whose estimate beats the pool are
/// asked for from memory and added to `pending`, to be scored after the next bucket's scan.
fn refine_below(
    offer: &Offer,
    ci: usize,
    q: &Sq8Query,
    pool: &mut Pool,
    w: &mut RowScratch,
    pending: &mut Pending,
) {
    let chunk = &offer.bucket.chunks[ci];
    let codes = chunk.codes.as_slice();
    let norms = &chunk.norms;
    let rows = w.dists.len();
    let need = pool.room();
    if need > 0 {
        w.order.clear();
        w.order.extend(0..rows as u32);
        if need < rows {
            let b = &w.dists;
            w.order
                .select_nth_unstable_by(need - 1, |&x, &y| b[x as usize].total_cmp(&b[y as usize]));
            w.order.truncate(need);
        }
        // Read in memory order.
        w.order.sort_unstable();
        for &r in &w.order {
            q.prefetch_row(codes, norms, r as usize);
        }
        for &r in &w.order {
            let r = r as usize;
            w.refined += 1;
            offer.row(pool, ci, r, q.score_row(codes, norms, r));
            // Scored: the second pass skips it.
            w.dists[r] = f32::INFINITY;
        }
    }
    w.order.clear();
    kernels::indices_below(&w.dists, pool.limit(), &mut w.order);
    for &r in &w.order {
        q.prefetch_row(codes, norms, r as usize);
        pending.rows.push((ci as u32, r, w.dists[r as usize]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SearchDefaults;
    use rand::{Rng, SeedableRng};

    fn layer(n: usize, dim: usize) -> L1 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let vectors: Vec<f32> = (0..n * dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let mut rows = crate::rows::RowBatch::default();
        for (i, v) in vectors.chunks_exact(dim).enumerate() {
            rows.push(i as u64, i as u64, v, None);
        }
        let bucket = Bucket::build(0, rows, &vec![0.0; dim], Default::default());
        L1::from_buckets(dim, Metric::L2, vec![Arc::new(bucket)], 1)
    }

    #[test]
    fn the_pool_keeps_the_best_rows_and_knows_the_kth() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        for size in [1usize, 7, 40] {
            let mut pool = Pool::new(size);
            let mut all: Vec<f32> = Vec::new();
            for r in 0..1000u32 {
                let d: f32 = rng.gen_range(0.0..100.0);
                all.push(d);
                // Offered the way a scan does: only rows that beat the limit.
                if d < pool.limit() {
                    pool.push(d, (0, 0, r));
                }
                if r % 97 == 0 {
                    let mut sorted = all.clone();
                    sorted.sort_by(f32::total_cmp);
                    let k = size.min(5);
                    let want = if all.len() >= k { sorted[k - 1] } else { f32::INFINITY };
                    assert_eq!(pool.kth(k), want, "size {size} after {r}");
                }
            }
            all.sort_by(f32::total_cmp);
            let got: Vec<f32> = pool.into_sorted().iter().map(|s| s.dist).collect();
            assert_eq!(got, all[..size].to_vec(), "size {size}");
        }
    }

    #[test]
    fn sketched_rows_scored_after_the_next_bucket_still_find_the_neighbours() {
        // Six sketched buckets (256 dimensions, 150 rows each): the rows a bucket's sketches
        // let through are scored while the next bucket is scanned, by the query prepared for
        // their own bucket, and checked for visibility there.
        let (dim, per, nb) = (256, 150, 6);
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut buckets = Vec::new();
        let mut all: Vec<(u64, Vec<f32>)> = Vec::new();
        for b in 0..nb {
            let centre: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let mut rows = crate::rows::RowBatch::default();
            for r in 0..per {
                let id = (b * per + r) as u64;
                let v: Vec<f32> = centre.iter().map(|c| c + rng.gen_range(-0.5..0.5)).collect();
                rows.push(id, id, &v, None);
                all.push((id, v));
            }
            let bucket = Bucket::build(b as u32, rows, &centre, Default::default());
            assert!(bucket.chunks.iter().all(|c| c.sketch.is_some()));
            buckets.push(Arc::new(bucket));
        }
        let l1 = L1::from_buckets(dim, Metric::L2, buckets, nb as u32);
        let opts = ProbeOptions {
            target: 10.0,
            alpha: 1.0,
        };
        let mut params = SearchDefaults::default().to_params(10);
        params.nprobe = Some(nb);
        params.rerank = 4;
        params.prefilter = true;
        // Every row visible, then every third row hidden.
        for hide in [None, Some(3u64)] {
            let visible = |id: u64, _: u64| hide.is_none_or(|m| !id.is_multiple_of(m));
            let visible: &dyn Fn(u64, u64) -> bool = &visible;
            let name = format!("hide {hide:?}");
            let (mut found, mut refined, mut codes) = (0, 0, 0);
            let queries = 20;
            for qi in 0..queries {
                // A query near a stored row of a varying bucket.
                let base = &all[(qi * 37) % all.len()].1;
                let q: Vec<f32> = base.iter().map(|x| x + rng.gen_range(-0.2..0.2)).collect();
                let mut exact: Vec<(f32, u64)> = all
                    .iter()
                    .filter(|(id, _)| visible(*id, *id))
                    .map(|(id, v)| (kernels::scalar::l2sq(&q, v), *id))
                    .collect();
                exact.sort_by(|a, b| a.0.total_cmp(&b.0));
                let truth: Vec<u64> = exact[..10].iter().map(|e| e.1).collect();
                let (hits, counts) = l1.search(&q, &params, &opts, visible, 0).unwrap();
                assert_eq!(hits.len(), 10, "{name}");
                for h in &hits {
                    let id = l1.chunk(h.item).ids.get(h.item.2 as usize);
                    assert!(visible(id, id), "{name}: hidden row {id} returned");
                    found += truth.contains(&id) as usize;
                }
                refined += counts.refined;
                codes += counts.codes;
            }
            assert_eq!(codes, queries * nb * per, "{name}");
            assert!(refined * 4 < codes, "{name}: sketches let {refined} of {codes} rows through");
            assert!(found * 100 >= queries * 10 * 95, "{name}: recall {found} of 200");
        }
    }

    #[test]
    fn hidden_rows_never_come_back_even_when_the_dead_count_lags() {
        // The bucket's dead counter says 0 but most rows are invisible: the lazy scan must
        // filter them and re-scan so that the pool is still filled with visible rows.
        let dim = 16;
        let l1 = layer(500, dim);
        let opts = ProbeOptions {
            target: 10.0,
            alpha: 1.0,
        };
        for rerank in [0, 4] {
            let mut params = SearchDefaults::default().to_params(10);
            params.rerank = rerank;
            let visible = |id: u64, _seq: u64| id.is_multiple_of(7);
            let (hits, _) = l1
                .search(&vec![0.1; dim], &params, &opts, &visible, 0)
                .unwrap();
            assert_eq!(hits.len(), 10, "rerank {rerank}");
            assert!(hits.iter().all(|h| l1
                .chunk(h.item)
                .ids
                .get(h.item.2 as usize)
                .is_multiple_of(7)));
            let all = |_: u64, _: u64| true;
            let (unfiltered, _) = l1.search(&vec![0.1; dim], &params, &opts, &all, 0).unwrap();
            assert_eq!(unfiltered.len(), 10);
        }
    }

    #[test]
    fn a_bucket_with_stale_rows_asks_the_id_map_only_for_flagged_rows() {
        let dim = 16;
        let query = vec![0.1; dim];
        let opts = ProbeOptions {
            target: 10.0,
            alpha: 1.0,
        };
        // The 40 rows nearest the query are stale. The tally knows all of them, or only 30
        // (the others went stale in a window before it was told): the results are the same.
        for known in [40, 30] {
            let l1 = layer(500, dim);
            let chunk = &l1.buckets()[0].chunks[0];
            let mut by_distance: Vec<(f32, u64)> = (0..chunk.len())
                .map(|r| {
                    let d = chunk.with_vector(r, |v| kernels::l2sq(&query, v)).unwrap();
                    (d, chunk.ids.get(r))
                })
                .collect();
            by_distance.sort_by(|a, b| a.0.total_cmp(&b.0));
            let stale: Vec<u64> = by_distance[..40].iter().map(|x| x.1).collect();
            l1.buckets()[0].tally.add_dead(stale[..known].iter().copied());
            let mut truth: Vec<u64> = by_distance[40..50].iter().map(|x| x.1).collect();
            truth.sort_unstable();
            for rerank in [0, 4] {
                let mut params = SearchDefaults::default().to_params(10);
                params.rerank = rerank;
                params.nprobe = Some(1);
                let asked = std::sync::atomic::AtomicUsize::new(0);
                let visible = |id: u64, _seq: u64| {
                    asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    !stale.contains(&id)
                };
                let (hits, counts) = l1.search(&query, &params, &opts, &visible, 0).unwrap();
                let mut ids: Vec<u64> = hits
                    .iter()
                    .map(|h| l1.chunk(h.item).ids.get(h.item.2 as usize))
                    .collect();
                ids.sort_unstable();
                let case = format!("{known} known, rerank {rerank}");
                assert_eq!(ids.len(), 10, "{case}");
                assert!(ids.iter().all(|id| !stale.contains(id)), "{case}");
                if rerank > 0 {
                    assert_eq!(ids, truth, "{case}");
                }
                // Asked: the flagged rows offered, a few false positives, the final check.
                let asked = asked.load(std::sync::atomic::Ordering::Relaxed);
                if known == 40 {
                    assert!(asked < counts.codes / 4, "{case}: {asked} lookups");
                }
            }
        }
    }
}
