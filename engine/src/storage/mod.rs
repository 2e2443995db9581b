//! Durable state besides the WAL: segments, manifests and tombstones on an object store
//! (through OpenDAL), their caches, and collection configuration files.

pub mod alp;
pub mod cache;
pub mod cold;
pub mod fault;
pub mod manifest;
pub mod mapped;
pub mod segment;
pub mod store;

use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, Result};

/// Crash-test hook: when the environment variable `DRIFT_FAILPOINT` names this point, the
/// process aborts here, as if the machine lost power between two durable steps. With
/// `DRIFT_FAILPOINT_SKIP=n`, the first `n` passes through the point go on.
pub fn failpoint(name: &str) {
    static PASSES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    if std::env::var_os("DRIFT_FAILPOINT").is_some_and(|v| v == name) {
        let skip: u64 = std::env::var("DRIFT_FAILPOINT_SKIP")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if PASSES.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= skip {
            eprintln!("failpoint {name}: aborting");
            std::process::abort();
        }
    }
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename, fsync of the directory.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp).at(&tmp)?;
        f.write_all(bytes).at(&tmp)?;
        f.sync_all().at(&tmp)?;
    }
    std::fs::rename(&tmp, path).at(path)?;
    sync_dir(dir)
}

/// Fsyncs a directory so that a created, renamed or deleted entry in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).at(dir)
}
