//! Integration tests of drift-engine through its public API: durability across re-open,
//! crash safety (a child process killed with SIGKILL), torn WAL tails, concurrency, and
//! maintenance (property tests and races).

mod concurrency;
mod crash;
mod durability;
mod failpoints;
mod fixtures;
mod maintenance;
mod recall;
mod remote;
mod simulation;

use drift_engine::{CollectionConfig, Database, Metric, Record};
use rand::{Rng, SeedableRng};

/// The durable steps of a commit at which `DRIFT_FAILPOINT` can abort the process.
pub const FAILPOINTS: [&str; 4] = [
    "segment-written",
    "tombstones-written",
    "manifest-written",
    "wal-retired",
];

/// Random vectors in [-1, 1), row-major.
pub fn random_vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n * dim).map(|_| rng.gen_range(-1.0..1.0)).collect()
}

/// Records `first..first + n` with random vectors.
pub fn records(first: u64, n: usize, dim: usize, seed: u64) -> Vec<Record> {
    random_vectors(n, dim, seed)
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, v)| Record::new(first + i as u64, v.to_vec()))
        .collect()
}

/// Starts this test binary again running only the ignored helper test `test` (a child that
/// is crashed on purpose), with `env` set and its stdout piped.
pub fn spawn_child(test: &str, env: &[(&str, &std::ffi::OsStr)]) -> std::process::Child {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        test,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// A small-memtable configuration so tests cross freeze, flush and training quickly.
pub fn small_config(dim: usize) -> CollectionConfig {
    let mut c = CollectionConfig::new(dim, Metric::L2);
    c.settings.memtable_capacity = 256;
    c.settings.flush_threshold = 1024;
    c.settings.auto_train_min = 512;
    c.settings.target_bucket_size = 64;
    c
}

/// Opens a database in `dir` and returns it with collection `name` (created if missing).
pub fn open_with(
    dir: &std::path::Path,
    name: &str,
    dim: usize,
) -> (Database, std::sync::Arc<drift_engine::Collection>) {
    let db = Database::open(dir).unwrap();
    let c = match db.collection(name) {
        Ok(c) => c,
        Err(_) => db.create_collection(name, small_config(dim)).unwrap(),
    };
    (db, c)
}
