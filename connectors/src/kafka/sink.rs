//! The consume loop: Kafka topic → decoded writes → durable engine batches → Kafka commits.
//!
//! ```text
//! recv ─▶ batch (≤ max_batch records or linger) ─▶ per partition, in parallel:
//!            skip offsets below the engine's position (already applied)
//!            decode + validate each record ─▶ bad: dead-letter (awaited) / count / fail
//!            engine.write(writes, [topic/partition → last offset + 1])   (one durable batch)
//!        ─▶ commit the new positions to Kafka (asynchronously; for monitoring lag)
//! ```
//! The engine's logged offsets are the truth: on assignment each partition starts at the
//! engine's position (or the beginning if it has none), whatever Kafka's committed offset
//! says. Rebalance callbacks run inside `recv`, between batches, so nothing is in flight when
//! partitions are revoked; their durable positions are committed synchronously first.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drift_engine::{SourceMark, VectorWrite, Write};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;
use serde::Deserialize;

use super::decode::{BadRecord, Decoder, Format};
use super::stats::SinkStats;

/// What to do with a bad record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Send it to the dead-letter topic (the default when one is configured).
    #[default]
    Dlq,
    /// Count and log it, then go on.
    Skip,
    /// Stop the sink; the record and everything after it stay unapplied.
    Fail,
}

impl std::str::FromStr for OnError {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "dlq" => Ok(OnError::Dlq),
            "skip" => Ok(OnError::Skip),
            "fail" => Ok(OnError::Fail),
            other => Err(format!(
                "unknown --on-error {other:?}: expected dlq, skip or fail"
            )),
        }
    }
}

/// What to do when a partition holds fewer records than the collection already applied
/// from it (the topic was deleted and re-created, or truncated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnRewind {
    /// Stop the sink with an error naming the partition and both positions.
    #[default]
    Fail,
    /// Start the partition over from its beginning: its position is kept under a new
    /// generation of its key, and its records are applied again (as upserts and deletes).
    Reset,
}

impl std::str::FromStr for OnRewind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fail" => Ok(OnRewind::Fail),
            "reset" => Ok(OnRewind::Reset),
            other => Err(format!(
                "unknown --on-rewind {other:?}: expected fail or reset"
            )),
        }
    }
}

/// Settings of one sink: one topic into one collection. Deserializable from YAML for
/// `drift serve --sink CONFIG.yaml`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Bootstrap servers, `host:port[,host:port]`.
    pub brokers: String,
    /// Topic to consume.
    pub topic: String,
    /// Target collection (must exist).
    pub collection: String,
    /// Consumer group; default `drift-sink-<collection>`.
    #[serde(default)]
    pub group: Option<String>,
    /// Value format.
    #[serde(default)]
    pub format: Format,
    /// Dead-letter topic for bad records.
    #[serde(default)]
    pub dlq_topic: Option<String>,
    /// Bad-record policy; `dlq` without a dead-letter topic means `skip`.
    #[serde(default)]
    pub on_error: OnError,
    /// What to do with a partition that moved backwards (see [`OnRewind`]).
    #[serde(default)]
    pub on_rewind: OnRewind,
    /// Stop after this many seconds without a new record.
    #[serde(default)]
    pub until_idle_secs: Option<f64>,
    /// Most records per durable batch.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// How long a batch waits for more records once it has one, in milliseconds.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
    /// Largest record value accepted, in bytes.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Extra librdkafka properties for the consumer and the dead-letter producer.
    #[serde(default)]
    pub kafka: BTreeMap<String, String>,
}

fn default_max_batch() -> usize {
    8192
}
fn default_linger_ms() -> u64 {
    20
}
fn default_max_message_bytes() -> usize {
    16 << 20
}

impl SinkConfig {
    /// A configuration with defaults for everything but the essentials.
    pub fn new(brokers: &str, topic: &str, collection: &str) -> Self {
        SinkConfig {
            brokers: brokers.to_string(),
            topic: topic.to_string(),
            collection: collection.to_string(),
            group: None,
            format: Format::Json,
            dlq_topic: None,
            on_error: OnError::Dlq,
            on_rewind: OnRewind::Fail,
            until_idle_secs: None,
            max_batch: default_max_batch(),
            linger_ms: default_linger_ms(),
            max_message_bytes: default_max_message_bytes(),
            kafka: BTreeMap::new(),
        }
    }

