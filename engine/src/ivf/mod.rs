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
use crate::quant::SketchQuery;
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
    table: Vec<f32>,
    /// Weights computed only for their sketch centre term (the LUT kernel's buckets).
    spare: Vec<f32>,
    dists: Vec<f32>,
    sketch: SketchQuery,
    order: Vec<u32>,
    codes: usize,
    buckets: usize,
    refined: usize,
}

impl Scratch {
    /// Buffers for the scans of one query (its sketch rotation is computed once, on first use,
    /// however many scans follow).
    fn for_query(query: &[f32]) -> Scratch {
        let mut s = Scratch::default();
        s.sketch.reset(query);
        s
    }
}

/// The ADC distances of the code rows in `codes` (`stride` bytes each) into `out`, by kernel:
/// the factored kernel gives `q·c`, the LUT kernel the distance itself.
fn adc_distances(adc: AdcKernel, table: &[f32], codes: &[u8], stride: usize, out: &mut [f32]) {
    match adc {
        AdcKernel::Factored => kernels::sq8_dot_scan(table, codes, stride, out),
        AdcKernel::Lut => kernels::adc_scan(table, codes, stride, out),
    }
}

/// When a scan stops: a budget of codes, and optionally a recall target (plan, target, k,
/// stretch of the k-th distance).
struct Stop<'a> {
    max_codes: usize,
    recall: Option<(&'a RecallPlan, f32, usize, f32)>,
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
        let dist = Distance::for_metric(self.metric);
        let mut best = (0, f32::INFINITY);
        for (i, b) in self.buckets.iter().enumerate() {
            let d = dist.eval(v, &b.centroid);
            if d < best.1 {
                best = (i, d);
            }
        }
        best.0
    }

    /// The metric buckets are routed by.
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
            && self.metric.uses_l2_internally();
        let plan = adaptive.then(|| RecallPlan::new(self, query, params.max_probes));
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
                .map(|(p, t)| (p, t, params.k, opts.alpha)),
        };
        let mut scratch = Scratch::for_query(query);
        let cands = self.scan(
            query,
            params,
            probe,
            pool,
            visible,
            false,
            &stop,
            &mut scratch,
        );
        let scanned = scratch.buckets;
        for &bpos in &probe[..scanned] {
            self.buckets[bpos].tally.touch(tick);
        }
        counts.buckets = scanned;
        counts.codes = scratch.codes;
        counts.refined = scratch.refined;
        let held = cands.len();
        let is_visible = |item: RowRef| {
            let chunk = self.chunk(item);
            let r = item.2 as usize;
            visible(chunk.ids.get(r), chunk.seqs.get(r))
        };
        // Lazily checked candidates that turn out hidden leave the pool short: scan the same
        // buckets again, checking every row as it is read.
        let rescan = |scratch: &mut Scratch| {
            let again = Stop {
                max_codes: stop.max_codes,
                recall: None,
            };
            self.scan(
                query,
                params,
                &probe[..scanned],
                pool,
                visible,
                true,
                &again,
                scratch,
            )
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
        let dist = Distance::for_metric(self.metric);
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

    /// Scans the codes of the `probe` buckets in order and keeps the `pool` nearest by
    /// approximate distance, until `stop` says enough. Visibility is checked during the scan
    /// in buckets with stale rows, or everywhere when `eager`.
    #[allow(clippy::too_many_arguments)]
    fn scan(
        &self,
        query: &[f32],
        params: &SearchParams,
        probe: &[usize],
        pool: usize,
        visible: &dyn Fn(u64, u64) -> bool,
        eager: bool,
        stop: &Stop,
        s: &mut Scratch,
    ) -> Vec<Scored<RowRef>> {
        let mut top: TopK<RowRef> = TopK::new(pool);
        // The k-th best distance so far, for the recall estimate.
        let mut kth: TopK<()> = TopK::new(stop.recall.map_or(0, |r| r.2));
        let l2 = self.metric.uses_l2_internally();
        s.codes = 0;
        s.buckets = 0;
        s.refined = 0;
        let adc = params.adc;
        let mut memo = EstimateMemo::default();
        for &bpos in probe {
            if s.codes >= stop.max_codes {
                break;
            }
            // With a recall target, at least one bucket is scanned (min_probes does not apply).
            if let Some((plan, target, _, alpha)) = stop.recall {
                if s.buckets >= 1
                    && plan.estimate_memo(
                        &mut memo,
                        s.buckets,
                        alpha * kth.threshold().max(0.0).sqrt(),
                    ) >= target
                {
                    break;
                }
            }
            s.buckets += 1;
            let bucket = &self.buckets[bpos];
            let check = eager || bucket.tally.dead() > 0;
            let stride = bucket.quant.stride();
            // The bucket's SQ8 query weights (or table) and base term: made up front in a
            // sketched bucket, from the same pass that gives the query's standing against the
            // sketches' centre (most sketched buckets then need the weights anyway; the LUT
            // kernel's buckets compute them only for that centre term); otherwise on first
            // use.
            let mut base: Option<f32> = None;
            let mut centre = None;
            if params.prefilter && bucket.chunks.iter().any(|c| c.sketch.is_some()) {
                let w = match adc {
                    AdcKernel::Factored => &mut s.table,
                    AdcKernel::Lut => &mut s.spare,
                };
                let (b, c) = bucket.quant.prepare(query, self.metric, w);
                if adc == AdcKernel::Factored {
                    base = Some(b);
                }
                centre = Some(c);
            }
            macro_rules! base {
                () => {
                    match base {
                        Some(b) => b,
                        None => {
                            let b = match adc {
                                AdcKernel::Factored => {
                                    bucket.quant.query_weights(query, self.metric, &mut s.table)
                                }
                                AdcKernel::Lut => {
                                    bucket.quant.build_lut(query, self.metric, &mut s.table);
                                    0.0
                                }
                            };
                            base = Some(b);
                            b
                        }
                    }
                };
            }
            // The factored kernel returns q·c; d = base + |c|² - q·c for L2 and
            // base - q·c for inner product. The LUT kernel returns d itself.
            let sign = if adc == AdcKernel::Factored {
                -1.0
            } else {
                1.0
            };
            for (ci, chunk) in bucket.chunks.iter().enumerate() {
                let rows = chunk.len().min(stop.max_codes.saturating_sub(s.codes));
                if rows == 0 {
                    break;
                }
                let codes = &chunk.codes.as_slice()[..rows * stride];
                let norms = (adc == AdcKernel::Factored && l2).then_some(&chunk.norms);
                let row_dist =
                    |base: f32, x: f32, r: usize| base + norms.map_or(0.0, |n| n.get(r)) + sign * x;
                s.codes += rows;
                if let (Some(sketch), Some(centre)) = (chunk.sketch.as_ref(), centre) {
                    // Lower bounds first; the SQ8 distance only where one can still enter.
                    s.dists.clear();
                    s.dists.resize(rows, 0f32);
                    sketch.lower_bounds(&mut s.sketch, centre, &mut s.dists);
                    // While the pool is not full, it is seeded with the rows of smallest
                    // bound (read in memory order); then the rows whose bound beats the pool
                    // are gathered and their code rows prefetched, so that their scattered
                    // loads overlap, and only those are computed.
                    let mut limit = top.threshold();
                    let mut one = [0f32];
                    macro_rules! refine {
                        ($r:expr) => {{
                            let r: usize = $r;
                            let code = &codes[r * stride..(r + 1) * stride];
                            let b = base!();
                            adc_distances(adc, &s.table, code, stride, &mut one);
                            s.refined += 1;
                            let d = row_dist(b, one[0], r);
                            if d < limit && (!check || visible(chunk.ids.get(r), chunk.seqs.get(r)))
                            {
                                top.push(d, (bpos as u32, ci as u32, r as u32));
                                limit = top.threshold();
                                kth.push(d, ());
                            }
                        }};
                    }
                    let need = pool.saturating_sub(top.len());
                    if need > 0 {
                        s.order.clear();
                        s.order.extend(0..rows as u32);
                        if need < rows {
                            let b = &s.dists;
                            s.order.select_nth_unstable_by(need - 1, |&x, &y| {
                                b[x as usize].total_cmp(&b[y as usize])
                            });
                            s.order.truncate(need);
                        }
                        s.order.sort_unstable();
                        for &r in &s.order {
                            let r = r as usize;
                            kernels::prefetch(&codes[r * stride..(r + 1) * stride]);
                            if let Some(n) = norms {
                                kernels::prefetch(bytemuck::cast_slice(&n.levels()[r..r + 1]));
                            }
                        }
                        for i in 0..s.order.len() {
                            let r = s.order[i] as usize;
                            refine!(r);
                            // Computed: the second pass skips it.
                            s.dists[r] = f32::INFINITY;
                        }
                    }
                    s.order.clear();
                    kernels::indices_below(&s.dists, limit, &mut s.order);
                    for &r in &s.order {
                        let r = r as usize;
                        kernels::prefetch(&codes[r * stride..(r + 1) * stride]);
                        if let Some(n) = norms {
                            kernels::prefetch(bytemuck::cast_slice(&n.levels()[r..r + 1]));
                        }
                    }
                    for i in 0..s.order.len() {
                        let r = s.order[i] as usize;
                        if s.dists[r] < limit {
                            refine!(r);
                        }
                    }
                    continue;
                }
                s.dists.clear();
                s.dists.resize(rows, 0f32);
                let b = base!();
                adc_distances(adc, &s.table, codes, stride, &mut s.dists);
                s.refined += rows;
                let mut limit = top.threshold();
                for (r, &x) in s.dists.iter().enumerate() {
                    let d = row_dist(b, x, r);
                    if d < limit && (!check || visible(chunk.ids.get(r), chunk.seqs.get(r))) {
                        top.push(d, (bpos as u32, ci as u32, r as u32));
                        limit = top.threshold();
                        kth.push(d, ());
                    }
                }
            }
        }
        top.into_sorted()
    }

    /// The chunk a [`RowRef`] points into.
    pub fn chunk(&self, r: RowRef) -> &Chunk {
        &self.buckets[r.0 as usize].chunks[r.1 as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SearchDefaults;
    use crate::quant::Sq8;
    use rand::{Rng, SeedableRng};

    fn layer(n: usize, dim: usize) -> L1 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let vectors: Vec<f32> = (0..n * dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let quant = Sq8::fit(&vectors, dim);
        let ids: Vec<u64> = (0..n as u64).collect();
        let chunk = Chunk::build(&quant, ids.clone(), ids, vectors, vec![None; n]);
        let bucket = Bucket::empty(0, vec![0.0; dim]).with_chunk(chunk);
        L1::from_buckets(dim, Metric::L2, vec![Arc::new(bucket)], 1)
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
}
