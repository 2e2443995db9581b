//! The live set of a run: every record the systems should hold right now, in write order, so
//! that exact search over it is the ground truth of each search step.

use std::collections::{BTreeMap, HashMap};

use drift_engine::Write;

/// The live set: what exact search runs over.
#[derive(Debug, Default)]
pub struct Live {
    rows: HashMap<u64, (u64, Vec<f32>)>,
    order: BTreeMap<u64, u64>,
    next: u64,
}

impl Live {
    /// Live vectors.
    pub fn len(&self) -> usize {
        self.rows.len()
    }
    /// True when nothing is live.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
    /// Live ids, oldest write first.
    pub fn ids_by_age(&self) -> Vec<u64> {
        self.order.values().copied().collect()
    }
    /// Whether `id` is live.
    pub fn contains(&self, id: u64) -> bool {
        self.rows.contains_key(&id)
    }
    pub(crate) fn apply(&mut self, writes: &[Write]) {
        for w in writes {
            match w {
                Write::Upsert(r) => {
                    if let Some((o, _)) = self.rows.remove(&r.id) {
                        self.order.remove(&o);
                    }
                    self.order.insert(self.next, r.id);
                    self.rows.insert(r.id, (self.next, r.vector.clone()));
                    self.next += 1;
                }
                Write::Delete(id) => {
                    if let Some((o, _)) = self.rows.remove(id) {
                        self.order.remove(&o);
                    }
                }
            }
        }
    }
    pub(crate) fn flat(&self, dim: usize) -> (Vec<u64>, Vec<f32>) {
        let mut ids = Vec::with_capacity(self.rows.len());
        let mut data = Vec::with_capacity(self.rows.len() * dim);
        for id in self.order.values() {
            ids.push(*id);
            data.extend_from_slice(&self.rows[id].1);
        }
        (ids, data)
    }
}
