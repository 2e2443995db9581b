//! `drift lab`: replays scenarios and Big-ANN runbooks (`drift_lab::run`) with a progress bar,
//! renders the results, and provides the Kafka + SQL transport: every write goes through a
//! topic and the sink, every search through DataFusion SQL.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use drift_connectors::kafka::{Format, Sink, SinkConfig};
use drift_engine::SearchOverrides;
use drift_engine::{Collection, Database, IndexSettings, Metric, SearchParams, Write};
use drift_lab::run::{Direct, Driver, RunConfig, RunbookDriver, ScenarioDriver, Transport};
use drift_lab::scenario::{BaselineKind, Scenario, Via};
use drift_lab::LabError;
use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};

/// `drift lab` subcommands.
#[derive(Debug, Subcommand)]
pub enum LabCmd {
    /// Replay a scenario file (YAML) and chart what happens.
    Run(RunArgs),
    /// Replay a NeurIPS'23 Big-ANN streaming runbook unchanged.
    Runbook(RunbookArgs),
    /// Write a clustered data set (base vectors in cluster order, and queries) as .fbin
    /// files, for the clustered runbooks.
    Generate(GenerateArgs),
    /// Write a topic stream from real vectors: the rows grouped into topics (k-means), in
    /// topic order, with a runbook that inserts one topic at a time and deletes half of old
    /// topics (base.fbin, queries.fbin, runbook.yaml).
    Topics(TopicsArgs),
}

#[derive(Debug, Args)]
pub struct TopicsArgs {
    /// Output folder.
    pub out: PathBuf,
    /// Base vectors (`FILE@START..END` for a row range).
    #[arg(long)]
    pub base: PathBuf,
    /// Query vectors.
    #[arg(long)]
    pub queries: PathBuf,
    /// Topics.
    #[arg(long, default_value_t = 16)]
    pub topics: usize,
    /// Data set key in the runbook.
    #[arg(long, default_value = "topics")]
    pub name: String,
    /// k-means seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// How the index under test is driven (command-line spelling of [`drift_lab::scenario::Via`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ViaArg {
    /// Engine API calls in process.
    Direct,
    /// A Kafka topic and the sink for writes, SQL for searches.
    Kafka,
}

