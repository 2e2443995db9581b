//! Peer baselines in a lab run: the real faiss and hnswlib (through [`crate::peer`]) fed the
//! run's writes and asked its queries, one query per call on one thread, like Drift. Vectors
//! reach the peer as small `.fbin` files in the run's folder, which it reads itself.

use std::path::{Path, PathBuf};

use drift_engine::{Metric, Write};
use serde_json::{Map, Value};

use crate::error::{LabError, Result};
use crate::peer::{Peer, PeerAnswers, PeerKind, PeerStats};
use crate::vecfile::write_fbin;

/// The search knob a peer baseline runs at unless its settings say otherwise: hnswlib's `ef`
/// and faiss's `nprobe` (over about 4·√n lists).
pub fn default_knob(kind: PeerKind) -> usize {
    match kind {
        PeerKind::Hnswlib => 64,
        PeerKind::FaissIvfSq8 | PeerKind::FaissIvfFlat => 16,
    }
}

/// One peer baseline of a run.
pub struct PeerSystem {
    peer: Peer,
    /// Knob values searched (several: a sweep, one system each).
    knobs: Vec<usize>,
    /// Whether the settings listed the knob's values (a sweep) rather than one value.
    swept: bool,
    dim: usize,
    /// Folder of the scratch files.
    dir: PathBuf,
    /// Calls so far (each call's vectors go to a file of their own).
    calls: u64,
}

impl PeerSystem {
    /// Starts `kind` with `settings` (build settings, plus its knob, `ef` or `nprobe`: one
    /// value, or a list of values to sweep), writing its scratch files under `dir`.
    pub fn start(
        kind: PeerKind,
        dim: usize,
        metric: Metric,
        settings: Option<&Value>,
        dir: &Path,
    ) -> Result<PeerSystem> {
        let mut build = settings
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_else(Map::new);
        let bad = |v: &Value| {
            LabError::Invalid(format!(
                "peers: {}.{} must be a whole number of at least 1 or a list of them, got {v}",
                kind.name(),
                kind.knob()
            ))
        };
        let one = |v: &Value| {
            v.as_u64()
                .filter(|&n| n >= 1)
                .map(|n| n as usize)
                .ok_or_else(|| bad(v))
        };
        let (knobs, swept) = match build.remove(kind.knob()) {
            None => (vec![default_knob(kind)], false),
            Some(Value::Array(vs)) if !vs.is_empty() => {
                (vs.iter().map(one).collect::<Result<Vec<_>>>()?, true)
            }
            Some(v) => (vec![one(&v)?], false),
        };
        std::fs::create_dir_all(dir).map_err(|e| LabError::io(dir, e))?;
        let peer = Peer::spawn(kind, dim, metric, &Value::Object(build))?;
        Ok(PeerSystem {
            peer,
            knobs,
            swept,
            dim,
            dir: dir.to_path_buf(),
            calls: 0,
        })
    }

    /// Writes `data` to a new scratch file and runs `call` on it. The file is unlinked
    /// afterwards, never rewritten: the peer may map it and keep views of its rows (a
    /// retraining faiss does), which truncating the file would break.
    fn with_file<T>(
        &mut self,
        data: &[f32],
        call: impl FnOnce(&mut Peer, &Path) -> Result<T>,
    ) -> Result<T> {
        self.calls += 1;
        let path = self
            .dir
            .join(format!("{}-{}.fbin", self.peer.kind().name(), self.calls));
        write_fbin(&path, data, self.dim)?;
        let out = call(&mut self.peer, &path);
        let _ = std::fs::remove_file(&path);
        out
    }

    /// Applies `writes` in order: runs of upserts as one insert (an existing id is replaced),
    /// deletes as they come.
    pub fn write(&mut self, writes: &[Write]) -> Result<()> {
        let mut i = 0;
        while i < writes.len() {
            match &writes[i] {
                Write::Upsert(_) => {
                    let mut ids = Vec::new();
                    let mut data = Vec::new();
                    while let Some(Write::Upsert(r)) = writes.get(i) {
                        ids.push(r.id);
                        data.extend_from_slice(&r.vector);
                        i += 1;
                    }
                    self.with_file(&data, |p, f| p.insert_ids(f, &ids))?;
                }
                Write::Delete(_) => {
                    let mut ids = Vec::new();
                    while let Some(Write::Delete(id)) = writes.get(i) {
                        ids.push(*id);
                        i += 1;
                    }
                    self.peer.delete(&ids)?;
                }
            }
        }
        Ok(())
    }

    /// The knob values to search with, and whether they are a sweep.
    pub fn knobs(&self) -> (&[usize], bool) {
        (&self.knobs, self.swept)
    }

    /// The `k` nearest ids of each query (row-major) at `knob`, and each query's latency.
    pub fn search(&mut self, queries: &[f32], k: usize, knob: usize) -> Result<PeerAnswers> {
        let n = (queries.len() / self.dim.max(1)) as u64;
        self.with_file(queries, |p, f| p.search(f, 0, n, k, knob))
    }

    /// Index size, memory growth and build time so far.
    pub fn stats(&mut self) -> Result<PeerStats> {
        self.peer.stats()
    }
}
