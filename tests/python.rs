//! The gRPC server driven by a client no one here wrote: Python's grpcio, with stubs
//! generated from `connectors/proto/drift.proto` by grpcio-tools (`tests/python/client.py`).
//! Runs when a Python with grpcio is present: `$DRIFT_PYTHON` (set by `scripts/test.sh`),
//! else `python3`.

use std::path::Path;
use std::process::Command;

mod common;

#[test]
fn python_grpcio_client_upserts_and_searches() {
    let python = std::env::var("DRIFT_PYTHON").unwrap_or_else(|_| "python3".into());
    let usable = Command::new(&python)
        .args(["-c", "import grpc, grpc_tools"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !usable {
        // scripts/test.sh installs it; there a missing module is a failure, not a skip.
        assert!(
            std::env::var("DRIFT_PYTHON").is_err(),
            "DRIFT_PYTHON={python} cannot import grpc and grpc_tools"
        );
        eprintln!("skipped: {python} with grpcio and grpcio-tools is not available");
        return;
    }
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
