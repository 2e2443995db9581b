//! Distance and ADC kernels: the only place with SIMD and `unsafe`.
//!
//! CPU features are detected once ([`cpu`]); each public function dispatches to the best
//! kernel available (`avx2.rs`, and `avx512.rs` for the SQ8 scan), with a portable scalar
//! version beside it (`scalar.rs`) that every other architecture uses and that the property
//! tests compare against an f64 reference.

mod avx2;
mod avx512;
pub mod scalar;

use std::sync::LazyLock;

/// Which kernel family this process uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KernelKind {
    /// Portable Rust, auto-vectorized by the compiler where it can.
    Scalar,
    /// x86-64 AVX2 + FMA + POPCNT.
    Avx2,
    /// AVX2 as above plus AVX-512 F, BW, VL and VNNI: the AVX2 kernels, and AVX-512 ones
    /// where they measured faster (the SQ8 scan).
    Avx512,
}

/// The family a call asking for `kind` gets on this CPU: `kind`, or the best below it that
/// the CPU has.
#[inline]
fn usable(kind: KernelKind) -> KernelKind {
    kind.min(cpu())
}

static KIND: LazyLock<KernelKind> = LazyLock::new(|| {
    if std::env::var_os("DRIFT_FORCE_SCALAR").is_some() {
        return KernelKind::Scalar;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("popcnt")
        {
            let avx512 = std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512vnni");
            if avx512 && std::env::var_os("DRIFT_NO_AVX512").is_none() {
                return KernelKind::Avx512;
            }
            return KernelKind::Avx2;
        }
    }
    KernelKind::Scalar
});

/// The kernel family chosen at startup (set `DRIFT_FORCE_SCALAR=1` to force the fallback,
/// `DRIFT_NO_AVX512=1` to stay on AVX2).
pub fn cpu() -> KernelKind {
    *KIND
}

/// Squared Euclidean distance. Panics in debug builds if lengths differ.
#[inline]
pub fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    match cpu() {
        KernelKind::Avx2 | KernelKind::Avx512 => avx2::l2sq(a, b),
        KernelKind::Scalar => scalar::l2sq(a, b),
    }
}

/// Inner product.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    match cpu() {
        KernelKind::Avx2 | KernelKind::Avx512 => avx2::dot(a, b),
        KernelKind::Scalar => scalar::dot(a, b),
    }
}

/// Squared L2 distances from `query` to each of `rows` (each `query.len()` long, anywhere in
/// memory) into `out`, one per row: the centroid scan of routing. Panics if the sizes disagree.
#[inline]
pub fn l2sq_rows<R: AsRef<[f32]>>(query: &[f32], rows: &[R], out: &mut [f32]) {
    rows_with(cpu(), query, rows, true, out)
}

/// Inner products of `query` with each of `rows` into `out` (see [`l2sq_rows`]).
#[inline]
pub fn dot_rows<R: AsRef<[f32]>>(query: &[f32], rows: &[R], out: &mut [f32]) {
    rows_with(cpu(), query, rows, false, out)
}

/// [`l2sq_rows`] (`l2`) or [`dot_rows`] with an explicit kernel (tests compare them).
pub fn rows_with<R: AsRef<[f32]>>(
    kind: KernelKind,
    query: &[f32],
    rows: &[R],
    l2: bool,
    out: &mut [f32],
) {
    assert!(
        !query.is_empty()
            && rows.len() == out.len()
            && rows.iter().all(|r| r.as_ref().len() == query.len()),
        "rows kernel: {} rows for {} outputs, or a row's length is not {}",
        rows.len(),
        out.len(),
        query.len()
    );
    match kind {
        k if usable(k) >= KernelKind::Avx2 => avx2::rows(query, rows, l2, out),
        _ => scalar::rows(query, rows, l2, out),
    }
}

/// Builds an SQ8 lookup table: `lut[d * 256 + c]` is `(q_d - lo_d - c * step_d)^2` when
/// `l2`, else `-q_d * (lo_d + c * step_d)`. Entries past `query.len() * 256` are untouched.
#[inline]
pub fn sq8_lut(query: &[f32], lo: &[f32], step: &[f32], l2: bool, lut: &mut [f32]) {
    match cpu() {
        KernelKind::Avx2 | KernelKind::Avx512 => avx2::sq8_lut(query, lo, step, l2, lut),
        KernelKind::Scalar => scalar::sq8_lut(query, lo, step, l2, lut),
    }
}

