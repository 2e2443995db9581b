//! Live counters of a running sink: records applied, deletes, bad records by kind, dead
//! letters, pauses, per-partition position and lag. Shared between the consume loop, the
//! librdkafka statistics callback and whoever reports progress (terminal, server stats).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use serde::Serialize;

use super::decode::BadKind;

/// Position of one partition.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PartitionStatus {
    /// Next offset the engine needs (its durable position).
    pub next_offset: i64,
    /// The broker's high watermark, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high_watermark: Option<i64>,
    /// `high_watermark - next_offset`, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    /// True while this process owns the partition.
    pub assigned: bool,
}

/// A snapshot of [`SinkStats`], for printing and for stats endpoints.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SinkStatus {
    /// Topic consumed.
    pub topic: String,
    /// Target collection.
    pub collection: String,
    /// Kafka records consumed and handled (applied, skipped or dead-lettered).
    pub records: u64,
    /// Upserts applied to the engine.
    pub upserts: u64,
    /// Deletes applied to the engine.
    pub deletes: u64,
    /// Records below the engine's position that were skipped (redelivered after a crash
    /// or rebalance; already applied).
    pub redelivered: u64,
    /// Partitions found behind the collection's position and started over
    /// (`--on-rewind reset`).
    pub rewinds: u64,
    /// Bad records by kind.
    pub bad: BTreeMap<String, u64>,
    /// Bad records sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Batches made durable.
    pub batches: u64,
    /// Times consumption paused for the engine's flush backlog.
    pub pauses: u64,
    /// True while paused.
    pub paused: bool,
    /// Records per second since the start.
    pub records_per_sec: f64,
    /// Seconds since the start.
    pub elapsed_secs: f64,
    /// Seconds from the first record received to the last batch made durable.
    pub active_secs: f64,
    /// Per-partition position and lag.
    pub partitions: BTreeMap<i32, PartitionStatus>,
}

impl SinkStatus {
    /// Total lag over partitions with a known high watermark.
    pub fn total_lag(&self) -> i64 {
        self.partitions.values().filter_map(|p| p.lag).sum()
    }

    /// Bad records of every kind.
    pub fn bad_total(&self) -> u64 {
        self.bad.values().sum()
    }
}

/// Counters of one sink.
#[derive(Debug)]
pub struct SinkStats {
    topic: String,
    collection: String,
    started: Instant,
    pub(crate) records: AtomicU64,
    pub(crate) upserts: AtomicU64,
    pub(crate) deletes: AtomicU64,
    pub(crate) redelivered: AtomicU64,
    pub(crate) rewinds: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) pauses: AtomicU64,
    pub(crate) paused: AtomicBool,
    bad: Mutex<BTreeMap<BadKind, u64>>,
    /// When the first record arrived, and when the last batch became durable.
    active: Mutex<(Option<Instant>, Option<Instant>)>,
    partitions: Mutex<BTreeMap<i32, PartitionStatus>>,
}

impl SinkStats {
    /// Fresh counters for a sink of `topic` into `collection`.
    pub fn new(topic: &str, collection: &str) -> Self {
        SinkStats {
            topic: topic.to_string(),
            collection: collection.to_string(),
            started: Instant::now(),
            records: AtomicU64::new(0),
            upserts: AtomicU64::new(0),
            deletes: AtomicU64::new(0),
            redelivered: AtomicU64::new(0),
            rewinds: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            pauses: AtomicU64::new(0),
            paused: AtomicBool::new(false),
            bad: Mutex::new(BTreeMap::new()),
            active: Mutex::new((None, None)),
            partitions: Mutex::new(BTreeMap::new()),
        }
    }

    pub(crate) fn received(&self) {
        self.active.lock().0.get_or_insert_with(Instant::now);
    }

    pub(crate) fn durable(&self) {
        self.active.lock().1 = Some(Instant::now());
    }

    pub(crate) fn add_bad(&self, kind: BadKind) {
        *self.bad.lock().entry(kind).or_default() += 1;
    }

    fn update(&self, partition: i32, f: impl FnOnce(&mut PartitionStatus)) {
        let mut parts = self.partitions.lock();
        let p = parts.entry(partition).or_default();
        f(p);
        p.lag = p.high_watermark.map(|h| (h - p.next_offset).max(0));
    }

    pub(crate) fn set_position(&self, partition: i32, next_offset: i64) {
        self.update(partition, |p| p.next_offset = next_offset);
    }

    pub(crate) fn set_high_watermark(&self, partition: i32, hw: i64) {
        self.update(partition, |p| p.high_watermark = Some(hw));
    }

    pub(crate) fn set_assigned(&self, partition: i32, assigned: bool) {
        self.update(partition, |p| p.assigned = assigned);
    }

    /// The current values.
    pub fn snapshot(&self) -> SinkStatus {
        let elapsed = self.started.elapsed().as_secs_f64();
        let records = self.records.load(Ordering::Relaxed);
        SinkStatus {
            topic: self.topic.clone(),
            collection: self.collection.clone(),
            records,
            upserts: self.upserts.load(Ordering::Relaxed),
            deletes: self.deletes.load(Ordering::Relaxed),
            redelivered: self.redelivered.load(Ordering::Relaxed),
            rewinds: self.rewinds.load(Ordering::Relaxed),
            bad: self
                .bad
                .lock()
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), *v))
                .collect(),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            pauses: self.pauses.load(Ordering::Relaxed),
            paused: self.paused.load(Ordering::Relaxed),
            records_per_sec: if elapsed > 0.0 {
                records as f64 / elapsed
            } else {
                0.0
            },
            elapsed_secs: elapsed,
            active_secs: match *self.active.lock() {
                (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64(),
                _ => 0.0,
            },
            partitions: self.partitions.lock().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_follows_position_and_watermark() {
        let s = SinkStats::new("t", "c");
        s.set_position(0, 10);
        assert_eq!(s.snapshot().partitions[&0].lag, None);
        s.set_high_watermark(0, 25);
        assert_eq!(s.snapshot().partitions[&0].lag, Some(15));
        s.set_position(0, 25);
        s.add_bad(BadKind::Dimension);
        s.add_bad(BadKind::Dimension);
        let snap = s.snapshot();
        assert_eq!(snap.total_lag(), 0);
        assert_eq!(snap.bad["dimension"], 2);
        assert_eq!(snap.bad_total(), 2);
    }
}
