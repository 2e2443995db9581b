//! Command definitions and their embedded implementations.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use drift_engine::{Catalog, CollectionConfig, Database, IndexSettings, Metric};
use drift_lab::vecfile::{read_all, VecReader};

use crate::output::{self, Bar, OutputFormat};
use crate::sql::SqlOutput;
use drift_connectors::grpc::client::Remote;

/// Drift: a drift-aware vector search engine.
#[derive(Debug, Parser)]
#[command(name = "drift", version, about, long_about = None)]
pub struct Cli {
    /// Data directory (embedded mode).
    #[arg(
        long,
        global = true,
        env = "DRIFT_DATA_DIR",
        default_value = "./drift-data"
    )]
    pub data_dir: PathBuf,
    /// Run against a `drift serve` server (HOST:PORT) instead of the data directory: the
    /// collection, upsert, delete, search, flush and sink commands.
    #[arg(long, global = true, env = "DRIFT_SERVER")]
    pub server: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, drop or inspect collections.
    #[command(subcommand)]
    Collection(CollectionCmd),
    /// Insert or replace vectors from a file (.fvecs .bvecs .fbin .u8bin: id = row + offset;
    /// .jsonl: {"id", "vector", "payload"} per line).
    Upsert(UpsertArgs),
    /// Delete ids.
    Delete(DeleteArgs),
    /// Print the stored record of an id as JSON.
    Get {
        /// Collection name.
        name: String,
        /// Record id.
        id: u64,
    },
    /// Search the k nearest neighbours of every vector in a query file.
    Search(SearchArgs),
    /// Train centroids and quantizers from a sample file, re-assigning stored vectors.
    Train {
        /// Collection name.
        name: String,
        /// Sample vectors file.
        #[arg(long)]
        input: PathBuf,
    },
    /// Move memtable rows into buckets and commit them to storage.
    Flush {
        /// Collection name.
        name: String,
    },
    /// Run maintenance passes (split, merge, compact) now, with the collection's policy.
    Maintain {
        /// Collection name.
        name: String,
        /// Most passes to run (stops early once there is nothing to do).
        #[arg(long, default_value_t = 1)]
        passes: usize,
        /// Flush memtables into buckets first.
        #[arg(long)]
        flush: bool,
    },
    /// Run SQL over the collections (DataFusion): `-e`, `--file`, standard input, or an
    /// interactive prompt on a terminal.
    Sql {
        /// SQL text to run (several statements separated by ';').
        #[arg(short = 'e', long = "execute", conflicts_with = "file")]
        sql: Option<String>,
        /// File of SQL statements to run.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        output: SqlOutput,
    },
    /// Consume a Kafka topic into a collection (effectively exactly once); runs until idle
    /// (--until-idle), Ctrl-C or SIGTERM.
    Sink(crate::sink::SinkArgs),
    /// Serve the data directory over gRPC (proto: connectors/proto/drift.proto) until
    /// SIGINT or SIGTERM.
    Serve {
        /// Address to listen on (port 0 picks a free one; the bound address is printed).
        #[arg(long, default_value = "127.0.0.1:50051")]
        listen: String,
        /// Serve Prometheus metrics at http://ADDR/metrics.
        #[arg(long)]
        metrics: Option<String>,
        /// YAML file of Kafka sinks to run inside the server (`sinks: [{brokers, topic,
        /// collection, ...}]`).
        #[arg(long)]
        sink: Option<PathBuf>,
        /// Object store under which collections created by clients keep their segments
        /// (`fs:///dir`, `s3://bucket/prefix?endpoint=…`; the collection name is appended).
        /// Default: each collection's directory.
        #[arg(long)]
        storage_root: Option<String>,
        /// A location under which clients may place a collection themselves with
        /// `storage.uri` (repeatable; same scheme, endpoint and options, below the prefix).
        /// Without it, clients cannot choose a storage location.
        #[arg(long = "allow-storage", value_name = "PREFIX")]
        allow_storage: Vec<String>,
    },
    /// End-to-end demo: upsert generated (or given) vectors, search, report recall and latency.
    Demo(DemoArgs),
    /// Drift beside faiss and hnswlib on the same files in one run: recall, q/s, p50/p99,
    /// memory and build time per knob value, and q/s ratios at recall 0.90 / 0.95 / 0.99.
    Bench(BenchArgs),
    /// Replay drift scenarios and Big-ANN streaming runbooks; chart recall, latency and
    /// index shape over the steps, with baselines.
    #[command(subcommand)]
    Lab(crate::lab::LabCmd),
}

