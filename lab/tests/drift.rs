//! The drift test of the maintenance issue: clusters whose centres move over time, a stream
//! of inserts, then deletion of the oldest half. At the same per-query scan budget, recall
//! with maintenance on must stay high while the static index (maintenance off) falls; search
//! by recall target must land just above its target.

use drift_engine::{CollectionConfig, Database, Metric, PolicyKind, Record, SearchParams};
use drift_lab::datasets::Drifting;
use drift_lab::truth::{exact_knn, recall_with_ties};

const DIM: usize = 32;
const PHASES: usize = 10;
const PER_PHASE: usize = 3000;
const QUERIES: usize = 200;
const K: usize = 10;
const TARGET: usize = 128;
const SPREAD: f32 = 2.0;
const SPEED: f32 = 1.0;

/// Overlapping clusters (centres spread 3, points spread 1), so that a query's neighbours
/// straddle several buckets and recall depends on how many are scanned.
fn data() -> Drifting {
    let mut d = Drifting::new(DIM, 16, SPEED, 7);
    d.base.centre_spread = SPREAD;
    d
}

/// Recall of each search step (after every insert phase, then after the deletion), and the
/// collection's final stats.
struct Run {
    recalls: Vec<f64>,
    buckets_per_query: Vec<f64>,
    codes_per_query: Vec<f64>,
    stats: drift_engine::CollectionStats,
}

fn run(policy: PolicyKind, params: &dyn Fn(&SearchParams) -> SearchParams) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let mut cfg = CollectionConfig::new(DIM, Metric::L2);
    cfg.settings.target_bucket_size = TARGET;
    cfg.settings.maintenance.policy = policy;
    cfg.settings.maintenance.background = false;
    let c = db.create_collection("drift", cfg).unwrap();
    let gen = data();
    let mut live: Vec<(u64, Vec<f32>)> = Vec::new();
    let mut out = Run {
        recalls: Vec::new(),
        buckets_per_query: Vec::new(),
        codes_per_query: Vec::new(),
        stats: c.stats(),
    };
    let mut search_step = |c: &drift_engine::Collection, live: &[(u64, Vec<f32>)], t: f32| {
        c.flush().unwrap();
        c.maintain(50).unwrap();
        let queries = gen.sample_at(t, QUERIES, 1000 + t as u64);
        let base: Vec<f32> = live.iter().flat_map(|(_, v)| v.iter().copied()).collect();
        let ids: Vec<u64> = live.iter().map(|(id, _)| *id).collect();
        let truth = exact_knn(Metric::L2, &base, &ids, &queries.vectors, DIM, K);
        let by_id: std::collections::HashMap<u64, &[f32]> =
            live.iter().map(|(id, v)| (*id, v.as_slice())).collect();
        let p = params(&c.search_params(K));
        let before = c.stats();
        let mut sum = 0.0;
        for qi in 0..QUERIES {
            let q = queries.row(qi);
            let got: Vec<u64> = c.search(q, &p).unwrap().iter().map(|h| h.id).collect();
            sum += recall_with_ties(&truth.neighbours[qi], &got, K, |id| {
                by_id
                    .get(&id)
                    .map(|v| drift_engine::distance::Distance::L2.eval(q, v))
            });
        }
        let after = c.stats();
        let n = (after.searches - before.searches) as f64;
        let total = |s: &drift_engine::CollectionStats, x: f64| x * s.searches as f64;
        out.buckets_per_query.push(
            (total(&after, after.mean_buckets_probed) - total(&before, before.mean_buckets_probed))
                / n,
        );
        out.codes_per_query.push(
            (total(&after, after.mean_codes_scanned) - total(&before, before.mean_codes_scanned))
                / n,
        );
        out.recalls.push(sum / QUERIES as f64);
    };
    let mut next = 0u64;
    for phase in 0..PHASES {
        let t = phase as f32;
        let rows = gen.sample_at(t, PER_PHASE, phase as u64);
        let batch: Vec<Record> = (0..PER_PHASE)
            .map(|i| Record::new(next + i as u64, rows.row(i).to_vec()))
            .collect();
        for r in &batch {
            live.push((r.id, r.vector.clone()));
        }
        next += PER_PHASE as u64;
        for chunk in batch.chunks(1000) {
            c.upsert(chunk.to_vec()).unwrap();
        }
        search_step(&c, &live, t);
    }
    // Delete the oldest half.
    let cut = next / 2;
    let old: Vec<u64> = (0..cut).collect();
    c.delete(&old).unwrap();
    live.retain(|(id, _)| *id >= cut);
    search_step(&c, &live, (PHASES - 1) as f32);
    out.stats = c.stats();
    let audit = c.audit();
    assert!(audit.problems.is_empty(), "{:?}", audit.problems);
    assert_eq!(audit.live, live.len());
    out
}

