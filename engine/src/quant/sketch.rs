//! Binary sketches: a 1-bit code per row (after the RaBitQ construction) that estimates a
//! row's SQ8 distance with an error bound, so a scan computes the SQ8 distance only for rows
//! that can still enter the candidate pool.
//!
//! A chunk's sketch is built from its SQ8 decodes `v` (so the bound is on exactly the
//! distance the SQ8 scan would compute), relative to a centre `c` (the bucket's quantizer-box
//! middle, shared by its chunks): each residual
//! `o = (v - c) / |v - c|` is rotated by a fixed random orthogonal map `R` and stored as the
//! signs of its `P` coordinates (`P` = the dimension rounded up to a multiple of 64). With
//! `x = sign(R o) / sqrt(P)`, `f = <x, R o>` and a unit query residual `u`,
//! `<o, u> ≈ <x, R u> / f`, with an error below `eps * sqrt((1 - f²) / (f² (P - 1)))` with
//! high probability for `eps` near 2 (Gao & Long, SIGMOD'24). Since `R` is linear,
//! `<x, R (q - c)> = <x, R q> - <x, R c>`, and the second term is a per-row constant stored
//! with the code: the rotated query `R q` is quantized to 4 bits per coordinate once per
//! search, whatever the centres of the buckets it scans (per centre only `|q - c|` is
//! computed), and `<x, R q>` is a sum of table lookups: one sixteen-entry table per group of
//! four code bits, looked up for 32 rows at a time by a byte shuffle (the FastScan layout).
//!
//! The rotation is four rounds of random sign flips followed by a normalized
//! Walsh–Hadamard transform: O(P log P) per vector, deterministic (a fixed seed, no stored
//! matrix), so sketches are derived data, rebuilt whenever a chunk is built or loaded.

use std::sync::{Arc, LazyLock};

use crate::columns::{Levels16, Round};
use crate::kernels;
use crate::per_dim::{self, PerDim};

/// Multiple of the estimator's error unit below which it errs rarely: the estimate less this
/// many units is a lower bound on all but about 2% of rows (the unit tests hold it to that).
pub const BOUND_EPS: f32 = 1.9;

/// Multiple of the error unit a scan subtracts from the estimate before it compares a row
/// with the candidate pool's limit. A row ruled out wrongly matters only if it would have
/// reached the final top k, while the pool holds `k * rerank` rows: an estimate that is
/// optimistic by half an error unit already keeps the true neighbours. Measured on the PyPI
/// set (`drift bench`, nprobe 56, re-rank 4, one index): 1.5 let 605 rows per query through to
/// their SQ8 distance, 1.0 470, 0.7 404, 0.4 348, 0.0 286, every one at the same recall
/// (0.9540).
pub const SCAN_EPS: f32 = 0.5;

/// Rows below which a chunk carries no sketch (scanning its SQ8 codes is as cheap).
pub const MIN_ROWS: usize = 16;

/// Dimensions below which sketches are not built. Measured with the earlier popcount scan
/// (`lab/tests/bench.rs` at 96 dimensions, one bucket per query): an SQ8 distance was cheap
/// enough there that the sketch pass and the pool ordering cost more than they saved (69
/// against 55 µs per query). With the nibble-table scan, on the 384-d PyPI set
/// (`drift bench --sq8-only`), the prefilter gives 2.6x the queries/s at target 0.95.
/// Re-measured with the nibble scan on the 200k x 128 mixture (sketches from 128 dimensions,
/// `drift bench --sq8-only`, one index): the bound ruled out only a fifth of the rows, and
/// target 0.95 ran at 7.8k searches/s with the prefilter against 10.2k without.
pub const MIN_DIM: usize = 256;

/// Rounds of sign flip + Hadamard transform.
const ROUNDS: usize = 4;

/// A fixed pseudo-random orthogonal map from `dim` to `padded` (a multiple of 64) coordinates.
#[derive(Debug)]
pub struct Rotation {
    dim: usize,
    padded: usize,
    signs: Vec<[f32; ROUNDS]>,
}