    /// The consumer group id.
    pub fn group_id(&self) -> String {
        self.group
            .clone()
            .unwrap_or_else(|| format!("drift-sink-{}", self.collection))
    }

    fn policy(&self) -> OnError {
        match (self.on_error, &self.dlq_topic) {
            (OnError::Dlq, None) => OnError::Skip,
            (p, _) => p,
        }
    }

    fn validate(&self) -> Result<(), SinkError> {
        let bad = |m: String| Err(SinkError::Config(m));
        if self.brokers.trim().is_empty() {
            return bad("brokers must not be empty".into());
        }
        if self.topic.trim().is_empty() {
            return bad("topic must not be empty".into());
        }
        if self.dlq_topic.as_deref() == Some(self.topic.as_str()) {
            return bad("the dead-letter topic must differ from the source topic".into());
        }
        if self.max_batch == 0 {
            return bad("max_batch must be at least 1".into());
        }
        if let Some(s) = self.until_idle_secs {
            if !(s.is_finite() && s >= 0.0) {
                return bad(format!(
                    "until-idle must be a non-negative number of seconds, got {s}"
                ));
            }
        }
        Ok(())
    }
}

/// Why a sink stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Bad settings.
    #[error("sink configuration: {0}")]
    Config(String),
    /// The Kafka client failed.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The engine refused a batch that had passed validation, or failed to make it durable.
    #[error("engine: {0}")]
    Engine(#[from] drift_engine::Error),
    /// `--on-error fail` met a bad record.
    #[error("bad record at {topic}/{partition}@{offset}: {error}")]
    BadRecord {
        /// Source topic.
        topic: String,
        /// Source partition.
        partition: i32,
        /// Source offset.
        offset: i64,
        /// What is wrong with it.
        error: BadRecord,
    },
    /// A dead letter could not be delivered; its record and those after it stay unapplied.
    #[error("dead-letter topic {topic}: delivery failed: {reason}")]
    DeadLetter {
        /// The dead-letter topic.
        topic: String,
        /// Broker or client error.
        reason: String,
    },
}

/// How long `until_idle` waits for a first partition assignment.
const NEVER_ASSIGNED_WAIT: Duration = Duration::from_secs(30);

/// The engine-side key of a partition's offset (its first generation).
pub fn offset_key(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// The key of a partition's offset in generation `generation`: [`offset_key`] for 0, then
/// `topic/partition#n` after the n-th reset of a rewound partition.
pub fn offset_key_in(topic: &str, partition: i32, generation: i64) -> String {
    match generation {
        0 => offset_key(topic, partition),
        n => format!("{topic}/{partition}#{n}"),
    }
}

/// The key under which a partition's current generation is kept.
fn generation_key(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}!generation")
}

/// A partition as the engine knows it: its generation, the key its offset is kept under,
/// and that offset.
struct EnginePosition {
    partition: i32,
    generation: i64,
    key: String,
    offset: Option<i64>,
}

/// What this sink holds since its last assignment: the claim epoch its writes carry and the
/// key of each partition's offset.
#[derive(Debug, Clone, Default)]
struct Claim {
    epoch: Option<u64>,
    keys: HashMap<i32, String>,
}

impl Claim {
    fn key(&self, topic: &str, partition: i32) -> String {
        self.keys
            .get(&partition)
            .cloned()
            .unwrap_or_else(|| offset_key(topic, partition))
    }
}

/// Consumer callbacks: positions from the engine on assignment, durable commit on revoke,
/// high watermarks from librdkafka statistics.
struct SinkContext {
    target: Arc<dyn VectorWrite>,
    topic: String,
    stats: Arc<SinkStats>,
    rebalanced: parking_lot::Mutex<Instant>,
    /// A failure inside a callback that must stop the sink.
    fatal: parking_lot::Mutex<Option<String>>,
    /// Set at the first assignment; idleness is only judged after it (a group join takes
    /// seconds).
    assigned_once: std::sync::atomic::AtomicBool,
    /// The claim of the current assignment: every write carries its epoch, so that once the
    /// partitions move to another sink, a late batch from this one is refused.
    claim: parking_lot::Mutex<Claim>,
    on_rewind: OnRewind,
}

