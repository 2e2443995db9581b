//! The cold tier of a chunk: its exact f32 vectors, used for re-ranking and rebuilding.
//!
//! A chunk is born with its vectors in memory. Once its segment is durable the vectors are
//! dropped from memory. Single rows (re-ranking) are then read from a memory-mapped plain
//! copy ([`MappedDir`]), or, with `storage.mapped_vectors` off or when that copy cannot be
//! made, one ALP block at a time through the collection's [`BlockCache`] (and, for remote
//! stores, the disk object cache). Either way resident heap stays close to codes + ids.

use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

use crate::error::{Error, Result};
use crate::storage::cache::BlockCache;
use crate::storage::mapped::{MappedDir, MappedRows};
use crate::storage::segment::{self, ColdLayout};
use crate::storage::store::Store;

/// Where a collection's cold blocks come from.
#[derive(Debug)]
pub struct ColdSource {
    /// The object store holding the segments.
    pub store: Arc<Store>,
    /// Decoded blocks kept in memory.
    pub blocks: BlockCache,
    /// Memory-mapped plain copies of stored chunks (None: `storage.mapped_vectors` is off).
    pub mapped: Option<MappedDir>,
}

/// A chunk's place in a stored segment.
#[derive(Debug, Clone)]
pub struct StoredCold {
    /// Where to read from.
    pub source: Arc<ColdSource>,
    /// Segment number.
    pub segment: u64,
    /// Chunk index inside the segment.
    pub chunk: u32,
    /// Block table of the chunk.
    pub layout: Arc<ColdLayout>,
}

impl StoredCold {
    fn name(&self) -> String {
        crate::storage::manifest::segment_name(self.segment)
    }

    /// (segment, chunk, fingerprint of the blocks): what names the chunk's mapped copy.
    fn mapped_key(&self) -> (u64, u32, u64) {
        let crcs: Vec<u8> = self
            .layout
            .blocks
            .iter()
            .flat_map(|b| b.crc.to_le_bytes())
            .collect();
        let tag = crc32c::crc32c(&crcs) as u64 | (self.layout.blocks.len() as u64) << 32;
        (self.segment, self.chunk, tag)
    }

    /// Decoded block `b` (from the cache, or read, checked and decoded; cached when
    /// `keep`).
    fn block(&self, b: usize, rows: u32, dim: usize, keep: bool) -> Result<Arc<[f32]>> {
        let key = (self.segment, self.chunk, b as u32);
        let load = || {
            let name = self.name();
            let store = &self.source.store;
            let block = self.layout.blocks.get(b).ok_or_else(|| {
                Error::Internal(format!("block {b} of chunk {} not in {name}", self.chunk))
            })?;
            let file = store.file(&name)?;
            let raw = store.read_at(&name, &file, block.offset, block.len as u64)?;
            let mut out = Vec::with_capacity(self.layout.block_rows as usize * dim);
            segment::decode_block(&raw, block, b, &self.layout, rows, dim, &mut out)
                .map_err(|e| Error::corrupt(store.path_of(&name), e.offset, e.reason))?;
            Ok(out)
        };
        if keep {
            self.source.blocks.get_or_load(key, load)
        } else {
            self.source.blocks.get_or_read(key, load)
        }
    }
}

/// A chunk's exact vectors: in memory until stored, then on demand.
#[derive(Debug)]
pub struct ColdVectors {
    dim: usize,
    rows: u32,
    resident: RwLock<Option<Arc<[f32]>>>,
    stored: OnceLock<StoredCold>,
    /// The mapped copy once stored (None inside: mapping is off or failed; blocks are read).
    mapped: OnceLock<Option<MappedRows>>,
}

impl ColdVectors {
    /// Vectors held in memory (row-major).
    pub fn resident(vectors: Vec<f32>, dim: usize) -> ColdVectors {
        ColdVectors {
            dim,
            rows: (vectors.len() / dim.max(1)) as u32,
            resident: RwLock::new(Some(vectors.into())),
            stored: OnceLock::new(),
            mapped: OnceLock::new(),
        }
    }

    /// Vectors of `rows` rows that live in a stored segment.
    pub fn stored(stored: StoredCold, rows: u32, dim: usize) -> ColdVectors {
        let c = ColdVectors {
            dim,
            rows,
            resident: RwLock::new(None),
            stored: OnceLock::new(),
            mapped: OnceLock::new(),
        };
        let _ = c.stored.set(stored);
        c
    }

    /// Bytes of exact vectors held in memory by this chunk (0 once stored and dropped).
    pub fn resident_bytes(&self) -> usize {
        self.resident
            .read()
            .as_ref()
            .map_or(0, |v| std::mem::size_of_val(&**v))
    }

    /// Where the vectors are stored, once they are.
    pub fn location(&self) -> Option<&StoredCold> {
        self.stored.get()
    }

