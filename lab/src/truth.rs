//! Exact nearest neighbours by brute force, and recall@k that counts ties the way
//! ann-benchmarks does: a returned id counts if its exact distance is within the true k-th
//! distance (plus a relative 1e-6).

use drift_engine::distance::{normalize, Distance};
use drift_engine::Metric;

/// Exact top-k ids and distances for each query, over `base` rows with ids `ids`.
pub struct GroundTruth {
    /// Per query, (id, internal distance) nearest first.
    pub neighbours: Vec<Vec<(u64, f32)>>,
}

/// Vectors prepared the way the engine stores them for `metric` (normalized for cosine).
pub fn prepare(metric: Metric, data: &[f32], dim: usize) -> Vec<f32> {
    let mut out = data.to_vec();
    if metric == Metric::Cosine {
        for row in out.chunks_exact_mut(dim) {
            normalize(row);
        }
    }
    out
}

/// Brute-force k-NN of every query (uses every core).
pub fn exact_knn(
    metric: Metric,
    base: &[f32],
    ids: &[u64],
    queries: &[f32],
    dim: usize,
    k: usize,
) -> GroundTruth {
    let base = prepare(metric, base, dim);
    let queries = prepare(metric, queries, dim);
    exact_knn_prepared(metric, &base, ids, &queries, dim, k)
}

/// [`exact_knn`] over vectors already [`prepare`]d, for callers that keep them to score
/// answers afterwards.
pub fn exact_knn_prepared(
    metric: Metric,
    base: &[f32],
    ids: &[u64],
    queries: &[f32],
    dim: usize,
    k: usize,
) -> GroundTruth {
    let dist = Distance::for_metric(metric);
    let nq = queries.len() / dim;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(nq.max(1));
    let per = nq.div_ceil(threads.max(1)).max(1);
    let mut neighbours = vec![Vec::new(); nq];
    std::thread::scope(|s| {
        for (t, out) in neighbours.chunks_mut(per).enumerate() {
            s.spawn(move || {
                for (j, slot) in out.iter_mut().enumerate() {
                    let qi = t * per + j;
                    let q = &queries[qi * dim..(qi + 1) * dim];
                    *slot = exact_top(&dist, q, base, ids, dim, k);
                }
            });
        }
    });
    GroundTruth { neighbours }
}

/// Exact top-k `(id, distance)` of one prepared query by a single-threaded scan.
pub fn exact_top(
    dist: &Distance,
    q: &[f32],
    base: &[f32],
    ids: &[u64],
    dim: usize,
    k: usize,
) -> Vec<(u64, f32)> {
    let mut top = drift_engine::topk::TopK::new(k);
    for (r, row) in base.chunks_exact(dim).enumerate() {
        top.push(dist.eval(q, row), r);
    }
    top.into_sorted()
        .into_iter()
        .map(|s| (ids[s.item], s.dist))
        .collect()
}

/// Recall@k of one answer: the share of the true top-k slots matched by returned ids whose
/// exact distance (from `exact_dist`) is within the true k-th distance.
pub fn recall_with_ties(
    truth: &[(u64, f32)],
    returned: &[u64],
    k: usize,
    exact_dist: impl Fn(u64) -> Option<f32>,
) -> f64 {
    let k = k.min(truth.len());
    if k == 0 {
        return 1.0;
    }
    let kth = truth[k - 1].1;
    let limit = kth + kth.abs() * 1e-6 + 1e-12;
    let mut seen = std::collections::HashSet::new();
    let hits = returned
        .iter()
        .take(k)
        .filter(|id| seen.insert(**id))
        .filter(|id| exact_dist(**id).is_some_and(|d| d <= limit))
        .count();
    hits as f64 / k as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_count_as_hits() {
        // Points 1 and 2 are equally far; the truth lists 1, the answer 2.
        let truth = vec![(0, 0.0), (1, 1.0)];
        let d = |id: u64| Some([0.0, 1.0, 1.0, 5.0][id as usize]);
        assert_eq!(recall_with_ties(&truth, &[0, 2], 2, d), 1.0);
        assert_eq!(recall_with_ties(&truth, &[0, 3], 2, d), 0.5);
        assert_eq!(
            recall_with_ties(&truth, &[0, 0], 2, d),
            0.5,
            "duplicates count once"
        );
    }

    #[test]
    fn brute_force_is_exact() {
        let base = vec![0.0, 0.0, 1.0, 1.0, 5.0, 5.0];
        let gt = exact_knn(Metric::L2, &base, &[10, 11, 12], &[0.9, 0.9], 2, 2);
        assert_eq!(
            gt.neighbours[0].iter().map(|x| x.0).collect::<Vec<_>>(),
            vec![11, 10]
        );
    }
}
