//! The `drift` binary as a user runs it: collection lifecycle, upsert from files, search
//! output, deletes, error messages, and recall on real SIFT data when the shared data sets are
//! present.

use std::path::Path;
use std::process::{Command, Output};

mod common;

use drift_lab::truth::{exact_knn, recall_with_ties};
use drift_lab::vecfile::{read_all, write_fvecs};

fn ok(dir: &Path, args: &[&str]) -> String {
    Runner { dir, server: None }.ok(args)
}

fn fails(dir: &Path, args: &[&str], needle: &str) {
    Runner { dir, server: None }.fails(args, needle)
}

/// Runs `drift` on a data directory, or against a server when `server` is set.
struct Runner<'a> {
    dir: &'a Path,
    server: Option<&'a str>,
}

impl Runner<'_> {
    fn drift(&self, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_drift"));
        c.arg("--data-dir").arg(self.dir).args(args);
        if let Some(s) = self.server {
            c.args(["--server", s]);
        }
        c.output().expect("run drift")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.drift(args);
        assert!(
            out.status.success(),
            "drift {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, args: &[&str], needle: &str) {
        let out = self.drift(args);
        assert!(!out.status.success(), "drift {args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "one line expected, got: {err}"
        );
        assert!(err.contains(needle), "stderr {err:?} lacks {needle:?}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

fn parse_csv(csv: &str) -> Vec<Vec<u64>> {
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("query,rank,id,distance"));
    let mut out: Vec<Vec<u64>> = Vec::new();
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        let q: usize = f[0].parse().unwrap();
        if out.len() <= q {
            out.resize(q + 1, Vec::new());
        }
        out[q].push(f[2].parse().unwrap());
    }
    out
}

#[test]
fn collection_lifecycle_upsert_search_delete() {
    let dir = tempfile::tempdir().unwrap();
    lifecycle(&Runner {
        dir: dir.path(),
        server: None,
    });
}

#[test]
fn the_same_commands_work_against_a_server() {
    let served = tempfile::tempdir().unwrap();
    let (server, addr) = common::serve(served.path());
    // The client's own directory stays untouched: files only.
    let client = tempfile::tempdir().unwrap();
    lifecycle(&Runner {
        dir: client.path(),
        server: Some(&addr),
    });
    Runner {
        dir: client.path(),
        server: Some(&addr),
    }
    .fails(&["demo"], "data directory only");
    assert!(!client.path().join("collections").exists());
    common::stop(server);
    let unreachable = Runner {
        dir: client.path(),
        server: Some("127.0.0.1:1"),
    };
    unreachable.fails(&["collection", "list"], "cannot reach server 127.0.0.1:1");
}

/// Create, upsert, search, delete, stats, flush, errors and drop, through `r`.
fn lifecycle(r: &Runner) {
    let d = r.dir;
    r.ok(&["collection", "create", "docs", "--dim", "4"]);
    r.fails(
        &["collection", "create", "docs", "--dim", "4"],
        "already exists",
    );
    r.fails(
        &["collection", "create", "a/b", "--dim", "4"],
        "invalid collection name",
    );
    r.fails(
        &[
            "collection",
            "create",
            "x",
            "--dim",
            "4",
            "--metric",
            "hamming",
        ],
        "unknown metric",
    );

    let data: Vec<f32> = (0..400)
        .map(|i| (i / 4) as f32 + (i % 4) as f32 * 0.01)
        .collect();
    let file = d.join("v.fvecs");
    write_fvecs(&file, &data, 4).unwrap();
    r.ok(&[
        "upsert",
        "docs",
        "--input",
        file.to_str().unwrap(),
        "--id-offset",
        "1000",
    ]);
    let jsonl = d.join("p.jsonl");
    std::fs::write(
        &jsonl,
        "{\"id\": 5, \"vector\": [500, 500, 500, 500], \"payload\": {\"title\": \"far\"}}\n",
    )
    .unwrap();
    r.ok(&["upsert", "docs", "--input", jsonl.to_str().unwrap()]);
    assert!(r
        .ok(&["collection", "list"])
        .contains("docs\tdim=4\tmetric=l2\tvectors=101"));

    let q = d.join("q.fvecs");
    write_fvecs(
        &q,
        &[10.0, 10.01, 10.02, 10.03, 499.0, 499.0, 499.0, 499.0],
        4,
    )
    .unwrap();
    let csv = r.ok(&["search", "docs", "--query", q.to_str().unwrap(), "-k", "3"]);
    let res = parse_csv(&csv);
    assert_eq!(res[0][0], 1010);
    assert_eq!(res[1][0], 5);
    let json = r.ok(&[
        "search",
        "docs",
        "--query",
        q.to_str().unwrap(),
        "-k",
        "1",
        "--output",
        "json",
        "--with-payload",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[1]["id"], 5);
    assert_eq!(v[1]["payload"]["title"], "far");

    assert!(r
        .ok(&["delete", "docs", "--id-range", "1010..1020"])
        .contains("deleted 10 of 10"));
    assert!(r
        .ok(&["delete", "docs", "--ids", "5,77"])
        .contains("deleted 1 of 2"));
    let res = parse_csv(&r.ok(&["search", "docs", "--query", q.to_str().unwrap(), "-k", "1"]));
    assert!(!(1010..1020).contains(&res[0][0]));
    r.fails(&["get", "docs", "5"], "id 5 is not in collection 'docs'");
    assert!(r.ok(&["get", "docs", "1020"]).contains("\"id\":1020"));

    let stats: serde_json::Value =
        serde_json::from_str(&r.ok(&["collection", "stats", "docs", "--json"])).unwrap();
    assert_eq!(stats["live_vectors"], 90);
    r.ok(&["flush", "docs"]);
    assert!(r
        .ok(&["maintain", "docs", "--passes", "2"])
        .contains("passes (drift policy)"));
    r.fails(&["maintain", "nope"], "collection 'nope' does not exist");
    // SQL in process, or through Flight SQL on the server: pgvector's operator after a SET
    // (which a server session replays), and errors that name their cause.
    let nearest = r.ok(&[
        "sql",
        "--output",
        "csv",
        "-e",
        "SET drift.nprobe = 4; SELECT id FROM docs ORDER BY vector <-> '[20, 20.01, 20.02, 20.03]' LIMIT 1",
    ]);
    assert_eq!(nearest.trim(), "id\n1020", "{nearest}");
    r.fails(&["sql", "-e", "SELECT id FROM nope"], "nope");
    r.fails(&["sql", "-e", "SELEC 1"], "SELEC");

    r.fails(
        &["search", "nope", "--query", q.to_str().unwrap()],
        "collection 'nope' does not exist",
    );
    let q3 = d.join("q3.fvecs");
    write_fvecs(&q3, &[1.0, 2.0, 3.0], 3).unwrap();
    r.fails(
        &["search", "docs", "--query", q3.to_str().unwrap()],
        "dimension 3",
    );
    r.fails(
        &["search", "docs", "--query", q.to_str().unwrap(), "-k", "0"],
        "k must be in",
    );
    // Any search option as key=value, through the data directory and the server alike.
    r.fails(
        &[
            "search",
            "docs",
            "--query",
            q.to_str().unwrap(),
            "--options",
            "ef=8",
        ],
        "unknown search option 'ef'",
    );
    r.fails(
        &[
            "search",
            "docs",
            "--query",
            q.to_str().unwrap(),
            "--options",
            "max_probes=0",
        ],
        "max_probes=\"0\": must be at least 1",
    );
    let tuned = parse_csv(&r.ok(&[
        "search",
        "docs",
        "--query",
        q.to_str().unwrap(),
        "-k",
        "2",
        "--options",
        "max_probes=4,ef_search=32,scoring=linear",
    ]));
    assert_eq!(tuned.len(), 2);
    assert!(tuned.iter().all(|hits| hits.len() == 2), "{tuned:?}");
    r.fails(
        &["delete", "docs", "--id-range", "9..3"],
        "ends before it starts",
    );
    let bad = d.join("bad.fvecs");
    std::fs::write(&bad, [4u8, 0, 0, 0, 1, 2]).unwrap();
    r.fails(
        &["upsert", "docs", "--input", bad.to_str().unwrap()],
        "file ends inside row 0",
    );
    let nan = d.join("nan.jsonl");
    std::fs::write(&nan, "{\"id\": 1, \"vector\": [1, 2, 3, 1e999]}\n").unwrap();
    let out = r.drift(&["upsert", "docs", "--input", nan.to_str().unwrap()]);
    assert!(!out.status.success());
    r.ok(&["collection", "drop", "docs"]);
    assert_eq!(r.ok(&["collection", "list"]), "");
}

#[test]
fn a_reader_that_goes_away_ends_the_command_quietly() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), &["collection", "create", "--dim", "2", "c"]);
    // `drift ... | head -0`: stdout is closed before drift writes its many lines.
    let mut child = Command::new(env!("CARGO_BIN_EXE_drift"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["collection", "stats", "c"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("internal error"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        matches!(out.status.code(), Some(0) | Some(141)),
        "{:?}",
        out.status
    );
}

#[test]
fn second_process_is_refused_while_the_directory_is_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let _held = drift_engine::Database::open(dir.path()).unwrap();
    fails(
        dir.path(),
        &["collection", "list"],
        "locked by another process",
    );
}

#[test]
fn sift_recall_through_the_cli() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    let (base, queries) = (
        data.join("sift5k_base.fvecs"),
        data.join("siftsmall_query.fvecs"),
    );
    if !base.exists() {
        eprintln!(
            "skipped: {} not found (the shared data sets are not part of a clone)",
            base.display()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["collection", "create", "sift", "--dim", "128"]);
    ok(d, &["upsert", "sift", "--input", base.to_str().unwrap()]);
    // Into L1 buckets (5k rows stay in the memtable otherwise), then let maintenance settle.
    ok(d, &["flush", "sift"]);
    let maintained = ok(d, &["maintain", "sift", "--passes", "10"]);
    assert!(maintained.contains("policy"), "{maintained}");
    let (bv, dim) = read_all(&base).unwrap();
    let (qv, _) = read_all(&queries).unwrap();
    let ids: Vec<u64> = (0..(bv.len() / dim) as u64).collect();
    let truth = exact_knn(drift_engine::Metric::L2, &bv, &ids, &qv, dim, 10);
    let recall_of = |extra: &[&str]| {
        let q = queries.to_str().unwrap();
        let mut args = vec!["search", "sift", "--query", q, "-k", "10"];
        args.extend_from_slice(extra);
        let got = parse_csv(&ok(d, &args));
        assert_eq!(got.len(), 100);
        let mut recall = 0.0;
        for (qi, res) in got.iter().enumerate() {
            let q = &qv[qi * dim..(qi + 1) * dim];
            recall += recall_with_ties(&truth.neighbours[qi], res, 10, |id| {
                let r = id as usize;
                Some(drift_engine::distance::Distance::L2.eval(q, &bv[r * dim..(r + 1) * dim]))
            });
        }
        recall / got.len() as f64
    };
    let recall = recall_of(&[]);
    let targeted = recall_of(&["--recall-target", "0.99"]);
    let stats = ok(d, &["collection", "stats", "sift", "--json"]);
    println!(
        "SIFT 5k via CLI (flushed to L1): recall@10 = {recall:.4} at default settings, \
         {targeted:.4} with --recall-target 0.99; stats {stats}"
    );
    assert!(targeted >= 0.97, "recall target 0.99 gave {targeted}");
    assert!(recall >= 0.95, "recall {recall}");
}

#[test]
fn sql_over_a_collection() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["collection", "create", "docs", "--dim", "2"]);
    let jsonl = d.join("docs.jsonl");
    std::fs::write(
        &jsonl,
        "{\"id\": 1, \"vector\": [0, 0], \"payload\": {\"t\": \"origin\"}}\n\
         {\"id\": 2, \"vector\": [1, 0]}\n{\"id\": 3, \"vector\": [5, 5]}\n",
    )
    .unwrap();
    ok(d, &["upsert", "docs", "--input", jsonl.to_str().unwrap()]);
    let table = ok(
        d,
        &[
            "sql",
            "-e",
            "SELECT id, _distance FROM vector_search('docs', [0.9, 0.1], 2)",
        ],
    );
    assert!(table.contains("| id | _distance"), "{table}");
    assert!(table.lines().nth(3).unwrap().contains("| 2  |"), "{table}");
    let csv = ok(
        d,
        &[
            "sql",
            "--output",
            "csv",
            "-e",
            "SELECT id, vector FROM docs ORDER BY l2_distance(vector, [5.0, 4.0]) LIMIT 1",
        ],
    );
    assert_eq!(csv.trim(), "id,vector\n3,\"[5.0, 5.0]\"");
    // pgvector's operator and text vectors, several statements in one call.
    let csv = ok(
        d,
        &[
            "sql",
            "--output",
            "csv",
            "-e",
            "SELECT id FROM docs ORDER BY vector <-> '[5, 4]' LIMIT 1; \
             SELECT id FROM docs ORDER BY vector <-> [0.9, 0.1] LIMIT 1",
        ],
    );
    assert_eq!(csv.trim(), "id\n3\nid\n2", "{csv}");
    fails(
        d,
        &[
            "sql",
            "-e",
            "SELECT id FROM docs ORDER BY vector <-> '[5, x]' LIMIT 1",
        ],
        "not a vector literal",
    );
    let json = ok(
        d,
        &[
            "sql",
            "--output",
            "json",
            "-e",
            "SELECT id, payload FROM docs WHERE id = 1",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v[0]["payload"], "{\"t\":\"origin\"}");
    fails(d, &["sql", "-e", "SELEC 1"], "SQL error");
    fails(
        d,
        &[
            "sql",
            "-e",
            "SELECT * FROM vector_search('nope', [1.0, 2.0], 1)",
        ],
        "'nope' does not exist",
    );
}

