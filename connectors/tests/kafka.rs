//! The Kafka sink against librdkafka's embedded mock broker (real protocol on loopback, no
//! install): formats, deletes, dead letters, bad-record policies, resume and backpressure.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use drift_connectors::kafka::{
    encode_arrow, offset_key, offset_key_in, Format, OnError, OnRewind, Sink, SinkConfig, SinkError,
};
use drift_engine::{
    Collection, CollectionConfig, CollectionStats, Database, FlushReport, Hit, Metric, Record,
    SearchParams, SourceMark, TrainReport, VectorRead, VectorWrite, Write,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientConfig;

const DIM: usize = 8;

fn vector(id: u64, version: u32) -> Vec<f32> {
    (0..DIM)
        .map(|d| ((id * 31 + d as u64 * 7 + version as u64 * 13) % 97) as f32 / 97.0)
        .collect()
}

fn collection(dir: &std::path::Path, name: &str) -> (Database, Arc<Collection>) {
    let db = Database::open(dir).unwrap();
    let c = match db.collection(name) {
        Ok(c) => c,
        Err(_) => db
            .create_collection(name, CollectionConfig::new(DIM, Metric::L2))
            .unwrap(),
    };
    (db, c)
}

/// A record to produce: key, value (`None`: a tombstone).
type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);
/// A record read back: partition, offset, value, headers.
type Received = (i32, i64, Vec<u8>, HashMap<String, String>);

struct Broker {
    cluster: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    producer: BaseProducer,
}

impl Broker {
    fn new(topics: &[&str]) -> Broker {
        let cluster = MockCluster::new(1).unwrap();
        for t in topics {
            cluster.create_topic(t, 4, 1).unwrap();
        }
        let producer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .create()
            .unwrap();
        Broker { cluster, producer }
    }

    fn brokers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Produces `(key, value)` records in order (same key → same partition → same order).
    fn produce(&self, topic: &str, records: &[KeyValue]) {
        for (k, v) in records {
            let mut r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
            if let Some(k) = k {
                r = r.key(k.as_slice());
            }
            if let Some(v) = v {
                r = r.payload(v.as_slice());
            }
            let mut r = r;
            loop {
                match self.producer.send(r) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        self.producer.poll(Duration::from_millis(10));
                        r = back;
                    }
                }
            }
        }
        self.producer.flush(Duration::from_secs(10)).unwrap();
    }

    /// Every record of `topic`: (partition, offset, key, value, headers).
    fn read_all(&self, topic: &str, expect: usize) -> Vec<Received> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.brokers())
            .set("group.id", "reader")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..4 {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
        c.assign(&tpl).unwrap();
        let mut out = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while out.len() < expect && std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| {
                                (
                                    x.key.to_string(),
                                    String::from_utf8_lossy(x.value.unwrap_or_default()).into(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((
                    m.partition(),
                    m.offset(),
                    m.payload().unwrap_or_default().to_vec(),
                    headers,
                ));
            }
        }
        out
    }
}

fn key(id: u64) -> Option<Vec<u8>> {
    Some(id.to_string().into_bytes())
}

