//! Any bytes given to the segment reader: an error or a fully checked segment, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = drift_engine::storage::segment::decode(data) {
        // A segment that passes every check decodes to consistent chunks.
        for (c, m) in d.chunks.iter().zip(&d.meta.chunks) {
            assert_eq!(c.ids.len(), m.rows as usize);
            assert_eq!(c.vectors.len(), m.rows as usize * d.meta.dim);
        }
    }
    let mut out = Vec::new();
    let n = data.first().copied().unwrap_or(0) as usize * 4;
    let _ = drift_engine::storage::alp::decode_block(data.get(1..).unwrap_or(&[]), n, &mut out);
});