/// `drift lab run` through the whole pipeline: writes go to a topic of the embedded Kafka
/// cluster and through the sink, searches through SQL; the results say so.
#[test]
fn lab_run_goes_through_kafka_and_sql() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("s.yaml");
    std::fs::write(
        &scenario,
        "name: cli-lab
k: 5
data: { clusters: { dim: 8, count: 5, centre_spread: 3.0, speed: 1.0 } }
engine: { target_bucket_size: 32, search: { lambda: 10 } }
run: { via: kafka }
steps:
  - insert: 1200
  - search: 30
  - drift: 1.0
  - insert: 400
  - delete: { oldest: 0.25 }
  - search: 30
baselines: [static_ivf, brute_force]
",
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = ok(
        dir.path(),
        &[
            "lab",
            "run",
            scenario.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(out.contains("cli-lab via kafka+sql"), "{out}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["via"], "kafka+sql");
    let systems = summary["systems"].as_array().unwrap();
    assert_eq!(systems[0]["system"], "drift");
    assert_eq!(systems[0]["path"], "kafka+sql");
    assert_eq!(systems[2]["path"], "in-process");
    assert!(
        systems[0]["mean_recall"].as_f64().unwrap() > 0.9,
        "{summary}"
    );
    // The path's cost shows as its own column: the engine alone answers faster than the
    // whole kafka+sql path, and brute force (in process) has no engine figure.
    let (qps, engine) = (
        systems[0]["mean_qps"].as_f64().unwrap(),
        systems[0]["engine_qps"].as_f64().unwrap(),
    );
    assert!(engine > qps, "engine {engine} vs path {qps}");
    assert!(systems[2]["engine_qps"].is_null(), "{summary}");
    let csv = std::fs::read_to_string(out_dir.join("steps.csv")).unwrap();
    // 6 steps x 3 systems; the live count after the delete is 1600 - 400.
    assert_eq!(csv.lines().count(), 1 + 18);
    assert!(
        csv.lines()
            .any(|l| l.starts_with("5,delete,drift,kafka+sql,1200,")),
        "{csv}"
    );
    for chart in [
        "recall.png",
        "latency.png",
        "buckets.png",
        "recall_qps.png",
        "cost.png",
    ] {
        assert!(std::fs::metadata(out_dir.join(chart)).unwrap().len() > 8_000);
    }
}

#[test]
fn lab_errors_name_the_file_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "name: x\nk: 10\nsteps:\n  - insert: 10\n  - serch: 5\n",
    )
    .unwrap();
    fails(dir.path(), &["lab", "run", bad.to_str().unwrap()], "line 5");
    fails(
        dir.path(),
        &["lab", "run", bad.to_str().unwrap()],
        "unknown variant `serch`",
    );
    let book = dir.path().join("rb.yaml");
    std::fs::write(&book, "a:\n  max_pts: 5\n  1: { operation: search }\n").unwrap();
    fails(
        dir.path(),
        &[
            "lab",
            "runbook",
            book.to_str().unwrap(),
            "--dataset",
            "b",
            "--base",
            "x.fbin",
            "--queries",
            "y.fbin",
        ],
        "no runbook for data set \"b\" (the file has: a)",
    );
    fails(
        dir.path(),
        &[
            "lab",
            "runbook",
            book.to_str().unwrap(),
            "--dataset",
            "a",
            "--base",
            "missing.fbin",
            "--queries",
            "y.fbin",
        ],
        "missing.fbin",
    );
}

#[test]
fn a_collection_with_a_damaged_log_is_listed_then_repaired_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["collection", "create", "docs", "--dim", "4"]);
    ok(d, &["collection", "create", "other", "--dim", "4"]);
    let jsonl = d.join("p.jsonl");
    let lines: String = (0..40)
        .map(|i| format!("{{\"id\": {i}, \"vector\": [{i}, 1, 2, 3]}}\n"))
        .collect();
    std::fs::write(&jsonl, lines).unwrap();
    for name in ["docs", "other"] {
        for _ in 0..3 {
            ok(d, &["upsert", name, "--input", jsonl.to_str().unwrap()]);
        }
    }
    // Damage in the middle of the log: the collection is set aside, the other is served.
    let wal = d.join("collections/docs/wal");
    let newest = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let mut data = std::fs::read(&newest).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x77;
    std::fs::write(&newest, data).unwrap();
    let listed = ok(d, &["collection", "list"]);
    assert!(listed.contains("docs\tUNAVAILABLE"), "{listed}");
    assert!(listed.contains("other\tdim=4"), "{listed}");
    // The open logs the damage; the command fails naming the file and offset.
    let out = Runner {
        dir: d,
        server: None,
    }
    .drift(&["collection", "stats", "docs"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("unavailable") && err.contains(".wal at offset"),
        "{err}"
    );
    let out = ok(d, &["collection", "repair", "docs"]);
    assert!(out.contains("repaired: cut WAL file"), "{out}");
    assert!(out.contains("opens again with"), "{out}");
    assert!(ok(d, &["collection", "list"]).contains("docs\tdim=4"));
    let again = ok(d, &["collection", "repair", "docs"]);
    assert!(again.contains("nothing to repair"), "{again}");
    fails(d, &["collection", "repair", "nope"], "does not exist");
}

