//! Write-ahead log: every upsert and delete is framed, checksummed and fsynced here before it
//! is acknowledged or becomes visible.
//!
//! ```text
//! writers ──encode──▶ shared pending buffer ──leader: write + fsync──▶ apply batch in seq order ──▶ wake writers
//! ```
//! Group commit: whichever writer finds no sync in flight becomes the leader, takes everything
//! pending, writes and fsyncs it once, applies it (through the caller's applier, in sequence
//! order) and wakes the others. Files are named by the first sequence number they hold and are
//! deleted once a checkpoint covers all their records.

pub mod record;
pub mod replay;

pub use record::{decode_record, encode_record, WalOp, FRAME_HEADER, MAX_RECORD};
pub use replay::{replay, Replayed};

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, IoContext, Result};
use crate::storage::sync_dir;

/// Files are rotated once they pass this size, so that checkpoints can retire them.
const ROTATE_BYTES: u64 = 64 << 20;

/// A sequenced operation handed to the applier after it is durable.
pub type Sequenced = (u64, WalOp);

struct Pending {
    bytes: Vec<u8>,
    ops: Vec<Sequenced>,
}

struct State {
    next_seq: u64,
    durable_seq: u64,
    pending: Pending,
    leader_active: bool,
    failed: Option<String>,
    rotate_requested: bool,
}

struct Files {
    dir: PathBuf,
    /// (first sequence number, path) of every live file, oldest first; the last is current.
    files: Vec<(u64, PathBuf)>,
    current: Option<File>,
    current_len: u64,
    bytes_total: u64,
}

/// The log of one collection.
pub struct Wal {
    state: Mutex<State>,
    cond: Condvar,
    files: Mutex<Files>,
}

/// Name of the log file whose first record has sequence number `seq`.
pub fn file_name(seq: u64) -> String {
    format!("{seq:020}.wal")
}

impl Wal {
    /// Opens the log in `dir` after [`replay`] has read it: new records go to a fresh file.
    pub fn open(dir: &Path, replayed: &Replayed) -> Result<Wal> {
        std::fs::create_dir_all(dir).at(dir)?;
        let bytes_total = replayed.files.iter().map(|f| f.2).sum();
        Ok(Wal {
            state: Mutex::new(State {
                next_seq: replayed.last_seq + 1,
                durable_seq: replayed.last_seq,
                pending: Pending {
                    bytes: Vec::new(),
                    ops: Vec::new(),
                },
                leader_active: false,
                failed: None,
                rotate_requested: true,
            }),
            cond: Condvar::new(),
            files: Mutex::new(Files {
                dir: dir.to_path_buf(),
                files: replayed
                    .files
                    .iter()
                    .map(|(s, p, _)| (*s, p.clone()))
                    .collect(),
                current: None,
                current_len: 0,
                bytes_total,
            }),
        })
    }

    /// Appends `ops`, waits until they are fsynced and applied, and returns the sequence
    /// number of the last one. `apply` receives durable batches in sequence order; it may be
    /// called with other writers' operations too (all writers of a log share one applier).
    pub fn commit(&self, ops: Vec<WalOp>, apply: &dyn Fn(Vec<Sequenced>)) -> Result<u64> {
        self.commit_admitted(ops, &mut |_| Ok(()), apply)
    }

    /// [`Wal::commit`], but `admit` sees (and may complete) the operations first, in log
    /// order with every other commit (it runs under the log's lock, before sequence numbers
    /// are taken): an error from it is returned and nothing is logged. It must be quick and
    /// do no I/O.
    pub fn commit_admitted(
        &self,
        mut ops: Vec<WalOp>,
        admit: &mut dyn FnMut(&mut Vec<WalOp>) -> Result<()>,
        apply: &dyn Fn(Vec<Sequenced>),
    ) -> Result<u64> {
        let mut st = self.state.lock();
        if let Some(why) = &st.failed {
            return Err(Error::Internal(format!(
                "write-ahead log failed earlier: {why}"
            )));
        }
        admit(&mut ops)?;
        if ops.is_empty() {
            return Ok(st.next_seq - 1);
        }
        for op in ops {
            let seq = st.next_seq;
            st.next_seq += 1;
            encode_record(seq, &op, &mut st.pending.bytes);
            st.pending.ops.push((seq, op));
        }
        let mine = st.next_seq - 1;
        loop {
            if st.durable_seq >= mine {
                return Ok(mine);
            }
            if let Some(why) = &st.failed {
                return Err(Error::Internal(format!("write-ahead log failed: {why}")));
            }
            if st.leader_active {
                self.cond.wait(&mut st);
                continue;
            }
            st.leader_active = true;
            let batch = std::mem::replace(
                &mut st.pending,
                Pending {
                    bytes: Vec::new(),
                    ops: Vec::new(),
                },
            );
            let rotate = std::mem::take(&mut st.rotate_requested);
            drop(st);
            let last = batch.ops.last().map(|(s, _)| *s).unwrap_or(0);
            let first = batch.ops.first().map(|(s, _)| *s).unwrap_or(0);
            let written = self.write_durable(first, &batch.bytes, rotate);
            if written.is_ok() {
                apply(batch.ops);
            }
            st = self.state.lock();
            st.leader_active = false;
            match written {
                Ok(()) => st.durable_seq = last,
                Err(e) => st.failed = Some(e.to_string()),
            }
            self.cond.notify_all();
        }
    }

