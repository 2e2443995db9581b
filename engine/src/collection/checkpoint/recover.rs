//! Opening a collection's durable state: the newest manifest, its segments' hot rows, the id
//! map, the tombstones; objects no manifest names are deleted.

use super::*;

impl Persist {
    /// Loads the newest manifest's state into `idmap`; returns the layer and the WAL
    /// sequence number it covers (an empty layer and 0 for a new collection).
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
                .map(|(id, _)| id);
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
}
