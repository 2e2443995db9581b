//! Model-based crash simulation: a seeded random sequence of upserts, deletes, flushes and
//! maintenance passes runs in child processes that crash (abort at a random pass through a
//! commit's failpoints, or at the end of their share of the sequence, as a power cut would);
//! between crashes the newest WAL file may get a zero-filled or torn tail. After every restart
//! the collection is checked against an in-memory model of the acknowledged writes: every
//! acknowledged upsert is there with its latest vector, no deleted id is back, the one batch
//! in flight at the crash was applied whole or not at all, and an exhaustive search (every
//! bucket, every row re-ranked) returns the model's exact nearest neighbours.
//!
//! `DRIFT_SIM_ROUNDS` and `DRIFT_SIM_OPS` (operations per round) size the run; the defaults
//! keep it to a few thousand operations for CI (see the README for the soak command).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

use drift_engine::storage::fault::{FaultOp, Faults};
use drift_engine::{Collection, Database, Record};
use rand::{Rng, SeedableRng};

use crate::{open_with, spawn_child, FAILPOINTS as POINTS};

const DIM: usize = 8;
/// Ids are drawn from `0..UNIVERSE`, so upserts replace and deletes hit often.
const UNIVERSE: u64 = 400;
const DIR_ENV: &str = "DRIFT_SIM_DIR";
const RANGE_ENV: &str = "DRIFT_SIM_RANGE";
const SEED_ENV: &str = "DRIFT_SIM_SEED";

/// One step of the sequence.
#[derive(Debug, Clone)]
enum Op {
    Upsert(Vec<Record>),
    Delete(Vec<u64>),
    Flush,
    Maintain(usize),
}

/// Operation `i` of the sequence seeded `seed` (the same in the child and the parent).
fn op(seed: u64, i: u64) -> Op {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9) ^ i);
    match rng.gen_range(0..100) {
        0..=59 => {
            let n = rng.gen_range(1..=40);
            Op::Upsert(
                (0..n)
                    .map(|_| {
                        let id = rng.gen_range(0..UNIVERSE);
                        Record::new(id, (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect())
                    })
                    .collect(),
            )
        }
        60..=84 => Op::Delete(
            (0..rng.gen_range(1..=12))
                .map(|_| rng.gen_range(0..UNIVERSE))
                .collect(),
        ),
        85..=93 => Op::Flush,
        _ => Op::Maintain(rng.gen_range(1..=3)),
    }
}

/// The acknowledged state: id → vector.
type Model = BTreeMap<u64, Vec<f32>>;

/// `model` after `op` (a batch applies in order: the last write of an id wins).
fn apply(model: &mut Model, op: &Op) {
    match op {
        Op::Upsert(recs) => {
            for r in recs {
                model.insert(r.id, r.vector.clone());
            }
        }
        Op::Delete(ids) => {
            for id in ids {
                model.remove(id);
            }
        }
        Op::Flush | Op::Maintain(_) => {}
    }
}

/// Runs only as the child of `a_seeded_random_history_survives_every_crash_and_torn_tail`:
/// operations `from..to` of the sequence, printing `ack i` once operation `i` returned, then
/// a crash (a failpoint on the way, or an abort at the end).
#[test]
#[ignore = "helper process for the simulation"]
fn simulation_child() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let env = |k: &str| std::env::var(k).unwrap();
    let seed: u64 = env(SEED_ENV).parse().unwrap();
    let (from, to) = env(RANGE_ENV)
        .split_once("..")
        .map(|(a, b)| (a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap()))
        .unwrap();
    let (_db, c) = open_with(Path::new(&dir), "sim", DIM);
    // A concurrent reader: searches and whole scans while the writes, flushes and
    // maintenance run (and while the crash lands); any error or duplicate it sees is printed.
    let reader = c.clone();
    std::thread::spawn(move || {
        let mut rng = rand::rngs::StdRng::seed_from_u64(from);
        loop {
            let q: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect();
            if let Err(e) = reader.search(&q, &reader.search_params(10)) {
                println!("reader error: search: {e}");
            }
            let mut seen = std::collections::HashSet::new();
            for batch in reader.clone().scan(64) {
                match batch {
                    Ok(rows) => {
                        for r in rows {
                            if !seen.insert(r.id) {
                                println!("reader error: scan returned id {} twice", r.id);
                            }
                        }
                    }
                    Err(e) => println!("reader error: scan: {e}"),
                }
            }
        }
    });
    for i in from..to {
        match op(seed, i) {
            Op::Upsert(recs) => {
                c.upsert(recs).unwrap();
            }
            Op::Delete(ids) => {
                c.delete(&ids).unwrap();
            }
            Op::Flush => {
                c.flush().unwrap();
            }
            Op::Maintain(n) => {
                c.maintain(n).unwrap();
            }
        }
        println!("ack {i}");
    }
    // A power cut at the end: no close, no final flush.
    std::process::abort();
}

