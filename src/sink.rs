//! `drift sink`: the Kafka sink over an embedded data directory, with live progress (a
//! spinner on a terminal, a status line every few seconds otherwise) and a status file,
//! `<data-dir>/sinks/<collection>.json`, that `drift collection stats` shows.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use drift_connectors::grpc::client::RemoteCollection;
use drift_connectors::kafka::{Format, OnError, OnRewind, Sink, SinkConfig, SinkStatus};
use drift_engine::Database;
use indicatif::{ProgressBar, ProgressStyle};

/// `drift sink` options.
#[derive(Debug, Args)]
pub struct SinkArgs {
    /// Bootstrap servers, host:port[,host:port].
    #[arg(long)]
    pub brokers: String,
    /// Topic to consume.
    #[arg(long)]
    pub topic: String,
    /// Target collection (must exist).
    #[arg(long)]
    pub collection: String,
    /// Consumer group [default: drift-sink-<collection>].
    #[arg(long)]
    pub group: Option<String>,
    /// Value format: json, f32le or arrow.
    #[arg(long, default_value = "json")]
    pub format: Format,
    /// Dead-letter topic for bad records.
    #[arg(long)]
    pub dlq_topic: Option<String>,
    /// Bad-record policy: dlq (needs --dlq-topic; otherwise like skip), skip (count and
    /// log) or fail (stop).
    #[arg(long, default_value = "dlq")]
    pub on_error: OnError,
    /// A partition that now ends before the collection's position (topic deleted and
    /// re-created): fail (stop, naming it) or reset (apply it again from its beginning).
    #[arg(long, default_value = "fail")]
    pub on_rewind: OnRewind,
    /// Stop after this many seconds without a new record.
    #[arg(long)]
    pub until_idle: Option<f64>,
    /// Most records per durable batch.
    #[arg(long, default_value_t = 8192)]
    pub max_batch: usize,
    /// Extra librdkafka property, KEY=VALUE (repeatable).
    #[arg(long = "kafka", value_name = "KEY=VALUE")]
    pub kafka: Vec<String>,
}

impl SinkArgs {
    fn config(&self) -> Result<SinkConfig> {
        let mut c = SinkConfig::new(&self.brokers, &self.topic, &self.collection);
        c.group = self.group.clone();
        c.format = self.format;
        c.dlq_topic = self.dlq_topic.clone();
        c.on_error = self.on_error;
        c.on_rewind = self.on_rewind;
        c.until_idle_secs = self.until_idle;
        c.max_batch = self.max_batch;
        for kv in &self.kafka {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("--kafka {kv:?} is not KEY=VALUE"))?;
            c.kafka.insert(k.to_string(), v.to_string());
        }
        Ok(c)
    }
}

/// Where a collection's sink status is written.
pub fn status_path(data_dir: &Path, collection: &str) -> PathBuf {
    data_dir.join("sinks").join(format!("{collection}.json"))
}

fn write_status(path: &Path, status: &SinkStatus) {
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(status)?)?;
        std::fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        tracing::warn!(path = %path.display(), error = %e, "cannot write sink status");
    }
}

/// One-line progress summary.
fn line(s: &SinkStatus) -> String {
    let lag: Vec<String> = s
        .partitions
        .iter()
        .filter(|(_, p)| p.assigned)
        .map(|(n, p)| match p.lag {
            Some(l) => format!("p{n}={l}"),
            None => format!("p{n}=?"),
        })
        .collect();
    format!(
        "{} records ({:.0}/s): {} upserts, {} deletes, {} bad, {} dead letters; lag {}{}",
        s.records,
        s.records_per_sec,
        s.upserts,
        s.deletes,
        s.bad_total(),
        s.dead_lettered,
        if lag.is_empty() {
            "-".into()
        } else {
            lag.join(" ")
        },
        if s.paused {
            " [paused: flush backlog]"
        } else {
            ""
        }
    )
}

/// Resolves at the first SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Runs the sink until it is idle, interrupted (Ctrl-C, SIGTERM) or stopped by an error.
/// With `server`, writes go to the collection on that `drift serve` server, so several sink
/// processes of one group can share it.
pub fn run(data_dir: &Path, server: Option<&str>, args: SinkArgs) -> Result<()> {
    let config = args.config()?;
    // Embedded: the collection in the data directory (closed on exit). Remote: the server's.
    let (target, local, path): (Arc<dyn drift_engine::VectorWrite>, _, _) = match server {
        Some(server) => {
            let remote = RemoteCollection::connect(server, &config.collection)
                .with_context(|| format!("server {server}"))?;
            (Arc::new(remote), None, None)
        }
        None => {
            let db = Database::open(data_dir)
                .with_context(|| format!("cannot open data directory {}", data_dir.display()))?;
            let coll = db.collection(&config.collection)?;
            let path = status_path(data_dir, &args.collection);
            (coll.clone(), Some((db, coll)), Some(path))
        }
    };
    let sink = Sink::new(config, target)?;
    let stats = sink.stats();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = rt.block_on(async {
        let spinner = std::io::stderr().is_terminal().then(|| {
            let pb = ProgressBar::new_spinner();
            pb.set_style(
                ProgressStyle::with_template("{spinner} sink {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            pb
        });
        let report = {
            let stats = stats.clone();
            let spinner = spinner.clone();
            let path = path.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(500));
                for n in 0u64.. {
                    tick.tick().await;
                    let s = stats.snapshot();
                    if let Some(path) = &path {
                        write_status(path, &s);
                    }
                    match &spinner {
                        Some(pb) => pb.set_message(line(&s)),
                        None if n % 10 == 9 => eprintln!("drift sink: {}", line(&s)),
                        None => {}
                    }
                }
            })
        };
        let stop = shutdown_signal();
        let r = sink.run(stop).await;
        report.abort();
        if let Some(pb) = spinner {
            pb.finish_and_clear();
        }
        r
    });
    let status = stats.snapshot();
    if let Some(path) = &path {
        write_status(path, &status);
    }
    if let Some((_db, coll)) = local {
        coll.close();
    }
    eprintln!("drift sink: {}", line(&status));
    println!("{}", serde_json::to_string(&status)?);
    result.map_err(Into::into)
}
