//! L0: the memtable. Writes append to the active buffer in O(1) and are searchable at once by
//! exact scan; a full buffer is frozen and an HNSW graph is built over it in the background,
//! while exact scan keeps serving it until the graph is ready.

pub mod hnsw;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

use crate::config::Metric;
use crate::distance::Distance;
use crate::rows::RowBatch;
use crate::topk::TopK;
pub use hnsw::Hnsw;

/// A memtable buffer: the active one takes writes; once frozen it never changes again.
#[derive(Debug, Default)]
pub struct Memtable {
    /// The rows. Readers take the read lock only while scanning.
    pub buf: RwLock<RowBatch>,
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
