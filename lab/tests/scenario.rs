//! The lab end to end through its public API: a small scenario and a small runbook replayed on
//! the index and its baselines, then rendered. Checks what was written (raw rows, CSV,
//! summary, charts) and that the measurements are the ones a reader would expect.

use std::path::Path;

mod common;

use drift_lab::driver::{RunbookDriver, ScenarioDriver};
use drift_lab::report::{read_raw, render};
use drift_lab::run::{run, RunConfig};
use drift_lab::runbook::Runbook;
use drift_lab::scenario::Scenario;
use drift_lab::transport::Direct;

const SCENARIO: &str = "
name: tiny
k: 5
seed: 3
data:
  clusters: { dim: 8, count: 6, centre_spread: 3.0, speed: 2.0, births: [{ at: 1, count: 2 }] }
engine: { target_bucket_size: 32, search: { lambda: 10 } }
steps:
  - insert: 1500
  - search: 40
  - repeat:
      times: 2
      steps: [ { drift: 1.0 }, { insert: 600 }, { delete: { oldest: 0.3 } }, { search: 40 } ]
  - maintain: 8
  - search: 40
baselines: [brute_force, static_ivf, v1]
sweep: { nprobe: [1, 64] }
";

fn png_ok(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
    assert!(
        bytes.len() > 8_000,
        "{} is nearly empty ({} bytes)",
        path.display(),
        bytes.len()
    );
}

#[test]
fn a_scenario_runs_on_every_system_and_renders() {
    let dir = tempfile::tempdir().unwrap();
    let s = Scenario::parse(SCENARIO, Path::new("tiny.yaml")).unwrap();
    let cfg = RunConfig::from_scenario(&s, dir.path()).unwrap();
    let mut driver = ScenarioDriver::new(&s).unwrap();
    let steps = std::cell::Cell::new(0);
    let out = run(&mut driver, &cfg, &Direct::open, &|done, total, _| {
        assert!(done <= total);
        steps.set(done);
    })
    .unwrap();
    assert_eq!(steps.get(), 12);
    let names = [
        "drift",
        "nprobe=1",
        "nprobe=64",
        "static-ivf",
        "v1",
        "brute-force",
    ];
    assert_eq!(out.systems, names);
    assert_eq!(out.via, "direct");

    // Raw rows first, one per step and system, readable back.
    let raw = read_raw(dir.path()).unwrap();
    assert_eq!(raw.len(), 12 * names.len());
    let key = |r: &drift_lab::record::StepRecord| {
        (r.step, r.system.clone(), r.op.clone(), r.live, r.buckets)
    };
    assert!(
        raw.iter().map(key).eq(out.records.iter().map(key)),
        "raw.jsonl holds the run's records in order"
    );

    let rows = |name: &str| -> Vec<&drift_lab::record::StepRecord> {
        out.records.iter().filter(|r| r.system == name).collect()
    };
    // The live count follows the steps: 1500, +600 then -30% of 2100, +600 then -30% of 2070.
    let live: Vec<usize> = rows("drift").iter().map(|r| r.live).collect();
    assert_eq!(live[0], 1500);
    assert_eq!(live[4], 2100 - 630);
    assert_eq!(*live.last().unwrap(), 2070 - 621);
    for r in rows("brute-force").iter().filter(|r| r.op == "search") {
        assert_eq!(
            r.recall,
            Some(1.0),
            "exact search finds the exact neighbours"
        );
        assert_eq!(r.queries, 40);
    }
    let searches = |name: &str| rows(name).into_iter().filter(|r| r.op == "search").count();
    assert_eq!(searches("drift"), 4);
    let static_last = rows("static-ivf").last().copied().unwrap().clone();
    assert_eq!((static_last.splits, static_last.merges), (Some(0), Some(0)));
    let drift_last = rows("drift").last().copied().unwrap().clone();
    assert!(
        drift_last.splits.unwrap() > 0,
        "the growing index split buckets"
    );

    let summary = render(&out, dir.path()).unwrap();
    let by = |n: &str| {
        summary
            .systems
            .iter()
            .find(|s| s.system == n)
            .unwrap()
            .clone()
    };
    assert!(by("drift").mean_recall > 0.9, "{:?}", by("drift"));
    assert!(
        by("nprobe=64").mean_recall >= by("nprobe=1").mean_recall,
        "more buckets never find less"
    );
    assert!(by("nprobe=1").buckets_per_query.unwrap() <= 1.0 + 1e-9);
    assert_eq!(summary.search_steps, 4);

    let csv = std::fs::read_to_string(dir.path().join("steps.csv")).unwrap();
    assert!(csv.starts_with("step,op,system,path,live,time,recall,queries,qps,p50_us,p95_us,p99_us,buckets,splits,merges,reassigned"));
    assert_eq!(csv.lines().count(), 1 + 12 * names.len());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(json["systems"].as_array().unwrap().len(), names.len());
    for chart in [
        "recall.png",
        "latency.png",
        "buckets.png",
        "recall_qps.png",
        "cost.png",
    ] {
        png_ok(&dir.path().join(chart));
    }
    // Engine time per query is part of the measured time on the direct path.
    for sys in &summary.systems {
        match sys.engine_qps {
            Some(engine) => assert!(engine >= 0.95 * sys.mean_qps, "{sys:?}"),
            None => assert!(sys.system == "brute-force", "{sys:?}"),
        }
    }
    let table = drift_lab::report::table(&summary);
    assert!(
        table.contains("static-ivf") && table.contains("brute-force"),
        "{table}"
    );
}

