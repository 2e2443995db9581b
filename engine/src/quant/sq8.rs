//! SQ8: each dimension is mapped linearly onto 0..=255 between its 1st and 99th percentile;
//! values outside clip. Distances are estimated with a per-query lookup table (ADC).

use serde::{Deserialize, Serialize};

use crate::columns::Levels16;
use crate::config::AdcKernel;
use crate::distance::Distance;
use crate::kernels;
use crate::quant::Centre;

/// Per-dimension SQ8 parameters. Code rows are padded to `stride` (a multiple of 8) bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sq8 {
    lo: Vec<f32>,
    step: Vec<f32>,
}

/// Lower and upper percentiles used for the range.
const LOW_PCT: f64 = 0.01;
const HIGH_PCT: f64 = 0.99;

impl Sq8 {
    /// Bytes held in memory (a range per dimension).
    pub fn resident_bytes(&self) -> usize {
        (self.lo.len() + self.step.len()) * std::mem::size_of::<f32>()
    }

    /// Fits ranges on `vectors` (row-major, `dim` columns). With no vectors, every range is
    /// [0, 0] (all codes 0), and [`Sq8::clipped_fraction`] will ask for a re-fit.
    pub fn fit(vectors: &[f32], dim: usize) -> Sq8 {
        let n = vectors.len() / dim.max(1);
        let mut lo = vec![0f32; dim];
        let mut step = vec![0f32; dim];
        if n > 0 {
            let lo_rank = (LOW_PCT * (n - 1) as f64).floor() as usize;
            let hi_rank = (HIGH_PCT * (n - 1) as f64).ceil() as usize;
            let mut column = vec![0f32; n];
            for d in 0..dim {
                for (c, row) in column.iter_mut().zip(vectors.chunks_exact(dim)) {
                    *c = row[d];
                }
                let (_, l, _) = column.select_nth_unstable_by(lo_rank, f32::total_cmp);
                let l = *l;
                let (_, h, _) = column.select_nth_unstable_by(hi_rank, f32::total_cmp);
                let h = *h;
                lo[d] = l;
                step[d] = (h - l).max(0.0) / 255.0;
            }
        }
        Sq8 { lo, step }
    }

    /// Starts loading the ranges into cache (a search about to prepare a query for them).
    pub fn prefetch(&self) {
        kernels::prefetch(bytemuck::cast_slice(&self.lo));
        kernels::prefetch(bytemuck::cast_slice(&self.step));
    }

    /// Rebuilds a quantizer from its stored parameters (`lo` and `step` per dimension).
    pub fn from_parts(lo: Vec<f32>, step: Vec<f32>) -> Sq8 {
        Sq8 { lo, step }
    }

    /// The stored parameters: per-dimension lower bound and step.
    pub fn parts(&self) -> (&[f32], &[f32]) {
        (&self.lo, &self.step)
    }

    /// Dimension of the vectors this quantizer encodes.
    pub fn dim(&self) -> usize {
        self.lo.len()
    }

    /// Bytes per code row: the dimension rounded up to a multiple of 8.
    pub fn stride(&self) -> usize {
        self.dim().div_ceil(8) * 8
    }

    /// Appends the code row of `v` (padded with zeros to `stride`) to `out`.
    pub fn encode_into(&self, v: &[f32], out: &mut Vec<u8>) {
        for ((x, lo), step) in v.iter().zip(&self.lo).zip(&self.step) {
            let c = if *step > 0.0 {
                ((x - lo) / step).round().clamp(0.0, 255.0) as u8
            } else {
                0
            };
            out.push(c);
        }
        out.resize(out.len() + self.stride() - self.dim(), 0);
    }

    /// The vector a code row stands for.
    pub fn decode(&self, code: &[u8]) -> Vec<f32> {
        code.iter()
            .zip(self.lo.iter().zip(&self.step))
            .map(|(c, (lo, step))| lo + *c as f32 * step)
            .collect()
    }

    /// The code-only term of the factored L2 distance: `sum_d (step_d * c_d)^2`.
    pub fn code_norm(&self, code: &[u8]) -> f32 {
        code.iter()
            .zip(&self.step)
            .map(|(c, s)| {
                let x = *c as f32 * s;
                x * x
            })
            .sum()
    }

