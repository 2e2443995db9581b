//! Checkpoints: the durable L1 state. Every commit writes the chunks that are not stored yet
//! as one new segment, the deletes since the last commit as a tombstone file, then a new
//! manifest version; only after that may the WAL be retired (`commit.rs`, in named steps).
//! Recovery reads the newest manifest back (`recover.rs`).
//!
//! ```text
//! commit: new chunks ─▶ segments/N.drift ─▶ tombstones/M.tomb ─▶ manifest/V.mf ─▶ (caller) retire WAL
//! open:   manifest/V.mf ─▶ segments (hot rows + block tables) ─▶ id map ─▶ tombstones ─▶ WAL tail
//! ```
//! Objects dropped by a commit are deleted one commit later, so a search still reading the
//! previous version never loses a segment under it. Objects no manifest names (left by a
//! crash between two steps) are deleted when the collection opens.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

mod commit;
mod recover;

/// Suffix of the entry, in the source-offset map, that holds a source key's latest claim
/// epoch (source keys may not contain `@`).
pub(crate) const FENCE_SUFFIX: &str = "@epoch";

use parking_lot::Mutex;

use crate::config::{Metric, StorageSettings};
use crate::error::{Error, Result};
use crate::idmap::{IdMap, Loc};
use crate::ivf::{Bucket, Chunk, L1};
use crate::quant::Sq8;
use crate::storage::cache::BlockCache;
use crate::storage::cold::{ColdSource, ColdVectors, StoredCold};
use crate::storage::failpoint;
use crate::storage::manifest::{
    self, decode_tombstones, encode_tombstones, manifest_name, object_number, segment_name,
    tombstone_name, BucketEntry, Manifest,
};
use crate::storage::mapped::MappedDir;
use crate::storage::segment::{self, Bloom, ChunkInput, FormatError};
use crate::storage::store::Store;

/// Tombstone files a manifest may list before they are merged into one.
const MAX_TOMBSTONE_FILES: usize = 8;

/// What is known about one live segment.
#[derive(Debug)]
struct SegmentInfo {
    bloom: Bloom,
    bytes: u64,
}

#[derive(Debug, Default)]
struct State {
    manifest: Manifest,
    segments: HashMap<u64, SegmentInfo>,
    /// Objects dropped by earlier commits, with the applied sequence number when they were
    /// dropped: deleted by a later commit once no reader pinned at or before it is left.
    garbage: Vec<(String, u64)>,
}

/// Storage sizes and cache counters, for stats.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct StorageStats {
    /// Where the objects live.
    pub uri: String,
    /// Manifest version of the durable state.
    pub manifest_version: u64,
    /// Live segments.
    pub segments: usize,
    /// Bytes of live segments.
    pub segment_bytes: u64,
    /// Live tombstone files.
    pub tombstone_files: usize,
    /// Decoded cold blocks served from memory.
    pub block_cache_hits: u64,
    /// Decoded cold blocks read from storage.
    pub block_cache_misses: u64,
    /// Decoded cold blocks evicted.
    pub block_cache_evictions: u64,
    /// Bytes of decoded cold blocks in memory.
    pub block_cache_bytes: u64,
    /// Remote objects served from the disk cache.
    pub disk_cache_hits: u64,
    /// Remote objects fetched.
    pub disk_cache_misses: u64,
    /// Remote objects evicted from the disk cache.
    pub disk_cache_evictions: u64,
    /// Bytes in the disk cache.
    pub disk_cache_bytes: u64,
    /// Bytes of stored vectors memory-mapped for re-ranking (page cache, not heap).
    pub mapped_vector_bytes: u64,
}

/// A collection's durable L1 state and the objects behind it.
/// What a commit needs to know about readers: the applied sequence number after the layer
/// it commits was installed, and the oldest pinned snapshot (`u64::MAX` when none). An
/// object dropped at applied sequence `a` may be read by a reader pinned at or before `a`
/// (it may hold the version from before the install), never by a later one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Readers {
    pub(crate) applied: u64,
    pub(crate) oldest_pin: u64,
}

#[derive(Debug)]
pub(crate) struct Persist {
    pub(crate) cold: Arc<ColdSource>,
    state: Mutex<State>,
    /// Deletes `(id, seq)` applied since the last commit, in sequence order.
    pending_deletes: Mutex<Vec<(u64, u64)>>,
    /// Source offsets to record with the next commit. A lock of their own: writers stage
    /// offsets while a commit holds `state` across its object-store I/O.
    offsets: Mutex<BTreeMap<String, i64>>,
    /// What the last durable state holds, copied out of `state` when it changes, so that
    /// stats never wait for a commit's object-store I/O.
    published: Mutex<Published>,
}

/// The durable state's sizes and counters, as of the last commit (or recovery).
#[derive(Debug, Clone, Default)]
struct Published {
    manifest_version: u64,
    segments: usize,
    segment_bytes: u64,
    tombstone_files: usize,
    counters: BTreeMap<String, u64>,
}

impl Published {
    fn of(s: &State) -> Published {
        Published {
            manifest_version: s.manifest.version,
            segments: s.segments.len(),
            segment_bytes: s.segments.values().map(|i| i.bytes).sum(),
            tombstone_files: s.manifest.tombstones.len(),
            counters: s.manifest.counters.clone(),
        }
    }
}

