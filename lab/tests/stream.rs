//! The streaming case: rows inserted at a fixed rate while searches run, measured per window,
//! with maintenance counted where it happened, written as CSV, JSON and a chart.

use drift_engine::{Database, IndexSettings, Metric};
use drift_lab::datasets::Clustered;
use drift_lab::stream::{self, StreamConfig};
use drift_lab::vecfile::write_fbin;

fn files(dir: &std::path::Path, rows: usize) -> (std::path::PathBuf, std::path::PathBuf) {
    let dim = 32;
    let gen = Clustered::new(dim, 20, 9);
    let (base, queries) = (dir.join("base.fbin"), dir.join("q.fbin"));
    write_fbin(&base, &gen.sample(rows, 0).vectors, dim).unwrap();
    write_fbin(&queries, &gen.sample(100, 1).vectors, dim).unwrap();
    (base, queries)
}

fn config(base: std::path::PathBuf, queries: std::path::PathBuf) -> StreamConfig {
    // Small memtables and buckets, so that a second of streaming flushes and splits.
    let settings = IndexSettings {
        memtable_capacity: 500,
        flush_threshold: 1000,
        auto_train_min: 1000,
        target_bucket_size: 64,
        ..IndexSettings::default()
    };
    StreamConfig {
        base,
        queries,
        metric: Metric::L2,
        k: 10,
        initial_rows: 2000,
        rate: 4000.0,
        batch: 100,
        window_secs: 0.2,
        scored_per_window: 20,
        settings: Some(settings),
    }
}

#[test]
fn a_stream_is_measured_per_window_with_maintenance_marked() {
    let dir = tempfile::tempdir().unwrap();
    let (base, queries) = files(dir.path(), 6000);
    let db = Database::open(dir.path().join("db")).unwrap();
    let r = stream::run(&db, "s", &config(base, queries), &|_, _, _| {}).unwrap();
    println!("{}", stream::markdown(&r));
    assert_eq!(r.streamed_rows, 4000);
    assert!(r.windows.len() >= 3, "{} windows", r.windows.len());
    assert_eq!(
        r.windows.last().unwrap().rows,
        6000,
        "every row acknowledged"
    );
    // Windows are in time order, each scored and timed.
    for pair in r.windows.windows(2) {
        assert!(pair[0].t < pair[1].t && pair[0].rows <= pair[1].rows);
    }
    for w in &r.windows {
        assert!(w.scored > 0 && w.recall.is_some(), "{w:?}");
        assert!(
            w.qps > 0.0 && w.p50_us > 0.0 && w.p99_us >= w.p50_us,
            "{w:?}"
        );
    }
    assert!(r.mean_recall > 0.85, "mean recall {}", r.mean_recall);
    assert!(r.searches > 0 && r.achieved_rate > 0.0);
    // Maintenance is counted in the window it happened in (a second of streaming over
    // 1,000-row flushes and 64-row buckets flushes, splits or merges at least once).
    let events: u64 = r
        .windows
        .iter()
        .map(|w| w.flushes + w.splits + w.merges)
        .sum();
    assert!(events >= 1, "no maintenance seen");
    let out = dir.path().join("out");
    let written = stream::write(&out, &r, "test").unwrap();
    assert_eq!(written.len(), 3);
    for f in &written {
        assert!(std::fs::metadata(f).unwrap().len() > 100, "{}", f.display());
    }
    let csv = std::fs::read_to_string(out.join("stream.csv")).unwrap();
    assert_eq!(csv.lines().count(), r.windows.len() + 1);
    // The collection holds every row, once.
    let coll = drift_engine::Catalog::open(&db, "s").unwrap();
    assert_eq!(coll.stats().unwrap().live_vectors, 6000);
}

#[test]
fn bad_stream_settings_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (base, queries) = files(dir.path(), 500);
    let db = Database::open(dir.path().join("db")).unwrap();
    let mut c = config(base, queries);
    c.rate = 0.0;
    let e = stream::run(&db, "s", &c, &|_, _, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("insert rate"), "{e}");
    c.rate = 100.0;
    let e = stream::run(&db, "s", &c, &|_, _, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("initial rows"), "{e}");
}
