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
