//! Durable L1 state: every commit writes the chunks that are not stored yet as one new
//! segment, the deletes since the last commit as a tombstone file, then a new manifest
//! version; only after that may the WAL be retired. Recovery reads the newest manifest back.
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
#[derive(Debug, Clone, Default, serde::Serialize)]
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

    /// Loads the newest manifest's state into `idmap`; returns the layer and the WAL
    /// sequence number it covers (an empty layer and 0 for a new collection).
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

    pub(crate) fn recover(&self, dim: usize, metric: Metric, idmap: &IdMap) -> Result<(L1, u64)> {
        let store = self.store();
        let mut versions: Vec<(u64, String)> = store
            .list(manifest::MANIFEST_DIR)?
            .into_iter()
            .filter_map(|n| object_number(&n).map(|v| (v, n)))
            .collect();
        versions.sort();
        let Some((_, name)) = versions.last().cloned() else {
            return Ok((L1::empty(dim, metric), 0));
        };
        let m = Manifest::decode(&store.read(&name)?).map_err(|e| corrupt(store, &name, e))?;
        if m.dim as usize != dim {
            return Err(Error::corrupt(
                store.path_of(&name),
                0,
                format!("manifest is for dimension {}, collection has {dim}", m.dim),
            ));
        }
        let wanted: HashSet<(u64, u32)> = m
            .buckets
            .iter()
            .flat_map(|b| b.chunks.iter().copied())
            .collect();
        let mut chunks: HashMap<(u64, u32), (Arc<Chunk>, Sq8)> = HashMap::new();
        let mut infos = HashMap::new();
        for &seg in &m.segments {
            let (info, loaded) = self.load_segment(seg, dim, &wanted)?;
            infos.insert(seg, info);
            chunks.extend(loaded);
        }
        let mut buckets = Vec::with_capacity(m.buckets.len());
        for e in &m.buckets {
            let mut own = Vec::with_capacity(e.chunks.len());
            let mut quant = None;
            for key in &e.chunks {
                let (c, q) = chunks.get(key).ok_or_else(|| {
                    Error::corrupt(
                        store.path_of(&segment_name(key.0)),
                        0,
                        format!(
                            "has no chunk {} (bucket {} of {name} needs it)",
                            key.1, e.id
                        ),
                    )
                })?;
                quant.get_or_insert_with(|| q.clone());
                own.push(c.clone());
            }
            for c in &own {
                for r in 0..c.len() {
                    idmap.load(c.ids.get(r), c.seqs.get(r), Loc::Bucket(e.id));
                }
            }
            buckets.push(Arc::new(Bucket::restore(
                e.id,
                e.centroid.clone(),
                e.anchor.clone(),
                e.radius,
                e.count,
                quant.unwrap_or_else(|| Sq8::fit(&[], dim)),
                own,
            )));
        }
        for &t in &m.tombstones {
            let tname = tombstone_name(t);
            let deletes =
                decode_tombstones(&store.read(&tname)?).map_err(|e| corrupt(store, &tname, e))?;
            for (id, seq) in deletes {
                idmap.load_delete(id, seq);
            }
        }
        for b in &buckets {
            let stale = b
                .chunks
                .iter()
                .flat_map(|c| c.ids.view().iter().zip(c.seqs.view().iter()))
                .filter(|&(id, seq)| !idmap.is_current(id, seq))
                .count();
            b.tally.add_dead(stale);
        }
        let layer = L1::from_buckets(dim, metric, buckets, m.next_bucket);
        let seq = m.seq;
        let mut s = self.state.lock();
        s.segments = infos;
        *self.offsets.lock() = m.offsets.clone();
        s.manifest = Manifest {
            buckets: Vec::new(),
            ..m
        };
        *self.published.lock() = Published::of(&s);
        drop(s);
        self.remove_orphans()?;
        Ok((layer, seq))
    }

    /// Reads and checks segment `seg`; returns its info and the chunks in `wanted`.
    #[allow(clippy::type_complexity)]
    fn load_segment(
        &self,
        seg: u64,
        dim: usize,
        wanted: &HashSet<(u64, u32)>,
    ) -> Result<(SegmentInfo, Vec<((u64, u32), (Arc<Chunk>, Sq8))>)> {
        let store = self.store();
        let name = segment_name(seg);
        let bytes = store.read(&name)?;
        let err = |e| corrupt(store, &name, e);
        let meta = segment::check(&bytes).map_err(err)?;
        if meta.dim != dim {
            return Err(Error::corrupt(
                store.path_of(&name),
                12,
                format!("segment has dimension {}, collection has {dim}", meta.dim),
            ));
        }
        let hot = segment::slice(&bytes, meta.hot);
        let mut out = Vec::new();
        for (i, ch) in meta.chunks.iter().enumerate() {
            if !wanted.contains(&(seg, i as u32)) {
                continue;
            }
            let (ids, seqs, codes) = segment::hot_rows(hot, &meta, i);
            let payload = segment::slice(&bytes, (ch.payload_offset, ch.payload_len));
            let payloads = segment::decode_payloads(payload, ch).map_err(err)?;
            let cold = ColdVectors::stored(
                StoredCold {
                    source: self.cold.clone(),
                    segment: seg,
                    chunk: i as u32,
                    layout: Arc::new(ch.cold.clone()),
                },
                ch.rows,
                dim,
            );
            let chunk = Chunk::stored(&ch.quant, ids, seqs, codes, payloads, cold);
            out.push(((seg, i as u32), (Arc::new(chunk), ch.quant.clone())));
        }
        Ok((
            SegmentInfo {
                bloom: meta.bloom,
                bytes: bytes.len() as u64,
            },
            out,
        ))
    }

    /// Deletes objects the current manifest does not name (left by a crash mid-commit, or
    /// by garbage not yet collected when the process stopped).
    fn remove_orphans(&self) -> Result<()> {
        let s = self.state.lock();
        let m = &s.manifest;
        let keep_segments: HashSet<u64> = m.segments.iter().copied().collect();
        let keep_tombs: HashSet<u64> = m.tombstones.iter().copied().collect();
        let mut doomed = Vec::new();
        for (dir, keep) in [
            (manifest::SEGMENT_DIR, &keep_segments),
            (manifest::TOMBSTONE_DIR, &keep_tombs),
        ] {
            for n in self.store().list(dir)? {
                if object_number(&n).is_none_or(|x| !keep.contains(&x)) {
                    doomed.push(n);
                }
            }
        }
        for n in self.store().list(manifest::MANIFEST_DIR)? {
            if object_number(&n).is_none_or(|v| v < m.version) {
                doomed.push(n);
            }
        }
        drop(s);
        if let Some(dir) = &self.cold.mapped {
            dir.retain(|n| keep_segments.contains(&n));
        }
        for n in doomed {
            tracing::debug!(object = %n, "removing an object no manifest names");
            self.delete_object(&n)?;
        }
        Ok(())
    }

    /// Makes `layer` durable as covering every WAL record up to `seq`: writes its chunks
    /// that are not stored yet, the pending deletes up to `seq`, and a new manifest.
    /// `readers` tells which dropped objects a reader may still use (see [`Readers`]).
    pub(crate) fn commit(
        &self,
        layer: &L1,
        seq: u64,
        counters: BTreeMap<String, u64>,
        readers: Readers,
    ) -> Result<()> {
        let store = self.store();
        let dim = layer.dim();
        let mut s = self.state.lock();
        let mut next_object = s.manifest.next_object;
        let mut written = Vec::new();

        // 1. New chunks → one segment.
        let fresh: Vec<(u32, &Arc<Chunk>)> = layer
            .buckets()
            .iter()
            .flat_map(|b| b.chunks.iter().map(move |c| (b.id, c)))
            .filter(|(_, c)| c.cold.location().is_none())
            .collect();
        if !fresh.is_empty() {
            let vectors: Vec<Arc<[f32]>> = fresh
                .iter()
                .map(|(_, c)| {
                    c.cold.in_memory().ok_or_else(|| {
                        Error::Internal("an unstored chunk has no vectors in memory".into())
                    })
                })
                .collect::<Result<_>>()?;
            let quants: Vec<Arc<Sq8>> = fresh
                .iter()
                .map(|(b, _)| layer.bucket(*b).expect("listed bucket").quant.clone())
                .collect();
            let inputs: Vec<ChunkInput> = fresh
                .iter()
                .zip(&vectors)
                .zip(&quants)
                .map(|(((b, c), v), q)| ChunkInput {
                    bucket: *b,
                    ids: c.ids.view(),
                    seqs: c.seqs.view(),
                    codes: c.codes.as_slice(),
                    quant: q,
                    vectors: v,
                    payloads: c.payloads.view(),
                })
                .collect();
            let (bytes, meta) = segment::encode(dim, &inputs);
            let seg = next_object;
            next_object += 1;
            // Reserved at once: whatever happens to this commit, no later one reuses the name
            // (chunks may point into this object even if the manifest write fails).
            s.manifest.next_object = next_object;
            let len = bytes.len() as u64;
            store.write(&segment_name(seg), bytes)?;
            written.push(segment_name(seg));
            failpoint("segment-written");
            for (i, ((_, c), ch)) in fresh.iter().zip(&meta.chunks).enumerate() {
                c.cold.mark_stored(StoredCold {
                    source: self.cold.clone(),
                    segment: seg,
                    chunk: i as u32,
                    layout: Arc::new(ch.cold.clone()),
                });
            }
            s.segments.insert(
                seg,
                SegmentInfo {
                    bloom: meta.bloom,
                    bytes: len,
                },
            );
        }

        // 2. Which segments the new state names; the others become garbage.
        let mut chunk_refs = Vec::with_capacity(layer.buckets().len());
        let mut live: Vec<u64> = Vec::new();
        for b in layer.buckets() {
            let refs: Vec<(u64, u32)> = b
                .chunks
                .iter()
                .map(|c| {
                    let at = c.cold.location().expect("every chunk is stored by now");
                    (at.segment, at.chunk)
                })
                .collect();
            live.extend(refs.iter().map(|r| r.0));
            chunk_refs.push(refs);
        }
        live.sort_unstable();
        live.dedup();
        let dropped: Vec<u64> = s
            .segments
            .keys()
            .copied()
            .filter(|n| live.binary_search(n).is_err())
            .collect();
        for n in &dropped {
            s.segments.remove(n);
        }

        // 3. Deletes up to `seq` that may hide a stored copy → a tombstone file; merge the
        //    files when there are too many, keeping only entries some segment still needs.
        // Taken out of the pending list only once the manifest is durable.
        let (cut, deletes) = {
            let p = self.pending_deletes.lock();
            let cut = p.partition_point(|d| d.1 <= seq);
            (cut, p[..cut].to_vec())
        };
        let needed = |id: u64| s.segments.values().any(|i| i.bloom.may_contain(id));
        let mut tombstones = s.manifest.tombstones.clone();
        let mut dropped_tombs = Vec::new();
        let mut fresh_tombs: Vec<(u64, u64)> =
            deletes.into_iter().filter(|(id, _)| needed(*id)).collect();
        if tombstones.len() + usize::from(!fresh_tombs.is_empty()) > MAX_TOMBSTONE_FILES {
            for t in tombstones.drain(..) {
                let name = tombstone_name(t);
                let old =
                    decode_tombstones(&store.read(&name)?).map_err(|e| corrupt(store, &name, e))?;
                fresh_tombs.extend(old.into_iter().filter(|(id, _)| needed(*id)));
                dropped_tombs.push(name);
            }
        }
        let mut fresh_tomb_name = None;
        if !fresh_tombs.is_empty() {
            let t = next_object;
            next_object += 1;
            s.manifest.next_object = next_object;
            fresh_tomb_name = Some(tombstone_name(t));
            store.write(&tombstone_name(t), encode_tombstones(&fresh_tombs))?;
            written.push(tombstone_name(t));
            tombstones.push(t);
            failpoint("tombstones-written");
        }

        // 4. The manifest: the commit point.
        let m = Manifest {
            version: s.manifest.version + 1,
            seq: seq.max(s.manifest.seq),
            next_object,
            next_bucket: layer.next_id(),
            dim: dim as u32,
            segments: live,
            tombstones,
            offsets: self.offsets.lock().clone(),
            counters,
            buckets: layer
                .buckets()
                .iter()
                .zip(chunk_refs)
                .map(|(b, chunks)| BucketEntry {
                    id: b.id,
                    count: b.appended(),
                    radius: b.radius,
                    centroid: b.centroid.to_vec(),
                    anchor: b.anchor(),
                    chunks,
                })
                .collect(),
        };
        let result = store.write(&manifest_name(m.version), m.encode());
        if let Err(e) = result {
            // Not committed; the WAL is kept. The new segment stays (chunks in memory point
            // into it; the next commit names it). Names are never reused: the next manifest
            // gets the next version (this one may have landed after all), and the previous
            // manifest, the segments this layer no longer names and the unreferenced
            // tombstone file become garbage once a later commit is durable.
            tracing::warn!(error = %e, "manifest write failed; the WAL is kept");
            let previous = manifest_name(s.manifest.version);
            s.manifest.version = m.version;
            let tag = readers.applied;
            s.garbage.push((previous, tag));
            s.garbage
                .extend(dropped.iter().map(|n| (segment_name(*n), tag)));
            s.garbage.extend(fresh_tomb_name.map(|n| (n, tag)));
            return Err(e);
        }
        failpoint("manifest-written");
        self.pending_deletes.lock().drain(..cut);

        // 5. Garbage of earlier commits goes now unless a reader pinned before it was dropped
        // may still read it (a long scan); this commit's drops go at a later commit.
        let (old_garbage, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut s.garbage)
            .into_iter()
            .partition(|(_, tag)| readers.oldest_pin > *tag);
        let tag = readers.applied;
        s.garbage = kept
            .into_iter()
            .chain(
                dropped
                    .iter()
                    .map(|n| segment_name(*n))
                    .chain(dropped_tombs)
                    .chain(std::iter::once(manifest_name(s.manifest.version)))
                    .map(|n| (n, tag)),
            )
            .collect();
        // The bucket table lives in the layer; only the manifest's bookkeeping is kept.
        s.manifest = Manifest {
            buckets: Vec::new(),
            ..m
        };
        *self.published.lock() = Published::of(&s);
        drop(s);
        for (name, _) in old_garbage {
            if let Err(e) = self.delete_object(&name) {
                tracing::warn!(object = %name, error = %e, "cannot delete an old object");
            }
        }
        Ok(())
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
