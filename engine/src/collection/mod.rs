//! A collection: one WAL, one id map, and a sequence of immutable `Version`s of
//! (active memtable, frozen memtables, L1) that searches read without locks.
//!
//! ```text
//! upsert ─▶ WAL (group commit, fsync) ─▶ apply: active memtable + id map ─▶ ack
//!                                           │ full: freeze ─▶ background HNSW build
//! flush: frozen ─▶ route to nearest centroid ─▶ append SQ8 chunk to bucket ─▶ publish version
//!        ─▶ commit (segment, tombstones, manifest: see `persist`) ─▶ retire WAL
//! ```

mod checkpoint;
mod maintain;
mod read;
mod recall;
mod worker;
mod write;

pub use crate::ivf::{Calibration, CalibrationPoint};
pub use crate::memory::MemoryUse;
pub use checkpoint::StorageStats;
pub use maintain::Audit;
pub use read::{Backlog, CollectionStats, ScanIter};
pub use recall::{RecallStats, CALIBRATION_K};
pub use write::{check_record, FlushReport, TrainReport, MAX_PAYLOAD_BYTES};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use parking_lot::Mutex;

use crate::config::CollectionConfig;
use crate::error::{Error, IoContext, Result};
use crate::idmap::{IdMap, Loc};
use crate::ivf::L1;
use crate::maintain::MaintenanceCounts;
use crate::memtable::Memtable;
use crate::storage::atomic_write;
use crate::wal::{self, Sequenced, Wal, WalOp};
use checkpoint::Persist;
use worker::{Task, Worker};

/// What a search sees: one consistent state of every tier.
#[derive(Debug, Clone)]
pub(crate) struct Version {
    pub(crate) active: Arc<Memtable>,
    pub(crate) frozen: Vec<Arc<Memtable>>,
    pub(crate) l1: Arc<L1>,
}

/// Work counted by one commit, made durable with it (see [`Counters::durable`]).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Durable {
    pub(crate) flushes: u64,
    pub(crate) trainings: u64,
    pub(crate) maintenance: MaintenanceCounts,
}

impl Durable {
    /// The values in the order of [`Counters::durable_fields`].
    fn values(&self) -> [u64; 9] {
        let m = self.maintenance.values();
        std::array::from_fn(|i| match i {
            0 => self.flushes,
            1 => self.trainings,
            _ => m[i - 2],
        })
    }
}

