//! The Kafka + SQL transport: every write is produced to a topic of its own and applied by
//! the Kafka sink, every search is a DataFusion SQL `vector_search` call. The broker is an
//! embedded mock cluster unless the run names real brokers.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drift_connectors::kafka::{Format, Sink, SinkConfig, SinkError};
use drift_engine::{Catalog, SearchOverrides, SearchParams, VectorWrite, Write};
use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};

use super::Transport;
use crate::error::{LabError, Result};

/// Bytes produced before the writer waits for the sink (the mock cluster keeps only about
/// 5 MiB per partition, so a lagging sink must never fall that far behind).
const MAX_UNSYNCED_BYTES: usize = 4 << 20;
/// Partitions of each run topic.
const PARTITIONS: i32 = 4;
/// Longest wait for the sink to catch up with the topic.
const SYNC_TIMEOUT: Duration = Duration::from_secs(300);

fn fail(what: impl std::fmt::Display) -> LabError {
    LabError::Transport(what.to_string())
}

/// The broker side of a Kafka run (an embedded mock cluster or a real one) and the runtime
/// its sinks and SQL queries run on; shared by every index of the run.
pub struct KafkaEnv {
    brokers: String,
    mock: Option<MockCluster<'static, DefaultProducerContext>>,
    rt: tokio::runtime::Runtime,
}

