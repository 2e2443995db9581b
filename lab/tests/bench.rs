//! `drift bench` without peers: the binary prefilter answers like the plain SQ8 scan while
//! computing far fewer SQ8 distances, and the under-ingest pass measures searches while
//! another thread re-upserts rows.

use drift_engine::{Database, Metric};
use drift_lab::bench::{run, BenchConfig};
use drift_lab::datasets::Clustered;
use drift_lab::vecfile::write_fbin;
use std::path::PathBuf;

/// A temporary directory holding `rows` base and `nq` query vectors drawn from `gen` (as
/// `base.fbin` and `q.fbin`), and a database beside them.
fn bench_files(
    gen: &Clustered,
    rows: usize,
    nq: usize,
) -> (tempfile::TempDir, PathBuf, PathBuf, Database) {
    let dir = tempfile::tempdir().unwrap();
    let (base, queries) = (dir.path().join("base.fbin"), dir.path().join("q.fbin"));
    write_fbin(&base, &gen.sample(rows, 0).vectors, gen.dim).unwrap();
    write_fbin(&queries, &gen.sample(nq, 1).vectors, gen.dim).unwrap();
    let db = Database::open(dir.path().join("db")).unwrap();
    (dir, base, queries, db)
}

#[test]
fn prefiltered_and_plain_scans_agree_and_ingest_latency_is_measured() {
    // Sketches are built from 256 dimensions on.
    let (_dir, base, queries, db) = bench_files(&Clustered::new(256, 30, 5), 12_000, 200);
    let cfg = BenchConfig {
        sq8_only: true,
        ingest_rows: 4000,
        nprobes: vec![16],
        batch: 500,
        warmup: 1000,
        ..BenchConfig::new(base, queries, Metric::L2)
    };
    let r = run(&db, "b", &cfg, &|_, _, _| {}).unwrap();
    let md = drift_lab::bench::markdown(&r, "test");
    println!("{md}");
    let point = |sys: &str, knob: &str| {
        r.points
            .iter()
            .find(|p| p.system == sys && p.knob == knob)
            .unwrap_or_else(|| panic!("no {sys} {knob} point\n{md}"))
            .clone()
    };
    let fast = point("drift", "recall_target");
    let plain = point("drift-sq8", "recall_target");
    // Both scans see the same rows; the sketch only skips rows that cannot enter the pool.
    assert!(fast.recall >= 0.94, "{md}");
    assert!((fast.recall - plain.recall).abs() <= 0.01, "{md}");
    // Scanning 16 buckets, most rows are ruled out by their bound.
    let deep = point("drift", "nprobe");
    let (codes, refined) = (deep.codes.unwrap(), deep.refined.unwrap());
    assert!(
        refined < 0.5 * codes,
        "prefilter refined {refined} of {codes}\n{md}"
    );
    let (pc, pr) = (plain.codes.unwrap(), plain.refined.unwrap());
    assert!(
        (pc - pr).abs() <= 1e-6 * pc,
        "without the prefilter every row is computed\n{md}"
    );
    // Searches ran while 4,000 rows were re-upserted; same vectors, so recall holds.
    let ingest = point("drift-ingest", "rows");
    assert_eq!(ingest.value, 4000.0);
    assert!(ingest.recall >= 0.9, "{md}");
    assert!(
        ingest.p50_us > 0.0 && ingest.p99_us >= ingest.p50_us,
        "{md}"
    );
    assert!(
        db.collection("b").is_err(),
        "the bench drops its collection"
    );
}

#[test]
fn a_kept_index_is_measured_again_without_a_build_and_a_different_one_is_rebuilt() {
    let (_dir, base, queries, db) = bench_files(&Clustered::new(32, 20, 8), 6_000, 100);
    let mut cfg = BenchConfig {
        targets: vec![0.9],
        nprobes: vec![4],
        batch: 500,
        warmup: 100,
        keep_index: true,
        ..BenchConfig::new(base, queries, Metric::L2)
    };
    let reused = |r: &drift_lab::bench::BenchReport| {
        r.systems[0].versions["reused_index"].as_bool().unwrap()
    };
    let codes = |r: &drift_lab::bench::BenchReport| {
        r.points
            .iter()
            .find(|p| p.knob == "nprobe")
            .and_then(|p| p.codes)
            .unwrap()
    };
    let first = run(&db, "b", &cfg, &|_, _, _| {}).unwrap();
    assert!(!reused(&first));
    let buckets = db.collection("b").unwrap().stats().buckets;
    let second = run(&db, "b", &cfg, &|_, _, _| {}).unwrap();
    assert!(
        reused(&second),
        "same rows and settings: the kept index is measured"
    );
    assert_eq!(db.collection("b").unwrap().stats().buckets, buckets);
    // Per-search means come from differences of the collection's running counters, so
    // they agree to rounding, not to the bit.
    let (a, b) = (codes(&first), codes(&second));
    assert!(
        (a - b).abs() <= 1e-9 * a,
        "the same partitions scanned: {a} vs {b}"
    );
    // Other settings: built anew, not measured on the kept one.
    cfg.settings = Some(drift_engine::IndexSettings {
        target_bucket_size: 64,
        ..Default::default()
    });
    let third = run(&db, "b", &cfg, &|_, _, _| {}).unwrap();
    assert!(!reused(&third));
    assert_eq!(
        db.collection("b")
            .unwrap()
            .config()
            .settings
            .target_bucket_size,
        64
    );
    // Without keep_index the collection goes at the end.
    cfg.keep_index = false;
    let fourth = run(&db, "b", &cfg, &|_, _, _| {}).unwrap();
    assert!(!reused(&fourth));
    assert!(db.collection("b").is_err());
}
