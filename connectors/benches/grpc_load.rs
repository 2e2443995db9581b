//! Load on the gRPC server: N concurrent clients, half upserting batches and half searching,
//! for a fixed time, over loopback against a server in this process. Prints throughput and
//! p50/p99 latency (hdrhistogram) per call kind, and the error count (must be zero).
//!
//! ```text
//! cargo bench -p drift-connectors --bench grpc_load -- [--clients 8] [--secs 20] [--dim 128]
//!     [--batch 100] [--preload 20000] [--collections 2]
//! ```
//! Clients spread over `--collections` tenants; each collection is preloaded first so that
//! searches run against flushed buckets as well as memtables.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drift_connectors::grpc::pb::{self, drift_client::DriftClient};
use drift_connectors::grpc::{serve, Metrics};
use drift_engine::Database;
use hdrhistogram::Histogram;
use parking_lot::Mutex;

struct Args {
    clients: usize,
    secs: u64,
    dim: usize,
    batch: usize,
    preload: usize,
    collections: usize,
}

fn args() -> Args {
    let mut a = Args {
        clients: 8,
        secs: 20,
        dim: 128,
        batch: 100,
        preload: 20_000,
        collections: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "--bench" {
            continue;
        }
        let v: usize = it
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} needs a number"));
        match k.as_str() {
            "--clients" => a.clients = v.max(1),
            "--secs" => a.secs = v as u64,
            "--dim" => a.dim = v,
            "--batch" => a.batch = v.max(1),
            "--preload" => a.preload = v,
            "--collections" => a.collections = v.max(1),
            other => panic!("unknown option {other}"),
        }
    }
    a
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32) / (1u64 << 24) as f32
    }
    fn vector(&mut self, dim: usize) -> Vec<f32> {
        (0..dim).map(|_| self.next()).collect()
    }
}

fn records(rng: &mut Rng, first: u64, n: usize, dim: usize) -> Vec<pb::Record> {
    (0..n)
        .map(|i| pb::Record {
            id: first + i as u64,
            vector: rng.vector(dim),
            payload: None,
        })
        .collect()
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open(dir.path()).unwrap());
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(db.clone(), Arc::new(Metrics::default()), listener, async {
            let _ = stop_rx.await;
        }));
        let mut c = DriftClient::connect(url.clone()).await.unwrap();
        let mut rng = Rng(7);
        for t in 0..a.collections {
            c.create_collection(pb::CreateCollectionRequest {
                name: format!("t{t}"),
                dim: a.dim as u32,
                metric: "l2".into(),
                settings_json: String::new(),
            })
            .await
            .unwrap();
            for first in (0..a.preload).step_by(1000) {
                let n = 1000.min(a.preload - first);
                c.upsert(pb::UpsertRequest {
                    collection: format!("t{t}"),
                    records: records(&mut rng, first as u64, n, a.dim),
                })
                .await
                .unwrap();
            }
            c.flush(pb::CollectionRef {
                collection: format!("t{t}"),
            })
            .await
            .unwrap();
        }
        println!(
            "{} clients ({} upserting batches of {}, {} searching k=10), {} collections of {}-d preloaded with {} each, {} s",
            a.clients,
            a.clients / 2,
            a.batch,
            a.clients - a.clients / 2,
            a.collections,
            a.dim,
            a.preload,
            a.secs
        );
        let upserts = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
        let searches = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
        let errors = Arc::new(AtomicU64::new(0));
        let rows = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(a.secs);
        let mut tasks = Vec::new();
        for i in 0..a.clients {
            let url = url.clone();
            let (upserts, searches, errors, rows) =
                (upserts.clone(), searches.clone(), errors.clone(), rows.clone());
            let (dim, batch, collection) = (a.dim, a.batch, format!("t{}", i % a.collections));
            tasks.push(tokio::spawn(async move {
                let mut c = DriftClient::connect(url).await.unwrap();
                let mut rng = Rng(100 + i as u64);
                let mut next_id = 1_000_000_000 * (i as u64 + 1);
                let mut local = Histogram::<u64>::new(3).unwrap();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let ok = if i % 2 == 0 {
                        let r = c
                            .upsert(pb::UpsertRequest {
                                collection: collection.clone(),
                                records: records(&mut rng, next_id, batch, dim),
                            })
                            .await;
                        next_id += batch as u64;
                        if r.is_ok() {
                            rows.fetch_add(batch as u64, Ordering::Relaxed);
                        }
                        r.is_ok()
                    } else {
                        c.search(pb::SearchRequest {
                            collection: collection.clone(),
                            vector: rng.vector(dim),
                            k: 10,
                            ..Default::default()
                        })
                        .await
                        .is_ok()
                    };
                    if !ok {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    local.record(t.elapsed().as_micros() as u64).unwrap();
                }
                let into = if i % 2 == 0 { &upserts } else { &searches };
                into.lock().add(&local).unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let secs = a.secs as f64;
        for (name, h) in [("upsert", &upserts), ("search", &searches)] {
            let h = h.lock();
            println!(
                "{name:<6}: {:>8.0} calls/s   p50 {:>7.2} ms   p99 {:>7.2} ms   ({} calls)",
                h.len() as f64 / secs,
                h.value_at_quantile(0.5) as f64 / 1e3,
                h.value_at_quantile(0.99) as f64 / 1e3,
                h.len()
            );
        }
        println!(
            "ingest: {:.0} vectors/s; errors: {}",
            rows.load(Ordering::Relaxed) as f64 / secs,
            errors.load(Ordering::Relaxed)
        );
        let _ = stop_tx.send(());
        server.await.unwrap().unwrap();
        assert_eq!(errors.load(Ordering::Relaxed), 0, "every call must succeed");
    });
    db.close();
}
