//! The peers (real faiss and hnswlib in the venv `scripts/peers.sh` installs) answer through
//! the adapter, are scored by the same ground truth as Drift, and `drift bench`'s report puts
//! them side by side. `scripts/test.sh` installs the venv and exports `DRIFT_PEER_PYTHON`;
//! without it (a user's plain `cargo test`) these tests skip, with it they must pass.

use std::path::Path;

mod common;

use drift_engine::{Database, Metric};
use drift_lab::bench::{best_qps, run, BenchConfig, PeerSpec};
use drift_lab::datasets::Clustered;
use drift_lab::peer::{python, Peer, PeerKind};
use drift_lab::vecfile::write_fbin;

fn peers_present() -> bool {
    if std::env::var_os("DRIFT_PEER_PYTHON").is_some() {
        assert!(
            python().exists(),
            "DRIFT_PEER_PYTHON is set but {} does not exist",
            python().display()
        );
        return true;
    }
    if python().exists() {
        return true;
    }
    eprintln!(
        "skipped: no peers venv at {} (scripts/peers.sh installs it)",
        python().display()
    );
    false
}

fn data(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let gen = Clustered::new(32, 40, 11);
    let (b, q) = (dir.join("base.fbin"), dir.join("q.fbin"));
    write_fbin(&b, &gen.sample(6000, 0).vectors, 32).unwrap();
    write_fbin(&q, &gen.sample(200, 1).vectors, 32).unwrap();
    (b, q)
}

#[test]
fn bench_scores_drift_and_the_peers_on_the_same_truth() {
    if !peers_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (base, queries) = data(dir.path());
    let db = Database::open(dir.path().join("db")).unwrap();
    let mut hnsw = PeerSpec::default_for(PeerKind::Hnswlib);
    hnsw.knobs = vec![10, 64];
    let mut sq8 = PeerSpec::default_for(PeerKind::FaissIvfSq8);
    sq8.knobs = vec![1, 8, 64];
    let cfg = BenchConfig {
        targets: vec![0.9, 0.99],
        nprobes: vec![2],
        peers: vec![hnsw, sq8],
        batch: 2000,
        warmup: 0,
        rounds: 2,
        ..BenchConfig::new(base, queries, Metric::L2)
    };
    let r = run(&db, "b", &cfg, &|_, _, _| {}).unwrap();
    let md = drift_lab::bench::markdown(&r, "test");
    println!("{md}");
    let point = |sys: &str, v: f64| {
        r.points
            .iter()
            .find(|p| p.system == sys && (p.value - v).abs() < 1e-6)
            .unwrap_or_else(|| panic!("no {sys} point at {v}"))
            .clone()
    };
    // Two rounds, one point per system and knob value (its faster round).
    assert_eq!(r.points.len(), 3 + 2 + 3, "{md}");
    // Real libraries answering with the ids they were given: high recall where they should.
    assert!(point("hnswlib", 64.0).recall >= 0.95, "{md}");
    assert!(point("faiss_ivf_sq8", 64.0).recall >= 0.9, "{md}");
    // More probing never loses recall; nprobe 1 of ~300 lists loses a lot.
    assert!(point("faiss_ivf_sq8", 1.0).recall < point("faiss_ivf_sq8", 64.0).recall);
    assert!(point("drift", 0.99).recall >= 0.98, "{md}");
    for s in &r.systems {
        assert!(s.build_s > 0.0 && s.index_bytes > 0, "{s:?}");
    }
    assert!(r.systems.iter().any(|s| s.versions.get("faiss").is_some()));
    // Ratios come from the measured points.
    let at95 = r
        .ratios
        .iter()
        .find(|x| (x.recall - 0.95).abs() < 1e-9 && x.peer == "hnswlib")
        .unwrap();
    assert_eq!(at95.drift_qps, best_qps(&r.points, "drift", 0.95));
    assert_eq!(at95.peer_qps, best_qps(&r.points, "hnswlib", 0.95));
}

