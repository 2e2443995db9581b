//! Storage measurements (README, "Storage"):
//!
//! ```text
//! cargo run --release -p drift-lab --features internals --example storage -- alp FILE...      # cold-tier size per data set
//! cargo run --release -p drift-lab --features internals --example storage -- build DIR N DIM  # clustered collection on disk
//! cargo run --release -p drift-lab --features internals --example storage -- open DIR         # re-open time and memory
//! ```
//! Run `open` in its own process after `build`, so resident memory is that of a restart.

use std::path::Path;
use std::time::Instant;

use drift_engine::storage::alp;
use drift_engine::{CollectionConfig, Database, Metric, Record};
use drift_lab::datasets::Clustered;
use drift_lab::vecfile::read_all;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Compressed size of `vectors` in ALP blocks of whole rows, as the cold region stores them.
fn cold_bytes(vectors: &[f32], dim: usize) -> usize {
    let per = (alp::BLOCK_VALUES / dim).max(1) * dim;
    let mut out = Vec::new();
    for block in vectors.chunks(per) {
        alp::encode_block(block, &mut out);
    }
    out.len()
}

fn alp_report(files: &[String]) {
    println!("| data | dim | vectors | raw f32 B/vector | cold (ALP) B/vector | gain | segment B/vector |");
    println!("|---|---|---|---|---|---|---|");
    let mut sets: Vec<(String, Vec<f32>, usize)> = files
        .iter()
        .map(|f| {
            let (v, dim) = read_all(Path::new(f)).expect("readable vector file");
            let name = Path::new(f)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string();
            (name, v, dim)
        })
        .collect();
    let synth = Clustered::new(128, 64, 7).sample(20_000, 0);
    sets.push((
        "clustered Gaussian f32 (synthetic)".into(),
        synth.vectors,
        128,
    ));
    for (name, v, dim) in sets {
        let n = v.len() / dim;
        let cold = cold_bytes(&v, dim);
        // The whole segment as the engine writes it: codes, ids, seqs, cold, metadata.
        let tmp = tempfile::tempdir().unwrap();
        let db = Database::open(tmp.path()).unwrap();
        let c = db
            .create_collection("alp", CollectionConfig::new(dim, Metric::L2))
            .unwrap();
        let recs: Vec<Record> = v
            .chunks_exact(dim)
            .enumerate()
            .map(|(i, x)| Record::new(i as u64, x.to_vec()))
            .collect();
        c.upsert(recs).unwrap();
        c.flush().unwrap();
        let seg = c.stats().storage.segment_bytes as f64 / n as f64;
        println!(
            "| {name} | {dim} | {n} | {} | {:.1} | {:.2}x | {seg:.1} |",
            dim * 4,
            cold as f64 / n as f64,
            (n * dim * 4) as f64 / cold as f64
        );
    }
}

fn build(dir: &Path, n: usize, dim: usize) {
    let _ = std::fs::remove_dir_all(dir);
    let db = Database::open(dir).unwrap();
    let c = db
        .create_collection("big", CollectionConfig::new(dim, Metric::L2))
        .unwrap();
    let gen = Clustered::new(dim, 1000, 11);
    let started = Instant::now();
    let batch = 10_000;
    for b in 0..n.div_ceil(batch) {
        let rows = batch.min(n - b * batch);
        let data = gen.sample(rows, 100 + b as u64);
        let recs = data
            .vectors
            .chunks_exact(dim)
            .enumerate()
            .map(|(i, v)| Record::new((b * batch + i) as u64, v.to_vec()))
            .collect();
        c.upsert(recs).unwrap();
    }
    c.flush().unwrap();
    let s = c.stats();
    println!(
        "built {n} x {dim} in {:.1} s: {} buckets, {} segments, {:.1} MiB of segments ({:.1} B/vector; raw f32 {} B/vector)",
        started.elapsed().as_secs_f64(),
        s.buckets,
        s.storage.segments,
        s.storage.segment_bytes as f64 / (1 << 20) as f64,
        s.storage.segment_bytes as f64 / n as f64,
        dim * 4
    );
}

fn open(dir: &Path) {
    let before = rss_mib();
    let started = Instant::now();
    let db = Database::open(dir).unwrap();
    let c = db.collection("big").unwrap();
    let opened = started.elapsed();
    let after_open = rss_mib();
    let s = c.stats();
    let dim = s.dim;
    let n = s.live_vectors;
    let stride = dim.div_ceil(8) * 8;
    let codes_ids = (n * (stride + 8)) as f64 / (1 << 20) as f64;
    let queries = Clustered::new(dim, 1000, 11).sample(1000, 9);
    let params = c.search_params(10);
    let pass = || {
        let t = Instant::now();
        for q in queries.vectors.chunks_exact(dim) {
            c.search(q, &params).unwrap();
        }
        t.elapsed().as_secs_f64() * 1e6 / 1000.0
    };
    let per_query = pass();
    let after_search = rss_mib();
    let warm = pass();
    println!("re-opened {n} x {dim} in {:.2} s", opened.as_secs_f64());
    let st = c.stats();
    println!(
        "searches probed {:.1} buckets and {:.0} codes on average; cache {:?}",
        st.mean_buckets_probed, st.mean_codes_scanned, st.storage
    );
    println!(
        "resident memory: {after_open:.0} MiB after open ({before:.0} MiB before); codes + ids alone are {codes_ids:.0} MiB, raw f32 would add {:.0} MiB",
        (n * dim * 4) as f64 / (1 << 20) as f64
    );
    println!(
        "1000 searches: {per_query:.0} us each cold, {warm:.0} us again warm; resident memory after the first 1000 {after_search:.0} MiB (block cache {:.0} MiB)",
        c.stats().storage.block_cache_bytes as f64 / (1 << 20) as f64
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("alp") => alp_report(&args[1..]),
        Some("build") if args.len() == 4 => build(
            Path::new(&args[1]),
            args[2].parse().expect("N"),
            args[3].parse().expect("DIM"),
        ),
        Some("open") if args.len() == 2 => open(Path::new(&args[1])),
        _ => eprintln!("usage: storage alp FILE... | build DIR N DIM | open DIR"),
    }
}