impl SinkContext {
    /// The engine's positions for the partitions of `tpl` (of our topic).
    fn engine_positions(
        &self,
        tpl: &TopicPartitionList,
    ) -> drift_engine::Result<Vec<EnginePosition>> {
        let offsets = self.target.source_offsets()?;
        Ok(tpl
            .elements()
            .iter()
            .filter(|e| e.topic() == self.topic)
            .map(|e| {
                let p = e.partition();
                let generation = offsets
                    .get(&generation_key(&self.topic, p))
                    .copied()
                    .unwrap_or(0);
                let key = offset_key_in(&self.topic, p, generation);
                EnginePosition {
                    partition: p,
                    generation,
                    offset: offsets.get(&key).copied(),
                    key,
                }
            })
            .collect())
    }

    /// Checks each position against its partition's end: a partition that ends before the
    /// engine's position moved backwards. Fails, or (with [`OnRewind::Reset`]) moves it to
    /// a new generation that starts from the beginning; returns the generations to record.
    fn rewound(
        &self,
        consumer: &BaseConsumer<Self>,
        positions: &mut [EnginePosition],
    ) -> Result<Vec<(String, i64)>, String> {
        let mut moved = Vec::new();
        for pos in positions.iter_mut() {
            let Some(at) = pos.offset else { continue };
            let high = match consumer.fetch_watermarks(
                &self.topic,
                pos.partition,
                Duration::from_secs(10),
            ) {
                Ok((_, high)) => high,
                Err(e) => {
                    tracing::warn!(partition = pos.partition, error = %e,
                        "cannot read the partition's end; not checking it for a rewind");
                    continue;
                }
            };
            if at <= high {
                continue;
            }
            let what = format!(
                "partition {}/{} moved backwards: the collection has applied it up to offset \
                 {at}, but it now ends at offset {high} (deleted and re-created, or truncated?)",
                self.topic, pos.partition
            );
            match self.on_rewind {
                OnRewind::Fail => {
                    return Err(format!(
                        "{what}; nothing was skipped or applied. Run the sink with \
                         --on-rewind reset to apply the partition again from its beginning"
                    ))
                }
                OnRewind::Reset => {
                    tracing::warn!("{what}; starting it over (--on-rewind reset)");
                    self.stats.rewinds.fetch_add(1, Ordering::Relaxed);
                    pos.generation += 1;
                    pos.key = offset_key_in(&self.topic, pos.partition, pos.generation);
                    pos.offset = None;
                    moved.push((generation_key(&self.topic, pos.partition), pos.generation));
                }
            }
        }
        Ok(moved)
    }

    /// Takes over the partitions of a new assignment: checks them for rewinds, claims their
    /// keys (fencing their previous owner), records new generations, and returns the
    /// positions to start from.
    fn take_over(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &TopicPartitionList,
    ) -> Result<Vec<EnginePosition>, String> {
        let mut positions = self
            .engine_positions(tpl)
            .map_err(|e| format!("cannot read source offsets: {e}"))?;
        let moved = self.rewound(consumer, &mut positions)?;
        let keys: Vec<String> = positions
            .iter()
            .flat_map(|p| [p.key.clone(), generation_key(&self.topic, p.partition)])
            .collect();
        if keys.is_empty() {
            return Ok(positions);
        }
        let epoch = self
            .target
            .claim_sources(&keys)
            .map_err(|e| format!("cannot claim partitions: {e}"))?;
        if !moved.is_empty() {
            self.target
                .write(Vec::new(), &SourceMark::fenced(moved, epoch))
                .map_err(|e| format!("cannot record the reset partitions: {e}"))?;
        }
        tracing::info!(?keys, epoch, "partitions claimed");
        *self.claim.lock() = Claim {
            epoch: Some(epoch),
            keys: positions
                .iter()
                .map(|p| (p.partition, p.key.clone()))
                .collect(),
        };
        Ok(positions)
    }
}

