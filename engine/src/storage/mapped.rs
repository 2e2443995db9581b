//! Exact vectors of stored chunks as plain f32 files, memory-mapped for re-ranking.
//!
//! Segments keep exact vectors ALP-compressed in checksummed blocks: compact and durable,
//! but reading one row means finding its block in a locked cache or decoding it. The
//! re-rank step reads tens of random rows per query, so each stored chunk also gets a file
//! of its rows as little-endian f32 in the collection's local `vectors/` directory, mapped
//! into memory: a row is a slice of the mapping, with no lock, no copy and no allocation,
//! and its pages live in the OS page cache rather than on the heap.
//!
//! The files are derived data, never the only copy. A chunk's file is written when the chunk
//! is committed (from the rows still in memory) or, after a restart, decoded from the
//! segment on first use. A file whose header, length or checksum is wrong is rebuilt; files
//! of segments that are gone are deleted when the segment is and swept at open. The source
//! tag (a fingerprint of the segment blocks the rows came from) keeps a file left by an
//! earlier object of the same name from passing for this one.
//!
//! ```text
//! header 32 B  "DRIFTF32", version u32, rows u32, dim u32, CRC32C of the data u32, source tag u64
//! data         rows × dim little-endian f32
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};

const MAGIC: &[u8; 8] = b"DRIFTF32";
const VERSION: u32 = 1;
const HEADER: usize = 32;

/// The directory of a collection's mapped vector files.
#[derive(Debug)]
pub struct MappedDir {
    dir: PathBuf,
    bytes: Arc<AtomicU64>,
}

/// One chunk's rows, mapped.
#[derive(Debug)]
pub struct MappedRows {
    map: memmap2::Mmap,
    dim: usize,
    /// The directory's count of mapped bytes, given back on drop.
    counted: Arc<AtomicU64>,
}

impl Drop for MappedRows {
    fn drop(&mut self) {
        self.counted
            .fetch_sub(self.map.len() as u64, Ordering::Relaxed);
    }
}

impl MappedRows {
    /// Every row, row-major.
    pub fn all(&self) -> &[f32] {
        bytemuck::cast_slice(&self.map[HEADER..])
    }

    /// Row `r`.
    #[inline]
    pub fn row(&self, r: usize) -> &[f32] {
        &self.all()[r * self.dim..(r + 1) * self.dim]
    }
}

/// File name of chunk `chunk` of segment `segment`.
fn file_name(segment: u64, chunk: u32) -> String {
    format!("s{segment:010}-c{chunk}.f32")
}

/// The segment number a file of this directory belongs to.
fn segment_of(name: &str) -> Option<u64> {
    name.strip_prefix('s')?.split_once("-c")?.0.parse().ok()
}

impl MappedDir {
    /// The files under `dir` (created when missing).
    pub fn open(dir: &Path) -> Result<MappedDir> {
        std::fs::create_dir_all(dir).at(dir)?;
        Ok(MappedDir {
            dir: dir.to_path_buf(),
            bytes: Arc::default(),
        })
    }

    /// Bytes of vector files mapped now (page cache, not heap; a page is resident only once
    /// read).
    pub fn mapped_bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The mapped rows of (`segment`, `chunk`), from its file when that is whole and carries
    /// `tag`, otherwise from `make` (rows × `dim` values, computed only when needed), written
    /// to a new file.
    pub fn get_or_write(
        &self,
        (segment, chunk, tag): (u64, u32, u64),
        rows: usize,
        dim: usize,
        make: impl FnOnce() -> Result<Vec<f32>>,
    ) -> Result<MappedRows> {
        let path = self.dir.join(file_name(segment, chunk));
        if let Some(m) = self.map_checked(&path, rows, dim, tag) {
            return Ok(m);
        }
        let data = make()?;
        self.write_and_map(&path, rows, dim, tag, &data)
    }

    /// Writes `data` (rows × `dim` values) as the file of (`segment`, `chunk`) with source
    /// `tag`, and maps it.
    pub fn write(
        &self,
        (segment, chunk, tag): (u64, u32, u64),
        dim: usize,
        data: &[f32],
    ) -> Result<MappedRows> {
        let path = self.dir.join(file_name(segment, chunk));
        self.write_and_map(&path, data.len() / dim.max(1), dim, tag, data)
    }

