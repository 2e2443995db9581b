//! The read side: search over one snapshot, point lookups, full scans, statistics.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::Serialize;

use super::{Collection, Version};
use crate::columns::{PayloadView, U64View};
use crate::config::SearchParams;
use crate::distance::{reported, Distance};
use crate::error::Result;
use crate::idmap::{Loc, Pin};
use crate::ivf::ProbeOptions;
use crate::maintain::MaintenanceCounts;
use crate::memory::MemoryUse;
use crate::record::{Hit, Record};
use crate::topk::TopK;

/// Where a candidate came from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// Memtable `tag` (0 = active, i + 1 = frozen i), row.
    L0(u32, u32),
    /// L1 (bucket position, chunk, row).
    L1(u32, u32, u32),
}

/// Rows waiting to be flushed into L1, and the most that may wait before writers that can
/// hold back (the Kafka sink) pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Backlog {
    /// Rows in frozen memtables.
    pub rows: usize,
    /// `settings.max_flush_backlog` (at least `flush_threshold`).
    pub limit: usize,
}

impl Backlog {
    /// True when the backlog is over its limit.
    pub fn over(&self) -> bool {
        self.rows > self.limit
    }
}

/// Counts and sizes of a collection, as reported by `drift collection stats`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CollectionStats {
    /// Collection name.
    pub name: String,
    /// Vector dimension.
    pub dim: usize,
    /// Metric name.
    pub metric: String,
    /// Live (not deleted) records.
    pub live_vectors: usize,
    /// Rows in L0 (active plus frozen memtables, stale rows included).
    pub l0_rows: usize,
    /// Rows in the active memtable.
    pub active_rows: usize,
    /// Frozen memtables waiting for flush.
    pub frozen_memtables: usize,
    /// Frozen memtables whose HNSW graph is built.
    pub indexed_memtables: usize,
    /// Whether centroids have been trained.
    pub trained: bool,
    /// Number of L1 buckets.
    pub buckets: usize,
    /// Rows stored in L1, stale ones included.
    pub l1_rows: usize,
    /// Stale (deleted or replaced) rows still stored in L1.
    pub l1_stale_rows: usize,
    /// Chunks (row blocks appended by flushes) over all L1 buckets.
    #[serde(default)]
    pub l1_chunks: usize,
    /// Smallest bucket (live rows).
    pub bucket_min: usize,
    /// Mean bucket size (live rows).
    pub bucket_mean: f64,
    /// Largest bucket (live rows).
    pub bucket_max: usize,
    /// Highest applied sequence number.
    pub last_seq: u64,
    /// Sequence number covered by the checkpoint.
    pub checkpoint_seq: u64,
    /// Bytes in live WAL files.
    pub wal_bytes: u64,
    /// Flushes (cumulative across restarts: persisted with the manifest).
    pub flushes: u64,
    /// Trainings (cumulative across restarts).
    pub trainings: u64,
    /// Searches since this process opened the collection.
    pub searches: u64,
    /// Mean time inside the engine per search since open, microseconds (what a caller's
    /// own path, such as SQL or a network hop, adds comes on top).
    #[serde(default)]
    pub mean_search_us: f64,
    /// Mean buckets probed per search since open.
    pub mean_buckets_probed: f64,
    /// Mean SQ8 codes scanned per search since open.
    pub mean_codes_scanned: f64,
    /// Mean codes per search whose SQ8 distance was computed (the others were ruled out by
    /// their binary sketch).
    pub mean_codes_refined: f64,
    /// Maintenance policy in charge.
    pub policy: String,
    /// Maintenance work, cumulative across restarts (idle passes count once a later commit
    /// records them).
    pub maintenance: MaintenanceCounts,
    /// Time spent in maintenance since this process opened the collection, milliseconds.
    pub maintenance_ms: f64,
    /// SIMD kernel family in use.
    pub kernel: String,
    /// Object store, segment sizes and cache counters.
    pub storage: super::StorageStats,
    /// Positions of external sources in the durable state (Kafka `topic/partition` → next
    /// offset).
    pub source_offsets: std::collections::BTreeMap<String, i64>,
    /// Rows waiting for a flush, and the limit above which the Kafka sink pauses.
    pub flush_backlog: Backlog,
    /// Recall target, calibration and the live monitor's measured recall.
    pub recall: super::RecallStats,
    /// Bytes of index data held in memory: L1 codes, sketches, ids, sequence numbers, norms
    /// and payloads, exact vectors not yet dropped, quantizers, centroids and anchors,
    /// memtable rows and decoded cold blocks in the cache ([`CollectionStats::memory`]).
    pub resident_bytes: u64,
    /// The same bytes by kind.
    pub memory: MemoryUse,
}