#[derive(Debug, Subcommand)]
pub enum CollectionCmd {
    /// Create a collection.
    Create {
        /// Collection name (letters, digits, '_', '-', '.'; at most 128).
        name: String,
        /// Vector dimension.
        #[arg(long)]
        dim: usize,
        /// Distance metric.
        #[arg(long, default_value = "l2")]
        metric: String,
        /// Index settings as JSON (see IndexSettings), e.g. '{"target_bucket_size": 512}'.
        #[arg(long)]
        settings: Option<String>,
    },
    /// List collections.
    List,
    /// Drop a collection and its files.
    Drop {
        /// Collection name.
        name: String,
    },
    /// Make a collection that fails to open usable again, discarding as little as possible:
    /// a damaged WAL is cut at the damage, a damaged newest manifest is set aside for the
    /// previous one. Prints each step and what it lost.
    Repair {
        /// Collection name.
        name: String,
    },
    /// Counts, buckets, memtables, WAL size.
    Stats {
        /// Collection name.
        name: String,
        /// Print JSON instead of aligned text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct UpsertArgs {
    /// Collection name.
    pub name: String,
    /// Input file: `.fvecs`, `.bvecs`, `.fbin`, `.u8bin`, NumPy `.npy` (2-D f16, f32, f64 or
    /// u8), or `.jsonl` (`{"id": .., "vector": [..], "payload": {..}}` per line); vector files
    /// may end in `@START..END` for a row range.
    #[arg(long)]
    pub input: PathBuf,
    /// Added to the row number to form ids (vector file formats).
    #[arg(long, default_value_t = 0)]
    pub id_offset: u64,
    /// Rows per durable batch.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Leave rows in the memtable instead of flushing them into buckets at the end.
    #[arg(long)]
    pub no_flush: bool,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Collection name.
    pub name: String,
    /// Comma-separated ids.
    #[arg(
        long,
        conflicts_with = "id_range",
        required_unless_present = "id_range"
    )]
    pub ids: Option<String>,
    /// Half-open id range A..B.
    #[arg(long)]
    pub id_range: Option<String>,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Collection name.
    pub name: String,
    /// Query vectors file.
    #[arg(long)]
    pub query: PathBuf,
    /// Neighbours per query.
    #[arg(short, long, default_value_t = 10)]
    pub k: usize,
    /// Probe exactly this many buckets.
    #[arg(long, conflicts_with = "recall_target")]
    pub nprobe: Option<usize>,
    /// Scan as many buckets as needed for this estimated recall@k (0..1].
    #[arg(long)]
    pub recall_target: Option<f32>,
    /// Bucket-score mass to cover (0..1], instead of the collection default.
    #[arg(long)]
    pub target_confidence: Option<f32>,
    /// Re-rank factor (0 = SQ8 distances only).
    #[arg(long)]
    pub rerank: Option<usize>,
    /// Any other search options as `key=value` pairs, comma separated (`ef_search=64,
    /// max_probes=200`; keys as in SQL's `SET drift.<key>`). The flags above win.
    #[arg(long, value_name = "KEY=VALUE,...")]
    pub options: Option<String>,
    /// Include payloads (JSON output only).
    #[arg(long)]
    pub with_payload: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "csv")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Rows to generate.
    #[arg(long, default_value_t = 50_000)]
    pub rows: usize,
    /// Dimension of generated vectors.
    #[arg(long, default_value_t = 64)]
    pub dim: usize,
    /// Clusters of generated vectors.
    #[arg(long, default_value_t = 100)]
    pub clusters: usize,
    /// Queries to generate.
    #[arg(long, default_value_t = 1000)]
    pub queries: usize,
    /// Neighbours per query.
    #[arg(short, long, default_value_t = 10)]
    pub k: usize,
    /// Use this base vectors file instead of generated data (needs --query-file).
    #[arg(long, requires = "query_file")]
    pub base: Option<PathBuf>,
    /// Use this query file instead of generated queries.
    #[arg(long, requires = "base")]
    pub query_file: Option<PathBuf>,
    /// Metric.
    #[arg(long, default_value = "l2")]
    pub metric: String,
    /// Probe exactly this many buckets.
    #[arg(long)]
    pub nprobe: Option<usize>,
    /// Re-rank factor.
    #[arg(long)]
    pub rerank: Option<usize>,
    /// Geometric sharpness of bucket scores.
    #[arg(long)]
    pub lambda: Option<f32>,
    /// Search by this recall target instead of target confidence.
    #[arg(long)]
    pub recall_target: Option<f32>,
    /// Bucket-score mass to cover (0..1].
    #[arg(long)]
    pub target_confidence: Option<f32>,
    /// Index settings of the demo collection as JSON.
    #[arg(long)]
    pub settings: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A base and a query vector file, their metric and k (`drift bench`, `drift lab stream`).
