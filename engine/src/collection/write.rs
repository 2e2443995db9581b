//! The write side: validation, durable upserts and deletes, flush into L1, and training.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::checkpoint::{Readers, FENCE_SUFFIX};
use super::{Collection, Durable, Version};
use crate::config::CollectionConfig;
use crate::distance;
use crate::error::{Error, Result};
use crate::idmap::Loc;
use crate::ivf::{Bucket, Placed, Reshape, L1};
use crate::kmeans::kmeans;
use crate::memtable::Memtable;
use crate::record::{Record, SourceMark, Write};
use crate::rows::RowBatch;
use crate::storage::failpoint;
use crate::wal::WalOp;

/// Largest payload accepted, in bytes of JSON text.
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;
/// Lloyd iterations when training.
const KMEANS_ITERS: usize = 20;

/// What a flush did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FlushReport {
    /// Rows moved from memtables into buckets.
    pub rows: usize,
    /// Memtables drained.
    pub memtables: usize,
    /// Buckets that received rows.
    pub buckets_touched: usize,
    /// Buckets whose quantizer was re-fitted because new rows fell outside its ranges.
    pub refits: usize,
    /// True if this flush trained the centroids first.
    pub trained: bool,
    /// Sequence number the durable state (manifest) now covers.
    pub checkpoint_seq: u64,
}

/// What a training run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TrainReport {
    /// Centroids trained.
    pub buckets: usize,
    /// Sample rows used.
    pub sample_rows: usize,
    /// Stored rows re-assigned to the new centroids.
    pub rows: usize,
}

/// Checks a record against a collection's configuration as an upsert does (dimension,
/// finite values, a vector with a direction for cosine, payload a JSON object within
/// [`MAX_PAYLOAD_BYTES`]); `collection` names it in errors. Clients use it to sort bad records
/// out before sending a batch.
pub fn check_record(collection: &str, config: &CollectionConfig, record: &Record) -> Result<()> {
    check_vector(collection, config, record.id, &record.vector)?;
    if !distance::has_direction(config.metric, &record.vector) {
        return Err(zero_direction(record.id));
    }
    match &record.payload {
        Some(p) => check_payload(record.id, p),
        None => Ok(()),
    }
}

fn zero_direction(id: u64) -> Error {
    Error::InvalidArgument(format!(
        "vector for id {id} has no direction (all zeros, or too large to normalize; cosine collection)"
    ))
}

fn check_vector(collection: &str, config: &CollectionConfig, id: u64, v: &[f32]) -> Result<()> {
    if v.len() != config.dim {
        return Err(Error::DimensionMismatch {
            collection: collection.to_string(),
            id,
            got: v.len(),
            expected: config.dim,
        });
    }
    if let Some((position, x)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(Error::NonFinite {
            id,
            position,
            value: x.to_string(),
        });
    }
    if let Some((position, x)) = v
        .iter()
        .enumerate()
        .find(|(_, x)| x.abs() > crate::config::MAX_ABS_VALUE)
    {
        return Err(Error::OutOfRange {
            id,
            position,
            value: x.to_string(),
            limit: crate::config::MAX_ABS_VALUE,
        });
    }
    Ok(())
}

fn check_payload(id: u64, p: &str) -> Result<()> {
    if p.len() > MAX_PAYLOAD_BYTES {
        return Err(Error::InvalidPayload {
            id,
            reason: format!("{} bytes, the limit is {MAX_PAYLOAD_BYTES}", p.len()),
        });
    }
    match serde_json::from_str::<serde_json::Value>(p) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        Ok(_) => Err(Error::InvalidPayload {
            id,
            reason: "must be a JSON object".into(),
        }),
        Err(e) => Err(Error::InvalidPayload {
            id,
            reason: format!("not valid JSON: {e}"),
        }),
    }
}

impl Collection {
    /// Checks a vector (dimension, finiteness) and prepares it for storage or search
    /// (normalized for cosine). `id` names the row in errors.
    pub fn prepare_vector(&self, id: u64, v: &[f32]) -> Result<Vec<f32>> {
        check_vector(&self.name, &self.config, id, v)?;
        let mut out = v.to_vec();
        if !distance::prepare(self.config.metric, &mut out) {
            return Err(zero_direction(id));
        }
        Ok(out)
    }