impl Collection {
    /// Search parameters for `k` results with this collection's defaults.
    pub fn search_params(&self, k: usize) -> SearchParams {
        self.config.settings.search.to_params(k)
    }

    /// A pinned snapshot and the version it reads: while the pin lives, the id map keeps
    /// every version of every id the snapshot can see.
    pub(super) fn snapshot(&self) -> (Pin, Arc<Version>) {
        // The sequence first: every row at or below it is in this version or a newer one.
        let pin = self.idmap.pin(|| self.applied_seq.load(Ordering::SeqCst));
        (pin, self.version.load_full())
    }

    /// The `params.k` nearest records to `query`, nearest first.
    pub fn search(&self, query: &[f32], params: &SearchParams) -> Result<Vec<Hit>> {
        let started = std::time::Instant::now();
        self.check_open()?;
        params.validate()?;
        let q = self.prepare_vector(0, query)?;
        let (pin, v) = self.snapshot();
        let snap = pin.seq();
        let visible = |id: u64, seq: u64| self.idmap.visible(id, seq, snap);
        let dist = Distance::for_metric(self.config.metric);
        let k = params.k;

        let mut top: TopK<Source> = TopK::new(k);
        let mut l0: TopK<(u32, u32)> = TopK::new(k);
        v.active
            .search(dist, &q, k, params.ef_search, &visible, 0, &mut l0);
        for (i, m) in v.frozen.iter().enumerate() {
            m.search(
                dist,
                &q,
                k,
                params.ef_search,
                &visible,
                i as u32 + 1,
                &mut l0,
            );
        }
        for s in l0.into_sorted() {
            top.push(s.dist, Source::L0(s.item.0, s.item.1));
        }
        let opts = ProbeOptions {
            target: self.config.settings.target_bucket_size as f32,
            alpha: match (params.nprobe, params.recall_target) {
                (None, Some(t)) => self.recall_alpha(t),
                _ => 1.0,
            },
        };
        let tick = self.tick.fetch_add(1, Ordering::Relaxed);
        let (l1_hits, counts) = v.l1.search(&q, params, &opts, &visible, tick)?;
        for s in l1_hits {
            top.push(s.dist, Source::L1(s.item.0, s.item.1, s.item.2));
        }
        self.counters.searches.fetch_add(1, Ordering::Relaxed);
        self.counters
            .buckets_scanned
            .fetch_add(counts.buckets as u64, Ordering::Relaxed);
        self.counters
            .codes_scanned
            .fetch_add(counts.codes as u64, Ordering::Relaxed);
        self.counters
            .codes_refined
            .fetch_add(counts.refined as u64, Ordering::Relaxed);

        let mut seen = HashSet::with_capacity(k);
        let mut hits = Vec::with_capacity(k);
        for s in top.into_sorted() {
            let hit = self.materialize(&v, s.item, s.dist, params)?;
            if seen.insert(hit.id) {
                hits.push(hit);
            }
        }
        if let (None, Some(t)) = (params.nprobe, params.recall_target) {
            self.maybe_monitor(&q, k, t, (pin, &v), &hits);
        }
        self.counters
            .search_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(hits)
    }