impl Rotation {
    fn new(dim: usize) -> Rotation {
        let padded = dim.div_ceil(64).max(1) * 64;
        let mut state = 0x5eed_d21f_7b1a_0001u64 ^ padded as u64;
        let signs = (0..padded)
            .map(|_| {
                let mut s = [1f32; ROUNDS];
                for x in &mut s {
                    if splitmix(&mut state) & 1 == 1 {
                        *x = -1.0;
                    }
                }
                s
            })
            .collect();
        Rotation { dim, padded, signs }
    }

    /// The cached rotation for `dim`.
    pub fn for_dim(dim: usize) -> Arc<Rotation> {
        static CACHE: PerDim<Rotation> = LazyLock::new(Default::default);
        per_dim::get_or_make(&CACHE, dim, Rotation::new)
    }

    /// Coordinates after rotation.
    pub fn padded(&self) -> usize {
        self.padded
    }

    /// `out = R x` (`out` is resized to [`Rotation::padded`]).
    pub fn apply(&self, x: &[f32], out: &mut Vec<f32>) {
        debug_assert_eq!(x.len(), self.dim);
        out.clear();
        out.extend_from_slice(x);
        out.resize(self.padded, 0.0);
        // A power of two is transformed whole; otherwise two overlapping power-of-two blocks
        // (the first and the last `h` coordinates) are, one after the other: each step is
        // orthogonal, and with the sign flips between rounds every output mixes every input.
        let h = 1usize << (usize::BITS - 1 - self.padded.leading_zeros());
        let scale = 1.0 / (h as f32).sqrt();
        let tail = self.padded - h;
        let blocks: &[usize] = if tail == 0 { &[0] } else { &[0, tail] };
        for round in 0..ROUNDS {
            for (v, s) in out.iter_mut().zip(&self.signs) {
                *v *= s[round];
            }
            for &at in blocks {
                let block = &mut out[at..at + h];
                hadamard(block);
                for v in block.iter_mut() {
                    *v *= scale;
                }
            }
        }
    }
}

/// In-place unnormalized fast Walsh–Hadamard transform (`v.len()` a power of two).
fn hadamard(v: &mut [f32]) {
    let n = v.len();
    let mut h = 1;
    while h < n {
        for block in v.chunks_exact_mut(2 * h) {
            let (a, b) = block.split_at_mut(h);
            for (x, y) in a.iter_mut().zip(b.iter_mut()) {
                let (s, d) = (*x + *y, *x - *y);
                *x = s;
                *y = d;
            }
        }
        h *= 2;
    }
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Per-row factors of a sketch, one column each (so the bound loop vectorizes). With
/// `X = sqrt(P) <x, R q>` estimated from the nibble scan, a row's L2 bound is
/// `near + |q - c|² - g (X + slack) - |q - c| e` and its inner-product bound
/// `-<q, c> - (g (X + slack) + |q| e) / 2`, where `X` itself is `2 lo ones + 2 delta dot - sum`.
/// `near` is rounded down and `e` up, so the rounding never tightens the bound; `g` and
/// `g_ones` multiply terms of either sign and are rounded to nearest.
#[derive(Debug, Default)]
struct RowFactors {
    /// `|v - c|² + g kc`, where `kc = sqrt(P) <x, R c>` is the centre's share of the code's
    /// product with a rotated query (so one preparation of `R q` serves every centre).
    near: Levels16,
    /// `g * ones`: the scaled count of set code bits.
    g_ones: Levels16,
    /// `2 |v - c| / (f sqrt(P))`: turns `sqrt(P) <x, u>` into `2 |v - c| <o, u>`.
    g: Levels16,
    /// `2 |v - c| * sqrt((1 - f²) / (f² (P - 1)))`: one unit of that product's error.
    e: Levels16,
}

/// Where a query stands against a sketch's centre `c`: computed by the caller once per centre
/// (the SQ8 quantizer derives it in the same pass as its query weights, see
/// [`crate::quant::Sq8::prepare`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Centre {
    /// `|q - c|` (L2 and cosine).
    L2(f32),
    /// `<q, c>` (inner product).
    Dot(f32),
}

impl Centre {
    /// The standing of `query` against `centre`, computed directly.
    pub fn of(query: &[f32], centre: &[f32], l2: bool) -> Centre {
        if l2 {
            Centre::L2(kernels::l2sq(query, centre).sqrt())
        } else {
            Centre::Dot(kernels::dot(query, centre))
        }
    }
}

