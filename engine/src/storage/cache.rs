//! S3-FIFO eviction (Yang et al., "FIFO queues are all you need for cache eviction", SOSP'23)
//! and the in-memory cache of decoded cold blocks built on it.
//!
//! Three FIFO queues: new entries go to a small queue (a tenth of the budget); an entry that
//! is hit again before it leaves the small queue is promoted to the main queue, otherwise it
//! is evicted and its key remembered in a ghost queue; a key that comes back while it is a
//! ghost goes straight to the main queue. The main queue gives each entry a few second chances
//! (a hit counter capped at 3). Weights are bytes, so the budget is a byte budget.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

const MAX_FREQ: u8 = 3;

#[derive(Debug)]
struct Meta {
    weight: u64,
    freq: u8,
    main: bool,
}

/// The S3-FIFO policy over keys with byte weights; the caller holds the values.
#[derive(Debug)]
pub struct S3Fifo<K: Eq + Hash + Clone> {
    budget: u64,
    small: VecDeque<K>,
    main: VecDeque<K>,
    ghost: VecDeque<K>,
    ghost_set: HashSet<K, foldhash::fast::RandomState>,
    meta: HashMap<K, Meta, foldhash::fast::RandomState>,
    small_bytes: u64,
    main_bytes: u64,
}

impl<K: Eq + Hash + Clone> S3Fifo<K> {
    /// A policy keeping at most `budget` bytes.
    pub fn new(budget: u64) -> Self {
        S3Fifo {
            budget,
            small: VecDeque::new(),
            main: VecDeque::new(),
            ghost: VecDeque::new(),
            ghost_set: HashSet::default(),
            meta: HashMap::default(),
            small_bytes: 0,
            main_bytes: 0,
        }
    }

    /// Records a hit; false when the key is not cached.
    pub fn touch(&mut self, key: &K) -> bool {
        match self.meta.get_mut(key) {
            Some(m) => {
                m.freq = (m.freq + 1).min(MAX_FREQ);
                true
            }
            None => false,
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.small_bytes + self.main_bytes
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.meta.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    /// Admits `key` (not cached yet) with `weight` bytes; returns the keys evicted to make
    /// room. An entry larger than the whole budget is evicted at once.
    pub fn insert(&mut self, key: K, weight: u64) -> Vec<K> {
        if self.meta.contains_key(&key) {
            return Vec::new();
        }
        let to_main = self.ghost_set.remove(&key);
        self.meta.insert(
            key.clone(),
            Meta {
                weight,
                freq: 0,
                main: to_main,
            },
        );
        if to_main {
            self.main.push_back(key);
            self.main_bytes += weight;
        } else {
            self.small.push_back(key);
            self.small_bytes += weight;
        }
        let mut evicted = Vec::new();
        while self.bytes() > self.budget {
            match self.evict_one() {
                Some(k) => evicted.push(k),
                None => break,
            }
        }
        evicted
    }

    fn evict_one(&mut self) -> Option<K> {
        if self.small_bytes > self.budget / 10 || self.main.is_empty() {
            while let Some(k) = self.small.pop_front() {
                let m = self.meta.get_mut(&k).expect("queued keys have metadata");
                self.small_bytes -= m.weight;
                if m.freq > 0 {
                    m.freq = 0;
                    m.main = true;
                    self.main_bytes += m.weight;
                    self.main.push_back(k);
                    if self.small_bytes <= self.budget / 10 {
                        break;
                    }
                } else {
                    self.meta.remove(&k);
                    self.remember_ghost(k.clone());
                    return Some(k);
                }
            }
        }
        while let Some(k) = self.main.pop_front() {
            let m = self.meta.get_mut(&k).expect("queued keys have metadata");
            if m.freq > 0 {
                m.freq -= 1;
                self.main.push_back(k);
            } else {
                self.main_bytes -= m.weight;
                self.meta.remove(&k);
                return Some(k);
            }
        }
        None
    }

    fn remember_ghost(&mut self, k: K) {
        self.ghost_set.insert(k.clone());
        self.ghost.push_back(k);
        let cap = self.meta.len().max(64);
        while self.ghost.len() > cap {
            if let Some(old) = self.ghost.pop_front() {
                self.ghost_set.remove(&old);
            }
        }
    }

    /// Forgets `key` (the object was deleted).
    pub fn remove(&mut self, key: &K) {
        if let Some(m) = self.meta.remove(key) {
            if m.main {
                self.main.retain(|k| k != key);
                self.main_bytes -= m.weight;
            } else {
                self.small.retain(|k| k != key);
                self.small_bytes -= m.weight;
            }
        }
    }
}

/// Hit, miss and eviction counts of a cache.
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// Lookups answered from the cache.
    pub hits: AtomicU64,
    /// Lookups that had to load.
    pub misses: AtomicU64,
    /// Entries evicted.
    pub evictions: AtomicU64,
}

impl CacheCounters {
    /// (hits, misses, evictions).
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
            self.evictions.load(Ordering::Relaxed),
        )
    }
}