    /// Prepares `query` for scoring this quantizer's code rows by `dist` with `kernel`,
    /// using `bufs` for its tables. With `centre`, the prepared query also knows its
    /// standing against the middle of the quantizer's box (the centre of the bucket's
    /// sketches), which the factored kernel gets from the same pass as its weights.
    pub fn prepare_query<'a>(
        &self,
        query: &[f32],
        dist: Distance,
        kernel: AdcKernel,
        centre: bool,
        bufs: &'a mut QueryBuffers,
    ) -> Sq8Query<'a> {
        let l2 = dist.is_euclidean();
        let QueryBuffers {
            table,
            spare,
            weights: rounded,
        } = bufs;
        let weights = |w: &mut Vec<f32>| {
            w.clear();
            w.resize(self.stride(), 0.0);
            let dim = query.len().min(self.lo.len());
            let (base, c) = kernels::sq8_prepare(&query[..dim], &self.lo, &self.step, l2, w);
            let c = if l2 {
                Centre::L2(c.max(0.0).sqrt())
            } else {
                Centre::Dot(c)
            };
            (base, c)
        };
        match kernel {
            AdcKernel::Factored => {
                let (base, c) = weights(table);
                let scale = kernels::sq8_weights_i16(table, rounded);
                Sq8Query {
                    table,
                    weights: rounded,
                    terms: Sq8Terms {
                        kernel,
                        scale,
                        base,
                        norms: l2,
                        centre: centre.then_some(c),
                        stride: self.stride(),
                    },
                }
            }
            AdcKernel::Lut => {
                // The table form has no centre term of its own: the weights give it.
                let c = centre.then(|| weights(spare).1);
                self.build_lut(query, l2, table);
                Sq8Query {
                    table,
                    weights: rounded,
                    terms: Sq8Terms {
                        kernel,
                        scale: 1.0,
                        base: 0.0,
                        norms: false,
                        centre: c,
                        stride: self.stride(),
                    },
                }
            }
        }
    }

    /// The middle of the quantizer's box, `lo + 127.5 * step`: the centre the bucket's
    /// sketches are built around.
    pub fn middle(&self) -> Vec<f32> {
        self.lo
            .iter()
            .zip(&self.step)
            .map(|(l, s)| l + kernels::SQ8_MID * s)
            .collect()
    }

    /// Fraction of the components of `vectors` that fall outside the fitted ranges by more
    /// than half a step: a high value means the data moved and the quantizer should be re-fit.
    pub fn clipped_fraction(&self, vectors: &[f32]) -> f64 {
        let dim = self.dim();
        if vectors.is_empty() || dim == 0 {
            return 0.0;
        }
        let mut clipped = 0usize;
        for row in vectors.chunks_exact(dim) {
            for ((x, lo), step) in row.iter().zip(&self.lo).zip(&self.step) {
                let hi = lo + 255.0 * step;
                let slack = 0.5 * step;
                if *x < lo - slack || *x > hi + slack {
                    clipped += 1;
                }
            }
        }
        clipped as f64 / vectors.len() as f64
    }

    /// Fills `lut` (`stride * 256` entries) with the per-dimension partial distances between
    /// `query` and each code value: `(q - v)^2` when `l2`, `-q * v` for inner product.
    /// Padding dimensions get zeros.
    fn build_lut(&self, query: &[f32], l2: bool, lut: &mut Vec<f32>) {
        let size = self.stride() * 256;
        if lut.len() != size {
            // Padding tables stay zero; the real ones are overwritten on every call.
            lut.clear();
            lut.resize(size, 0.0);
        }
        kernels::sq8_lut(query, &self.lo, &self.step, l2, lut);
    }
}

/// Tables a prepared query fills, kept across the buckets of one search.
#[derive(Debug, Default)]
pub struct QueryBuffers {
    table: Vec<f32>,
    /// The factored weights of a table-kernel query, made only for their centre term.
    spare: Vec<f32>,
    /// The factored weights rounded to 16 bits, which the scan reads.
    weights: Vec<i16>,
}

