//! `drift lab`: replays scenarios and Big-ANN runbooks (`drift_lab::run`) with a progress bar
//! and renders the results. The transports (direct, or Kafka + SQL) live in the lab.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use drift_engine::{Catalog, IndexSettings, Metric};
use drift_lab::driver::{Driver, RunbookDriver, ScenarioDriver};
use drift_lab::run::RunConfig;
use drift_lab::scenario::{BaselineKind, Scenario, Via};
use drift_lab::transport::{Direct, KafkaEnv, KafkaSql, Transport};

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
    /// The streaming case: insert a file's rows at a fixed rate while searches run without
    /// pause; recall, p50/p99 and q/s over elapsed time, maintenance marked (stream.png,
    /// stream.csv, stream.json).
    Stream(StreamArgs),
}

#[derive(Debug, Args)]
pub struct StreamArgs {
    /// The base (inserted in file order) and the queries (asked in turn).
    #[command(flatten)]
    pub files: crate::cli::VectorFiles,
    /// Rows loaded and flushed before the clock starts.
    #[arg(long, default_value_t = 10_000)]
    pub initial: usize,
    /// Rows inserted per second after that.
    #[arg(long, default_value_t = 1_000.0)]
    pub rate: f64,
    /// Rows per insert call.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Measurement window, seconds.
    #[arg(long, default_value_t = 1.0)]
    pub window: f64,
    /// Searches per window scored against the exact answer.
    #[arg(long, default_value_t = 50)]
    pub scored: usize,
    /// Index settings (YAML; default: the engine's, background maintenance on).
    #[arg(long)]
    pub settings: Option<PathBuf>,
    /// Output folder (the collection lives in its `db/`).
    #[arg(long, default_value = "results/stream")]
    pub out: PathBuf,
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
    /// Baselines run beside it: brute_force, static_ivf, v1, and the peers hnswlib,
    /// faiss_ivf_sq8 and faiss_ivf_flat (the real libraries, from the venv `scripts/peers.sh`
    /// installs), or none.
    #[arg(long, value_delimiter = ',', default_value = "static_ivf,brute_force")]
    pub baselines: Vec<String>,
    /// Peer settings, YAML or JSON: `{hnswlib: {M: 16, ef: 64}, faiss_ivf_sq8: {nlist: 256,
    /// nprobe: 16, retrain: false}}`.
    #[arg(long)]
    pub peers: Option<String>,
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
                Some(p) => load_settings(p)?,
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
                .map(|b| BaselineKind::parse(b))
                .collect::<drift_lab::Result<Vec<_>>>()?;
            let peers = match &a.peers {
                Some(text) => serde_yaml::from_str(text)
                    .map_err(|e| anyhow::anyhow!("--peers is not a map of peer settings: {e}"))?,
                None => Default::default(),
            };
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
                peers,
                variants: Vec::new(),
                out,
            };
            let mut driver = RunbookDriver::new(book, &a.base, &a.queries)?;
            replay(&mut driver, &cfg, a.via.into(), a.brokers.as_deref())
        }
        LabCmd::Generate(a) => generate(&a),
        LabCmd::Stream(a) => stream(a),
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

/// Index settings from a YAML file, validated.
fn load_settings(p: &std::path::Path) -> Result<IndexSettings> {
    let text =
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
    let s: IndexSettings =
        serde_yaml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
    s.validate()
        .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
    Ok(s)
}

fn stream(a: StreamArgs) -> Result<()> {
    use drift_lab::stream;
    let cfg = stream::StreamConfig {
        metric: Metric::parse(&a.files.metric)?,
        k: a.files.k,
        base: a.files.base,
        queries: a.files.queries,
        initial_rows: a.initial,
        rate: a.rate,
        batch: a.batch,
        window_secs: a.window,
        scored_per_window: a.scored,
        settings: a.settings.as_deref().map(load_settings).transpose()?,
    };
    let db_dir = a.out.join("db");
    if db_dir.exists() {
        std::fs::remove_dir_all(&db_dir)
            .with_context(|| format!("cannot clear {}", db_dir.display()))?;
    }
    let db = drift_engine::Database::open(&db_dir)?;
    let bars = crate::output::PhaseBars::default();
    let report = stream::run(&db, "stream", &cfg, &|phase, done, total| {
        bars.update(phase, done, total)
    })?;
    bars.finish();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    println!("{}", stream::markdown(&report));
    let files = stream::write(&a.out, &report, &command)?;
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}

/// Replays `driver` with a progress bar, renders, prints the table and where files went.
fn replay(driver: &mut dyn Driver, cfg: &RunConfig, via: Via, brokers: Option<&str>) -> Result<()> {
    let bar = crate::output::step_bar(driver.len() as u64, driver.name());
    let kafka = match via {
        Via::Direct => None,
        Via::Kafka => Some(Rc::new(KafkaEnv::new(brokers)?)),
    };
    let factory =
        |catalog: &Arc<dyn Catalog>, coll: &str| -> drift_lab::Result<Box<dyn Transport>> {
            match &kafka {
                None => Direct::open(catalog, coll),
                Some(env) => Ok(Box::new(KafkaSql::new(env.clone(), catalog, coll)?)),
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
        "wrote {}/{{raw.jsonl,steps.csv,summary.json,recall.png,latency.png,buckets.png,recall_qps.png,cost.png}}",
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