fn json(id: u64, v: &[f32], payload: &str) -> Option<Vec<u8>> {
    Some(format!(r#"{{"id":{id},"vector":{v:?},"payload":{payload}}}"#).into_bytes())
}

fn config(broker: &Broker, topic: &str, collection: &str) -> SinkConfig {
    let mut c = SinkConfig::new(&broker.brokers(), topic, collection);
    c.until_idle_secs = Some(1.5);
    c.linger_ms = 5;
    // The mock broker holds a re-join of a group until the previous member's session
    // expires, even after it left: keep sessions short.
    c.kafka.insert("session.timeout.ms".into(), "6000".into());
    c.kafka.insert("heartbeat.interval.ms".into(), "500".into());
    c
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
}

async fn run(config: SinkConfig, target: Arc<dyn VectorWrite>) -> (Result<(), SinkError>, Sink) {
    init_logs();
    let sink = Sink::new(config, target).unwrap();
    let r = tokio::time::timeout(Duration::from_secs(90), sink.run(std::future::pending()))
        .await
        .expect("sink stops once idle");
    (r, sink)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_upserts_replacements_deletes_and_dead_letters() {
    let broker = Broker::new(&["vectors", "vectors-dlq"]);
    let mut msgs = Vec::new();
    for id in 0..200 {
        msgs.push((
            key(id),
            json(id, &vector(id, 0), &format!(r#"{{"n":{id}}}"#)),
        ));
    }
    for id in 0..50 {
        msgs.push((key(id), json(id, &vector(id, 1), "null")));
    }
    for id in 100..120 {
        msgs.push((key(id), None));
    }
    // Bad records: wrong dimension, infinite, undecodable, payload not an object, other
    // collection.
    msgs.push((key(500), json(500, &[1.0, 2.0], "null")));
    msgs.push((
        key(501),
        Some(br#"{"id":501,"vector":[1e40,0,0,0,0,0,0,0]}"#.to_vec()),
    ));
    msgs.push((key(502), Some(b"{this is not json".to_vec())));
    msgs.push((key(503), json(503, &vector(503, 0), "[1,2]")));
    msgs.push((
        key(504),
        Some(br#"{"id":504,"vector":[0,0,0,0,0,0,0,0],"collection":"elsewhere"}"#.to_vec()),
    ));
    broker.produce("vectors", &msgs);

    let dir = tempfile::tempdir().unwrap();
    let (_db, coll) = collection(dir.path(), "c");
    let mut cfg = config(&broker, "vectors", "c");
    cfg.dlq_topic = Some("vectors-dlq".into());
    let (r, sink) = run(cfg, coll.clone()).await;
    r.unwrap();

    assert_eq!(coll.stats().live_vectors, 180);
    let r0 = coll.get(0).unwrap().unwrap();
    assert_eq!(r0.vector, vector(0, 1), "the re-upsert wins");
    assert_eq!(r0.payload, None);
    assert_eq!(
        coll.get(60).unwrap().unwrap().payload.as_deref(),
        Some(r#"{"n":60}"#)
    );
    assert!(coll.get(110).unwrap().is_none(), "deleted by a tombstone");
    for id in 500..505 {
        assert!(coll.get(id).unwrap().is_none());
    }
    let s = sink.stats().snapshot();
    assert_eq!(s.records, msgs.len() as u64);
    assert_eq!((s.upserts, s.deletes, s.dead_lettered), (250, 20, 5));
    assert_eq!(s.bad["dimension"], 1);
    assert_eq!(s.bad["non-finite"], 1);
    assert_eq!(s.bad["undecodable"], 1);
    assert_eq!(s.bad["payload"], 1);
    assert_eq!(s.bad["unknown-collection"], 1);
    // Positions: every partition's next offset is in the engine.
    let offsets = coll.source_offsets();
    let total: i64 = (0..4)
        .map(|p| offsets.get(&format!("vectors/{p}")).copied().unwrap_or(0))
        .sum();
    assert_eq!(total, msgs.len() as i64);

    let letters = broker.read_all("vectors-dlq", 5);
    assert_eq!(letters.len(), 5);
    let kinds: std::collections::BTreeSet<_> = letters
        .iter()
        .map(|l| l.3["drift.error.kind"].clone())
        .collect();
    assert_eq!(kinds.len(), 5, "{kinds:?}");
    let source = broker.read_all("vectors", msgs.len());
    for (_, _, value, h) in &letters {
        assert_eq!(h["drift.source.topic"], "vectors");
        assert!(!h["drift.error"].is_empty());
        // The letter names its source record, and carries its value unchanged.
        let p: i32 = h["drift.source.partition"].parse().unwrap();
        let o: i64 = h["drift.source.offset"].parse().unwrap();
        let orig = source.iter().find(|s| s.0 == p && s.1 == o).unwrap();
        assert_eq!(&orig.2, value);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f32le_and_arrow_values() {
    let broker = Broker::new(&["raw", "batches"]);
    let le = |v: &[f32]| Some(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>());
    let mut raw: Vec<_> = (0..100).map(|id| (key(id), le(&vector(id, 0)))).collect();
    raw.push((key(7), None));
    raw.push((key(8), le(&vector(8, 2))));
    raw.push((key(9), le(&vector(9, 0)[..5])));
    broker.produce("raw", &raw);

    let mut batches = Vec::new();
    for b in 0..10u64 {
        let rows: Vec<_> = (b * 30..b * 30 + 30)
            .map(|id| (id, Some(vector(id, 0)), Some(format!(r#"{{"b":{b}}}"#))))
            .collect();
        batches.push((key(b), Some(encode_arrow(DIM, &rows))));
    }
    // Deletes as null vectors; and one message with a NaN row: refused whole.
    batches.push((
        key(0),
        Some(encode_arrow(DIM, &[(3, None, None), (4, None, None)])),
    ));
    let mut nan = vector(999, 0);
    nan[2] = f32::NAN;
    batches.push((
        key(1),
        Some(encode_arrow(
            DIM,
            &[(998, Some(vector(998, 0)), None), (999, Some(nan), None)],
        )),
    ));
    broker.produce("batches", &batches);

    let dir = tempfile::tempdir().unwrap();
    let (db, a) = collection(dir.path(), "a");
    let b = db
        .create_collection("b", CollectionConfig::new(DIM, Metric::L2))
        .unwrap();
    let mut ca = config(&broker, "raw", "a");
    ca.format = Format::F32le;
    let mut cb = config(&broker, "batches", "b");
    cb.format = Format::Arrow;
    let ((ra, sa), (rb, sb)) = tokio::join!(run(ca, a.clone()), run(cb, b.clone()));
    ra.unwrap();
    rb.unwrap();

    assert_eq!(a.stats().live_vectors, 99);
    assert!(a.get(7).unwrap().is_none());
    assert_eq!(a.get(8).unwrap().unwrap().vector, vector(8, 2));
    assert_eq!(sa.stats().snapshot().bad["dimension"], 1);

    assert_eq!(b.stats().live_vectors, 298);
    assert!(b.get(3).unwrap().is_none());
    assert_eq!(
        b.get(250).unwrap().unwrap().payload.as_deref(),
        Some(r#"{"b":8}"#)
    );
    assert!(
        b.get(998).unwrap().is_none(),
        "a message with a bad row is refused whole"
    );
    let s = sb.stats().snapshot();
    assert_eq!(s.bad["non-finite"], 1);
    assert_eq!((s.upserts, s.deletes), (300, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_sink_resumes_from_the_engine_and_applies_nothing_twice() {
    let broker = Broker::new(&["t"]);
    let first: Vec<_> = (0..300)
        .map(|id| (key(id), json(id, &vector(id, 0), "null")))
        .collect();
    broker.produce("t", &first);
    let dir = tempfile::tempdir().unwrap();
    let (_db, coll) = collection(dir.path(), "c");
    let (r, s1) = run(config(&broker, "t", "c"), coll.clone()).await;
    r.unwrap();
    assert_eq!(s1.stats().snapshot().upserts, 300);

    let mut second: Vec<_> = (300..350)
        .map(|id| (key(id), json(id, &vector(id, 0), "null")))
        .collect();
    second.extend((0..10).map(|id| (key(id), None)));
    broker.produce("t", &second);
    let (r, s2) = run(config(&broker, "t", "c"), coll.clone()).await;
    r.unwrap();
    let s = s2.stats().snapshot();
    assert_eq!(
        (s.upserts, s.deletes),
        (50, 10),
        "only the new records are applied: {s:?}"
    );
    assert_eq!(coll.stats().live_vectors, 340);

    // Kafka's committed offsets followed the engine's.
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.brokers())
        .set("group.id", "drift-sink-c")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..4 {
        tpl.add_partition("t", p);
    }
    let committed = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    let engine = coll.source_offsets();
    for e in committed.elements() {
        let want = engine.get(&format!("t/{}", e.partition())).copied();
        assert_eq!(e.offset().to_raw(), want, "partition {}", e.partition());
    }

    // A new group has no committed offsets; the engine's positions still rule.
    let mut cfg = config(&broker, "t", "c");
    cfg.group = Some("another-group".into());
    let (r, s3) = run(cfg, coll.clone()).await;
    r.unwrap();
    let s = s3.stats().snapshot();
    assert_eq!((s.upserts, s.deletes), (0, 0));
    assert_eq!(coll.stats().live_vectors, 340);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_error_fail_stops_at_the_bad_record_and_skip_counts_it() {
    let broker = Broker::new(&["f"]);
    // One key, so one partition and a fixed order.
    let msgs = vec![
        (key(1), json(1, &vector(1, 0), "null")),
        (key(1), Some(b"garbage".to_vec())),
        (key(1), json(1, &vector(1, 5), "null")),
    ];
    broker.produce("f", &msgs);
    let dir = tempfile::tempdir().unwrap();
    let (db, coll) = collection(dir.path(), "c");
    let mut cfg = config(&broker, "f", "c");
    cfg.on_error = OnError::Fail;
    let (r, _) = run(cfg, coll.clone()).await;
    match r {
        Err(SinkError::BadRecord { offset, error, .. }) => {
            assert_eq!(offset, 1);
            assert!(error.to_string().contains("undecodable"), "{error}");
        }
        other => panic!("expected a bad-record stop, got {other:?}"),
    }
    // Applied up to the bad record, positioned at it.
    assert_eq!(coll.get(1).unwrap().unwrap().vector, vector(1, 0));
    assert!(coll.source_offsets().values().any(|&o| o == 1));

    // The same topic with skip: counted, logged, and the sink goes on.
    let skip = db
        .create_collection("s", CollectionConfig::new(DIM, Metric::L2))
        .unwrap();
    let mut cfg = config(&broker, "f", "s");
    cfg.on_error = OnError::Skip;
    let (r, sink) = run(cfg, skip.clone()).await;
    r.unwrap();
    assert_eq!(skip.get(1).unwrap().unwrap().vector, vector(1, 5));
    assert_eq!(sink.stats().snapshot().bad["undecodable"], 1);
}

/// `VectorRead` for a test wrapper with an `inner: Arc<Collection>`: every read goes to it.
macro_rules! delegate_reads {
    ($t:ty) => {
        impl VectorRead for $t {
            fn config(&self) -> &CollectionConfig {
                self.inner.config()
            }
            fn search_params(&self, k: usize) -> SearchParams {
                self.inner.search_params(k)
            }
            fn search(&self, q: &[f32], p: &SearchParams) -> drift_engine::Result<Vec<Hit>> {
                self.inner.search(q, p)
            }
            fn get(&self, id: u64) -> drift_engine::Result<Option<Record>> {
                self.inner.get(id)
            }
            fn scan(
                self: Arc<Self>,
                batch: usize,
            ) -> drift_engine::Result<drift_engine::RecordBatches> {
                self.inner.clone().scan(batch)
            }
            fn stats(&self) -> drift_engine::Result<CollectionStats> {
                Ok(self.inner.stats())
            }
        }
    };
}

/// A collection whose flush backlog reads as full until `blocked` is cleared.
struct Throttled {
    inner: Arc<Collection>,
    blocked: AtomicBool,
}

delegate_reads!(Throttled);

impl VectorWrite for Throttled {
    fn upsert(&self, r: Vec<Record>) -> drift_engine::Result<u64> {
        self.inner.upsert(r)
    }
    fn delete(&self, ids: &[u64]) -> drift_engine::Result<u64> {
        self.inner.delete(ids)
    }
    fn write(&self, w: Vec<Write>, s: &SourceMark) -> drift_engine::Result<u64> {
        assert!(
            !self.blocked.load(Ordering::SeqCst),
            "wrote while backlogged"
        );
        self.inner.write(w, s)
    }
    fn claim_sources(&self, keys: &[String]) -> drift_engine::Result<u64> {
        self.inner.claim_sources(keys)
    }
    fn validate(&self, r: &Record) -> drift_engine::Result<()> {
        VectorWrite::validate(&*self.inner, r)
    }
    fn source_offsets(&self) -> drift_engine::Result<BTreeMap<String, i64>> {
        Ok(self.inner.source_offsets())
    }
    fn backlogged(&self) -> bool {
        self.blocked.load(Ordering::SeqCst)
    }
    fn flush(&self) -> drift_engine::Result<FlushReport> {
        self.inner.flush()
    }
    fn train(&self, s: &[f32]) -> drift_engine::Result<TrainReport> {
        self.inner.train(s)
    }
    fn maintain(&self, passes: usize) -> drift_engine::Result<drift_engine::MaintainReport> {
        self.inner.maintain(passes)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_behind_the_collection_is_reported_then_reset_on_request() {
    let broker = Broker::new(&["rw"]);
    let msgs: Vec<_> = (0..12)
        .map(|id| (key(id), json(id, &vector(id, 0), "null")))
        .collect();
    broker.produce("rw", &msgs);
    let dir = tempfile::tempdir().unwrap();
    let (_db, coll) = collection(dir.path(), "c");
    // The collection applied far more of "rw" than the (re-created) topic now holds.
    let ahead: Vec<(String, i64)> = (0..4).map(|p| (offset_key("rw", p), 1000)).collect();
    coll.write(vec![], &SourceMark::offsets(ahead)).unwrap();

    let (result, _sink) = run(config(&broker, "rw", "c"), coll.clone()).await;
    let err = result
        .expect_err("a rewound partition stops the sink")
        .to_string();
    assert!(
        err.contains("moved backwards")
            && err.contains("1000")
            && err.contains("--on-rewind reset"),
        "{err}"
    );
    assert_eq!(
        coll.stats().live_vectors,
        0,
        "nothing applied, nothing skipped"
    );

    let mut reset = config(&broker, "rw", "c");
    reset.on_rewind = OnRewind::Reset;
    let (result, sink) = run(reset.clone(), coll.clone()).await;
    result.unwrap();
    let s = sink.stats().snapshot();
    assert_eq!(s.rewinds, 4);
    assert_eq!(s.upserts, 12);
    assert_eq!(coll.stats().live_vectors, 12);
    let offsets = coll.source_offsets();
    let applied: i64 = (0..4)
        .map(|p| {
            offsets
                .get(&offset_key_in("rw", p, 1))
                .copied()
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(
        applied, 12,
        "positions live under the new generation: {offsets:?}"
    );

    // A later run finds the new generation in step with the topic: nothing again.
    let (result, sink) = run(reset, coll.clone()).await;
    result.unwrap();
    let s = sink.stats().snapshot();
    assert_eq!((s.rewinds, s.upserts), (0, 0));
}

/// A target whose sources are claimed by another writer just before this sink's first
/// write: the rebalance that moved its partitions away, as a stale sink would see it.
struct Usurped {
    inner: Arc<Collection>,
    taken: AtomicBool,
}

delegate_reads!(Usurped);

impl VectorWrite for Usurped {
    fn upsert(&self, r: Vec<Record>) -> drift_engine::Result<u64> {
        self.inner.upsert(r)
    }
    fn delete(&self, ids: &[u64]) -> drift_engine::Result<u64> {
        self.inner.delete(ids)
    }
    fn write(&self, w: Vec<Write>, s: &SourceMark) -> drift_engine::Result<u64> {
        if !self.taken.swap(true, Ordering::SeqCst) {
            let keys: Vec<String> = s.offsets.iter().map(|(k, _)| k.clone()).collect();
            self.inner.claim_sources(&keys)?;
        }
        VectorWrite::write(&*self.inner, w, s)
    }
    fn claim_sources(&self, keys: &[String]) -> drift_engine::Result<u64> {
        self.inner.claim_sources(keys)
    }
    fn validate(&self, r: &Record) -> drift_engine::Result<()> {
        VectorWrite::validate(&*self.inner, r)
    }
    fn source_offsets(&self) -> drift_engine::Result<BTreeMap<String, i64>> {
        Ok(self.inner.source_offsets())
    }
    fn backlogged(&self) -> bool {
        false
    }
    fn flush(&self) -> drift_engine::Result<FlushReport> {
        self.inner.flush()
    }
    fn train(&self, sample: &[f32]) -> drift_engine::Result<TrainReport> {
        self.inner.train(sample)
    }
    fn maintain(&self, passes: usize) -> drift_engine::Result<drift_engine::MaintainReport> {
        self.inner.maintain(passes)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_whose_partitions_were_claimed_by_another_writer_is_fenced_and_stops() {
    let broker = Broker::new(&["fence"]);
    let msgs: Vec<_> = (0..40)
        .map(|id| (key(id), json(id, &vector(id, 0), "null")))
        .collect();
    broker.produce("fence", &msgs);
    let dir = tempfile::tempdir().unwrap();
    let (_db, coll) = collection(dir.path(), "c");
    let target = Arc::new(Usurped {
        inner: coll.clone(),
        taken: AtomicBool::new(false),
    });
    let (result, _sink) = run(config(&broker, "fence", "c"), target).await;
    let err = result.expect_err("a fenced sink stops").to_string();
    assert!(
        err.contains("superseded") && err.contains("fence/"),
        "the error names the source and why: {err}"
    );
    // The stale batch was refused whole: nothing it carried was applied or positioned.
    let s = coll.stats();
    assert!(
        s.live_vectors < 40,
        "at least the fenced batch is missing ({} rows)",
        s.live_vectors
    );
    // A sink that claims afresh owns the partitions again and finishes the topic.
    let (result, _sink) = run(config(&broker, "fence", "c"), coll.clone()).await;
    result.unwrap();
    assert_eq!(coll.stats().live_vectors, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumption_pauses_while_the_flush_backlog_is_over_its_limit() {
    let broker = Broker::new(&["bp"]);
    let msgs: Vec<_> = (0..100)
        .map(|id| (key(id), json(id, &vector(id, 0), "null")))
        .collect();
    broker.produce("bp", &msgs);
    let dir = tempfile::tempdir().unwrap();
    let (_db, coll) = collection(dir.path(), "c");
    let target = Arc::new(Throttled {
        inner: coll.clone(),
        blocked: AtomicBool::new(true),
    });
    let sink = Sink::new(config(&broker, "bp", "c"), target.clone()).unwrap();
    let stats = sink.stats();
    let release = {
        let target = target.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(6)).await;
            // Nothing was applied while paused.
            assert_eq!(stats.snapshot().upserts, 0);
            assert!(stats.snapshot().paused);
            target.blocked.store(false, Ordering::SeqCst);
        })
    };
    tokio::time::timeout(Duration::from_secs(90), sink.run(std::future::pending()))
        .await
        .unwrap()
        .unwrap();
    release.await.unwrap();
    let s = stats.snapshot();
    assert!(s.pauses >= 1);
    assert_eq!(s.upserts, 100);
    assert_eq!(coll.stats().live_vectors, 100);
}

#[test]
fn bad_settings_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, coll) = collection(dir.path(), "c");
    let mut c = SinkConfig::new("localhost:1", "t", "c");
    c.dlq_topic = Some("t".into());
    let e = Sink::new(c, coll.clone()).err().unwrap();
    assert!(e.to_string().contains("dead-letter topic"), "{e}");
    let e = Sink::new(SinkConfig::new("", "t", "c"), coll)
        .err()
        .unwrap();
    assert!(e.to_string().contains("brokers"), "{e}");
}