#[test]
fn a_bad_request_is_named_and_the_peer_stays_usable() {
    if !peers_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (base, queries) = data(dir.path());
    let mut p = Peer::spawn(PeerKind::Hnswlib, 32, Metric::L2, &serde_json::json!({})).unwrap();
    let err = p
        .insert_rows(&dir.path().join("missing.fbin"), 0, 10)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("hnswlib") && err.contains("missing.fbin"),
        "{err}"
    );
    p.insert_rows(&base, 0, 1000).unwrap();
    p.delete(&[0, 1, 2]).unwrap();
    let a = p.search(&queries, 0, 5, 10, 32).unwrap();
    assert_eq!(a.ids.len(), 5);
    assert!(
        a.ids.iter().flatten().all(|&id| (3..1000).contains(&id)),
        "{:?}",
        a.ids
    );
    let wrong = Peer::spawn(
        PeerKind::FaissIvfFlat,
        16,
        Metric::L2,
        &serde_json::json!({}),
    );
    let mut wrong = wrong.unwrap();
    let err = wrong.insert_rows(&base, 0, 100).unwrap_err().to_string();
    assert!(err.contains("faiss_ivf_flat"), "{err}");
}

/// A scenario replayed on Drift, brute force and the three peers: every system answers every
/// search step, scored by the same truth; IVF-Flat probing every list is exact; deletes reach
/// the peers (their answers after a delete of the oldest third never hold deleted ids, or
/// their recall would drop).
#[test]
fn a_lab_run_puts_the_peers_on_the_same_steps() {
    use drift_lab::driver::ScenarioDriver;
    use drift_lab::run::{run as replay, RunConfig};
    use drift_lab::scenario::Scenario;
    use drift_lab::transport::Direct;

    if !peers_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let yaml = "
name: peers
k: 5
seed: 4
data:
  clusters: { dim: 8, count: 6, centre_spread: 3.0, speed: 1.0 }
steps:
  - insert: 1200
  - search: 30
  - drift: 1.0
  - insert: 400
  - delete: { oldest: 0.3 }
  - search: 30
baselines: [brute_force, hnswlib, faiss_ivf_sq8, faiss_ivf_flat]
peers: { hnswlib: { ef: [10, 200] }, faiss_ivf_flat: { nprobe: 100000 }, faiss_ivf_sq8: { retrain: true } }
";
    let path = dir.path().join("peers.yaml");
    std::fs::write(&path, yaml).unwrap();
    let s = Scenario::load(&path).unwrap();
    let cfg = RunConfig::from_scenario(&s, &dir.path().join("out")).unwrap();
    let mut driver = ScenarioDriver::new(&s).unwrap();
    let out = replay(&mut driver, &cfg, &Direct::open, &|_, _, _| {}).unwrap();
    assert_eq!(
        out.systems,
        [
            "drift",
            "brute-force",
            "hnswlib ef=10",
            "hnswlib ef=200",
            "faiss-ivf-sq8",
            "faiss-ivf-flat"
        ]
    );
    for name in ["hnswlib ef=200", "faiss-ivf-sq8", "faiss-ivf-flat"] {
        let searches: Vec<_> = out
            .records
            .iter()
            .filter(|r| r.system == name && r.op == "search")
            .collect();
        assert_eq!(searches.len(), 2, "{name}");
        for r in &searches {
            assert_eq!(r.path, "peer adapter");
            assert_eq!(r.queries, 30);
            let recall = r.recall.unwrap();
            let floor = if name == "faiss-ivf-flat" { 0.999 } else { 0.9 };
            assert!(recall >= floor, "{name} step {}: recall {recall}", r.step);
            assert!(r.qps.unwrap() > 0.0 && r.p99_us.unwrap() > 0.0);
        }
    }
    // The sweep's low end answers too (one peer process serves both knob values).
    let low = out
        .records
        .iter()
        .filter(|r| r.system == "hnswlib ef=10" && r.op == "search")
        .count();
    assert_eq!(low, 2);
    // The summary names the peers, and the charts (one recall-QPS curve per family) exist.
    let summary = drift_lab::report::render(&out, &cfg.out).unwrap();
    let table = drift_lab::report::table(&summary);
    assert!(
        table.contains("hnswlib ef=200") && table.contains("faiss-ivf-flat"),
        "{table}"
    );
    for chart in [
        "recall.png",
        "latency.png",
        "buckets.png",
        "recall_qps.png",
        "cost.png",
    ] {
        let len = std::fs::metadata(cfg.out.join(chart)).unwrap().len();
        assert!(len > 1000, "{chart}: {len} bytes");
    }
    // Cost on the same page: every index system reports its bytes; brute force holds none.
    for sys in &summary.systems {
        match sys.system.as_str() {
            "brute-force" => assert_eq!(sys.index_bytes, None),
            name => {
                let b = sys.index_bytes.unwrap_or(0);
                // 1,120 live 8-d vectors: at least a byte per dimension each.
                assert!(b >= 1120 * 8, "{name}: {b} bytes");
            }
        }
        assert!(
            sys.write_secs > 0.0 || sys.system == "brute-force",
            "{sys:?}"
        );
    }
}

