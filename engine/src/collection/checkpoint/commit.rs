//! A commit in named steps: new chunks → a segment, the live segments, deletes → a tombstone
//! file, the manifest (the commit point), then garbage.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;

impl Persist {
    /// Makes `layer` durable as covering every WAL record up to `seq`: writes its chunks
    /// that are not stored yet, the pending deletes up to `seq`, and a new manifest.
    /// `readers` tells which dropped objects a reader may still use (see [`Readers`]).
    /// Object names are reserved as they are taken, so no later commit reuses one whatever
    /// happens to this one.
    pub(crate) fn commit(
        &self,
        layer: &L1,
        seq: u64,
        counters: BTreeMap<String, u64>,
        readers: Readers,
    ) -> Result<()> {
        let mut s = self.state.lock();
        self.store_new_chunks(&mut s, layer)?;
        let live = LiveSegments::of(&mut s, layer);
        let tombs = self.store_tombstones(&mut s, seq)?;
        let m = self.manifest_for(&s, layer, seq, &live, &tombs, counters);
        // The commit point.
        if let Err(e) = self.store().write(&manifest_name(m.version), m.encode()) {
            tracing::warn!(error = %e, "manifest write failed; the WAL is kept");
            Self::abandon(&mut s, m.version, &live, tombs, readers);
            return Err(e);
        }
        failpoint("manifest-written");
        self.pending_deletes.lock().drain(..tombs.cut);
        let old_garbage = Self::collect_garbage(&mut s, m, &live, tombs, readers);
        *self.published.lock() = Published::of(&s);
        drop(s);
        for name in old_garbage {
            if let Err(e) = self.delete_object(&name) {
                tracing::warn!(object = %name, error = %e, "cannot delete an old object");
            }
        }
        Ok(())
    }

    /// Commit step 1: the chunks not stored yet → one new segment, and each chunk learns
    /// where its vectors now are.
    fn store_new_chunks(&self, s: &mut State, layer: &L1) -> Result<()> {
        let fresh: Vec<(u32, &Arc<Chunk>)> = layer
            .buckets()
            .iter()
            .flat_map(|b| b.chunks.iter().map(move |c| (b.id, c)))
            .filter(|(_, c)| c.cold.location().is_none())
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
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
        let (bytes, meta) = segment::encode(layer.dim(), &inputs);
        // Reserved at once: chunks may point into this object even if the manifest write
        // fails.
        let seg = s.manifest.next_object;
        s.manifest.next_object += 1;
        let len = bytes.len() as u64;
        self.store().write(&segment_name(seg), bytes)?;
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
        Ok(())
    }

    /// Commit step 3: deletes up to `seq` that may hide a stored copy → a tombstone file;
    /// the files are merged when there are too many, keeping only entries some segment still
    /// needs. The deletes leave the pending list only once the manifest is durable.
    fn store_tombstones(&self, s: &mut State, seq: u64) -> Result<Tombstones> {
        let store = self.store();
        let (cut, deletes) = {
            let p = self.pending_deletes.lock();
            let cut = p.partition_point(|d| d.1 <= seq);
            (cut, p[..cut].to_vec())
        };
        let needed = |id: u64| s.segments.values().any(|i| i.bloom.may_contain(id));
        let mut files = s.manifest.tombstones.clone();
        let mut merged = Vec::new();
        let mut entries: Vec<(u64, u64)> =
            deletes.into_iter().filter(|(id, _)| needed(*id)).collect();
        if files.len() + usize::from(!entries.is_empty()) > MAX_TOMBSTONE_FILES {
            for t in files.drain(..) {
                let name = tombstone_name(t);
                let old =
                    decode_tombstones(&store.read(&name)?).map_err(|e| corrupt(store, &name, e))?;
                entries.extend(old.into_iter().filter(|(id, _)| needed(*id)));
                merged.push(name);
            }
        }
        let mut written = None;
        if !entries.is_empty() {
            let t = s.manifest.next_object;
            s.manifest.next_object += 1;
            store.write(&tombstone_name(t), encode_tombstones(&entries))?;
            written = Some(tombstone_name(t));
            files.push(t);
            failpoint("tombstones-written");
        }
        Ok(Tombstones {
            cut,
            files,
            merged,
            written,
        })
    }