    fn materialize(
        &self,
        v: &Version,
        src: Source,
        dist: f32,
        params: &SearchParams,
    ) -> Result<Hit> {
        let dim = self.config.dim;
        let (id, payload, vector) = match src {
            Source::L0(tag, row) => {
                let m = if tag == 0 {
                    &v.active
                } else {
                    &v.frozen[tag as usize - 1]
                };
                let buf = m.buf.read();
                let r = row as usize;
                (
                    buf.ids[r],
                    buf.payloads[r].clone(),
                    params.with_vector.then(|| buf.vector(r, dim).to_vec()),
                )
            }
            Source::L1(b, c, r) => {
                let chunk = v.l1.chunk((b, c, r));
                let r = r as usize;
                let vector = match params.with_vector {
                    true => Some(chunk.vector(r)?.to_vec()),
                    false => None,
                };
                (chunk.ids.get(r), chunk.payloads.get(r).cloned(), vector)
            }
        };
        Ok(Hit {
            id,
            distance: reported(self.config.metric, dist),
            payload: if params.with_payload {
                payload.map(|p| p.to_string())
            } else {
                None
            },
            vector,
        })
    }

    /// Offsets of external sources (e.g. Kafka `topic/partition` → next offset to read) that
    /// the durable state covers: the newest manifest's, advanced by every offsets record
    /// logged through [`Collection::write`] since.
    pub fn source_offsets(&self) -> std::collections::BTreeMap<String, i64> {
        self.persist.offsets()
    }

    /// Rows frozen and waiting for a flush, against the configured limit.
    pub fn flush_backlog(&self) -> Backlog {
        let v = self.version.load();
        let s = &self.config.settings;
        Backlog {
            rows: v.frozen.iter().map(|m| m.buf.read().len()).sum(),
            limit: s.max_flush_backlog.max(s.flush_threshold),
        }
    }

