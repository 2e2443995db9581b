//! Upsert replaces, delete hides, and both survive re-open (from WAL, from checkpoint, and
//! from a mix); bad input is rejected without losing what was accepted.

use drift_engine::{Database, Error, Metric, Record, SourceMark, Write};

use crate::{open_with, records, small_config};

fn nearest(c: &drift_engine::Collection, v: &[f32]) -> u64 {
    let mut p = c.search_params(1);
    p.nprobe = Some(1000);
    c.search(v, &p).unwrap()[0].id
}

#[test]
fn upsert_replaces_and_delete_hides_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 8;
    for flush_before_reopen in [false, true] {
        let name = format!("c{flush_before_reopen}");
        {
            let (_db, c) = open_with(dir.path(), &name, dim);
            c.upsert(records(0, 2000, dim, 1)).unwrap();
            // Replace id 5 with a far-away vector, delete 7..17.
            c.upsert(vec![Record {
                id: 5,
                vector: vec![50.0; dim],
                payload: Some(r#"{"v":2}"#.into()),
            }])
            .unwrap();
            assert_eq!(c.delete(&(7..17).collect::<Vec<_>>()).unwrap(), 10);
            assert_eq!(
                c.delete(&[7, 999_999]).unwrap(),
                0,
                "already deleted / unknown"
            );
            if flush_before_reopen {
                c.flush().unwrap();
            }
            assert_eq!(c.stats().live_vectors, 1990);
        }
        let (_db, c) = open_with(dir.path(), &name, dim);
        assert_eq!(c.stats().live_vectors, 1990, "flush={flush_before_reopen}");
        let r5 = c.get(5).unwrap().unwrap();
        assert_eq!(r5.vector, vec![50.0; dim]);
        assert_eq!(r5.payload.as_deref(), Some(r#"{"v":2}"#));
        assert_eq!(nearest(&c, &[50.0; 8]), 5);
        for id in 7..17 {
            assert!(c.get(id).unwrap().is_none(), "id {id} came back");
            let v = crate::records(0, 2000, dim, 1)[id as usize].vector.clone();
            assert_ne!(nearest(&c, &v), id, "deleted id {id} is still found");
        }
        // Everything else is found exactly by its own vector.
        let all = records(0, 2000, dim, 1);
        for r in all.iter().step_by(97) {
            if (7..17).contains(&r.id) || r.id == 5 {
                continue;
            }
            assert_eq!(nearest(&c, &r.vector), r.id);
        }
        let scanned: usize = c.clone().scan(300).map(|b| b.unwrap().len()).sum();
        assert_eq!(scanned, 1990);
    }
}

#[test]
fn data_survives_several_flush_and_reopen_cycles() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 16;
    for round in 0..4u64 {
        let (_db, c) = open_with(dir.path(), "c", dim);
        c.upsert(records(round * 1000, 1000, dim, round)).unwrap();
        if round % 2 == 0 {
            c.flush().unwrap();
        }
        assert_eq!(c.stats().live_vectors, (round as usize + 1) * 1000);
    }
    let (_db, c) = open_with(dir.path(), "c", dim);
    assert!(c.stats().trained);
    for round in 0..4u64 {
        let recs = records(round * 1000, 1000, dim, round);
        for r in recs.iter().step_by(111) {
            assert_eq!(c.get(r.id).unwrap().unwrap().vector, r.vector);
        }
    }
}

#[test]
fn bad_input_is_rejected_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (db, c) = open_with(dir.path(), "c", 4);
    c.upsert(records(0, 10, 4, 3)).unwrap();
    let err = c.upsert(vec![
        Record::new(100, vec![1.0; 4]),
        Record::new(101, vec![1.0; 3]),
    ]);
    assert!(matches!(
        err,
        Err(Error::DimensionMismatch {
            got: 3,
            expected: 4,
            ..
        })
    ));
    let err = c.upsert(vec![Record::new(102, vec![1.0, f32::NAN, 0.0, 0.0])]);
    assert!(matches!(err, Err(Error::NonFinite { position: 1, .. })));
    let err = c.upsert(vec![Record {
        id: 103,
        vector: vec![0.0; 4],
        payload: Some("[1,2]".into()),
    }]);
    assert!(matches!(err, Err(Error::InvalidPayload { .. })));
    assert!(
        c.get(100).unwrap().is_none(),
        "a rejected batch writes nothing"
    );
    assert!(matches!(
        c.search(&[1.0; 5], &c.search_params(3)),
        Err(Error::DimensionMismatch { .. })
    ));
    let mut p = c.search_params(0);
    assert!(matches!(
        c.search(&[1.0; 4], &p),
        Err(Error::InvalidArgument(_))
    ));
    p.k = 3;
    p.nprobe = Some(0);
    assert!(matches!(
        c.search(&[1.0; 4], &p),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        db.collection("nope"),
        Err(Error::CollectionNotFound(_))
    ));
    assert!(matches!(
        db.create_collection("../x", drift_engine::CollectionConfig::new(4, Metric::L2)),
        Err(Error::InvalidName { .. })
    ));
    assert_eq!(c.stats().live_vectors, 10);
}