/// One chunk's binary sketch.
#[derive(Debug)]
pub struct Sketch {
    rotation: Arc<Rotation>,
    /// Nibble groups per code (`P / 4`).
    groups: usize,
    /// Codes in the blocked layout of [`kernels::nibble_pack`].
    packed: Vec<u8>,
    rows: RowFactors,
}

impl Sketch {
    /// Starts loading the first `bytes` bytes of the codes and the first rows' factors (a
    /// scan about to reach this sketch).
    pub fn prefetch(&self, bytes: usize) {
        kernels::prefetch(&self.packed[..bytes.min(self.packed.len())]);
        let r = &self.rows;
        for column in [&r.near, &r.g_ones, &r.g, &r.e] {
            let levels = column.levels();
            kernels::prefetch(bytemuck::cast_slice(&levels[..levels.len().min(32)]));
        }
    }

    /// Whether `rows` rows of dimension `dim` get a sketch ([`MIN_DIM`], [`MIN_ROWS`]).
    pub fn pays(dim: usize, rows: usize) -> bool {
        dim >= MIN_DIM && rows >= MIN_ROWS
    }

    /// Sketches `vectors` (row-major, `dim` columns) around `center`; `None` when the chunk is
    /// too small or the dimension too low for a sketch to pay. A search passes the query's
    /// [`Centre`] for this same centre to [`Sketch::lower_bounds`].
    pub fn build(vectors: &[f32], dim: usize, center: &[f32]) -> Option<Sketch> {
        let n = vectors.len() / dim.max(1);
        if !Sketch::pays(dim, n) {
            return None;
        }
        let rotation = Rotation::for_dim(dim);
        let p = rotation.padded();
        let words = p / 64;
        let mut center_rot = Vec::new();
        rotation.apply(center, &mut center_rot);
        let mut bits = vec![0u64; n * words];
        let (mut near, mut g_ones, mut gs, mut es) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let mut resid = vec![0f32; dim];
        let mut rot = Vec::with_capacity(p);
        let sqrt_p = (p as f32).sqrt();
        for (i, v) in vectors.chunks_exact(dim).enumerate() {
            for ((r, x), c) in resid.iter_mut().zip(v).zip(center) {
                *r = x - c;
            }
            rotation.apply(&resid, &mut rot);
            let norm = rot.iter().map(|x| x * x).sum::<f32>().sqrt();
            let code = &mut bits[i * words..(i + 1) * words];
            let mut abs = 0f32;
            let mut ones = 0u32;
            let mut kc = 0f32;
            for (j, x) in rot.iter().enumerate() {
                abs += x.abs();
                if *x > 0.0 {
                    code[j / 64] |= 1 << (j % 64);
                    ones += 1;
                    kc += center_rot[j];
                } else {
                    kc -= center_rot[j];
                }
            }
            // f = <sign(Ro) / sqrt(P), Ro / |Ro|>; a zero residual estimates exactly.
            let f = if norm > 0.0 {
                (abs / (norm * sqrt_p)).clamp(1e-3, 1.0)
            } else {
                1.0
            };
            let spread = ((1.0 - f * f).max(0.0) / (f * f * (p as f32 - 1.0))).sqrt();
            let g = 2.0 * norm / (f * sqrt_p);
            near.push(norm * norm + g * kc);
            g_ones.push(g * ones as f32);
            gs.push(g);
            es.push(2.0 * norm * spread);
        }
        let rows = RowFactors {
            near: Levels16::new(&near, Round::Down),
            g_ones: Levels16::new(&g_ones, Round::Nearest),
            g: Levels16::new(&gs, Round::Nearest),
            e: Levels16::new(&es, Round::Up),
        };
        let mut packed = Vec::new();
        kernels::nibble_pack(&bits, words, &mut packed);
        packed.shrink_to_fit();
        Some(Sketch {
            rotation,
            groups: p / 4,
            packed,
            rows,
        })
    }

    /// Rows sketched.
    pub fn len(&self) -> usize {
        self.rows.g.len()
    }

    /// True when no rows are sketched.
    pub fn is_empty(&self) -> bool {
        self.rows.g.len() == 0
    }