#[derive(Debug, Args)]
pub struct VectorFiles {
    /// Base vectors (.fvecs .bvecs .fbin .u8bin .npy; `FILE@START..END` for a row range).
    #[arg(long)]
    pub base: PathBuf,
    /// Query vectors (same formats and row ranges).
    #[arg(long)]
    pub queries: PathBuf,
    /// Metric of every index: l2, cosine or ip.
    #[arg(long, default_value = "l2")]
    pub metric: String,
    /// Neighbours per query.
    #[arg(short, long, default_value_t = 10)]
    pub k: usize,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub files: VectorFiles,
    /// Drift recall targets to sweep (comma separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.8,0.85,0.9,0.93,0.95,0.97,0.99"
    )]
    pub targets: Vec<f32>,
    /// Drift nprobe values to sweep as well (comma separated; none by default).
    #[arg(long, value_delimiter = ',')]
    pub nprobe: Vec<usize>,
    /// Peers to run: hnswlib, faiss_ivf_sq8, faiss_ivf_flat, or none.
    #[arg(long, value_delimiter = ',', default_value = "hnswlib,faiss_ivf_sq8")]
    pub peers: Vec<String>,
    /// hnswlib ef values to sweep (default: 10..256).
    #[arg(long, value_delimiter = ',')]
    pub ef: Vec<usize>,
    /// faiss nprobe values to sweep (default: 1..256 up to nlist).
    #[arg(long, value_delimiter = ',')]
    pub faiss_nprobe: Vec<usize>,
    /// faiss nlist (default 4 * sqrt(rows)).
    #[arg(long)]
    pub nlist: Option<usize>,
    /// Drift index settings as JSON.
    #[arg(long)]
    pub settings: Option<String>,
    /// Write bench.json and bench.md into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also sweep Drift's targets with the binary prefilter off (`drift-sq8`).
    #[arg(long)]
    pub sq8_only: bool,
    /// Rows to re-upsert on a second thread while the queries run again at the default
    /// target (the `drift-ingest` row: latency under ingest); 0 skips it.
    #[arg(long, default_value_t = 20_000)]
    pub ingest_rows: usize,
    /// Keep Drift's collection (`bench`) in the data directory, and reuse one kept by an
    /// earlier run with the same rows and settings instead of building anew (compare two
    /// builds of the code on the same partitions; pair with `--ingest-rows 0`).
    #[arg(long)]
    pub keep_index: bool,
    /// Drift searches before measuring (the recall monitor learns the workload).
    #[arg(long, default_value_t = 10_000)]
    pub warmup: usize,
    /// Rounds of the sweep, the systems taking turns; each point keeps its fastest round.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

fn open(cli_dir: &PathBuf) -> Result<Database> {
    Database::open(cli_dir)
        .with_context(|| format!("cannot open data directory {}", cli_dir.display()))
}