/// Values near f32::MAX are finite but overflow distances and quantizer ranges: they are
/// refused at write time, naming the record; the largest accepted values survive a flush
/// and a restart, and oversized search requests are refused before anything is allocated.
#[test]
fn huge_values_and_oversized_requests_are_refused_and_nothing_breaks() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_db, c) = open_with(dir.path(), "c", 4);
        c.upsert(records(0, 300, 4, 5)).unwrap();
        let err = c.upsert(vec![
            Record::new(900, vec![3e38, -3e38, 0.0, 0.0]),
            Record::new(901, vec![-3e38, 3e38, 0.0, 0.0]),
        ]);
        match err {
            Err(
                e @ Error::OutOfRange {
                    id: 900,
                    position: 0,
                    ..
                },
            ) => {
                assert!(e.to_string().contains("id 900"), "{e}");
                assert!(e.is_user_error());
            }
            other => panic!("{other:?}"),
        }
        let big = drift_engine::config::MAX_ABS_VALUE;
        c.upsert(vec![
            Record::new(902, vec![big, -big, big, 0.0]),
            Record::new(903, vec![-big, big, -big, 0.0]),
        ])
        .unwrap();
        c.flush().unwrap();
        assert!(matches!(
            c.search(&[3e38, 0.0, 0.0, 0.0], &c.search_params(3)),
            Err(Error::OutOfRange { .. })
        ));
        let mut p = c.search_params(10);
        for (field, value) in [("rerank", usize::MAX / 2), ("rerank", 1_001)] {
            p.rerank = value;
            let e = c.search(&[0.0; 4], &p).unwrap_err();
            assert!(e.to_string().contains(field), "{e}");
        }
        p = c.search_params(10_000);
        p.rerank = 1_000;
        assert!(c
            .search(&[0.0; 4], &p)
            .unwrap_err()
            .to_string()
            .contains("k * rerank"));
        p = c.search_params(10);
        p.nprobe = Some(usize::MAX);
        assert!(c.search(&[0.0; 4], &p).is_err());
        p = c.search_params(10);
        p.max_probes = usize::MAX;
        assert!(c.search(&[0.0; 4], &p).is_err());
        p = c.search_params(10);
        p.ef_search = usize::MAX;
        assert!(c.search(&[0.0; 4], &p).is_err());
    }
    let (_db, c) = open_with(dir.path(), "c", 4);
    assert_eq!(c.stats().live_vectors, 302);
    assert!(c.get(900).unwrap().is_none());
    let hits = c
        .search(&[1e15, -1e15, 1e15, 0.0], &c.search_params(1))
        .unwrap();
    assert_eq!(hits[0].id, 902);
    assert!(hits[0].distance.is_finite());
}