    /// Checks a record as [`Collection::upsert`] would (dimension, finite values, payload)
    /// without writing it.
    pub fn validate(&self, record: &Record) -> Result<()> {
        check_record(&self.name, &self.config, record)
    }

    /// Inserts or replaces records. Every record is validated first (one bad record rejects
    /// the whole call and writes nothing); returns once all are durable and visible, with the
    /// sequence number of the last one.
    pub fn upsert(&self, records: Vec<Record>) -> Result<u64> {
        self.write(
            records.into_iter().map(Write::Upsert).collect(),
            &SourceMark::default(),
        )
    }

    /// Deletes ids; returns how many of them existed. Durable and visible on return.
    pub fn delete(&self, ids: &[u64]) -> Result<u64> {
        let existing = ids
            .iter()
            .filter(|id| self.idmap.current(**id).is_some())
            .count() as u64;
        self.write(
            ids.iter().map(|&id| Write::Delete(id)).collect(),
            &SourceMark::default(),
        )?;
        Ok(existing)
    }

    /// Applies upserts and deletes in the given order, atomically with respect to `source`:
    /// the source offsets are logged after the writes, in the same durable batch, so after a
    /// crash they never claim writes that were lost (see [`Collection::source_offsets`]).
    /// Every upsert is validated first; one bad record rejects the call and writes nothing.
    /// Returns the sequence number of the last logged operation, once durable and visible.
    ///
    /// A source key that was claimed ([`Collection::claim_sources`]) accepts offsets only from
    /// a batch carrying its latest claim's epoch; anything else is refused with
    /// [`Error::Fenced`] and nothing is written.
    pub fn write(&self, writes: Vec<Write>, source: &SourceMark) -> Result<u64> {
        self.check_open()?;
        for (key, offset) in &source.offsets {
            check_source_key(key)?;
            if *offset < 0 {
                return Err(Error::InvalidArgument(format!(
                    "source offset for '{key}' is negative ({offset})"
                )));
            }
        }
        let mut ops = Vec::with_capacity(writes.len() + 1);
        // Deleting an id that neither exists nor is written earlier in the batch changes
        // nothing, so it is not logged.
        let mut upserted = std::collections::HashSet::new();
        for w in writes {
            match w {
                Write::Upsert(r) => {
                    let vector = self.prepare_vector(r.id, &r.vector)?;
                    if let Some(p) = &r.payload {
                        check_payload(r.id, p)?;
                    }
                    upserted.insert(r.id);
                    ops.push(WalOp::Upsert {
                        id: r.id,
                        vector,
                        payload: r.payload,
                    });
                }
                Write::Delete(id) => {
                    if upserted.contains(&id) || self.idmap.current(id).is_some() {
                        ops.push(WalOp::Delete { id });
                    }
                }
            }
        }
        if source.offsets.is_empty() {
            return self.wal.commit(ops, &|batch| self.apply(batch));
        }
        ops.push(WalOp::Offsets {
            offsets: source.offsets.clone(),
        });
        let mut admit = |_: &mut Vec<WalOp>| {
            let fences = self.fences.lock();
            for (key, _) in &source.offsets {
                let held = fences.get(key).copied();
                if held == source.epoch {
                    continue;
                }
                let reason = match (held, source.epoch) {
                    (Some(h), Some(e)) if e < h => format!(
                        "epoch {e} was superseded by a newer claim (epoch {h}): another writer owns this source now"
                    ),
                    (Some(h), Some(e)) => format!("epoch {e} was never granted (latest claim is {h})"),
                    (Some(h), None) => format!(
                        "the source is claimed (epoch {h}) and the write carries no epoch"
                    ),
                    (None, Some(e)) => format!("epoch {e} was never granted: the source was never claimed"),
                    (None, None) => unreachable!("equal epochs are admitted"),
                };
                return Err(Error::Fenced {
                    key: key.clone(),
                    reason,
                });
            }
            Ok(())
        };
        self.wal
            .commit_admitted(ops, &mut admit, &|batch| self.apply(batch))
    }