/// A query prepared against one quantizer: the per-query distance calculator a scan hands its
/// code rows to. Distances are the collection's internal ones (squared L2, or `-<q, x>`), up
/// to the SQ8 error.
///
/// The factored kernel gives `<w, c>` per row (`w` rounded to 16 bits on one scale, which moves
/// a distance by at most `stride * 255 / 2` units of that scale); the distance is `base + |c|^2 - <w, c>` for L2
/// (`|c|^2` being the row's stored code norm) and `base - <w, c>` for inner product. The table
/// kernel sums per-dimension table entries into the distance itself.
#[derive(Debug)]
pub struct Sq8Query<'a> {
    /// The table (table kernel) or the float weights (factored kernel).
    table: &'a [f32],
    /// The factored weights in 16 bits.
    weights: &'a [i16],
    terms: Sq8Terms,
}

/// What a prepared query holds besides its tables: with the [`QueryBuffers`] it was prepared
/// into, they make the same query again ([`Sq8Query::over`]), so that a scan can score one
/// bucket's rows after it prepared the next bucket's query into other buffers.
#[derive(Debug, Clone, Copy)]
pub struct Sq8Terms {
    kernel: AdcKernel,
    /// The value of one unit of the 16-bit weights.
    scale: f32,
    base: f32,
    /// Whether the rows' code norms take part (factored kernel, L2).
    norms: bool,
    centre: Option<Centre>,
    stride: usize,
}

