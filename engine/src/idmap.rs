//! The id map: for every id, its current version (sequence number), whether it is deleted, and
//! where it lives. Search uses it to drop stale copies; delete and upsert use it to find the
//! old copy in O(1).
//!
//! Visibility against a snapshot taken at sequence `S`: a copy `(id, seq)` is visible when it
//! is the newest version of `id` at or below `S` and that version is not a delete. Readers
//! pin their snapshot ([`Pins`]); the map keeps every older version some pinned snapshot may
//! still see, however many times the id changed since, and drops the others as the id
//! changes again.
//!
//! Why a writer may drop a version superseded at or below `floor = min(applied, oldest pin)`
//! (`applied` read before its batch, then the oldest pin): a reader registers its pin under
//! the registry lock and only then reads the sequence its snapshot uses. If the writer saw
//! the pin, the floor is at or below it; if not, the reader's sequence was read after the
//! writer's reads, so it is at least `applied`. Either way the reader's version is
//! superseded above the floor.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use parking_lot::Mutex;

/// Where the current copy of an id lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loc {
    /// In an L0 memtable (active or frozen).
    Memtable,
    /// In the L1 bucket with this id.
    Bucket(u32),
}

/// The versions of one id: current, previous, then older ones still needed by pinned
/// snapshots (newest first). "No previous version" is written `(0, deleted)`.
#[derive(Debug, Clone)]
struct Entry {
    seq: u64,
    deleted: bool,
    prev_seq: u64,
    prev_deleted: bool,
    loc: Loc,
    /// Boxed so that an id without such history (nearly all) pays one word, not three.
    #[allow(clippy::box_collection)]
    older: Option<Box<Vec<(u64, bool)>>>,
}

impl Entry {
    /// A first (or reloaded) version with no history.
    fn new(seq: u64, deleted: bool, loc: Loc) -> Entry {
        Entry {
            seq,
            deleted,
            prev_seq: 0,
            prev_deleted: true,
            loc,
            older: None,
        }
    }

    /// Makes `(seq, deleted)` current. The versions a snapshot at or above `floor` can no
    /// longer see (superseded at or below it) are dropped.
    fn supersede(&mut self, seq: u64, deleted: bool, floor: u64) {
        let (s0, d0) = (self.seq, self.deleted);
        let (s1, d1) = (self.prev_seq, self.prev_deleted);
        let mut older = self.older.take();
        self.seq = seq;
        self.deleted = deleted;
        // The old current version is superseded at `seq`, above every floor: it stays.
        self.prev_seq = s0;
        self.prev_deleted = d0;
        // The old previous one was superseded at `s0`; each older one where the next stops.
        let real = !(s1 == 0 && d1);
        if s0 > floor && real {
            let v = older.get_or_insert_with(Default::default);
            v.insert(0, (s1, d1));
            let keep = (1..v.len())
                .find(|&i| v[i - 1].0 <= floor)
                .unwrap_or(v.len());
            v.truncate(keep);
        } else {
            older = None;
        }
        self.older = older;
    }

    /// Whether copy `seq` is the live version a snapshot at `snap` sees.
    #[inline]
    fn sees(&self, seq: u64, snap: u64) -> bool {
        if self.seq <= snap {
            return self.seq == seq && !self.deleted;
        }
        if self.prev_seq <= snap {
            return self.prev_seq == seq && !self.prev_deleted;
        }
        self.older
            .as_deref()
            .and_then(|v| v.iter().find(|(s, _)| *s <= snap))
            .is_some_and(|&(s, d)| s == seq && !d)
    }

    /// Versions held, current included (for tests).
    #[cfg(test)]
    fn versions(&self) -> usize {
        1 + usize::from(!(self.prev_seq == 0 && self.prev_deleted))
            + self.older.as_ref().map_or(0, |v| v.len())
    }
}

/// The registry of pinned snapshot sequences.
#[derive(Debug)]
pub struct Pins {
    held: Mutex<BTreeMap<u64, usize>>,
    /// The smallest pinned sequence (`u64::MAX` when none).
    oldest: AtomicU64,
}

impl Default for Pins {
    fn default() -> Self {
        Pins {
            held: Mutex::new(BTreeMap::new()),
            oldest: AtomicU64::new(u64::MAX),
        }
    }
}

/// A pinned snapshot: while it lives, the id map keeps every version it can see.
#[derive(Debug)]
pub struct Pin {
    pins: Arc<Pins>,
    held: u64,
    seq: u64,
}

impl Pin {
    /// The snapshot's sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut held = self.pins.held.lock();
        if let Some(n) = held.get_mut(&self.held) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.held);
            }
        }
        let oldest = held.keys().next().copied().unwrap_or(u64::MAX);
        self.pins.oldest.store(oldest, Ordering::SeqCst);
    }
}

/// Concurrent map from id to current version and location. Hashed with foldhash (seeded per
/// process): every candidate of every search is looked up here, and SipHash was a visible
/// share of search time.
#[derive(Debug, Default)]
pub struct IdMap {
    map: DashMap<u64, Entry, foldhash::quality::RandomState>,
    live: AtomicUsize,
    pins: Arc<Pins>,
}

impl IdMap {
    /// Pins a snapshot: `applied` gives the sequence number, read after the pin is
    /// registered (see the module notes).
    pub fn pin(&self, applied: impl Fn() -> u64) -> Pin {
        let held = {
            let mut h = self.pins.held.lock();
            let at = applied();
            *h.entry(at).or_default() += 1;
            let oldest = h.keys().next().copied().unwrap_or(u64::MAX);
            self.pins.oldest.store(oldest, Ordering::SeqCst);
            at
        };
        Pin {
            pins: self.pins.clone(),
            held,
            seq: applied().max(held),
        }
    }

