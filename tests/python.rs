//! The server driven by clients no one here wrote: Python's grpcio, with stubs generated from
//! `connectors/proto/drift.proto` by grpcio-tools (`tests/python/client.py`), and ADBC's
//! Flight SQL driver (`tests/python/flightsql.py`). Runs when a Python with those modules is
//! present: `$DRIFT_PYTHON` (set by `scripts/test.sh`), else `python3`.

use std::path::Path;
use std::process::Command;

mod common;

/// The Python to use, if it can import `modules` (else the test is skipped; under
/// `scripts/test.sh`, which installs them, a missing module fails instead).
fn python_with(modules: &str) -> Option<String> {
    let python = std::env::var("DRIFT_PYTHON").unwrap_or_else(|_| "python3".into());
    let usable = Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !usable {
        assert!(
            std::env::var("DRIFT_PYTHON").is_err(),
            "DRIFT_PYTHON={python} cannot import {modules}"
        );
        eprintln!("skipped: {python} cannot import {modules}");
        return None;
    }
    Some(python)
}

#[test]
fn python_grpcio_client_upserts_and_searches() {
    let Some(python) = python_with("grpc, grpc_tools") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = common::serve(dir.path());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(&python)
        .arg(root.join("tests/python/client.py"))
        .arg(&addr)
        .arg(root.join("connectors/proto"))
        .output()
        .unwrap();
    common::stop(server);
    assert!(
        out.status.success(),
        "python client failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn adbc_flight_sql_client_queries_the_server() {
    let Some(python) = python_with("adbc_driver_flightsql, pyarrow") else {
        return;
    };
    const DIM: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = common::serve(dir.path());
    // A collection made and filled through the command line against the server.
    let drift = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_drift"))
            .args(["--server", &addr])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "drift {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    drift(&["collection", "create", "docs", "--dim", &DIM.to_string()]);
    let jsonl = dir.path().join("rows.jsonl");
    let rows: Vec<String> = (0..200)
        .map(|i| format!("{{\"id\": {i}, \"vector\": {:?}}}", vec![i as f32; DIM]))
        .collect();
    std::fs::write(&jsonl, rows.join("\n")).unwrap();
    drift(&["upsert", "docs", "--input", jsonl.to_str().unwrap()]);
    drift(&["flush", "docs"]);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(&python)
        .arg(root.join("tests/python/flightsql.py"))
        .arg(addr.trim_start_matches("http://"))
        .args(["docs", &DIM.to_string()])
        .output()
        .unwrap();
    common::stop(server);
    assert!(
        out.status.success(),
        "ADBC client failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
}