    /// Claims source keys (e.g. the Kafka partitions a sink was just assigned): returns an
    /// epoch above every earlier claim of any of them, made durable before this returns.
    /// From then on those keys accept offsets only from writes carrying this epoch, so a
    /// writer that lost them (a sink whose partitions moved in a rebalance) is refused.
    pub fn claim_sources(&self, keys: &[String]) -> Result<u64> {
        self.check_open()?;
        if keys.is_empty() {
            return Err(Error::InvalidArgument(
                "a claim needs at least one source key".into(),
            ));
        }
        for key in keys {
            check_source_key(key)?;
        }
        let mut epoch = 0;
        // The epoch is chosen and fenced in log order (under the log's lock), and the record
        // that makes it durable carries it.
        let mut admit = |ops: &mut Vec<WalOp>| {
            let mut fences = self.fences.lock();
            epoch = keys
                .iter()
                .filter_map(|k| fences.get(k))
                .max()
                .map_or(1, |e| e + 1);
            let offsets = keys
                .iter()
                .map(|k| {
                    fences.insert(k.clone(), epoch);
                    (format!("{k}{FENCE_SUFFIX}"), epoch as i64)
                })
                .collect();
            ops.push(WalOp::Offsets { offsets });
            Ok(())
        };
        self.wal
            .commit_admitted(Vec::new(), &mut admit, &|batch| self.apply(batch))?;
        tracing::info!(collection = %self.name, ?keys, epoch, "sources claimed");
        Ok(epoch)
    }

    /// Moves all memtable rows into L1 buckets (training centroids first if there are none),
    /// commits them durably (segment, tombstones, manifest), and retires the WAL they cover.
    pub fn flush(&self) -> Result<FlushReport> {
        self.check_open()?;
        let _m = self.maintenance.lock();
        let v = self.version.load_full();
        if !v.active.buf.read().is_empty() {
            self.freeze_active(&v.active, false);
        }
        let v = self.version.load_full();
        let mut report = FlushReport {
            memtables: v.frozen.len(),
            ..Default::default()
        };
        if v.frozen.is_empty() {
            report.checkpoint_seq = self.checkpoint_seq.load(Ordering::Acquire);
            drop(_m);
            self.calibrate_if_stale();
            return Ok(report);
        }
        let (rows, max_seq) = self.current_rows(&v.frozen, None)?;
        report.rows = rows.len();
        let mut l1 = (*v.l1).clone();
        if !l1.is_trained() {
            l1 = self.untrained_layer(&rows.ids, &rows.vectors);
            report.trained = true;
        }
        let (layer, placed, stats) = self.place(&l1, rows)?;
        report.buckets_touched = stats.0;
        report.refits = stats.1;
        let work = Durable {
            flushes: 1,
            trainings: u64::from(report.trained),
            ..Default::default()
        };
        self.publish(layer, &v.frozen, placed, max_seq, &work)?;
        report.checkpoint_seq = self.checkpoint_seq.load(Ordering::Acquire);
        drop(_m);
        // Refits happen at flushes and maintenance passes only (deterministic points), when
        // the layer changed by a quarter since the last fit.
        self.calibrate_if_stale();
        tracing::debug!(collection = %self.name, rows = report.rows, trained = report.trained, "flushed");
        Ok(report)
    }