impl ClientContext for SinkContext {
    fn stats(&self, statistics: Statistics) {
        if let Some(t) = statistics.topics.get(&self.topic) {
            for (p, s) in &t.partitions {
                if *p >= 0 && s.hi_offset >= 0 {
                    self.stats.set_high_watermark(*p, s.hi_offset);
                }
            }
        }
    }
}

impl ConsumerContext for SinkContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        *self.rebalanced.lock() = Instant::now();
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.assigned_once.store(true, Ordering::Release);
                let positions = match self.take_over(consumer, tpl) {
                    Ok(p) => p,
                    Err(why) => {
                        // Without a safe start offset and a claim, consuming is not safe: stop.
                        *self.fatal.lock() = Some(why);
                        return;
                    }
                };
                for EnginePosition {
                    partition: p,
                    offset: pos,
                    ..
                } in positions
                {
                    let offset = pos.map(Offset::Offset).unwrap_or(Offset::Beginning);
                    if let Err(e) = tpl.set_partition_offset(&self.topic, p, offset) {
                        tracing::error!(partition = p, error = %e, "cannot set start offset");
                    }
                    self.stats.set_position(p, pos.unwrap_or(0));
                    self.stats.set_assigned(p, true);
                    tracing::info!(topic = %self.topic, partition = p, start = ?pos, "partition assigned");
                }
                if let Err(e) = consumer.assign(tpl) {
                    tracing::error!(error = %e, "assign failed");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // Every applied batch is already durable (writes return after fsync); commit
                // their positions before the partitions go to another consumer.
                let mut commit = TopicPartitionList::new();
                for EnginePosition {
                    partition: p,
                    offset: pos,
                    ..
                } in self.engine_positions(tpl).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "cannot read source offsets; revoking without a commit");
                    Vec::new()
                }) {
                    self.stats.set_assigned(p, false);
                    if let Some(pos) = pos {
                        let _ = commit.add_partition_offset(&self.topic, p, Offset::Offset(pos));
                    }
                    tracing::info!(topic = %self.topic, partition = p, position = ?pos, "partition revoked");
                }
                if commit.count() > 0 {
                    if let Err(e) = consumer.commit(&commit, CommitMode::Sync) {
                        // Harmless for correctness: the next owner starts from the engine's
                        // position in any case (and skips what it already holds).
                        tracing::warn!(error = %e, "commit on revoke refused");
                    }
                }
                if let Err(e) = consumer.unassign() {
                    tracing::error!(error = %e, "unassign failed");
                }
            }
            other => tracing::error!(error = ?other, "rebalance error"),
        }
    }
}

/// Outcome of one partition's share of a batch.
struct PartitionWork {
    partition: i32,
    writes: Vec<Write>,
    upserts: u64,
    deletes: u64,
    records: u64,
    redelivered: u64,
    /// Bad records: (offset, key, value, headers, error).
    bad: Vec<(OwnedMessage, BadRecord)>,
    /// Next offset after the last record handled (None: nothing new).
    next: Option<i64>,
    /// `--on-error fail` stopped here.
    failed: Option<(i64, BadRecord)>,
}

fn decode_partition(
    target: &dyn VectorWrite,
    decoder: &Decoder,
    policy: OnError,
    partition: i32,
    position: i64,
    messages: Vec<OwnedMessage>,
) -> PartitionWork {
    let mut w = PartitionWork {
        partition,
        writes: Vec::with_capacity(messages.len()),
        upserts: 0,
        deletes: 0,
        records: 0,
        redelivered: 0,
        bad: Vec::new(),
        next: None,
        failed: None,
    };
    for m in messages {
        let offset = m.offset();
        if offset < position {
            w.redelivered += 1;
            continue;
        }
        let decoded = decoder.decode(m.key(), m.payload()).and_then(|writes| {
            for x in &writes {
                if let Write::Upsert(r) = x {
                    target.validate(r)?;
                }
            }
            Ok(writes)
        });
        match decoded {
            Ok(writes) => {
                for x in &writes {
                    match x {
                        Write::Upsert(_) => w.upserts += 1,
                        Write::Delete(_) => w.deletes += 1,
                    }
                }
                w.writes.extend(writes);
            }
            Err(e) if policy == OnError::Fail => {
                w.failed = Some((offset, e));
                break;
            }
            Err(e) => w.bad.push((m, e)),
        }
        w.records += 1;
        w.next = Some(offset + 1);
    }
    w
}

