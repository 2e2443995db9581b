//! SQL over a collection, end to end through a `SessionContext` set up by `register`.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, Float32Array, Float64Array, RecordBatch, StringArray, UInt64Array,
};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;
use drift_connectors::sql;
use drift_engine::{CollectionConfig, Database, Metric, Record};
use rand::{Rng, SeedableRng};

const DIM: usize = 8;
const ROWS: u64 = 3000;

fn vector(rng: &mut impl Rng) -> Vec<f32> {
    (0..DIM).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

fn setup() -> (tempfile::TempDir, Arc<Database>, SessionContext) {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open(dir.path()).unwrap());
    let mut cfg = CollectionConfig::new(DIM, Metric::L2);
    cfg.settings.target_bucket_size = 64;
    cfg.settings.maintenance.background = false;
    let c = db.create_collection("items", cfg).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let recs: Vec<Record> = (0..ROWS)
        .map(|i| Record {
            id: i,
            vector: vector(&mut rng),
            payload: Some(format!("{{\"n\": {i}}}")),
        })
        .collect();
    c.upsert(recs).unwrap();
    c.flush().unwrap();
    c.maintain(10).unwrap();
    let ctx = sql::context(db.clone()).unwrap();
    (dir, db, ctx)
}

async fn run(ctx: &SessionContext, q: &str) -> Vec<RecordBatch> {
    ctx.sql(q)
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"))
}

async fn err(ctx: &SessionContext, q: &str) -> String {
    match ctx.sql(q).await {
        Err(e) => e.to_string(),
        Ok(df) => match df.collect().await {
            Err(e) => e.to_string(),
            Ok(b) => panic!(
                "{q} should fail, got {}",
                pretty_format_batches(&b).unwrap()
            ),
        },
    }
}

/// The first column of the first row of `q`'s result, a Float64.
async fn first_f64(ctx: &SessionContext, q: &str) -> f64 {
    run(ctx, q).await[0]
        .column(0)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap()
        .value(0)
}

fn ids(batches: &[RecordBatch], col: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for b in batches {
        let a = b
            .column_by_name(col)
            .unwrap()
            .as_any()
            .downcast_ref::<UInt64Array>()
            .unwrap();
        out.extend(a.values().iter().copied());
    }
    out
}

/// An ORDER BY key for the exact answer: an expression the index-search rule leaves to
/// DataFusion's own sort over a full scan (a distance shifted by a constant orders the same).
fn exact_key(q: &str) -> String {
    format!("array_distance(vector, {q}) + 1.0")
}

