//! Reading the log back on open. Damage at the very end of the newest file is a torn write
//! (the process died mid-append) and is cut off; damage anywhere else is an error that names
//! the file and offset.

use std::path::{Path, PathBuf};

use super::record::{decode_record, WalOp, FRAME_HEADER, MAX_RECORD};
use crate::error::{Error, IoContext, Result};

/// What [`replay`] found.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Operations with sequence numbers above the checkpoint, in order.
    pub ops: Vec<(u64, WalOp)>,
    /// Highest sequence number seen (or the checkpoint's, if higher).
    pub last_seq: u64,
    /// (first sequence, path, length) of every log file, oldest first.
    pub files: Vec<(u64, PathBuf, u64)>,
    /// Bytes cut from the tail of the newest file, if it was torn.
    pub torn_bytes: u64,
}

/// Reads every log file in `dir`, keeping operations with sequence numbers above
/// `checkpoint_seq`. A torn tail of the newest file is truncated on disk.
pub fn replay(dir: &Path, checkpoint_seq: u64) -> Result<Replayed> {
    let mut out = Replayed {
        last_seq: checkpoint_seq,
        ..Default::default()
    };
    if !dir.exists() {
        return Ok(out);
    }
    let mut names: Vec<(u64, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".wal") else {
            continue;
        };
        let seq = stem
            .parse::<u64>()
            .map_err(|_| Error::corrupt(&path, 0, "log file name is not a sequence number"))?;
        names.push((seq, path));
    }
    names.sort();
    let count = names.len();
    for (i, (first, path)) in names.into_iter().enumerate() {
        let is_last = i + 1 == count;
        let data = std::fs::read(&path).at(&path)?;
        let valid = read_file(&path, &data, is_last, checkpoint_seq, &mut out)?;
        if valid < data.len() {
            out.torn_bytes = (data.len() - valid) as u64;
            tracing::warn!(file = %path.display(), offset = valid, cut = out.torn_bytes,
                "write-ahead log ends in a torn record; cutting it off");
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .at(&path)?;
            f.set_len(valid as u64).at(&path)?;
            f.sync_all().at(&path)?;
        }
        out.files.push((first, path, valid as u64));
    }
    Ok(out)
}

