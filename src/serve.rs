//! `drift serve`: the gRPC server over one data directory, with optional Prometheus metrics
//! (`--metrics ADDR`) and Kafka sinks from a YAML file (`--sink CONFIG.yaml`). Prints
//! `listening on ADDR` once bound (so `--listen 127.0.0.1:0` can be used). On SIGINT or
//! SIGTERM: the sinks stop first (every applied batch is durable; positions are committed),
//! then the server stops accepting and lets in-flight calls finish, then every collection is
//! flushed and closed, and the process exits 0.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use drift_connectors::grpc::{serve_metrics, serve_service, DriftService, Metrics};
use drift_connectors::kafka::{Sink, SinkConfig};
use drift_engine::Database;
use serde::Deserialize;

/// The `--sink` file: any number of sinks, each one topic into one collection.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkFile {
    /// The sinks (fields as in `drift sink`: brokers, topic, collection, group, format,
    /// dlq_topic, on_error, on_rewind, max_batch, linger_ms, max_message_bytes, kafka).
    pub sinks: Vec<SinkConfig>,
}

/// Reads and checks a `--sink` file.
pub fn read_sink_file(path: &Path) -> Result<SinkFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_yaml::from_str(&text)
        .with_context(|| format!("{}: not a valid sink file", path.display()))
}

/// Runs the server until a signal.
pub fn run(
    data_dir: &Path,
    listen: &str,
    metrics_addr: Option<&str>,
    sink_file: Option<&PathBuf>,
    storage_root: Option<&str>,
    allow_storage: &[String],
) -> Result<()> {
    let sinks_cfg = sink_file.map(|p| read_sink_file(p)).transpose()?;
    let db = Arc::new(
        Database::open(data_dir)
            .with_context(|| format!("cannot open data directory {}", data_dir.display()))?,
    );
    let metrics = Arc::new(Metrics::default());
    let mut sinks = Vec::new();
    for cfg in sinks_cfg.map(|f| f.sinks).unwrap_or_default() {
        let what = format!("sink of topic {} into {}", cfg.topic, cfg.collection);
        let coll = db
            .collection(&cfg.collection)
            .with_context(|| what.clone())?;
        let target: Arc<dyn drift_engine::VectorWrite> = coll;
        let sink = Sink::new(cfg, target).with_context(|| what.clone())?;
        metrics.add_sink(sink.stats());
        sinks.push((what, sink));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let metrics_task = match metrics_addr {
            Some(m) => {
                let l = tokio::net::TcpListener::bind(m)
                    .await
                    .with_context(|| format!("cannot listen on {m} for metrics"))?;
                println!("metrics on http://{}/metrics", l.local_addr()?);
                Some(tokio::spawn(serve_metrics(
                    db.clone(),
                    metrics.clone(),
                    l,
                    stopped(),
                )))
            }
            None => None,
        };
        println!("listening on {addr}");
        std::io::stdout().flush()?;
        tracing::info!(%addr, data_dir = %data_dir.display(), sinks = sinks.len(), "serving");
        let mut sink_tasks = Vec::new();
        for (what, sink) in sinks {
            let stop = stopped();
            sink_tasks.push(tokio::spawn(async move {
                if let Err(e) = sink.run(stop).await {
                    tracing::error!(sink = %what, error = %e, "sink stopped with an error");
                    eprintln!("drift serve: {what} stopped: {e}");
                }
            }));
        }
        let service = DriftService::new(db.clone(), metrics.clone())
            .with_storage_root(storage_root.unwrap_or_default())
            .with_allowed_storage(allow_storage.to_vec());
        let server = tokio::spawn(serve_service(service, listener, stopped()));
        crate::sink::shutdown_signal().await;
        eprintln!("drift serve: stopping");
        let _ = stop_tx.send(true);
        for t in sink_tasks {
            let _ = t.await;
        }
        server
            .await
            .context("server task failed")?
            .context("server failed")?;
        if let Some(t) = metrics_task {
            let _ = t.await;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    // Acknowledged writes are in the WAL already; a flush makes the next start quick.
    for (name, _) in db.list() {
        if let Err(e) = db.collection(&name).and_then(|c| c.flush()) {
            eprintln!("drift serve: flush of '{name}' at shutdown failed: {e}");
        }
    }
    db.close();
    eprintln!("drift serve: stopped");
    Ok(())
}