fn literal(v: &[f32]) -> String {
    format!(
        "[{}]",
        v.iter()
            .map(|x| format!("{x:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn plan_text(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches).unwrap().to_string()
}

#[tokio::test]
async fn vector_search_returns_the_engine_results() {
    let (_d, db, ctx) = setup();
    let coll = db.collection("items").unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    for _ in 0..5 {
        let q = vector(&mut rng);
        let want: Vec<u64> = coll
            .search(&q, &coll.search_params(10))
            .unwrap()
            .iter()
            .map(|h| h.id)
            .collect();
        let got = run(
            &ctx,
            &format!("SELECT * FROM vector_search('items', {}, 10)", literal(&q)),
        )
        .await;
        assert_eq!(ids(&got, "id"), want);
        // Columns: the collection's plus _distance, nearest first.
        let b = &got[0];
        let schema = b.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["id", "vector", "payload", "_distance"]);
        let d = b
            .column_by_name("_distance")
            .unwrap()
            .as_any()
            .downcast_ref::<Float32Array>()
            .unwrap();
        assert!(d.values().windows(2).all(|w| w[0] <= w[1]));
        let p = b
            .column_by_name("payload")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(p.value(0), format!("{{\"n\": {}}}", want[0]));
    }
    // Options: explicit nprobe and a recall target, per call and per session.
    let q = literal(&vector(&mut rng));
    let wide = run(
        &ctx,
        &format!("SELECT id FROM vector_search('items', {q}, 10, 'nprobe=1000')"),
    )
    .await;
    let exact = run(
        &ctx,
        &format!("SELECT id FROM items ORDER BY {} LIMIT 10", exact_key(&q)),
    )
    .await;
    assert_eq!(ids(&wide, "id"), ids(&exact, "id"));
    // By id: the stored vector of record 42 is its own nearest neighbour.
    let by_id = run(
        &ctx,
        "SELECT id FROM vector_search('items', 42, 3, 'nprobe=1000')",
    )
    .await;
    assert_eq!(ids(&by_id, "id")[0], 42);
    run(&ctx, "SET drift.recall_target = 0.99").await;
    let targeted = run(
        &ctx,
        &format!("SELECT id FROM vector_search('items', {q}, 10)"),
    )
    .await;
    assert_eq!(ids(&targeted, "id").len(), 10);
}

#[tokio::test]
async fn order_by_distance_limit_is_an_index_search_and_exact_when_scanning_everything() {
    let (_d, _db, ctx) = setup();
    run(&ctx, "SET drift.nprobe = 100000").await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for _ in 0..5 {
        let q = literal(&vector(&mut rng));
        let rewritten =
            format!("SELECT id, l2_distance(vector, {q}) AS d FROM items ORDER BY d LIMIT 10");
        let brute = format!("SELECT id FROM items ORDER BY {} LIMIT 10", exact_key(&q));
        assert_eq!(
            ids(&run(&ctx, &rewritten).await, "id"),
            ids(&run(&ctx, &brute).await, "id")
        );
        let explain = plan_text(&run(&ctx, &format!("EXPLAIN {rewritten}")).await);
        assert!(explain.contains("DriftIndexSearchExec"), "{explain}");
        let explain_brute = plan_text(&run(&ctx, &format!("EXPLAIN {brute}")).await);
        assert!(
            !explain_brute.contains("DriftIndexSearchExec"),
            "{explain_brute}"
        );
        assert!(explain_brute.contains("DriftScanExec"), "{explain_brute}");
    }
    // A filter the search cannot apply itself: applied to its results with over-fetch, so k
    // rows still come back, equal to brute force with the same filter.
    let q = literal(&vector(&mut rng));
    run(&ctx, "SET drift.nprobe = 0").await;
    let filtered = run(
        &ctx,
        &format!(
            "SELECT id FROM items WHERE id % 7 = 3 ORDER BY l2_distance(vector, {q}) LIMIT 10"
        ),
    )
    .await;
    let got = ids(&filtered, "id");
    assert_eq!(got.len(), 10);
    assert!(got.iter().all(|i| i % 7 == 3));
    let brute = run(
        &ctx,
        &format!(
            "SELECT id FROM items WHERE id % 7 = 3 ORDER BY {} LIMIT 10",
            exact_key(&q)
        ),
    )
    .await;
    let want = ids(&brute, "id");
    let overlap = got.iter().filter(|i| want.contains(i)).count();
    assert!(
        overlap >= 9,
        "filtered search found {overlap}/10 of the true neighbours"
    );
}

#[tokio::test]
async fn distance_functions_agree_with_array_distance_and_by_hand() {
    let (_d, _db, ctx) = setup();
    let q = [0.5f32, -0.25, 0.125, 1.0, 0.0, -1.0, 0.75, 0.3];
    let ql = literal(&q);
    let diff = first_f64(
        &ctx,
        &format!(
            "SELECT max(abs(l2_distance(vector, {ql}) - array_distance(vector, {ql}))) AS diff FROM items"
        ),
    )
    .await;
    assert!(
        diff < 1e-6,
        "l2_distance differs from array_distance by {diff}"
    );
    let b = run(
        &ctx,
        "SELECT l2_distance([3.0, 4.0], [0.0, 0.0]), cosine_distance([1.0, 0.0], [0.0, 2.0]), \
         inner_product([1.0, 2.0], [3.0, 4.0]), cosine_distance([0.0, 0.0], [1.0, 1.0])",
    )
    .await;
    let v = |i: usize| {
        b[0].column(i)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap()
            .clone()
    };
    assert_eq!(v(0).value(0), 5.0);
    assert!((v(1).value(0) - 1.0).abs() < 1e-12);
    assert_eq!(v(2).value(0), 11.0);
    assert!(v(3).is_null(0), "cosine distance of a zero vector is NULL");
    let e = err(&ctx, "SELECT l2_distance([1.0, 2.0], [1.0, 2.0, 3.0])").await;
    assert!(e.contains("different lengths"), "{e}");
}

#[tokio::test]
async fn table_scans_push_down_ids_projection_and_limit() {
    let (_d, _db, ctx) = setup();
    let b = run(&ctx, "SELECT count(*) AS n FROM items").await;
    let n = b[0]
        .column(0)
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(n as u64, ROWS);
    let b = run(
        &ctx,
        "SELECT id, payload FROM items WHERE id IN (5, 17, 99999)",
    )
    .await;
    let mut got = ids(&b, "id");
    got.sort();
    assert_eq!(got, [5, 17]);
    let explain = plan_text(&run(&ctx, "EXPLAIN SELECT id FROM items WHERE id = 5").await);
    assert!(explain.contains("DriftLookupExec"), "{explain}");
    let explain = plan_text(&run(&ctx, "EXPLAIN SELECT id FROM items LIMIT 3").await);
    assert!(explain.contains("limit=Some(3)"), "{explain}");
    let b = run(&ctx, "SELECT id FROM items LIMIT 3").await;
    assert_eq!(ids(&b, "id").len(), 3);
}

#[tokio::test]
async fn search_results_join_an_external_csv_table() {
    let (dir, _db, ctx) = setup();
    let csv = dir.path().join("labels.csv");
    let mut text = String::from("id,label\n");
    for i in 0..ROWS {
        text.push_str(&format!("{i},label-{}\n", i % 5));
    }
    std::fs::write(&csv, text).unwrap();
    run(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE labels (id BIGINT UNSIGNED, label VARCHAR) STORED AS CSV \
             LOCATION '{}' OPTIONS ('format.has_header' 'true')",
            csv.display()
        ),
    )
    .await;
    let q = literal(&[0.1; DIM]);
    let b = run(
        &ctx,
        &format!(
            "SELECT s.id, l.label, s._distance FROM vector_search('items', {q}, 5) s \
             JOIN labels l ON s.id = l.id ORDER BY s._distance"
        ),
    )
    .await;
    let rows: usize = b.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 5);
    for batch in &b {
        let id = batch
            .column(0)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .unwrap();
        let label = datafusion::arrow::compute::cast(
            batch.column(1),
            &datafusion::arrow::datatypes::DataType::Utf8,
        )
        .unwrap();
        let label = label.as_any().downcast_ref::<StringArray>().unwrap();
        for r in 0..batch.num_rows() {
            assert_eq!(label.value(r), format!("label-{}", id.value(r) % 5));
        }
    }
    // The k nearest as the scan side of a join, written as an ORDER BY ... LIMIT subquery:
    // an index search, and the same rows as vector_search.
    let join = format!(
        "SELECT n.id, l.label FROM (SELECT id FROM items ORDER BY l2_distance(vector, {q}) \
         LIMIT 5) n JOIN labels l ON n.id = l.id ORDER BY n.id"
    );
    let explain = plan_text(&run(&ctx, &format!("EXPLAIN {join}")).await);
    assert!(explain.contains("DriftIndexSearchExec"), "{explain}");
    assert!(!explain.contains("DriftScanExec"), "{explain}");
    let mut want = ids(
        &run(
            &ctx,
            &format!("SELECT id FROM vector_search('items', {q}, 5)"),
        )
        .await,
        "id",
    );
    want.sort_unstable();
    assert_eq!(ids(&run(&ctx, &join).await, "id"), want);
}