/// The code value in the middle of an SQ8 range: the box middle is `lo + SQ8_MID * step`.
pub const SQ8_MID: f32 = 127.5;

/// One SQ8 quantizer's per-query preparation, in one pass over its ranges: fills `w[..dim]`
/// with the factored weights (`2 (q - lo) step` when `l2`, else `q step`) and returns
/// `(base, centre)` with `base = sum (q - lo)²` (else `-sum q lo`) and `centre` the query's
/// squared distance to the box middle (else its inner product with it). Panics if `lo`,
/// `step` or `w` are shorter than `query`.
#[inline]
pub fn sq8_prepare(query: &[f32], lo: &[f32], step: &[f32], l2: bool, w: &mut [f32]) -> (f32, f32) {
    sq8_prepare_with(cpu(), query, lo, step, l2, w)
}

/// [`sq8_prepare`] with an explicit kernel.
pub fn sq8_prepare_with(
    kind: KernelKind,
    query: &[f32],
    lo: &[f32],
    step: &[f32],
    l2: bool,
    w: &mut [f32],
) -> (f32, f32) {
    match kind {
        k if usable(k) >= KernelKind::Avx2 => avx2::sq8_prepare(query, lo, step, l2, w),
        _ => scalar::sq8_prepare(query, lo, step, l2, w),
    }
}

/// Per-row columns of a binary sketch's lower bound (`near` only for L2), and the row's
/// nibble-scan dot products.
#[derive(Debug, Clone, Copy)]
pub struct BoundColumns<'a> {
    /// Per-row constant term (L2 only).
    pub near: Option<&'a [u16]>,
    /// Scaled counts of set code bits.
    pub g_ones: &'a [u16],
    /// Scale of the estimated product.
    pub g: &'a [u16],
    /// Error allowance per unit of query norm.
    pub e: &'a [u16],
    /// Nibble-scan sums.
    pub dots: &'a [u32],
}

/// Per-query terms of a sketch's lower bound (the columns' 16-bit levels are mapped back to
/// values through these: a caller folds each column's offset and step in).
#[derive(Debug, Clone, Copy)]
pub struct BoundTerms {
    /// Added to every row.
    pub base: f32,
    /// Factor of `near`.
    pub near: f32,
    /// Factor of `g_ones`.
    pub ones: f32,
    /// Factor of the nibble sum inside the estimated product.
    pub dot: f32,
    /// Constant inside the estimated product.
    pub shift: f32,
    /// Offset of the product's scale: `g` stands for `g_base + g_scale g[i]`.
    pub g_base: f32,
    /// Step of the product's scale.
    pub g_scale: f32,
    /// Factor of `e`.
    pub error: f32,
}

/// Sketch lower bounds of `out.len()` rows: `out[i] = base + near near[i] - ones g_ones[i]
/// - (g_base + g_scale g[i]) (dot dots[i] + shift) - error e[i]` (`near[i]` taken as 0 when
/// absent). Panics if a column is shorter than `out`.
#[inline]
pub fn sketch_bounds(cols: &BoundColumns, terms: &BoundTerms, out: &mut [f32]) {
    sketch_bounds_with(cpu(), cols, terms, out)
}

/// [`sketch_bounds`] with an explicit kernel.
pub fn sketch_bounds_with(
    kind: KernelKind,
    cols: &BoundColumns,
    terms: &BoundTerms,
    out: &mut [f32],
) {
    match kind {
        k if usable(k) >= KernelKind::Avx2 => avx2::sketch_bounds(cols, terms, out),
        _ => scalar::sketch_bounds(cols, terms, out),
    }
}

/// ADC scan: for each code row `i` (rows of `stride` bytes), `out[i] = sum_d lut[d * 256 + code[i][d]]`.
///
/// `stride` must be a multiple of 8, `lut.len() == stride * 256`, `codes.len() == out.len() * stride`.
#[inline]
pub fn adc_scan(lut: &[f32], codes: &[u8], stride: usize, out: &mut [f32]) {
    adc_scan_with(cpu(), lut, codes, stride, out)
}

