//! `drift sink` end to end, as separate processes against a real Kafka-compatible broker:
//! tansu with SQLite storage when `DRIFT_TEST_KAFKA_BROKERS` names one (`scripts/test.sh`
//! starts it), otherwise librdkafka's mock broker served from this test process.
//!
//! The sink is killed with SIGKILL at random moments while it consumes and restarted; at the
//! end the collection must equal the topic's final state exactly, and the engine's positions
//! must equal the partitions' ends.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drift_engine::Database;
use rand::{Rng, SeedableRng};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

mod common;
use common::{serve, serve_with, stop as stop_server};

const DIM: usize = 16;
const PARTITIONS: i32 = 4;

/// A broker for one test: tansu from the environment, or an in-process mock.
struct Broker {
    brokers: String,
    mock: Option<MockCluster<'static, rdkafka::producer::DefaultProducerContext>>,
}

impl Broker {
    fn start() -> Broker {
        match std::env::var("DRIFT_TEST_KAFKA_BROKERS") {
            Ok(b) if !b.is_empty() => Broker {
                brokers: b,
                mock: None,
            },
            _ => {
                eprintln!("DRIFT_TEST_KAFKA_BROKERS is not set: using librdkafka's mock broker");
                let mock = MockCluster::new(1).unwrap();
                Broker {
                    brokers: mock.bootstrap_servers(),
                    mock: Some(mock),
                }
            }
        }
    }

