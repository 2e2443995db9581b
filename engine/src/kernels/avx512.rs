//! x86-64 AVX-512 kernels (F, BW, VL, VNNI), for the scans where they measured faster than
//! the AVX2 ones. Callers reach them only after `cpu()` saw every one of these features.

#[cfg(target_arch = "x86_64")]
mod imp {
    use std::arch::x86_64::*;

    use super::super::avx2;

    /// Four rows at a time, thirty-two dimensions per step: codes are widened to 16 bits in
    /// one 512-bit register and multiplied by the 16-bit weights with the sums of pairs added
    /// straight into 32-bit lanes (`vpdpwssd`, which fuses AVX2's `vpmaddwd` and `vpaddd`).
    /// A tail of 16 or 8 dimensions takes the AVX2 kernel's steps (`vpmaddwd` + `vpaddd`, the
    /// same exact sums). The four accumulators
    /// are folded to 256 bits and reduced together as in the AVX2 kernel; the sums are exact
    /// 32-bit integers, so the result has the same bits.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
    fn sq8_dot_i16_avx512(w: &[i16], scale: f32, codes: &[u8], stride: usize, out: &mut [f32]) {
        let full = stride - stride % 32;
        let quad_bytes = 4 * stride;
        let mut quads = codes.chunks_exact(quad_bytes);
        let mut outs = out.chunks_exact_mut(4);
        for (quad, o) in (&mut quads).zip(&mut outs) {
            let p = quad.as_ptr();
            avx2::prefetch_quad_ahead(p, quad_bytes);
            let mut wide = [_mm512_setzero_si512(); 4];
            let mut g = 0;
            while g < full {
                // SAFETY: g + 32 <= full <= stride == w.len(), and row r's codes are bytes
                // `r * stride..(r + 1) * stride` of the quad; unaligned loads are allowed.
                unsafe {
                    let wv = _mm512_loadu_si512(w.as_ptr().add(g) as *const __m512i);
                    for (r, a) in wide.iter_mut().enumerate() {
                        let c = _mm256_loadu_si256(p.add(r * stride + g) as *const __m256i);
                        *a = _mm512_dpwssd_epi32(*a, _mm512_cvtepu8_epi16(c), wv);
                    }
                }
                g += 32;
            }
            let mut acc = wide.map(|a| {
                _mm256_add_epi32(
                    _mm512_castsi512_si256(a),
                    _mm512_extracti64x4_epi64::<1>(a),
                )
            });
            if g + 16 <= stride {
                // SAFETY: as above, sixteen codes and weights remain.
                unsafe { avx2::quad_step16(&mut acc, w, p, stride, g) };
                g += 16;
            }
            if g < stride {
                // SAFETY: stride is a multiple of 8, so exactly 8 codes and weights remain.
                unsafe { avx2::quad_step8(&mut acc, w, p, stride, g) };
            }
            avx2::store_quad(&acc, scale, o);
        }
        // Fewer than four rows left: the AVX2 kernel takes them one at a time.
        let rest = quads.remainder();
        let left = outs.into_remainder();
        avx2::sq8_dot_scan(w, scale, rest, stride, left);
    }

    /// AVX-512 factored SQ8 scan with 16-bit weights.
    #[inline]
    pub fn sq8_dot_scan(w: &[i16], scale: f32, codes: &[u8], stride: usize, out: &mut [f32]) {
        // SAFETY: only called when `cpu()` detected every feature the kernel enables; sizes
        // checked by the caller.
        unsafe { sq8_dot_i16_avx512(w, scale, codes, stride, out) }
    }
}

#[cfg(target_arch = "x86_64")]
pub use imp::*;

#[cfg(not(target_arch = "x86_64"))]
pub use super::scalar::sq8_dot_scan;
