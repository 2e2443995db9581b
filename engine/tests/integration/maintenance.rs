//! Maintenance keeps the index consistent: random interleavings of upserts, deletes,
//! flushes and maintenance passes (property test), and passes racing writers and readers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use drift_engine::maintain::policy_for;
use drift_engine::{Collection, CollectionConfig, Database, Metric, PolicyKind, Record};
use proptest::prelude::*;

use crate::{random_vectors, records};

const DIM: usize = 8;

fn config(budget: usize) -> CollectionConfig {
    let mut c = CollectionConfig::new(DIM, Metric::L2);
    c.settings.memtable_capacity = 64;
    c.settings.flush_threshold = 1 << 30;
    c.settings.auto_train_min = 1 << 30;
    c.settings.target_bucket_size = 16;
    c.settings.maintenance.background = false;
    c.settings.maintenance.budget = budget;
    c
}

#[derive(Debug, Clone)]
enum Op {
    /// Upsert ids `start..start + n` (ids wrap in a small space, so re-upserts are common),
    /// with vectors from `seed` shifted by `shift` (drift).
    Upsert {
        start: u64,
        n: usize,
        seed: u64,
        shift: f32,
    },
    /// Delete every id in `start..start + n` that is `% step == 0`.
    Delete {
        start: u64,
        n: u64,
        step: u64,
    },
    Flush,
    Maintain {
        passes: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..300, 1usize..80, any::<u64>(), 0f32..6.0)
            .prop_map(|(start, n, seed, shift)| Op::Upsert { start, n, seed, shift }),
        2 => (0u64..300, 1u64..120, 1u64..4).prop_map(|(start, n, step)| Op::Delete { start, n, step }),
        2 => Just(Op::Flush),
        3 => (1usize..4).prop_map(|passes| Op::Maintain { passes }),
    ]
}

