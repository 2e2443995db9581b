//! Peers: the real faiss and hnswlib libraries, run in a Python process (`scripts/peers.py`,
//! installed into a venv by the project's `scripts/peers.sh`) and driven over a JSON line
//! protocol. Vectors travel as file paths and row ranges, so a peer reads the very bytes Drift
//! reads; answers come back as ids and per-query latencies, and the lab scores them against
//! the same ground truth as Drift.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use drift_engine::Metric;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{LabError, Result};

/// The adapter script, embedded so that an installed binary carries it.
const SCRIPT: &str = include_str!("../scripts/peers.py");

/// A peer system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerKind {
    /// hnswlib HNSW (knob: ef; deletes by `mark_deleted`).
    Hnswlib,
    /// faiss `IndexIVFScalarQuantizer` with 8-bit codes (knob: nprobe).
    FaissIvfSq8,
    /// faiss `IndexIVFFlat` (knob: nprobe).
    FaissIvfFlat,
}

impl PeerKind {
    /// Every peer.
    pub const ALL: [PeerKind; 3] = [
        PeerKind::Hnswlib,
        PeerKind::FaissIvfSq8,
        PeerKind::FaissIvfFlat,
    ];

    /// The name used in `--baselines`, scenario YAML and reports.
    pub fn name(self) -> &'static str {
        match self {
            PeerKind::Hnswlib => "hnswlib",
            PeerKind::FaissIvfSq8 => "faiss_ivf_sq8",
            PeerKind::FaissIvfFlat => "faiss_ivf_flat",
        }
    }

    /// The peer called `name`, if any.
    pub fn parse(name: &str) -> Option<PeerKind> {
        PeerKind::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Name of the search knob the sweep varies.
    pub fn knob(self) -> &'static str {
        match self {
            PeerKind::Hnswlib => "ef",
            _ => "nprobe",
        }
    }
}

/// Sizes and build cost a peer reports.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct PeerStats {
    /// Index bytes by the library's own layout (codes or vectors, links, ids, centroids).
    pub bytes: u64,
    /// Growth of the peer process's resident memory since `open`.
    pub rss_growth: u64,
    /// Seconds spent in inserts and deletes.
    pub build_s: f64,
}

/// Answers to one batch of queries.
#[derive(Debug, Clone)]
pub struct PeerAnswers {
    /// Ids per query, nearest first.
    pub ids: Vec<Vec<u64>>,
    /// Latency per query, nanoseconds (one query per call, single thread).
    pub ns: Vec<u64>,
}

/// The Python interpreter of the peers' venv: `DRIFT_PEER_PYTHON`, else
/// `$DRIFT_TOOLS/peers/bin/python`, else `~/.cache/drift-tools/peers/bin/python`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("DRIFT_PEER_PYTHON") {
        return PathBuf::from(p);
    }
    let tools = std::env::var_os("DRIFT_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
            Path::new(&home).join(".cache/drift-tools")
        });
    tools.join("peers/bin/python")
}

/// One running peer index.
pub struct Peer {
    kind: PeerKind,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    _script: TempScript,
    /// Library versions the peer reported.
    pub versions: Value,
}

/// The adapter script, written to a temporary file for the child's lifetime.
struct TempScript(PathBuf);

impl Drop for TempScript {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn metric_name(m: Metric) -> &'static str {
    match m {
        Metric::L2 => "l2",
        Metric::Cosine => "cosine",
        Metric::InnerProduct => "ip",
    }
}

impl Peer {
    /// Starts a peer process and opens an empty index of `kind` with `params` (see
    /// `scripts/peers.py` for the keys each system takes).
    pub fn spawn(kind: PeerKind, dim: usize, metric: Metric, params: &Value) -> Result<Peer> {
        Peer::spawn_with(&python(), kind, dim, metric, params)
    }