    fn write_and_map(
        &self,
        path: &Path,
        rows: usize,
        dim: usize,
        tag: u64,
        data: &[f32],
    ) -> Result<MappedRows> {
        if data.len() != rows * dim {
            return Err(Error::Internal(format!(
                "{}: {} values for {rows} rows of {dim}",
                path.display(),
                data.len()
            )));
        }
        let body: &[u8] = bytemuck::cast_slice(data);
        let mut head = [0u8; HEADER];
        head[..8].copy_from_slice(MAGIC);
        head[8..12].copy_from_slice(&VERSION.to_le_bytes());
        head[12..16].copy_from_slice(&(rows as u32).to_le_bytes());
        head[16..20].copy_from_slice(&(dim as u32).to_le_bytes());
        head[20..24].copy_from_slice(&crc32c::crc32c(body).to_le_bytes());
        head[24..32].copy_from_slice(&tag.to_le_bytes());
        // Written aside and renamed into place: a reader never maps a half-written file. No
        // fsync: a file torn by a crash fails its checksum and is rebuilt.
        let tmp = path.with_extension("tmp");
        {
            let mut f = std::fs::File::create(&tmp).at(&tmp)?;
            f.write_all(&head).at(&tmp)?;
            f.write_all(body).at(&tmp)?;
        }
        std::fs::rename(&tmp, path).at(path)?;
        self.map_checked(path, rows, dim, tag).ok_or_else(|| {
            Error::Internal(format!(
                "{}: written but does not read back",
                path.display()
            ))
        })
    }

    /// The file at `path` mapped, when it exists, carries `tag` and holds `rows` × `dim`
    /// values that match their checksum.
    fn map_checked(&self, path: &Path, rows: usize, dim: usize, tag: u64) -> Option<MappedRows> {
        let file = std::fs::File::open(path).ok()?;
        let len = file.metadata().ok()?.len() as usize;
        if len != HEADER + rows * dim * 4 {
            return None;
        }
        // SAFETY: the file is private to this collection's directory, written whole before it
        // is renamed into place and never modified afterwards (a rebuild writes a new file and
        // renames it over the old name, which leaves existing mappings of the old one intact).
        let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
        let head = &map[..HEADER];
        let word = |i: usize| u32::from_le_bytes(head[i..i + 4].try_into().expect("4 bytes"));
        let whole = &head[..8] == MAGIC
            && word(8) == VERSION
            && word(12) as usize == rows
            && word(16) as usize == dim
            && head[24..32] == tag.to_le_bytes()
            && word(20) == crc32c::crc32c(&map[HEADER..]);
        if !whole {
            tracing::warn!(file = %path.display(), "rebuilding a damaged vector file");
            return None;
        }
        self.bytes.fetch_add(len as u64, Ordering::Relaxed);
        Some(MappedRows {
            map,
            dim,
            counted: self.bytes.clone(),
        })
    }

    /// Deletes the files of `segment` (its object is gone).
    pub fn forget_segment(&self, segment: u64) {
        self.sweep(|s| s == segment);
    }

    /// Deletes every file whose segment is not `live` (and leftover temporary files).
    pub fn retain(&self, live: impl Fn(u64) -> bool) {
        self.sweep(|s| !live(s));
    }

    fn sweep(&self, doomed: impl Fn(u64) -> bool) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let gone = name.ends_with(".tmp") || segment_of(&name).is_none_or(&doomed);
            if gone {
                if let Err(err) = std::fs::remove_file(e.path()) {
                    tracing::warn!(file = %e.path().display(), error = %err, "cannot delete a vector file");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_back_and_damage_is_rebuilt() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = MappedDir::open(tmp.path()).unwrap();
        let data: Vec<f32> = (0..12).map(|i| i as f32 * 0.5).collect();
        let m = dir.write((7, 2, 99), 4, &data).unwrap();
        assert_eq!(m.row(1), &data[4..8]);
        assert_eq!(m.all(), &data[..]);

        // A whole file is reused without computing the rows again.
        let again = dir
            .get_or_write((7, 2, 99), 3, 4, || {
                panic!("rows recomputed for a whole file")
            })
            .unwrap();
        assert_eq!(again.row(2), &data[8..12]);

        // One flipped byte: the checksum fails and the rows are computed and written again.
        let path = tmp.path().join(file_name(7, 2));
        let mut raw = std::fs::read(&path).unwrap();
        raw[HEADER + 5] ^= 0x40;
        std::fs::write(&path, &raw).unwrap();
        let fixed = dir
            .get_or_write((7, 2, 99), 3, 4, || Ok(data.clone()))
            .unwrap();
        assert_eq!(fixed.all(), &data[..]);

        // Whether asking for the file with `tag` computed the rows again.
        let rebuilt = |tag: u64| {
            let mut made = false;
            dir.get_or_write((7, 2, tag), 3, 4, || {
                made = true;
                Ok(data.clone())
            })
            .unwrap();
            made
        };
        // A whole file from another source (same name, another tag) is not taken.
        assert!(rebuilt(100));
        // A file of the wrong shape is not trusted either.
        std::fs::write(&path, &raw[..HEADER + 8]).unwrap();
        assert!(rebuilt(100));
    }

    #[test]
    fn files_of_gone_segments_are_swept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = MappedDir::open(tmp.path()).unwrap();
        for seg in [1u64, 2, 3] {
            dir.write((seg, 0, 1), 2, &[1.0, 2.0]).unwrap();
        }
        std::fs::write(tmp.path().join("x.tmp"), b"junk").unwrap();
        dir.forget_segment(2);
        dir.retain(|s| s != 3);
        let mut left: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        left.sort();
        assert_eq!(left, vec![file_name(1, 0)]);
    }
}
