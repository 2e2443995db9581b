//! Helpers shared by the end-to-end tests of the `drift` binary.

#![allow(dead_code)]

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Starts `drift serve` on a free port of `dir` with `extra` options; returns the child, the
/// lines it printed up to and including `listening on ADDR`, and that address. The caller
/// stops it with [`stop`].
// The child is handed to the caller, which stops and waits for it.
#[allow(clippy::zombie_processes)]
pub fn serve_with(dir: &Path, extra: &[&str]) -> (Child, Vec<String>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_drift"))
        .arg("--data-dir")
        .arg(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start drift serve");
    let mut lines = Vec::new();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            let status = child.wait().unwrap();
            panic!("drift serve exited ({status}) after printing {lines:?}");
        }
        lines.push(line.trim().to_string());
        if let Some(addr) = line.trim().strip_prefix("listening on ") {
            let addr = addr.to_string();
            return (child, lines, addr);
        }
    }
}

/// [`serve_with`] without options: the child and its address.
pub fn serve(dir: &Path) -> (Child, String) {
    let (child, _, addr) = serve_with(dir, &[]);
    (child, addr)
}

/// Sends SIGTERM and asserts a clean exit.
pub fn stop(mut server: Child) {
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    let status = server.wait().unwrap();
    assert!(status.success(), "drift serve exit: {status}");
}