    fn write_durable(&self, first_seq: u64, bytes: &[u8], rotate: bool) -> Result<()> {
        let mut f = self.files.lock();
        if rotate || f.current.is_none() || f.current_len >= ROTATE_BYTES {
            let path = f.dir.join(file_name(first_seq));
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .at(&path)?;
            sync_dir(&f.dir)?;
            // A crash right after an earlier rotation may have left this very file (empty):
            // it is already listed, and must be listed once, or a checkpoint would retire it
            // as an "older" entry while it holds new records.
            if f.files.last().map(|x| x.0) != Some(first_seq) {
                f.files.push((first_seq, path));
            }
            f.current = Some(file);
            f.current_len = 0;
        }
        let path = f.files.last().map(|x| x.1.clone()).unwrap_or_default();
        let fail = crate::storage::fault::Faults::wal_write_fails(&f.dir);
        let before = f.current_len;
        let file = f
            .current
            .as_mut()
            .expect("current WAL file was just opened");
        let written = if fail {
            // A full disk: part of the batch lands, then the write fails.
            file.write_all(&bytes[..bytes.len() / 2]).and_then(|()| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    "injected fault: no space left on device",
                ))
            })
        } else {
            file.write_all(bytes).and_then(|()| file.sync_data())
        };
        if let Err(e) = written {
            // Cut what landed of the failed batch, so that no part of a write that was never
            // acknowledged comes back at the next open (should even this fail, the log is
            // failed for this process, and the next open cuts a torn tail).
            let _ = file.set_len(before);
            let _ = file.sync_data();
            return Err(Error::io(&path, e));
        }
        f.current_len += bytes.len() as u64;
        f.bytes_total += bytes.len() as u64;
        Ok(())
    }

    /// Makes the next write start a new file (called when a memtable is frozen).
    pub fn request_rotation(&self) {
        self.state.lock().rotate_requested = true;
    }

    /// Highest sequence number handed out so far.
    pub fn last_seq(&self) -> u64 {
        self.state.lock().next_seq - 1
    }

    /// Deletes every file whose records all have sequence numbers `<= seq` (a checkpoint now
    /// holds them). The current file is kept.
    pub fn retire_through(&self, seq: u64) -> Result<usize> {
        let mut f = self.files.lock();
        let mut removed = 0;
        // Never the file being written (the last entry), whatever the numbers say.
        while f.files.len() >= 2 && f.files[1].0 <= seq + 1 && f.files[0].1 != f.files[1].1 {
            let (_, path) = f.files.remove(0);
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(&path).at(&path)?;
            f.bytes_total = f.bytes_total.saturating_sub(len);
            removed += 1;
        }
        Ok(removed)
    }

    /// Bytes held in live log files.
    pub fn bytes(&self) -> u64 {
        self.files.lock().bytes_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert(id: u64) -> WalOp {
        WalOp::Upsert {
            id,
            vector: vec![id as f32; 4],
            payload: None,
        }
    }

    /// A crash right after rotation created the next file (empty): after re-open the next
    /// write lands in that same file, which is listed once, so a checkpoint of the records
    /// before it never deletes it.
    #[test]
    fn a_file_left_by_a_crash_after_rotation_is_not_retired_with_new_records() {
        let dir = tempfile::tempdir().unwrap();
        {
            let wal = Wal::open(dir.path(), &replay(dir.path(), 0).unwrap()).unwrap();
            wal.commit((1..=10).map(upsert).collect(), &|_| {}).unwrap();
        }
        // The crash: the rotation's file exists, nothing was written to it.
        std::fs::write(dir.path().join(file_name(11)), b"").unwrap();
        let replayed = replay(dir.path(), 0).unwrap();
        assert_eq!(replayed.ops.len(), 10);
        let wal = Wal::open(dir.path(), &replayed).unwrap();
        wal.commit((11..=15).map(upsert).collect(), &|_| {})
            .unwrap();
        // A checkpoint covering 1..=10 retires the first file only.
        assert_eq!(wal.retire_through(10).unwrap(), 1);
        // Even a checkpoint past everything keeps the file being written.
        wal.retire_through(1000).unwrap();
        drop(wal);
        let after = replay(dir.path(), 10).unwrap();
        let ids: Vec<u64> = after.ops.iter().map(|(s, _)| *s).collect();
        assert_eq!(ids, (11..=15).collect::<Vec<_>>());
    }
}