#[test]
fn cosine_and_inner_product_rank_correctly() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    for metric in [Metric::Cosine, Metric::InnerProduct] {
        let c = db
            .create_collection(
                metric.name(),
                drift_engine::CollectionConfig::new(3, metric),
            )
            .unwrap();
        c.upsert(vec![
            Record::new(1, vec![1.0, 0.0, 0.0]),
            Record::new(2, vec![0.0, 10.0, 0.0]),
            Record::new(3, vec![0.7, 0.7, 0.0]),
        ])
        .unwrap();
        for flushed in [false, true] {
            if flushed {
                c.flush().unwrap();
            }
            let hits = c.search(&[0.0, 1.0, 0.0], &c.search_params(3)).unwrap();
            let ids: Vec<u64> = hits.iter().map(|h| h.id).collect();
            assert_eq!(ids, vec![2, 3, 1], "{metric:?} flushed={flushed}");
            if metric == Metric::Cosine {
                assert!(hits[0].distance.abs() < 1e-5);
                assert!((hits[2].distance - 1.0).abs() < 1e-5);
            } else {
                assert!((hits[0].distance + 10.0).abs() < 1e-4);
            }
        }
    }
    let c = db.collection("cosine").unwrap();
    assert!(matches!(
        c.upsert(vec![Record::new(9, vec![0.0; 3])]),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn dropped_collection_is_gone_and_its_handles_fail() {
    let dir = tempfile::tempdir().unwrap();
    let (db, c) = open_with(dir.path(), "gone", 4);
    c.upsert(records(0, 5, 4, 1)).unwrap();
    db.drop_collection("gone").unwrap();
    assert!(matches!(
        c.upsert(records(5, 1, 4, 1)),
        Err(Error::Closed(_))
    ));
    drop(db);
    let db = Database::open(dir.path()).unwrap();
    assert!(db.list().is_empty());
}

#[test]
fn explicit_training_reassigns_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, c) = open_with(dir.path(), "t", 8);
    c.upsert(records(0, 3000, 8, 9)).unwrap();
    c.flush().unwrap();
    let sample: Vec<f32> = crate::random_vectors(1000, 8, 77);
    let report = c.train(&sample).unwrap();
    assert_eq!(report.rows, 3000);
    assert!(report.buckets >= 40, "{report:?}");
    let s = c.stats();
    assert_eq!((s.live_vectors, s.l1_rows), (3000, 3000));
    drop((_db, c));
    let (_db, c) = open_with(dir.path(), "t", 8);
    assert_eq!(c.stats().live_vectors, 3000);
    for r in records(0, 3000, 8, 9).iter().step_by(201) {
        assert_eq!(c.get(r.id).unwrap().unwrap().vector, r.vector);
    }
}

#[test]
fn deletes_of_stored_rows_become_tombstones_and_survive() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_db, c) = open_with(dir.path(), "t", 8);
        c.upsert(records(0, 700, 8, 1)).unwrap();
        c.flush().unwrap();
        c.delete(&[5, 6]).unwrap();
        c.upsert(records(700, 10, 8, 2)).unwrap();
        c.flush().unwrap();
        let s = c.stats().storage;
        assert_eq!(s.tombstone_files, 1, "{s:?}");
        assert!(s.segments >= 1 && s.segment_bytes > 0);
    }
    // Remove the WAL: the deletes must come from the tombstone file alone.
    std::fs::remove_dir_all(dir.path().join("collections/t/wal")).unwrap();
    std::fs::create_dir(dir.path().join("collections/t/wal")).unwrap();
    let (_db, c) = open_with(dir.path(), "t", 8);
    assert!(c.get(5).unwrap().is_none());
    assert!(c.get(7).unwrap().is_some());
    assert_eq!(c.stats().live_vectors, 708);
}