    /// [`Peer::spawn`] with the Python interpreter `py` instead of [`python`]'s.
    pub fn spawn_with(
        py: &Path,
        kind: PeerKind,
        dim: usize,
        metric: Metric,
        params: &Value,
    ) -> Result<Peer> {
        if !py.exists() {
            return Err(LabError::Invalid(format!(
                "peer {} needs the peers' Python venv, not found at {} \
                 (run scripts/peers.sh, or set DRIFT_PEER_PYTHON)",
                kind.name(),
                py.display()
            )));
        }
        let script = std::env::temp_dir().join(format!(
            "drift-peers-{}-{}.py",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::write(&script, SCRIPT).map_err(|e| LabError::io(&script, e))?;
        let script = TempScript(script);
        let mut child = Command::new(py)
            .arg(&script.0)
            .env("OMP_NUM_THREADS", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| LabError::io(py, e))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut peer = Peer {
            kind,
            child,
            stdin,
            stdout,
            _script: script,
            versions: Value::Null,
        };
        let reply = peer
            .call(json!({
                "op": "open", "system": kind.name(), "dim": dim,
                "metric": metric_name(metric), "params": params,
            }))
            .map_err(|e| {
                // An interpreter that is not the peers' venv dies on an import, or answers
                // that a module is missing: say which interpreter and how to get the venv.
                if peer.exited() || e.to_string().contains("No module named") {
                    LabError::Invalid(format!(
                        "{e}; is {} the peers' venv (numpy, faiss, hnswlib)? run scripts/peers.sh, or set DRIFT_PEER_PYTHON",
                        py.display()
                    ))
                } else {
                    e
                }
            })?;
        peer.versions = reply.get("versions").cloned().unwrap_or(Value::Null);
        Ok(peer)
    }

    /// Which system this is.
    pub fn kind(&self) -> PeerKind {
        self.kind
    }

    /// The process's exit status if it has exited or does so within half a second (a peer
    /// whose pipe closed is on its way out).
    fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        for _ in 0..50 {
            if let Some(s) = self.child.try_wait().ok().flatten() {
                return Some(s);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        None
    }

    /// Whether the process has exited (see [`Peer::exit_status`]).
    fn exited(&mut self) -> bool {
        self.exit_status().is_some()
    }

    fn call(&mut self, cmd: Value) -> Result<Value> {
        let name = self.kind.name();
        let gone = |what: &str| LabError::Invalid(format!("peer {name}: {what}"));
        if let Err(e) = writeln!(self.stdin, "{cmd}").and_then(|_| self.stdin.flush()) {
            // A closed pipe is a process on its way out: name how it ended if it did.
            return Err(gone(&match self.exit_status() {
                Some(s) => format!("process exited ({s}) before taking a request ({e})"),
                None => format!("could not send a request ({e})"),
            }));
        }
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .map_err(|e| gone(&format!("unreadable reply ({e})")))?;
        if n == 0 {
            return Err(gone(&match self.exit_status() {
                Some(s) => format!("process exited ({s}) without a reply"),
                None => "process closed its output without a reply".to_string(),
            }));
        }
        let reply: Value = serde_json::from_str(&line)
            .map_err(|e| gone(&format!("reply is not JSON ({e}): {}", line.trim())))?;
        if reply.get("ok") != Some(&Value::Bool(true)) {
            let why = reply
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("no reason given");
            return Err(gone(why));
        }
        Ok(reply)
    }

    /// Inserts rows `start..end` of `file`; their ids are their row numbers.
    pub fn insert_rows(&mut self, file: &Path, start: u64, end: u64) -> Result<()> {
        self.call(json!({"op": "insert", "file": file, "start": start, "end": end}))
            .map(drop)
    }

    /// Inserts every row of `file` with the given ids.
    pub fn insert_ids(&mut self, file: &Path, ids: &[u64]) -> Result<()> {
        self.call(json!({"op": "insert", "file": file, "ids": ids}))
            .map(drop)
    }

    /// Deletes `ids`.
    pub fn delete(&mut self, ids: &[u64]) -> Result<()> {
        self.call(json!({"op": "delete", "ids": ids})).map(drop)
    }

    /// Searches rows `start..end` of `file`, one query per call, with the knob at `knob`.
    pub fn search(
        &mut self,
        file: &Path,
        start: u64,
        end: u64,
        k: usize,
        knob: usize,
    ) -> Result<PeerAnswers> {
        let reply = self.call(json!({
            "op": "search", "file": file, "start": start, "end": end, "k": k, "knob": knob,
        }))?;
        #[derive(Deserialize)]
        struct Reply {
            ids: Vec<Vec<i64>>,
            ns: Vec<u64>,
        }
        let r: Reply = serde_json::from_value(reply).map_err(|e| {
            LabError::Invalid(format!("peer {}: search reply: {e}", self.kind.name()))
        })?;
        Ok(PeerAnswers {
            ids: r
                .ids
                .into_iter()
                .map(|q| {
                    q.into_iter()
                        .filter(|&i| i >= 0)
                        .map(|i| i as u64)
                        .collect()
                })
                .collect(),
            ns: r.ns,
        })
    }

    /// Index size, memory growth and build time so far.
    pub fn stats(&mut self) -> Result<PeerStats> {
        let reply = self.call(json!({"op": "stats"}))?;
        serde_json::from_value(reply)
            .map_err(|e| LabError::Invalid(format!("peer {}: stats reply: {e}", self.kind.name())))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"op": "quit"}));
        let _ = self.stdin.flush();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