    fn create_topic(&self, name: &str) {
        match &self.mock {
            Some(m) => m.create_topic(name, PARTITIONS, 1).unwrap(),
            None => {
                let tansu = std::env::var("DRIFT_TANSU").unwrap_or_else(|_| "tansu".into());
                let out = Command::new(tansu)
                    .args(["topic", "create", name, "--partitions", "4", "--broker"])
                    .arg(format!("tcp://{}", self.brokers))
                    .output()
                    .expect("run tansu topic create");
                assert!(
                    out.status.success(),
                    "tansu topic create: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }

    fn producer(&self) -> BaseProducer {
        ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            // One request in flight per connection: a retry cannot reorder a key's records.
            .set("max.in.flight.requests.per.connection", "1")
            .set("linger.ms", "5")
            .create()
            .unwrap()
    }

    /// The end offset of every partition of `topic`.
    fn ends(&self, topic: &str) -> BTreeMap<String, i64> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()
            .unwrap();
        (0..PARTITIONS)
            .map(|p| {
                let (_, hi) = c
                    .fetch_watermarks(topic, p, Duration::from_secs(10))
                    .unwrap();
                (format!("{topic}/{p}"), hi)
            })
            .collect()
    }
}

fn send(p: &BaseProducer, topic: &str, id: u64, value: Option<&[u8]>) {
    let key = id.to_string();
    let mut r: BaseRecord<'_, str, [u8]> = BaseRecord::to(topic).key(&key);
    if let Some(v) = value {
        r = r.payload(v);
    }
    let mut r = r;
    loop {
        match p.send(r) {
            Ok(()) => return,
            Err((_, back)) => {
                p.poll(Duration::from_millis(5));
                r = back;
            }
        }
    }
}

fn vector(id: u64, version: u32) -> Vec<f32> {
    (0..DIM)
        .map(|d| ((id * 37 + d as u64 * 11 + version as u64 * 101) % 1009) as f32 / 1009.0)
        .collect()
}

/// Each id's last value in a topic (`None`: deleted).
type FinalState = BTreeMap<u64, Option<Vec<f32>>>;

/// A random stream of upserts, re-upserts and deletes over `ids`, about `rate` per second,
/// until `stop` is set; returns the final state.
fn workload(
    broker: &Broker,
    topic: &str,
    ids: u64,
    seed: u64,
    rate: u32,
    stop: &AtomicBool,
) -> FinalState {
    let p = broker.producer();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut state: BTreeMap<u64, Option<Vec<f32>>> = BTreeMap::new();
    let mut version = 0u32;
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let id = rng.gen_range(0..ids);
        if rng.gen_bool(0.2) && state.get(&id).is_some_and(|v| v.is_some()) {
            send(&p, topic, id, None);
            state.insert(id, None);
        } else {
            version += 1;
            let v = vector(id, version);
            let json = format!(r#"{{"id":{id},"vector":{v:?},"payload":{{"v":{version}}}}}"#);
            send(&p, topic, id, Some(json.as_bytes()));
            state.insert(id, Some(v));
        }
        p.poll(Duration::ZERO);
        let due = start + Duration::from_secs_f64(version as f64 / rate as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    p.flush(Duration::from_secs(30)).unwrap();
    state
}

/// Runs [`workload`] on a thread until the returned flag is set; the handle yields the final
/// state.
fn spawn_workload(
    broker: &Broker,
    topic: &str,
    ids: u64,
    seed: u64,
    rate: u32,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<FinalState>) {
    let stop = Arc::new(AtomicBool::new(false));
    let brokers = broker.brokers.clone();
    let topic = topic.to_string();
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        let b = Broker {
            brokers,
            mock: None,
        };
        workload(&b, &topic, ids, seed, rate, &flag)
    });
    (stop, handle)
}

fn drift(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_drift"));
    c.arg("--data-dir").arg(dir);
    c
}

fn sink(dir: &Path, broker: &Broker, topic: &str, until_idle: Option<&str>) -> Child {
    sink_with(dir, broker, topic, until_idle, &[])
}

fn sink_with(
    dir: &Path,
    broker: &Broker,
    topic: &str,
    until_idle: Option<&str>,
    extra: &[&str],
) -> Child {
    let mut c = drift(dir);
    c.args(["sink", "--brokers", &broker.brokers, "--topic", topic])
        .args(extra)
        .args(["--collection", "c", "--group", &format!("{topic}-group")])
        // A killed member never leaves its group; keep its session short so that the
        // restarted sink is not held back for the default 45 s.
        .args(["--kafka", "session.timeout.ms=6000"])
        .args(["--kafka", "heartbeat.interval.ms=500"])
        // Small batches: the kills land among many durable batches and commits.
        .args(["--max-batch", "200"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(s) = until_idle {
        c.args(["--until-idle", s]);
    }
    c.spawn().expect("start drift sink")
}

/// Records the sink reports as handled so far (from its status file).
fn handled(dir: &Path) -> u64 {
    std::fs::read(dir.join("sinks/c.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["records"].as_u64())
        .unwrap_or(0)
}

/// A broker, a fresh 4-partition topic named after `prefix`, and a data directory holding
/// collection `c`.
fn setup(prefix: &str) -> (Broker, String, tempfile::TempDir) {
    let broker = Broker::start();
    let topic = format!("{prefix}-{}", std::process::id());
    broker.create_topic(&topic);
    let dir = tempfile::tempdir().unwrap();
    create_collection(dir.path());
    (broker, topic, dir)
}

fn create_collection(dir: &Path) {
    let out = drift(dir)
        .args(["collection", "create", "c", "--dim", &DIM.to_string()])
        // Small memtables and flush thresholds: kills land in flushes and commits too.
        .args([
            "--settings",
            r#"{"memtable_capacity":512,"flush_threshold":1024,"auto_train_min":1024}"#,
        ])
        .spawn()
        .unwrap();
    wait_ok(out, "collection create");
}

/// The collection holds exactly `expect`, and its positions are the partitions' ends.
fn check(dir: &Path, expect: &BTreeMap<u64, Option<Vec<f32>>>, ends: &BTreeMap<String, i64>) {
    let db = Database::open(dir).unwrap();
    let c = db.collection("c").unwrap();
    let live = expect.values().filter(|v| v.is_some()).count();
    assert_eq!(c.stats().live_vectors, live);
    for (id, v) in expect {
        let got = c.get(*id).unwrap().map(|r| r.vector);
        assert_eq!(&got, v, "id {id}");
    }
    assert_eq!(
        &c.source_offsets(),
        ends,
        "engine positions = partition ends"
    );
}

/// `GET /metrics` as text.
fn scrape(url: &str) -> String {
    use std::io::{Read, Write};
    let hostport = url
        .strip_prefix("http://")
        .and_then(|u| u.strip_suffix("/metrics"))
        .unwrap();
    let mut s = std::net::TcpStream::connect(hostport).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text
}

fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn a_sink_inside_drift_serve_with_metrics_and_a_graceful_stop() {
    let (broker, topic, dir) = setup("served");
    let p = broker.producer();
    let mut expect = BTreeMap::new();
    for id in 0..400u64 {
        let v = vector(id, 1);
        let json = format!(r#"{{"id":{id},"vector":{v:?}}}"#);
        send(&p, &topic, id, Some(json.as_bytes()));
        expect.insert(id, Some(v));
    }
    for id in 0..40u64 {
        send(&p, &topic, id, None);
        expect.insert(id, None);
    }
    p.flush(Duration::from_secs(30)).unwrap();
    let config = dir.path().join("sinks.yaml");
    std::fs::write(
        &config,
        format!(
            "sinks:\n  - brokers: \"{}\"\n    topic: {topic}\n    collection: c\n    group: served\n    kafka:\n      session.timeout.ms: \"6000\"\n",
            broker.brokers
        ),
    )
    .unwrap();
    let (server, lines, addr) = serve_with(
        dir.path(),
        &[
            "--sink",
            config.to_str().unwrap(),
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    let url = lines
        .iter()
        .find_map(|l| l.strip_prefix("metrics on "))
        .expect("metrics address printed")
        .to_string();
    let start = Instant::now();
    loop {
        // Caught up, and the lag (from librdkafka's statistics, every second) reported.
        let text = scrape(&url);
        if metric(&text, "drift_sink_records_total") == Some(440.0)
            && metric(&text, "drift_sink_lag{collection=\"c\"") == Some(0.0)
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "sink did not catch up: {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A search through the server shows up in the latency histogram.
    let q = dir.path().join("q.jsonl");
    std::fs::write(
        &q,
        format!("{{\"id\":0,\"vector\":{:?}}}\n", vector(100, 1)),
    )
    .unwrap();
    let out = drift(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .args([
            "--server",
            &addr,
            "search",
            "c",
            "--query",
            q.to_str().unwrap(),
            "-k",
            "1",
        ])
        .spawn()
        .unwrap();
    assert!(wait_ok(out, "search through the server").contains("0,1,100,"));
    let text = scrape(&url);
    assert_eq!(
        metric(&text, "drift_search_latency_seconds_count"),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, "drift_live_vectors{collection=\"c\"}"),
        Some(360.0)
    );

    stop_server(server);
    check(dir.path(), &expect, &broker.ends(&topic));
}

fn wait_ok(child: Child, what: &str) -> String {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn two_sink_processes_in_one_group_fill_one_collection_exactly() {
    let (broker, topic, dir) = setup("group");
    let (server, addr) = serve(dir.path());

    let (stop, producer) = spawn_workload(&broker, &topic, 1_000, 3, 500);
    let remote = ["--server", addr.as_str()];
    let first = sink_with(dir.path(), &broker, &topic, Some("6"), &remote);
    // The second member joins while the first consumes: partitions move between them.
    std::thread::sleep(Duration::from_secs(6));
    let second = sink_with(dir.path(), &broker, &topic, Some("6"), &remote);
    std::thread::sleep(Duration::from_secs(10));
    stop.store(true, Ordering::Relaxed);
    let expect = producer.join().unwrap();
    let reports: Vec<serde_json::Value> =
        [wait_ok(first, "first sink"), wait_ok(second, "second sink")]
            .iter()
            .map(|out| serde_json::from_str(out.trim()).unwrap())
            .collect();
    eprintln!(
        "records handled: {} and {}",
        reports[0]["records"], reports[1]["records"]
    );
    assert!(
        reports.iter().all(|r| r["records"].as_u64().unwrap() > 0),
        "both members consumed"
    );
    // Graceful stop of the server: exit 0, then the data directory holds the final state.
    stop_server(server);
    check(dir.path(), &expect, &broker.ends(&topic));
}

#[test]
fn sigkill_at_random_moments_loses_nothing_and_applies_nothing_twice() {
    let (broker, topic, dir) = setup("kill");

    // The producer keeps writing while the sink is killed and restarted.
    let (stop, producer) = spawn_workload(&broker, &topic, 1_500, 7, 400);
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut kills = 0;
    let mut killed_after = Vec::new();
    while kills < 5 {
        let _ = std::fs::remove_file(dir.path().join("sinks/c.json"));
        let mut child = sink(dir.path(), &broker, &topic, None);
        // Wait until this run is consuming, then kill it at a random moment.
        let start = Instant::now();
        while handled(dir.path()) == 0 && start.elapsed() < Duration::from_secs(60) {
            if let Some(status) = child.try_wait().unwrap() {
                let out = child.wait_with_output().unwrap();
                panic!(
                    "sink exited early ({status}): {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..1500)));
        child.kill().unwrap();
        child.wait().unwrap();
        killed_after.push(handled(dir.path()));
        eprintln!(
            "run {kills}: consuming after {:.1} s, killed at {} records",
            start.elapsed().as_secs_f64(),
            killed_after[kills]
        );
        kills += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let expect = producer.join().unwrap();
    let out = sink(dir.path(), &broker, &topic, Some("4"))
        .wait_with_output()
        .unwrap();
    assert!(
        out.status.success(),
        "final sink run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("killed after {killed_after:?} records handled");
    check(dir.path(), &expect, &broker.ends(&topic));
}