/// [`adc_scan`] with an explicit kernel (benchmarks and tests compare them).
pub fn adc_scan_with(kind: KernelKind, lut: &[f32], codes: &[u8], stride: usize, out: &mut [f32]) {
    assert!(
        stride.is_multiple_of(8),
        "ADC stride must be a multiple of 8"
    );
    assert_eq!(lut.len(), stride * 256, "ADC table has the wrong size");
    assert_eq!(
        codes.len(),
        out.len() * stride,
        "ADC codes and output disagree"
    );
    match kind {
        k if usable(k) >= KernelKind::Avx2 => avx2::adc_scan(lut, codes, stride, out),
        _ => scalar::adc_scan(lut, codes, stride, out),
    }
}

/// Factored SQ8 scan: `out[i] = scale * sum_d w[d] * code[i][d]`, with the weights rounded
/// to 16 bits by [`sq8_weights_i16`] and the sums exact in 32-bit integers (so every kernel
/// gives the same bits).
///
/// `stride` must be a multiple of 8, `w.len() == stride`, `codes.len() == out.len() * stride`,
/// and no weight larger in magnitude than [`sq8_weight_limit`]`(stride)`.
#[inline]
pub fn sq8_dot_scan(w: &[i16], scale: f32, codes: &[u8], stride: usize, out: &mut [f32]) {
    sq8_dot_scan_with(cpu(), w, scale, codes, stride, out)
}

/// [`sq8_dot_scan`] with an explicit kernel.
pub fn sq8_dot_scan_with(
    kind: KernelKind,
    w: &[i16],
    scale: f32,
    codes: &[u8],
    stride: usize,
    out: &mut [f32],
) {
    assert!(
        stride.is_multiple_of(8),
        "SQ8 stride must be a multiple of 8"
    );
    assert_eq!(w.len(), stride, "weight vector has the wrong size");
    assert_eq!(codes.len(), out.len() * stride, "codes and output disagree");
    match kind {
        k if usable(k) == KernelKind::Avx512 => avx512::sq8_dot_scan(w, scale, codes, stride, out),
        k if usable(k) >= KernelKind::Avx2 => avx2::sq8_dot_scan(w, scale, codes, stride, out),
        _ => scalar::sq8_dot_scan(w, scale, codes, stride, out),
    }
}

pub use scalar::sq8_weight_limit;

/// Rounds factored SQ8 weights to 16 bits on one scale for [`sq8_dot_scan`]: `w[d] ≈ scale *
/// out[d]`, each within half a unit, no magnitude above [`sq8_weight_limit`]`(w.len())`.
/// Returns `scale` (1 when every weight is 0 or one is not finite, all rounded to 0).
#[inline]
pub fn sq8_weights_i16(w: &[f32], out: &mut Vec<i16>) -> f32 {
    sq8_weights_i16_with(cpu(), w, out)
}

/// [`sq8_weights_i16`] with an explicit kernel.
pub fn sq8_weights_i16_with(kind: KernelKind, w: &[f32], out: &mut Vec<i16>) -> f32 {
    match kind {
        k if usable(k) >= KernelKind::Avx2 => avx2::sq8_weights_i16(w, out),
        _ => scalar::sq8_weights_i16(w, out),
    }
}

