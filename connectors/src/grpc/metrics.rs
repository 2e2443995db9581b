//! Prometheus metrics of a server: request counts and the search latency histogram kept by
//! the service, engine counters read from every collection at scrape time, and the status of
//! the Kafka sinks the server runs. Served as text at `/metrics` by [`serve_metrics`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use drift_engine::Catalog;
use parking_lot::Mutex;

use crate::kafka::SinkStats;

/// Upper bounds of the search latency histogram, in seconds.
const LATENCY_BOUNDS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Counters the service updates as it answers.
#[derive(Default)]
pub struct Metrics {
    /// Records upserted through the API (not the sinks, which count their own).
    pub upserted: AtomicU64,
    /// Ids deleted through the API.
    pub deleted: AtomicU64,
    /// Calls answered with an error status.
    pub errors: AtomicU64,
    searches: AtomicU64,
    /// Cumulative counts per latency bound (the last slot is +Inf).
    latency: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    latency_micros: AtomicU64,
    sinks: Mutex<Vec<Arc<SinkStats>>>,
}

impl Metrics {
    /// Records one search's latency.
    pub fn observe_search(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let slot = LATENCY_BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.latency[slot].fetch_add(1, Ordering::Relaxed);
        self.searches.fetch_add(1, Ordering::Relaxed);
        self.latency_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Adds a running sink's counters to the output.
    pub fn add_sink(&self, stats: Arc<SinkStats>) {
        self.sinks.lock().push(stats);
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self, catalog: &dyn Catalog) -> String {
        let mut out = String::new();
        let mut w = |s: String| out.push_str(&s);
        w(header(
            "drift_api_upserted_records_total",
            "counter",
            "Records upserted through the API.",
        ));
        w(format!(
            "drift_api_upserted_records_total {}\n",
            self.upserted.load(Ordering::Relaxed)
        ));
        w(header(
            "drift_api_deleted_ids_total",
            "counter",
            "Ids deleted through the API.",
        ));
        w(format!(
            "drift_api_deleted_ids_total {}\n",
            self.deleted.load(Ordering::Relaxed)
        ));
        w(header(
            "drift_api_errors_total",
            "counter",
            "Calls answered with an error status.",
        ));
        w(format!(
            "drift_api_errors_total {}\n",
            self.errors.load(Ordering::Relaxed)
        ));
        w(header(
            "drift_search_latency_seconds",
            "histogram",
            "Latency of Search calls.",
        ));
        let mut cumulative = 0;
        for (i, b) in LATENCY_BOUNDS.iter().enumerate() {
            cumulative += self.latency[i].load(Ordering::Relaxed);
            w(format!(
                "drift_search_latency_seconds_bucket{{le=\"{b}\"}} {cumulative}\n"
            ));
        }
        cumulative += self.latency[LATENCY_BOUNDS.len()].load(Ordering::Relaxed);
        w(format!(
            "drift_search_latency_seconds_bucket{{le=\"+Inf\"}} {cumulative}\n"
        ));
        w(format!(
            "drift_search_latency_seconds_sum {}\n",
            self.latency_micros.load(Ordering::Relaxed) as f64 / 1e6
        ));
        w(format!(
            "drift_search_latency_seconds_count {}\n",
            self.searches.load(Ordering::Relaxed)
        ));

        let gauges: [(&str, &str, &str); 12] = [
            ("drift_live_vectors", "gauge", "Live vectors."),
            ("drift_buckets", "gauge", "L1 buckets."),
            ("drift_l0_rows", "gauge", "Rows in memtables."),
            (
                "drift_flush_backlog_rows",
                "gauge",
                "Frozen rows waiting for a flush.",
            ),
            ("drift_wal_bytes", "gauge", "Bytes in live WAL files."),
            ("drift_splits_total", "counter", "Bucket splits since open."),
            (
                "drift_merges_total",
                "counter",
                "Scatter merges since open.",
            ),
            (
                "drift_compactions_total",
                "counter",
                "Compactions since open.",
            ),
            (
                "drift_reassigned_total",
                "counter",
                "Rows reassigned by maintenance since open.",
            ),
            ("drift_searches_total", "counter", "Searches since open."),
            (
                "drift_block_cache_hits_total",
                "counter",
                "Decoded-block cache hits.",
            ),
            (
                "drift_block_cache_misses_total",
                "counter",
                "Decoded-block cache misses.",
            ),
        ];
        let stats: Vec<_> = catalog
            .list()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.error.is_none())
            .filter_map(|e| {
                let stats = catalog.open(&e.name).and_then(|c| c.stats()).ok()?;
                Some((e.name, stats))
            })
            .collect();
        for (name, kind, help) in gauges {
            w(header(name, kind, help));
            for (coll, s) in &stats {
                let v = match name {
                    "drift_live_vectors" => s.live_vectors as u64,
                    "drift_buckets" => s.buckets as u64,
                    "drift_l0_rows" => s.l0_rows as u64,
                    "drift_flush_backlog_rows" => s.flush_backlog.rows as u64,
                    "drift_wal_bytes" => s.wal_bytes,
                    "drift_splits_total" => s.maintenance.splits,
                    "drift_merges_total" => s.maintenance.merges,
                    "drift_compactions_total" => s.maintenance.compactions,
                    "drift_reassigned_total" => s.maintenance.reassigned,
                    "drift_searches_total" => s.searches,
                    "drift_block_cache_hits_total" => s.storage.block_cache_hits,
                    _ => s.storage.block_cache_misses,
                };
                w(format!("{name}{{collection=\"{coll}\"}} {v}\n"));
            }
        }

        // Recall: the target, and the live monitor's measured mean with its 95% interval
        // (only for collections whose monitor has measured something).
        type RecallValue = fn(&drift_engine::collection::RecallStats) -> Option<f64>;
        let recall: [(&str, &str, RecallValue); 5] = [
            (
                "drift_recall_target",
                "Default recall@k target of searches.",
                |r| r.target.map(f64::from),
            ),
            (
                "drift_recall_measured",
                "Recall@k of monitored searches (exact re-runs), window mean.",
                |r| r.measured,
            ),
            (
                "drift_recall_ci_low",
                "Lower end of the measured recall's 95% interval.",
                |r| r.ci_low,
            ),
            (
                "drift_recall_ci_high",
                "Upper end of the measured recall's 95% interval.",
                |r| r.ci_high,
            ),
            (
                "drift_recall_refits_total",
                "Calibration refits from monitored queries (recall left its band).",
                |r| Some(r.refits_from_queries as f64),
            ),
        ];
        for (name, help, value) in recall {
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            w(header(name, kind, help));
            for (coll, s) in &stats {
                if let Some(v) = value(&s.recall) {
                    w(format!("{name}{{collection=\"{coll}\"}} {v}\n"));
                }
            }
        }

        let sinks: Vec<_> = self.sinks.lock().iter().map(|s| s.snapshot()).collect();
        for (name, help, value) in [
            (
                "drift_sink_records_total",
                "Kafka records handled by a sink.",
                (|s| s.records) as fn(&crate::kafka::SinkStatus) -> u64,
            ),
            (
                "drift_sink_dead_letters_total",
                "Bad records sent to the dead-letter topic.",
                |s| s.dead_lettered,
            ),
        ] {
            w(header(name, "counter", help));
            for s in &sinks {
                w(format!(
                    "{name}{{collection=\"{}\",topic=\"{}\"}} {}\n",
                    s.collection,
                    s.topic,
                    value(s)
                ));
            }
        }
        w(header(
            "drift_sink_lag",
            "gauge",
            "Records between a partition's end and the engine's position.",
        ));
        for s in &sinks {
            for (p, st) in &s.partitions {
                if let (true, Some(lag)) = (st.assigned, st.lag) {
                    w(format!(
                        "drift_sink_lag{{collection=\"{}\",topic=\"{}\",partition=\"{p}\"}} {lag}\n",
                        s.collection, s.topic
                    ));
                }
            }
        }
        out
    }
}

fn header(name: &str, kind: &str, help: &str) -> String {
    format!("# HELP {name} {help}\n# TYPE {name} {kind}\n")
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve_metrics(
    catalog: Arc<dyn Catalog>,
    metrics: Arc<Metrics>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let catalog = catalog.clone();
            let metrics = metrics.clone();
            async move {
                let text = drift_engine::run_cpu(move || metrics.render(&*catalog))
                    .await
                    .unwrap_or_default();
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    text,
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