    /// The current record with this id, if it exists.
    pub fn get(&self, id: u64) -> Result<Option<Record>> {
        self.check_open()?;
        let Some((seq, loc)) = self.idmap.current(id) else {
            return Ok(None);
        };
        let v = self.version.load_full();
        let dim = self.config.dim;
        let record = |vector: &[f32], payload: Option<&Arc<str>>| Record {
            id,
            vector: vector.to_vec(),
            payload: payload.map(|p| p.to_string()),
        };
        let in_bucket = |b: &crate::ivf::Bucket| -> Result<Option<Record>> {
            for c in &b.chunks {
                if let Some(r) = (0..c.len()).find(|&r| c.ids.get(r) == id && c.seqs.get(r) == seq)
                {
                    return Ok(Some(record(&c.vector(r)?, c.payloads.get(r))));
                }
            }
            Ok(None)
        };
        if let Loc::Bucket(b) = loc {
            if let Some(b) = v.l1.bucket(b) {
                if let Some(found) = in_bucket(b)? {
                    return Ok(Some(found));
                }
            }
        }
        for m in std::iter::once(&v.active).chain(v.frozen.iter().rev()) {
            let buf = m.buf.read();
            if let Some(r) = buf.find(id, seq) {
                return Ok(Some(record(buf.vector(r, dim), buf.payloads[r].as_ref())));
            }
        }
        // The row moved between reading the id map and the version: look everywhere.
        for b in v.l1.buckets() {
            if let Some(found) = in_bucket(b)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Iterates over every live record of one snapshot, `batch_size` records at a time.
    pub fn scan(self: &Arc<Self>, batch_size: usize) -> ScanIter {
        let (pin, version) = self.snapshot();
        ScanIter {
            coll: self.clone(),
            version,
            pin,
            batch_size: batch_size.max(1),
            part: 0,
            row: 0,
        }
    }

    /// Counts and sizes.
    pub fn stats(&self) -> CollectionStats {
        let v = self.version.load_full();
        let active_rows = v.active.buf.read().len();
        let storage = self.persist.stats();
        let mut memory = MemoryUse::default();
        for b in v.l1.buckets() {
            b.add_memory(&mut memory);
        }
        let frozen_rows: usize = v.frozen.iter().map(|m| m.buf.read().len()).sum();
        let sizes: Vec<usize> = v.l1.buckets().iter().map(|b| b.live_rows()).collect();
        let searches = self.counters.searches.load(Ordering::Relaxed);
        let c = &self.counters;
        CollectionStats {
            name: self.name.clone(),
            dim: self.config.dim,
            metric: self.config.metric.name().to_string(),
            live_vectors: self.idmap.live(),
            l0_rows: active_rows + frozen_rows,
            active_rows,
            frozen_memtables: v.frozen.len(),
            indexed_memtables: v.frozen.iter().filter(|m| m.graph.get().is_some()).count(),
            trained: v.l1.is_trained(),
            buckets: sizes.len(),
            l1_rows: v.l1.buckets().iter().map(|b| b.rows()).sum(),
            l1_stale_rows: v.l1.buckets().iter().map(|b| b.tally.dead()).sum(),
            l1_chunks: v.l1.buckets().iter().map(|b| b.chunks.len()).sum(),
            bucket_min: sizes.iter().copied().min().unwrap_or(0),
            bucket_mean: if sizes.is_empty() {
                0.0
            } else {
                sizes.iter().sum::<usize>() as f64 / sizes.len() as f64
            },
            bucket_max: sizes.iter().copied().max().unwrap_or(0),
            last_seq: self.applied_seq.load(Ordering::Acquire),
            checkpoint_seq: self.checkpoint_seq.load(Ordering::Acquire),
            wal_bytes: self.wal.bytes(),
            flushes: self.counters.flushes.load(Ordering::Relaxed),
            trainings: self.counters.trainings.load(Ordering::Relaxed),
            searches,
            mean_search_us: if searches == 0 {
                0.0
            } else {
                self.counters.search_nanos.load(Ordering::Relaxed) as f64 / 1e3 / searches as f64
            },
            mean_buckets_probed: if searches == 0 {
                0.0
            } else {
                self.counters.buckets_scanned.load(Ordering::Relaxed) as f64 / searches as f64
            },
            mean_codes_scanned: if searches == 0 {
                0.0
            } else {
                self.counters.codes_scanned.load(Ordering::Relaxed) as f64 / searches as f64
            },
            mean_codes_refined: if searches == 0 {
                0.0
            } else {
                self.counters.codes_refined.load(Ordering::Relaxed) as f64 / searches as f64
            },
            policy: format!("{:?}", self.config.settings.maintenance.policy).to_lowercase(),
            maintenance: c.maintenance(),
            maintenance_ms: c.maintenance_micros.load(Ordering::Relaxed) as f64 / 1e3,
            kernel: format!("{:?}", crate::kernels::cpu()),
            resident_bytes: {
                memory.memtables =
                    ((active_rows + frozen_rows) * (self.config.dim * 4 + 16)) as u64;
                memory.cache = storage.block_cache_bytes;
                memory.total()
            },
            memory,
            storage,
            source_offsets: self.persist.offsets(),
            flush_backlog: self.flush_backlog(),
            recall: self.recall_stats(),
        }
    }
}

/// Column views of stored rows (a bucket chunk or a memtable).
struct Rows<'a> {
    ids: U64View<'a>,
    seqs: U64View<'a>,
    vectors: RowVectors<'a>,
    payloads: PayloadView<'a>,
}

/// Where the vectors of [`Rows`] are: in memory, or in a chunk's cold tier (read only once a
/// visible row needs them).
enum RowVectors<'a> {
    Memory(&'a [f32]),
    Cold(&'a crate::ivf::Chunk),
}

impl Rows<'_> {
    /// Appends visible rows from `start` on until `out` holds `want`; returns the next row.
    fn collect_visible(
        &self,
        start: usize,
        dim: usize,
        visible: &dyn Fn(u64, u64) -> bool,
        out: &mut Vec<Record>,
        want: usize,
    ) -> Result<usize> {
        let mut loaded: Option<Arc<[f32]>> = None;
        let mut r = start;
        while r < self.ids.len() && out.len() < want {
            if visible(self.ids.get(r), self.seqs.get(r)) {
                let all: &[f32] = match (&self.vectors, &loaded) {
                    (RowVectors::Memory(v), _) => v,
                    (RowVectors::Cold(_), Some(v)) => v,
                    (RowVectors::Cold(c), None) => loaded.insert(c.vectors()?),
                };
                out.push(Record {
                    id: self.ids.get(r),
                    vector: all[r * dim..(r + 1) * dim].to_vec(),
                    payload: self.payloads.get(r).map(|p| p.to_string()),
                });
            }
            r += 1;
        }
        Ok(r)
    }
}

/// Batches of live records from one snapshot: L1 chunks, then frozen memtables, then the
/// active memtable. A chunk whose vectors cannot be read yields an error.
pub struct ScanIter {
    coll: Arc<Collection>,
    version: Arc<Version>,
    pin: Pin,
    batch_size: usize,
    /// Index over parts: L1 chunks in order, then frozen memtables, then active.
    part: usize,
    row: usize,
}

impl ScanIter {
    fn part_rows(&self, part: usize, out: &mut Vec<Record>, want: usize) -> Result<Option<usize>> {
        let dim = self.coll.config.dim;
        let visible = |id, seq| self.coll.idmap.visible(id, seq, self.pin.seq());
        let mut idx = part;
        for b in self.version.l1.buckets() {
            if idx < b.chunks.len() {
                let c = &b.chunks[idx];
                let rows = Rows {
                    ids: c.ids.view(),
                    seqs: c.seqs.view(),
                    vectors: RowVectors::Cold(c),
                    payloads: c.payloads.view(),
                };
                return rows
                    .collect_visible(self.row, dim, &visible, out, want)
                    .map(Some);
            }
            idx -= b.chunks.len();
        }
        let mems: Vec<&Arc<crate::memtable::Memtable>> = self
            .version
            .frozen
            .iter()
            .chain(std::iter::once(&self.version.active))
            .collect();
        let Some(m) = mems.get(idx) else {
            return Ok(None);
        };
        let buf = m.buf.read();
        let rows = Rows {
            ids: (&buf.ids).into(),
            seqs: (&buf.seqs).into(),
            vectors: RowVectors::Memory(&buf.vectors),
            payloads: (&buf.payloads).into(),
        };
        rows.collect_visible(self.row, dim, &visible, out, want)
            .map(Some)
    }

    fn part_len(&self, part: usize) -> usize {
        let mut idx = part;
        for b in self.version.l1.buckets() {
            if idx < b.chunks.len() {
                return b.chunks[idx].len();
            }
            idx -= b.chunks.len();
        }
        let frozen = &self.version.frozen;
        match idx.cmp(&frozen.len()) {
            std::cmp::Ordering::Less => frozen[idx].buf.read().len(),
            _ => self.version.active.buf.read().len(),
        }
    }
}

impl Iterator for ScanIter {
    type Item = Result<Vec<Record>>;

    fn next(&mut self) -> Option<Result<Vec<Record>>> {
        let mut out = Vec::with_capacity(self.batch_size);
        while out.len() < self.batch_size {
            let end = match self.part_rows(self.part, &mut out, self.batch_size) {
                Ok(Some(end)) => end,
                Ok(None) => break,
                Err(e) => {
                    // Skip the unreadable part so that a caller who goes on is not stuck.
                    self.part += 1;
                    self.row = 0;
                    return Some(Err(e));
                }
            };
            if end >= self.part_len(self.part) {
                self.part += 1;
                self.row = 0;
            } else {
                self.row = end;
            }
        }
        (!out.is_empty()).then_some(Ok(out))
    }
}
