//! Portable kernels. Written with independent accumulators so the compiler can vectorize them.

/// Lanes of the portable reductions: two vector registers' worth, so that two independent
/// chains of fused multiply-adds hide their latency.
const LANES: usize = 16;

/// Squared Euclidean distance.
#[inline(always)]
pub fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    for (i, (x, y)) in ra.iter().zip(rb).enumerate() {
        let d = x - y;
        acc[i] += d * d;
    }
    fold(acc)
}

/// Inner product.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    for (i, (x, y)) in ra.iter().zip(rb).enumerate() {
        acc[i] += x * y;
    }
    fold(acc)
}

/// Sum of the lanes, pairwise.
#[inline(always)]
fn fold(acc: [f32; LANES]) -> f32 {
    let mut half = [0f32; LANES / 2];
    for i in 0..LANES / 2 {
        half[i] = acc[i] + acc[i + LANES / 2];
    }
    half.iter().sum()
}

/// Distances from one query to consecutive rows of `query.len()` values: squared L2 when
/// `l2`, else the inner product (see [`super::l2sq_rows`]).
#[inline(always)]
pub fn rows<R: AsRef<[f32]>>(query: &[f32], rows: &[R], l2: bool, out: &mut [f32]) {
    for (row, o) in rows.iter().zip(out.iter_mut()) {
        *o = if l2 {
            l2sq(query, row.as_ref())
        } else {
            dot(query, row.as_ref())
        };
    }
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

/// One SQ8 quantizer's per-query preparation (see `kernels::sq8_prepare`): fills `w[..dim]`
/// and returns `(base, centre)`.
#[inline(always)]
pub fn sq8_prepare(query: &[f32], lo: &[f32], step: &[f32], l2: bool, w: &mut [f32]) -> (f32, f32) {
    let dim = query.len();
    let (query, lo, step, w) = (&query[..dim], &lo[..dim], &step[..dim], &mut w[..dim]);
    // Eight running sums over blocks of eight, so that the loop vectorizes.
    let (mut base, mut cen) = ([0f32; 8], [0f32; 8]);
    let full = dim - dim % 8;
    let term = |q: f32, l: f32, s: f32| -> (f32, f32, f32) {
        if l2 {
            let a = q - l;
            let m = a - super::SQ8_MID * s;
            (2.0 * a * s, a * a, m * m)
        } else {
            (q * s, -q * l, q * (l + super::SQ8_MID * s))
        }
    };
    for b in (0..full).step_by(8) {
        for j in 0..8 {
            let (wj, bj, cj) = term(query[b + j], lo[b + j], step[b + j]);
            w[b + j] = wj;
            base[j] += bj;
            cen[j] += cj;
        }
    }
    let (mut b, mut c) = (base.iter().sum::<f32>(), cen.iter().sum::<f32>());
    for d in full..dim {
        let (wd, bd, cd) = term(query[d], lo[d], step[d]);
        w[d] = wd;
        b += bd;
        c += cd;
    }
    (b, c)
}

/// Sketch lower bounds (see `kernels::sketch_bounds`).
#[inline(always)]
pub fn sketch_bounds(cols: &super::BoundColumns, k: &super::BoundTerms, out: &mut [f32]) {
    let n = out.len();
    let (g_ones, g, e, dots) = (
        &cols.g_ones[..n],
        &cols.g[..n],
        &cols.e[..n],
        &cols.dots[..n],
    );
    let rest = |i: usize| {
        let x = k.dot * (dots[i] as i32 as f32) + k.shift;
        let gi = k.g_base + k.g_scale * g[i] as f32;
        k.base - k.ones * g_ones[i] as f32 - gi * x - k.error * e[i] as f32
    };
    match cols.near {
        Some(near) => {
            let near = &near[..n];
            for i in 0..n {
                out[i] = k.near * near[i] as f32 + rest(i);
            }
        }
        None => {
            for (i, o) in out.iter_mut().enumerate() {
                *o = rest(i);
            }
        }
    }
}

/// Factored SQ8 scan with 16-bit weights: `out[i] = scale * sum_d w[d] * code[i][d]`, summed
/// exactly in 32-bit integers (the AVX2 kernel gives the same bits).
#[inline(always)]
pub fn sq8_dot_scan(w: &[i16], scale: f32, codes: &[u8], stride: usize, out: &mut [f32]) {
    for (row, o) in codes.chunks_exact(stride).zip(out.iter_mut()) {
        let mut acc = [0i32; 8];
        for (ws, cs) in w.chunks_exact(8).zip(row.chunks_exact(8)) {
            for i in 0..8 {
                acc[i] += ws[i] as i32 * cs[i] as i32;
            }
        }
        *o = scale * acc.iter().sum::<i32>() as f32;
    }
}

/// Largest weight magnitude [`sq8_weights_i16`] uses for rows of `stride` codes: 16 bits,
/// and small enough that no row's sum (at most `stride * 255 * limit`) leaves an `i32`.
pub fn sq8_weight_limit(stride: usize) -> f32 {
    let fits = i32::MAX as f64 / (255.0 * stride.max(1) as f64);
    fits.min(i16::MAX as f64).floor() as f32
}

/// Largest magnitude among `xs` (0 when empty; NaN ignored).
pub fn peak_abs<'a>(xs: impl IntoIterator<Item = &'a f32>) -> f32 {
    xs.into_iter()
        .fold(0f32, |m, x| if x.abs() > m { x.abs() } else { m })
}