#[tokio::test]
async fn bad_input_gives_clear_errors() {
    let (_d, _db, ctx) = setup();
    let e = err(&ctx, "SELEC id FROM items").await;
    assert!(e.to_lowercase().contains("sql"), "{e}");
    let e = err(&ctx, "SELECT * FROM vector_search('nope', [1.0], 3)").await;
    assert!(e.contains("'nope' does not exist"), "{e}");
    let e = err(&ctx, "SELECT * FROM vector_search('items', [1.0, 2.0], 3)").await;
    assert!(e.contains("dimension 8"), "{e}");
    let e = err(
        &ctx,
        "SELECT * FROM vector_search('items', [1.0, 2.0, 3, 4, 5, 6, 7, 8], 0)",
    )
    .await;
    assert!(e.contains("k must be a positive integer"), "{e}");
    let e = err(
        &ctx,
        "SELECT * FROM vector_search('items', [1.0, 2.0, 3, 4, 5, 6, 7, 8], 3, 'bogus=1')",
    )
    .await;
    assert!(e.contains("unknown search option 'bogus'"), "{e}");
    let e = err(
        &ctx,
        "SELECT * FROM vector_search('items', [1.0, 2.0, 3, 4, 5, 6, 7, 8], 3, 'scoring=cubic')",
    )
    .await;
    assert!(
        e.contains("scoring=\"cubic\": expected reliability or linear"),
        "{e}"
    );
    let e = err(&ctx, "SELECT * FROM vector_search('items', 987654321, 3)").await;
    assert!(e.contains("no record with id 987654321"), "{e}");
    let e = err(&ctx, "SELECT * FROM missing_table").await;
    assert!(e.contains("missing_table"), "{e}");
    // A wrong-dimension query in ORDER BY is not rewritten; the distance function reports it.
    let e = err(
        &ctx,
        "SELECT id FROM items ORDER BY l2_distance(vector, [1.0, 2.0]) LIMIT 3",
    )
    .await;
    assert!(e.contains("different lengths"), "{e}");
}