/// Parses one log file (`data`, read from `path`), appending operations above
/// `checkpoint_seq` to `out`; returns the length of its valid prefix. Only the newest file
/// (`is_last`) may end in a torn record; damage anywhere else is an error.
pub fn read_file(
    path: &Path,
    data: &[u8],
    is_last: bool,
    checkpoint_seq: u64,
    out: &mut Replayed,
) -> Result<usize> {
    let mut pos = 0usize;
    while pos < data.len() {
        // Zeros after the last record (what some file systems leave after a power loss, or a
        // preallocated tail) hold no record: cut them, in any file.
        if data[pos..].iter().all(|b| *b == 0) {
            return Ok(pos);
        }
        let rest = data.len() - pos;
        // In the newest file, a bad record with no whole record anywhere after it is the
        // torn tail of the last write (a partial header or body, or stale bytes where the
        // write never landed): cut. With a whole record after it, acknowledged records
        // would be lost behind the damage: an error.
        let damaged = |reason: String| -> Result<usize> {
            if is_last && whole_record_after(data, pos + 1).is_none() {
                Ok(pos)
            } else {
                Err(Error::corrupt(path, pos as u64, reason))
            }
        };
        if rest < FRAME_HEADER {
            return damaged(format!(
                "{rest} stray bytes where a record header should be"
            ));
        }
        let len = u32::from_le_bytes(data[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().expect("4 bytes"));
        if len > MAX_RECORD {
            return damaged(format!("record length {len} is larger than any record"));
        }
        let end = pos + FRAME_HEADER + len;
        if end > data.len() {
            return damaged(format!(
                "record of {len} bytes runs past the end of the file"
            ));
        }
        let body = &data[pos + FRAME_HEADER..end];
        if crc32c::crc32c(body) != crc {
            return damaged("record checksum mismatch".into());
        }
        let (seq, op) = decode_record(body).map_err(|e| Error::corrupt(path, pos as u64, e))?;
        if seq <= out.last_seq && seq > checkpoint_seq {
            return Err(Error::corrupt(
                path,
                pos as u64,
                format!("sequence number {seq} is out of order"),
            ));
        }
        if seq > checkpoint_seq {
            out.ops.push((seq, op));
        }
        out.last_seq = out.last_seq.max(seq);
        pos = end;
    }
    Ok(pos)
}

/// The offset of the first whole record (plausible length, inside the file, checksum
/// matching) starting at or after `from`, if any.
fn whole_record_after(data: &[u8], from: usize) -> Option<usize> {
    (from..data.len().saturating_sub(FRAME_HEADER - 1)).find(|&p| {
        let len = u32::from_le_bytes(data[p..p + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(data[p + 4..p + 8].try_into().expect("4 bytes"));
        let end = p + FRAME_HEADER + len;
        len > 0
            && len <= MAX_RECORD
            && end <= data.len()
            && crc32c::crc32c(&data[p + FRAME_HEADER..end]) == crc
    })
}

#[cfg(test)]
mod tests {
    use super::super::record::encode_record;
    use super::*;

    fn write_log(dir: &Path, first: u64, n: u64) -> PathBuf {
        let mut buf = Vec::new();
        for s in first..first + n {
            let op = WalOp::Upsert {
                id: s,
                vector: vec![s as f32; 4],
                payload: None,
            };
            encode_record(s, &op, &mut buf);
        }
        let p = dir.join(super::super::file_name(first));
        std::fs::write(&p, buf).unwrap();
        p
    }

    #[test]
    fn torn_tail_is_cut_at_last_whole_record() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_log(dir.path(), 1, 10);
        let full = std::fs::metadata(&p).unwrap().len();
        for cut in 1..40u64 {
            let data = std::fs::read(&p).unwrap();
            std::fs::write(&p, &data[..(full - cut) as usize]).unwrap();
            let r = replay(dir.path(), 0).unwrap();
            assert_eq!(r.ops.len(), 9, "cut {cut}");
            assert!(r.torn_bytes > 0);
            // Restore the full file for the next round.
            write_log(dir.path(), 1, 10);
        }
    }

    #[test]
    fn zero_filled_tails_are_cut_in_any_file_and_after_a_torn_record() {
        let dir = tempfile::tempdir().unwrap();
        let older = write_log(dir.path(), 1, 5);
        let newest = write_log(dir.path(), 6, 5);
        for p in [&older, &newest] {
            let mut data = std::fs::read(p).unwrap();
            data.extend_from_slice(&[0u8; 64]);
            std::fs::write(p, &data).unwrap();
        }
        let r = replay(dir.path(), 0).unwrap();
        assert_eq!(r.ops.len(), 10);
        assert_eq!(r.torn_bytes, 64);
        // Cut on disk: a second open sees clean files.
        assert_eq!(replay(dir.path(), 0).unwrap().torn_bytes, 0);
        // A half-written last record followed by zeros is a torn tail too.
        let mut data = std::fs::read(&newest).unwrap();
        let len = data.len();
        for b in &mut data[len - 10..] {
            *b = 0;
        }
        data.extend_from_slice(&[0u8; 64]);
        std::fs::write(&newest, &data).unwrap();
        let r = replay(dir.path(), 0).unwrap();
        assert_eq!(r.ops.len(), 9);
        // Zeros before a valid record are damage, not a tail.
        let mut data = std::fs::read(&older).unwrap();
        for b in &mut data[..8] {
            *b = 0;
        }
        std::fs::write(&older, &data).unwrap();
        assert!(matches!(replay(dir.path(), 0), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn stray_bytes_after_the_last_record_are_a_torn_tail_but_not_before_a_record() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for round in 0..200 {
            let dir = tempfile::tempdir().unwrap();
            let p = write_log(dir.path(), 1, 6);
            let clean = std::fs::read(&p).unwrap();
            let junk: Vec<u8> = (0..rng.gen_range(1..300)).map(|_| rng.gen()).collect();
            let mut data = clean.clone();
            data.extend_from_slice(&junk);
            std::fs::write(&p, &data).unwrap();
            let r = replay(dir.path(), 0).unwrap();
            assert_eq!(r.ops.len(), 6, "round {round}");
            assert_eq!(
                std::fs::read(&p).unwrap(),
                clean,
                "round {round}: cut on disk"
            );
            // The same bytes with a whole record after them: acknowledged data would be
            // lost behind the damage, so it is an error naming the place.
            let mut data = clean[..clean.len() / 2].to_vec();
            let at = data.len();
            data.extend_from_slice(&junk);
            write_log(dir.path(), 100, 1);
            let tail = std::fs::read(dir.path().join(super::super::file_name(100))).unwrap();
            std::fs::remove_file(dir.path().join(super::super::file_name(100))).unwrap();
            data.extend_from_slice(&tail);
            std::fs::write(&p, &data).unwrap();
            match replay(dir.path(), 0) {
                Err(Error::Corrupt { offset, .. }) => {
                    assert!(offset as usize <= at, "round {round}")
                }
                other => panic!("round {round}: {other:?}"),
            }
        }
    }

    #[test]
    fn damage_in_the_middle_names_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_log(dir.path(), 1, 10);
        let mut data = std::fs::read(&p).unwrap();
        data[30] ^= 0xff;
        std::fs::write(&p, &data).unwrap();
        let err = replay(dir.path(), 0).unwrap_err().to_string();
        assert!(
            err.contains("corrupt file") && err.contains("offset 0"),
            "{err}"
        );
    }

    #[test]
    fn damage_in_an_older_file_is_an_error_even_at_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_log(dir.path(), 1, 5);
        write_log(dir.path(), 6, 5);
        let data = std::fs::read(&p).unwrap();
        std::fs::write(&p, &data[..data.len() - 3]).unwrap();
        assert!(matches!(replay(dir.path(), 0), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn records_covered_by_the_checkpoint_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 1, 10);
        let r = replay(dir.path(), 7).unwrap();
        assert_eq!(
            r.ops.iter().map(|o| o.0).collect::<Vec<_>>(),
            vec![8, 9, 10]
        );
        assert_eq!(r.last_seq, 10);
    }
}
