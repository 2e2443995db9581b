//! One bucket: a routing centroid, its own SQ8 quantizer, and append-only chunks of rows.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::memory::MemoryUse;
use crate::columns::{Levels16, Levels8, PayloadColumn, Round, U64Column};
use crate::error::Result;
use crate::kernels;
use crate::quant::{AlignedCodes, Sketch, Sq8};
use crate::rows::RowBatch;
use crate::storage::cold::ColdVectors;

/// Queries after which a bucket's temperature halves.
pub const HEAT_HALF_LIFE: f64 = 1000.0;

/// Immutable block of rows appended to a bucket by one flush.
#[derive(Debug)]
pub struct Chunk {
    /// Record ids.
    pub ids: U64Column,
    /// Sequence number of each row.
    pub seqs: U64Column,
    /// SQ8 code rows (`stride` bytes each), cache-line aligned.
    pub codes: AlignedCodes,
    /// Per row, the code-only term of the factored L2 distance ([`Sq8::code_norm`]), on a
    /// 16-bit grid over the chunk's range (far finer than the SQ8 distance's own error).
    pub norms: Levels16,
    /// Exact vectors for re-ranking: in memory until stored, then read on demand.
    pub cold: ColdVectors,
    /// Payload of each row.
    pub payloads: PayloadColumn,
    /// Binary sketch of the SQ8 decodes (none for small chunks and low dimensions).
    pub sketch: Option<Sketch>,
}