#[tokio::test]
async fn a_filtered_search_checks_every_row_when_few_match() {
    // 12,000 rows near the origin and 5 "rare" ones far away: the 10,000 nearest candidates
    // of a query at the origin hold none of them, so only checking every row finds them.
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open(dir.path()).unwrap());
    let mut cfg = CollectionConfig::new(4, Metric::L2);
    cfg.settings.maintenance.background = false;
    let c = db.create_collection("big", cfg).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    let rare = [17u64, 3000, 6001, 9999, 11998];
    let recs: Vec<Record> = (0..12_000u64)
        .map(|i| {
            let far = rare.contains(&i);
            Record {
                id: i,
                vector: (0..4)
                    .map(|_| rng.gen_range(-1.0f32..1.0) + if far { 50.0 } else { 0.0 })
                    .collect(),
                payload: Some(format!(
                    "{{\"kind\": \"{}\"}}",
                    if far { "rare" } else { "common" }
                )),
            }
        })
        .collect();
    c.upsert(recs).unwrap();
    c.flush().unwrap();
    let ctx = sql::context(db.clone()).unwrap();
    let q = "SELECT id, l2_distance(vector, [0.0, 0.0, 0.0, 0.0]) AS d FROM big \
             WHERE payload LIKE '%rare%' ORDER BY d LIMIT 10";
    let explain = plan_text(&run(&ctx, &format!("EXPLAIN {q}")).await);
    assert!(explain.contains("DriftIndexSearchExec"), "{explain}");
    let mut got = ids(&run(&ctx, q).await, "id");
    got.sort();
    assert_eq!(
        got,
        rare.to_vec(),
        "a filter matching 5 rows returns those 5"
    );
    // Nearest first, and k caps what comes back when more rows match.
    let three = run(&ctx, &q.replace("LIMIT 10", "LIMIT 3")).await;
    assert_eq!(ids(&three, "id").len(), 3);
    let d = three[0]
        .column(1)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap()
        .clone();
    assert!(d.values().windows(2).all(|w| w[0] <= w[1]), "{d:?}");
}

