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

    /// Eight dimensions per step, the metric's branch hoisted out of the loop.
    #[target_feature(enable = "avx2,fma")]
    fn sq8_prepare_avx2(
        q: &[f32],
        lo: &[f32],
        step: &[f32],
        l2: bool,
        w: &mut [f32],
    ) -> (f32, f32) {
        let dim = q.len();
        let (lo, step, w) = (&lo[..dim], &step[..dim], &mut w[..dim]);
        let full = dim - dim % 8;
        let mid = _mm256_set1_ps(super::super::SQ8_MID);
        let two = _mm256_set1_ps(2.0);
        let mut base = _mm256_setzero_ps();
        let mut cen = _mm256_setzero_ps();
        let mut d = 0;
        if l2 {
            while d < full {
                // SAFETY: d + 8 <= full <= dim, and every slice holds dim values.
                unsafe {
                    let qv = _mm256_loadu_ps(q.as_ptr().add(d));
                    let lv = _mm256_loadu_ps(lo.as_ptr().add(d));
                    let sv = _mm256_loadu_ps(step.as_ptr().add(d));
                    let a = _mm256_sub_ps(qv, lv);
                    let m = _mm256_fnmadd_ps(mid, sv, a);
                    base = _mm256_fmadd_ps(a, a, base);
                    cen = _mm256_fmadd_ps(m, m, cen);
                    let wv = _mm256_mul_ps(_mm256_mul_ps(two, a), sv);
                    _mm256_storeu_ps(w.as_mut_ptr().add(d), wv);
                }
                d += 8;
            }
        } else {
            while d < full {
                // SAFETY: as above.
                unsafe {
                    let qv = _mm256_loadu_ps(q.as_ptr().add(d));
                    let lv = _mm256_loadu_ps(lo.as_ptr().add(d));
                    let sv = _mm256_loadu_ps(step.as_ptr().add(d));
                    base = _mm256_fnmadd_ps(qv, lv, base);
                    cen = _mm256_fmadd_ps(qv, _mm256_fmadd_ps(mid, sv, lv), cen);
                    _mm256_storeu_ps(w.as_mut_ptr().add(d), _mm256_mul_ps(qv, sv));
                }
                d += 8;
            }
        }
        let (b, c) = super::super::scalar::sq8_prepare(
            &q[full..],
            &lo[full..],
            &step[full..],
            l2,
            &mut w[full..],
        );
        (hsum(base) + b, hsum(cen) + c)
    }

    /// SQ8 query preparation, the portable code compiled with AVX2 enabled.
    #[inline]
    pub fn sq8_prepare(q: &[f32], lo: &[f32], step: &[f32], l2: bool, w: &mut [f32]) -> (f32, f32) {
        // SAFETY: only called when `cpu()` detected avx2 and fma on this machine.
        unsafe { sq8_prepare_avx2(q, lo, step, l2, w) }
    }

    #[target_feature(enable = "avx2,fma")]
    fn sketch_bounds_avx2(
        cols: &super::super::BoundColumns,
        k: &super::super::BoundTerms,
        out: &mut [f32],
    ) {
        super::super::scalar::sketch_bounds(cols, k, out)
    }

    /// Sketch lower bounds, the portable code compiled with AVX2 enabled.
    #[inline]
    pub fn sketch_bounds(
        cols: &super::super::BoundColumns,
        k: &super::super::BoundTerms,
        out: &mut [f32],
    ) {
        // SAFETY: only called when `cpu()` detected avx2 and fma on this machine.
        unsafe { sketch_bounds_avx2(cols, k, out) }
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

    /// Four rows at a time, sixteen dimensions per step: each step loads sixteen 16-bit
    /// weights once and, for each of the four rows, widens sixteen codes to 16 bits and
    /// multiply-adds pairs into 32-bit lanes (`vpmaddwd`); the four accumulators are reduced
    /// together by three horizontal adds. Leftover rows go one at a time.
    #[target_feature(enable = "avx2,fma")]
    fn sq8_dot_i16_avx2(w: &[i16], scale: f32, codes: &[u8], stride: usize, out: &mut [f32]) {
        let full = stride - stride % 16;
        let mut quads = codes.chunks_exact(4 * stride);
        let mut outs = out.chunks_exact_mut(4);
        let quad_bytes = 4 * stride;
        for (quad, o) in (&mut quads).zip(&mut outs) {
            let p = quad.as_ptr();
            prefetch_quad_ahead(p, quad_bytes);
            let mut acc = [_mm256_setzero_si256(); 4];
            let mut g = 0;
            while g < full {
                // SAFETY: g + 16 <= full <= stride == w.len(), and row r's codes are bytes
                // `r * stride..(r + 1) * stride` of the quad.
                unsafe { quad_step16(&mut acc, w, p, stride, g) };
                g += 16;
            }
            if g < stride {
                // SAFETY: stride is a multiple of 8, so exactly 8 codes and weights remain.
                unsafe { quad_step8(&mut acc, w, p, stride, g) };
            }
            store_quad(&acc, scale, o);
        }
        let rest = quads.remainder();
        for (row, o) in rest.chunks_exact(stride).zip(outs.into_remainder()) {
            *o = sq8_dot_row(w, scale, row);
        }
    }

    /// Adds the products of codes `g..g + 16` of the four rows at `p` (`stride` bytes apart)
    /// with weights `g..g + 16` into the rows' 32-bit accumulators.
    ///
    /// # Safety
    /// `g + 16 <= w.len()`, and `p` points at four rows of `stride >= g + 16` readable bytes.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn quad_step16(acc: &mut [__m256i; 4], w: &[i16], p: *const u8, stride: usize, g: usize) {
        // SAFETY: in bounds by the caller's contract; unaligned loads are allowed.
        unsafe {
            let wv = _mm256_loadu_si256(w.as_ptr().add(g) as *const __m256i);
            for (r, a) in acc.iter_mut().enumerate() {
                let c = _mm_loadu_si128(p.add(r * stride + g) as *const __m128i);
                *a = _mm256_add_epi32(*a, _mm256_madd_epi16(_mm256_cvtepu8_epi16(c), wv));
            }
        }
    }

    /// [`quad_step16`] for the last eight codes and weights (`g..g + 8`).
    ///
    /// # Safety
    /// `g + 8 <= w.len()`, and `p` points at four rows of `stride >= g + 8` readable bytes.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn quad_step8(acc: &mut [__m256i; 4], w: &[i16], p: *const u8, stride: usize, g: usize) {
        // SAFETY: in bounds by the caller's contract; unaligned loads are allowed.
        unsafe {
            let wv = _mm_loadu_si128(w.as_ptr().add(g) as *const __m128i);
            for (r, a) in acc.iter_mut().enumerate() {
                let c = _mm_loadl_epi64(p.add(r * stride + g) as *const __m128i);
                let x = _mm_madd_epi16(_mm_cvtepu8_epi16(c), wv);
                *a = _mm256_add_epi32(*a, _mm256_zextsi128_si256(x));
            }
        }
    }

    /// How far ahead (in quads of rows) the four-row SQ8 scans prefetch.
    const PREFETCH_QUADS: usize = 4;

    /// Asks for the quad of rows `PREFETCH_QUADS` after the one at `p` (`quad_bytes` long):
    /// the hardware prefetcher stops at every 4 KiB page, so a chunk would otherwise stall
    /// once per page.
    #[inline(always)]
    pub fn prefetch_quad_ahead(p: *const u8, quad_bytes: usize) {
        super::super::prefetch_at(p.wrapping_add(PREFETCH_QUADS * quad_bytes), quad_bytes);
    }

    /// Reduces four rows' 32-bit accumulators together (lane j of the horizontal adds holds
    /// part of row j's sum), scales the four exact sums and stores them in `o[..4]`.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn store_quad(acc: &[__m256i; 4], scale: f32, o: &mut [f32]) {
        let h = _mm256_hadd_epi32(
            _mm256_hadd_epi32(acc[0], acc[1]),
            _mm256_hadd_epi32(acc[2], acc[3]),
        );
        let s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
        let v = _mm_mul_ps(_mm_set1_ps(scale), _mm_cvtepi32_ps(s));
        let o = &mut o[..4];
        // SAFETY: `o` holds four floats.
        unsafe { _mm_storeu_ps(o.as_mut_ptr(), v) };
    }

    /// One row of [`sq8_dot_i16_avx2`]: thirty-two dimensions per step in two accumulators.
    #[target_feature(enable = "avx2,fma")]
    fn sq8_dot_row(w: &[i16], scale: f32, row: &[u8]) -> f32 {
        let stride = row.len();
        let mut acc0 = _mm256_setzero_si256();
        let mut acc1 = _mm256_setzero_si256();
        let mut g = 0;
        while g + 32 <= stride {
            // SAFETY: g + 32 <= stride == row.len() == w.len(); unaligned loads are allowed.
            unsafe {
                let c0 = _mm_loadu_si128(row.as_ptr().add(g) as *const __m128i);
                let c1 = _mm_loadu_si128(row.as_ptr().add(g + 16) as *const __m128i);
                let w0 = _mm256_loadu_si256(w.as_ptr().add(g) as *const __m256i);
                let w1 = _mm256_loadu_si256(w.as_ptr().add(g + 16) as *const __m256i);
                acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(_mm256_cvtepu8_epi16(c0), w0));
                acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(_mm256_cvtepu8_epi16(c1), w1));
            }
            g += 32;
        }
        if g + 16 <= stride {
            // SAFETY: as above, sixteen codes and weights remain.
            unsafe {
                let c0 = _mm_loadu_si128(row.as_ptr().add(g) as *const __m128i);
                let w0 = _mm256_loadu_si256(w.as_ptr().add(g) as *const __m256i);
                acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(_mm256_cvtepu8_epi16(c0), w0));
            }
            g += 16;
        }
        let acc = _mm256_add_epi32(acc0, acc1);
        let mut s = _mm_add_epi32(
            _mm256_castsi256_si128(acc),
            _mm256_extracti128_si256::<1>(acc),
        );
        if g < stride {
            // SAFETY: stride is a multiple of 8, so exactly 8 codes and weights remain.
            unsafe {
                let c0 = _mm_loadl_epi64(row.as_ptr().add(g) as *const __m128i);
                let w0 = _mm_loadu_si128(w.as_ptr().add(g) as *const __m128i);
                s = _mm_add_epi32(s, _mm_madd_epi16(_mm_cvtepu8_epi16(c0), w0));
            }
        }
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        scale * _mm_cvtsi128_si32(s) as f32
    }

    /// Eight weights per step: the largest magnitude in one pass, then scale, round to
    /// nearest (even) and pack to 16 bits in a second.
    #[target_feature(enable = "avx2,fma")]
    fn sq8_weights_i16_avx2(w: &[f32], out: &mut Vec<i16>) -> f32 {
        let n = w.len();
        let full = n - n % 16;
        let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let mut m = _mm256_setzero_ps();
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: i + 8 <= n == w.len().
            let x = unsafe { _mm256_loadu_ps(w.as_ptr().add(i)) };
            m = _mm256_max_ps(m, _mm256_and_ps(x, abs));
            i += 8;
        }
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` holds eight floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), m) };
        let peak = super::super::scalar::peak_abs(w[i..].iter().chain(&lanes));
        out.clear();
        out.resize(n, 0);
        if !(peak > 0.0 && peak.is_finite()) {
            return 1.0;
        }
        let scale = peak / super::super::scalar::sq8_weight_limit(n);
        let inv = 1.0 / scale;
        let vinv = _mm256_set1_ps(inv);
        let mut i = 0;
        while i < full {
            // SAFETY: i + 16 <= full <= n == w.len() == out.len().
            unsafe {
                let a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(w.as_ptr().add(i)), vinv));
                let b =
                    _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(w.as_ptr().add(i + 8)), vinv));
                // Packing works per 128-bit lane: put the four 64-bit quarters back in order.
                let p = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(a, b));
                _mm256_storeu_si256(out.as_mut_ptr().add(i) as *mut __m256i, p);
            }
            i += 16;
        }
        for (o, x) in out[full..].iter_mut().zip(&w[full..]) {
            *o = (x * inv).round_ties_even() as i16;
        }
        scale
    }

    /// AVX2 rounding of factored weights to 16 bits.
    #[inline]
    pub fn sq8_weights_i16(w: &[f32], out: &mut Vec<i16>) -> f32 {
        // SAFETY: only called when `cpu()` detected avx2 and fma.
        unsafe { sq8_weights_i16_avx2(w, out) }
    }

    /// AVX2 factored SQ8 scan with 16-bit weights.
    #[inline]
    pub fn sq8_dot_scan(w: &[i16], scale: f32, codes: &[u8], stride: usize, out: &mut [f32]) {
        // SAFETY: only called when `cpu()` detected avx2 and fma; sizes checked by the caller.
        unsafe { sq8_dot_i16_avx2(w, scale, codes, stride, out) }
    }

    /// Nibble table scan, 32 rows per step: each 32-byte lane of a block holds two nibble
    /// groups of 32 rows; `vpshufb` looks up both groups' sixteen-entry tables for all 32
    /// rows at once. Four groups are summed in bytes (at most 4 * 60 = 240), then widened
    /// into 16-bit even-row and odd-row accumulators, which are emptied into `u32` every 256
    /// steps (256 * 240 < 65536).
    #[target_feature(enable = "avx2")]
    fn nibble_scan_avx2(tables: &[u8], packed: &[u8], groups: usize, out: &mut [u32]) {
        const BLOCK: usize = super::super::NIBBLE_BLOCK;
        let pairs = groups / 2;
        let quads = groups / 4;
        let nib = _mm256_set1_epi8(0x0f);
        let low = _mm256_set1_epi16(0x00ff);
        let block_bytes = pairs * BLOCK;
        for (b, o) in out.chunks_exact_mut(BLOCK).enumerate() {
            let base = packed[b * block_bytes..(b + 1) * block_bytes].as_ptr();
            // The hardware prefetcher stops at every 4 KiB page (a 384-d block is 1.5 KiB).
            super::super::prefetch_at(base.wrapping_add(NIBBLE_AHEAD * block_bytes), block_bytes);
            let tab = tables.as_ptr();
            let mut total = [0u32; BLOCK];
            let mut q = 0;
            while q < quads {
                let end = (q + 256).min(quads);
                let mut even = _mm256_setzero_si256();
                let mut odd = _mm256_setzero_si256();
                while q < end {
                    // SAFETY: quad `q` covers bytes `64q..64q + 64` of this block's
                    // `pairs * 32 = 64 * quads` bytes.
                    let (x0, x1) = unsafe {
                        (
                            _mm256_loadu_si256(base.add(64 * q) as *const __m256i),
                            _mm256_loadu_si256(base.add(64 * q + 32) as *const __m256i),
                        )
                    };
                    // SAFETY: groups `4q..4q + 4` have their 64 table bytes at `64q`
                    // (`tables.len() == 16 * groups`, checked by the caller). Each 128-bit
                    // half of a shuffle table holds the same 16 entries.
                    let (lo0, hi0, lo1, hi1) = unsafe {
                        let t = |at: usize| {
                            _mm256_broadcastsi128_si256(_mm_loadu_si128(
                                tab.add(at) as *const __m128i
                            ))
                        };
                        (t(64 * q), t(64 * q + 16), t(64 * q + 32), t(64 * q + 48))
                    };
                    let a = _mm256_shuffle_epi8(lo0, _mm256_and_si256(x0, nib));
                    let c =
                        _mm256_shuffle_epi8(hi0, _mm256_and_si256(_mm256_srli_epi16::<4>(x0), nib));
                    let d = _mm256_shuffle_epi8(lo1, _mm256_and_si256(x1, nib));
                    let e =
                        _mm256_shuffle_epi8(hi1, _mm256_and_si256(_mm256_srli_epi16::<4>(x1), nib));
                    let sum = _mm256_add_epi8(_mm256_add_epi8(a, c), _mm256_add_epi8(d, e));
                    even = _mm256_add_epi16(even, _mm256_and_si256(sum, low));
                    odd = _mm256_add_epi16(odd, _mm256_srli_epi16::<8>(sum));
                    q += 1;
                }
                let (mut ev, mut od) = ([0u16; 16], [0u16; 16]);
                // SAFETY: each array holds exactly 32 bytes.
                unsafe {
                    _mm256_storeu_si256(ev.as_mut_ptr() as *mut __m256i, even);
                    _mm256_storeu_si256(od.as_mut_ptr() as *mut __m256i, odd);
                }
                for k in 0..16 {
                    total[2 * k] += ev[k] as u32;
                    total[2 * k + 1] += od[k] as u32;
                }
            }
            o.copy_from_slice(&total);
        }
    }

    /// How many blocks of 32 rows ahead the nibble scan prefetches.
    const NIBBLE_AHEAD: usize = 2;

    /// Eight comparisons per step; the set bits of the mask give the indices.
    #[target_feature(enable = "avx2")]
    fn indices_below_avx2(values: &[f32], limit: f32, out: &mut Vec<u32>) {
        let lim = _mm256_set1_ps(limit);
        let mut chunks = values.chunks_exact(8);
        let mut at = 0u32;
        for c in chunks.by_ref() {
            // SAFETY: `c` holds exactly eight f32.
            let v = unsafe { _mm256_loadu_ps(c.as_ptr()) };
            let mut mask = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(v, lim)) as u32;
            while mask != 0 {
                out.push(at + mask.trailing_zeros());
                mask &= mask - 1;
            }
            at += 8;
        }
        for (i, &v) in chunks.remainder().iter().enumerate() {
            if v < limit {
                out.push(at + i as u32);
            }
        }
    }

    /// Indices of values below a limit (see `scalar::indices_below`).
    #[inline]
    pub fn indices_below(values: &[f32], limit: f32, out: &mut Vec<u32>) {
        // SAFETY: only called when `cpu()` detected avx2.
        unsafe { indices_below_avx2(values, limit, out) }
    }

    /// Nibble table scan (see `scalar::nibble_scan`).
    #[inline]
    pub fn nibble_scan(tables: &[u8], packed: &[u8], groups: usize, out: &mut [u32]) {
        // SAFETY: only called when `cpu()` detected avx2; sizes checked by the caller.
        unsafe { nibble_scan_avx2(tables, packed, groups, out) }
    }

    /// One query against four rows at a time: each dimension block of the query is loaded
    /// once for the four rows, and each row sums alternate blocks into two accumulators (eight
    /// independent chains of multiply-adds); the four rows' sums are reduced together by
    /// horizontal adds. `l2` picks squared L2, else the inner product.
    #[target_feature(enable = "avx2,fma")]
    fn rows_avx2<R: AsRef<[f32]>>(query: &[f32], rows: &[R], l2: bool, out: &mut [f32]) {
        let dim = query.len();
        let full = dim - dim % 8;
        let tail = |row: &[f32]| -> f32 {
            let (q, r) = (&query[full..], &row[full..]);
            if l2 {
                q.iter().zip(r).map(|(a, b)| (a - b) * (a - b)).sum()
            } else {
                q.iter().zip(r).map(|(a, b)| a * b).sum()
            }
        };
        let step = |acc: __m256, x: __m256, qv: __m256| {
            if l2 {
                let diff = _mm256_sub_ps(x, qv);
                _mm256_fmadd_ps(diff, diff, acc)
            } else {
                _mm256_fmadd_ps(x, qv, acc)
            }
        };
        let q = query.as_ptr();
        let mut quads = rows.chunks_exact(4);
        let mut outs = out.chunks_exact_mut(4);
        let mut next = 8;
        for (quad, o) in (&mut quads).zip(&mut outs) {
            let quad = [
                quad[0].as_ref(),
                quad[1].as_ref(),
                quad[2].as_ref(),
                quad[3].as_ref(),
            ];
            let p = quad.map(|r| r.as_ptr());
            // Each row is its own allocation: ask for the rows two quads ahead now.
            for row in rows.iter().skip(next).take(4) {
                let bytes: &[u8] = bytemuck::cast_slice(row.as_ref());
                super::super::prefetch(bytes);
            }
            next += 4;
            let mut even = [_mm256_setzero_ps(); 4];
            let mut odd = [_mm256_setzero_ps(); 4];
            let mut d = 0;
            while d + 16 <= full {
                // SAFETY: `d + 16 <= full <= dim`, and every row holds `dim` values (checked
                // by the caller).
                unsafe {
                    let q0 = _mm256_loadu_ps(q.add(d));
                    let q1 = _mm256_loadu_ps(q.add(d + 8));
                    for r in 0..4 {
                        even[r] = step(even[r], _mm256_loadu_ps(p[r].add(d)), q0);
                        odd[r] = step(odd[r], _mm256_loadu_ps(p[r].add(d + 8)), q1);
                    }
                }
                d += 16;
            }
            if d < full {
                // SAFETY: as above, one block of eight remains.
                unsafe {
                    let q0 = _mm256_loadu_ps(q.add(d));
                    for r in 0..4 {
                        even[r] = step(even[r], _mm256_loadu_ps(p[r].add(d)), q0);
                    }
                }
            }
            let a = [0, 1, 2, 3].map(|r| _mm256_add_ps(even[r], odd[r]));
            // Lane j of `h` (and of its upper half) holds part of row j's sum.
            let h = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
            let s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
            let mut sums = [0f32; 4];
            // SAFETY: `sums` holds four floats.
            unsafe { _mm_storeu_ps(sums.as_mut_ptr(), s) };
            for ((o, sum), row) in o.iter_mut().zip(sums).zip(quad) {
                *o = sum + tail(row);
            }
        }
        for (row, o) in quads.remainder().iter().zip(outs.into_remainder()) {
            *o = if l2 {
                super::super::scalar::l2sq(query, row.as_ref())
            } else {
                super::super::scalar::dot(query, row.as_ref())
            };
        }
    }

    /// Distances from one query to each row (see `super::l2sq_rows`).
    #[inline]
    pub fn rows<R: AsRef<[f32]>>(query: &[f32], rows: &[R], l2: bool, out: &mut [f32]) {
        // SAFETY: only called when `cpu()` detected avx2 and fma; sizes checked by the caller.
        unsafe { rows_avx2(query, rows, l2, out) }
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
        adc_scan, dot, indices_below, l2sq, nibble_scan, rows, sketch_bounds, sq8_dot_scan,
        sq8_lut, sq8_prepare, sq8_weights_i16,
    };
}

pub use imp::{
    adc_scan, dot, indices_below, l2sq, nibble_scan, rows, sketch_bounds, sq8_dot_scan, sq8_lut,
    sq8_prepare, sq8_weights_i16,
};

/// The four-row SQ8 scan's prefetch and reduction, shared with the AVX-512 kernel.
#[cfg(target_arch = "x86_64")]
pub(super) use imp::{prefetch_quad_ahead, quad_step16, quad_step8, store_quad};