impl Counters {
    /// The counters persisted with the manifest, by name (the maintenance counts under
    /// [`MaintenanceCounts::NAMES`]).
    fn durable_fields(&self) -> [(&'static str, &AtomicU64); 9] {
        std::array::from_fn(|i| match i {
            0 => ("flushes", &self.flushes),
            1 => ("trainings", &self.trainings),
            _ => (MaintenanceCounts::NAMES[i - 2], &self.maintenance[i - 2]),
        })
    }

    /// The maintenance counts so far.
    pub(crate) fn maintenance(&self) -> MaintenanceCounts {
        MaintenanceCounts::from_values(std::array::from_fn(|i| {
            self.maintenance[i].load(Ordering::Relaxed)
        }))
    }

    /// The cumulative counters as they will be once `plus` is counted: what a commit writes
    /// into the manifest, so that they survive restarts.
    pub(crate) fn durable(&self, plus: &Durable) -> std::collections::BTreeMap<String, u64> {
        self.durable_fields()
            .iter()
            .zip(plus.values())
            .map(|((n, a), d)| (n.to_string(), a.load(Ordering::Relaxed) + d))
            .collect()
    }

    /// Counts `d` (after its commit succeeded).
    pub(crate) fn add(&self, d: &Durable) {
        for ((_, a), v) in self.durable_fields().iter().zip(d.values()) {
            a.fetch_add(v, Ordering::Relaxed);
        }
    }

    /// Takes up the counters a manifest recorded (manifests written before the rename
    /// call the reassigned rows `moved`).
    fn restore(&self, m: &std::collections::BTreeMap<String, u64>) {
        for (n, a) in self.durable_fields() {
            let legacy = (n == "reassigned").then(|| m.get("moved")).flatten();
            if let Some(v) = m.get(n).or(legacy) {
                a.store(*v, Ordering::Relaxed);
            }
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) flushes: AtomicU64,
    pub(crate) searches: AtomicU64,
    /// Nanoseconds spent inside `search`.
    pub(crate) search_nanos: AtomicU64,
    pub(crate) trainings: AtomicU64,
    pub(crate) buckets_scanned: AtomicU64,
    pub(crate) codes_scanned: AtomicU64,
    pub(crate) codes_refined: AtomicU64,
    /// [`MaintenanceCounts`], in the order of its `NAMES`.
    pub(crate) maintenance: [AtomicU64; 7],
    pub(crate) maintenance_micros: AtomicU64,
    pub(crate) calibrations: AtomicU64,
    pub(crate) calibration_micros: AtomicU64,
}

/// A named set of vectors with a fixed dimension and metric.
pub struct Collection {
    name: String,
    dir: PathBuf,
    config: CollectionConfig,
    version: ArcSwap<Version>,
    idmap: IdMap,
    wal: Wal,
    /// Highest sequence number applied (visible to new searches).
    applied_seq: AtomicU64,
    checkpoint_seq: AtomicU64,
    /// Guards read-modify-write of `version`.
    structure: Mutex<()>,
    /// Serializes flush, training and maintenance passes.
    maintenance: Mutex<()>,
    /// Query counter; the clock of bucket temperatures.
    tick: AtomicU64,
    counters: Counters,
    /// Segments, tombstones and manifests.
    persist: Persist,
    worker: Worker,
    /// Recall calibration in use (see `recall`).
    calibration: ArcSwapOption<Calibration>,
    /// The live recall monitor.
    monitor: recall::Monitor,
    flush_pending: AtomicBool,
    closed: AtomicBool,
    /// Latest claim epoch per claimed source key, as admitted into the log (ahead of what is
    /// applied): the fence writes are checked against (see [`Collection::claim_sources`]).
    fences: Mutex<std::collections::HashMap<String, u64>>,
}

pub(crate) const CONFIG_FILE: &str = "config.json";
const WAL_DIR: &str = "wal";
const OBJECT_DIR: &str = "objects";
const CACHE_DIR: &str = "cache";
/// Memory-mapped plain copies of stored vectors (derived data, see `storage::mapped`).
const VECTORS_DIR: &str = "vectors";

/// The object-store URI of collection `name` stored in `dir` under `uri` (see
/// [`crate::StorageSettings::uri`]).
fn store_uri(uri: &str, name: &str, dir: &Path) -> String {
    if uri.is_empty() {
        return format!("fs://{}", dir.join(OBJECT_DIR).display());
    }
    let (base, query) = uri.split_once('?').unwrap_or((uri, ""));
    let mut out = format!("{}/{name}", base.trim_end_matches('/'));
    if !query.is_empty() {
        out = format!("{out}?{query}");
    }
    out
}

/// The configuration of the collection stored in `dir`.
fn read_config(dir: &Path) -> Result<CollectionConfig> {
    let cfg_path = dir.join(CONFIG_FILE);
    let raw = std::fs::read(&cfg_path).at(&cfg_path)?;
    serde_json::from_slice(&raw).map_err(|e| {
        Error::corrupt(
            &cfg_path,
            e.column() as u64,
            format!("bad configuration: {e}"),
        )
    })
}

/// The durable-state handle of collection `name` in `dir` (its store, caches and mapped
/// vectors), without reading anything yet.
fn open_persist(name: &str, dir: &Path, storage: &crate::StorageSettings) -> Result<Persist> {
    Persist::open(
        &store_uri(&storage.uri, name, dir),
        &dir.join(CACHE_DIR),
        &dir.join(VECTORS_DIR),
        storage,
    )
}

impl Collection {
    /// Creates the collection's directory and configuration, then opens it.
    pub(crate) fn create(name: &str, dir: &Path, config: CollectionConfig) -> Result<Arc<Self>> {
        config.validate()?;
        std::fs::create_dir_all(dir.join(WAL_DIR)).at(dir)?;
        let storage = &config.settings.storage;
        if !storage.uri.is_empty() {
            // A store location of its own must be empty: objects left there (by a collection
            // dropped while its store was unreachable, or another data directory) would
            // otherwise come back as this collection's data.
            if open_persist(name, dir, storage)?.holds_objects()? {
                let uri = store_uri(&storage.uri, name, dir);
                return Err(Error::InvalidArgument(format!(
                    "storage location {uri} already holds a collection's objects; drop that \
                     collection or choose another storage.uri"
                )));
            }
        }
        let json = serde_json::to_vec_pretty(&config)
            .map_err(|e| Error::Internal(format!("cannot encode configuration: {e}")))?;
        atomic_write(&dir.join(CONFIG_FILE), &json)?;
        Self::open(name, dir)
    }

    /// Opens an existing collection: configuration, durable state (manifest, segments, id
    /// map, tombstones), then WAL replay.
    pub(crate) fn open(name: &str, dir: &Path) -> Result<Arc<Self>> {
        let config = read_config(dir)?;
        config.validate()?;
        let idmap = IdMap::default();
        let storage = &config.settings.storage;
        let persist = open_persist(name, dir, storage)?;
        let (l1, ck_seq) = persist.recover(config.dim, config.metric, &idmap)?;
        let replayed = wal::replay(&dir.join(WAL_DIR), ck_seq)?;
        let wal = Wal::open(&dir.join(WAL_DIR), &replayed)?;
        let coll = Arc::new(Collection {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            version: ArcSwap::from_pointee(Version {
                active: Memtable::new(),
                frozen: Vec::new(),
                l1: Arc::new(l1),
            }),
            config,
            idmap,
            wal,
            applied_seq: AtomicU64::new(ck_seq),
            checkpoint_seq: AtomicU64::new(ck_seq),
            structure: Mutex::new(()),
            maintenance: Mutex::new(()),
            tick: AtomicU64::new(0),
            counters: Counters::default(),
            persist,
            worker: Worker::default(),
            calibration: ArcSwapOption::empty(),
            monitor: recall::Monitor::default(),
            flush_pending: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            fences: Mutex::new(Default::default()),
        });
        coll.counters.restore(&coll.persist.counters());
        let replayed_ops = replayed.ops.len();
        coll.apply(replayed.ops);
        coll.applied_seq.store(replayed.last_seq, Ordering::Release);
        *coll.fences.lock() = coll.persist.fences();
        coll.load_calibration();
        coll.worker.start(Arc::downgrade(&coll));
        tracing::debug!(
            collection = name,
            checkpoint_seq = ck_seq,
            replayed_ops,
            "opened"
        );
        Ok(coll)
    }

    /// Deletes the collection's objects from its object store (used by drop).
    pub(crate) fn purge_objects(&self) -> Result<()> {
        self.persist.purge()
    }

    /// One repair step for the collection in `dir` that failed to open with `err`: cuts a
    /// damaged WAL file at the damage (and removes the newer files), or moves a damaged
    /// newest manifest aside so that the previous one is used. Returns what it did, or
    /// `None` when `err` is not damage it can repair.
    pub(crate) fn repair_step(name: &str, dir: &Path, err: &Error) -> Result<Option<String>> {
        let Error::Corrupt {
            path,
            offset,
            reason,
        } = err
        else {
            return Ok(None);
        };
        let wal_dir = dir.join(WAL_DIR);
        if path.parent() == Some(wal_dir.as_path()) {
            let cut = std::fs::metadata(path)
                .at(path)?
                .len()
                .saturating_sub(*offset);
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .at(path)?;
            f.set_len(*offset).at(path)?;
            f.sync_all().at(path)?;
            let mut later = Vec::new();
            for entry in std::fs::read_dir(&wal_dir).at(&wal_dir)? {
                let p = entry.at(&wal_dir)?.path();
                if p.file_name() > path.file_name() {
                    later.push(p);
                }
            }
            later.sort();
            for p in &later {
                std::fs::remove_file(p).at(p)?;
            }
            crate::storage::sync_dir(&wal_dir)?;
            return Ok(Some(format!(
                "cut WAL file {} at offset {offset} ({reason}): {cut} bytes and {} newer WAL files \
                 discarded; the records in them are lost",
                path.display(),
                later.len()
            )));
        }
        let file = path.file_name().map(|f| f.to_string_lossy().to_string());
        let Some(file) = file.filter(|f| f.ends_with(".mf")) else {
            return Ok(None);
        };
        let config = read_config(dir)?;
        let persist = open_persist(name, dir, &config.settings.storage)?;
        let object = format!("{}{file}", crate::storage::manifest::MANIFEST_DIR);
        let aside = persist.set_aside(&object)?;
        Ok(Some(format!(
            "moved the damaged manifest {} ({reason}) to {aside}; the previous manifest is used \
             (rows that only the damaged commit held, and the WAL no longer does, are lost)",
            path.display()
        )))
    }

    /// Deletes the objects of the collection stored in `dir` that could not be opened, when
    /// its configuration names a store of its own (objects under the collection's directory
    /// go with it).
    pub(crate) fn purge_unopened(name: &str, dir: &Path) -> Result<()> {
        let config = read_config(dir)?;
        let storage = &config.settings.storage;
        if storage.uri.is_empty() {
            return Ok(());
        }
        open_persist(name, dir, storage)?.purge()
    }

    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The collection's configuration.
    pub fn config(&self) -> &CollectionConfig {
        &self.config
    }

    /// The directory holding this collection's files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::Closed(self.name.clone()))
        } else {
            Ok(())
        }
    }

