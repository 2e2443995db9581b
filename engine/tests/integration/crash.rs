//! Crash safety: a child process streams acknowledged upserts (with flushes and maintenance
//! passes in between) and is killed with SIGKILL;
//! after re-open every acknowledged record is there. Also: a truncated WAL re-opens to its
//! last whole record, and damage inside the WAL is a clear error.

use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use drift_engine::{Database, Error};

use crate::{open_with, records, spawn_child};

const CHILD_ENV: &str = "DRIFT_CRASH_CHILD_DIR";

/// Runs only as the child of `sigkill_loses_no_acknowledged_upsert`: upserts batches forever,
/// printing the last id of each batch after the call returns (= acknowledged).
#[test]
#[ignore = "helper process for the crash test"]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let (_db, c) = open_with(std::path::Path::new(&dir), "crash", 8);
    let mut out = std::io::stdout();
    let mut next = 0u64;
    loop {
        let n = 1 + (next % 37) as usize;
        c.upsert(records(next, n, 8, next)).unwrap();
        next += n as u64;
        if next % 97 < n as u64 {
            // Maintenance passes between writes too (the janitor also runs them after
            // every background flush), so the kill can land in the middle of one.
            c.maintain(2).unwrap();
        }
        if next.is_multiple_of(5) {
            c.delete(&[next - 1]).unwrap();
            writeln!(out, "deleted {}", next - 1).unwrap();
        }
        writeln!(out, "acked {}", next - 1).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn sigkill_loses_no_acknowledged_upsert() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = 0u64;
    let mut deleted = std::collections::HashSet::new();
    for round in 0..5 {
        let mut child = spawn_child("crash::crash_child", &[(CHILD_ENV, dir.path().as_os_str())]);
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let start = Instant::now();
        // Let it run past a few freezes and background flushes, then kill it mid-stream.
        let target = 3000 + round * 1500;
        while let Some(Ok(line)) = lines.next() {
            if let Some(id) = line.strip_prefix("acked ") {
                acked = acked.max(id.parse().unwrap());
            } else if let Some(id) = line.strip_prefix("deleted ") {
                deleted.insert(id.parse::<u64>().unwrap());
            }
            if acked >= target || start.elapsed() > Duration::from_secs(60) {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let db = Database::open(dir.path()).unwrap();
        let c = db.collection("crash").unwrap();
        let mut next = 0u64;
        while next <= acked {
            let n = 1 + (next % 37) as usize;
            let recs = records(next, n, 8, next);
            for r in recs {
                if r.id > acked {
                    break;
                }
                let got = c.get(r.id).unwrap();
                if deleted.contains(&r.id) {
                    assert!(
                        got.is_none(),
                        "round {round}: deleted id {} came back",
                        r.id
                    );
                } else {
                    let got =
                        got.unwrap_or_else(|| panic!("round {round}: acked id {} lost", r.id));
                    assert_eq!(got.vector, r.vector);
                }
            }
            next += n as u64;
        }
        // The child restarts from id 0: upserts are idempotent by id.
    }
    assert!(acked >= 1500);
}

/// Upserts ids 0..20 one durable record at a time, then closes the database.
fn write_twenty_singles(dir: &std::path::Path) {
    let (_db, c) = open_with(dir, "w", 8);
    for i in 0..20 {
        c.upsert(records(i, 1, 8, i)).unwrap();
    }
}

fn wal_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let wal = dir.join("collections").join("w").join("wal");
    let mut v: Vec<_> = std::fs::read_dir(wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}

#[test]
fn truncated_wal_reopens_to_last_whole_record() {
    let dir = tempfile::tempdir().unwrap();
    write_twenty_singles(dir.path());
    let files = wal_files(dir.path());
    let last = files.last().unwrap();
    let len = std::fs::metadata(last).unwrap().len();
    // Cut into the middle of the final record.
    let f = std::fs::OpenOptions::new().write(true).open(last).unwrap();
    f.set_len(len - 7).unwrap();
    drop(f);
    let (_db, c) = open_with(dir.path(), "w", 8);
    assert_eq!(c.stats().live_vectors, 19);
    assert!(c.get(18).unwrap().is_some());
    assert!(c.get(19).unwrap().is_none());
    // New writes after the cut are durable too.
    c.upsert(records(19, 1, 8, 19)).unwrap();
    drop((_db, c));
    let (_db, c) = open_with(dir.path(), "w", 8);
    assert_eq!(c.stats().live_vectors, 20);
}

#[test]
fn damaged_wal_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    write_twenty_singles(dir.path());
    let files = wal_files(dir.path());
    let last = files.last().unwrap();
    let mut data = std::fs::read(last).unwrap();
    data[100] ^= 0x55;
    std::fs::write(last, &data).unwrap();
    let (path, offset) = open_failure(dir.path(), "w").expect("a damaged WAL opened silently");
    assert_eq!(&path, last);
    assert!(offset <= 100);
}

/// Opens the database (which must succeed: one damaged collection does not stop the others)
/// and returns the file and offset that collection `name`'s open failed at, if it failed.
fn open_failure(dir: &std::path::Path, name: &str) -> Option<(std::path::PathBuf, u64)> {
    let db = Database::open(dir).expect("the database opens around a damaged collection");
    match db.collection(name) {
        Ok(_) => None,
        Err(Error::Unavailable { reason, .. }) => {
            // "corrupt file {path} at offset {offset}: {reason}"
            let rest = reason
                .strip_prefix("corrupt file ")
                .unwrap_or_else(|| panic!("not a corruption: {reason}"));
            let (path, rest) = rest.split_once(" at offset ").expect("an offset");
            let offset = rest.split(':').next().unwrap().parse().expect("a number");
            assert_eq!(db.failed().len(), 1);
            Some((std::path::PathBuf::from(path), offset))
        }
        Err(other) => panic!("unexpected error {other}"),
    }
}

/// Object files of collection `w` under `folder` (segments, manifest or tombstones).
fn objects(dir: &std::path::Path, folder: &str) -> Vec<std::path::PathBuf> {
    let d = dir.join("collections/w/objects").join(folder);
    let mut v: Vec<_> = std::fs::read_dir(d)
        .map(|r| r.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn damaged_segment_or_manifest_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_db, c) = open_with(dir.path(), "w", 8);
        c.upsert(records(0, 600, 8, 1)).unwrap();
        c.flush().unwrap();
        c.delete(&[3, 4]).unwrap();
        c.upsert(records(600, 100, 8, 2)).unwrap();
        c.flush().unwrap();
    }
    // A clean open removes objects the newest manifest no longer names.
    drop(Database::open(dir.path()).unwrap());
    let files: Vec<_> = ["segments", "manifest", "tombstones"]
        .iter()
        .flat_map(|f| objects(dir.path(), f))
        .collect();
    assert!(files.len() >= 4, "{files:?}");
    for file in files {
        let clean = std::fs::read(&file).unwrap();
        // A flipped byte at several places, then a truncation.
        let len = clean.len();
        let damages: Vec<Vec<u8>> = [0, len / 3, len / 2, len.saturating_sub(70), len - 1]
            .into_iter()
            .map(|at| {
                let mut d = clean.clone();
                d[at] ^= 0x20;
                d
            })
            .chain(std::iter::once(clean[..len.saturating_sub(9)].to_vec()))
            .collect();
        for damaged in damages {
            std::fs::write(&file, &damaged).unwrap();
            match open_failure(dir.path(), "w") {
                Some((path, offset)) => {
                    assert_eq!(path, file);
                    assert!(offset <= len as u64);
                }
                None => panic!("{}: damage went unnoticed", file.display()),
            }
        }
        std::fs::write(&file, &clean).unwrap();
    }
    let (_db, c) = open_with(dir.path(), "w", 8);
    assert_eq!(c.stats().live_vectors, 698);
    assert!(c.get(3).unwrap().is_none());
}