/// Hints the CPU to start loading `bytes` into cache (a no-op where there is no prefetch
/// instruction).
#[inline(always)]
pub fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        // SAFETY: prefetching is a hint; it never faults, whatever the address.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                line.as_ptr() as *const i8
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// Hints the CPU to start loading the `bytes` bytes at `at` (a struct reached through a
/// pointer, without reading it).
#[inline(always)]
pub fn prefetch_at<T>(at: *const T, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    for off in (0..bytes).step_by(64) {
        // SAFETY: prefetching is a hint; it never faults, whatever the address.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                (at as *const i8).wrapping_add(off),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (at, bytes);
}

/// Appends to `out` the index of every value in `values` below `limit` (NaN is never
/// below), in increasing order.
pub fn indices_below(values: &[f32], limit: f32, out: &mut Vec<u32>) {
    indices_below_with(cpu(), values, limit, out)
}

/// [`indices_below`] with an explicit kernel.
pub fn indices_below_with(kind: KernelKind, values: &[f32], limit: f32, out: &mut Vec<u32>) {
    match kind {
        k if usable(k) >= KernelKind::Avx2 => avx2::indices_below(values, limit, out),
        _ => scalar::indices_below(values, limit, out),
    }
}

/// Rows per block of the packed binary-code layout ([`nibble_pack`]).
pub const NIBBLE_BLOCK: usize = 32;

pub use scalar::{nibble_pack, nibble_tables};

/// Binary dot products of packed code rows with a 4-bit query, through per-nibble tables
/// ([`nibble_tables`]): `out[i] = sum_g tables[16 g + nibble_g(row i)]`, which is the sum of
/// the query levels at row `i`'s set bits.
///
/// `groups` (nibbles per row) is a multiple of 4, `tables.len() == 16 * groups`,
/// `out.len()` a multiple of [`NIBBLE_BLOCK`] and `packed.len() == out.len() * groups / 2`.
#[inline]
pub fn nibble_scan(tables: &[u8], packed: &[u8], groups: usize, out: &mut [u32]) {
    nibble_scan_with(cpu(), tables, packed, groups, out)
}

/// [`nibble_scan`] with an explicit kernel.
pub fn nibble_scan_with(
    kind: KernelKind,
    tables: &[u8],
    packed: &[u8],
    groups: usize,
    out: &mut [u32],
) {
    assert!(
        groups.is_multiple_of(4),
        "nibble groups must be a multiple of 4"
    );
    assert_eq!(
        tables.len(),
        16 * groups,
        "nibble tables have the wrong size"
    );
    assert!(
        out.len().is_multiple_of(NIBBLE_BLOCK),
        "nibble scan output must cover whole blocks"
    );
    assert_eq!(
        packed.len(),
        out.len() * groups / 2,
        "packed codes and output disagree"
    );
    match kind {
        k if usable(k) >= KernelKind::Avx2 => {
            avx2::nibble_scan(tables, packed, groups, out)
        }
        _ => scalar::nibble_scan(tables, packed, groups, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn l2_ref(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
            .sum()
    }

    fn dot_ref(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
    }

    #[test]
    fn zero_or_non_finite_weights_round_to_zero_with_unit_scale() {
        for kind in [KernelKind::Scalar, KernelKind::Avx2] {
            for w in [vec![0f32; 40], vec![f32::INFINITY; 24], vec![]] {
                let mut out = vec![7i16; 3];
                assert_eq!(sq8_weights_i16_with(kind, &w, &mut out), 1.0, "{kind:?}");
                assert_eq!(out, vec![0i16; w.len()], "{kind:?}");
            }
        }
    }

    fn close(got: f32, want: f64, scale: f64) -> bool {
        (got as f64 - want).abs() <= 1e-4 * scale.max(1.0)
    }

    fn pair() -> impl Strategy<Value = (Vec<f32>, Vec<f32>)> {
        (1usize..300).prop_flat_map(|n| {
            (
                prop::collection::vec(-100f32..100.0, n),
                prop::collection::vec(-100f32..100.0, n),
            )
        })
    }

    #[test]
    fn nibble_scan_sums_long_codes_past_the_16_bit_accumulators() {
        // 5120 bits of ones against levels of 15: 76,800 per row, more than a u16 holds.
        let words = 80;
        let levels = vec![15u8; words * 64];
        let codes = vec![u64::MAX; 40 * words];
        let mut tables = Vec::new();
        nibble_tables(&levels, &mut tables);
        let mut packed = Vec::new();
        nibble_pack(&codes, words, &mut packed);
        for kind in [KernelKind::Avx2, KernelKind::Scalar] {
            let mut out = vec![0u32; 64];
            nibble_scan_with(kind, &tables, &packed, words * 16, &mut out);
            assert!(
                out[..40].iter().all(|&d| d == 15 * 64 * words as u32),
                "{kind:?}"
            );
            assert!(out[40..].iter().all(|&d| d == 0), "{kind:?}: padding rows");
        }
    }

    proptest! {
        #[test]
        fn l2_matches_f64_reference((a, b) in pair()) {
            let want = l2_ref(&a, &b);
            prop_assert!(close(l2sq(&a, &b), want, want));
            prop_assert!(close(scalar::l2sq(&a, &b), want, want));
        }

        #[test]
        fn dot_matches_f64_reference((a, b) in pair()) {
            let want = dot_ref(&a, &b);
            let scale = a.iter().zip(&b).map(|(x, y)| (*x as f64 * *y as f64).abs()).sum::<f64>();
            prop_assert!(close(dot(&a, &b), want, scale));
            prop_assert!(close(scalar::dot(&a, &b), want, scale));
        }

        #[test]
        fn row_kernels_match_f64_reference(
            dim in 1usize..70,
            rows in 0usize..11,
            seed in any::<u64>(),
        ) {
            use rand::{Rng, SeedableRng};
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let q: Vec<f32> = (0..dim).map(|_| rng.gen_range(-10.0f32..10.0)).collect();
            let m: Vec<f32> = (0..rows * dim).map(|_| rng.gen_range(-10.0f32..10.0)).collect();
            for kind in [KernelKind::Avx2, KernelKind::Scalar] {
                for l2 in [true, false] {
                    let mut out = vec![f32::NAN; rows];
                    let refs: Vec<&[f32]> = m.chunks_exact(dim).collect();
                    rows_with(kind, &q, &refs, l2, &mut out);
                    for (r, got) in out.iter().enumerate() {
                        let row = &m[r * dim..(r + 1) * dim];
                        let (want, scale) = if l2 {
                            let w = l2_ref(&q, row);
                            (w, w)
                        } else {
                            let s = q.iter().zip(row).map(|(x, y)| (*x as f64 * *y as f64).abs()).sum();
                            (dot_ref(&q, row), s)
                        };
                        prop_assert!(close(*got, want, scale), "{kind:?} l2 {l2} row {r}: {got} vs {want}");
                    }
                }
            }
        }

        #[test]
        fn sq8_dot_kernels_match_f64_reference(
            groups in 1usize..60,
            rows in 0usize..40,
            spread in 0i32..12,
            seed in any::<u64>(),
        ) {
            use rand::{Rng, SeedableRng};
            let stride = groups * 8;
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            // Weights over several orders of magnitude (the rounding is relative to the largest).
            let w: Vec<f32> = (0..stride)
                .map(|_| rng.gen_range(-3.0f32..3.0) * 2f32.powi(-rng.gen_range(0..=spread)))
                .collect();
            let mut codes: Vec<u8> = (0..rows * stride).map(|_| rng.gen()).collect();
            if rows > 0 {
                // The largest sum there can be: every code 255 under a weight of one sign.
                codes[..stride].fill(255);
            }
            let limit = sq8_weight_limit(stride);
            let mut w16 = Vec::new();
            for kind in [KernelKind::Scalar, KernelKind::Avx2] {
                let scale = sq8_weights_i16_with(kind, &w, &mut w16);
                prop_assert_eq!(w16.len(), stride);
                prop_assert!(w16.iter().all(|&x| (x as f32).abs() <= limit), "{:?}", kind);
                for (x, &q) in w.iter().zip(&w16) {
                    let off = (*x as f64 - scale as f64 * q as f64).abs();
                    prop_assert!(off <= scale as f64 * 0.51, "{:?}: {} off by {}", kind, x, off);
                }
            }
            let scale = sq8_weights_i16(&w, &mut w16);
            let mut fast = vec![0f32; rows];
            let mut wide = vec![0f32; rows];
            let mut slow = vec![0f32; rows];
            sq8_dot_scan_with(KernelKind::Avx2, &w16, scale, &codes, stride, &mut fast);
            // The AVX-512 kernel where the CPU has it (else the AVX2 one again).
            sq8_dot_scan_with(KernelKind::Avx512, &w16, scale, &codes, stride, &mut wide);
            sq8_dot_scan_with(KernelKind::Scalar, &w16, scale, &codes, stride, &mut slow);
            for r in 0..rows {
                let row = &codes[r * stride..(r + 1) * stride];
                let want: f64 = (0..stride).map(|d| w[d] as f64 * row[d] as f64).sum();
                // Rounding: half a weight step per dimension (and the float product's own), times the code.
                let rounding: f64 = row.iter().map(|&c| 0.51 * scale as f64 * c as f64).sum();
                let scale_sum: f64 = (0..stride).map(|d| (w[d] as f64 * row[d] as f64).abs()).sum();
                prop_assert_eq!(fast[r].to_bits(), slow[r].to_bits(), "row {}: kernels differ", r);
                prop_assert_eq!(wide[r].to_bits(), slow[r].to_bits(), "row {}: AVX-512 differs", r);
                prop_assert!(
                    (fast[r] as f64 - want).abs() <= rounding + 1e-6 * scale_sum.max(1.0),
                    "row {r}: {} vs {want} (rounding allowance {rounding})", fast[r]
                );
            }
        }

        #[test]
        fn sq8_prepare_kernels_match_f64_reference(dim in 1usize..70, seed in any::<u64>()) {
            use rand::{Rng, SeedableRng};
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let q: Vec<f32> = (0..dim).map(|_| rng.gen_range(-5.0f32..5.0)).collect();
            let lo: Vec<f32> = (0..dim).map(|_| rng.gen_range(-5.0f32..5.0)).collect();
            let step: Vec<f32> = (0..dim).map(|_| rng.gen_range(0.0f32..0.05)).collect();
            for kind in [KernelKind::Avx2, KernelKind::Scalar] {
                for l2 in [true, false] {
                    let mut w = vec![f32::NAN; dim + 3];
                    let (base, centre) = sq8_prepare_with(kind, &q, &lo, &step, l2, &mut w);
                    let (mut wb, mut wc, mut scale) = (0f64, 0f64, 0f64);
                    for d in 0..dim {
                        let (q, l, s) = (q[d] as f64, lo[d] as f64, step[d] as f64);
                        let mid = l + SQ8_MID as f64 * s;
                        let (wd, bd, cd) = if l2 {
                            (2.0 * (q - l) * s, (q - l).powi(2), (q - mid).powi(2))
                        } else {
                            (q * s, -q * l, q * mid)
                        };
                        prop_assert!(close(w[d], wd, wd.abs()), "{kind:?} w[{d}]: {} vs {wd}", w[d]);
                        wb += bd;
                        wc += cd;
                        scale += bd.abs() + cd.abs();
                    }
                    prop_assert!(w[dim..].iter().all(|x| x.is_nan()), "past dim written");
                    prop_assert!(close(base, wb, scale), "{kind:?} l2 {l2} base {base} vs {wb}");
                    prop_assert!(close(centre, wc, scale), "{kind:?} l2 {l2} centre {centre} vs {wc}");
                }
            }
        }

        #[test]
        fn sketch_bound_kernels_match_f64_reference(n in 0usize..40, seed in any::<u64>()) {
            use rand::{Rng, SeedableRng};
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut col = || -> Vec<u16> { (0..n).map(|_| rng.gen()).collect() };
            let (near, g_ones, g, e) = (col(), col(), col(), col());
            let dots: Vec<u32> = (0..n).map(|i| (i as u32 * 7919) % 5000).collect();
            let terms = BoundTerms {
                base: 1.5,
                near: 3e-5,
                ones: 2e-5,
                dot: 0.01,
                shift: -2.0,
                g_base: 0.4,
                g_scale: -1e-5,
                error: 7e-6,
            };
            for with_near in [true, false] {
                let cols = BoundColumns {
                    near: with_near.then_some(&near[..]),
                    g_ones: &g_ones,
                    g: &g,
                    e: &e,
                    dots: &dots,
                };
                for kind in [KernelKind::Avx2, KernelKind::Scalar] {
                    let mut out = vec![f32::NAN; n];
                    sketch_bounds_with(kind, &cols, &terms, &mut out);
                    for i in 0..n {
                        let t = |x: f32| x as f64;
                        let x = t(terms.dot) * dots[i] as f64 + t(terms.shift);
                        let gi = t(terms.g_base) + t(terms.g_scale) * g[i] as f64;
                        let parts = [
                            if with_near { t(terms.near) * near[i] as f64 } else { 0.0 },
                            t(terms.base),
                            -t(terms.ones) * g_ones[i] as f64,
                            -gi * x,
                            -t(terms.error) * e[i] as f64,
                        ];
                        let want: f64 = parts.iter().sum();
                        let scale: f64 = parts.iter().map(|p| p.abs()).sum();
                        prop_assert!(close(out[i], want, scale), "{kind:?} row {i}: {} vs {want}", out[i]);
                    }
                }
            }
        }

        #[test]
        fn indices_below_kernels_match_a_filter(
            values in proptest::collection::vec(
                prop_oneof![-4.0f32..4.0, Just(f32::NAN), Just(f32::INFINITY), Just(-0.0f32)],
                0..70,
            ),
            limit in prop_oneof![-4.0f32..4.0, Just(f32::INFINITY), Just(f32::NAN)],
        ) {
            let want: Vec<u32> = (0..values.len() as u32)
                .filter(|&i| values[i as usize] < limit)
                .collect();
            // Appended after what the vector already holds.
            let (mut fast, mut slow) = (vec![99u32], vec![99u32]);
            indices_below_with(KernelKind::Avx2, &values, limit, &mut fast);
            indices_below_with(KernelKind::Scalar, &values, limit, &mut slow);
            prop_assert_eq!(&fast[1..], &want[..]);
            prop_assert_eq!(&slow[1..], &want[..]);
        }

        #[test]
        fn nibble_kernels_match_a_bitwise_reference(
            words in 1usize..10,
            rows in 0usize..80,
            seed in any::<u64>(),
        ) {
            use rand::{Rng, SeedableRng};
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let levels: Vec<u8> = (0..words * 64).map(|_| rng.gen_range(0u8..16)).collect();
            let codes: Vec<u64> = (0..rows * words).map(|_| rng.gen()).collect();
            let mut tables = Vec::new();
            nibble_tables(&levels, &mut tables);
            let mut packed = Vec::new();
            nibble_pack(&codes, words, &mut packed);
            let padded = rows.div_ceil(NIBBLE_BLOCK) * NIBBLE_BLOCK;
            let groups = words * 16;
            let mut fast = vec![7u32; padded];
            let mut slow = vec![7u32; padded];
            nibble_scan_with(KernelKind::Avx2, &tables, &packed, groups, &mut fast);
            nibble_scan_with(KernelKind::Scalar, &tables, &packed, groups, &mut slow);
            for r in 0..padded {
                // sum of the levels at the code's set bits; padding rows are zero codes
                let want: u32 = if r < rows {
                    (0..words * 64)
                        .filter(|&i| codes[r * words + i / 64] >> (i % 64) & 1 == 1)
                        .map(|i| levels[i] as u32)
                        .sum()
                } else {
                    0
                };
                prop_assert_eq!(fast[r], want, "avx2 row {}", r);
                prop_assert_eq!(slow[r], want, "scalar row {}", r);
            }
        }

        #[test]
        fn adc_kernels_match_f64_reference(
            groups in 1usize..20,
            rows in 0usize..40,
            seed in any::<u64>(),
        ) {
            use rand::{Rng, SeedableRng};
            let stride = groups * 8;
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let lut: Vec<f32> = (0..stride * 256).map(|_| rng.gen_range(0.0f32..50.0)).collect();
            let codes: Vec<u8> = (0..rows * stride).map(|_| rng.gen()).collect();
            let mut fast = vec![0f32; rows];
            let mut slow = vec![0f32; rows];
            adc_scan_with(KernelKind::Avx2, &lut, &codes, stride, &mut fast);
            adc_scan_with(KernelKind::Scalar, &lut, &codes, stride, &mut slow);
            for r in 0..rows {
                let want: f64 = (0..stride)
                    .map(|d| lut[d * 256 + codes[r * stride + d] as usize] as f64)
                    .sum();
                prop_assert!(close(fast[r], want, want), "avx2 row {r}: {} vs {want}", fast[r]);
                prop_assert!(close(slow[r], want, want), "scalar row {r}: {} vs {want}", slow[r]);
            }
        }
    }
}