#[test]
fn a_runbook_replays_inserts_deletes_and_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let (b, q) = common::runbook_files(dir.path(), 6, 4, 1, 800, 30);
    let text = "
toy:
  max_pts: 700
  1: { operation: insert, start: 0, end: 600 }
  2: { operation: search }
  3: { operation: delete, start: 0, end: 200 }
  4: { operation: search }
  5: { operation: replace, tags_start: 200, tags_end: 300, ids_start: 600, ids_end: 700 }
  6: { operation: search }
";
    let book = Runbook::parse(text, Path::new("toy.yaml"), "toy").unwrap();
    let mut driver = RunbookDriver::new(book, &b, &q).unwrap();
    let mut cfg = common::runbook_config(
        dir.path().join("out"),
        vec![drift_lab::scenario::BaselineKind::BruteForce],
        Default::default(),
    );
    cfg.engine.search.lambda = 10.0;
    let out = run(&mut driver, &cfg, &Direct::open, &|_, _, _| {}).unwrap();
    let drift: Vec<_> = out.records.iter().filter(|r| r.system == "drift").collect();
    let live: Vec<usize> = drift.iter().map(|r| r.live).collect();
    assert_eq!(live, vec![600, 600, 400, 400, 400, 400]);
    assert_eq!(drift[4].op, "replace");
    for r in drift.iter().filter(|r| r.op == "search") {
        assert!(
            r.recall.unwrap() > 0.9,
            "step {} recall {:?}",
            r.step,
            r.recall
        );
    }
    // After the replace, ids 200..300 carry rows 600..700: the exact answers the runner
    // scores against must be those, and the brute-force system agrees with them.
    let bf: Vec<_> = out
        .records
        .iter()
        .filter(|r| r.system == "brute-force" && r.op == "search")
        .collect();
    assert!(bf.iter().all(|r| r.recall == Some(1.0)));
    let missing = RunbookDriver::new(
        Runbook::parse(
            &text
                .replace("end: 600", "end: 900")
                .replace("max_pts: 700", "max_pts: 1000"),
            Path::new("toy.yaml"),
            "toy",
        )
        .unwrap(),
        &b,
        &q,
    );
    let err = missing
        .err()
        .expect("the base file is too short")
        .to_string();
    assert!(
        err.contains("up to 900") && err.contains("has 800"),
        "{err}"
    );
}