impl KafkaEnv {
    /// Connects to `brokers`, or starts an embedded cluster when there are none.
    pub fn new(brokers: Option<&str>) -> Result<KafkaEnv> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| fail(format!("cannot start the async runtime: {e}")))?;
        Ok(match brokers {
            Some(b) => KafkaEnv {
                brokers: b.to_string(),
                mock: None,
                rt,
            },
            None => {
                let mock = MockCluster::new(1)
                    .map_err(|e| fail(format!("cannot start the embedded Kafka cluster: {e}")))?;
                KafkaEnv {
                    brokers: mock.bootstrap_servers(),
                    mock: Some(mock),
                    rt,
                }
            }
        })
    }

    fn create_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        let cannot = |e: &dyn std::fmt::Display| fail(format!("cannot create topic {topic}: {e}"));
        match &self.mock {
            Some(m) => m.create_topic(topic, partitions, 1).map_err(|e| cannot(&e)),
            None => {
                use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
                let admin: AdminClient<_> = ClientConfig::new()
                    .set("bootstrap.servers", &self.brokers)
                    .create()
                    .map_err(|e| cannot(&e))?;
                let spec = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
                let res = self
                    .rt
                    .block_on(admin.create_topics(
                        [&spec],
                        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
                    ))
                    .map_err(|e| cannot(&e))?;
                for r in res {
                    if let Err((_, code)) = r {
                        if code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                            return Err(cannot(&code));
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

/// Writes through a topic and the sink, searches through SQL.
pub struct KafkaSql {
    env: Rc<KafkaEnv>,
    coll: Arc<dyn VectorWrite>,
    name: String,
    topic: String,
    producer: BaseProducer,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::result::Result<(), SinkError>>>,
    ctx: datafusion::prelude::SessionContext,
    /// Plans reused from one search to the next (each differs only in its vector).
    plans: drift_connectors::sql::PlanCache,
    unsynced: usize,
}

impl KafkaSql {
    /// The transport of collection `name` in `catalog`: a topic, a sink into the collection
    /// and a SQL context over the catalog.
    pub fn new(env: Rc<KafkaEnv>, catalog: &Arc<dyn Catalog>, name: &str) -> Result<KafkaSql> {
        let topic = format!("{name}-{}", std::process::id());
        env.create_topic(&topic, PARTITIONS)?;
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &env.brokers)
            .set("linger.ms", "5")
            .set(
                "enable.idempotence",
                if env.mock.is_some() { "false" } else { "true" },
            )
            .create()
            .map_err(|e| fail(format!("cannot create the Kafka producer: {e}")))?;
        let mut sc = SinkConfig::new(&env.brokers, &topic, name);
        sc.format = Format::F32le;
        sc.group = Some(format!("drift-lab-{topic}"));
        sc.linger_ms = 5;
        sc.kafka.insert("session.timeout.ms".into(), "6000".into());
        let coll = catalog.open(name)?;
        let sink = Sink::new(sc, coll.clone())
            .map_err(|e| fail(format!("cannot start the sink of {topic}: {e}")))?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = env.rt.spawn(async move {
            sink.run(async move {
                let _ = rx.await;
            })
            .await
        });
        let ctx = drift_connectors::sql::context(catalog.clone())
            .map_err(|e| fail(format!("cannot set up SQL: {e}")))?;
        Ok(KafkaSql {
            env,
            coll,
            name: name.to_string(),
            topic,
            producer,
            stop: Some(tx),
            task: Some(task),
            ctx,
            plans: Default::default(),
            unsynced: 0,
        })
    }

    fn send(&self, key: &str, payload: Option<&[u8]>) -> Result<()> {
        let mut rec = BaseRecord::<str, [u8]>::to(&self.topic).key(key);
        if let Some(p) = payload {
            rec = rec.payload(p);
        }
        loop {
            match self.producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((e, back)) => {
                    if !matches!(
                        e.rdkafka_error_code(),
                        Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                    ) {
                        return Err(fail(format!("cannot produce to {}: {e}", self.topic)));
                    }
                    self.producer.poll(Duration::from_millis(5));
                    rec = back;
                }
            }
        }
    }

    /// The sink's outcome once its task has ended (it should not, before `finish`).
    fn sink_result(&mut self) -> Result<()> {
        let Some(t) = self.task.take() else {
            return Ok(());
        };
        let res = self
            .env
            .rt
            .block_on(t)
            .map_err(|e| fail(format!("the sink task of {} failed: {e}", self.topic)))?;
        res.map_err(|e| fail(format!("the sink of {} failed: {e}", self.topic)))
    }

    /// Waits until the collection's recorded positions reach every partition's end.
    fn wait_applied(&mut self) -> Result<()> {
        self.producer
            .flush(Duration::from_secs(60))
            .map_err(|e| fail(format!("cannot flush the producer of {}: {e}", self.topic)))?;
        let mut ends = Vec::new();
        for p in 0..PARTITIONS {
            let (_, high) = self
                .producer
                .client()
                .fetch_watermarks(&self.topic, p, Duration::from_secs(10))
                .map_err(|e| fail(format!("cannot read the end of {}/{p}: {e}", self.topic)))?;
            ends.push((drift_connectors::kafka::offset_key(&self.topic, p), high));
        }
        let started = Instant::now();
        loop {
            if self.task.as_ref().is_some_and(|t| t.is_finished()) {
                self.sink_result()?;
                return Err(fail(format!("the sink of {} stopped early", self.topic)));
            }
            let at = self.coll.source_offsets()?;
            let lag: i64 = ends
                .iter()
                .map(|(k, high)| (high - at.get(k).copied().unwrap_or(0)).max(0))
                .sum();
            if lag == 0 {
                self.unsynced = 0;
                return Ok(());
            }
            if started.elapsed() > SYNC_TIMEOUT {
                return Err(fail(format!(
                    "the sink is still {lag} records behind {} after {} s",
                    self.topic,
                    SYNC_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Transport for KafkaSql {
    fn name(&self) -> &'static str {
        "kafka+sql"
    }

    fn write(&mut self, writes: Vec<Write>) -> Result<()> {
        for w in &writes {
            match w {
                Write::Upsert(r) => {
                    let bytes: Vec<u8> = r.vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                    self.unsynced += bytes.len() + 16;
                    self.send(&r.id.to_string(), Some(&bytes))?;
                }
                Write::Delete(id) => {
                    self.unsynced += 16;
                    self.send(&id.to_string(), None)?;
                }
            }
            self.producer.poll(Duration::ZERO);
        }
        if self.unsynced > MAX_UNSYNCED_BYTES {
            self.wait_applied()?;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.wait_applied()
    }

    fn search(
        &mut self,
        query: &[f32],
        params: &SearchParams,
        over: &SearchOverrides,
    ) -> Result<Vec<u64>> {
        let vector: Vec<String> = query.iter().map(|x| format!("{x:?}")).collect();
        let sql = format!(
            "SELECT id FROM vector_search('{}', [{}], {}, '{over}')",
            self.name,
            vector.join(","),
            params.k,
        );
        let batches = self
            .env
            .rt
            .block_on(self.plans.query(&self.ctx, &sql))
            .map_err(|e| fail(format!("SQL search failed: {e}")))?;
        let mut ids = Vec::with_capacity(params.k);
        for b in batches {
            let col = b
                .column(0)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::UInt64Array>()
                .ok_or_else(|| fail("SQL search: the id column is not UInt64"))?;
            ids.extend(col.values().iter().copied());
        }
        Ok(ids)
    }

    fn finish(&mut self) -> Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.sink_result()
    }
}