#[tokio::test]
async fn every_order_by_distance_shape_is_an_index_search() {
    let (_d, _db, ctx) = setup();
    run(&ctx, "SET drift.nprobe = 100000").await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    let q = literal(&vector(&mut rng));
    let brute = ids(
        &run(
            &ctx,
            &format!("SELECT id FROM items ORDER BY {} LIMIT 13", exact_key(&q)),
        )
        .await,
        "id",
    );
    // The distance ordered by but not selected, with SELECT *, with other columns, and with
    // OFFSET: each plans an index search and returns the exact answer (every bucket probed).
    for (sql, skip) in [
        (
            format!("SELECT id FROM items ORDER BY l2_distance(vector, {q}) LIMIT 10"),
            0,
        ),
        (
            format!("SELECT * FROM items ORDER BY l2_distance(vector, {q}) LIMIT 10"),
            0,
        ),
        (
            format!("SELECT id, payload FROM items ORDER BY l2_distance(vector, {q}) LIMIT 10"),
            0,
        ),
        (
            format!("SELECT id FROM items ORDER BY l2_distance(vector, {q}) LIMIT 10 OFFSET 3"),
            3,
        ),
    ] {
        let explain = plan_text(&run(&ctx, &format!("EXPLAIN {sql}")).await);
        assert!(explain.contains("DriftIndexSearchExec"), "{sql}\n{explain}");
        assert!(!explain.contains("DriftScanExec"), "{sql}\n{explain}");
        assert_eq!(
            ids(&run(&ctx, &sql).await, "id"),
            brute[skip..skip + 10],
            "{sql}"
        );
    }
    // Through a subquery or a CTE, and with the k nearest in a CTE that is then filtered.
    for sql in [
        format!(
            "SELECT id FROM (SELECT * FROM items) t ORDER BY l2_distance(t.vector, {q}) LIMIT 10"
        ),
        format!(
            "WITH t AS (SELECT id, vector FROM items) \
             SELECT id FROM t ORDER BY l2_distance(vector, {q}) LIMIT 10"
        ),
    ] {
        let explain = plan_text(&run(&ctx, &format!("EXPLAIN {sql}")).await);
        assert!(explain.contains("DriftIndexSearchExec"), "{sql}\n{explain}");
        assert!(!explain.contains("DriftScanExec"), "{sql}\n{explain}");
        assert_eq!(ids(&run(&ctx, &sql).await, "id"), brute[..10], "{sql}");
    }
    let in_cte = format!(
        "WITH near AS (SELECT id, l2_distance(vector, {q}) AS d FROM items ORDER BY d LIMIT 10) \
         SELECT id FROM near WHERE id % 2 = 0 ORDER BY d"
    );
    let want: Vec<u64> = brute[..10].iter().copied().filter(|i| i % 2 == 0).collect();
    assert_eq!(ids(&run(&ctx, &in_cte).await, "id"), want);
    // An order the index cannot serve (farthest first) still gets the exact answer.
    let far = format!("SELECT id FROM items ORDER BY l2_distance(vector, {q}) DESC LIMIT 5");
    let want = format!(
        "SELECT id FROM items ORDER BY {} DESC LIMIT 5",
        exact_key(&q)
    );
    assert_eq!(
        ids(&run(&ctx, &far).await, "id"),
        ids(&run(&ctx, &want).await, "id")
    );
}