/// Rounds float weights to 16-bit ones on a common scale: `w[d] ≈ scale * out[d]`, each
/// within `scale / 2`. Returns `scale` (1 for all-zero weights).
pub fn sq8_weights_i16(w: &[f32], out: &mut Vec<i16>) -> f32 {
    let peak = peak_abs(w);
    out.clear();
    if !(peak > 0.0 && peak.is_finite()) {
        out.resize(w.len(), 0);
        return 1.0;
    }
    let scale = peak / sq8_weight_limit(w.len());
    let inv = 1.0 / scale;
    // Round half away from zero by truncating `x + 0.5 sign(x)`: no libm call per weight
    // (the AVX2 kernel rounds in vectors; this is the fallback).
    out.extend(w.iter().map(|x| {
        let y = x * inv;
        (y + 0.5f32.copysign(y)) as i32 as i16
    }));
    scale
}

/// Sixteen-entry tables of 4-bit query `levels`, one per group of four code bits: entry `m`
/// of group `g` is the sum of `levels[4g + j]` over the set bits `j` of `m` (at most 60).
pub fn nibble_tables(levels: &[u8], tables: &mut Vec<u8>) {
    tables.clear();
    tables.reserve(levels.len() * 4);
    // MASKS[j][m] selects level j into entry m when bit j of m is set: entry sums are four
    // AND + ADD over sixteen bytes, which vectorize.
    const MASKS: [[u8; 16]; 4] = {
        let mut m = [[0u8; 16]; 4];
        let mut j = 0;
        while j < 4 {
            let mut e = 0;
            while e < 16 {
                if e >> j & 1 == 1 {
                    m[j][e] = 0xff;
                }
                e += 1;
            }
            j += 1;
        }
        m
    };
    for group in levels.chunks(4) {
        let mut t = [0u8; 16];
        for (mask, &l) in MASKS.iter().zip(group) {
            let l = l & 15;
            for (e, &m) in t.iter_mut().zip(mask) {
                *e += l & m;
            }
        }
        tables.extend_from_slice(&t);
    }
}

/// Nibble `g` of a row-major binary code (bits `4g..4g + 4`).
#[inline(always)]
fn nibble(code: &[u64], g: usize) -> u8 {
    ((code[g / 16] >> ((g % 16) * 4)) & 15) as u8
}

/// Packs row-major binary codes (`words` u64 per row) into the blocked layout that
/// [`nibble_scan`] reads: blocks of [`super::NIBBLE_BLOCK`] rows (the last padded with zero
/// rows); inside a block, for each pair of nibble groups `(2h, 2h + 1)`, 32 bytes whose byte
/// `i` holds row `i`'s nibble `2h` in its low half and nibble `2h + 1` in its high half.
pub fn nibble_pack(codes: &[u64], words: usize, out: &mut Vec<u8>) {
    let block = super::NIBBLE_BLOCK;
    let rows = codes.len() / words.max(1);
    let pairs = words * 8;
    let blocks = rows.div_ceil(block);
    out.clear();
    out.resize(blocks * pairs * block, 0);
    for (r, code) in codes.chunks_exact(words).enumerate() {
        let (b, i) = (r / block, r % block);
        for h in 0..pairs {
            out[(b * pairs + h) * block + i] = nibble(code, 2 * h) | nibble(code, 2 * h + 1) << 4;
        }
    }
}

/// Appends to `out` the index of every value below `limit` (NaN is never below), in order.
pub fn indices_below(values: &[f32], limit: f32, out: &mut Vec<u32>) {
    out.extend(
        values
            .iter()
            .enumerate()
            .filter(|(_, &v)| v < limit)
            .map(|(i, _)| i as u32),
    );
}

/// Table scan of packed binary codes: `out[i] = sum_g tables[16 g + nibble_g(row i)]` for
/// every row of the blocks in `packed` (`groups` nibbles per row, `out.len()` rows, a
/// multiple of [`super::NIBBLE_BLOCK`]).
#[inline(always)]
pub fn nibble_scan(tables: &[u8], packed: &[u8], groups: usize, out: &mut [u32]) {
    let block = super::NIBBLE_BLOCK;
    let pairs = groups / 2;
    for (b, o) in out.chunks_exact_mut(block).enumerate() {
        o.fill(0);
        let bytes = &packed[b * pairs * block..(b + 1) * pairs * block];
        for (h, lane) in bytes.chunks_exact(block).enumerate() {
            let (lo, hi) = (
                &tables[32 * h..32 * h + 16],
                &tables[32 * h + 16..32 * h + 32],
            );
            for (acc, &x) in o.iter_mut().zip(lane) {
                *acc += lo[(x & 15) as usize] as u32 + hi[(x >> 4) as usize] as u32;
            }
        }
    }
}
