//! Lossless f32 compression for the cold tier: ALP for values that are decimals in disguise
//! (sensor readings, integer pixel values, rounded embeddings) and ALP_RD for "real" floats
//! whose mantissas are full. After Afroozeh, Kuffó and Boncz, "ALP: Adaptive Lossless
//! floating-Point Compression" (SIGMOD 2024).
//!
//! Values are compressed in independent blocks (at most [`BLOCK_VALUES`] values), so one row
//! can be decoded without touching the rest of its chunk. Each block picks the cheapest of
//! three schemes:
//!
//! - **ALP**: find exponent `e` and factor `f` such that `round(x · 10^e / 10^f)` is an integer
//!   that decodes back to exactly `x`; store the integers frame-of-reference bit-packed, and the
//!   few values that do not round-trip as exceptions (position and raw bits).
//! - **ALP_RD**: split each value's bits into a left part (high bits, dictionary-encoded with
//!   up to 8 entries, exceptions kept aside) and a right part (low bits, stored bit-packed).
//! - **raw**: the plain little-endian bits, when nothing beats them.
//!
//! Decoding is bit-exact: every block round-trips, `-0.0`, NaN payloads and infinities included.

use crate::codec::ByteReader;

/// Values per block (the paper's vector size).
pub const BLOCK_VALUES: usize = 1024;
/// Largest decimal exponent tried for f32.
const MAX_EXP: usize = 10;
/// Values sampled to pick `(e, f)` and the ALP_RD split.
const SAMPLE: usize = 64;
const DICT_MAX: usize = 8;

const SCHEME_RAW: u8 = 0;
const SCHEME_ALP: u8 = 1;
const SCHEME_RD: u8 = 2;

const POW10: [f64; 11] = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10];
const INV_POW10: [f64; 11] = [
    1.0, 0.1, 0.01, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10,
];

/// Integer for `x` under exponent `e` and factor `f` (may not round-trip).
#[inline]
fn alp_encode(x: f32, e: usize, f: usize) -> i64 {
    let scaled = x as f64 * POW10[e] * INV_POW10[f];
    if scaled.is_finite() && scaled.abs() < 9.0e15 {
        scaled.round() as i64
    } else {
        i64::MAX
    }
}

#[inline]
fn alp_decode(d: i64, e: usize, f: usize) -> f32 {
    (d as f64 * POW10[f] * INV_POW10[e]) as f32
}

#[inline]
fn round_trips(x: f32, d: i64, e: usize, f: usize) -> bool {
    d != i64::MAX && alp_decode(d, e, f).to_bits() == x.to_bits()
}

fn bits_for(range: u64) -> u32 {
    64 - range.leading_zeros()
}

/// Appends `values` bit-packed at `width` bits each, least significant bit first.
fn pack(values: impl Iterator<Item = u64>, width: u32, out: &mut Vec<u8>) {
    if width == 0 {
        return;
    }
    let mut acc: u128 = 0;
    let mut filled = 0u32;
    for v in values {
        acc |= ((v & mask(width)) as u128) << filled;
        filled += width;
        while filled >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            filled -= 8;
        }
    }
    if filled > 0 {
        out.push(acc as u8);
    }
}

fn packed_len(n: usize, width: u32) -> usize {
    (n * width as usize).div_ceil(8)
}

/// Reads `n` values of `width` bits each.
fn unpack(data: &[u8], n: usize, width: u32, mut put: impl FnMut(usize, u64)) {
    if width == 0 {
        (0..n).for_each(|i| put(i, 0));
        return;
    }
    let mut acc: u128 = 0;
    let mut filled = 0u32;
    let mut bytes = data.iter();
    for i in 0..n {
        while filled < width {
            acc |= (*bytes.next().unwrap_or(&0) as u128) << filled;
            filled += 8;
        }
        put(i, (acc as u64) & mask(width));
        acc >>= width;
        filled -= width;
    }
}

#[inline]
fn mask(width: u32) -> u64 {
    if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    }
}

fn sample(values: &[f32]) -> impl Iterator<Item = f32> + '_ {
    let step = values.len().div_ceil(SAMPLE).max(1);
    values.iter().step_by(step).copied()
}

