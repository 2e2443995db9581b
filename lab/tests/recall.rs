//! Recall of the engine against brute force on a 50k x 64 clustered set, through the same
//! runner the demo uses.

use drift_engine::Database;
use drift_lab::demo::{run, DemoConfig};

fn measure(rerank: Option<usize>, recall_target: Option<f32>) -> drift_lab::demo::DemoReport {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let cfg = DemoConfig {
        rows: 50_000,
        dim: 64,
        clusters: 100,
        queries: 300,
        rerank,
        recall_target,
        ..Default::default()
    };
    run(&db, "recall", &cfg, &|_, _, _| {}).unwrap()
}

#[test]
fn recall_at_default_settings_and_with_rerank() {
    let default = measure(None, None);
    let sq8_only = measure(Some(0), None);
    // Searches stop at their recall target (0.95 by default): a wider re-rank shows at 0.99.
    let wide_rerank = measure(Some(8), Some(0.99));
    println!(
        "50k x 64 clustered, recall@10: default {:.4} (L0 {:.4}, {:.2} buckets/query), \
         SQ8 only {:.4}, rerank x8 at target 0.99 {:.4}",
        default.recall,
        default.recall_l0,
        default.mean_buckets_probed,
        sq8_only.recall,
        wide_rerank.recall
    );
    assert!(default.recall >= 0.95, "default recall {}", default.recall);
    assert!(default.recall_l0 >= 0.95, "L0 recall {}", default.recall_l0);
    assert!(
        wide_rerank.recall >= 0.99,
        "re-rank recall {}",
        wide_rerank.recall
    );
    // Without re-ranking, SQ8 alone must still be a usable index.
    assert!(
        sq8_only.recall >= 0.85,
        "SQ8-only recall {}",
        sq8_only.recall
    );
    assert!(default.buckets >= 100, "{} buckets", default.buckets);
}

#[test]
fn recall_on_real_sift_when_present() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    let (base, queries) = (
        data.join("sift5k_base.fvecs"),
        data.join("siftsmall_query.fvecs"),
    );
    if !base.exists() {
        eprintln!(
            "skipped: {} not found (shared data sets are not in a user's clone)",
            base.display()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let cfg = DemoConfig {
        base_file: Some(base),
        query_file: Some(queries),
        ..Default::default()
    };
    let r = run(&db, "sift", &cfg, &|_, _, _| {}).unwrap();
    println!(
        "sift5k: recall@10 {:.4}, {:.0} qps, {:.2} buckets/query",
        r.recall, r.qps, r.mean_buckets_probed
    );
    assert!(r.recall >= 0.95, "SIFT recall {}", r.recall);
}