#[test]
fn source_offsets_are_logged_with_their_writes_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let key = |p: u32| format!("events/{p}");
    {
        let (_db, c) = open_with(dir.path(), "o", 8);
        let mut batch: Vec<Write> = records(0, 50, 8, 1)
            .into_iter()
            .map(Write::Upsert)
            .collect();
        // Order matters inside a batch: 5 is deleted after its upsert, 7 re-upserted after.
        batch.push(Write::Delete(5));
        batch.push(Write::Delete(7));
        batch.push(Write::Upsert(records(7, 1, 8, 9).remove(0)));
        c.write(batch, &SourceMark::offsets(vec![(key(0), 42), (key(3), 7)]))
            .unwrap();
        // Durable with the writes, before any flush.
        assert_eq!(c.source_offsets()[&key(0)], 42);
        // An older offset never moves the position back.
        c.write(
            vec![],
            &SourceMark::offsets(vec![(key(0), 40), (key(1), 3)]),
        )
        .unwrap();
        assert_eq!(c.source_offsets()[&key(0)], 42);
    }
    let expect: std::collections::BTreeMap<String, i64> =
        [(key(0), 42), (key(1), 3), (key(3), 7)].into();
    {
        // From the WAL alone.
        let (_db, c) = open_with(dir.path(), "o", 8);
        assert_eq!(c.source_offsets(), expect);
        assert!(c.get(5).unwrap().is_none());
        assert_eq!(
            c.get(7).unwrap().unwrap().vector,
            records(7, 1, 8, 9)[0].vector
        );
        assert_eq!(c.stats().live_vectors, 49);
        c.flush().unwrap();
    }
    // From the manifest, once the flush retired the log.
    let (_db, c) = open_with(dir.path(), "o", 8);
    assert_eq!(c.source_offsets(), expect);
    assert_eq!(c.stats().live_vectors, 49);
}

#[test]
fn a_writer_whose_claim_was_superseded_is_refused_before_and_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (p0, p1) = ("events/0".to_string(), "events/1".to_string());
    let upserts = |from: u64| -> Vec<Write> {
        records(from, 5, 8, from)
            .into_iter()
            .map(Write::Upsert)
            .collect()
    };
    let fenced = |e: Error| match e {
        Error::Fenced { key, reason } => format!("{key}: {reason}"),
        other => panic!("expected a fencing error, got {other}"),
    };
    {
        let (_db, c) = open_with(dir.path(), "f", 8);
        // Unclaimed sources take unfenced writes, as before.
        c.write(upserts(0), &SourceMark::offsets(vec![(p0.clone(), 5)]))
            .unwrap();
        let old = c.claim_sources(std::slice::from_ref(&p0)).unwrap();
        c.write(upserts(5), &SourceMark::fenced(vec![(p0.clone(), 10)], old))
            .unwrap();
        // A rebalance: the partition moves to another writer, which claims it.
        let new = c.claim_sources(&[p0.clone(), p1.clone()]).unwrap();
        assert!(new > old);
        c.write(
            upserts(10),
            &SourceMark::fenced(vec![(p0.clone(), 15)], new),
        )
        .unwrap();
        // The old owner's late batch is refused whole: no row, no offset.
        let why = fenced(
            c.write(
                upserts(100),
                &SourceMark::fenced(vec![(p0.clone(), 12)], old),
            )
            .unwrap_err(),
        );
        assert!(
            why.contains("superseded") && why.contains("events/0"),
            "{why}"
        );
        assert!(c.get(100).unwrap().is_none());
        // Neither a write without an epoch nor an invented one gets through.
        fenced(
            c.write(upserts(200), &SourceMark::offsets(vec![(p1.clone(), 1)]))
                .unwrap_err(),
        );
        fenced(
            c.write(
                upserts(200),
                &SourceMark::fenced(vec![(p1.clone(), 1)], new + 5),
            )
            .unwrap_err(),
        );
        assert!(c.get(200).unwrap().is_none());
        assert_eq!(c.source_offsets()[&p0], 15);
        assert!(
            !c.source_offsets().contains_key(&p1),
            "epochs are not offsets"
        );
        // Bad keys are refused by name.
        assert!(matches!(
            c.claim_sources(&["a@b".to_string()]),
            Err(Error::InvalidArgument(_))
        ));
    }
    for flush in [false, true] {
        // From the WAL, then from the manifest: the fence survives restarts.
        let (_db, c) = open_with(dir.path(), "f", 8);
        fenced(
            c.write(upserts(300), &SourceMark::fenced(vec![(p0.clone(), 20)], 1))
                .unwrap_err(),
        );
        assert_eq!(c.source_offsets()[&p0], 15);
        assert_eq!(c.stats().live_vectors, 15);
        let next = c.claim_sources(std::slice::from_ref(&p1)).unwrap();
        assert!(next >= 3, "epochs only grow ({next})");
        c.write(vec![], &SourceMark::fenced(vec![(p1.clone(), 2)], next))
            .unwrap();
        if flush {
            c.flush().unwrap();
        }
    }
}

