//! Durable state besides the WAL: collection configuration files and the L1 checkpoint.

pub mod alp;
pub mod cache;
pub mod checkpoint;
pub mod manifest;
pub mod segment;
pub mod store;

use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, Result};
use crate::wal::sync_dir;

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