fn corrupt(store: &Store, name: &str, e: FormatError) -> Error {
    Error::corrupt(store.path_of(name), e.offset, e.reason)
}

impl Persist {
    /// Opens the store at `uri` with the caches sized by `settings`.
    pub(crate) fn open(
        uri: &str,
        cache_dir: &std::path::Path,
        vectors_dir: &std::path::Path,
        s: &StorageSettings,
    ) -> Result<Self> {
        let store = Arc::new(Store::open(uri, cache_dir, s.disk_cache_bytes)?);
        Ok(Persist {
            cold: Arc::new(ColdSource {
                store,
                blocks: BlockCache::new(s.block_cache_bytes),
                mapped: s
                    .mapped_vectors
                    .then(|| MappedDir::open(vectors_dir))
                    .transpose()?,
            }),
            state: Mutex::new(State::default()),
            published: Mutex::new(Published::default()),
            pending_deletes: Mutex::new(Vec::new()),
            offsets: Mutex::new(BTreeMap::new()),
        })
    }

    fn store(&self) -> &Store {
        &self.cold.store
    }

    /// Records a delete that the next commit must make durable.
    pub(crate) fn note_delete(&self, id: u64, seq: u64) {
        self.pending_deletes.lock().push((id, seq));
    }

    /// Source offsets logged in the WAL, to be recorded with the next commit (claim epochs
    /// too, under `key` + [`FENCE_SUFFIX`]: they only grow, like offsets). An offset
    /// never moves back (a replayed log holds older records than the manifest may).
    pub(crate) fn stage_offsets(&self, offsets: Vec<(String, i64)>) {
        let mut staged = self.offsets.lock();
        for (k, v) in offsets {
            let e = staged.entry(k).or_insert(v);
            *e = (*e).max(v);
        }
    }

    /// Source offsets covered by the durable state (manifest plus logged records), without
    /// the claim epochs stored beside them.
    pub(crate) fn offsets(&self) -> BTreeMap<String, i64> {
        self.offsets
            .lock()
            .iter()
            .filter(|(k, _)| !k.ends_with(FENCE_SUFFIX))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// The latest durable claim epoch of every claimed source key.
    pub(crate) fn fences(&self) -> std::collections::HashMap<String, u64> {
        self.offsets
            .lock()
            .iter()
            .filter_map(|(k, v)| {
                let key = k.strip_suffix(FENCE_SUFFIX)?;
                Some((key.to_string(), u64::try_from(*v).ok()?))
            })
            .collect()
    }

    /// Deletes every object of the collection from its store: manifests first (so that an
    /// interrupted purge leaves no state that names the rest), then segments and tombstones.
    pub(crate) fn purge(&self) -> Result<()> {
        let store = self.store();
        for dir in [
            manifest::MANIFEST_DIR,
            manifest::SEGMENT_DIR,
            manifest::TOMBSTONE_DIR,
        ] {
            for name in store.list(dir)? {
                self.delete_object(&name)?;
            }
        }
        Ok(())
    }

    /// Whether the store holds any manifest, segment or tombstone.
    pub(crate) fn holds_objects(&self) -> Result<bool> {
        for dir in [
            manifest::MANIFEST_DIR,
            manifest::SEGMENT_DIR,
            manifest::TOMBSTONE_DIR,
        ] {
            if !self.store().list(dir)?.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Deletes object `name`, and the mapped vector files of a segment.
    fn delete_object(&self, name: &str) -> Result<()> {
        self.store().delete(name)?;
        if let (Some(dir), true) = (&self.cold.mapped, name.starts_with(manifest::SEGMENT_DIR)) {
            if let Some(n) = object_number(name) {
                dir.forget_segment(n);
            }
        }
        Ok(())
    }

    /// The cumulative counters of the last committed (or recovered) manifest.
    pub(crate) fn counters(&self) -> BTreeMap<String, u64> {
        self.published.lock().counters.clone()
    }

    /// Moves object `name` to `damaged/<name>` in the store (copy, then delete): out of
    /// the way of recovery, kept for inspection. Returns the new name.
    pub(crate) fn set_aside(&self, name: &str) -> Result<String> {
        let store = self.store();
        let aside = format!("damaged/{name}");
        store.write(&aside, store.read(name)?)?;
        store.delete(name)?;
        Ok(aside)
    }

    /// Sizes and counters.
    pub(crate) fn stats(&self) -> StorageStats {
        let s = self.published.lock().clone();
        let (block_hits, block_misses, block_evictions) = self.cold.blocks.counters.snapshot();
        let (dh, dm, de, db) = self.store().cache_stats();
        StorageStats {
            uri: self.store().uri().to_string(),
            manifest_version: s.manifest_version,
            segments: s.segments,
            segment_bytes: s.segment_bytes,
            tombstone_files: s.tombstone_files,
            block_cache_hits: block_hits,
            block_cache_misses: block_misses,
            block_cache_evictions: block_evictions,
            block_cache_bytes: self.cold.blocks.bytes(),
            disk_cache_hits: dh,
            disk_cache_misses: dm,
            disk_cache_evictions: de,
            disk_cache_bytes: db,
            mapped_vector_bytes: self.cold.mapped.as_ref().map_or(0, |d| d.mapped_bytes()),
        }
    }
}