/// A running sink's handles for stopping it and reading its counters.
pub struct Sink {
    config: SinkConfig,
    target: Arc<dyn VectorWrite>,
    stats: Arc<SinkStats>,
}

impl Sink {
    /// A sink of `config.topic` into `target` (the collection `config.collection`).
    pub fn new(config: SinkConfig, target: Arc<dyn VectorWrite>) -> Result<Self, SinkError> {
        config.validate()?;
        let stats = Arc::new(SinkStats::new(&config.topic, &config.collection));
        Ok(Sink {
            config,
            target,
            stats,
        })
    }

    /// Live counters.
    pub fn stats(&self) -> Arc<SinkStats> {
        self.stats.clone()
    }

    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.config.brokers);
        for (k, v) in &self.config.kafka {
            c.set(k, v);
        }
        c
    }

    /// Consumes until `stop` resolves, the topic has been idle for `until_idle_secs`, or an
    /// error stops it. Returns with every applied record durable and its position committed.
    pub async fn run(
        &self,
        stop: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), SinkError> {
        let cfg = &self.config;
        let ctx = SinkContext {
            target: self.target.clone(),
            topic: cfg.topic.clone(),
            stats: self.stats.clone(),
            rebalanced: parking_lot::Mutex::new(Instant::now()),
            assigned_once: std::sync::atomic::AtomicBool::new(false),
            fatal: parking_lot::Mutex::new(None),
            claim: parking_lot::Mutex::new(Claim::default()),
            on_rewind: cfg.on_rewind,
        };
        let consumer: StreamConsumer<SinkContext> = self
            .client_config()
            .set("group.id", cfg.group_id())
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("statistics.interval.ms", "1000")
            .set("partition.assignment.strategy", "range,roundrobin")
            .create_with_context(ctx)?;
        consumer.subscribe(&[&cfg.topic])?;
        let producer: Option<FutureProducer> = match (&cfg.dlq_topic, cfg.policy()) {
            (Some(_), OnError::Dlq) => Some(
                self.client_config()
                    .set("acks", "all")
                    .set("message.timeout.ms", "30000")
                    .create()?,
            ),
            _ => None,
        };
        let decoder = Decoder {
            format: cfg.format,
            collection: cfg.collection.clone(),
            max_message_bytes: cfg.max_message_bytes,
        };
        tracing::info!(topic = %cfg.topic, collection = %cfg.collection, group = %cfg.group_id(),
            format = ?cfg.format, "sink started");

        // What this process applied, by offset key (a reset partition starts a new key).
        let mut positions: HashMap<String, i64> = HashMap::new();
        let mut last_record = Instant::now();
        let idle = cfg.until_idle_secs.map(Duration::from_secs_f64);
        let linger = Duration::from_millis(cfg.linger_ms);
        tokio::pin!(stop);
        // Records received while paused wait here for the next batch.
        let mut carry: Vec<OwnedMessage> = Vec::new();
        let result = loop {
            if let Some(why) = consumer.context().fatal.lock().take() {
                break Err(SinkError::Engine(drift_engine::Error::Internal(why)));
            }
            // Backpressure: while the engine's flush backlog is over its limit, pause.
            let backlogged = self.target.backlogged();
            if let Err(e) = self.pause(&consumer, backlogged) {
                break Err(e);
            }
            let wait = if backlogged { 50 } else { 200 };
            let first = tokio::select! {
                _ = &mut stop => break Ok(()),
                m = tokio::time::timeout(Duration::from_millis(wait), consumer.recv()) => m,
            };
            match first {
                Ok(Ok(m)) => carry.push(m.detach()),
                Ok(Err(e)) => tracing::warn!(error = %e, "consume error"),
                Err(_) => {}
            }
            if backlogged {
                // Time spent paused is not idleness: the topic may hold plenty.
                last_record = Instant::now();
                continue;
            }
            if carry.is_empty() {
                let ctx = consumer.context();
                let since = last_record.max(*ctx.rebalanced.lock());
                // Never assigned anything (more consumers than partitions): give up on
                // idleness only after a generous wait.
                let joined = ctx.assigned_once.load(Ordering::Acquire)
                    || since.elapsed() >= NEVER_ASSIGNED_WAIT;
                if joined && idle.is_some_and(|d| since.elapsed() >= d) {
                    tracing::info!("topic idle; stopping");
                    break Ok(());
                }
                continue;
            }
            self.stats.received();
            let mut batch = std::mem::take(&mut carry);
            let deadline = tokio::time::Instant::now() + linger;
            while batch.len() < cfg.max_batch {
                match tokio::time::timeout_at(deadline, consumer.recv()).await {
                    Ok(Ok(m)) => batch.push(m.detach()),
                    Ok(Err(e)) => tracing::warn!(error = %e, "consume error"),
                    Err(_) => break,
                }
            }
            last_record = Instant::now();
            // A rebalance inside recv may have taken partitions away: their records are the
            // new owner's now.
            let owned = match consumer.assignment() {
                Ok(a) => a,
                Err(e) => break Err(e.into()),
            };
            batch.retain(|m| owned.find_partition(m.topic(), m.partition()).is_some());
            let claim = consumer.context().claim.lock().clone();
            match self
                .apply_batch(batch, &decoder, producer.as_ref(), &mut positions, &claim)
                .await
            {
                Ok(commit) => {
                    if commit.count() > 0 {
                        if let Err(e) = consumer.commit(&commit, CommitMode::Async) {
                            tracing::debug!(error = %e, "async commit refused");
                        }
                    }
                }
                Err(e) => break Err(e),
            }
        };
        // Final synchronous commit of the durable positions of what we still own.
        let mut commit = TopicPartitionList::new();
        let owned = consumer.assignment()?;
        for EnginePosition {
            partition: p,
            offset: pos,
            ..
        } in consumer
            .context()
            .engine_positions(&owned)
            .unwrap_or_default()
        {
            if let Some(pos) = pos {
                commit.add_partition_offset(&cfg.topic, p, Offset::Offset(pos))?;
            }
        }
        if commit.count() > 0 {
            if let Err(e) = consumer.commit(&commit, CommitMode::Sync) {
                tracing::warn!(error = %e, "final commit refused");
            }
        }
        // Leave the group: serve the revoke, then close (on drop).
        consumer.unsubscribe();
        let leave = Instant::now();
        while leave.elapsed() < Duration::from_secs(2)
            && consumer
                .assignment()
                .map(|a| a.count() > 0)
                .unwrap_or(false)
        {
            let _ = tokio::time::timeout(Duration::from_millis(100), consumer.recv()).await;
        }
        tracing::info!(status = ?self.stats.snapshot(), "sink stopped");
        result
    }

    /// Pauses (or resumes) every assigned partition. While paused it re-applies the pause at
    /// each call, so partitions assigned in the meantime are held too.
    fn pause(&self, consumer: &StreamConsumer<SinkContext>, on: bool) -> Result<(), SinkError> {
        let was = self.stats.paused.load(Ordering::Relaxed);
        if !on && !was {
            return Ok(());
        }
        let assignment = consumer.assignment()?;
        if on {
            consumer.pause(&assignment)?;
            if !was {
                self.stats.pauses.fetch_add(1, Ordering::Relaxed);
                tracing::info!("engine flush backlog over its limit; pausing consumption");
            }
        } else {
            consumer.resume(&assignment)?;
            tracing::info!("flush backlog cleared; resuming consumption");
        }
        self.stats.paused.store(on, Ordering::Relaxed);
        Ok(())
    }

    /// Decodes, dead-letters and applies one batch; returns the positions to commit.
    async fn apply_batch(
        &self,
        batch: Vec<OwnedMessage>,
        decoder: &Decoder,
        producer: Option<&FutureProducer>,
        positions: &mut HashMap<String, i64>,
        claim: &Claim,
    ) -> Result<TopicPartitionList, SinkError> {
        let cfg = &self.config;
        let mut by_partition: BTreeMap<i32, Vec<OwnedMessage>> = BTreeMap::new();
        for m in batch {
            if m.topic() == cfg.topic {
                by_partition.entry(m.partition()).or_default().push(m);
            }
        }
        let engine = self.target.source_offsets()?;
        let mut tasks = Vec::new();
        for (p, msgs) in by_partition {
            // The engine's position, never behind what this process has applied.
            let key = claim.key(&cfg.topic, p);
            let pos = engine
                .get(&key)
                .copied()
                .unwrap_or(0)
                .max(positions.get(&key).copied().unwrap_or(0));
            let target = self.target.clone();
            let decoder = decoder.clone();
            let policy = cfg.policy();
            tasks.push(drift_engine::run_cpu(move || {
                decode_partition(&*target, &decoder, policy, p, pos, msgs)
            }));
        }
        let mut works = Vec::with_capacity(tasks.len());
        for t in tasks {
            works.push(t.await?);
        }
        // Dead letters first: a record's position only advances once its letter is stored.
        self.handle_bad(&mut works, producer).await?;
        let mut writes = Vec::new();
        for w in works.iter_mut() {
            let Some(next) = w.next else { continue };
            let target = self.target.clone();
            let ops = std::mem::take(&mut w.writes);
            let source = SourceMark {
                offsets: vec![(claim.key(&cfg.topic, w.partition), next)],
                epoch: claim.epoch,
            };
            writes.push(drift_engine::run_cpu(move || target.write(ops, &source)));
        }
        for t in writes {
            t.await??;
        }
        let mut commit = TopicPartitionList::new();
        let s = &self.stats;
        for w in &works {
            s.records.fetch_add(w.records, Ordering::Relaxed);
            s.upserts.fetch_add(w.upserts, Ordering::Relaxed);
            s.deletes.fetch_add(w.deletes, Ordering::Relaxed);
            s.redelivered.fetch_add(w.redelivered, Ordering::Relaxed);
            if let Some(next) = w.next {
                positions.insert(claim.key(&cfg.topic, w.partition), next);
                s.set_position(w.partition, next);
                commit.add_partition_offset(&cfg.topic, w.partition, Offset::Offset(next))?;
            }
        }
        s.batches.fetch_add(1, Ordering::Relaxed);
        s.durable();
        if let Some(w) = works.iter_mut().find(|w| w.failed.is_some()) {
            let (offset, error) = w.failed.take().expect("checked above");
            s.add_bad(error.kind);
            return Err(SinkError::BadRecord {
                topic: cfg.topic.clone(),
                partition: w.partition,
                offset,
                error,
            });
        }
        Ok(commit)
    }

    async fn handle_bad(
        &self,
        works: &mut [PartitionWork],
        producer: Option<&FutureProducer>,
    ) -> Result<(), SinkError> {
        let cfg = &self.config;
        let bad: Vec<(OwnedMessage, BadRecord)> =
            works.iter_mut().flat_map(|w| w.bad.drain(..)).collect();
        let mut deliveries = Vec::new();
        for (m, e) in &bad {
            self.stats.add_bad(e.kind);
            let (Some(producer), Some(dlq)) = (producer, &cfg.dlq_topic) else {
                tracing::warn!(topic = %cfg.topic, partition = m.partition(), offset = m.offset(),
                    error = %e, "bad record skipped");
                continue;
            };
            let reason = e.to_string();
            let partition = m.partition().to_string();
            let offset = m.offset().to_string();
            let headers = [
                ("drift.error", reason.as_str()),
                ("drift.error.kind", e.kind.as_str()),
                ("drift.source.topic", cfg.topic.as_str()),
                ("drift.source.partition", partition.as_str()),
                ("drift.source.offset", offset.as_str()),
            ]
            .into_iter()
            .fold(OwnedHeaders::new(), |h, (key, value)| {
                h.insert(Header {
                    key,
                    value: Some(value),
                })
            });
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(dlq).headers(headers);
            if let Some(k) = m.key() {
                record = record.key(k);
            }
            if let Some(v) = m.payload() {
                record = record.payload(v);
            }
            deliveries.push(producer.send(record, Duration::from_secs(30)));
        }
        let n = deliveries.len() as u64;
        for d in futures::future::join_all(deliveries).await {
            if let Err((e, _)) = d {
                return Err(SinkError::DeadLetter {
                    topic: cfg.dlq_topic.clone().unwrap_or_default(),
                    reason: e.to_string(),
                });
            }
        }
        self.stats.dead_lettered.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }
}