    /// Bytes held in memory.
    pub fn resident_bytes(&self) -> usize {
        self.packed.len() + self.len() * 4 * std::mem::size_of::<u16>()
    }

    /// Estimates of the first `out.len()` rows' SQ8 distances to the query `prepared`, less
    /// `eps` units of their error (lower bounds with high probability at [`BOUND_EPS`]): of
    /// the squared L2 distance when `centre` is [`Centre::L2`], of the negated inner
    /// product when it is [`Centre::Dot`]. `centre` is the query's standing against the centre
    /// this sketch was built around.
    pub fn lower_bounds(
        &self,
        prepared: &mut SketchQuery,
        centre: Centre,
        eps: f32,
        out: &mut [f32],
    ) {
        let n = out.len().min(self.len());
        prepared.ready(&self.rotation);
        let q = prepared.global;
        let block = kernels::NIBBLE_BLOCK;
        let padded = n.div_ceil(block) * block;
        let mut dots = std::mem::take(&mut prepared.dots);
        dots.clear();
        dots.resize(padded, 0);
        kernels::nibble_scan(
            &prepared.tables,
            &self.packed[..padded * self.groups / 2],
            self.groups,
            &mut dots,
        );
        // X = sqrt(P) <x, R q> = 2 <b, R q> - sum(R q), with <b, R q> ≈ lo * ones + delta *
        // dot; against the centre, sqrt(P) <x, R (q - c)> = X - kc (folded into `near`). The
        // bound subtracts the estimator's error (`|q - c| e`) and the query's rounding
        // (`g * slack`).
        let r = &self.rows;
        let cols = kernels::BoundColumns {
            near: None,
            g_ones: r.g_ones.levels(),
            g: r.g.levels(),
            e: r.e.levels(),
            dots: &dots,
        };
        let (lo2, d2, shift) = (2.0 * q.lo, 2.0 * q.delta, q.slack - q.sum);
        // The bound in factor values: base + near - ones g_ones - g (dot X + shift) - error e.
        let (cols, base, near, ones, dot, shift, error) = match centre {
            Centre::L2(rq) => (
                kernels::BoundColumns {
                    near: Some(r.near.levels()),
                    ..cols
                },
                rq * rq,
                true,
                lo2,
                d2,
                shift,
                eps * rq,
            ),
            // Half of the L2 form's product: -<q, c> - (g (X + slack) + |q| e) / 2.
            Centre::Dot(qc) => (
                cols,
                -qc,
                false,
                0.5 * lo2,
                0.5 * d2,
                0.5 * shift,
                0.5 * eps * q.norm,
            ),
        };
        // Each column's value is `lo + step * level`: fold the offsets into the base and the
        // steps into the factors.
        let near_lo = if near { r.near.lo() } else { 0.0 };
        let terms = kernels::BoundTerms {
            base: base + near_lo - ones * r.g_ones.lo() - error * r.e.lo(),
            near: r.near.step(),
            ones: ones * r.g_ones.step(),
            dot,
            shift,
            g_base: r.g.lo(),
            g_scale: r.g.step(),
            error: error * r.e.step(),
        };
        kernels::sketch_bounds(&cols, &terms, &mut out[..n]);
        prepared.dots = dots;
    }
}

/// The rotated query's 4-bit quantization, shared by every centre.
#[derive(Debug, Clone, Copy, Default)]
struct Global {
    /// `|q|` (the inner-product metric's query norm, the same against every centre).
    norm: f32,
    /// Coordinate value = `lo + delta * level`.
    lo: f32,
    delta: f32,
    /// Sum of the rotated query's coordinates.
    sum: f32,
    /// Allowance for the rounding, in units of `sqrt(P) <x, R q>`.
    slack: f32,
}

/// A query prepared for sketch scans: rotated and quantized once (on first use), whatever
/// the centres of the sketches it meets (the caller supplies each centre's [`Centre`]).
#[derive(Debug, Default)]
pub struct SketchQuery {
    query: Vec<f32>,
    rotated: Vec<f32>,
    padded: usize,
    levels: Vec<u8>,
    tables: Vec<u8>,
    dots: Vec<u32>,
    global: Global,
}