    /// Commit step 4's manifest: the layer's buckets and the objects the state names.
    fn manifest_for(
        &self,
        s: &State,
        layer: &L1,
        seq: u64,
        live: &LiveSegments,
        tombs: &Tombstones,
        counters: BTreeMap<String, u64>,
    ) -> Manifest {
        Manifest {
            version: s.manifest.version + 1,
            seq: seq.max(s.manifest.seq),
            next_object: s.manifest.next_object,
            next_bucket: layer.next_id(),
            dim: layer.dim() as u32,
            segments: live.names.clone(),
            tombstones: tombs.files.clone(),
            offsets: self.offsets.lock().clone(),
            counters,
            buckets: layer
                .buckets()
                .iter()
                .zip(&live.chunk_refs)
                .map(|(b, chunks)| BucketEntry {
                    id: b.id,
                    count: b.appended(),
                    radius: b.radius,
                    centroid: b.centroid.to_vec(),
                    anchor: b.anchor(),
                    chunks: chunks.clone(),
                })
                .collect(),
        }
    }

    /// A manifest write failed: not committed, the WAL is kept. The new segment stays
    /// (chunks in memory point into it; the next commit names it). Names are never reused:
    /// the next manifest gets the next version (this one may have landed after all), and the
    /// previous manifest, the segments this layer no longer names and the unreferenced
    /// tombstone file become garbage once a later commit is durable.
    fn abandon(
        s: &mut State,
        version: u64,
        live: &LiveSegments,
        tombs: Tombstones,
        readers: Readers,
    ) {
        let previous = manifest_name(s.manifest.version);
        s.manifest.version = version;
        let tag = readers.applied;
        s.garbage.push((previous, tag));
        s.garbage
            .extend(live.dropped.iter().map(|n| (segment_name(*n), tag)));
        s.garbage.extend(tombs.written.map(|n| (n, tag)));
    }

    /// Commit step 5, once `m` is durable: garbage of earlier commits goes now (returned,
    /// to delete outside the lock) unless a reader pinned before it was dropped may still
    /// read it (a long scan); this commit's drops wait for a later commit.
    fn collect_garbage(
        s: &mut State,
        m: Manifest,
        live: &LiveSegments,
        tombs: Tombstones,
        readers: Readers,
    ) -> Vec<String> {
        let (old_garbage, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut s.garbage)
            .into_iter()
            .partition(|(_, tag)| readers.oldest_pin > *tag);
        let tag = readers.applied;
        s.garbage = kept
            .into_iter()
            .chain(
                live.dropped
                    .iter()
                    .map(|n| segment_name(*n))
                    .chain(tombs.merged)
                    .chain(std::iter::once(manifest_name(s.manifest.version)))
                    .map(|n| (n, tag)),
            )
            .collect();
        // The bucket table lives in the layer; only the manifest's bookkeeping is kept.
        s.manifest = Manifest {
            buckets: Vec::new(),
            ..m
        };
        old_garbage.into_iter().map(|(n, _)| n).collect()
    }
}

/// Commit step 2: the segments the new state names, per bucket the (segment, chunk) of each
/// chunk, and the segments no longer named (garbage once the manifest is durable).
struct LiveSegments {
    names: Vec<u64>,
    chunk_refs: Vec<Vec<(u64, u32)>>,
    dropped: Vec<u64>,
}

impl LiveSegments {
    /// Reads them off `layer` (every chunk is stored by now) and forgets the dropped
    /// segments in `s`.
    fn of(s: &mut State, layer: &L1) -> LiveSegments {
        let mut chunk_refs = Vec::with_capacity(layer.buckets().len());
        let mut names: Vec<u64> = Vec::new();
        for b in layer.buckets() {
            let refs: Vec<(u64, u32)> = b
                .chunks
                .iter()
                .map(|c| {
                    let at = c.cold.location().expect("every chunk is stored by now");
                    (at.segment, at.chunk)
                })
                .collect();
            names.extend(refs.iter().map(|r| r.0));
            chunk_refs.push(refs);
        }
        names.sort_unstable();
        names.dedup();
        let dropped: Vec<u64> = s
            .segments
            .keys()
            .copied()
            .filter(|n| names.binary_search(n).is_err())
            .collect();
        for n in &dropped {
            s.segments.remove(n);
        }
        LiveSegments {
            names,
            chunk_refs,
            dropped,
        }
    }
}

/// What commit step 3 did to the tombstone files.
struct Tombstones {
    /// Pending deletes it covers (a prefix of the pending list).
    cut: usize,
    /// The files the new manifest names.
    files: Vec<u64>,
    /// Files merged into the new one (garbage once the manifest is durable).
    merged: Vec<String>,
    /// The file it wrote, if any.
    written: Option<String>,
}