/// Writes a `.npy` file (see [`drift_lab::vecfile::npy_bytes`]).
fn write_npy(path: &Path, descr: &str, shape: &str, body: &[u8]) {
    std::fs::write(path, drift_lab::vecfile::npy_bytes(descr, shape, body)).unwrap();
}

#[test]
fn upsert_reads_numpy_files_and_names_what_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let r = Runner {
        dir: dir.path(),
        server: None,
    };
    r.ok(&["collection", "create", "n", "--dim", "3"]);
    let vals: Vec<f32> = (0..6).map(|i| i as f32 * 0.5).collect();
    let f32s: Vec<u8> = vals.iter().flat_map(|x| x.to_le_bytes()).collect();
    let good = dir.path().join("v.npy");
    write_npy(&good, "<f4", "(2, 3)", &f32s);
    assert!(r
        .ok(&[
            "upsert",
            "n",
            "--input",
            good.to_str().unwrap(),
            "--id-offset",
            "10"
        ])
        .contains("upserted 2 vectors"));
    assert!(r.ok(&["get", "n", "11"]).contains("[1.5,2.0,2.5]"));
    // f16, as the shared PyPI set is stored.
    let halves: Vec<u8> = [0x3c00u16, 0x4000, 0x4200]
        .iter()
        .flat_map(|h| h.to_le_bytes())
        .collect();
    let f16 = dir.path().join("h.npy");
    write_npy(&f16, "<f2", "(1, 3)", &halves);
    r.ok(&[
        "upsert",
        "n",
        "--input",
        f16.to_str().unwrap(),
        "--id-offset",
        "20",
    ]);
    assert!(r.ok(&["get", "n", "20"]).contains("[1.0,2.0,3.0]"));
    // Wrong dtype, wrong shape, wrong dimension: refused by name, nothing written.
    let ints = dir.path().join("i.npy");
    write_npy(&ints, "<i8", "(1, 3)", &[0u8; 24]);
    r.fails(&["upsert", "n", "--input", ints.to_str().unwrap()], "<i8");
    let flat = dir.path().join("f.npy");
    write_npy(&flat, "<f4", "(6,)", &f32s);
    r.fails(&["upsert", "n", "--input", flat.to_str().unwrap()], "2-D");
    let wide = dir.path().join("w.npy");
    write_npy(&wide, "<f4", "(1, 6)", &f32s);
    r.fails(
        &["upsert", "n", "--input", wide.to_str().unwrap()],
        "dimension",
    );
    assert!(r
        .ok(&["collection", "list"])
        .contains("n\tdim=3\tmetric=l2\tvectors=3"));
}