/// Runs one command.
pub fn run(cli: Cli) -> Result<()> {
    let remote_ok = matches!(
        cli.command,
        Command::Collection(_)
            | Command::Upsert(_)
            | Command::Delete(_)
            | Command::Search(_)
            | Command::Get { .. }
            | Command::Train { .. }
            | Command::Flush { .. }
            | Command::Maintain { .. }
            | Command::Sql { .. }
            | Command::Sink(_)
    );
    if cli.server.is_some() && !remote_ok {
        bail!("this command runs on the data directory only; drop --server (or DRIFT_SERVER)");
    }
    // Commands that work on a data directory and on a server alike reach collections
    // through the catalog and the engine's read/write traits only.
    let catalog = || -> Result<Box<dyn Catalog>> {
        Ok(match &cli.server {
            Some(s) => {
                Box::new(Remote::connect(s).with_context(|| format!("cannot reach server {s}"))?)
            }
            None => Box::new(open(&cli.data_dir)?),
        })
    };
    match cli.command {
        Command::Collection(CollectionCmd::Repair { name }) => {
            if cli.server.is_some() {
                bail!(
                    "repair works on the data directory itself: stop the server, run \
                     `drift --data-dir DIR collection repair {name}`, then start it again"
                );
            }
            repair(&open(&cli.data_dir)?, &name)
        }
        Command::Collection(c) => collection(&*catalog()?, &cli.data_dir, c),
        Command::Upsert(a) => upsert(&*catalog()?, a),
        Command::Delete(a) => delete(&*catalog()?, a),
        Command::Get { name, id } => match catalog()?.open(&name)?.get(id)? {
            Some(r) => {
                println!("{}", serde_json::to_string(&r)?);
                Ok(())
            }
            None => bail!("id {id} is not in collection '{name}'"),
        },
        Command::Search(a) => search(&*catalog()?, a),
        Command::Train { name, input } => {
            let catalog = catalog()?;
            let coll = catalog.open(&name)?;
            let (sample, dim) = read_all(&input)?;
            if dim != coll.config().dim {
                bail!(
                    "{}: vectors have dimension {dim}, collection '{name}' expects {}",
                    input.display(),
                    coll.config().dim
                );
            }
            let r = coll.train(&sample)?;
            println!(
                "trained {} buckets from {} sample vectors; re-assigned {} stored vectors",
                r.buckets, r.sample_rows, r.rows
            );
            Ok(())
        }
        Command::Flush { name } => {
            let r = catalog()?.open(&name)?.flush()?;
            println!(
                "flushed {} vectors from {} memtables into {} buckets{}",
                r.rows,
                r.memtables,
                r.buckets_touched,
                if r.trained {
                    " (trained centroids first)"
                } else {
                    ""
                }
            );
            Ok(())
        }
        Command::Maintain {
            name,
            passes,
            flush,
        } => {
            let catalog = catalog()?;
            let coll = catalog.open(&name)?;
            if flush {
                coll.flush()?;
            }
            let r = coll.maintain(passes)?;
            println!(
                "{} passes ({} policy): {} splits, {} merges, {} compactions; {} vectors reassigned, {} rewritten, {} stale rows dropped; {:.1} ms{}",
                r.counts.passes,
                r.policy,
                r.counts.splits,
                r.counts.merges,
                r.counts.compactions,
                r.counts.reassigned,
                r.counts.written,
                r.counts.compacted_tombstones,
                r.millis,
                if r.pending > 0 {
                    format!(" ({} actions left for the next pass)", r.pending)
                } else {
                    String::new()
                }
            );
            Ok(())
        }
        Command::Sql { sql, file, output } => {
            let target = match &cli.server {
                Some(addr) => crate::sql::SqlTarget::Server(addr.clone()),
                None => crate::sql::SqlTarget::Local(open(&cli.data_dir)?),
            };
            crate::sql::run(target, sql, file, output)
        }
        Command::Sink(a) => crate::sink::run(&cli.data_dir, cli.server.as_deref(), a),
        Command::Serve {
            listen,
            metrics,
            sink,
            storage_root,
            allow_storage,
        } => crate::serve::run(
            &cli.data_dir,
            &listen,
            metrics.as_deref(),
            sink.as_ref(),
            storage_root.as_deref(),
            &allow_storage,
        ),
        Command::Demo(a) => demo(&cli.data_dir, a),
        Command::Bench(a) => bench(&cli.data_dir, a),
        Command::Lab(cmd) => crate::lab::run(cmd),
    }
}

