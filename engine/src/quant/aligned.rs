//! Growable byte buffer whose start is 64-byte aligned (one cache line), for SQ8 code rows.

use bytemuck::{Pod, Zeroable};

#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// Rows of `stride` bytes stored contiguously in cache-line aligned memory.
#[derive(Clone, Default)]
pub struct AlignedCodes {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedCodes {
    /// An empty buffer with room for `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> Self {
        AlignedCodes {
            lines: Vec::with_capacity(bytes.div_ceil(64)),
            len: 0,
        }
    }

    /// Appends bytes at the end.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        let new_len = self.len + data.len();
        self.lines.resize(new_len.div_ceil(64), Line([0; 64]));
        let start = self.len;
        bytemuck::cast_slice_mut::<Line, u8>(&mut self.lines)[start..new_len].copy_from_slice(data);
        self.len = new_len;
    }

    /// The stored bytes.
    pub fn as_slice(&self) -> &[u8] {
        &bytemuck::cast_slice::<Line, u8>(&self.lines)[..self.len]
    }

    /// Number of stored bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Debug for AlignedCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedCodes({} bytes)", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_aligned_and_keeps_bytes() {
        let mut c = AlignedCodes::default();
        let mut want = Vec::new();
        for i in 0..50u8 {
            let row = vec![i; 24];
            c.extend_from_slice(&row);
            want.extend_from_slice(&row);
            assert_eq!(c.as_slice().as_ptr() as usize % 64, 0);
        }
        assert_eq!(c.as_slice(), &want[..]);
        assert_eq!(c.len(), 50 * 24);
    }
}
