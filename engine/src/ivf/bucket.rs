//! One bucket: a routing centroid, its own SQ8 quantizer, and append-only chunks of rows.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::quant::{AlignedCodes, Sq8};

/// Queries after which a bucket's temperature halves.
pub const HEAT_HALF_LIFE: f64 = 1000.0;

/// Immutable block of rows appended to a bucket by one flush.
#[derive(Debug)]
pub struct Chunk {
    /// Record ids.
    pub ids: Vec<u64>,
    /// Sequence number of each row.
    pub seqs: Vec<u64>,
    /// SQ8 code rows (`stride` bytes each), cache-line aligned.
    pub codes: AlignedCodes,
    /// Per row, the code-only term of the factored L2 distance ([`Sq8::code_norm`]).
    pub norms: Vec<f32>,
    /// Exact vectors for re-ranking (row-major).
    pub vectors: Vec<f32>,
    /// Payload of each row.
    pub payloads: Vec<Option<Arc<str>>>,
}

impl Chunk {
    /// Encodes rows with `quant` into a new chunk.
    pub fn build(
        quant: &Sq8,
        ids: Vec<u64>,
        seqs: Vec<u64>,
        vectors: Vec<f32>,
        payloads: Vec<Option<Arc<str>>>,
    ) -> Chunk {
        let dim = quant.dim();
        let stride = quant.stride();
        let mut raw = Vec::with_capacity(ids.len() * stride);
        let mut norms = Vec::with_capacity(ids.len());
        for v in vectors.chunks_exact(dim) {
            quant.encode_into(v, &mut raw);
            norms.push(quant.code_norm(&raw[raw.len() - stride..]));
        }
        let mut codes = AlignedCodes::with_capacity(raw.len());
        codes.extend_from_slice(&raw);
        Chunk {
            ids,
            seqs,
            codes,
            norms,
            vectors,
            payloads,
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Exact vector of row `r`.
    pub fn vector(&self, r: usize, dim: usize) -> &[f32] {
        &self.vectors[r * dim..(r + 1) * dim]
    }
}

/// Counters of a bucket that outlive copy-on-write copies of it.
#[derive(Debug, Default)]
pub struct BucketLive {
    dead: AtomicUsize,
    heat: Mutex<(f64, u64)>,
}

impl BucketLive {
    /// Counts one more stale (deleted or replaced) row.
    pub fn add_dead(&self, n: usize) {
        self.dead.fetch_add(n, Ordering::Relaxed);
    }

    /// Stale rows still stored.
    pub fn dead(&self) -> usize {
        self.dead.load(Ordering::Relaxed)
    }

    /// Records a probe at query tick `tick`.
    pub fn touch(&self, tick: u64) {
        let mut h = self.heat.lock();
        let aged = h.0 * decay(tick.saturating_sub(h.1));
        *h = (aged + 1.0, tick.max(h.1));
    }

    /// Exponentially decayed probe count as of tick `now`.
    pub fn temperature(&self, now: u64) -> f64 {
        let h = self.heat.lock();
        h.0 * decay(now.saturating_sub(h.1))
    }

    /// Fresh counters that keep this bucket's temperature (used when it is rewritten).
    pub fn carry_heat(&self) -> BucketLive {
        let h = *self.heat.lock();
        BucketLive {
            dead: AtomicUsize::new(0),
            heat: Mutex::new(h),
        }
    }
}

fn decay(ticks: u64) -> f64 {
    0.5f64.powf(ticks as f64 / HEAT_HALF_LIFE)
}

/// A bucket. Cloning is cheap (chunks and counters are shared).
#[derive(Debug, Clone)]
pub struct Bucket {
    /// Stable id (the id map refers to it).
    pub id: u32,
    /// Routing centroid.
    pub centroid: Vec<f32>,
    /// This bucket's quantizer.
    pub quant: Arc<Sq8>,
    /// Row blocks, oldest first.
    pub chunks: Vec<Arc<Chunk>>,
    /// Counters shared by every copy of this bucket.
    pub live: Arc<BucketLive>,
}

impl Bucket {
    /// Rows stored, stale ones included.
    pub fn rows(&self) -> usize {
        self.chunks.iter().map(|c| c.len()).sum()
    }

    /// Rows that are current.
    pub fn live_rows(&self) -> usize {
        self.rows().saturating_sub(self.live.dead())
    }

    /// A copy with one more chunk.
    pub fn with_chunk(&self, chunk: Chunk) -> Bucket {
        let mut b = self.clone();
        b.chunks.push(Arc::new(chunk));
        b
    }
}
