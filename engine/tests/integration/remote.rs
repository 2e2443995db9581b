//! Collections on object stores other than the local disk: `memory://` always, and `s3://`
//! against the S3-compatible server (s3s-fs) that `scripts/test.sh` starts on loopback and
//! names in `DRIFT_TEST_S3_ENDPOINT`. Remote reads go through the disk cache, whose budget is
//! set small here so that evictions happen.

use std::time::{SystemTime, UNIX_EPOCH};

use drift_engine::Database;

use crate::{records, small_config};

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Mapped vector files exist in `dir`, for at most `segments` distinct segments.
fn assert_copies_of_live_segments_only(dir: &std::path::Path, segments: usize) {
    let segs: std::collections::HashSet<String> = dir
        .read_dir()
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .map(|n| n.split('-').next().unwrap().to_string())
        .collect();
    assert!(!segs.is_empty() && segs.len() <= segments, "{segs:?}");
}

/// Writes, deletes, flushes and maintains a collection on `uri`, re-opens it and checks it.
/// Re-ranking reads stored vectors from their memory-mapped copies when `mapped`, otherwise
/// from decoded blocks in a block cache too small to hold them all.
fn round_trip(uri: &str, mapped: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = small_config(16);
    cfg.settings.storage.uri = uri.to_string();
    cfg.settings.storage.disk_cache_bytes = 400 << 10;
    cfg.settings.storage.block_cache_bytes = 16 << 10;
    cfg.settings.storage.mapped_vectors = mapped;
    let recs = records(0, 3000, 16, 9);
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.create_collection("remote", cfg).unwrap();
        c.upsert(recs.clone()).unwrap();
        c.flush().unwrap();
        c.delete(&[10, 11, 12]).unwrap();
        c.upsert(records(3000, 10, 16, 10)).unwrap();
        c.maintain(4).unwrap();
        c.flush().unwrap();
        let s = c.stats().storage;
        assert!(s.uri.starts_with(uri.split('?').next().unwrap()), "{s:?}");
        assert!(s.segments > 0 && s.tombstone_files == 1, "{s:?}");
        c.close();
    }
    let reopen_and_check = || {
        let db = Database::open(dir.path()).unwrap();
        let c = db.collection("remote").unwrap();
        assert_eq!(c.stats().live_vectors, 3007);
        for r in recs.iter().step_by(7) {
            let got = c.get(r.id).unwrap();
            if [10, 11, 12].contains(&r.id) {
                assert!(got.is_none(), "deleted id {} is back", r.id);
            } else {
                assert_eq!(got.unwrap().vector, r.vector);
            }
        }
        let mut params = c.search_params(10);
        params.nprobe = Some(8);
        for r in recs.iter().skip(100).step_by(150) {
            let hits = c.search(&r.vector, &params).unwrap();
            assert_eq!(hits[0].id, r.id, "exact re-rank reads the cold tier back");
        }
        let s = c.stats().storage;
        eprintln!("{uri}: {s:?}");
        c.close();
        s
    };
    let s = reopen_and_check();
    if mapped {
        // The copies written at commit are whole and reused: no block was decoded. Those of
        // segments that maintenance replaced went with them.
        let vectors = dir.path().join("collections/remote/vectors");
        assert_copies_of_live_segments_only(&vectors, s.segments);
        assert!(s.mapped_vector_bytes > 0, "{s:?}");
        assert_eq!((s.block_cache_misses, s.block_cache_bytes), (0, 0), "{s:?}");
        // Without them, each chunk's blocks are decoded once to write a new copy, and none
        // stay in the heap.
        std::fs::remove_dir_all(&vectors).unwrap();
        let s = reopen_and_check();
        assert!(s.mapped_vector_bytes > 0, "{s:?}");
        assert!(
            s.block_cache_misses > 0 && s.block_cache_bytes == 0,
            "{s:?}"
        );
        assert_copies_of_live_segments_only(&vectors, s.segments);
    } else {
        assert_eq!(s.mapped_vector_bytes, 0, "{s:?}");
        assert!(
            s.block_cache_misses > 0 && s.block_cache_evictions > 0,
            "{s:?}"
        );
        assert!(s.block_cache_bytes <= 16 << 10, "{s:?}");
    }
    if !uri.starts_with("fs://") {
        assert!(s.disk_cache_misses > 0, "{s:?}");
        assert!(s.disk_cache_bytes <= 400 << 10, "{s:?}");
    }
}

#[test]
fn memory_store_round_trip() {
    round_trip(&format!("memory://{}", unique("mem")), false);
    round_trip(&format!("memory://{}", unique("mem")), true);
}

#[test]
fn fs_store_elsewhere_round_trip() {
    let objects = tempfile::tempdir().unwrap();
    round_trip(&format!("fs://{}", objects.path().display()), true);
}

#[test]
fn s3_store_round_trip() {
    let Ok(endpoint) = std::env::var("DRIFT_TEST_S3_ENDPOINT") else {
        eprintln!("s3 test not run: DRIFT_TEST_S3_ENDPOINT is unset (scripts/test.sh sets it)");
        return;
    };
    round_trip(
        &format!("s3://drift-test/{}?endpoint={endpoint}", unique("s3")),
        true,
    );
}
