//! L1: centroid-routed buckets of SQ8 codes.
//!
//! ```text
//! query ─▶ probe (P_geom × R, guardrail) ─▶ per bucket: LUT + ADC scan ─▶ top k·rerank ─▶ exact re-rank ─▶ top k
//! ```
//! An [`L1`] value is immutable: flushes and maintenance build a new one that shares every
//! untouched bucket (and every untouched chunk of a touched bucket) with the old one.

mod bucket;
mod probe;

pub use bucket::{Bucket, BucketLive, Chunk};
pub use probe::{select_buckets, ProbeOptions};

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{AdcKernel, Metric, SearchParams};
use crate::distance::Distance;
use crate::kernels;
use crate::topk::{Scored, TopK};

/// Address of one row inside an L1 snapshot: (bucket position, chunk, row).
pub type RowRef = (u32, u32, u32);

/// The bucket layer: centroids plus their buckets.
#[derive(Debug, Clone)]
pub struct L1 {
    dim: usize,
    metric: Metric,
    centroids: Vec<f32>,
    buckets: Vec<Arc<Bucket>>,
    by_id: HashMap<u32, usize>,
    next_id: u32,
}

/// What one L1 search looked at.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScanCounts {
    /// Buckets probed.
    pub buckets: usize,
    /// Codes scanned.
    pub codes: usize,
}

impl L1 {
    /// An untrained layer with no buckets.
    pub fn empty(dim: usize, metric: Metric) -> L1 {
        L1::from_buckets(dim, metric, Vec::new(), 0)
    }

    /// A layer made of `buckets`; `next_id` is the id the next new bucket gets.
    pub fn from_buckets(dim: usize, metric: Metric, buckets: Vec<Arc<Bucket>>, next_id: u32) -> L1 {
        let mut centroids = Vec::with_capacity(buckets.len() * dim);
        let mut by_id = HashMap::with_capacity(buckets.len());
        for (i, b) in buckets.iter().enumerate() {
            centroids.extend_from_slice(&b.centroid);
            by_id.insert(b.id, i);
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
            centroids,
            buckets,
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

    /// Row-major centroids, one per bucket, in the same order.
    pub fn centroids(&self) -> &[f32] {
        &self.centroids
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
        for (i, c) in self.centroids.chunks_exact(self.dim).enumerate() {
            let d = dist.eval(v, c);
            if d < best.1 {
                best = (i, d);
            }
        }
        best.0
    }

    /// A copy of this layer with some buckets replaced (matched by id) or added.
    pub fn with_buckets(&self, changed: Vec<Arc<Bucket>>) -> L1 {
        let mut buckets = self.buckets.clone();
        for b in changed {
            match self.by_id.get(&b.id) {
                Some(&i) => buckets[i] = b,
                None => buckets.push(b),
            }
        }
        L1::from_buckets(self.dim, self.metric, buckets, self.next_id)
    }

    /// Approximate search: probes buckets, scans their codes, and (if `params.rerank > 0`)
    /// re-scores the best `k * rerank` candidates with exact vectors. Only rows for which
    /// `visible(id, seq)` holds are returned. `tick` ages bucket temperatures.
    pub fn search(
        &self,
        query: &[f32],
        params: &SearchParams,
        opts: &ProbeOptions,
        visible: &dyn Fn(u64, u64) -> bool,
        tick: u64,
    ) -> (Vec<Scored<RowRef>>, ScanCounts) {
        let mut counts = ScanCounts::default();
        if self.buckets.is_empty() {
            return (Vec::new(), counts);
        }
        let probe = select_buckets(self, query, params, opts);
        let pool = if params.rerank > 0 {
            params.k.saturating_mul(params.rerank)
        } else {
            params.k
        };
        let mut top: TopK<RowRef> = TopK::new(pool);
        let mut table = Vec::new();
        let mut dists = Vec::new();
        let l2 = self.metric.uses_l2_internally();
        for &bpos in &probe {
            let bucket = &self.buckets[bpos];
            bucket.live.touch(tick);
            counts.buckets += 1;
            let stride = bucket.quant.stride();
            let base = match params.adc {
                AdcKernel::Factored => bucket.quant.query_weights(query, self.metric, &mut table),
                AdcKernel::Lut => {
                    bucket.quant.build_lut(query, self.metric, &mut table);
                    0.0
                }
            };
            for (ci, chunk) in bucket.chunks.iter().enumerate() {
                dists.clear();
                dists.resize(chunk.len(), 0f32);
                let codes = chunk.codes.as_slice();
                match params.adc {
                    AdcKernel::Factored => {
                        kernels::sq8_dot_scan(&table, codes, stride, &mut dists);
                        for (d, n) in dists.iter_mut().zip(&chunk.norms) {
                            *d = if l2 { base + n - *d } else { base - *d };
                        }
                    }
                    AdcKernel::Lut => kernels::adc_scan(&table, codes, stride, &mut dists),
                }
                counts.codes += chunk.len();
                for (r, &d) in dists.iter().enumerate() {
                    if d < top.threshold() && visible(chunk.ids[r], chunk.seqs[r]) {
                        top.push(d, (bpos as u32, ci as u32, r as u32));
                    }
                }
            }
        }
        if params.rerank == 0 {
            return (top.into_sorted(), counts);
        }
        let dist = Distance::for_metric(self.metric);
        let mut exact: TopK<RowRef> = TopK::new(params.k);
        for cand in top.into_sorted() {
            let (b, c, r) = cand.item;
            let v = self.buckets[b as usize].chunks[c as usize].vector(r as usize, self.dim);
            exact.push(dist.eval(query, v), cand.item);
        }
        (exact.into_sorted(), counts)
    }

    /// The chunk a [`RowRef`] points into.
    pub fn chunk(&self, r: RowRef) -> &Chunk {
        &self.buckets[r.0 as usize].chunks[r.1 as usize]
    }
}