fn fmt(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.3}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn maintenance_keeps_recall_under_drift_at_the_same_scan_budget() {
    // Same budget for both: buckets in centroid order, at most this many codes per query.
    let budget = |p: &SearchParams| {
        let mut p = p.clone();
        p.nprobe = Some(10_000);
        p.max_codes = Some(8 * TARGET);
        p
    };
    let on = run(PolicyKind::Drift, &budget);
    let off = run(PolicyKind::Off, &budget);
    let inserted = (PHASES * PER_PHASE) as f64;
    println!("recall@10 per step, maintenance on : {}", fmt(&on.recalls));
    println!("recall@10 per step, maintenance off: {}", fmt(&off.recalls));
    println!("codes scanned per query, on : {}", fmt(&on.codes_per_query));
    println!(
        "codes scanned per query, off: {}",
        fmt(&off.codes_per_query)
    );
    println!(
        "maintenance on: {} buckets, {} splits, {} merges, {} compactions, {} reassigned \
         ({:.3} per inserted vector), {} rewritten ({:.2} per inserted vector), {:.0} ms; \
         off: {} buckets",
        on.stats.buckets,
        on.stats.maintenance.splits,
        on.stats.maintenance.merges,
        on.stats.maintenance.compactions,
        on.stats.maintenance.reassigned,
        on.stats.maintenance.reassigned as f64 / inserted,
        on.stats.maintenance.written,
        on.stats.maintenance.written as f64 / inserted,
        on.stats.maintenance_ms,
        off.stats.buckets,
    );
    let min_on = on.recalls.iter().copied().fold(1.0, f64::min);
    let mean_off = off.recalls.iter().sum::<f64>() / off.recalls.len() as f64;
    let last_off = *off.recalls.last().unwrap();
    assert!(min_on >= 0.95, "maintenance on fell to {min_on:.3}");
    assert!(
        last_off < min_on - 0.05 && mean_off < min_on,
        "static index did not fall measurably: last {last_off:.3}, mean {mean_off:.3}"
    );
    assert!(
        (on.stats.maintenance.reassigned as f64 / inserted) < 0.5,
        "moved {} vectors for {} inserts",
        on.stats.maintenance.reassigned,
        inserted
    );
}

#[test]
fn recall_target_lands_within_its_window() {
    for target in [0.9f32, 0.95] {
        let r = run(PolicyKind::Drift, &|p| {
            let mut p = p.clone();
            p.recall_target = Some(target);
            p
        });
        let mean = r.recalls.iter().sum::<f64>() / r.recalls.len() as f64;
        println!(
            "recall target {target}: mean recall {mean:.4}; per step {}; buckets per query {}",
            fmt(&r.recalls),
            fmt(&r.buckets_per_query)
        );
        // The window every data set must keep (issue: calibrated recall targets), its upper
        // side held to + 0.05 as in `targets.rs`: the first steps need one or two buckets, so
        // recall moves in steps. Seven runs at target 0.90 on 2026-12-06 (session 15's
        // maintenance) gave 0.920-0.932 and once 0.944; 0.95 gave 0.966-0.972.
        assert!(
            mean >= target as f64 - 0.01 && mean <= target as f64 + 0.05,
            "target {target}: mean recall {mean:.4}"
        );
    }
}
