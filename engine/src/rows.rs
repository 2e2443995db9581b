//! The general row batch: ids, sequence numbers, vectors and payloads side by side, as the
//! memtable holds them and as flushes and maintenance carry them into buckets.

use std::sync::Arc;

use crate::distance::Distance;
use crate::topk::TopK;

/// Rows of (id, seq, vector, payload) in arrival order: a memtable's contents, and the rows
/// a flush or a maintenance operation moves into buckets.
#[derive(Debug, Default, Clone)]
pub struct RowBatch {
    /// Record ids.
    pub ids: Vec<u64>,
    /// Sequence number of each row.
    pub seqs: Vec<u64>,
    /// Row-major vectors.
    pub vectors: Vec<f32>,
    /// Payload of each row.
    pub payloads: Vec<Option<Arc<str>>>,
}

impl RowBatch {
    /// Appends one row.
    pub fn push(&mut self, id: u64, seq: u64, vector: &[f32], payload: Option<Arc<str>>) {
        self.ids.push(id);
        self.seqs.push(seq);
        self.vectors.extend_from_slice(vector);
        self.payloads.push(payload);
    }

    /// Appends row `i` of `src` (vectors of dimension `dim`).
    pub fn push_from(&mut self, src: &RowBatch, i: usize, dim: usize) {
        self.push(
            src.ids[i],
            src.seqs[i],
            src.vector(i, dim),
            src.payloads[i].clone(),
        );
    }

    /// Appends every row of `src`.
    pub fn extend_from(&mut self, src: RowBatch) {
        self.ids.extend(src.ids);
        self.seqs.extend(src.seqs);
        self.vectors.extend(src.vectors);
        self.payloads.extend(src.payloads);
    }

    /// (id, seq) of every row.
    pub fn keys(&self) -> Vec<(u64, u64)> {
        self.ids
            .iter()
            .copied()
            .zip(self.seqs.iter().copied())
            .collect()
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Vector of row `i`.
    pub fn vector(&self, i: usize, dim: usize) -> &[f32] {
        &self.vectors[i * dim..(i + 1) * dim]
    }

    /// Exact scan: offers every row that passes `visible` to `top` with key `(buffer tag, row)`.
    pub fn scan_exact(
        &self,
        dist: Distance,
        query: &[f32],
        visible: &dyn Fn(u64, u64) -> bool,
        tag: u32,
        top: &mut TopK<(u32, u32)>,
    ) {
        let dim = query.len();
        for (i, row) in self.vectors.chunks_exact(dim).enumerate() {
            let d = dist.eval(query, row);
            if d < top.threshold() && visible(self.ids[i], self.seqs[i]) {
                top.push(d, (tag, i as u32));
            }
        }
    }

    /// Row holding version `seq` of `id`.
    pub fn find(&self, id: u64, seq: u64) -> Option<usize> {
        (0..self.len())
            .rev()
            .find(|&i| self.ids[i] == id && self.seqs[i] == seq)
    }
}
