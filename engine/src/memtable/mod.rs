//! L0: the memtable. Writes append to the active buffer in O(1) and are searchable at once by
//! exact scan; a full buffer is frozen and an HNSW graph is built over it in the background,
//! while exact scan keeps serving it until the graph is ready.

pub mod hnsw;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

use crate::config::Metric;
use crate::distance::Distance;
use crate::topk::TopK;
pub use hnsw::Hnsw;

/// Rows of (id, seq, vector, payload) in arrival order.
#[derive(Debug, Default, Clone)]
pub struct MemBuffer {
    /// Record ids.
    pub ids: Vec<u64>,
    /// Sequence number of each row.
    pub seqs: Vec<u64>,
    /// Row-major vectors.
    pub vectors: Vec<f32>,
    /// Payload of each row.
    pub payloads: Vec<Option<Arc<str>>>,
}

impl MemBuffer {
    /// Appends one row.
    pub fn push(&mut self, id: u64, seq: u64, vector: &[f32], payload: Option<Arc<str>>) {
        self.ids.push(id);
        self.seqs.push(seq);
        self.vectors.extend_from_slice(vector);
        self.payloads.push(payload);
    }

    /// Appends row `i` of `src` (vectors of dimension `dim`).
    pub fn push_from(&mut self, src: &MemBuffer, i: usize, dim: usize) {
        self.push(
            src.ids[i],
            src.seqs[i],
            src.vector(i, dim),
            src.payloads[i].clone(),
        );
    }

    /// Appends every row of `src`.
    pub fn extend_from(&mut self, src: MemBuffer) {
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

/// A memtable buffer: the active one takes writes; once frozen it never changes again.
#[derive(Debug, Default)]
pub struct Memtable {
    /// The rows. Readers take the read lock only while scanning.
    pub buf: RwLock<MemBuffer>,
    /// HNSW graph over the rows, set once the background build finishes (frozen only).
    pub graph: OnceLock<Hnsw>,
    sealed: AtomicBool,
}

impl Memtable {
    /// A new empty memtable.
    pub fn new() -> Arc<Memtable> {
        Arc::new(Memtable::default())
    }

    /// Marks the memtable frozen: no row is appended after this.
    pub fn seal(&self) {
        self.sealed.store(true, Ordering::Release);
    }

    /// Whether the memtable is frozen.
    pub fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    /// Builds the HNSW graph over the (frozen) rows unless it exists already. The build is
    /// abandoned as soon as `wanted` turns false.
    pub fn build_graph(
        &self,
        metric: Metric,
        dim: usize,
        m: usize,
        ef_construction: usize,
        wanted: &dyn Fn() -> bool,
    ) {
        if self.graph.get().is_some() {
            return;
        }
        let buf = self.buf.read();
        let params = hnsw::BuildParams {
            dist: Distance::for_metric(metric),
            m,
            ef_construction,
            seed: 0x5eed ^ buf.len() as u64,
        };
        if let Some(graph) = Hnsw::build(&buf.vectors, dim, &params, wanted) {
            let _ = self.graph.set(graph);
        }
    }

    /// Searches the rows: by graph when it is built (and `exact` is false), else exactly.
    #[allow(clippy::too_many_arguments)]
    pub fn search(
        &self,
        dist: Distance,
        query: &[f32],
        k: usize,
        ef: usize,
        visible: &dyn Fn(u64, u64) -> bool,
        tag: u32,
        top: &mut TopK<(u32, u32)>,
    ) {
        let buf = self.buf.read();
        match self.graph.get() {
            Some(g) if g.len() == buf.len() => {
                // Stale rows are filtered after the graph walk; widen the walk to compensate.
                let found = g.search(&buf.vectors, query, ef.max(k * 2));
                for (node, d) in found {
                    let i = node as usize;
                    if visible(buf.ids[i], buf.seqs[i]) {
                        top.push(d, (tag, node));
                    }
                }
            }
            _ => buf.scan_exact(dist, query, visible, tag, top),
        }
    }
}