#[test]
fn a_torn_batch_never_advances_its_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("collections/o/wal");
    {
        let (_db, c) = open_with(dir.path(), "o", 8);
        let first = records(0, 10, 8, 1)
            .into_iter()
            .map(Write::Upsert)
            .collect();
        c.write(first, &SourceMark::offsets(vec![("t/0".into(), 10)]))
            .unwrap();
        let second = records(10, 10, 8, 2)
            .into_iter()
            .map(Write::Upsert)
            .collect();
        c.write(second, &SourceMark::offsets(vec![("t/0".into(), 20)]))
            .unwrap();
    }
    // Cut the last bytes of the log: the second batch's offsets record is torn off.
    let newest = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::metadata(p).unwrap().len() > 0)
        .max()
        .unwrap();
    let len = std::fs::metadata(&newest).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let (_db, c) = open_with(dir.path(), "o", 8);
    assert_eq!(c.source_offsets()["t/0"], 10);
    // The rows logged before the torn record survive; replaying the batch from offset 10
    // upserts them again, which changes nothing.
    assert_eq!(c.stats().live_vectors, 20);
}

/// One damaged collection does not take the database down: it is listed with its error,
/// refused on every access, and can be dropped; the others keep working. A create that
/// fails leaves nothing behind.
#[test]
fn a_collection_that_cannot_open_is_isolated_and_a_failed_create_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path()).unwrap();
        for name in ["a", "b"] {
            let c = db.create_collection(name, small_config(4)).unwrap();
            c.upsert(records(0, 600, 4, 9)).unwrap();
            c.flush().unwrap();
        }
    }
    // Damage every file of b's manifest history.
    let bdir = dir.path().join("collections").join("b");
    let mut damaged = 0;
    for entry in walk(&bdir) {
        let name = entry.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".mf") {
            std::fs::write(&entry, b"not a manifest").unwrap();
            damaged += 1;
        }
    }
    assert!(damaged > 0, "no manifest found under {}", bdir.display());
    let db = Database::open(dir.path()).expect("the database opens without b");
    let a = db.collection("a").unwrap();
    assert_eq!(a.stats().live_vectors, 600);
    a.upsert(records(600, 10, 4, 9)).unwrap();
    let err = db.collection("b").unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains(".mf"), "{err}");
    let failed = db.failed();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, "b");
    assert!(matches!(
        db.create_collection("b", small_config(4)),
        Err(Error::CollectionExists(_))
    ));
    db.drop_collection("b").unwrap();
    assert!(db.failed().is_empty());
    assert!(!bdir.exists());
    db.create_collection("b", small_config(4)).unwrap();

    // A create whose object store cannot be used fails whole.
    let mut cfg = small_config(4);
    cfg.settings.storage.uri = "fs:///proc/drift-cannot-write-here".into();
    assert!(db.create_collection("c", cfg).is_err());
    assert!(!dir.path().join("collections").join("c").exists());
    drop(db);
    let db = Database::open(dir.path()).unwrap();
    assert!(db.failed().is_empty(), "{:?}", db.failed());
    assert_eq!(db.list().len(), 2);
}

