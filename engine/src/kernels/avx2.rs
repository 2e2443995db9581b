//! x86-64 AVX2 + FMA kernels. Callers reach them only after `cpu()` saw both features.

#[cfg(target_arch = "x86_64")]
mod imp {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    fn l2sq_avx2(a: &[f32], b: &[f32]) -> f32 {
        super::super::scalar::l2sq(a, b)
    }

    #[target_feature(enable = "avx2,fma")]
    fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        super::super::scalar::dot(a, b)
    }

    #[target_feature(enable = "avx2,fma")]
    fn sq8_lut_avx2(query: &[f32], lo: &[f32], step: &[f32], l2: bool, lut: &mut [f32]) {
        super::super::scalar::sq8_lut(query, lo, step, l2, lut)
    }

    /// SQ8 lookup-table construction, the portable code compiled with AVX2 enabled.
    #[inline]
    pub fn sq8_lut(query: &[f32], lo: &[f32], step: &[f32], l2: bool, lut: &mut [f32]) {
        // SAFETY: only called when `cpu()` detected avx2 and fma on this machine.
        unsafe { sq8_lut_avx2(query, lo, step, l2, lut) }
    }

    /// Squared L2, the portable code compiled with AVX2 enabled.
    #[inline]
    pub fn l2sq(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: only called when `cpu()` detected avx2 and fma on this machine.
        unsafe { l2sq_avx2(a, b) }
    }

    /// Inner product, the portable code compiled with AVX2 enabled.
    #[inline]
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: only called when `cpu()` detected avx2 and fma on this machine.
        unsafe { dot_avx2(a, b) }
    }

    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let hi = _mm256_extractf128_ps::<1>(v);
        let lo = _mm256_castps256_ps128(v);
        let s = _mm_add_ps(hi, lo);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
        _mm_cvtss_f32(s)
    }

    /// Gathers eight table entries per step: lane `j` reads `lut[(g + j) * 256 + code]`.
    #[target_feature(enable = "avx2,fma")]
    fn adc_avx2(lut: &[f32], codes: &[u8], stride: usize, out: &mut [f32]) {
        let lanes = _mm256_setr_epi32(0, 256, 512, 768, 1024, 1280, 1536, 1792);
        let step = _mm256_set1_epi32(8 * 256);
        let table = lut.as_ptr();
        for (row, o) in codes.chunks_exact(stride).zip(out.iter_mut()) {
            let mut acc0 = _mm256_setzero_ps();
            let mut acc1 = _mm256_setzero_ps();
            let mut offs = lanes;
            let mut groups = row.chunks_exact(16);
            for pair in &mut groups {
                // SAFETY: `pair` holds 16 readable bytes; unaligned 8-byte loads are allowed.
                let (c0, c1) = unsafe {
                    (
                        _mm_loadl_epi64(pair.as_ptr() as *const __m128i),
                        _mm_loadl_epi64(pair.as_ptr().add(8) as *const __m128i),
                    )
                };
                let i0 = _mm256_add_epi32(_mm256_cvtepu8_epi32(c0), offs);
                offs = _mm256_add_epi32(offs, step);
                let i1 = _mm256_add_epi32(_mm256_cvtepu8_epi32(c1), offs);
                offs = _mm256_add_epi32(offs, step);
                // SAFETY: every index is (dimension * 256 + code) with dimension < stride and
                // code < 256, and `lut.len() == stride * 256` (checked by the caller).
                unsafe {
                    acc0 = _mm256_add_ps(acc0, _mm256_i32gather_ps::<4>(table, i0));
                    acc1 = _mm256_add_ps(acc1, _mm256_i32gather_ps::<4>(table, i1));
                }
            }
            let rest = groups.remainder();
            if !rest.is_empty() {
                // SAFETY: stride is a multiple of 8, so the remainder is exactly 8 bytes.
                let c0 = unsafe { _mm_loadl_epi64(rest.as_ptr() as *const __m128i) };
                let i0 = _mm256_add_epi32(_mm256_cvtepu8_epi32(c0), offs);
                // SAFETY: as above, indices stay inside the table.
                unsafe {
                    acc0 = _mm256_add_ps(acc0, _mm256_i32gather_ps::<4>(table, i0));
                }
            }
            *o = hsum(_mm256_add_ps(acc0, acc1));
        }
    }

    /// Eight dimensions per step: widen codes to f32 and multiply-add with the weights.
    #[target_feature(enable = "avx2,fma")]
    fn sq8_dot_avx2(w: &[f32], codes: &[u8], stride: usize, out: &mut [f32]) {
        for (row, o) in codes.chunks_exact(stride).zip(out.iter_mut()) {
            let mut acc0 = _mm256_setzero_ps();
            let mut acc1 = _mm256_setzero_ps();
            let mut g = 0;
            while g + 16 <= stride {
                // SAFETY: g + 16 <= stride == row.len() == w.len(); unaligned loads are allowed.
                unsafe {
                    let c0 = _mm_loadl_epi64(row.as_ptr().add(g) as *const __m128i);
                    let c1 = _mm_loadl_epi64(row.as_ptr().add(g + 8) as *const __m128i);
                    let f0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c0));
                    let f1 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c1));
                    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(w.as_ptr().add(g)), f0, acc0);
                    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(w.as_ptr().add(g + 8)), f1, acc1);
                }
                g += 16;
            }
            if g < stride {
                // SAFETY: stride is a multiple of 8, so exactly 8 bytes/floats remain.
                unsafe {
                    let c0 = _mm_loadl_epi64(row.as_ptr().add(g) as *const __m128i);
                    let f0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c0));
                    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(w.as_ptr().add(g)), f0, acc0);
                }
            }
            *o = hsum(_mm256_add_ps(acc0, acc1));
        }
    }

    /// AVX2 factored SQ8 scan.
    #[inline]
    pub fn sq8_dot_scan(w: &[f32], codes: &[u8], stride: usize, out: &mut [f32]) {
        // SAFETY: only called when `cpu()` detected avx2 and fma; sizes checked by the caller.
        unsafe { sq8_dot_avx2(w, codes, stride, out) }
    }

    /// Binary dot products with the hardware population count, the word count a constant so
    /// that the loops unroll into straight-line `and` + `popcnt`.
    #[target_feature(enable = "avx2,fma,popcnt")]
    fn bits_scan_fixed<const W: usize>(planes: &[u64], codes: &[u64], out: &mut [u32]) {
        let p: [[u64; W]; 4] =
            std::array::from_fn(|j| planes[j * W..(j + 1) * W].try_into().expect("W words"));
        for (code, o) in codes.chunks_exact(W).zip(out.iter_mut()) {
            let code: &[u64; W] = code.try_into().expect("W code words");
            let mut acc = 0i32;
            for (j, plane) in p.iter().enumerate() {
                let mut ones = 0i32;
                for w in 0..W {
                    // SAFETY: popcnt is enabled for this function.
                    ones += _popcnt64((code[w] & plane[w]) as i64);
                }
                acc += ones << j;
            }
            *o = acc as u32;
        }
    }

    #[target_feature(enable = "avx2,fma,popcnt")]
    fn bits_scan_popcnt(planes: &[u64], codes: &[u64], words: usize, out: &mut [u32]) {
        match words {
            2 => bits_scan_fixed::<2>(planes, codes, out),
            4 => bits_scan_fixed::<4>(planes, codes, out),
            8 => bits_scan_fixed::<8>(planes, codes, out),
            16 => bits_scan_fixed::<16>(planes, codes, out),
            _ => super::super::scalar::bits_scan(planes, codes, words, out),
        }
    }

    /// Bit planes: shifting each level's bit `j` into the byte's top bit and collecting the
    /// top bits of 32 bytes at a time.
    #[target_feature(enable = "avx2,fma")]
    fn bit_planes_avx2(levels: &[u8], planes: &mut Vec<u64>) {
        let words = levels.len() / 64;
        planes.clear();
        planes.resize(4 * words, 0);
        for (w, block) in levels.chunks_exact(64).enumerate() {
            // SAFETY: `block` holds 64 readable bytes; unaligned loads are allowed.
            let (a, b) = unsafe {
                (
                    _mm256_loadu_si256(block.as_ptr() as *const __m256i),
                    _mm256_loadu_si256(block.as_ptr().add(32) as *const __m256i),
                )
            };
            // Byte shifts do not exist: shift 16-bit lanes; only each byte's bit 7 is read.
            let planes_of = |v: __m256i| -> [u32; 4] {
                [
                    _mm256_movemask_epi8(_mm256_slli_epi16::<7>(v)) as u32,
                    _mm256_movemask_epi8(_mm256_slli_epi16::<6>(v)) as u32,
                    _mm256_movemask_epi8(_mm256_slli_epi16::<5>(v)) as u32,
                    _mm256_movemask_epi8(_mm256_slli_epi16::<4>(v)) as u32,
                ]
            };
            let (lo, hi) = (planes_of(a), planes_of(b));
            for j in 0..4 {
                planes[j * words + w] = lo[j] as u64 | ((hi[j] as u64) << 32);
            }
        }
    }

    /// Binary dot products (see `scalar::bits_scan`).
    #[inline]
    pub fn bits_scan(planes: &[u64], codes: &[u64], words: usize, out: &mut [u32]) {
        // SAFETY: only called when `cpu()` detected avx2, fma and popcnt.
        unsafe { bits_scan_popcnt(planes, codes, words, out) }
    }

    /// Bit planes of 4-bit levels (see `scalar::bit_planes`).
    #[inline]
    pub fn bit_planes(levels: &[u8], planes: &mut Vec<u64>) {
        // SAFETY: only called when `cpu()` detected avx2 and fma.
        unsafe { bit_planes_avx2(levels, planes) }
    }

    /// AVX2 table-lookup ADC.
    #[inline]
    pub fn adc_scan(lut: &[f32], codes: &[u8], stride: usize, out: &mut [f32]) {
        // SAFETY: only called when `cpu()` detected avx2 and fma; sizes checked by the caller.
        unsafe { adc_avx2(lut, codes, stride, out) }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    pub use super::super::scalar::{
        adc_scan, bit_planes, bits_scan, dot, l2sq, sq8_dot_scan, sq8_lut,
    };
}

pub use imp::{adc_scan, bit_planes, bits_scan, dot, l2sq, sq8_dot_scan, sq8_lut};