#[tokio::test]
async fn pgvector_operators_and_string_vectors_plan_index_searches() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open(dir.path()).unwrap());
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let recs: Vec<Record> = (0..2000u64)
        .map(|i| Record {
            id: i,
            vector: vector(&mut rng),
            payload: None,
        })
        .collect();
    for (name, metric) in [
        ("l2", Metric::L2),
        ("cos", Metric::Cosine),
        ("ip", Metric::InnerProduct),
    ] {
        let mut cfg = CollectionConfig::new(DIM, metric);
        cfg.settings.target_bucket_size = 64;
        cfg.settings.maintenance.background = false;
        let c = db.create_collection(name, cfg).unwrap();
        c.upsert(recs.clone()).unwrap();
        c.flush().unwrap();
    }
    let ctx = sql::context(db.clone()).unwrap();
    run(&ctx, "SET drift.nprobe = 100000").await;
    let q = vector(&mut rng);
    let text = format!(
        "'[{}]'",
        q.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let arr = literal(&q);
    for (table, op, func) in [
        ("l2", "<->", format!("l2_distance(vector, {arr})")),
        ("cos", "<=>", format!("cosine_distance(vector, {arr})")),
        ("ip", "<#>", format!("-inner_product(vector, {arr})")),
    ] {
        // The exact answer: the distance function shifted, which the rule leaves alone.
        let want = ids(
            &run(
                &ctx,
                &format!("SELECT id FROM {table} ORDER BY {func} + 1.0 LIMIT 10"),
            )
            .await,
            "id",
        );
        for rhs in [&text, &arr] {
            let sql = format!("SELECT id FROM {table} ORDER BY vector {op} {rhs} LIMIT 10");
            let explain = plan_text(&run(&ctx, &format!("EXPLAIN {sql}")).await);
            assert!(explain.contains("DriftIndexSearchExec"), "{sql}\n{explain}");
            assert_eq!(ids(&run(&ctx, &sql).await, "id"), want, "{sql}");
        }
        // The operator's value is the function's.
        let d = first_f64(
            &ctx,
            &format!("SELECT max(abs((vector {op} {text}) - ({func}))) FROM {table}"),
        )
        .await;
        assert!(d < 1e-5, "{op}: differs from {func} by {d}");
    }
    let e = err(
        &ctx,
        "SELECT id FROM l2 ORDER BY vector <-> '[1, two]' LIMIT 3",
    )
    .await;
    assert!(
        e.contains("not a vector literal") && e.contains("two"),
        "{e}"
    );
}

#[tokio::test]
async fn hostile_statements_are_refused_by_name_and_the_session_keeps_answering() {
    let (_d, _db, ctx) = setup();
    let q8 = "[1.0, 2.0, 3, 4, 5, 6, 7, 8]";
    let cases = [
        (
            format!("SELECT * FROM vector_search('items', {q8}, 100000000000)"),
            "k",
        ),
        (
            format!("SELECT * FROM vector_search('items', {q8}, 3, 'rerank=100000000')"),
            "rerank",
        ),
        (
            format!("SELECT * FROM vector_search('items', {q8}, 3, 'nprobe=2000000')"),
            "nprobe",
        ),
        (
            format!("SELECT * FROM vector_search('items', {q8}, 3, 'recall_target=7')"),
            "recall_target=\"7\": must be in (0, 1]",
        ),
        (
            "SELECT * FROM vector_search('items', [CAST('NaN' AS FLOAT), 2, 3, 4, 5, 6, 7, 8], 3)"
                .to_string(),
            "is NaN: values must be finite",
        ),
        (
            format!(
                "SELECT * FROM vector_search('items', [{}], 3)",
                vec!["1"; 100_000].join(",")
            ),
            "dimension 8",
        ),
    ];
    for (q, needle) in &cases {
        let e = err(&ctx, q).await;
        assert!(e.contains(needle), "{needle}: {e}");
    }
    // A LIMIT far beyond the index's reach answers with every row, not an allocation error.
    let batches = run(
        &ctx,
        &format!("SELECT id FROM items ORDER BY l2_distance(vector, {q8}) LIMIT 1000000000"),
    )
    .await;
    assert_eq!(
        batches.iter().map(|b| b.num_rows()).sum::<usize>(),
        ROWS as usize
    );
    // The session (and the database behind it) still answers.
    let hits = ids(
        &run(
            &ctx,
            &format!("SELECT id FROM vector_search('items', {q8}, 5)"),
        )
        .await,
        "id",
    );
    assert_eq!(hits.len(), 5);
}