#[test]
fn peer_settings_must_belong_to_a_listed_peer() {
    use drift_lab::scenario::Scenario;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "name: bad\ndata: { clusters: { dim: 4, count: 2 } }\nsteps: [ { insert: 10 }, { search: 2 } ]\n\
         baselines: [brute_force]\npeers: { hnswlib: { ef: 10 } }\n",
    )
    .unwrap();
    let e = Scenario::load(&path).unwrap_err().to_string();
    assert!(e.contains("peers: hnswlib is not a peer baseline"), "{e}");
    let e = drift_lab::scenario::BaselineKind::parse("faiss")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown baseline 'faiss'") && e.contains("hnswlib"),
        "{e}"
    );
}

#[test]
fn a_missing_or_wrong_interpreter_is_named_with_the_install_command() {
    // No interpreter at all.
    let refused = |python: &std::path::Path, kind: PeerKind| -> String {
        Peer::spawn_with(python, kind, 8, Metric::L2, &serde_json::json!({}))
            .err()
            .unwrap_or_else(|| panic!("{} must not start", python.display()))
            .to_string()
    };
    let missing = std::path::Path::new("/nonexistent/drift-peers/bin/python");
    let e = refused(missing, PeerKind::Hnswlib);
    assert!(
        e.contains("scripts/peers.sh") && e.contains("/nonexistent/drift-peers/bin/python"),
        "{e}"
    );
    // An interpreter that dies at once (as one without numpy does on the adapter's import).
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("python");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'ModuleNotFoundError: numpy' >&2\nexit 1\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let e = refused(&fake, PeerKind::FaissIvfSq8);
    assert!(
        e.contains("exited") && e.contains("scripts/peers.sh") && e.contains("faiss_ivf_sq8"),
        "{e}"
    );
}

#[test]
fn a_runbook_runs_the_peers_on_its_steps() {
    use drift_lab::driver::RunbookDriver;
    use drift_lab::run::run as replay;
    use drift_lab::runbook::Runbook;
    use drift_lab::scenario::BaselineKind;
    use drift_lab::transport::Direct;

    if !peers_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (b, q) = common::runbook_files(dir.path(), 8, 5, 3, 900, 40);
    let text = "
small:
  max_pts: 900
  1: { operation: insert, start: 0, end: 500 }
  2: { operation: search }
  3: { operation: insert, start: 500, end: 900 }
  4: { operation: delete, start: 0, end: 250 }
  5: { operation: search }
";
    let book = Runbook::parse(text, Path::new("small.yaml"), "small").unwrap();
    let mut driver = RunbookDriver::new(book, &b, &q).unwrap();
    let mut peers = std::collections::BTreeMap::new();
    peers.insert("hnswlib".to_string(), serde_json::json!({ "ef": 100 }));
    peers.insert(
        "faiss_ivf_flat".to_string(),
        serde_json::json!({ "nprobe": 100000 }),
    );
    let cfg = common::runbook_config(
        dir.path().join("out"),
        vec![
            BaselineKind::parse("hnswlib").unwrap(),
            BaselineKind::parse("faiss_ivf_flat").unwrap(),
        ],
        peers,
    );
    let out = replay(&mut driver, &cfg, &Direct::open, &|_, _, _| {}).unwrap();
    assert_eq!(out.systems, ["drift", "hnswlib", "faiss-ivf-flat"]);
    for name in ["hnswlib", "faiss-ivf-flat"] {
        let rows: Vec<_> = out.records.iter().filter(|r| r.system == name).collect();
        // Every runbook step, in order, with the live set the runbook implies.
        let live: Vec<usize> = rows.iter().map(|r| r.live).collect();
        assert_eq!(live, [500, 500, 900, 650, 650], "{name}");
        for r in rows.iter().filter(|r| r.op == "search") {
            assert_eq!(r.path, "peer adapter");
            // faiss IVF-Flat probing every list is exact; hnswlib at ef 100 on 900 rows nearly.
            let floor = if name == "faiss-ivf-flat" {
                0.999
            } else {
                0.95
            };
            assert!(
                r.recall.unwrap() >= floor,
                "{name} step {}: {:?}",
                r.step,
                r.recall
            );
        }
    }
    let summary = drift_lab::report::render(&out, &cfg.out).unwrap();
    assert!(drift_lab::report::table(&summary).contains("faiss-ivf-flat"));
    assert!(cfg.out.join("recall_qps.png").exists());
}
