//! Search and upsert through the public API on a 50k x 64 clustered set (single thread).
//! Run: `cargo bench -p drift-lab --bench search`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use drift_engine::{AdcKernel, CollectionConfig, Database, Metric, Record};
use drift_lab::datasets::Clustered;

fn bench(c: &mut Criterion) {
    let gen = Clustered::new(64, 100, 42);
    let base = gen.sample(50_000, 0);
    let queries = gen.sample(256, 1);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Database::open(dir.path()).expect("open");
    let coll = db
        .create_collection("bench", CollectionConfig::new(64, Metric::L2))
        .expect("create");
    for start in (0..base.len()).step_by(1000) {
        let batch = (start..start + 1000)
            .map(|i| Record::new(i as u64, base.row(i).to_vec()))
            .collect();
        coll.upsert(batch).expect("upsert");
    }
    coll.flush().expect("flush");

    let mut g = c.benchmark_group("search_50k_x64");
    g.measurement_time(std::time::Duration::from_secs(3));
    g.warm_up_time(std::time::Duration::from_secs(1));
    g.throughput(Throughput::Elements(1));
    let mut params = coll.search_params(10);
    let mut qi = 0;
    g.bench_function("default", |b| {
        b.iter(|| {
            qi = (qi + 1) % queries.len();
            coll.search(queries.row(qi), &params).expect("search")
        })
    });
    params.adc = AdcKernel::Lut;
    g.bench_function("lut_kernel", |b| {
        b.iter(|| {
            qi = (qi + 1) % queries.len();
            coll.search(queries.row(qi), &params).expect("search")
        })
    });
    g.finish();

    let mut g = c.benchmark_group("upsert");
    g.measurement_time(std::time::Duration::from_secs(3));
    g.warm_up_time(std::time::Duration::from_secs(1));
    g.throughput(Throughput::Elements(1000));
    let up = db
        .create_collection("upsert", CollectionConfig::new(64, Metric::L2))
        .expect("create");
    let mut next = 0u64;
    g.bench_function("batch_1000_x64_durable", |b| {
        b.iter(|| {
            let batch = (0..1000)
                .map(|i| Record::new(next + i, base.row(((next + i) % 50_000) as usize).to_vec()))
                .collect();
            next += 1000;
            up.upsert(batch).expect("upsert")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