/// Every live id is stored exactly once, the id map agrees with the model, `get` returns
/// the model's vector, deleted ids are gone, and no search returns a deleted id.
fn check(c: &Collection, model: &HashMap<u64, Vec<f32>>) -> Result<(), TestCaseError> {
    let audit = c.audit();
    prop_assert!(audit.problems.is_empty(), "{:?}", audit.problems);
    prop_assert_eq!(audit.live, model.len());
    prop_assert_eq!(audit.in_l0 + audit.in_l1, model.len());
    for id in 0..400u64 {
        let got = c.get(id).unwrap();
        match model.get(&id) {
            Some(v) => prop_assert_eq!(&got.map(|r| r.vector), &Some(v.clone()), "id {}", id),
            None => prop_assert!(got.is_none(), "deleted id {} came back", id),
        }
    }
    let mut params = c.search_params(model.len().clamp(1, 50));
    params.nprobe = Some(10_000);
    for q in random_vectors(3, DIM, model.len() as u64).chunks_exact(DIM) {
        for h in c.search(q, &params).unwrap() {
            prop_assert!(
                model.contains_key(&h.id),
                "search returned deleted id {}",
                h.id
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_interleavings_keep_every_live_id_in_exactly_one_place(
        ops in prop::collection::vec(op(), 4..40),
        budget in prop_oneof![Just(16usize), Just(64), Just(100_000)],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        let c = db.create_collection("p", config(budget)).unwrap();
        let mut model: HashMap<u64, Vec<f32>> = HashMap::new();
        for op in &ops {
            match op {
                Op::Upsert { start, n, seed, shift } => {
                    let vs = random_vectors(*n, DIM, *seed);
                    let recs: Vec<Record> = vs
                        .chunks_exact(DIM)
                        .enumerate()
                        .map(|(i, v)| {
                            let v: Vec<f32> = v.iter().map(|x| x + shift).collect();
                            Record::new((start + i as u64) % 400, v)
                        })
                        .collect();
                    for r in &recs {
                        model.insert(r.id, r.vector.clone());
                    }
                    c.upsert(recs).unwrap();
                }
                Op::Delete { start, n, step } => {
                    let ids: Vec<u64> = (*start..start + n).filter(|i| i % step == 0).collect();
                    for id in &ids {
                        model.remove(id);
                    }
                    c.delete(&ids).unwrap();
                }
                Op::Flush => {
                    c.flush().unwrap();
                }
                Op::Maintain { passes } => {
                    c.maintain(*passes).unwrap();
                }
            }
            check(&c, &model)?;
        }
        // Run maintenance to quiescence: the policy then wants nothing, and bucket sizes are
        // within its bounds.
        c.flush().unwrap();
        let report = c.maintain(500).unwrap();
        prop_assert_eq!(report.pending, 0);
        // Judged before `check` searches: searches age bucket temperatures, which by design
        // can make a cold, empty bucket urgent enough to merge.
        let view = c.layer_view();
        let plan = policy_for(PolicyKind::Drift).plan(&view);
        prop_assert!(plan.is_empty(), "policy still wants work: {:?} in {:?}", plan, view.buckets);
        for b in &view.buckets {
            prop_assert!(b.live <= view.split_above(), "bucket {} has {} live rows", b.id, b.live);
        }
        check(&c, &model)?;
    }
}

#[test]
fn maintenance_racing_writers_and_readers_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let mut cfg = config(256);
    cfg.dim = 16;
    cfg.settings.flush_threshold = 512;
    cfg.settings.auto_train_min = 512;
    let c = db.create_collection("race", cfg).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = 3u64;
    let per_writer = 2000u64;
    std::thread::scope(|s| {
        for w in 0..writers {
            let c = c.clone();
            s.spawn(move || {
                let base = w * 1_000_000;
                for start in (0..per_writer).step_by(40) {
                    c.upsert(records(base + start, 40, 16, base + start))
                        .unwrap();
                    // Re-upsert a few earlier ids with new vectors, delete every 7th.
                    if start >= 80 {
                        let again: Vec<Record> =
                            records(base + start - 80, 10, 16, 7 + base + start)
                                .into_iter()
                                .filter(|r| (r.id - base) % 7 != 0)
                                .collect();
                        c.upsert(again).unwrap();
                    }
                    let dels: Vec<u64> = (start..start + 40)
                        .filter(|i| i % 7 == 0)
                        .map(|i| base + i)
                        .collect();
                    c.delete(&dels).unwrap();
                }
            });
        }
        {
            let (c, stop) = (c.clone(), stop.clone());
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    c.flush().unwrap();
                    c.maintain(2).unwrap();
                }
            });
        }
        {
            let (c, stop) = (c.clone(), stop.clone());
            s.spawn(move || {
                let q = records(0, 16, 16, 99);
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let hits = c.search(&q[i % 16].vector, &c.search_params(20)).unwrap();
                    let mut seen = std::collections::HashSet::new();
                    for h in &hits {
                        // (A deleted id may show up here: it is live between its upsert and
                        // its delete. After the writers finish, none may.)
                        assert!(seen.insert(h.id), "duplicate id {}", h.id);
                    }
                    i += 1;
                }
            });
        }
        // Stop the maintainer and reader once the writers are done.
        let c2 = c.clone();
        s.spawn(move || {
            while c2.stats().live_vectors < (writers * (per_writer - per_writer / 7 - 1)) as usize {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
            stop.store(true, Ordering::Relaxed);
        });
    });
    c.flush().unwrap();
    c.maintain(100).unwrap();
    let audit = c.audit();
    assert!(audit.problems.is_empty(), "{:?}", audit.problems);
    let stats = c.stats();
    println!(
        "race: {} live, {} buckets, {} splits, {} merges, {} compactions, {} reassigned",
        stats.live_vectors,
        stats.buckets,
        stats.maintenance.splits,
        stats.maintenance.merges,
        stats.maintenance.compactions,
        stats.maintenance.reassigned
    );
    assert!(
        stats.maintenance.splits > 0,
        "the race never split a bucket"
    );
    // Every writer's final state: ids not divisible by 7 live, with the last vector written.
    for w in 0..writers {
        let base = w * 1_000_000;
        for i in 0..per_writer {
            let got = c.get(base + i).unwrap();
            if i % 7 == 0 {
                assert!(got.is_none(), "deleted id {} came back", base + i);
                continue;
            }
            let got = got.unwrap_or_else(|| panic!("id {} lost", base + i));
            // The last write of id i: the re-upsert at start = (i / 40) * 40 + 80 if that ran.
            let block = i / 40 * 40;
            let rewritten = i % 40 < 10 && block + 80 < per_writer;
            let want = if rewritten {
                records(base + block, 10, 16, 7 + base + block + 80)[(i % 40) as usize]
                    .vector
                    .clone()
            } else {
                records(base + block, 40, 16, base + block)[(i % 40) as usize]
                    .vector
                    .clone()
            };
            assert_eq!(got.vector, want, "id {}", base + i);
        }
    }
    assert_eq!(
        audit.live as u64,
        writers * (per_writer - per_writer.div_ceil(7))
    );
    let mut params = c.search_params(100);
    params.nprobe = Some(10_000);
    for q in records(0, 20, 16, 5150) {
        for h in c.search(&q.vector, &params).unwrap() {
            assert!(h.id % 1_000_000 % 7 != 0, "deleted id {} returned", h.id);
        }
    }
}
