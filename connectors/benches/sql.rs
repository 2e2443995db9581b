//! SQL overhead per query: the same search through the engine API, through
//! `vector_search(...)`, and through the rewritten `ORDER BY l2_distance(...) LIMIT 10`; the
//! `_plan_only` cases stop after physical planning, to split planning from execution; the
//! `_cached` cases run through a [`sql::PlanCache`], which plans each shape once and binds
//! the next query vector into the kept plan.
//! Run: `cargo bench -p drift-connectors --bench sql`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use drift_connectors::sql;
use drift_engine::{CollectionConfig, Database, Metric, Record};
use rand::{Rng, SeedableRng};

const DIM: usize = 64;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Arc::new(Database::open(dir.path()).expect("open"));
    let coll = db
        .create_collection("b", CollectionConfig::new(DIM, Metric::L2))
        .expect("create");
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let centres: Vec<Vec<f32>> = (0..50)
        .map(|_| (0..DIM).map(|_| rng.gen_range(-10.0..10.0)).collect())
        .collect();
    let recs: Vec<Record> = (0..20_000u64)
        .map(|i| {
            let c = &centres[(i % 50) as usize];
            Record::new(
                i,
                c.iter().map(|x| x + rng.gen_range(-1.0f32..1.0)).collect(),
            )
        })
        .collect();
    for chunk in recs.chunks(2000) {
        coll.upsert(chunk.to_vec()).expect("upsert");
    }
    coll.flush().expect("flush");
    coll.maintain(20).expect("maintain");
    let queries: Vec<Vec<f32>> = (0..64)
        .map(|i| {
            centres[i % 50]
                .iter()
                .map(|x| x + rng.gen_range(-1.0f32..1.0))
                .collect()
        })
        .collect();
    let lit = |q: &[f32]| {
        format!(
            "[{}]",
            q.iter()
                .map(|x| format!("{x:?}"))
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    let search_sql: Vec<String> = queries
        .iter()
        .map(|q| {
            format!(
                "SELECT id, _distance FROM vector_search('b', {}, 10)",
                lit(q)
            )
        })
        .collect();
    let order_sql: Vec<String> = queries
        .iter()
        .map(|q| {
            format!(
                "SELECT id, l2_distance(vector, {}) AS d FROM b ORDER BY d LIMIT 10",
                lit(q)
            )
        })
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let ctx = sql::context(db.clone()).expect("context");

    let mut g = c.benchmark_group("sql_overhead_20k_x64");
    g.measurement_time(std::time::Duration::from_secs(4));
    g.warm_up_time(std::time::Duration::from_secs(1));
    let params = coll.search_params(10);
    let mut i = 0;
    g.bench_function("engine_api", |b| {
        b.iter(|| {
            i = (i + 1) % queries.len();
            coll.search(&queries[i], &params).expect("search")
        })
    });
    g.bench_function("sql_vector_search", |b| {
        b.iter(|| {
            i = (i + 1) % queries.len();
            rt.block_on(async { ctx.sql(&search_sql[i]).await?.collect().await })
                .expect("sql")
        })
    });
    g.bench_function("sql_order_by_limit", |b| {
        b.iter(|| {
            i = (i + 1) % queries.len();
            rt.block_on(async { ctx.sql(&order_sql[i]).await?.collect().await })
                .expect("sql")
        })
    });
    let cache = sql::PlanCache::default();
    g.bench_function("sql_order_by_limit_cached", |b| {
        b.iter(|| {
            i = (i + 1) % queries.len();
            rt.block_on(cache.query(&ctx, &order_sql[i])).expect("sql")
        })
    });
    g.bench_function("sql_vector_search_cached", |b| {
        b.iter(|| {
            i = (i + 1) % queries.len();
            rt.block_on(cache.query(&ctx, &search_sql[i])).expect("sql")
        })
    });
    let stats = cache.stats();
    assert!(
        stats.misses <= 2 && stats.bypassed == 0,
        "every cached query after the first of its shape reuses the plan: {stats:?}"
    );
    g.bench_function("sql_order_by_limit_plan_only", |b| {
        b.iter(|| {
            i = (i + 1) % queries.len();
            rt.block_on(async { ctx.sql(&order_sql[i]).await?.create_physical_plan().await })
                .expect("sql")
        })
    });
    g.bench_function("sql_vector_search_plan_only", |b| {
        b.iter(|| {
            i = (i + 1) % queries.len();
            rt.block_on(async { ctx.sql(&search_sql[i]).await?.create_physical_plan().await })
                .expect("sql")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
