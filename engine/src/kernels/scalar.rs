//! Portable kernels. Written with independent accumulators so the compiler can vectorize them.

/// Squared Euclidean distance.
#[inline(always)]
pub fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    let mut tail = 0f32;
    for (x, y) in ra.iter().zip(rb) {
        let d = x - y;
        tail += d * d;
    }
    acc.iter().sum::<f32>() + tail
}

/// Inner product.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut tail = 0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    acc.iter().sum::<f32>() + tail
}

/// Table-lookup ADC over rows of `stride` codes (see [`super::adc_scan`]).
#[inline(always)]
pub fn adc_scan(lut: &[f32], codes: &[u8], stride: usize, out: &mut [f32]) {
    for (row, o) in codes.chunks_exact(stride).zip(out.iter_mut()) {
        let mut acc = [0f32; 4];
        for (g, quad) in row.chunks_exact(4).enumerate() {
            let base = g * 4 * 256;
            acc[0] += lut[base + quad[0] as usize];
            acc[1] += lut[base + 256 + quad[1] as usize];
            acc[2] += lut[base + 512 + quad[2] as usize];
            acc[3] += lut[base + 768 + quad[3] as usize];
        }
        *o = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    }
}

/// Code values 0..=255 as floats, so table loops vectorize without integer conversion.
static CODE_VALUES: [f32; 256] = {
    let mut t = [0f32; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i as f32;
        i += 1;
    }
    t
};

/// Fills `lut[d * 256 + c]` with the SQ8 partial distance of dimension `d` for code `c`:
/// `(q - lo - c * step)^2` when `l2`, else `-q * (lo + c * step)`.
#[inline(always)]
pub fn sq8_lut(query: &[f32], lo: &[f32], step: &[f32], l2: bool, lut: &mut [f32]) {
    for (d, table) in lut.chunks_exact_mut(256).take(query.len()).enumerate() {
        let (q, l, s) = (query[d], lo[d], step[d]);
        if l2 {
            let base = q - l;
            for (t, c) in table.iter_mut().zip(CODE_VALUES.iter()) {
                let diff = base - c * s;
                *t = diff * diff;
            }
        } else {
            let (a, b) = (-q * l, -q * s);
            for (t, c) in table.iter_mut().zip(CODE_VALUES.iter()) {
                *t = a + b * c;
            }
        }
    }
}

/// Factored SQ8 scan: `out[i] = sum_d w[d] * code[i][d]` over rows of `stride` codes.
#[inline(always)]
pub fn sq8_dot_scan(w: &[f32], codes: &[u8], stride: usize, out: &mut [f32]) {
    for (row, o) in codes.chunks_exact(stride).zip(out.iter_mut()) {
        let mut acc = [0f32; 8];
        for (ws, cs) in w.chunks_exact(8).zip(row.chunks_exact(8)) {
            for i in 0..8 {
                acc[i] += ws[i] * cs[i] as f32;
            }
        }
        *o = acc.iter().sum();
    }
}

/// Binary dot products: `out[i] = sum_j 2^j * popcount(code_i & plane_j)` for code rows of
/// `words` u64 words and four bit planes of the query (`planes.len() == 4 * words`).
#[inline(always)]
pub fn bits_scan(planes: &[u64], codes: &[u64], words: usize, out: &mut [u32]) {
    for (code, o) in codes.chunks_exact(words).zip(out.iter_mut()) {
        let mut acc = 0u32;
        for (j, plane) in planes.chunks_exact(words).enumerate() {
            let mut ones = 0u32;
            for (c, p) in code.iter().zip(plane) {
                ones += (c & p).count_ones();
            }
            acc += ones << j;
        }
        *o = acc;
    }
}

/// Splits 4-bit levels into four bit planes of `levels.len() / 64` words each (bit `i % 64`
/// of word `j * words + i / 64` is bit `j` of `levels[i]`).
#[inline(always)]
pub fn bit_planes(levels: &[u8], planes: &mut Vec<u64>) {
    let words = levels.len() / 64;
    planes.clear();
    planes.resize(4 * words, 0);
    for (w, block) in levels.chunks_exact(64).enumerate() {
        for j in 0..4 {
            let mut word = 0u64;
            for (i, l) in block.iter().enumerate() {
                word |= (((l >> j) & 1) as u64) << i;
            }
            planes[j * words + w] = word;
        }
    }
}
