//! Recall calibration and the live recall monitor through the public API: the calibration
//! is fitted at the first flush and survives a re-open; monitored searches measure the same
//! recall an outside brute force does; when the workload's queries differ from the stored
//! rows, the monitor refits from them and the measured recall moves into its band.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use drift_engine::{CollectionConfig, Database, Metric, Record};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

const DIM: usize = 16;

/// Clustered rows: 40 centres, unit spread.
fn clustered(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let centres: Vec<f32> = (0..40 * DIM).map(|_| rng.gen_range(-8.0..8.0)).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let noise = Normal::new(0.0f32, 1.0).unwrap();
    let mut out = Vec::with_capacity(n * DIM);
    for _ in 0..n {
        let c = rng.gen_range(0..40);
        for d in 0..DIM {
            out.push(centres[c * DIM + d] + noise.sample(&mut rng));
        }
    }
    out
}

fn config() -> CollectionConfig {
    let mut c = CollectionConfig::new(DIM, Metric::L2);
    c.settings.target_bucket_size = 64;
    c.settings.maintenance.background = false;
    c.settings.recall.monitor_rate = 1.0;
    c.settings.recall.monitor_cpu = 1.0;
    c
}

fn load(c: &drift_engine::Collection, data: &[f32]) {
    let recs: Vec<Record> = data
        .chunks_exact(DIM)
        .enumerate()
        .map(|(i, v)| Record::new(i as u64, v.to_vec()))
        .collect();
    for batch in recs.chunks(2000) {
        c.upsert(batch.to_vec()).unwrap();
    }
    c.flush().unwrap();
}

/// Exact recall@10 of `ids` for query `q` over `data` (ties count).
fn true_recall(data: &[f32], q: &[f32], ids: &[u64]) -> f64 {
    let mut d: Vec<(f32, u64)> = data
        .chunks_exact(DIM)
        .enumerate()
        .map(|(i, v)| {
            (
                v.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum(),
                i as u64,
            )
        })
        .collect();
    d.sort_by(|a, b| a.0.total_cmp(&b.0));
    let kth = d[9].0 * (1.0 + 1e-6) + 1e-12;
    let near: HashSet<u64> = d.iter().take_while(|x| x.0 <= kth).map(|x| x.1).collect();
    ids.iter().take(10).filter(|i| near.contains(i)).count() as f64 / 10.0
}

