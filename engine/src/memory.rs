//! Resident memory accounting by kind, as buckets count it and collection stats report it.

use serde::Serialize;

/// Where a collection's resident bytes are, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct MemoryUse {
    /// Rows stored in buckets (what the per-row kinds below cover).
    pub rows: u64,
    /// SQ8 code rows.
    pub codes: u64,
    /// Binary sketches and their per-row factors.
    pub sketches: u64,
    /// Record ids of stored rows (32-bit offsets where a chunk's ids allow).
    pub ids: u64,
    /// Sequence numbers of stored rows.
    pub seqs: u64,
    /// Per-row SQ8 code norms.
    pub norms: u64,
    /// Payloads of stored rows (slots and text).
    pub payloads: u64,
    /// Per bucket: quantizer ranges, centroid and anchor.
    pub buckets: u64,
    /// Exact vectors of stored rows still in memory (until their chunk is written).
    pub vectors: u64,
    /// Memtable rows (vectors, ids, sequence numbers).
    pub memtables: u64,
    /// Decoded cold blocks in the block cache.
    pub cache: u64,
}

impl MemoryUse {
    /// SQ8 codes plus an 8-byte id per stored row: the floor any IVF-SQ8 index holds (faiss
    /// keeps its ids as 64-bit integers), against which the total is judged.
    pub fn codes_and_ids(&self) -> u64 {
        self.codes + 8 * self.rows
    }

    /// Every kind together.
    pub fn total(&self) -> u64 {
        self.codes
            + self.sketches
            + self.ids
            + self.seqs
            + self.norms
            + self.payloads
            + self.buckets
            + self.vectors
            + self.memtables
            + self.cache
    }
}