#[tokio::test]
async fn an_id_predicate_pre_filters_the_search_and_ranks_exactly_those_rows() {
    let (_d, db, ctx) = setup();
    let coll = db.collection("items").unwrap();
    let q8 = [0.5f32; 8];
    let wanted = [3u64, 77, 150, 999, 2500];
    // By hand: the wanted rows' exact distances, nearest first.
    let mut truth: Vec<(f64, u64)> = wanted
        .iter()
        .map(|&id| {
            let v = coll.get(id).unwrap().unwrap().vector;
            let d: f32 = v.iter().zip(&q8).map(|(a, b)| (a - b) * (a - b)).sum();
            (d as f64, id)
        })
        .collect();
    truth.sort_by(|a, b| a.0.total_cmp(&b.0));
    let list = wanted.map(|i| i.to_string()).join(", ");
    for q in [
        format!(
            "SELECT id FROM items WHERE id IN ({list}, 123456789) ORDER BY l2_distance(vector, {}) LIMIT 10",
            literal(&q8)
        ),
        format!(
            "SELECT id FROM vector_search('items', {}, 10) WHERE id IN ({list})",
            literal(&q8)
        ),
    ] {
        let explain = plan_text(&run(&ctx, &format!("EXPLAIN {q}")).await);
        assert!(explain.contains("prefilter=ids("), "{explain}");
        let got = ids(&run(&ctx, &q).await, "id");
        let want: Vec<u64> = truth.iter().map(|t| t.1).collect();
        assert_eq!(got, want, "{q}");
    }
    // With a payload predicate as well, only the rows passing both, still ranked exactly.
    let q = format!(
        "SELECT id FROM items WHERE id IN ({list}) AND payload LIKE '%\"n\": 7%' \
         ORDER BY l2_distance(vector, {}) LIMIT 10",
        literal(&q8)
    );
    assert_eq!(ids(&run(&ctx, &q).await, "id"), vec![77]);
}

#[tokio::test]
async fn array_literals_keep_their_type_and_get_short_distinct_names() {
    let (_d, _db, ctx) = setup();
    // make_array's types: integers stay Int64, any float makes Float64; other elements fall
    // back to DataFusion's own planning.
    let b = run(
        &ctx,
        "SELECT [1, 2, -3] AS i, [0.5, -1, 2] AS f, [1, NULL] AS n",
    )
    .await;
    let schema = b[0].schema();
    let elem = |name: &str| match schema.field_with_name(name).unwrap().data_type() {
        DataType::List(f) => f.data_type().clone(),
        other => panic!("{name}: {other}"),
    };
    assert_eq!(elem("i"), DataType::Int64);
    assert_eq!(elem("f"), DataType::Float64);
    assert_eq!(elem("n"), DataType::Int64);
    assert_eq!(
        pretty_format_batches(&b)
            .unwrap()
            .to_string()
            .lines()
            .nth(3)
            .unwrap()
            .split_whitespace()
            .collect::<String>(),
        "|[1,2,-3]|[0.5,-1.0,2.0]|[1,]|"
    );
    // A long vector's column name shows its first values, its length and a hash: two
    // vectors with the same first values still get different names.
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let a = vector(&mut rng);
    let mut c = a.clone();
    c[DIM - 1] += 1.0;
    let sql = format!(
        "SELECT l2_distance(vector, {}), l2_distance(vector, {}) FROM items LIMIT 1",
        literal(&a),
        literal(&c)
    );
    let b = run(&ctx, &sql).await;
    let names: Vec<String> = b[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names.len(), 2);
    assert_ne!(names[0], names[1]);
    for n in &names {
        assert!(n.len() < 120, "{n}");
        assert!(n.contains(&format!("{DIM} values")), "{n}");
    }
}