/// Damages the newest WAL file's tail the way a crash can: zeros (a file system that
/// extended the file but lost the data) or a torn record (random bytes).
fn damage_tail(dir: &Path, rng: &mut impl Rng) -> &'static str {
    let wal = dir.join("collections/sim/wal");
    let Some(newest) = std::fs::read_dir(&wal)
        .map(|d| d.map(|e| e.unwrap().path()).max())
        .ok()
        .flatten()
    else {
        return "none (no log)";
    };
    let junk: Vec<u8> = match rng.gen_range(0..3) {
        0 => return "none",
        1 => vec![0u8; rng.gen_range(1..=4096)],
        _ => (0..rng.gen_range(1..=300)).map(|_| rng.gen()).collect(),
    };
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&newest)
        .unwrap();
    std::io::Write::write_all(&mut f, &junk).unwrap();
    if junk.iter().all(|&b| b == 0) {
        "zeros"
    } else {
        "torn record"
    }
}

/// Checks `c` against `model`: every id of the universe, the live count, and an exhaustive
/// search for a few queries (after a flush, so that every row is in a bucket).
fn check(c: &Collection, model: &Model, round: usize, rng: &mut impl Rng) {
    for id in 0..UNIVERSE {
        let got = c.get(id).unwrap().map(|r| r.vector);
        assert_eq!(got.as_ref(), model.get(&id), "round {round}: id {id}");
    }
    assert_eq!(
        c.stats().live_vectors,
        model.len(),
        "round {round}: live count"
    );
    c.flush().unwrap();
    let buckets = c.stats().buckets.max(1);
    for _ in 0..3 {
        let q: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let mut params = c.search_params(10);
        params.recall_target = None;
        params.nprobe = Some(buckets);
        params.rerank = model.len().div_ceil(10).clamp(1, 1000);
        let got: Vec<f32> = c
            .search(&q, &params)
            .unwrap()
            .iter()
            .map(|h| h.distance)
            .collect();
        let mut want: Vec<f32> = model
            .values()
            .map(|v| v.iter().zip(&q).map(|(a, b)| (a - b) * (a - b)).sum())
            .collect();
        want.sort_by(f32::total_cmp);
        want.truncate(10);
        assert_eq!(got.len(), want.len(), "round {round}: hits");
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-4 * w.max(1.0),
                "round {round}: {got:?} vs {want:?}"
            );
        }
    }
}

#[test]
fn a_seeded_random_history_survives_every_crash_and_torn_tail() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let rounds = env("DRIFT_SIM_ROUNDS", 60);
    let per_round = env("DRIFT_SIM_OPS", 220);
    let seed = env("DRIFT_SIM_SEED", 7);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut model = Model::new();
    let mut next = 0u64;
    let (mut at_failpoint, mut applied_in_flight) = (0, 0);
    for round in 0..rounds as usize {
        let end = next + per_round;
        // A quarter of the rounds crash only at their end (no failpoint armed).
        let point = match rng.gen_range(0..POINTS.len() + 2) {
            i if i < POINTS.len() => POINTS[i],
            _ => "none",
        };
        let skip = rng.gen_range(0..24u32).to_string();
        let range = format!("{next}..{end}");
        let seed_text = seed.to_string();
        let child = spawn_child(
            "simulation::simulation_child",
            &[
                (DIR_ENV, dir.path().as_os_str()),
                (SEED_ENV, seed_text.as_ref()),
                (RANGE_ENV, range.as_ref()),
                ("DRIFT_FAILPOINT", point.as_ref()),
                ("DRIFT_FAILPOINT_SKIP", skip.as_ref()),
            ],
        );
        let out = child.wait_with_output().unwrap();
        assert!(
            !out.status.success(),
            "round {round}: the child always crashes"
        );
        let acked = BufReader::new(&out.stdout[..])
            .lines()
            .filter_map(|l| l.unwrap().strip_prefix("ack ")?.parse::<u64>().ok())
            .max();
        let done = acked.map_or(next, |a| a + 1);
        for i in next..done {
            apply(&mut model, &op(seed, i));
        }
        let tail = damage_tail(dir.path(), &mut rng);
        let db = Database::open(dir.path())
            .unwrap_or_else(|e| panic!("round {round} ({point} skip {skip}, tail {tail}): {e}"));
        let c = db.collection("sim").unwrap();
        // The batch in flight (if the crash cut one) is all there or not at all.
        let mut resumed = done;
        if done < end {
            at_failpoint += 1;
            let in_flight = op(seed, done);
            let mut after = model.clone();
            apply(&mut after, &in_flight);
            let now: Model = (0..UNIVERSE)
                .filter_map(|id| Some((id, c.get(id).unwrap()?.vector)))
                .collect();
            if now == after && now != model {
                applied_in_flight += 1;
                model = after;
            } else {
                assert_eq!(
                    now, model,
                    "round {round}: operation {done} ({in_flight:?}) was applied in part"
                );
            }
            resumed = done + 1;
        }
        eprintln!(
            "round {round}: ops {next}..{done} of ..{end}, crash at {point} skip {skip}, tail {tail}, {} live",
            model.len()
        );
        check(&c, &model, round, &mut rng);
        assert!(c.audit().problems.is_empty(), "round {round}: audit");
        db.close();
        drop(db);
        next = resumed;
    }
    eprintln!(
        "{next} operations in {rounds} rounds; {at_failpoint} crashes at a failpoint, {applied_in_flight} with the batch in flight applied"
    );
    assert!(at_failpoint >= 2, "the failpoints were reached");
    assert!(
        at_failpoint < rounds as usize,
        "some rounds ran to their end"
    );
}

