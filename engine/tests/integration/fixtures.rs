//! A small collection committed under `tests/fixtures/storage-v1/` (segments, tombstones,
//! manifest, WAL) must keep opening with the same contents, and its segment and manifest
//! must re-encode to the same bytes: a format change cannot slip in unnoticed.
//!
//! To regenerate after a deliberate format change (and bump the format version):
//! `DRIFT_WRITE_FIXTURES=1 cargo test -p drift-engine --test integration fixture`.

use std::path::{Path, PathBuf};

use drift_engine::storage::manifest::Manifest;
use drift_engine::storage::segment;
use drift_engine::{CollectionConfig, Database, Metric, Record};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/storage-v1")
}

/// Record `i` of the fixture: decimal and integer-valued components, a payload on some.
fn record(i: u64) -> Record {
    let v = vec![
        i as f32,
        (i % 7) as f32 * 0.25,
        -(i as f32) / 8.0,
        3.5 + i as f32 * 0.1,
    ];
    let mut r = Record::new(i, v);
    if i.is_multiple_of(4) {
        r.payload = Some(format!("{{\"n\":{i}}}"));
    }
    r
}

const DELETED: [u64; 3] = [3, 17, 30];

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn write_fixture(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    let db = Database::open(dir).unwrap();
    let mut cfg = CollectionConfig::new(4, Metric::L2);
    cfg.settings.target_bucket_size = 8;
    cfg.settings.maintenance.background = false;
    let c = db.create_collection("fx", cfg).unwrap();
    c.upsert((0..40).map(record).collect()).unwrap();
    c.flush().unwrap();
    c.delete(&DELETED).unwrap();
    c.upsert(vec![record(40)]).unwrap();
    c.flush().unwrap();
    c.close();
    drop(db);
    // Opening once more removes the superseded manifest.
    drop(Database::open(dir).unwrap());
    for sub in ["LOCK", "collections/fx/cache"] {
        let p = dir.join(sub);
        let _ = std::fs::remove_file(&p);
        let _ = std::fs::remove_dir_all(&p);
    }
}

fn only_file(dir: &Path) -> PathBuf {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.pop().unwrap()
}

#[test]
fn fixture_collection_reads_back_unchanged() {
    let fixture = fixture_dir();
    if std::env::var_os("DRIFT_WRITE_FIXTURES").is_some() {
        write_fixture(&fixture);
    }
    let objects = fixture.join("collections/fx/objects");
    // Byte level: decoding and re-encoding gives the committed bytes back.
    let seg_dir = objects.join("segments");
    let mut segs: Vec<_> = std::fs::read_dir(&seg_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    assert!(!segs.is_empty());
    for path in &segs {
        let bytes = std::fs::read(path).unwrap();
        let d = segment::decode(&bytes).unwrap();
        let inputs: Vec<segment::ChunkInput> = d
            .chunks
            .iter()
            .zip(&d.meta.chunks)
            .map(|(c, m)| c.input(m))
            .collect();
        let (again, _) = segment::encode(d.meta.dim, &inputs);
        assert!(again == bytes, "{} re-encodes differently", path.display());
    }
    let mf = only_file(&objects.join("manifest"));
    let bytes = std::fs::read(&mf).unwrap();
    // The fixture pins manifest format 1 (no counters); it still reads, and what it reads
    // round-trips through the current format.
    let m = Manifest::decode(&bytes).unwrap();
    assert_eq!(bytes[8], 1, "the fixture is a format 1 manifest");
    assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
    assert_eq!(m.dim, 4);
    assert_eq!(m.tombstones.len(), 1);

    // Engine level: open a copy and find exactly the records written.
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture, tmp.path());
    let db = Database::open(tmp.path()).unwrap();
    let c = db.collection("fx").unwrap();
    assert_eq!(c.stats().live_vectors, 41 - DELETED.len());
    for i in 0..=40 {
        let got = c.get(i).unwrap();
        if DELETED.contains(&i) {
            assert!(got.is_none(), "deleted id {i} is back");
        } else {
            assert_eq!(got.unwrap(), record(i), "id {i}");
        }
    }
    let hits = c.search(&record(12).vector, &c.search_params(3)).unwrap();
    assert_eq!(hits[0].id, 12);
}