#[test]
fn dropping_a_collection_that_cannot_open_deletes_its_own_store_and_nothing_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = tempfile::tempdir().unwrap();
    let mut cfg = small_config(4);
    cfg.settings.storage.uri = format!("fs://{}", store.path().display());
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.create_collection("own", cfg.clone()).unwrap();
        c.upsert(records(0, 600, 4, 9)).unwrap();
        c.flush().unwrap();
    }
    let objects = store.path().join("own");
    for f in walk(&objects) {
        if f.extension().is_some_and(|e| e == "mf") {
            std::fs::write(&f, b"damaged").unwrap();
        }
    }
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(db.failed().len(), 1);
    db.drop_collection("own").unwrap();
    assert!(
        walk(&objects).is_empty(),
        "objects left behind: {:?}",
        walk(&objects)
    );
    // Re-created at the same location, the collection starts empty.
    let c = db.create_collection("own", cfg.clone()).unwrap();
    assert_eq!(c.stats().live_vectors, 0);
    c.upsert(records(0, 10, 4, 1)).unwrap();
    c.flush().unwrap();

    // Objects nobody dropped (a store that was unreachable at drop time, another data
    // directory) make a create there fail, whole, rather than adopt them.
    let other = tempfile::tempdir().unwrap();
    let db2 = Database::open(other.path()).unwrap();
    let err = db2.create_collection("own", cfg).unwrap_err();
    assert!(err.to_string().contains("already holds"), "{err}");
    assert!(db2.list().is_empty());
    assert!(!other.path().join("collections").join("own").exists());
    assert_eq!(
        c.stats().live_vectors,
        10,
        "the refused create touched the owner's data"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Work counters (flushes, trainings, splits, rows rewritten, …) are cumulative across
/// restarts: a new process reports what earlier ones did.
#[test]
fn work_counters_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let (_db, c) = open_with(dir.path(), "c", 4);
        c.upsert(records(0, 3000, 4, 11)).unwrap();
        c.flush().unwrap();
        c.upsert(records(3000, 3000, 4, 12)).unwrap();
        c.flush().unwrap();
        c.maintain(8).unwrap();
        c.stats()
    };
    assert!(before.flushes >= 2 && before.trainings >= 1, "{before:?}");
    let (_db, c) = open_with(dir.path(), "c", 4);
    let after = c.stats();
    assert_eq!(after.flushes, before.flushes);
    assert_eq!(after.trainings, before.trainings);
    assert_eq!(after.maintenance, before.maintenance);
    c.upsert(records(6000, 500, 4, 13)).unwrap();
    c.flush().unwrap();
    assert_eq!(c.stats().flushes, before.flushes + 1);
}

/// Dropping a collection whose objects live in a store of their own removes them: creating
/// it again at the same location starts empty.
#[test]
fn drop_removes_the_objects_of_a_separate_store() {
    let dir = tempfile::tempdir().unwrap();
    let objects = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let mut cfg = small_config(4);
    cfg.settings.storage.uri = format!("fs://{}", objects.path().display());
    let c = db.create_collection("c", cfg.clone()).unwrap();
    c.upsert(records(0, 700, 4, 3)).unwrap();
    c.flush().unwrap();
    let stored = walk(&objects.path().join("c"));
    assert!(!stored.is_empty());
    drop(c);
    db.drop_collection("c").unwrap();
    let left = if objects.path().join("c").exists() {
        walk(&objects.path().join("c"))
    } else {
        Vec::new()
    };
    assert!(left.is_empty(), "{left:?}");
    let c = db.create_collection("c", cfg).unwrap();
    assert_eq!(c.stats().live_vectors, 0);
}

/// A commit whose manifest write fails (here: the manifest folder replaced by a file) keeps
/// the WAL and reuses no object name: the next commit writes a new segment instead of
/// overwriting the one the failed attempt's chunks already point into.
#[test]
fn a_failed_manifest_write_loses_nothing_and_reuses_no_name() {
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("collections/c/objects");
    let expect = |c: &drift_engine::Collection, n: u64| {
        for r in records(0, n as usize, 4, 21).iter().step_by(13) {
            let got = c.get(r.id).unwrap().expect("acknowledged row");
            assert_eq!(got.vector, r.vector, "id {}", r.id);
        }
        assert_eq!(c.stats().live_vectors, n as usize);
    };
    {
        let (_db, c) = open_with(dir.path(), "c", 4);
        let all = records(0, 1200, 4, 21);
        c.upsert(all[..700].to_vec()).unwrap();
        c.flush().unwrap();
        std::fs::rename(objects.join("manifest"), objects.join("manifest.saved")).unwrap();
        std::fs::write(objects.join("manifest"), b"in the way").unwrap();
        c.upsert(all[700..1000].to_vec()).unwrap();
        assert!(c.flush().is_err(), "the manifest write must fail");
        std::fs::remove_file(objects.join("manifest")).unwrap();
        std::fs::rename(objects.join("manifest.saved"), objects.join("manifest")).unwrap();
        c.upsert(all[1000..].to_vec()).unwrap();
        c.flush().unwrap();
        expect(&c, 1200);
    }
    let (_db, c) = open_with(dir.path(), "c", 4);
    expect(&c, 1200);
}