    /// The smallest pinned snapshot sequence (`u64::MAX` when nothing is pinned).
    pub fn oldest_pin(&self) -> u64 {
        self.pins.oldest.load(Ordering::SeqCst)
    }

    /// The sequence at or below which a writer that read `applied` before its batch may
    /// drop superseded versions.
    pub fn floor(&self, applied: u64) -> u64 {
        applied.min(self.pins.oldest.load(Ordering::SeqCst))
    }

    /// Records an upsert at `seq` (`floor` from [`IdMap::floor`]); returns where the
    /// replaced live copy was, if any.
    pub fn upsert(&self, id: u64, seq: u64, floor: u64) -> Option<Loc> {
        let mut old = None;
        self.map
            .entry(id)
            .and_modify(|e| {
                if !e.deleted {
                    old = Some(e.loc);
                }
                e.supersede(seq, false, floor);
                e.loc = Loc::Memtable;
            })
            .or_insert(Entry::new(seq, false, Loc::Memtable));
        if old.is_none() {
            self.live.fetch_add(1, Ordering::Relaxed);
        }
        old
    }

    /// Records a delete at `seq` (`floor` from [`IdMap::floor`]); returns where the deleted
    /// live copy was, if it existed.
    pub fn delete(&self, id: u64, seq: u64, floor: u64) -> Option<Loc> {
        let mut entry = self.map.get_mut(&id)?;
        if entry.deleted {
            return None;
        }
        let loc = entry.loc;
        entry.supersede(seq, true, floor);
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
                    *e = Entry::new(seq, false, loc);
                } else {
                    kept = false;
                }
            })
            .or_insert_with(|| Entry::new(seq, false, loc));
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
                *e = Entry::new(seq, true, e.loc);
            }
        }
    }

    /// Whether copy `(id, seq)` is what a snapshot at `snapshot_seq` should see.
    #[inline]
    pub fn visible(&self, id: u64, seq: u64, snapshot_seq: u64) -> bool {
        if seq > snapshot_seq {
            return false;
        }
        self.map.get(&id).is_some_and(|e| e.sees(seq, snapshot_seq))
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
        // No pins: only the version before the latest change is kept.
        let free = |applied| m.floor(applied);
        m.upsert(7, 1, free(0));
        assert!(m.visible(7, 1, 1));
        m.upsert(7, 5, free(1));
        // A snapshot taken at 3 still sees version 1; a newer one sees version 5 only.
        assert!(m.visible(7, 1, 3));
        assert!(!m.visible(7, 5, 3));
        assert!(m.visible(7, 5, 5));
        assert!(!m.visible(7, 1, 5));
        m.delete(7, 9, free(5));
        assert!(m.visible(7, 5, 8));
        assert!(!m.visible(7, 5, 9));
        assert_eq!(m.live(), 0);
        assert!(m.delete(7, 10, free(9)).is_none());
        m.upsert(7, 11, free(9));
        assert_eq!(m.live(), 1);
        assert!(!m.visible(7, 5, 10));
    }

    #[test]
    fn a_pinned_snapshot_sees_its_version_however_often_the_id_changes() {
        let m = IdMap::default();
        let applied = AtomicU64::new(0);
        let write = |id: u64, seq: u64, delete: bool| {
            let floor = m.floor(applied.load(Ordering::SeqCst));
            if delete {
                m.delete(id, seq, floor);
            } else {
                m.upsert(id, seq, floor);
            }
            applied.store(seq, Ordering::SeqCst);
        };
        write(1, 1, false);
        write(2, 2, false);
        let pin = m.pin(|| applied.load(Ordering::SeqCst));
        assert_eq!(pin.seq(), 2);
        // Id 1 changes five times and is deleted; id 2 is deleted and re-inserted.
        for seq in 3..8 {
            write(1, seq, false);
        }
        write(1, 8, true);
        write(2, 9, true);
        write(2, 10, false);
        assert!(
            m.visible(1, 1, pin.seq()),
            "the pinned version of id 1 went"
        );
        assert!(
            m.visible(2, 2, pin.seq()),
            "the pinned version of id 2 went"
        );
        assert!(!m.visible(1, 7, pin.seq()) && !m.visible(2, 10, pin.seq()));
        assert!(m.visible(2, 10, 10) && !m.visible(1, 7, 10));
        // A second pin in between sees its own versions.
        let mid = {
            applied.store(10, Ordering::SeqCst);
            m.pin(|| applied.load(Ordering::SeqCst))
        };
        write(1, 11, false);
        write(1, 12, false);
        assert!(!m.visible(1, 7, mid.seq()) && !m.visible(1, 11, mid.seq()));
        assert!(m.visible(1, 1, pin.seq()));
        // Unpinned, the history shrinks back at the next change.
        drop(pin);
        drop(mid);
        write(1, 13, false);
        assert_eq!(m.map.get(&1).unwrap().versions(), 2);
        assert!(m.visible(1, 12, 12) && m.visible(1, 13, 13));
    }

    #[test]
    fn relocation_only_moves_the_current_version() {
        let m = IdMap::default();
        m.upsert(1, 1, 0);
        assert!(m.relocate(1, 1, Loc::Bucket(3)));
        assert_eq!(m.current(1), Some((1, Loc::Bucket(3))));
        assert_eq!(m.upsert(1, 2, 1), Some(Loc::Bucket(3)));
        assert!(!m.relocate(1, 1, Loc::Bucket(4)));
        assert_eq!(m.current(1), Some((2, Loc::Memtable)));
    }
}