/// Key of a decoded block: (segment number, chunk, block).
pub type BlockKey = (u64, u32, u32);

/// The blocks held and their eviction order.
type Blocks = (
    HashMap<BlockKey, Arc<[f32]>, foldhash::fast::RandomState>,
    S3Fifo<BlockKey>,
);

/// Decoded cold blocks kept in memory under a byte budget.
#[derive(Debug)]
pub struct BlockCache {
    inner: Mutex<Blocks>,
    /// Counters.
    pub counters: CacheCounters,
}

impl BlockCache {
    /// A cache holding at most `budget` bytes of decoded vectors.
    pub fn new(budget: u64) -> Self {
        BlockCache {
            inner: Mutex::new((HashMap::default(), S3Fifo::new(budget))),
            counters: CacheCounters::default(),
        }
    }

    /// The cached block, or the one `load` produces (which is then cached).
    pub fn get_or_load<E>(
        &self,
        key: BlockKey,
        load: impl FnOnce() -> Result<Vec<f32>, E>,
    ) -> Result<Arc<[f32]>, E> {
        {
            let mut g = self.inner.lock();
            if let Some(v) = g.0.get(&key).cloned() {
                g.1.touch(&key);
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(v);
            }
        }
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        let block: Arc<[f32]> = load()?.into();
        let mut g = self.inner.lock();
        if let std::collections::hash_map::Entry::Vacant(slot) = g.0.entry(key) {
            slot.insert(block.clone());
            let evicted = g.1.insert(key, (block.len() * 4) as u64);
            self.counters
                .evictions
                .fetch_add(evicted.len() as u64, Ordering::Relaxed);
            for k in evicted {
                g.0.remove(&k);
            }
        }
        Ok(block)
    }

    /// The cached block, or the one `load` produces, which is not cached: for bulk reads
    /// (calibration, rebuilds, scans) that would only push the search working set out.
    pub fn get_or_read<E>(
        &self,
        key: BlockKey,
        load: impl FnOnce() -> Result<Vec<f32>, E>,
    ) -> Result<Arc<[f32]>, E> {
        if let Some(v) = self.inner.lock().0.get(&key).cloned() {
            self.counters.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(v);
        }
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        Ok(load()?.into())
    }

    /// Bytes of decoded vectors held.
    pub fn bytes(&self) -> u64 {
        self.inner.lock().1.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hit_wonders_do_not_flush_the_working_set() {
        let mut c = S3Fifo::new(100);
        // A hot working set of 5 entries, hit repeatedly.
        for k in 0..5u32 {
            c.insert(k, 10);
            c.touch(&k);
        }
        // A scan of 200 one-shot entries passes through the small queue.
        for k in 100..300u32 {
            let evicted = c.insert(k, 10);
            assert!(
                evicted.iter().all(|&e| e >= 100),
                "scan evicted {evicted:?}"
            );
            for hot in 0..5u32 {
                c.touch(&hot);
            }
        }
        assert!(c.bytes() <= 100);
        for hot in 0..5u32 {
            assert!(c.touch(&hot), "hot key {hot} was evicted by a scan");
        }
    }

    #[test]
    fn ghosts_return_to_main_and_budget_holds() {
        let mut c = S3Fifo::new(50);
        let mut evicted = Vec::new();
        for k in 0..20u32 {
            evicted.extend(c.insert(k, 10));
        }
        assert!(c.bytes() <= 50);
        assert_eq!(evicted.len() + c.len(), 20);
        // Key 0 was evicted from the small queue; it comes back to the main queue.
        assert!(evicted.contains(&0));
        c.insert(0, 10);
        assert!(c.meta[&0].main);
        c.remove(&0);
        assert!(!c.touch(&0));
        let big = c.insert(999, 1000);
        assert!(big.contains(&999), "an entry over budget is not kept");
    }

    #[test]
    fn block_cache_counts_hits_misses_and_evictions() {
        let c = BlockCache::new(4 * 100);
        let load = || Ok::<_, ()>(vec![1.0f32; 50]);
        c.get_or_load((1, 0, 0), load).unwrap();
        c.get_or_load((1, 0, 0), load).unwrap();
        for b in 1..10 {
            c.get_or_load((1, 0, b), load).unwrap();
        }
        let (hits, misses, evictions) = c.counters.snapshot();
        assert_eq!((hits, misses), (1, 10));
        assert!(evictions >= 8);
        assert!(c.bytes() <= 400);
    }
}
