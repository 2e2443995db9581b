//! SQ8: each dimension is mapped linearly onto 0..=255 between its 1st and 99th percentile;
//! values outside clip. Distances are estimated with a per-query lookup table (ADC).

use serde::{Deserialize, Serialize};

use crate::config::Metric;
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

    /// Factored ADC: fills `w` (`stride` entries) and returns `base` such that the SQ8
    /// distance of a code row `c` is `base + code_norm(c) - <w, c>` for L2/cosine and
    /// `base - <w, c>` for inner product. Equal to summing the [`Sq8::build_lut`] table
    /// entries, without building 256 entries per dimension.
    pub fn query_weights(&self, query: &[f32], metric: Metric, w: &mut Vec<f32>) -> f32 {
        self.prepare(query, metric, w).0
    }

    /// [`Sq8::query_weights`] plus, from the same pass over the ranges, the query's standing
    /// against the middle of the quantizer's box (the centre of the bucket's sketches).
    pub fn prepare(&self, query: &[f32], metric: Metric, w: &mut Vec<f32>) -> (f32, Centre) {
        w.clear();
        w.resize(self.stride(), 0.0);
        let dim = query.len().min(self.lo.len());
        let l2 = metric.uses_l2_internally();
        let (base, c) = kernels::sq8_prepare(&query[..dim], &self.lo, &self.step, l2, w);
        let centre = if l2 {
            Centre::L2(c.max(0.0).sqrt())
        } else {
            Centre::Dot(c)
        };
        (base, centre)
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
    /// `query` and each code value: `(q - v)^2` for L2/cosine, `-q * v` for inner product.
    /// Padding dimensions get zeros.
    pub fn build_lut(&self, query: &[f32], metric: Metric, lut: &mut Vec<f32>) {
        let size = self.stride() * 256;
        if lut.len() != size {
            // Padding tables stay zero; the real ones are overwritten on every call.
            lut.clear();
            lut.resize(size, 0.0);
        }
        kernels::sq8_lut(
            query,
            &self.lo,
            &self.step,
            metric.uses_l2_internally(),
            lut,
        );
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
            for metric in [Metric::L2, Metric::InnerProduct] {
                let mut lut = Vec::new();
                q.build_lut(&query, metric, &mut lut);
                let mut out = vec![0f32; rows.len()];
                kernels::adc_scan(&lut, &codes, q.stride(), &mut out);
                let mut w = Vec::new();
                let base = q.query_weights(&query, metric, &mut w);
                let mut dots = vec![0f32; rows.len()];
                kernels::sq8_dot_scan(&w, &codes, q.stride(), &mut dots);
                for (i, got) in out.iter().enumerate() {
                    let code = &codes[i * q.stride()..(i + 1) * q.stride()];
                    let factored = match metric {
                        Metric::InnerProduct => base - dots[i],
                        _ => base + q.code_norm(code) - dots[i],
                    };
                    let dec = q.decode(&codes[i * q.stride()..i * q.stride() + 20]);
                    let want: f64 = match metric {
                        Metric::InnerProduct => -dec.iter().zip(&query).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>(),
                        _ => dec.iter().zip(&query).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum::<f64>(),
                    };
                    prop_assert!((*got as f64 - want).abs() <= 1e-3 * want.abs().max(1.0));
                    prop_assert!((factored as f64 - want).abs() <= 1e-3 * want.abs().max(10.0),
                        "factored {factored} vs {want}");
                }
                // The centre term from the same pass equals the one computed directly.
                let (b, centre) = q.prepare(&query, metric, &mut w);
                prop_assert_eq!(b, base);
                let l2 = metric != Metric::InnerProduct;
                let (got, want) = match (centre, Centre::of(&query, &q.middle(), l2)) {
                    (Centre::L2(a), Centre::L2(b)) | (Centre::Dot(a), Centre::Dot(b)) => (a, b),
                    other => panic!("{other:?}"),
                };
                prop_assert!((got - want).abs() <= 1e-3 * want.abs().max(1.0), "{got} vs {want}");
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