fn wait_monitored(c: &drift_engine::Collection, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.stats().recall.monitored < n {
        assert!(
            Instant::now() < deadline,
            "monitor fell behind: {:?}",
            c.stats().recall
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn calibration_is_fitted_at_first_flush_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let data = clustered(8000, 1);
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.create_collection("c", config()).unwrap();
        assert!(c.calibration().is_none());
        load(&c, &data);
        let cal = c.calibration().expect("calibrated at the first flush");
        assert_eq!(cal.source, "rows");
        assert!(cal.queries >= 32 && cal.rows == 8000, "{cal:?}");
        // Alpha never falls as the target rises.
        assert!(
            cal.points.windows(2).all(|w| w[1].alpha >= w[0].alpha),
            "{cal:?}"
        );
        assert_eq!(c.stats().recall.calibrations, 1);
    }
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("c").unwrap();
    let st = c.stats().recall;
    assert!(st.calibrated, "calibration read back");
    assert_eq!(st.calibrations, 0, "no refit needed after re-open");
    assert_eq!(st.target, Some(0.95));
}

#[test]
fn calibration_queries_are_held_out_rows_and_the_fit_is_provisional() {
    use drift_engine::ivf::{held_out, HOLD_OUT};
    // One id in HOLD_OUT, sequential ids included.
    let share = (0..100_000u64).filter(|&i| held_out(i)).count() as f64 / 100_000.0;
    let want = 1.0 / HOLD_OUT as f64;
    assert!((share - want).abs() < 0.15 * want, "held-out share {share}");

    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db.create_collection("c", config()).unwrap();
    let data = clustered(8000, 6);
    load(&c, &data);
    let cal = c.calibration().unwrap();
    let held = (0..8000u64).filter(|&i| held_out(i)).count();
    assert!(
        cal.queries >= 32 && cal.queries <= held,
        "{cal:?} ({held} held out)"
    );
    // Provisional: a search for 0.9 is stretched as the fit's 0.95.
    assert!(cal.provisional());
    assert_eq!(cal.search_alpha(0.9), cal.alpha(0.95));
    // Real queries (new draws) replace it once the monitor has kept enough of them.
    let queries = clustered(250, 7);
    let params = c.search_params(10);
    for q in queries.chunks_exact(DIM) {
        c.search(q, &params).unwrap();
    }
    wait_monitored(&c, 250);
    let cal = c.calibration().unwrap();
    assert_eq!(cal.source, "queries", "{cal:?}");
    assert!(!cal.provisional());
    assert_eq!(cal.search_alpha(0.9), cal.alpha(0.9));
    assert!(c.stats().recall.refits_from_queries >= 1);
}

#[test]
fn monitor_measures_what_brute_force_measures() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    // Calibration off: the monitor only measures (no refit restarts its window).
    let mut cfg = config();
    cfg.settings.recall.calibrate = false;
    let c = db.create_collection("c", cfg).unwrap();
    let data = clustered(8000, 2);
    load(&c, &data);
    let queries = clustered(150, 3);
    let params = c.search_params(10);
    let mut outside = 0.0;
    for q in queries.chunks_exact(DIM) {
        let hits = c.search(q, &params).unwrap();
        let ids: Vec<u64> = hits.iter().map(|h| h.id).collect();
        outside += true_recall(&data, q, &ids);
    }
    outside /= 150.0;
    wait_monitored(&c, 150);
    let st = c.stats().recall;
    let measured = st.measured.unwrap();
    println!(
        "outside {outside:.4}, monitor {measured:.4} [{:?}, {:?}]",
        st.ci_low, st.ci_high
    );
    assert_eq!(st.window, 150, "{st:?}");
    assert!((measured - outside).abs() < 1e-6, "{st:?}");
    assert!(st.ci_low.unwrap() <= measured && measured <= st.ci_high.unwrap());
    assert!(st.monitor_ms > 0.0);
}

#[test]
fn monitor_refits_from_real_queries_when_recall_leaves_its_band() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db.create_collection("c", config()).unwrap();
    let data = clustered(8000, 4);
    load(&c, &data);
    // Queries between the clusters: unlike any stored row, so the rows' calibration is off.
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let queries: Vec<f32> = (0..400 * DIM).map(|_| rng.gen_range(-8.0..8.0)).collect();
    let mut params = c.search_params(10);
    params.recall_target = Some(0.9);
    let run = |from: usize, to: usize| {
        let mut r = 0.0;
        for q in queries.chunks_exact(DIM).skip(from).take(to - from) {
            let hits = c.search(q, &params).unwrap();
            let ids: Vec<u64> = hits.iter().map(|h| h.id).collect();
            r += true_recall(&data, q, &ids);
        }
        r / (to - from) as f64
    };
    let before = run(0, 200);
    wait_monitored(&c, 200);
    let st = c.stats().recall;
    let after = run(200, 400);
    println!(
        "target 0.9: before {before:.4}, after {after:.4}, refits {}",
        st.refits_from_queries
    );
    // 200 monitored queries replace the provisional fit from rows, whatever its recall.
    assert!(st.refits_from_queries >= 1, "{st:?}");
    assert_eq!(c.calibration().unwrap().source, "queries");
    let band = |r: f64| (0.89..=0.94).contains(&r);
    assert!(
        band(after) || (after - 0.91).abs() < (before - 0.91).abs(),
        "before {before:.4}, after {after:.4}"
    );
}

#[test]
fn the_monitor_reads_a_reopened_collection_from_its_mapped_copies() {
    let dir = tempfile::tempdir().unwrap();
    let data = clustered(8000, 2);
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.create_collection("c", config()).unwrap();
        load(&c, &data);
    }
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("c").unwrap();
    // Only a handful of buckets are probed, so most chunks are first read by the monitor's
    // exact re-runs.
    let params = c.search_params(10);
    for q in clustered(40, 3).chunks_exact(DIM) {
        c.search(q, &params).unwrap();
    }
    wait_monitored(&c, 40);
    let st = c.stats();
    assert_eq!(st.storage.block_cache_bytes, 0, "{:?}", st.storage);
    assert_eq!(st.memory.cache, 0);
}