    /// Stops background work; later calls fail with [`Error::Closed`].
    pub fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.worker.stop();
        }
    }

    /// Applies durable operations in sequence order (called by the WAL's commit leader and
    /// by recovery). Freezes the active memtable whenever it fills up.
    fn apply(&self, batch: Vec<Sequenced>) {
        let cap = self.config.settings.memtable_capacity;
        let mut last = None;
        // Versions superseded at or below this may go (see `idmap`): read before the batch.
        let floor = self.idmap.floor(self.applied_seq.load(Ordering::SeqCst));
        let mut ops = batch.into_iter().peekable();
        while ops.peek().is_some() {
            let v = self.version.load_full();
            let mut buf = v.active.buf.write();
            if v.active.is_sealed() {
                // A flush froze this memtable after we loaded the version: use the new one.
                continue;
            }
            while let Some((seq, op)) =
                ops.next_if(|(_, op)| !(matches!(op, WalOp::Upsert { .. }) && buf.len() >= cap))
            {
                last = Some(seq);
                let op_id = match &op {
                    WalOp::Upsert { id, .. } | WalOp::Delete { id } => Some(*id),
                    WalOp::Offsets { .. } => None,
                };
                let replaced = match op {
                    WalOp::Offsets { offsets } => {
                        self.persist.stage_offsets(offsets);
                        None
                    }
                    WalOp::Upsert {
                        id,
                        vector,
                        payload,
                    } => {
                        buf.push(id, seq, &vector, payload.map(Arc::from));
                        self.idmap.upsert(id, seq, floor)
                    }
                    WalOp::Delete { id } => {
                        let gone = self.idmap.delete(id, seq, floor);
                        if gone.is_some() {
                            self.persist.note_delete(id, seq);
                        }
                        gone
                    }
                };
                if let (Some(Loc::Bucket(b)), Some(id)) = (replaced, op_id) {
                    if let Some(bucket) = self.version.load().l1.bucket(b) {
                        bucket.tally.add_dead([id]);
                    }
                }
            }
            drop(buf);
            if ops.peek().is_some() {
                self.freeze_active(&v.active, true);
            }
        }
        if let Some(seq) = last {
            self.applied_seq.fetch_max(seq, Ordering::AcqRel);
        }
        self.maybe_schedule_flush();
    }

    /// Freezes `active` if it is still the active memtable; queues its graph build when
    /// `index` is set (a flush that freezes in order to drain at once does not).
    pub(crate) fn freeze_active(&self, active: &Arc<Memtable>, index: bool) {
        let _s = self.structure.lock();
        let cur = self.version.load_full();
        if !Arc::ptr_eq(&cur.active, active) {
            return;
        }
        // Sealing under the write lock: an apply holding the lock finishes first, and any
        // apply after sees the seal and moves to the new memtable.
        let buf = active.buf.write();
        active.seal();
        drop(buf);
        let mut frozen = cur.frozen.clone();
        frozen.push(active.clone());
        self.version.store(Arc::new(Version {
            active: Memtable::new(),
            frozen,
            l1: cur.l1.clone(),
        }));
        self.wal.request_rotation();
        if index {
            self.worker.send(Task::Index(active.clone()));
        }
    }

    fn maybe_schedule_flush(&self) {
        let v = self.version.load();
        let frozen: usize = v.frozen.iter().map(|m| m.buf.read().len()).sum();
        let s = &self.config.settings;
        // Before training, the first flush waits for enough rows to train on.
        let trained = v.l1.is_trained();
        let untrained_full = !trained && frozen + v.active.buf.read().len() >= s.auto_train_min;
        if ((trained && frozen >= s.flush_threshold) || untrained_full)
            && !self.flush_pending.swap(true, Ordering::AcqRel)
        {
            self.worker.send(Task::Flush);
        }
    }
}

impl Drop for Collection {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Release);
        self.worker.detach();
    }
}

impl std::fmt::Debug for Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection")
            .field("name", &self.name)
            .field("dim", &self.config.dim)
            .field("metric", &self.config.metric)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maintenance_counts_survive_a_manifest_under_old_and_new_names() {
        let c = Counters::default();
        let work = Durable {
            flushes: 2,
            trainings: 1,
            maintenance: MaintenanceCounts {
                passes: 3,
                splits: 4,
                merges: 5,
                compactions: 6,
                reassigned: 7,
                written: 8,
                compacted_tombstones: 9,
            },
        };
        let saved = c.durable(&work);
        assert_eq!(saved.get("reassigned"), Some(&7));
        let restored = Counters::default();
        restored.restore(&saved);
        assert_eq!(restored.maintenance(), work.maintenance);
        assert_eq!(restored.flushes.load(Ordering::Relaxed), 2);
        // Manifests written before the rename call the reassigned rows `moved`.
        let mut old = saved.clone();
        old.remove("reassigned");
        old.insert("moved".into(), 11);
        let restored = Counters::default();
        restored.restore(&old);
        assert_eq!(restored.maintenance().reassigned, 11);
    }
}