/// The sketch of code rows encoded by `quant`.
fn sketch_codes(quant: &Sq8, codes: &[u8]) -> Option<Sketch> {
    let dim = quant.dim();
    let rows = codes.len() / quant.stride().max(1);
    if !Sketch::pays(dim, rows) {
        return None;
    }
    let mut decoded = Vec::with_capacity(rows * dim);
    for code in codes.chunks_exact(quant.stride()) {
        decoded.extend(quant.decode(&code[..dim]));
    }
    // The middle of the quantizer's box: the same for every chunk of a bucket, and derived
    // by a search in the same pass as its SQ8 query weights (`Sq8::prepare`).
    Sketch::build(&decoded, dim, &quant.middle())
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
            ids: U64Column::new(&ids),
            seqs: U64Column::new(&seqs),
            codes,
            norms: Levels16::new(&norms, Round::Nearest),
            cold: ColdVectors::resident(vectors, dim),
            payloads: PayloadColumn::new(payloads),
            sketch: sketch_codes(quant, &raw),
        }
    }

    /// A chunk read back from storage: its code rows (encoded by `quant`) and where its
    /// exact vectors are.
    pub fn stored(
        quant: &Sq8,
        ids: Vec<u64>,
        seqs: Vec<u64>,
        raw_codes: &[u8],
        payloads: Vec<Option<Arc<str>>>,
        cold: ColdVectors,
    ) -> Chunk {
        let stride = quant.stride();
        let norms: Vec<f32> = raw_codes
            .chunks_exact(stride)
            .map(|c| quant.code_norm(c))
            .collect();
        let mut codes = AlignedCodes::with_capacity(raw_codes.len());
        codes.extend_from_slice(raw_codes);
        Chunk {
            ids: U64Column::new(&ids),
            seqs: U64Column::new(&seqs),
            codes,
            norms: Levels16::new(&norms, Round::Nearest),
            cold,
            payloads: PayloadColumn::new(payloads),
            sketch: sketch_codes(quant, raw_codes),
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

    /// Adds the bytes this chunk holds in memory to `m`: codes, sketch, ids, sequence
    /// numbers, code norms, payloads and any exact vectors not yet dropped.
    pub fn add_memory(&self, m: &mut MemoryUse) {
        m.rows += self.len() as u64;
        m.codes += self.codes.len() as u64;
        m.sketches += self.sketch.as_ref().map_or(0, |s| s.resident_bytes()) as u64;
        m.ids += self.ids.resident_bytes() as u64;
        m.seqs += self.seqs.resident_bytes() as u64;
        m.norms += self.norms.resident_bytes() as u64;
        m.payloads += self.payloads.resident_bytes() as u64;
        m.vectors += self.cold.resident_bytes() as u64;
    }

    /// Exact vector of row `r`.
    pub fn vector(&self, r: usize) -> Result<Vec<f32>> {
        self.cold.row(r)
    }

    /// `f` applied to the exact vector of row `r`, read in place.
    pub fn with_vector<T>(&self, r: usize, f: impl FnOnce(&[f32]) -> T) -> Result<T> {
        self.cold.with_row(r, f)
    }

    /// Exact vectors of every row (row-major); blocks read are not cached.
    pub fn vectors(&self) -> Result<Arc<[f32]>> {
        self.cold.all()
    }
}

/// Words of a bucket's stale-id filter ([`BucketTally::maybe_dead`]): 1024 bits, two per id,
/// so that a bucket holding 100 stale rows sends about 4% of its other rows to the id map.
const DEAD_FILTER_WORDS: usize = 16;

/// Counters of a bucket that outlive copy-on-write copies of it.
#[derive(Debug, Default)]
pub struct BucketTally {
    dead: AtomicUsize,
    /// Bloom filter of the ids whose copy here went stale. No false negatives for stale
    /// rows marked before their write was published; a search checks only the rows it flags
    /// against the id map (and every result against it at the end).
    dead_ids: [AtomicU64; DEAD_FILTER_WORDS],
    heat: Mutex<(f64, u64)>,
}

/// The two filter bits of `id` (word, bit) pairs, from one multiplicative hash.
#[inline]
fn dead_bits(id: u64) -> [(usize, u64); 2] {
    let h = id.wrapping_add(0x632b_e59b_d9b4_e019).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let bit = |x: u64| ((x as usize >> 6) % DEAD_FILTER_WORDS, 1u64 << (x & 63));
    [bit(h >> 54), bit((h >> 44) & 0x3ff)]
}

impl BucketTally {
    /// Counts the stale (deleted or replaced) copies of `ids` stored in this bucket.
    pub fn add_dead(&self, ids: impl IntoIterator<Item = u64>) {
        let mut n = 0;
        for id in ids {
            for (w, b) in dead_bits(id) {
                self.dead_ids[w].fetch_or(b, Ordering::Relaxed);
            }
            n += 1;
        }
        self.dead.fetch_add(n, Ordering::Release);
    }

    /// Whether a copy of `id` stored here may be stale: false means every copy of `id` in
    /// this bucket was current when the reader's snapshot was published (a row written after
    /// that snapshot is caught by the final check).
    #[inline]
    pub fn maybe_dead(&self, id: u64) -> bool {
        dead_bits(id)
            .iter()
            .all(|&(w, b)| self.dead_ids[w].load(Ordering::Relaxed) & b != 0)
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

    /// Fresh counters that keep `share` of this bucket's temperature (used when it is
    /// rewritten, or split in two).
    pub fn carry_heat(&self, share: f64) -> BucketTally {
        let h = *self.heat.lock();
        BucketTally {
            heat: Mutex::new((h.0 * share, h.1)),
            ..Default::default()
        }
    }
}

/// Mean Euclidean distance of row-major `vectors` to `centre` (0 when there are none).
fn mean_distance(vectors: &[f32], centre: &[f32]) -> f32 {
    let rows = vectors.chunks_exact(centre.len().max(1));
    let n = rows.len().max(1) as f32;
    rows.map(|v| kernels::l2sq(v, centre).sqrt()).sum::<f32>() / n
}

fn decay(ticks: u64) -> f64 {
    0.5f64.powf(ticks as f64 / HEAT_HALF_LIFE)
}

/// Where a bucket started: its centroid when it was built.
#[derive(Debug, Clone)]
enum Anchor {
    /// Still the routing centroid (no rows appended since).
    AtCentroid,
    /// A centroid left behind, on an 8-bit grid over its own range: a drift measure compares
    /// its distance to the centroid with the bucket's radius, and 1/255 of the range per
    /// dimension is far below that (a 16-bit grid held twice the bytes, 3% of a 384-d index's
    /// codes and ids at 270 buckets, for no decision that changed).
    Left(Arc<Levels8>),
}

/// A bucket. Cloning is cheap (chunks and counters are shared).
///
/// The routing centroid is the running mean of every row appended since the bucket was last
/// (re)built, so routing follows the data; `anchor` and `radius` remember where the bucket
/// started, and [`Bucket::drift`] says how far it has wandered since.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// Stable id (the id map refers to it). A rebuilt bucket gets a fresh id.
    pub id: u32,
    /// Routing centroid (running mean of the rows appended).
    pub centroid: Arc<[f32]>,
    /// Centroid when the bucket was built ([`Bucket::anchor`]).
    anchor: Anchor,
    /// Mean distance of the rows to `anchor` when the bucket was built (0 if it had none).
    pub radius: f32,
    /// Rows appended (the weight of the running mean).
    count: u64,
    /// This bucket's quantizer.
    pub quant: Arc<Sq8>,
    /// Row blocks, oldest first.
    pub chunks: Vec<Arc<Chunk>>,
    /// Counters shared by every copy of this bucket.
    pub tally: Arc<BucketTally>,
}

impl Bucket {
    /// An empty bucket routed by `centroid` (fresh from training).
    pub fn empty(id: u32, centroid: Vec<f32>) -> Bucket {
        let dim = centroid.len();
        let centroid: Arc<[f32]> = centroid.into();
        Bucket {
            id,
            anchor: Anchor::AtCentroid,
            centroid,
            radius: 0.0,
            count: 0,
            quant: Arc::new(Sq8::fit(&[], dim)),
            chunks: Vec::new(),
            tally: Arc::new(BucketTally::default()),
        }
    }

    /// A bucket holding exactly `rows` in one chunk, with a quantizer fitted to them. Its
    /// centroid is their mean (`fallback` when there are none).
    pub fn build(id: u32, rows: RowBatch, fallback: &[f32], tally: BucketTally) -> Bucket {
        let dim = fallback.len();
        let mut b = Bucket::empty(id, fallback.to_vec());
        b.tally = Arc::new(tally);
        if rows.is_empty() {
            return b;
        }
        b.append_mean(&rows.vectors);
        b.anchor = Anchor::AtCentroid;
        b.radius = mean_distance(&rows.vectors, &b.centroid);
        let quant = Sq8::fit(&rows.vectors, dim);
        let chunk = Chunk::build(&quant, rows.ids, rows.seqs, rows.vectors, rows.payloads);
        b.quant = Arc::new(quant);
        b.chunks = vec![Arc::new(chunk)];
        b
    }

    /// This bucket rebuilt under a fresh id from `rows` (its current rows, possibly with
    /// more): a quantizer fitted anew, stale rows gone; the anchor, radius and temperature
    /// are kept, so drift keeps being measured from where the bucket started.
    pub fn rebuilt(&self, id: u32, rows: RowBatch) -> Bucket {
        let mut b = Bucket::build(id, rows, &self.centroid, self.tally.carry_heat(1.0));
        if self.radius > 0.0 {
            b.anchor = Anchor::Left(match &self.anchor {
                Anchor::AtCentroid => Arc::new(Levels8::new(&self.centroid, Round::Nearest)),
                Anchor::Left(a) => a.clone(),
            });
            b.radius = self.radius;
        }
        b
    }

    /// The current rows of this bucket (`is_current(id, seq)` decides).
    pub fn current_rows(&self, is_current: &dyn Fn(u64, u64) -> bool) -> Result<RowBatch> {
        let dim = self.centroid.len();
        let mut out = RowBatch::default();
        for c in &self.chunks {
            // Vectors are read only for chunks that still hold a current row.
            let mut vectors = None;
            for r in 0..c.len() {
                if is_current(c.ids.get(r), c.seqs.get(r)) {
                    let all = match &vectors {
                        Some(all) => all,
                        None => vectors.insert(c.vectors()?),
                    };
                    let v = &all[r * dim..(r + 1) * dim];
                    out.push(c.ids.get(r), c.seqs.get(r), v, c.payloads.get(r).cloned());
                }
            }
        }
        Ok(out)
    }

    /// Restores a bucket read from storage: routing centroid (the mean of `count` rows
    /// appended), anchor, radius, quantizer and chunks.
    pub fn restore(
        id: u32,
        centroid: Vec<f32>,
        anchor: Vec<f32>,
        radius: f32,
        count: u64,
        quant: Sq8,
        chunks: Vec<Arc<Chunk>>,
    ) -> Bucket {
        let mut b = Bucket::empty(id, centroid);
        if anchor[..] != b.centroid[..] {
            b.anchor = Anchor::Left(Arc::new(Levels8::new(&anchor, Round::Nearest)));
        }
        b.radius = radius;
        b.count = count;
        b.quant = Arc::new(quant);
        b.chunks = chunks;
        b
    }

    /// The centroid when the bucket was built (to the anchor's 8-bit grid once rows were
    /// appended).
    pub fn anchor(&self) -> Vec<f32> {
        match &self.anchor {
            Anchor::AtCentroid => self.centroid.to_vec(),
            Anchor::Left(a) => a.to_vec(),
        }
    }

    /// Rows appended since the bucket was built (the weight of its running mean).
    pub fn appended(&self) -> u64 {
        self.count
    }

    /// Moves the running mean over `vectors` (row-major) as well: the sum so far is the
    /// centroid times the rows appended, summed in f64 with the new rows.
    fn append_mean(&mut self, vectors: &[f32]) {
        let dim = self.centroid.len();
        let added = (vectors.len() / dim.max(1)) as u64;
        if added == 0 {
            return;
        }
        let mut sum: Vec<f64> = self
            .centroid
            .iter()
            .map(|&c| c as f64 * self.count as f64)
            .collect();
        for v in vectors.chunks_exact(dim) {
            for (s, x) in sum.iter_mut().zip(v) {
                *s += *x as f64;
            }
        }
        self.count += added;
        let n = self.count as f64;
        self.centroid = sum.iter().map(|s| (s / n) as f32).collect();
    }

    /// Adds the bytes this bucket holds in memory to `m`: its chunks, quantizer, centroid
    /// and anchor (when it differs from the centroid).
    pub fn add_memory(&self, m: &mut MemoryUse) {
        for c in &self.chunks {
            c.add_memory(m);
        }
        let anchor = match &self.anchor {
            Anchor::AtCentroid => 0,
            Anchor::Left(a) => a.resident_bytes(),
        };
        m.buckets +=
            (self.quant.resident_bytes() + std::mem::size_of_val(&*self.centroid) + anchor) as u64;
    }

    /// Rows stored, stale ones included.
    pub fn rows(&self) -> usize {
        self.chunks.iter().map(|c| c.len()).sum()
    }

    /// Rows that are current.
    pub fn live_rows(&self) -> usize {
        self.rows().saturating_sub(self.tally.dead())
    }

    /// How far the routing centroid has moved from the anchor, in units of the radius
    /// (0 while the radius is unknown).
    pub fn drift(&self) -> f32 {
        if self.radius <= 0.0 {
            return 0.0;
        }
        match &self.anchor {
            Anchor::AtCentroid => 0.0,
            Anchor::Left(a) => {
                let d2: f32 = self
                    .centroid
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c - a.get(i)).powi(2))
                    .sum();
                d2.sqrt() / self.radius
            }
        }
    }

    /// A copy with one more chunk (the running mean moves with it). A bucket that had no
    /// rows yet takes its anchor and radius from the first chunk.
    pub fn with_chunk(&self, chunk: Chunk) -> Bucket {
        let mut b = self.clone();
        let first = b.count == 0;
        let vectors = chunk
            .cold
            .in_memory()
            .expect("a chunk being appended still holds its vectors");
        if !first && !chunk.is_empty() && matches!(b.anchor, Anchor::AtCentroid) {
            // The centroid is about to move: keep where it was.
            b.anchor = Anchor::Left(Arc::new(Levels8::new(&b.centroid, Round::Nearest)));
        }
        b.append_mean(&vectors);
        if first && !chunk.is_empty() {
            b.anchor = Anchor::AtCentroid;
            b.radius = mean_distance(&vectors, &b.centroid);
        }
        b.chunks.push(Arc::new(chunk));
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stale_filter_flags_every_marked_id_and_few_others() {
        let tally = BucketTally::default();
        assert!(!(0..10_000u64).any(|id| tally.maybe_dead(id)));
        // Ids as a bucket sees them: a dense range, with every seventh one replaced.
        let marked: Vec<u64> = (0..700u64).map(|i| 40_000 + 7 * i).collect();
        tally.add_dead(marked.iter().copied().take(100));
        assert_eq!(tally.dead(), 100);
        assert!(marked[..100].iter().all(|&id| tally.maybe_dead(id)));
        let others = (40_000..50_000u64).filter(|id| !marked[..100].contains(id));
        let (flagged, total) = others.fold((0, 0), |(f, t), id| {
            (f + usize::from(tally.maybe_dead(id)), t + 1)
        });
        let rate = flagged as f64 / total as f64;
        assert!(rate < 0.08, "{flagged} of {total} unmarked ids flagged");
        // Saturated by many stale rows, it flags more but never misses one.
        tally.add_dead(marked.iter().copied().skip(100));
        assert_eq!(tally.dead(), 700);
        assert!(marked.iter().all(|&id| tally.maybe_dead(id)));
        // A rebuilt bucket starts with an empty filter.
        assert!(!(0..10_000u64).any(|id| tally.carry_heat(1.0).maybe_dead(id)));
    }
}