    /// Records that the vectors are durable in a segment and drops the in-memory copy (after
    /// writing its mapped copy, when mapping is on).
    pub fn mark_stored(&self, stored: StoredCold) {
        if let (Some(dir), Some(all)) = (&stored.source.mapped, self.in_memory()) {
            let m = dir
                .write(stored.mapped_key(), self.dim, &all)
                .map_err(|e| {
                    tracing::warn!(error = %e, "cannot write a mapped vector file; re-ranking reads blocks")
                })
                .ok();
            let _ = self.mapped.set(m);
        }
        if self.stored.set(stored).is_ok() {
            *self.resident.write() = None;
        }
    }

    /// The mapped copy of stored vectors, made on first use (from the decoded blocks) when
    /// mapping is on and no copy is whole yet.
    fn mapped(&self, s: &StoredCold) -> Option<&MappedRows> {
        self.mapped
            .get_or_init(|| {
                let dir = s.source.mapped.as_ref()?;
                let rows = self.rows as usize;
                dir.get_or_write(s.mapped_key(), rows, self.dim, || {
                    self.decode_all(s, false)
                })
                .map_err(|e| {
                    tracing::warn!(error = %e, "cannot map stored vectors; re-ranking reads blocks")
                })
                .ok()
            })
            .as_ref()
    }

    /// The in-memory copy, if the vectors are still resident.
    pub fn in_memory(&self) -> Option<Arc<[f32]>> {
        self.resident.read().clone()
    }

    /// `f` applied to the vector of row `r`, read in place (no copy, no reference count)
    /// when the vectors are resident or mapped.
    pub fn with_row<T>(&self, r: usize, f: impl FnOnce(&[f32]) -> T) -> Result<T> {
        // A mapped copy holds the same rows as the resident one (it is made only once they
        // are stored): read it without taking the lock, as a re-rank does for every candidate.
        if let Some(Some(m)) = self.mapped.get() {
            return Ok(f(m.row(r)));
        }
        if let Some(all) = self.resident.read().as_deref() {
            return Ok(f(&all[r * self.dim..(r + 1) * self.dim]));
        }
        let s = self.stored_at()?;
        if let Some(m) = self.mapped(s) {
            return Ok(f(m.row(r)));
        }
        let per = s.layout.block_rows as usize;
        let block = s.block(r / per, self.rows, self.dim, true)?;
        let start = (r % per) * self.dim;
        Ok(f(&block[start..start + self.dim]))
    }

    /// The vector of row `r`.
    pub fn row(&self, r: usize) -> Result<Vec<f32>> {
        self.with_row(r, <[f32]>::to_vec)
    }

    /// Calls `f(first_row, rows)` for the vectors block by block (one call with every row
    /// while they are resident or mapped), without concatenating them. When `keep` (readers
    /// that come back: the recall monitor) the mapped copy is made now if need be, or the
    /// blocks read are kept in the cache. (Before, a chunk no re-rank had touched since the
    /// collection was opened was decoded into the heap's block cache: 25 MiB of a reopened
    /// 80k × 384 collection, half again its codes.)
    pub fn for_each_block(&self, keep: bool, mut f: impl FnMut(usize, &[f32])) -> Result<()> {
        if let Some(all) = self.in_memory() {
            f(0, &all);
            return Ok(());
        }
        let s = self.stored_at()?;
        let mapped = if keep {
            self.mapped(s)
        } else {
            self.mapped.get().and_then(Option::as_ref)
        };
        if let Some(m) = mapped {
            f(0, m.all());
            return Ok(());
        }
        let per = s.layout.block_rows as usize;
        for b in 0..s.layout.blocks.len() {
            f(b * per, &s.block(b, self.rows, self.dim, keep)?);
        }
        Ok(())
    }

    /// Every row's vector, row-major. Blocks read for this are not cached (bulk readers:
    /// calibration, rebuilds, scans).
    pub fn all(&self) -> Result<Arc<[f32]>> {
        self.all_with(false)
    }

    /// Every row's vector, row-major. When `keep` (readers that come back: the recall
    /// monitor) they come from the mapped copy, made now if need be, or the blocks read are
    /// kept in the cache.
    pub fn all_with(&self, keep: bool) -> Result<Arc<[f32]>> {
        if let Some(all) = self.in_memory() {
            return Ok(all);
        }
        let s = self.stored_at()?;
        let mapped = if keep {
            self.mapped(s)
        } else {
            self.mapped.get().and_then(Option::as_ref)
        };
        if let Some(m) = mapped {
            return Ok(m.all().into());
        }
        Ok(self.decode_all(s, keep)?.into())
    }

    /// Where the vectors are stored; an error when they are neither resident nor stored.
    fn stored_at(&self) -> Result<&StoredCold> {
        self.location()
            .ok_or_else(|| Error::Internal("chunk vectors are neither in memory nor stored".into()))
    }

    /// Every row decoded from the segment's blocks (kept in the block cache when `keep`).
    fn decode_all(&self, s: &StoredCold, keep: bool) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(self.rows as usize * self.dim);
        for b in 0..s.layout.blocks.len() {
            out.extend_from_slice(&s.block(b, self.rows, self.dim, keep)?);
        }
        Ok(out)
    }
}