#[tokio::test]
async fn a_plan_cache_reuses_plans_across_vectors_and_answers_as_planning_afresh() {
    let (_d, db, ctx) = setup();
    let cache = sql::PlanCache::default();
    cache.run(&ctx, "SET drift.nprobe = 100000").await.unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(33);
    type Shape = Box<dyn Fn(&str, &str) -> String>;
    let shapes: Vec<Shape> = vec![
        Box::new(|q, _| format!("SELECT id FROM items ORDER BY vector <-> {q} LIMIT 10")),
        Box::new(|q, _| {
            format!("SELECT id, l2_distance(vector, {q}) AS d FROM items ORDER BY d LIMIT 10")
        }),
        Box::new(|q, _| format!("SELECT id, _distance FROM vector_search('items', {q}, 10)")),
        Box::new(|q, _| format!("SELECT id FROM items ORDER BY vector <-> '{q}' LIMIT 10")),
        Box::new(|q, _| {
            format!(
                "WITH t AS (SELECT id, vector FROM items) \
                 SELECT id FROM t ORDER BY l2_distance(vector, {q}) LIMIT 10"
            )
        }),
        Box::new(|q, _| {
            format!("SELECT id FROM items WHERE id % 3 = 0 ORDER BY vector <-> {q} LIMIT 10")
        }),
        Box::new(|q, q2| {
            format!(
                "SELECT id, l2_distance(vector, {q}) AS d, l2_distance(vector, {q2}) AS e \
                 FROM items ORDER BY d LIMIT 10"
            )
        }),
    ];
    for (n, shape) in shapes.iter().enumerate() {
        for _ in 0..4 {
            let (q, q2) = (literal(&vector(&mut rng)), literal(&vector(&mut rng)));
            let sql = shape(&q, &q2);
            let cached = cache.query(&ctx, &sql).await.unwrap();
            let fresh = run(&ctx, &sql).await;
            assert_eq!(plan_text(&cached), plan_text(&fresh), "{sql}");
            if n == 0 {
                let exact = format!("SELECT id FROM items ORDER BY {} LIMIT 10", exact_key(&q));
                assert_eq!(ids(&cached, "id"), ids(&run(&ctx, &exact).await, "id"));
            }
        }
    }
    let s = cache.stats();
    assert_eq!((s.misses, s.hits), (7, 21), "{s:?}");

    // The same literal twice is one slot; a later statement where the two differ is another
    // template, not the first one's plan with one value.
    let twice = |a: &str, b: &str| {
        format!(
            "SELECT id, l2_distance(vector, {a}) AS d, l2_distance(vector, {b}) AS e \
             FROM items ORDER BY d + e LIMIT 5"
        )
    };
    let (a, b) = (literal(&vector(&mut rng)), literal(&vector(&mut rng)));
    for sql in [twice(&a, &a), twice(&a, &b), twice(&b, &b)] {
        let cached = cache.query(&ctx, &sql).await.unwrap();
        assert_eq!(
            plan_text(&cached),
            plan_text(&run(&ctx, &sql).await),
            "{sql}"
        );
    }
    assert_eq!(cache.stats().misses, 9);

    // A search for a stored record's vector reads it when it runs: an update is seen.
    let sql = format!(
        "SELECT id, l2_distance(vector, {a}) AS d FROM vector_search('items', 7, 5) ORDER BY id"
    );
    let before = cache.query(&ctx, &sql).await.unwrap();
    let coll = db.collection("items").unwrap();
    coll.upsert(vec![Record::new(7, vector(&mut rng))]).unwrap();
    let after = cache.query(&ctx, &sql).await.unwrap();
    assert_eq!(plan_text(&after), plan_text(&run(&ctx, &sql).await));
    assert_ne!(plan_text(&before), plan_text(&after));

    // A setting changed through the cache drops its plans: the next statement is planned
    // with it.
    let sql = shapes[0](&a, &b);
    cache.query(&ctx, &sql).await.unwrap();
    let misses = cache.stats().misses;
    cache.run(&ctx, "SET drift.nprobe = 1").await.unwrap();
    let one = cache.query(&ctx, &sql).await.unwrap();
    assert_eq!(cache.stats().misses, misses + 1);
    assert_eq!(plan_text(&one), plan_text(&run(&ctx, &sql).await));

    // Errors read as without the cache, and the cache keeps answering.
    let wrong = "SELECT id FROM vector_search('items', [1.5, 2], 5)";
    let e = cache.query(&ctx, wrong).await.unwrap_err().to_string();
    assert_eq!(e, err(&ctx, wrong).await);
    assert!(e.contains("dimension"), "{e}");
    assert_eq!(cache.query(&ctx, &sql).await.unwrap().len(), one.len());

    // An unaliased expression is named by its slot, the same for every vector.
    let named = format!("SELECT l2_distance(vector, {a}) FROM items ORDER BY 1 LIMIT 3");
    let batches = cache.query(&ctx, &named).await.unwrap();
    let name = batches[0].schema().field(0).name().clone();
    assert!(name.contains("$1"), "{name}");
}