    /// Trains new centroids from `sample` (row-major) and re-assigns every stored row to
    /// them. Sized for the larger of the sample and the live row count.
    pub fn train(&self, sample: &[f32]) -> Result<TrainReport> {
        self.check_open()?;
        let dim = self.config.dim;
        if sample.is_empty() || !sample.len().is_multiple_of(dim) {
            return Err(Error::InvalidArgument(format!(
                "training sample must hold whole vectors of dimension {dim} ({} values given)",
                sample.len()
            )));
        }
        let mut prepared = Vec::with_capacity(sample.len());
        for (i, row) in sample.chunks_exact(dim).enumerate() {
            prepared.extend(self.prepare_vector(i as u64, row)?);
        }
        let _m = self.maintenance.lock();
        let v = self.version.load_full();
        if !v.active.buf.read().is_empty() {
            self.freeze_active(&v.active, false);
        }
        let v = self.version.load_full();
        let (rows, max_seq) = self.current_rows(&v.frozen, Some(&v.l1))?;
        let sample_rows = prepared.len() / dim;
        let k = self.bucket_count(sample_rows.max(self.idmap.live()));
        let layer = self.train_layer(&[], &prepared, k);
        let report = TrainReport {
            buckets: layer.buckets().len(),
            sample_rows,
            rows: rows.len(),
        };
        let (layer, placed, _) = self.place(&layer, rows)?;
        let max_seq = max_seq.max(self.checkpoint_seq.load(Ordering::Acquire));
        let work = Durable {
            trainings: 1,
            ..Default::default()
        };
        self.publish(layer, &v.frozen, placed, max_seq, &work)?;
        drop(_m);
        self.calibration.store(None);
        self.calibrate_if_stale();
        Ok(report)
    }

    fn bucket_count(&self, rows: usize) -> usize {
        rows.div_ceil(self.config.settings.target_bucket_size)
            .max(1)
    }

    /// The first layer, trained on (a sample of) the rows being flushed.
    fn untrained_layer(&self, ids: &[u64], vectors: &[f32]) -> L1 {
        let dim = self.config.dim;
        let n = vectors.len() / dim;
        let k = self.bucket_count(n.max(1));
        self.train_layer(ids, vectors, k)
    }

    /// k-means on at most `train_sample` rows (with `ids`, the held-out ones left out: see
    /// [`crate::ivf::held_out`]); each bucket starts empty with a quantizer fitted on the
    /// sample rows routed to it (re-fitted when its first rows arrive).
    fn train_layer(&self, ids: &[u64], vectors: &[f32], k: usize) -> L1 {
        let dim = self.config.dim;
        let held_in = crate::ivf::held_in_vectors(ids, vectors, dim);
        let vectors = if ids.len() * dim == vectors.len() && held_in.len() >= k.max(2) * dim {
            &held_in[..]
        } else {
            vectors
        };
        let n = vectors.len() / dim;
        let cap = self.config.settings.train_sample;
        let sample: Vec<f32> = if n > cap {
            let stride = n as f64 / cap as f64;
            (0..cap)
                .flat_map(|i| {
                    let r = (i as f64 * stride) as usize;
                    vectors[r * dim..(r + 1) * dim].iter().copied()
                })
                .collect()
        } else {
            vectors.to_vec()
        };
        let km = kmeans(&sample, dim, k, KMEANS_ITERS, 0xd21f7 ^ n as u64);
        let k = km.centroids.len() / dim;
        let buckets = (0..k)
            .map(|c| {
                Arc::new(Bucket::empty(
                    c as u32,
                    km.centroids[c * dim..(c + 1) * dim].to_vec(),
                ))
            })
            .collect();
        let base = self.version.load().l1.next_id();
        let mut layer = L1::from_buckets(dim, self.config.metric, buckets, 0);
        if base > 0 {
            // Fresh ids, so that id-map entries of the old layer cannot point into the new one.
            let renumbered = layer
                .buckets()
                .iter()
                .map(|b| {
                    let mut nb = (**b).clone();
                    nb.id += base;
                    Arc::new(nb)
                })
                .collect();
            layer = L1::from_buckets(dim, self.config.metric, renumbered, base);
        }
        layer
    }

    /// Current rows of `frozen` memtables (and of `l1`, if given), with the highest sequence
    /// number among the memtable rows.
    fn current_rows(&self, frozen: &[Arc<Memtable>], l1: Option<&L1>) -> Result<(RowBatch, u64)> {
        let dim = self.config.dim;
        let mut rows = RowBatch::default();
        let mut max_seq = 0;
        let is_current = |id: u64, seq: u64| self.idmap.is_current(id, seq);
        if let Some(l1) = l1 {
            for b in l1.buckets() {
                rows.extend_from(b.current_rows(&is_current)?);
            }
        }
        for m in frozen {
            let buf = m.buf.read();
            for i in 0..buf.len() {
                max_seq = max_seq.max(buf.seqs[i]);
                if self.idmap.is_current(buf.ids[i], buf.seqs[i]) {
                    rows.push(
                        buf.ids[i],
                        buf.seqs[i],
                        buf.vector(i, dim),
                        buf.payloads[i].clone(),
                    );
                }
            }
        }
        Ok((rows, max_seq))
    }