/// Picks `(e, f)` minimizing the estimated size on a sample of the block.
fn choose_exponents(values: &[f32]) -> (usize, usize) {
    let mut best = ((0, 0), u64::MAX);
    for e in 0..=MAX_EXP {
        for f in 0..=e {
            let mut exceptions = 0u64;
            let (mut lo, mut hi) = (i64::MAX, i64::MIN);
            for x in sample(values) {
                let d = alp_encode(x, e, f);
                if round_trips(x, d, e, f) {
                    lo = lo.min(d);
                    hi = hi.max(d);
                } else {
                    exceptions += 1;
                }
            }
            let width = if lo <= hi {
                bits_for(hi.wrapping_sub(lo) as u64) as u64
            } else {
                0
            };
            let cost = width * SAMPLE as u64 + exceptions * 48;
            if cost < best.1 {
                best = ((e, f), cost);
            }
        }
    }
    best.0
}

fn encode_alp(values: &[f32], out: &mut Vec<u8>) {
    let (e, f) = choose_exponents(values);
    // `None` marks an exception: its slot packs as 0 (the frame base) and the raw bits
    // are stored after the packed integers.
    let ints: Vec<Option<i64>> = values
        .iter()
        .map(|&x| Some(alp_encode(x, e, f)).filter(|&d| round_trips(x, d, e, f)))
        .collect();
    let exceptions: Vec<(u16, u32)> = ints
        .iter()
        .zip(values)
        .enumerate()
        .filter(|(_, (d, _))| d.is_none())
        .map(|(i, (_, x))| (i as u16, x.to_bits()))
        .collect();
    let base = ints.iter().flatten().copied().min().unwrap_or(0);
    let top = ints.iter().flatten().copied().max().unwrap_or(0);
    let width = bits_for(top.wrapping_sub(base) as u64);
    out.push(SCHEME_ALP);
    out.push(e as u8);
    out.push(f as u8);
    out.push(width as u8);
    out.extend_from_slice(&base.to_le_bytes());
    out.extend_from_slice(&(exceptions.len() as u16).to_le_bytes());
    pack(
        ints.iter()
            .map(|d| d.map_or(0, |d| d.wrapping_sub(base) as u64)),
        width,
        out,
    );
    put_exceptions(&exceptions, |v: &u32| v.to_le_bytes(), out);
}

/// Appends exception positions, then their values (`bytes` encodes one): the layout
/// [`apply_exceptions`] reads.
fn put_exceptions<T, const N: usize>(
    exceptions: &[(u16, T)],
    bytes: impl Fn(&T) -> [u8; N],
    out: &mut Vec<u8>,
) {
    for (pos, _) in exceptions {
        out.extend_from_slice(&pos.to_le_bytes());
    }
    for (_, v) in exceptions {
        out.extend_from_slice(&bytes(v));
    }
}

/// Picks the ALP_RD split (right bits kept raw) and dictionary from a sample.
fn choose_split(values: &[f32]) -> (u32, Vec<u16>) {
    let mut best = (0u32, Vec::new(), u64::MAX);
    for left_bits in 1..=16u32 {
        let right = 32 - left_bits;
        let mut counts: std::collections::HashMap<u16, u32> = Default::default();
        let mut n = 0u64;
        for x in sample(values) {
            *counts.entry((x.to_bits() >> right) as u16).or_default() += 1;
            n += 1;
        }
        let mut by_freq: Vec<(u16, u32)> = counts.into_iter().collect();
        by_freq.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        by_freq.truncate(DICT_MAX);
        let covered: u64 = by_freq.iter().map(|&(_, c)| c as u64).sum();
        let index_bits = bits_for(by_freq.len().saturating_sub(1) as u64) as u64;
        let cost = n * (right as u64 + index_bits) + (n - covered) * 32;
        if cost < best.2 {
            best = (right, by_freq.into_iter().map(|(v, _)| v).collect(), cost);
        }
    }
    (best.0, best.1)
}

