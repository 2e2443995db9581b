//! Building the next L1 from the current one. Flushes append rows to buckets; maintenance
//! removes, rebuilds and adds buckets. Every bucket that is rebuilt gets a fresh id, and every
//! row written anywhere is recorded in `placed`, so the id map can be pointed at the row's new
//! home once the layer is published (a row deleted meanwhile is then counted as stale in the
//! bucket that holds it, exactly once).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::{Bucket, Chunk, L1};
use crate::error::Result;
use crate::rows::RowBatch;

/// Share of clipped components in new rows that makes a bucket re-fit its quantizer.
pub const REFIT_CLIPPED: f64 = 0.05;

/// Rows written to a bucket: (bucket id, [(id, seq)]).
pub type Placed = Vec<(u32, Vec<(u64, u64)>)>;

/// A layer under construction.
#[derive(Debug)]
pub struct Reshape {
    /// The layer as of the last materialization.
    layer: L1,
    /// Buckets by position; `None` once removed.
    buckets: Vec<Option<Arc<Bucket>>>,
    pos: HashMap<u32, usize>,
    dirty: bool,
    next_id: u32,
    placed: Placed,
    /// Buckets rebuilt because their quantizer no longer covered new rows.
    pub refits: usize,
    /// Chunks a bucket may hold before an append rebuilds it into one new base chunk.
    pub max_chunks: usize,
}

impl Reshape {
    /// Starts from `layer`.
    pub fn new(layer: L1) -> Reshape {
        Reshape {
            next_id: layer.next_id(),
            buckets: layer.buckets().iter().cloned().map(Some).collect(),
            pos: layer
                .buckets()
                .iter()
                .enumerate()
                .map(|(i, b)| (b.id, i))
                .collect(),
            dirty: false,
            layer,
            placed: Vec::new(),
            refits: 0,
            max_chunks: usize::MAX,
        }
    }

    /// The layer as reshaped so far.
    pub fn layer(&mut self) -> &L1 {
        if self.dirty {
            self.layer = L1::from_buckets(
                self.layer.dim(),
                self.layer.metric(),
                self.buckets.iter().flatten().cloned().collect(),
                self.next_id,
            );
            self.dirty = false;
        }
        &self.layer
    }

    /// The bucket with this id, as reshaped so far.
    pub fn bucket(&self, id: u32) -> Option<&Arc<Bucket>> {
        self.pos.get(&id).and_then(|&i| self.buckets[i].as_ref())
    }

    fn put(&mut self, b: Arc<Bucket>) {
        match self.pos.get(&b.id) {
            Some(&i) => self.buckets[i] = Some(b),
            None => {
                self.pos.insert(b.id, self.buckets.len());
                self.buckets.push(Some(b));
            }
        }
        self.dirty = true;
    }

    /// An id no bucket has had.
    pub fn fresh_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Appends `rows` to bucket `id` as a new (delta) chunk, or rebuilds the bucket into one
    /// new base chunk (fresh id, fitted quantizer, stale rows dropped) when it has no rows
    /// yet, the new rows fall outside its quantizer's ranges, or it already holds
    /// `max_chunks` chunks. Returns the id that now holds the rows.
    pub fn append(
        &mut self,
        id: u32,
        rows: RowBatch,
        is_current: &dyn Fn(u64, u64) -> bool,
    ) -> Result<u32> {
        let Some(old) = self.bucket(id).cloned() else {
            return Ok(id);
        };
        if rows.is_empty() {
            return Ok(id);
        }
        let clipped = old.quant.clipped_fraction(&rows.vectors) > REFIT_CLIPPED;
        if old.rows() == 0 || clipped || old.chunks.len() >= self.max_chunks {
            // A new base: every current row in one chunk, with a quantizer fitted to them.
            self.refits += usize::from(clipped);
            let mut all = old.current_rows(is_current)?;
            all.extend_from(rows);
            let nid = self.fresh_id();
            let b = old.rebuilt(nid, all);
            self.replace(&[id], vec![b]);
            return Ok(nid);
        }
        self.placed.push((id, rows.keys()));
        let chunk = Chunk::build(&old.quant, rows.ids, rows.seqs, rows.vectors, rows.payloads);
        self.put(Arc::new(old.with_chunk(chunk)));
        Ok(id)
    }

    /// Routes each of `rows` to its nearest bucket of the layer as reshaped so far and
    /// appends the groups (see [`Reshape::append`]); returns how many buckets received rows.
    pub fn scatter(
        &mut self,
        rows: RowBatch,
        is_current: &dyn Fn(u64, u64) -> bool,
    ) -> Result<usize> {
        let dim = self.layer.dim();
        let layer = self.layer();
        // Ordered: appends may rebuild buckets under fresh ids, in this order.
        let mut groups: BTreeMap<u32, RowBatch> = BTreeMap::new();
        for i in 0..rows.len() {
            let to = layer.buckets()[layer.route(rows.vector(i, dim))].id;
            groups.entry(to).or_default().push_from(&rows, i, dim);
        }
        let touched = groups.len();
        for (to, g) in groups {
            self.append(to, g, is_current)?;
        }
        Ok(touched)
    }

    /// Removes the buckets `removed` and adds `added` (built with fresh ids); every row of
    /// the added buckets counts as placed.
    pub fn replace(&mut self, removed: &[u32], added: Vec<Bucket>) {
        for id in removed {
            if let Some(i) = self.pos.remove(id) {
                self.buckets[i] = None;
                self.dirty = true;
            }
        }
        for b in added {
            let mut rows = Vec::with_capacity(b.rows());
            for c in &b.chunks {
                rows.extend(c.ids.view().iter().zip(c.seqs.view().iter()));
            }
            self.placed.push((b.id, rows));
            self.next_id = self.next_id.max(b.id + 1);
            self.put(Arc::new(b));
        }
    }

    /// The finished layer and where every written row went (in write order).
    pub fn finish(mut self) -> (L1, Placed) {
        self.dirty = true;
        self.layer();
        (self.layer, self.placed)
    }
}
