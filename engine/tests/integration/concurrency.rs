//! Readers and writers at once: searches run while upserts, deletes, freezes and flushes
//! happen; no acknowledged write is lost and nothing panics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::{open_with, records};

#[test]
fn concurrent_readers_and_writers_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, c) = open_with(dir.path(), "cc", 16);
    let stop = Arc::new(AtomicBool::new(false));
    let searches = Arc::new(AtomicU64::new(0));
    let writers = 3u64;
    let per_writer = 3000u64;
    std::thread::scope(|s| {
        for w in 0..writers {
            let c = c.clone();
            s.spawn(move || {
                let base = w * 1_000_000;
                for start in (0..per_writer).step_by(50) {
                    c.upsert(records(base + start, 50, 16, base + start))
                        .unwrap();
                    // Every writer deletes its own every 10th id right after writing it.
                    let dels: Vec<u64> = (start..start + 50)
                        .filter(|i| i % 10 == 0)
                        .map(|i| base + i)
                        .collect();
                    c.delete(&dels).unwrap();
                }
            });
        }
        for r in 0..2u64 {
            let (c, stop, searches) = (c.clone(), stop.clone(), searches.clone());
            s.spawn(move || {
                let q = records(0, 20, 16, 4242 + r);
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let hits = c.search(&q[i % 20].vector, &c.search_params(10)).unwrap();
                    // No search may return a deleted id or the same id twice.
                    let mut seen = std::collections::HashSet::new();
                    for h in &hits {
                        assert!(seen.insert(h.id), "duplicate id {}", h.id);
                    }
                    searches.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            });
        }
        {
            let (c, stop) = (c.clone(), stop.clone());
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    c.flush().unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            });
        }
        // Wait for writers (the first `writers` spawned threads) by polling the live count.
        let expected = (writers * per_writer * 9 / 10) as usize;
        let t0 = std::time::Instant::now();
        while c.stats().live_vectors < expected && t0.elapsed().as_secs() < 120 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // Give the flusher a last round, then stop everybody.
        std::thread::sleep(std::time::Duration::from_millis(50));
        stop.store(true, Ordering::Relaxed);
    });
    assert!(searches.load(Ordering::Relaxed) > 0);
    let check = |c: &drift_engine::Collection| {
        assert_eq!(
            c.stats().live_vectors,
            (writers * per_writer * 9 / 10) as usize
        );
        for w in 0..writers {
            let base = w * 1_000_000;
            for i in (0..per_writer).step_by(7) {
                let got = c.get(base + i).unwrap();
                if i % 10 == 0 {
                    assert!(got.is_none(), "deleted {} visible", base + i);
                } else {
                    assert!(got.is_some(), "lost {}", base + i);
                }
            }
        }
    };
    check(&c);
    let scanned: usize = c.clone().scan(1000).map(|b| b.unwrap().len()).sum();
    assert_eq!(scanned, (writers * per_writer * 9 / 10) as usize);
    drop((_db, c));
    let (_db, c) = open_with(dir.path(), "cc", 16);
    check(&c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_api_runs_off_the_runtime_threads() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, c) = open_with(dir.path(), "a", 8);
    let mut tasks = Vec::new();
    for t in 0..4u64 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.upsert_async(records(t * 1000, 500, 8, t)).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let sample = crate::random_vectors(800, 8, 5);
    let report = c.train_async(sample).await.unwrap();
    assert_eq!(report.rows, 2000);
    // Writer 2 wrote ids 2000..2500 with seed 2.
    let probe = records(2000, 500, 8, 2)[17].clone();
    let hits = c
        .search_async(probe.vector.clone(), c.search_params(1))
        .await
        .unwrap();
    assert_eq!(hits[0].id, probe.id);
    assert_eq!(c.delete_async(vec![probe.id]).await.unwrap(), 1);
}

#[test]
fn a_long_scan_sees_its_snapshot_however_often_ids_change() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, c) = open_with(dir.path(), "pinned", 16);
    let first = records(0, 600, 16, 1);
    c.upsert(first[..300].to_vec()).unwrap();
    c.flush().unwrap();
    c.upsert(first[300..].to_vec()).unwrap();
    let mut scan = c.clone().scan(50);
    let mut seen: std::collections::HashMap<u64, Vec<f32>> = Default::default();
    for r in scan.next().unwrap().unwrap() {
        seen.insert(r.id, r.vector);
    }
    // Every id changes three times (and some are deleted) while the scan is under way, with a
    // flush in between so that the new versions land in buckets and memtables alike.
    for round in 0..3u64 {
        c.upsert(records(0, 600, 16, 100 + round)).unwrap();
        if round == 1 {
            c.flush().unwrap();
        }
    }
    c.delete(&(0..600).step_by(7).collect::<Vec<_>>()).unwrap();
    for batch in scan {
        for r in batch.unwrap() {
            assert!(seen.insert(r.id, r.vector).is_none(), "id {} twice", r.id);
        }
    }
    assert_eq!(seen.len(), 600, "the scan lost rows of its snapshot");
    for r in &first {
        assert_eq!(
            seen[&r.id], r.vector,
            "id {} is not the snapshot's version",
            r.id
        );
    }
    // A new scan sees the current state.
    let now: usize = c.clone().scan(100).map(|b| b.unwrap().len()).sum();
    assert_eq!(now, 600 - 600usize.div_ceil(7));
}

#[test]
fn segments_a_long_scan_reads_outlive_the_commits_that_drop_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = drift_engine::Database::open(dir.path()).unwrap();
    let mut cfg = crate::small_config(16);
    // Stored vectors are read from their segments (no mapped copies to fall back on).
    cfg.settings.storage.mapped_vectors = false;
    cfg.settings.maintenance.background = false;
    let c = db.create_collection("gc", cfg).unwrap();
    let first = records(0, 2000, 16, 3);
    c.upsert(first.clone()).unwrap();
    c.flush().unwrap();
    let mut scan = c.clone().scan(100);
    let mut seen = std::collections::HashMap::new();
    for r in scan.next().unwrap().unwrap() {
        seen.insert(r.id, r.vector);
    }
    // Most rows go and maintenance compacts the buckets several commits in a row: the
    // segments the scan still reads drop out of the manifest.
    let segments_before = c.stats().storage.segment_bytes;
    c.delete(&(0..2000).filter(|i| i % 10 != 0).collect::<Vec<_>>())
        .unwrap();
    for round in 0..3 {
        c.upsert(records(5000 + round * 10, 10, 16, 50 + round))
            .unwrap();
        c.maintain(8).unwrap();
        c.flush().unwrap();
    }
    assert!(
        c.stats().storage.segment_bytes < segments_before,
        "maintenance did not replace the segments"
    );
    for batch in scan {
        for r in batch.expect("a segment the scan reads was deleted under it") {
            seen.insert(r.id, r.vector);
        }
    }
    assert_eq!(seen.len(), 2000);
    for r in &first {
        assert_eq!(seen[&r.id], r.vector);
    }
    // Once the scan is gone, the next commit deletes what it held back.
    c.upsert(records(9000, 5, 16, 99)).unwrap();
    c.flush().unwrap();
    c.upsert(records(9100, 5, 16, 98)).unwrap();
    c.flush().unwrap();
    let objects = dir.path().join("collections/gc/objects/segments");
    let on_disk = std::fs::read_dir(&objects).unwrap().count();
    assert_eq!(
        on_disk,
        c.stats().storage.segments,
        "old segments left behind"
    );
}