    /// Routes rows to their nearest centroid and appends them to those buckets (see
    /// [`Reshape::append`]). Returns the new layer, the placement of every row, and
    /// (buckets touched, quantizers re-fitted).
    fn place(&self, layer: &L1, rows: RowBatch) -> Result<(L1, Placed, (usize, usize))> {
        let mut shape = self.reshape(layer);
        let is_current = |id: u64, seq: u64| self.idmap.is_current(id, seq);
        let touched = shape.scatter(rows, &is_current)?;
        let refits = shape.refits;
        let (layer, placed) = shape.finish();
        Ok((layer, placed, (touched, refits)))
    }

    /// A [`Reshape`] of `layer` with this collection's chunk limit.
    pub(super) fn reshape(&self, layer: &L1) -> Reshape {
        let mut shape = Reshape::new(layer.clone());
        shape.max_chunks = self.config.settings.storage.max_chunks;
        shape
    }

    /// Swaps in `layer` (dropping the `flushed` memtables), points the id map at the new
    /// homes of `placed` rows, commits the state as covering `seq` and retires the WAL.
    fn publish(
        &self,
        layer: L1,
        flushed: &[Arc<Memtable>],
        placed: Placed,
        seq: u64,
        work: &Durable,
    ) -> Result<()> {
        let layer = self.install(layer, flushed, placed);
        self.commit(&layer, seq, work)
    }

    /// Makes `layer` durable as covering the WAL through `seq`, with the counters including
    /// `work`, then counts `work` and retires the WAL.
    pub(super) fn commit(&self, layer: &L1, seq: u64, work: &Durable) -> Result<()> {
        let readers = Readers {
            applied: self.applied_seq.load(Ordering::SeqCst),
            oldest_pin: self.idmap.oldest_pin(),
        };
        self.persist
            .commit(layer, seq, self.counters.durable(work), readers)?;
        self.counters.add(work);
        self.checkpoint_seq.fetch_max(seq, Ordering::AcqRel);
        self.wal.retire_through(seq)?;
        failpoint("wal-retired");
        Ok(())
    }

    /// Swaps in `layer` (dropping the `flushed` memtables) and points the id map at the new
    /// homes of `placed` rows; a row that stopped being current meanwhile is counted as stale
    /// in the bucket that holds it. Not durable by itself: the next commit is.
    pub(super) fn install(&self, layer: L1, flushed: &[Arc<Memtable>], placed: Placed) -> Arc<L1> {
        let layer = Arc::new(layer);
        {
            let _s = self.structure.lock();
            let cur = self.version.load_full();
            let frozen = cur
                .frozen
                .iter()
                .filter(|m| !flushed.iter().any(|f| Arc::ptr_eq(f, m)))
                .cloned()
                .collect();
            self.version.store(Arc::new(Version {
                active: cur.active.clone(),
                frozen,
                l1: layer.clone(),
            }));
        }
        for (bucket_id, rows) in placed {
            let stale: Vec<u64> = rows
                .into_iter()
                .filter(|&(id, seq)| !self.idmap.relocate(id, seq, Loc::Bucket(bucket_id)))
                .map(|(id, _)| id)
                .collect();
            if !stale.is_empty() {
                if let Some(b) = layer.bucket(bucket_id) {
                    b.tally.add_dead(stale);
                }
            }
        }
        layer
    }
}

/// Longest source key accepted.
pub const MAX_SOURCE_KEY: usize = 512;

/// A source key must be non-empty, short, and free of `@` (claim epochs are stored under
/// `key@epoch`).
fn check_source_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_SOURCE_KEY || key.contains('@') {
        return Err(Error::InvalidArgument(format!(
            "source key {key:?} must be 1..={MAX_SOURCE_KEY} bytes without '@'"
        )));
    }
    Ok(())
}