impl<'a> Sq8Query<'a> {
    /// The query that was prepared into `bufs` with these `terms` (`bufs` untouched since).
    pub fn over(bufs: &'a QueryBuffers, terms: Sq8Terms) -> Sq8Query<'a> {
        Sq8Query {
            table: &bufs.table,
            weights: &bufs.weights,
            terms,
        }
    }

    /// This query's terms besides its tables.
    pub fn terms(&self) -> Sq8Terms {
        self.terms
    }

    /// The query's standing against the sketches' centre, when it was asked for.
    pub fn centre(&self) -> Option<Centre> {
        self.terms.centre
    }

    /// Whether [`Sq8Query::score_row`] reads a row's code norm (so a caller prefetching
    /// the row should prefetch its norm too).
    pub fn reads_norms(&self) -> bool {
        self.terms.norms
    }

    /// Distances of the first `out.len()` code rows of `codes` (`stride` bytes each), whose
    /// code norms are `norms`, into `out`.
    pub fn score_rows(&self, codes: &[u8], norms: &Levels16, out: &mut [f32]) {
        let rows = out.len();
        let codes = &codes[..rows * self.terms.stride];
        match self.terms.kernel {
            AdcKernel::Lut => kernels::adc_scan(self.table, codes, self.terms.stride, out),
            AdcKernel::Factored => {
                kernels::sq8_dot_scan(self.weights, self.terms.scale, codes, self.terms.stride, out);
                let base = self.terms.base;
                if self.terms.norms {
                    let (lo, step) = (norms.lo(), norms.step());
                    for (d, &l) in out.iter_mut().zip(norms.levels()) {
                        *d = base + (lo + step * l as f32) - *d;
                    }
                } else {
                    for d in out.iter_mut() {
                        *d = base - *d;
                    }
                }
            }
        }
    }

    /// Starts loading code row `r` of `codes` (and its norm, when scoring reads it), so that
    /// the loads of scattered rows overlap before [`Sq8Query::score_row`] reads them.
    #[inline]
    pub fn prefetch_row(&self, codes: &[u8], norms: &Levels16, r: usize) {
        kernels::prefetch(&codes[r * self.terms.stride..(r + 1) * self.terms.stride]);
        if self.terms.norms {
            kernels::prefetch(bytemuck::cast_slice(&norms.levels()[r..r + 1]));
        }
    }

    /// Distance of code row `r` of `codes`, whose code norms are `norms`.
    #[inline]
    pub fn score_row(&self, codes: &[u8], norms: &Levels16, r: usize) -> f32 {
        let code = &codes[r * self.terms.stride..(r + 1) * self.terms.stride];
        let mut one = [0f32];
        match self.terms.kernel {
            AdcKernel::Lut => {
                kernels::adc_scan(self.table, code, self.terms.stride, &mut one);
                one[0]
            }
            AdcKernel::Factored => {
                kernels::sq8_dot_scan(self.weights, self.terms.scale, code, self.terms.stride, &mut one);
                let norm = if self.terms.norms { norms.get(r) } else { 0.0 };
                self.terms.base + norm - one[0]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn decode_error_is_bounded_inside_range(
            rows in prop::collection::vec(prop::collection::vec(-10f32..10.0, 12), 200..400),
        ) {
            let flat: Vec<f32> = rows.concat();
            let q = Sq8::fit(&flat, 12);
            let mut code = Vec::new();
            for row in &rows {
                code.clear();
                q.encode_into(row, &mut code);
                prop_assert_eq!(code.len(), q.stride());
                let back = q.decode(&code[..12]);
                for d in 0..12 {
                    let lo = q.lo[d];
                    let hi = lo + 255.0 * q.step[d];
                    let clamped = row[d].clamp(lo, hi);
                    prop_assert!((back[d] - clamped).abs() <= 0.5 * q.step[d] + 1e-4);
                }
            }
        }

        #[test]
        fn adc_distance_equals_distance_to_decoded_vector(
            rows in prop::collection::vec(prop::collection::vec(-5f32..5.0, 20), 50..120),
            query in prop::collection::vec(-5f32..5.0, 20),
        ) {
            let flat: Vec<f32> = rows.concat();
            let q = Sq8::fit(&flat, 20);
            let mut codes = Vec::new();
            for row in &rows {
                q.encode_into(row, &mut codes);
            }
            let norms: Vec<f32> = codes.chunks_exact(q.stride()).map(|c| q.code_norm(c)).collect();
            let norms = Levels16::new(&norms, crate::columns::Round::Nearest);
            for dist in [Distance::L2, Distance::NegDot] {
                let mut bufs = QueryBuffers::default();
                let mut by_kernel = Vec::new();
                for kernel in [AdcKernel::Lut, AdcKernel::Factored] {
                    let pq = q.prepare_query(&query, dist, kernel, true, &mut bufs);
                    let mut out = vec![0f32; rows.len()];
                    pq.score_rows(&codes, &norms, &mut out);
                    for (i, got) in out.iter().enumerate() {
                        prop_assert_eq!(pq.score_row(&codes, &norms, i).to_bits(), got.to_bits());
                        let dec = q.decode(&codes[i * q.stride()..i * q.stride() + 20]);
                        let want: f64 = match dist {
                            Distance::NegDot => -dec.iter().zip(&query).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>(),
                            Distance::L2 => dec.iter().zip(&query).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum::<f64>(),
                        };
                        // The factored form also carries the 16-bit rounding of the code norm.
                        let slack = match kernel {
                            AdcKernel::Lut => 1e-3 * want.abs().max(1.0),
                            AdcKernel::Factored => 1e-3 * want.abs().max(10.0) + norms.step() as f64,
                        };
                        prop_assert!((*got as f64 - want).abs() <= slack, "{kernel:?} {got} vs {want}");
                    }
                    // The centre term equals the one computed directly, whichever kernel.
                    let (got, want) = match (pq.centre().unwrap(), Centre::of(&query, &q.middle(), dist.is_euclidean())) {
                        (Centre::L2(a), Centre::L2(b)) | (Centre::Dot(a), Centre::Dot(b)) => (a, b),
                        other => panic!("{other:?}"),
                    };
                    prop_assert!((got - want).abs() <= 1e-3 * want.abs().max(1.0), "{got} vs {want}");
                    by_kernel.push(out);
                }
            }
        }
    }

    #[test]
    fn drifted_data_is_reported_as_clipped() {
        let base: Vec<f32> = (0..1000).map(|i| (i % 100) as f32 / 100.0).collect();
        let q = Sq8::fit(&base, 10);
        assert!(q.clipped_fraction(&base) < 0.05);
        let moved: Vec<f32> = base.iter().map(|x| x + 5.0).collect();
        assert!(q.clipped_fraction(&moved) > 0.9);
    }
}
