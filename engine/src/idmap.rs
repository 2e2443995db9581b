//! The id map: for every id, its current version (sequence number), whether it is deleted, and
//! where it lives. Search uses it to drop stale copies; delete and upsert use it to find the
//! old copy in O(1).
//!
//! Visibility against a snapshot taken at sequence `S`: a copy `(id, seq)` is visible when it
//! is the newest version of `id` at or below `S` and that version is not a delete. The map
//! keeps the current and the previous version, which answers this for every search that
//! started before the latest change of the id.

use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;

/// Where the current copy of an id lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loc {
    /// In an L0 memtable (active or frozen).
    Memtable,
    /// In the L1 bucket with this id.
    Bucket(u32),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    seq: u64,
    deleted: bool,
    prev_seq: u64,
    prev_deleted: bool,
    loc: Loc,
}

/// Concurrent map from id to current version and location. Hashed with foldhash (seeded per
/// process): every candidate of every search is looked up here, and SipHash was a visible
/// share of search time.
#[derive(Debug, Default)]
pub struct IdMap {
    map: DashMap<u64, Entry, foldhash::quality::RandomState>,
    live: AtomicUsize,
}

impl IdMap {
    /// Records an upsert at `seq`; returns where the replaced live copy was, if any.
    pub fn upsert(&self, id: u64, seq: u64) -> Option<Loc> {
        let mut old = None;
        self.map
            .entry(id)
            .and_modify(|e| {
                if !e.deleted {
                    old = Some(e.loc);
                }
                *e = Entry {
                    seq,
                    deleted: false,
                    prev_seq: e.seq,
                    prev_deleted: e.deleted,
                    loc: Loc::Memtable,
                };
            })
            .or_insert(Entry {
                seq,
                deleted: false,
                prev_seq: 0,
                prev_deleted: true,
                loc: Loc::Memtable,
            });
        if old.is_none() {
            self.live.fetch_add(1, Ordering::Relaxed);
        }
        old
    }

    /// Records a delete at `seq`; returns where the deleted live copy was, if it existed.
    pub fn delete(&self, id: u64, seq: u64) -> Option<Loc> {
        let mut entry = self.map.get_mut(&id)?;
        if entry.deleted {
            return None;
        }
        let loc = entry.loc;
        *entry = Entry {
            seq,
            deleted: true,
            prev_seq: entry.seq,
            prev_deleted: false,
            loc,
        };
        self.live.fetch_sub(1, Ordering::Relaxed);
        Some(loc)
    }

    /// Loads a copy found in storage; a newer copy of the same id wins.
    pub fn load(&self, id: u64, seq: u64, loc: Loc) -> bool {
        let mut replaced_live = false;
        let mut kept = true;
        self.map
            .entry(id)
            .and_modify(|e| {
                if e.seq < seq {
                    replaced_live = !e.deleted;
                    *e = Entry {
                        seq,
                        deleted: false,
                        prev_seq: 0,
                        prev_deleted: true,
                        loc,
                    };
                } else {
                    kept = false;
                }
            })
            .or_insert_with(|| Entry {
                seq,
                deleted: false,
                prev_seq: 0,
                prev_deleted: true,
                loc,
            });
        if kept && !replaced_live {
            self.live.fetch_add(1, Ordering::Relaxed);
        }
        kept
    }

    /// Loads a durable delete: hides every copy of `id` older than `seq`.
    pub fn load_delete(&self, id: u64, seq: u64) {
        if let Some(mut e) = self.map.get_mut(&id) {
            if e.seq < seq {
                if !e.deleted {
                    self.live.fetch_sub(1, Ordering::Relaxed);
                }
                *e = Entry {
                    seq,
                    deleted: true,
                    prev_seq: 0,
                    prev_deleted: true,
                    loc: e.loc,
                };
            }
        }
    }

    /// Whether copy `(id, seq)` is what a snapshot at `snapshot_seq` should see.
    #[inline]
    pub fn visible(&self, id: u64, seq: u64, snapshot_seq: u64) -> bool {
        if seq > snapshot_seq {
            return false;
        }
        match self.map.get(&id) {
            None => false,
            Some(e) if e.seq <= snapshot_seq => e.seq == seq && !e.deleted,
            Some(e) => e.prev_seq == seq && !e.prev_deleted,
        }
    }

    /// Whether `(id, seq)` is the current live version.
    pub fn is_current(&self, id: u64, seq: u64) -> bool {
        self.map
            .get(&id)
            .is_some_and(|e| e.seq == seq && !e.deleted)
    }

    /// Current live version and location of `id`.
    pub fn current(&self, id: u64) -> Option<(u64, Loc)> {
        self.map
            .get(&id)
            .filter(|e| !e.deleted)
            .map(|e| (e.seq, e.loc))
    }

    /// Moves the location of `id` to `loc` if its current version is still `seq`.
    pub fn relocate(&self, id: u64, seq: u64, loc: Loc) -> bool {
        match self.map.get_mut(&id) {
            Some(mut e) if e.seq == seq && !e.deleted => {
                e.loc = loc;
                true
            }
            _ => false,
        }
    }

    /// Number of live (not deleted) ids.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_sees_the_version_current_at_its_sequence() {
        let m = IdMap::default();
        m.upsert(7, 1);
        assert!(m.visible(7, 1, 1));
        m.upsert(7, 5);
        // A snapshot taken at 3 still sees version 1; a newer one sees version 5 only.
        assert!(m.visible(7, 1, 3));
        assert!(!m.visible(7, 5, 3));
        assert!(m.visible(7, 5, 5));
        assert!(!m.visible(7, 1, 5));
        m.delete(7, 9);
        assert!(m.visible(7, 5, 8));
        assert!(!m.visible(7, 5, 9));
        assert_eq!(m.live(), 0);
        assert!(m.delete(7, 10).is_none());
        m.upsert(7, 11);
        assert_eq!(m.live(), 1);
        assert!(!m.visible(7, 5, 10));
    }

    #[test]
    fn relocation_only_moves_the_current_version() {
        let m = IdMap::default();
        m.upsert(1, 1);
        assert!(m.relocate(1, 1, Loc::Bucket(3)));
        assert_eq!(m.current(1), Some((1, Loc::Bucket(3))));
        assert_eq!(m.upsert(1, 2), Some(Loc::Bucket(3)));
        assert!(!m.relocate(1, 1, Loc::Bucket(4)));
        assert_eq!(m.current(1), Some((2, Loc::Memtable)));
    }
}