/// `collection repair`: on the data directory only.
fn repair(db: &Database, name: &str) -> Result<()> {
    let r = db.repair_collection(name)?;
    let (actions, live) = (r.actions, r.live_vectors);
    if actions.is_empty() {
        println!("collection '{name}' opens: nothing to repair ({live} live vectors)");
    }
    for a in &actions {
        println!("repaired: {a}");
    }
    if !actions.is_empty() {
        println!("collection '{name}' opens again with {live} live vectors");
    }
    Ok(())
}

fn collection(cat: &dyn Catalog, dir: &Path, cmd: CollectionCmd) -> Result<()> {
    match cmd {
        CollectionCmd::Create {
            name,
            dim,
            metric,
            settings,
        } => {
            let mut config = CollectionConfig::new(dim, Metric::parse(&metric)?);
            if let Some(s) = settings {
                config.settings = serde_json::from_str::<IndexSettings>(&s)
                    .context("--settings is not valid index settings")?;
            }
            cat.create(&name, config)?;
            println!("created collection '{name}' (dim {dim}, metric {metric})");
        }
        CollectionCmd::List => {
            for c in cat.list()? {
                match &c.error {
                    Some(e) => println!("{}\tUNAVAILABLE\t{e}", c.name),
                    None => println!(
                        "{}\tdim={}\tmetric={}\tvectors={}",
                        c.name, c.dim, c.metric, c.live_vectors
                    ),
                }
            }
        }
        CollectionCmd::Drop { name } => {
            cat.drop_collection(&name)?;
            println!("dropped collection '{name}'");
        }
        CollectionCmd::Repair { .. } => unreachable!("handled before the catalog opens"),
        CollectionCmd::Stats { name, json } => {
            let mut value = serde_json::to_value(cat.open(&name)?.stats()?)?;
            // The last status a Kafka sink wrote for this collection, if any.
            if let Ok(raw) = std::fs::read(crate::sink::status_path(dir, &name)) {
                if let (Ok(sink), Some(obj)) = (
                    serde_json::from_slice::<serde_json::Value>(&raw),
                    value.as_object_mut(),
                ) {
                    obj.insert("sink".into(), sink);
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                output::key_values(&value);
            }
        }
    }
    Ok(())
}

fn upsert(cat: &dyn Catalog, a: UpsertArgs) -> Result<()> {
    let coll = cat.open(&a.name)?;
    let mut reader = VecReader::open(&a.input, a.id_offset)?;
    let bar = Bar::bytes("upsert", reader.file_len());
    let mut rows = 0u64;
    while let Some(batch) = reader.next_batch(a.batch.max(1))? {
        let n = batch.len() as u64;
        coll.upsert(batch)
            .with_context(|| format!("{}: batch starting at row {rows}", a.input.display()))?;
        rows += n;
        bar.set(reader.position());
    }
    bar.finish();
    if !a.no_flush {
        coll.flush()?;
    }
    println!("upserted {rows} vectors into '{}'", a.name);
    Ok(())
}

fn parse_ids(a: &DeleteArgs) -> Result<Vec<u64>> {
    if let Some(list) = &a.ids {
        return list
            .split(',')
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<u64>()
                    .with_context(|| format!("--ids: '{s}' is not an id"))
            })
            .collect();
    }
    let range = a.id_range.as_deref().unwrap_or_default();
    let (lo, hi) = range
        .split_once("..")
        .with_context(|| format!("--id-range '{range}' is not of the form A..B"))?;
    let lo: u64 = lo
        .trim()
        .parse()
        .with_context(|| format!("--id-range start '{lo}'"))?;
    let hi: u64 = hi
        .trim()
        .parse()
        .with_context(|| format!("--id-range end '{hi}'"))?;
    if hi < lo {
        bail!("--id-range {lo}..{hi} ends before it starts");
    }
    Ok((lo..hi).collect())
}

fn delete(cat: &dyn Catalog, a: DeleteArgs) -> Result<()> {
    let ids = parse_ids(&a)?;
    let coll = cat.open(&a.name)?;
    let mut deleted = 0;
    for chunk in ids.chunks(100_000) {
        deleted += coll.delete(chunk)?;
    }
    println!("deleted {deleted} of {} ids from '{}'", ids.len(), a.name);
    Ok(())
}