fn encode_rd(values: &[f32], out: &mut Vec<u8>) {
    let (right, dict) = choose_split(values);
    let index_width = bits_for(dict.len().saturating_sub(1) as u64);
    let mut indices = Vec::with_capacity(values.len());
    let mut exceptions = Vec::new();
    for (i, x) in values.iter().enumerate() {
        let left = (x.to_bits() >> right) as u16;
        match dict.iter().position(|&d| d == left) {
            Some(p) => indices.push(p as u64),
            None => {
                indices.push(0);
                exceptions.push((i as u16, left));
            }
        }
    }
    out.push(SCHEME_RD);
    out.push(right as u8);
    out.push(dict.len() as u8);
    for d in &dict {
        out.extend_from_slice(&d.to_le_bytes());
    }
    out.extend_from_slice(&(exceptions.len() as u16).to_le_bytes());
    pack(indices.into_iter(), index_width, out);
    pack(
        values.iter().map(|x| (x.to_bits() as u64) & mask(right)),
        right,
        out,
    );
    put_exceptions(&exceptions, |v: &u16| v.to_le_bytes(), out);
}

/// Appends one compressed block of at most [`BLOCK_VALUES`] values to `out`.
pub fn encode_block(values: &[f32], out: &mut Vec<u8>) {
    assert!(values.len() <= BLOCK_VALUES, "block too large");
    let raw_len = 1 + values.len() * 4;
    let start = out.len();
    encode_alp(values, out);
    let alp_len = out.len() - start;
    // ALP wins outright on decimal-like data; try ALP_RD only when it did poorly.
    if alp_len * 8 > values.len() * 20 {
        let mut rd = Vec::new();
        encode_rd(values, &mut rd);
        if rd.len() < alp_len {
            out.truncate(start);
            out.extend_from_slice(&rd);
        }
    }
    if out.len() - start >= raw_len {
        out.truncate(start);
        out.push(SCHEME_RAW);
        for x in values {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
}

/// Decodes one block of exactly `n` values from `data` into `out` (appended). Every length
/// and index is checked: malformed input is an error, never a panic.
pub fn decode_block(data: &[u8], n: usize, out: &mut Vec<f32>) -> Result<(), String> {
    if n > BLOCK_VALUES {
        return Err(format!("block of {n} values exceeds {BLOCK_VALUES}"));
    }
    let mut r = ByteReader::new(data);
    let start = out.len();
    match r.u8()? {
        SCHEME_RAW => {
            for c in r.take(n * 4)?.chunks_exact(4) {
                out.push(f32::from_le_bytes(c.try_into().expect("4 bytes")));
            }
        }
        SCHEME_ALP => {
            let e = r.u8()? as usize;
            let f = r.u8()? as usize;
            let width = r.u8()? as u32;
            if e > MAX_EXP || f > e || width > 64 {
                return Err(format!("bad ALP parameters e={e} f={f} width={width}"));
            }
            let base = i64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes"));
            let exceptions = u16::from_le_bytes(r.take(2)?.try_into().expect("2 bytes")) as usize;
            let packed = r.take(packed_len(n, width))?;
            out.resize(start + n, 0.0);
            let dst = &mut out[start..];
            unpack(packed, n, width, |i, v| {
                dst[i] = alp_decode(base.wrapping_add(v as i64), e, f)
            });
            apply_exceptions(&mut r, exceptions, n, |i, raw: [u8; 4]| {
                dst[i] = f32::from_le_bytes(raw)
            })?;
        }
        SCHEME_RD => {
            let right = r.u8()? as u32;
            let dict_len = r.u8()? as usize;
            if !(16..32).contains(&right) || dict_len == 0 || dict_len > DICT_MAX {
                return Err(format!(
                    "bad ALP_RD parameters right={right} dictionary={dict_len}"
                ));
            }
            let dict: Vec<u16> = r
                .take(dict_len * 2)?
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            let exceptions = u16::from_le_bytes(r.take(2)?.try_into().expect("2 bytes")) as usize;
            let index_width = bits_for(dict_len.saturating_sub(1) as u64);
            let idx = r.take(packed_len(n, index_width))?;
            let rights = r.take(packed_len(n, right))?;
            let mut lefts = vec![0u16; n];
            let mut bad = None;
            unpack(idx, n, index_width, |i, v| match dict.get(v as usize) {
                Some(&d) => lefts[i] = d,
                None => bad = Some(v),
            });
            if let Some(v) = bad {
                return Err(format!("dictionary index {v} out of {dict_len}"));
            }
            apply_exceptions(&mut r, exceptions, n, |i, raw: [u8; 2]| {
                lefts[i] = u16::from_le_bytes(raw)
            })?;
            out.resize(start + n, 0.0);
            let dst = &mut out[start..];
            unpack(rights, n, right, |i, v| {
                dst[i] = f32::from_bits(((lefts[i] as u32) << right) | v as u32)
            });
        }
        s => return Err(format!("unknown block scheme {s}")),
    }
    if r.remaining() != 0 {
        return Err(format!("{} stray bytes after the block", r.remaining()));
    }
    Ok(())
}

/// Reads `count` exception positions, then `count` values of `N` bytes, and applies them.
fn apply_exceptions<const N: usize>(
    r: &mut ByteReader,
    count: usize,
    n: usize,
    mut set: impl FnMut(usize, [u8; N]),
) -> Result<(), String> {
    let positions = r.take(count * 2)?;
    let values = r.take(count * N)?;
    for (p, v) in positions.chunks_exact(2).zip(values.chunks_exact(N)) {
        let pos = u16::from_le_bytes([p[0], p[1]]) as usize;
        if pos >= n {
            return Err(format!("exception position {pos} outside a block of {n}"));
        }
        set(pos, v.try_into().expect("N bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(values: &[f32]) -> usize {
        let mut enc = Vec::new();
        encode_block(values, &mut enc);
        let mut dec = Vec::new();
        decode_block(&enc, values.len(), &mut dec).unwrap();
        let a: Vec<u32> = values.iter().map(|x| x.to_bits()).collect();
        let b: Vec<u32> = dec.iter().map(|x| x.to_bits()).collect();
        assert_eq!(a, b);
        enc.len()
    }

    #[test]
    fn integers_in_float_clothing_pack_to_a_byte() {
        // SIFT-like: small integers stored as f32.
        let v: Vec<f32> = (0..1024).map(|i| ((i * 37) % 200) as f32).collect();
        let size = round_trip(&v);
        assert!(size < 1024 + 32, "{size} bytes");
        assert_eq!(v.len() * 4 / size, 3);
    }

    #[test]
    fn decimals_use_alp_and_full_mantissas_use_rd() {
        let dec: Vec<f32> = (0..1024)
            .map(|i| (i as f32 * 0.37).round() / 100.0)
            .collect();
        let size = round_trip(&dec);
        assert!(size < 1024 * 2, "decimals took {size} bytes");
        let mut rng = 0x2545F4914F6CDD1Du64;
        let real: Vec<f32> = (0..1024)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                (rng >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        let size = round_trip(&real);
        assert!(size < 1024 * 4, "real floats took {size} bytes");
    }

    #[test]
    fn special_values_survive() {
        round_trip(&[
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN,
            1e-45,
        ]);
        round_trip(&[]);
        round_trip(&[-0.0; 17]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut enc = Vec::new();
        encode_block(&[1.5, 2.5, 3.25], &mut enc);
        let mut out = Vec::new();
        assert!(decode_block(&enc[..enc.len() - 1], 3, &mut out).is_err());
        assert!(decode_block(&[9, 0, 0], 3, &mut out).is_err());
        assert!(decode_block(&enc, 5000, &mut out).is_err());
    }

    proptest! {
        #[test]
        fn any_bits_round_trip(bits in proptest::collection::vec(any::<u32>(), 0..300)) {
            let v: Vec<f32> = bits.into_iter().map(f32::from_bits).collect();
            round_trip(&v);
        }

        #[test]
        fn decimal_data_round_trips(ints in proptest::collection::vec(-100000i32..100000, 1..1024), e in 0u32..6) {
            let v: Vec<f32> = ints.iter().map(|&i| i as f32 / 10f32.powi(e as i32)).collect();
            round_trip(&v);
        }
    }
}
