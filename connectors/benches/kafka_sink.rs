//! Kafka sink throughput: records/s from a topic into the durable engine, next to the raw
//! consume rate of the same topic by a bare rdkafka consumer, for 128-d vectors in `f32le`
//! and `arrow`.
//!
//! ```text
//! cargo bench -p drift-connectors --bench kafka_sink                    # mock broker
//! cargo bench -p drift-connectors --bench kafka_sink -- --brokers HOST:PORT [--tansu PATH]
//! ```
//! Options: `--records N` (default 60000), `--rows-per-message R` for arrow (default 500),
//! `--runs K` (default 3). Rates are measured from the first record received to the last
//! one received (raw) or made durable (sink); group joins are not counted.
//! The mock broker keeps only the newest 5 MiB of a partition, so it gets 16 partitions.

use std::time::{Duration, Instant};

use drift_connectors::kafka::{encode_arrow, Format, Sink, SinkConfig};
use drift_engine::{CollectionConfig, Database, Metric};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

const DIM: usize = 128;

struct Args {
    brokers: Option<String>,
    tansu: String,
    records: usize,
    rows_per_message: usize,
    runs: usize,
}

fn args() -> Args {
    let mut a = Args {
        brokers: None,
        tansu: "tansu".into(),
        records: 60_000,
        rows_per_message: 500,
        runs: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--brokers" => a.brokers = Some(v()),
            "--tansu" => a.tansu = v(),
            "--records" => a.records = v().parse().expect("--records N"),
            "--rows-per-message" => a.rows_per_message = v().parse().expect("--rows-per-message R"),
            "--runs" => a.runs = v().parse().expect("--runs K"),
            "--bench" => {}
            other => panic!("unknown option {other}"),
        }
    }
    a
}

fn vectors(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n * DIM)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 40) as f32) / (1u64 << 24) as f32
        })
        .collect()
}

fn produce(brokers: &str, topic: &str, messages: &[(String, Vec<u8>)]) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .create()
        .unwrap();
    for (k, v) in messages {
        let mut r = BaseRecord::to(topic).key(k.as_str()).payload(v.as_slice());
        loop {
            match p.send(r) {
                Ok(()) => break,
                Err((_, back)) => {
                    p.poll(Duration::from_millis(5));
                    r = back;
                }
            }
        }
    }
    p.flush(Duration::from_secs(60)).unwrap();
}

/// Messages/s of a bare consumer reading `messages` records of `topic` in a fresh group.
async fn raw_rate(brokers: &str, topic: &str, group: &str, messages: usize) -> f64 {
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    let mut n = 0;
    let mut first = None;
    let mut bytes = 0usize;
    while n < messages {
        let m = tokio::time::timeout(Duration::from_secs(60), c.recv())
            .await
            .expect("raw consumer got every record")
            .unwrap();
        first.get_or_insert_with(Instant::now);
        bytes += rdkafka::Message::payload(&m).map_or(0, |p| p.len());
        n += 1;
    }
    std::hint::black_box(bytes);
    n as f64 / first.unwrap().elapsed().as_secs_f64()
}

/// Records/s of the sink reading `topic` into a fresh collection, durable.
async fn sink_rate(brokers: &str, topic: &str, group: &str, format: Format, rows: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let coll = db
        .create_collection("bench", CollectionConfig::new(DIM, Metric::L2))
        .unwrap();
    let mut cfg = SinkConfig::new(brokers, topic, "bench");
    cfg.group = Some(group.into());
    cfg.format = format;
    cfg.until_idle_secs = Some(2.0);
    let sink = Sink::new(cfg, coll.clone()).unwrap();
    sink.run(std::future::pending()).await.unwrap();
    let s = sink.stats().snapshot();
    assert_eq!(coll.stats().live_vectors, rows, "every row applied");
    coll.close();
    rows as f64 / s.active_secs
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mock = a.brokers.is_none().then(|| MockCluster::new(1).unwrap());
    let (brokers, broker_name) = match (&a.brokers, &mock) {
        (Some(b), _) => (b.clone(), format!("{b} (tansu or other Kafka)")),
        (None, Some(m)) => (m.bootstrap_servers(), "librdkafka mock broker".to_string()),
        (None, None) => unreachable!("a mock broker is started when no brokers are given"),
    };
    let partitions = if a.brokers.is_some() { 4 } else { 16 };
    let create = |topic: &str| match (&a.brokers, &mock) {
        (None, Some(m)) => m.create_topic(topic, partitions, 1).unwrap(),
        (None, None) => unreachable!("a mock broker is started when no brokers are given"),
        (Some(b), _) => {
            let out = std::process::Command::new(&a.tansu)
                .args([
                    "topic",
                    "create",
                    topic,
                    "--partitions",
                    &partitions.to_string(),
                ])
                .arg("--broker")
                .arg(format!("tcp://{b}"))
                .output()
                .expect("run tansu topic create");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    let n = a.records;
    let data = vectors(n, 1);
    let tag = std::process::id();
    println!(
        "broker: {broker_name}; {n} records of {DIM}-d, {partitions} partitions, {} runs",
        a.runs
    );

    // f32le: one record per message.
    let t_le = format!("bench-f32le-{tag}");
    create(&t_le);
    let msgs: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            let v = &data[i * DIM..(i + 1) * DIM];
            (
                i.to_string(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    produce(&brokers, &t_le, &msgs);

    // arrow: rows_per_message rows per message.
    let t_ar = format!("bench-arrow-{tag}");
    create(&t_ar);
    let rpm = a.rows_per_message;
    let msgs_ar: Vec<(String, Vec<u8>)> = (0..n.div_ceil(rpm))
        .map(|m| {
            let rows: Vec<_> = (m * rpm..((m + 1) * rpm).min(n))
                .map(|i| (i as u64, Some(data[i * DIM..(i + 1) * DIM].to_vec()), None))
                .collect();
            (m.to_string(), encode_arrow(DIM, &rows))
        })
        .collect();
    produce(&brokers, &t_ar, &msgs_ar);

    for (name, topic, format, messages, rows_per) in [
        ("f32le", &t_le, Format::F32le, msgs.len(), 1),
        ("arrow", &t_ar, Format::Arrow, msgs_ar.len(), rpm),
    ] {
        for run in 0..a.runs {
            let raw = rt.block_on(raw_rate(&brokers, topic, &format!("raw-{run}"), messages))
                * rows_per as f64;
            let sink = rt.block_on(sink_rate(
                &brokers,
                topic,
                &format!("sink-{run}"),
                format,
                n,
            ));
            println!(
                "{name:<6} run {run}: raw consumer {raw:>10.0} records/s   sink -> durable engine {sink:>10.0} records/s   ratio {:.2}",
                sink / raw
            );
        }
    }
}