/// `op` on `c`, accepting only an injected object-store fault as an error from the calls
/// that touch the store; returns whether it succeeded.
fn run_faulty(c: &Collection, op: &Op) -> bool {
    let r = match op {
        // Writes go to the WAL only: they never fail for an object-store fault.
        Op::Upsert(recs) => c.upsert(recs.clone()).map(|_| ()),
        Op::Delete(ids) => c.delete(ids).map(|_| ()),
        Op::Flush => c.flush().map(|_| ()),
        Op::Maintain(n) => c.maintain(*n).map(|_| ()),
    };
    match r {
        Ok(()) => true,
        Err(e) if matches!(op, Op::Flush | Op::Maintain(_)) => {
            assert!(e.to_string().contains("injected fault"), "{op:?}: {e}");
            false
        }
        Err(e) => panic!("{op:?} failed: {e}"),
    }
}

#[test]
fn object_store_faults_fail_commits_cleanly_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = format!(
        "memory://sim-faults-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let faults = Faults::for_store(&format!("{root}/sim"));
    let seed = 99;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut model = Model::new();
    let (mut failed, mut searched_with_error) = (0, 0);
    {
        let db = Database::open(dir.path()).unwrap();
        let mut config = crate::small_config(DIM);
        config.settings.storage.uri = root.clone();
        // Re-rank reads go to the store (through the disk cache), so read faults reach them.
        config.settings.storage.mapped_vectors = false;
        config.settings.storage.disk_cache_bytes = 64 << 10;
        config.settings.storage.block_cache_bytes = 16 << 10;
        let c = db.create_collection("sim", config).unwrap();
        for i in 0..1500u64 {
            if i % 50 == 0 {
                for f in [
                    FaultOp::Write,
                    FaultOp::Read,
                    FaultOp::Delete,
                    FaultOp::List,
                ] {
                    faults.set(f, [0, 0, 30, 100][rng.gen_range(0..4)]);
                }
            }
            let o = op(seed, i);
            if run_faulty(&c, &o) {
                apply(&mut model, &o);
            } else {
                failed += 1;
            }
            if i % 7 == 0 {
                let q: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect();
                match c.search(&q, &c.search_params(10)) {
                    Ok(hits) => {
                        for h in hits {
                            assert!(model.contains_key(&h.id), "op {i}: stale hit {}", h.id);
                        }
                    }
                    Err(e) => {
                        assert!(e.to_string().contains("injected fault"), "op {i}: {e}");
                        searched_with_error += 1;
                    }
                }
            }
        }
        assert!(faults.injected() > 0 && failed > 0, "faults were injected");
        faults.clear();
        c.flush().unwrap();
        check(&c, &model, 0, &mut rng);
        assert!(c.audit().problems.is_empty());
        db.close();
    }
    // After a restart everything acknowledged is there, from the store and the WAL.
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("sim").unwrap();
    check(&c, &model, 1, &mut rng);
    eprintln!(
        "{} faults injected; {failed} flushes or passes failed, {searched_with_error} searches",
        faults.injected()
    );
}

#[test]
fn a_full_disk_under_the_log_fails_writes_cleanly_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let seed = 5;
    let mut model = Model::new();
    {
        let (db, c) = open_with(dir.path(), "sim", DIM);
        let faults = Faults::for_wal(&dir.path().join("collections/sim/wal"));
        for i in 0..120u64 {
            let o = op(seed, i);
            assert!(run_faulty(&c, &o), "op {i}");
            apply(&mut model, &o);
        }
        // The disk fills: the next batch lands half-written and fails, naming the cause.
        faults.set(FaultOp::Write, 100);
        let err = c.upsert(crate::records(10_000, 5, DIM, 1)).unwrap_err();
        assert!(err.to_string().contains("no space left"), "{err}");
        faults.clear();
        // The log stops taking writes until a restart (fail-stop), and says so; reads go on.
        let err = c.upsert(crate::records(10_010, 1, DIM, 2)).unwrap_err();
        assert!(err.to_string().contains("write-ahead log failed"), "{err}");
        assert!(c.get(10_000).unwrap().is_none());
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let q: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect();
        assert!(!c.search(&q, &c.search_params(5)).unwrap().is_empty());
        db.close();
    }
    // After the restart the half-written batch is a torn tail: cut. Everything acknowledged
    // is there, and the collection takes writes again.
    let (_db, c) = open_with(dir.path(), "sim", DIM);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    check(&c, &model, 0, &mut rng);
    c.upsert(crate::records(10_000, 5, DIM, 1)).unwrap();
    assert!(c.get(10_004).unwrap().is_some());
}