impl From<ViaArg> for Via {
    fn from(v: ViaArg) -> Via {
        match v {
            ViaArg::Direct => Via::Direct,
            ViaArg::Kafka => Via::Kafka,
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario file.
    pub scenario: PathBuf,
    /// Output folder (default: results/<scenario name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Path of writes and searches (default: the scenario's `run.via`).
    #[arg(long, value_enum)]
    pub via: Option<ViaArg>,
    /// Kafka bootstrap servers for --via kafka (default: an embedded mock cluster).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Recall target of the index under test's searches for the whole run.
    #[arg(long)]
    pub recall_target: Option<f32>,
}

#[derive(Debug, Args)]
pub struct RunbookArgs {
    /// Recall target of the index under test's searches for the whole run.
    #[arg(long)]
    pub recall_target: Option<f32>,
    /// Runbook file (the streaming track's YAML).
    pub runbook: PathBuf,
    /// Data set key in the runbook.
    #[arg(long)]
    pub dataset: String,
    /// Base vectors (.fvecs, .bvecs, .fbin, .u8bin).
    #[arg(long)]
    pub base: PathBuf,
    /// Query vectors.
    #[arg(long)]
    pub queries: PathBuf,
    /// Neighbours per query.
    #[arg(short, long, default_value_t = 10)]
    pub k: usize,
    /// Output folder (default: results/runbook-<data set>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Metric.
    #[arg(long, default_value = "l2")]
    pub metric: String,
    /// Index settings of the index under test (YAML file, keys of `engine:` in scenarios).
    #[arg(long)]
    pub settings: Option<PathBuf>,
    /// Baselines run beside it.
    #[arg(long, value_delimiter = ',', default_value = "static_ivf,brute_force")]
    pub baselines: Vec<String>,
    /// Maintenance passes after every write step.
    #[arg(long, default_value_t = 64)]
    pub heal_passes: usize,
    /// Path of writes and searches.
    #[arg(long, value_enum, default_value = "direct")]
    pub via: ViaArg,
    /// Kafka bootstrap servers for --via kafka (default: an embedded mock cluster).
    #[arg(long)]
    pub brokers: Option<String>,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Output folder (base.fbin, queries.fbin).
    pub out: PathBuf,
    /// Base vectors.
    #[arg(long, default_value_t = 100_000)]
    pub rows: usize,
    /// Queries.
    #[arg(long, default_value_t = 1000)]
    pub queries: usize,
    /// Dimension.
    #[arg(long, default_value_t = 32)]
    pub dim: usize,
    /// Clusters.
    #[arg(long, default_value_t = 32)]
    pub clusters: usize,
    /// Standard deviation of cluster centres (points have 1).
    #[arg(long, default_value_t = 4.0)]
    pub centre_spread: f32,
    /// Random seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// Runs one `drift lab` command.
pub fn run(cmd: LabCmd) -> Result<()> {
    match cmd {
        LabCmd::Run(a) => {
            let s = Scenario::load(&a.scenario)?;
            let out = a
                .out
                .unwrap_or_else(|| PathBuf::from("results").join(&s.name));
            let mut cfg = RunConfig::from_scenario(&s, &out)?;
            if let Some(r) = a.recall_target {
                cfg.engine.search.recall_target = Some(r);
                cfg.engine.validate()?;
            }
            let mut driver = ScenarioDriver::new(&s)?;
            let via = a.via.map(Via::from).unwrap_or(s.run.via);
            replay(&mut driver, &cfg, via, a.brokers.as_deref())
        }
        LabCmd::Runbook(a) => {
            let book = drift_lab::runbook::Runbook::load(&a.runbook, &a.dataset)?;
            let out = a
                .out
                .unwrap_or_else(|| PathBuf::from("results").join(format!("runbook-{}", a.dataset)));
            let mut engine = match &a.settings {
                Some(p) => {
                    let text = std::fs::read_to_string(p)
                        .with_context(|| format!("cannot read {}", p.display()))?;
                    let s: IndexSettings = serde_yaml::from_str(&text)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
                    s.validate()
                        .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
                    s
                }
                None => IndexSettings::default(),
            };
            engine.maintenance.background = false;
            if let Some(r) = a.recall_target {
                engine.search.recall_target = Some(r);
                engine.validate()?;
            }
            let baselines = a
                .baselines
                .iter()
                .filter(|b| !b.is_empty() && b.as_str() != "none")
                .map(|b| {
                    serde_yaml::from_str::<BaselineKind>(b).map_err(|_| {
                        anyhow::anyhow!(
                            "unknown baseline '{b}' (expected brute_force, static_ivf, v1 or none)"
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            if a.k == 0 {
                bail!("-k must be at least 1");
            }
            let defaults = drift_lab::scenario::RunOptions::default();
            let cfg = RunConfig {
                k: a.k,
                metric: Metric::parse(&a.metric)?,
                engine,
                batch: defaults.batch.0,
                flush_each_step: defaults.flush_each_step,
                heal_passes: a.heal_passes,
                baselines,
                variants: Vec::new(),
                out,
            };
            let mut driver = RunbookDriver::new(book, &a.base, &a.queries)?;
            replay(&mut driver, &cfg, a.via.into(), a.brokers.as_deref())
        }
        LabCmd::Generate(a) => generate(&a),
        LabCmd::Topics(a) => {
            let t =
                drift_lab::topics::write(&a.base, &a.queries, a.topics, a.seed, &a.name, &a.out)?;
            println!(
                "wrote {}/base.fbin ({} rows x {} in {} topics: {:?}), queries.fbin ({}) and runbook.yaml (data set {})",
                a.out.display(),
                t.sizes.iter().sum::<usize>(),
                t.dim,
                t.sizes.len(),
                t.sizes,
                t.queries,
                a.name
            );
            Ok(())
        }
    }
}

/// Replays `driver` with a progress bar, renders, prints the table and where files went.
fn replay(driver: &mut dyn Driver, cfg: &RunConfig, via: Via, brokers: Option<&str>) -> Result<()> {
    let bar = crate::output::step_bar(driver.len() as u64, driver.name());
    let kafka = match via {
        Via::Direct => None,
        Via::Kafka => Some(Rc::new(KafkaEnv::new(brokers)?)),
    };
    let factory = |db: &Arc<Database>, coll: &str| -> drift_lab::Result<Box<dyn Transport>> {
        match &kafka {
            None => Ok(Box::new(Direct)),
            Some(env) => KafkaSql::new(env.clone(), db.clone(), coll)
                .map(|t| Box::new(t) as Box<dyn Transport>)
                .map_err(|e| LabError::Invalid(format!("{e:#}"))),
        }
    };
    let outcome = drift_lab::run::run(driver, cfg, &factory, &|done, _total, op| {
        bar.set_position(done as u64);
        bar.set_message(op.to_string());
    })?;
    bar.finish_and_clear();
    let summary = drift_lab::report::render(&outcome, &cfg.out)?;
    print!("{}", drift_lab::report::table(&summary));
    println!(
        "wrote {}/{{raw.jsonl,steps.csv,summary.json,recall.png,latency.png,buckets.png,recall_qps.png}}",
        cfg.out.display()
    );
    Ok(())
}

fn generate(a: &GenerateArgs) -> Result<()> {
    if a.rows == 0 || a.queries == 0 || a.dim == 0 || a.clusters == 0 {
        bail!("--rows, --queries, --dim and --clusters must be at least 1");
    }
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let mut gen = drift_lab::datasets::Clustered::new(a.dim, a.clusters, a.seed);
    gen.centre_spread = a.centre_spread;
    // Cluster order, as the streaming track's clustered runbooks insert their data.
    let base = gen.sample_in_cluster_order(a.rows, 0);
    let queries = gen.sample(a.queries, 1);
    let b = a.out.join("base.fbin");
    let q = a.out.join("queries.fbin");
    drift_lab::vecfile::write_fbin(&b, &base.vectors, a.dim)?;
    drift_lab::vecfile::write_fbin(&q, &queries.vectors, a.dim)?;
    println!(
        "wrote {} ({} x {}, cluster c = rows [c*{per}, (c+1)*{per}) when {} divides {}) and {} ({} queries)",
        b.display(),
        a.rows,
        a.dim,
        a.clusters,
        a.rows,
        q.display(),
        a.queries,
        per = a.rows / a.clusters
    );
    Ok(())
}

/// The broker side of `--via kafka`: an embedded mock cluster or a real one.
pub struct KafkaEnv {
    brokers: String,
    mock: Option<MockCluster<'static, DefaultProducerContext>>,
    rt: tokio::runtime::Runtime,
}

impl KafkaEnv {
    fn new(brokers: Option<&str>) -> Result<KafkaEnv> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        Ok(match brokers {
            Some(b) => KafkaEnv {
                brokers: b.to_string(),
                mock: None,
                rt,
            },
            None => {
                let mock =
                    MockCluster::new(1).context("cannot start the embedded Kafka cluster")?;
                KafkaEnv {
                    brokers: mock.bootstrap_servers(),
                    mock: Some(mock),
                    rt,
                }
            }
        })
    }

    fn create_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        match &self.mock {
            Some(m) => m
                .create_topic(topic, partitions, 1)
                .with_context(|| format!("cannot create topic {topic}")),
            None => {
                use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
                let admin: AdminClient<_> = ClientConfig::new()
                    .set("bootstrap.servers", &self.brokers)
                    .create()?;
                let topic_spec = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
                let res = self.rt.block_on(admin.create_topics(
                    [&topic_spec],
                    &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
                ))?;
                for r in res {
                    if let Err((t, code)) = r {
                        if code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                            bail!("cannot create topic {t}: {code}");
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

/// Bytes produced before the writer waits for the sink (the mock cluster keeps only about
/// 5 MiB per partition, so a lagging sink must never fall that far behind).
const MAX_UNSYNCED_BYTES: usize = 4 << 20;
const PARTITIONS: i32 = 4;

/// Writes through a topic and the sink, searches through SQL.
pub struct KafkaSql {
    env: Rc<KafkaEnv>,
    topic: String,
    producer: BaseProducer,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), drift_connectors::kafka::SinkError>>>,
    ctx: datafusion::prelude::SessionContext,
    unsynced: usize,
}

impl KafkaSql {
    fn new(env: Rc<KafkaEnv>, db: Arc<Database>, coll: &str) -> Result<KafkaSql> {
        let topic = format!("{coll}-{}", std::process::id());
        env.create_topic(&topic, PARTITIONS)?;
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &env.brokers)
            .set("linger.ms", "5")
            .set(
                "enable.idempotence",
                if env.mock.is_some() { "false" } else { "true" },
            )
            .create()
            .context("cannot create the Kafka producer")?;
        let mut sc = SinkConfig::new(&env.brokers, &topic, coll);
        sc.format = Format::F32le;
        sc.group = Some(format!("drift-lab-{topic}"));
        sc.linger_ms = 5;
        sc.kafka.insert("session.timeout.ms".into(), "6000".into());
        let target = db.collection(coll)?;
        let sink = Sink::new(sc, target).map_err(|e| anyhow::anyhow!("{e}"))?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = env.rt.spawn(async move {
            sink.run(async move {
                let _ = rx.await;
            })
            .await
        });
        let ctx = drift_connectors::sql::context(db)?;
        Ok(KafkaSql {
            env,
            topic,
            producer,
            stop: Some(tx),
            task: Some(task),
            ctx,
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
                        bail!("cannot produce to {}: {e}", self.topic);
                    }
                    self.producer.poll(Duration::from_millis(5));
                    rec = back;
                }
            }
        }
    }

    /// Waits until the collection's recorded positions reach every partition's end.
    fn wait_applied(&mut self, coll: &Collection) -> Result<()> {
        self.producer
            .flush(Duration::from_secs(60))
            .context("producer flush")?;
        let mut ends = Vec::new();
        for p in 0..PARTITIONS {
            let (_, high) = self
                .producer
                .client()
                .fetch_watermarks(&self.topic, p, Duration::from_secs(10))
                .with_context(|| format!("cannot read the end of {}/{p}", self.topic))?;
            ends.push((drift_connectors::kafka::offset_key(&self.topic, p), high));
        }
        let started = Instant::now();
        loop {
            if let Some(t) = &self.task {
                if t.is_finished() {
                    let t = self.task.take().expect("checked");
                    let res = self.env.rt.block_on(t)?;
                    res.map_err(|e| anyhow::anyhow!("the sink stopped: {e}"))?;
                    bail!("the sink stopped early");
                }
            }
            let at = coll.source_offsets();
            let lag: i64 = ends
                .iter()
                .map(|(k, high)| (high - at.get(k).copied().unwrap_or(0)).max(0))
                .sum();
            if lag == 0 {
                self.unsynced = 0;
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(300) {
                bail!(
                    "the sink is still {lag} records behind {} after 300 s",
                    self.topic
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Transport for KafkaSql {
    fn name(&self) -> &'static str {
        "kafka+sql"
    }

    fn write(&mut self, coll: &Arc<Collection>, writes: Vec<Write>) -> drift_lab::Result<()> {
        let wrap = |e: anyhow::Error| LabError::Invalid(format!("{e:#}"));
        for w in &writes {
            match w {
                Write::Upsert(r) => {
                    let bytes: Vec<u8> = r.vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                    self.unsynced += bytes.len() + 16;
                    self.send(&r.id.to_string(), Some(&bytes)).map_err(wrap)?;
                }
                Write::Delete(id) => {
                    self.unsynced += 16;
                    self.send(&id.to_string(), None).map_err(wrap)?;
                }
            }
            self.producer.poll(Duration::ZERO);
        }
        if self.unsynced > MAX_UNSYNCED_BYTES {
            self.wait_applied(coll).map_err(wrap)?;
        }
        Ok(())
    }

    fn sync(&mut self, coll: &Arc<Collection>) -> drift_lab::Result<()> {
        self.wait_applied(coll)
            .map_err(|e| LabError::Invalid(format!("{e:#}")))
    }

    fn search(
        &mut self,
        coll: &Arc<Collection>,
        query: &[f32],
        params: &SearchParams,
        over: &SearchOverrides,
    ) -> drift_lab::Result<Vec<u64>> {
        let vector: Vec<String> = query.iter().map(|x| format!("{x:?}")).collect();
        let options: Vec<String> = over
            .pairs()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let sql = format!(
            "SELECT id FROM vector_search('{}', [{}], {}, '{}')",
            coll.name(),
            vector.join(","),
            params.k,
            options.join(",")
        );
        let batches = self
            .env
            .rt
            .block_on(async { self.ctx.sql(&sql).await?.collect().await })
            .map_err(|e| LabError::Invalid(format!("SQL search failed: {e}")))?;
        let mut ids = Vec::with_capacity(params.k);
        for b in batches {
            let col = b
                .column(0)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::UInt64Array>()
                .ok_or_else(|| LabError::Invalid("SQL search: id column is not UInt64".into()))?;
            ids.extend(col.values().iter().copied());
        }
        Ok(ids)
    }

    fn finish(&mut self) -> drift_lab::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let res = self
                .env
                .rt
                .block_on(t)
                .map_err(|e| LabError::Invalid(format!("sink task: {e}")))?;
            res.map_err(|e| LabError::Invalid(format!("the sink failed: {e}")))?;
        }
        Ok(())
    }
}