impl SketchQuery {
    /// Readies `query` (its rotation is computed on first use).
    pub fn reset(&mut self, query: &[f32]) {
        self.query.clear();
        self.query.extend_from_slice(query);
        self.rotated.clear();
        self.padded = 0;
    }

    /// Rotates and quantizes the query for `rotation` unless that is done already.
    fn ready(&mut self, rotation: &Rotation) {
        if self.padded != rotation.padded() {
            rotation.apply(&self.query, &mut self.rotated);
            self.padded = rotation.padded();
            self.quantize();
        }
    }

    /// Quantizes the rotated query to 4 bits per coordinate and builds its nibble tables.
    fn quantize(&mut self) {
        let p = self.padded;
        let (lo, hi, sum) = stats(&self.rotated);
        let norm = kernels::dot(&self.rotated, &self.rotated).sqrt();
        if hi <= lo {
            // A constant vector: every level 0 and `lo` exact.
            self.tables.clear();
            self.tables.resize(4 * p, 0);
            self.global = Global {
                norm,
                lo: if lo.is_finite() { lo } else { 0.0 },
                delta: 0.0,
                sum,
                slack: 0.0,
            };
            return;
        }
        let delta = (hi - lo) / 15.0;
        let inv = 1.0 / delta;
        self.levels.clear();
        self.levels
            .extend(self.rotated.iter().map(|x| ((x - lo) * inv + 0.5) as u8));
        kernels::nibble_tables(&self.levels, &mut self.tables);
        // Rounding errors are at most delta / 2 per coordinate and roughly independent:
        // sum_i s_i err_i has a standard deviation of delta sqrt(P / 12); allow four.
        let slack = 4.0 * delta / 12f32.sqrt() * (p as f32).sqrt();
        self.global = Global {
            norm,
            lo,
            delta,
            sum,
            slack,
        };
    }
}