fn search(cat: &dyn Catalog, a: SearchArgs) -> Result<()> {
    let coll = cat.open(&a.name)?;
    let mut overrides = drift_engine::SearchOverrides::parse(a.options.as_deref().unwrap_or(""))?;
    let flags = drift_engine::SearchOverrides {
        nprobe: a.nprobe,
        recall_target: a.recall_target,
        target_confidence: a.target_confidence,
        rerank: a.rerank,
        ..Default::default()
    };
    for (key, value) in flags.pairs() {
        overrides.set(key, &value)?;
    }
    let mut reader = VecReader::open(&a.query, 0)?;
    let mut out = output::SearchWriter::new(a.output);
    let mut row = 0u64;
    while let Some(batch) = reader.next_batch(1024)? {
        for q in batch {
            let hits = coll
                .search_with(&q.vector, a.k, &overrides, a.with_payload)
                .with_context(|| format!("{}: query row {row}", a.query.display()))?;
            out.write(row, &hits)?;
            row += 1;
        }
    }
    out.finish()
}

fn bench(dir: &PathBuf, a: BenchArgs) -> Result<()> {
    use drift_lab::bench::{self, PeerSpec};
    use drift_lab::peer::PeerKind;
    let db = open(dir)?;
    let mut peers = Vec::new();
    for name in a.peers.iter().filter(|p| p.as_str() != "none") {
        let kind = PeerKind::parse(name).with_context(|| {
            format!("unknown peer `{name}` (hnswlib, faiss_ivf_sq8, faiss_ivf_flat, none)")
        })?;
        let mut spec = PeerSpec::default_for(kind);
        if kind == PeerKind::Hnswlib && !a.ef.is_empty() {
            spec.knobs = a.ef.clone();
        }
        if kind != PeerKind::Hnswlib {
            if let Some(n) = a.nlist {
                spec.params = serde_json::json!({ "nlist": n });
                spec.knobs.retain(|&x| x <= n);
            }
            if !a.faiss_nprobe.is_empty() {
                spec.knobs = a.faiss_nprobe.clone();
            }
        }
        peers.push(spec);
    }
    let cfg = bench::BenchConfig {
        metric: Metric::parse(&a.files.metric)?,
        k: a.files.k,
        base: a.files.base,
        queries: a.files.queries,
        targets: a.targets,
        nprobes: a.nprobe,
        settings: a
            .settings
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .context("--settings is not valid index settings")?,
        sq8_only: a.sq8_only,
        ingest_rows: a.ingest_rows,
        peers,
        batch: 1000,
        warmup: a.warmup,
        rounds: a.rounds,
        keep_index: a.keep_index,
    };
    let bars = output::PhaseBars::default();
    let report = bench::run(&db, "bench", &cfg, &|phase, done, total| {
        bars.update(phase, done, total)
    })?;
    bars.finish();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    println!("{}", bench::markdown(&report, &command));
    if let Some(out) = &a.out {
        bench::write(out, &report, &command)?;
        println!("wrote {}/bench.json and bench.md", out.display());
    }
    Ok(())
}

fn demo(dir: &PathBuf, a: DemoArgs) -> Result<()> {
    let db = open(dir)?;
    let cfg = drift_lab::demo::DemoConfig {
        rows: a.rows,
        dim: a.dim,
        clusters: a.clusters,
        queries: a.queries,
        k: a.k,
        metric: Metric::parse(&a.metric)?,
        base_file: a.base,
        query_file: a.query_file,
        nprobe: a.nprobe,
        rerank: a.rerank,
        lambda: a.lambda,
        target_confidence: a.target_confidence,
        recall_target: a.recall_target,
        settings: a
            .settings
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .context("--settings is not valid index settings")?,
        ..Default::default()
    };
    let bars = output::PhaseBars::default();
    let report = drift_lab::demo::run(&db, "demo", &cfg, &|phase, done, total| {
        bars.update(phase, done, total)
    })?;
    bars.finish();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        output::key_values(&serde_json::to_value(&report)?);
    }
    Ok(())
}