/// Flips one byte of `path` at `at` (from the end when negative).
fn flip(path: &std::path::Path, at: i64) {
    let mut data = std::fs::read(path).unwrap();
    let i = if at < 0 { data.len() as i64 + at } else { at } as usize;
    data[i] ^= 0x5a;
    std::fs::write(path, data).unwrap();
}

/// Files under `dir`, sorted.
fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn quiet_config() -> drift_engine::CollectionConfig {
    let mut c = crate::small_config(8);
    c.settings.maintenance.background = false;
    c
}

#[test]
fn repair_cuts_a_damaged_wal_at_the_damage_and_keeps_everything_before_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.create_collection("w", quiet_config()).unwrap();
        for b in 0..3u64 {
            c.upsert(records(b * 50, 50, 8, b)).unwrap();
        }
        db.close();
    }
    let wal = files(&dir.path().join("collections/w/wal"));
    let newest = wal.last().unwrap();
    let len = std::fs::metadata(newest).unwrap().len() as i64;
    flip(newest, len / 2);
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(db.failed().len(), 1, "the damaged collection is set aside");
    let report = db.repair_collection("w").unwrap();
    assert_eq!(report.actions.len(), 1, "{report:?}");
    assert!(report.actions[0].contains("cut WAL file"), "{report:?}");
    let c = db.collection("w").unwrap();
    // What survives is exactly the records before the damage: a prefix of the ids.
    let live = c.stats().live_vectors;
    assert!(live > 0 && live < 150, "{live}");
    assert_eq!(report.live_vectors, live);
    for id in 0..150u64 {
        assert_eq!(c.get(id).unwrap().is_some(), id < live as u64, "id {id}");
    }
    // It works again and stays repaired.
    c.upsert(records(1000, 5, 8, 9)).unwrap();
    db.close();
    drop(db);
    let db = Database::open(dir.path()).unwrap();
    assert!(db.failed().is_empty());
    assert_eq!(db.collection("w").unwrap().stats().live_vectors, live + 5);
    // Nothing to repair now.
    assert!(db.repair_collection("w").unwrap().actions.is_empty());
}

#[test]
fn repair_falls_back_to_the_previous_manifest_and_refuses_a_damaged_segment() {
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("collections/m/objects");
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.create_collection("m", quiet_config()).unwrap();
        c.upsert(records(0, 600, 8, 1)).unwrap();
        c.flush().unwrap();
        c.upsert(records(600, 100, 8, 2)).unwrap();
        c.flush().unwrap();
        db.close();
    }
    let manifests = files(&objects.join("manifest"));
    assert_eq!(
        manifests.len(),
        2,
        "the previous manifest is kept one commit longer"
    );
    flip(manifests.last().unwrap(), -3);
    {
        let db = Database::open(dir.path()).unwrap();
        let report = db.repair_collection("m").unwrap();
        assert!(
            report.actions.len() == 1 && report.actions[0].contains("previous manifest"),
            "{report:?}"
        );
        assert!(objects.join("damaged/manifest").exists());
        let c = db.collection("m").unwrap();
        // The first flush's rows are all back; the second commit's come back from the WAL
        // as far as it still holds them.
        let live = c.stats().live_vectors;
        assert!((600..=700).contains(&live), "{live}");
        for id in 0..600 {
            assert!(c.get(id).unwrap().is_some(), "id {id}");
        }
        c.flush().unwrap();
        db.close();
    }
    // A damaged segment is not guessed around: the error names it, the collection stays
    // set aside, and it can still be dropped.
    let segment = files(&objects.join("segments")).remove(0);
    flip(&segment, 40);
    let db = Database::open(dir.path()).unwrap();
    let err = db.repair_collection("m").unwrap_err().to_string();
    assert!(
        err.contains("cannot be repaired") && err.contains("segments"),
        "{err}"
    );
    assert_eq!(db.failed().len(), 1);
    db.drop_collection("m").unwrap();
    assert!(db.failed().is_empty());
}