/// Minimum, maximum and sum of `x` (once per search: no need to vectorize).
fn stats(x: &[f32]) -> (f32, f32, f32) {
    x.iter().fold(
        (f32::INFINITY, f32::NEG_INFINITY, 0.0),
        |(lo, hi, sum), &v| (lo.min(v), hi.max(v), sum + v),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn rotation_is_orthogonal() {
        let r = Rotation::for_dim(100);
        assert_eq!(r.padded(), 128);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let a: Vec<f32> = (0..100).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let b: Vec<f32> = (0..100).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let (mut ra, mut rb) = (Vec::new(), Vec::new());
        r.apply(&a, &mut ra);
        r.apply(&b, &mut rb);
        assert_eq!(ra.len(), 128);
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
        assert!((dot(&a, &b) - dot(&ra, &rb)).abs() < 1e-4);
        assert!((dot(&a, &a) - dot(&ra, &ra)).abs() < 1e-4);
        // Not a power of two: two overlapping blocks, still orthogonal, and each input spread
        // over the outputs (no coordinate keeps a large share of a unit vector).
        let r = Rotation::for_dim(384);
        assert_eq!(r.padded(), 384);
        for i in 0..384 {
            let mut e = vec![0f32; 384];
            e[i] = 1.0;
            let mut re = Vec::new();
            r.apply(&e, &mut re);
            assert!((dot(&re, &re) - 1.0).abs() < 1e-4);
            let largest = re.iter().fold(0f32, |m, x| m.max(x.abs()));
            let reached = re.iter().filter(|x| x.abs() > 1e-6).count();
            assert!(
                largest < 0.3 && reached > 300,
                "input {i}: {largest} {reached}"
            );
            if i > 0 {
                let mut prev = vec![0f32; 384];
                prev[i - 1] = 1.0;
                let mut rp = Vec::new();
                r.apply(&prev, &mut rp);
                assert!(
                    dot(&re, &rp).abs() < 1e-4,
                    "columns {i} and {} not orthogonal",
                    i - 1
                );
            }
        }
    }

    fn mean(vectors: &[f32], dim: usize) -> Vec<f32> {
        let n = (vectors.len() / dim) as f32;
        let mut m = vec![0f32; dim];
        for v in vectors.chunks_exact(dim) {
            for (a, x) in m.iter_mut().zip(v) {
                *a += x / n;
            }
        }
        m
    }

    fn check_bounds(l2: bool, dim: usize, seed: u64) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let n = 400;
        let shift: Vec<f32> = (0..dim).map(|_| rng.gen_range(-2.0..2.0)).collect();
        let vectors: Vec<f32> = (0..n * dim)
            .map(|i| shift[i % dim] + rng.gen_range(-1.0f32..1.0))
            .collect();
        let centre = mean(&vectors, dim);
        let sketch = Sketch::build(&vectors, dim, &centre).unwrap();
        let mut prepared = SketchQuery::default();
        let mut violations = 0;
        let mut tight = 0;
        for _ in 0..20 {
            let q: Vec<f32> = (0..dim)
                .map(|d| shift[d] + rng.gen_range(-1.5f32..1.5))
                .collect();
            prepared.reset(&q);
            let mut lower = vec![0f32; n];
            sketch.lower_bounds(
                &mut prepared,
                Centre::of(&q, &centre, l2),
                BOUND_EPS,
                &mut lower,
            );
            for (i, v) in vectors.chunks_exact(dim).enumerate() {
                let exact = if l2 {
                    kernels::scalar::l2sq(&q, v)
                } else {
                    -kernels::scalar::dot(&q, v)
                };
                if lower[i] > exact + 1e-3 * exact.abs().max(1.0) {
                    violations += 1;
                }
                // The bound is useful: within a quarter of the distance spread.
                if (exact - lower[i]).abs() < 0.25 * exact.abs().max(1.0) {
                    tight += 1;
                }
            }
        }
        let total = 20 * n;
        assert!(
            violations * 50 <= total,
            "l2={l2} dim={dim}: {violations} of {total} bounds above the distance"
        );
        assert!(
            tight * 2 >= total,
            "l2={l2} dim={dim}: only {tight} of {total} bounds are useful"
        );
    }

    #[test]
    fn lower_bounds_hold_for_l2_and_inner_product() {
        for (dim, seed) in [(256, 1), (300, 2), (384, 3), (512, 4)] {
            check_bounds(true, dim, seed);
            check_bounds(false, dim, seed + 10);
        }
    }

    #[test]
    fn one_query_preparation_serves_sketches_around_different_centres() {
        let dim = 256;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut rows =
            |n: usize| -> Vec<f32> { (0..n * dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect() };
        let (a, b) = (rows(50), rows(70));
        let (ca, cb) = (vec![0.1f32; dim], mean(&b, dim));
        let sa = Sketch::build(&a, dim, &ca).unwrap();
        let sb = Sketch::build(&b, dim, &cb).unwrap();
        let q: Vec<f32> = (0..dim).map(|d| (d as f32 * 0.01).sin()).collect();
        let bounds = |s: &Sketch, c: &[f32], prepared: &mut SketchQuery, l2: bool| {
            let mut out = vec![0f32; s.len()];
            s.lower_bounds(prepared, Centre::of(&q, c, l2), SCAN_EPS, &mut out);
            out
        };
        for l2 in [true, false] {
            let mut fresh = SketchQuery::default();
            fresh.reset(&q);
            let expect = bounds(&sb, &cb, &mut fresh, l2);
            let mut shared = SketchQuery::default();
            shared.reset(&q);
            bounds(&sa, &ca, &mut shared, l2);
            assert_eq!(bounds(&sb, &cb, &mut shared, l2), expect);
        }
    }

    #[test]
    fn small_chunks_and_low_dimensions_carry_no_sketch() {
        assert!(Sketch::build(&vec![0.5; 8 * 384], 384, &[0.5; 384]).is_none());
        assert!(Sketch::build(&vec![0.5; 100 * 128], 128, &[0.5; 128]).is_none());
        // Identical rows: zero residuals estimate exactly.
        let s = Sketch::build(&vec![0.5; 100 * 256], 256, &[0.5; 256]).unwrap();
        let mut q = SketchQuery::default();
        q.reset(&[0.5; 256]);
        let mut out = vec![1f32; 100];
        s.lower_bounds(&mut q, Centre::L2(0.0), SCAN_EPS, &mut out);
        assert!(out.iter().all(|d| d.abs() < 1e-4), "{:?}", &out[..4]);
    }
}
