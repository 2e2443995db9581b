//! Recall calibration: how far the recall estimate of [`RecallPlan`] must be stretched on this
//! collection's data so that searches by recall target keep their target.
//!
//! The estimate models the k nearest rows as a uniform ball of radius `rho` (the k-th best
//! distance so far) and stops once the scanned buckets hold the target share of it. Real
//! embeddings are anisotropic and crowd into a narrow band of distances, so that model is off
//! by a data-dependent amount. The probe therefore evaluates the estimate at `alpha * rho`,
//! and `alpha` is learned per target from the collection itself:
//!
//! 1. stored rows serve as queries (their own id excluded), with their exact top-k over
//!    every visible row (the caller computes them). They are drawn from the **held-out**
//!    rows ([`held_out`]: one id in 32, by hash), which no k-means or split fit ever sees:
//!    centroids fitted on a sample carve their boundaries through the sample's own gaps, so
//!    rows of the sample sit farther from the boundaries than new vectors do, and a stretch
//!    fitted on them would overshoot on real queries;
//! 2. a [`Trace`] per query records, after each bucket in probe order, the k-th best code
//!    distance (what the live probe sees) and how many true neighbours sit in the re-rank pool
//!    (what the answer would hold after the exact re-rank);
//! 3. for each target on a grid, the smallest `alpha` whose stopping rule gives a mean
//!    recall of at least `target + margin` over the traces is kept.
//!
//! At search time `alpha(target)` is interpolated on that grid.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{RecallPlan, ScanJob, Scratch, Stop, L1};
use crate::config::SearchParams;
use crate::topk::TopK;

/// One row in this many (by id hash) is held out of every centroid fit.
pub const HOLD_OUT: u64 = 32;

/// Whether row `id` is held out of centroid fits (training k-means, split 2-means), so that
/// calibration queries drawn from such rows look like new vectors to the partition.
pub fn held_out(id: u64) -> bool {
    // splitmix64 finalizer: ids are often sequential.
    let mut z = id.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)).is_multiple_of(HOLD_OUT)
}

/// The vectors (row-major, `dim` wide) of the rows whose id is not [`held_out`]: what a
/// centroid fit may see.
pub fn held_in_vectors(ids: &[u64], vectors: &[f32], dim: usize) -> Vec<f32> {
    ids.iter()
        .zip(vectors.chunks_exact(dim))
        .filter(|(&id, _)| !held_out(id))
        .flat_map(|(_, v)| v.iter().copied())
        .collect()
}

/// Targets the calibration is fitted at; between them `alpha` is interpolated.
pub const TARGET_GRID: [f32; 16] = [
    0.5, 0.6, 0.7, 0.8, 0.85, 0.88, 0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99, 0.995, 0.999,
];

/// Real queries a calibration must be fitted on to stop being provisional.
pub const CONFIRM_QUERIES: usize = 192;

/// Range of the stretch factor searched by the fit.
const ALPHA_MIN: f32 = 1.0 / 16.0;
const ALPHA_MAX: f32 = 256.0;
/// Bisection steps on log(alpha): the last step changes alpha by about 0.1%.
const BISECT_STEPS: usize = 14;

/// What one calibration query saw, bucket by bucket, in probe order.
#[derive(Debug, Clone)]
pub struct Trace {
    plan: RecallPlan,
    /// Euclidean k-th best code distance after `j + 1` buckets.
    rho: Vec<f32>,
    /// True neighbours in the re-rank pool after `j + 1` buckets.
    found: Vec<u16>,
    k: usize,
}

impl Trace {
    /// Buckets scanned and recall reached when stopping by `target` with stretch `alpha`.
    /// The trace ends where every true neighbour was found: a stop at or past that point
    /// reaches full recall (and the bucket count returned is that point).
    pub fn stop(&self, target: f32, alpha: f32) -> (usize, f32) {
        let m = self.rho.len();
        if m == 0 {
            return (0, 1.0);
        }
        let mut j = m;
        let mut memo = super::EstimateMemo::default();
        for s in 1..m {
            if self
                .plan
                .estimate_memo(&mut memo, s, alpha * self.rho[s - 1])
                >= target
            {
                j = s;
                break;
            }
        }
        (j, self.found[j - 1] as f32 / self.k as f32)
    }
}

impl L1 {
    /// Traces one calibration query. `truth` holds the ids whose exact distance is within
    /// the true k-th (ties included); `exclude` is the query's own id.
    pub fn trace(
        &self,
        query: &[f32],
        params: &SearchParams,
        truth: &HashSet<u64>,
        exclude: u64,
        visible: &dyn Fn(u64, u64) -> bool,
    ) -> Trace {
        let k = params.k;
        let pool = if params.rerank > 0 {
            k.saturating_mul(params.rerank)
        } else {
            k
        };
        let plan = RecallPlan::new(self, query, params.max_probes);
        let vis = |id: u64, seq: u64| id != exclude && visible(id, seq);
        let mut scratch = Scratch::for_query(query);
        let mut best: TopK<u64> = TopK::new(pool);
        let mut kth: TopK<()> = TopK::new(k);
        let mut rho = Vec::with_capacity(plan.order.len());
        let mut found = Vec::with_capacity(plan.order.len());
        for &bpos in &plan.order {
            let job = ScanJob {
                query,
                kernel: params.adc,
                prefilter: params.prefilter,
                probe: &[bpos],
                pool,
                visible: &vis,
                eager: true,
                stop: Stop {
                    max_codes: usize::MAX,
                    recall: None,
                },
            };
            for c in self.scan(&job, &mut scratch) {
                let chunk = self.chunk(c.item);
                best.push(c.dist, chunk.ids.get(c.item.2 as usize));
                kth.push(c.dist, ());
            }
            rho.push(kth.threshold().max(0.0).sqrt());
            let hits = best
                .iter()
                .filter(|s| truth.contains(&s.item))
                .count()
                .min(k);
            found.push(hits as u16);
            // Nothing after full recall changes a stop's recall: the trace ends here.
            if hits >= k.min(truth.len()) {
                break;
            }
        }
        Trace {
            plan,
            rho,
            found,
            k,
        }
    }
}

/// A fitted calibration: `alpha` per target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Calibration {
    /// (target, alpha, mean buckets, mean recall over the calibration queries), by target.
    pub points: Vec<CalibrationPoint>,
    /// Calibration queries used.
    pub queries: usize,
    /// Live L1 rows when fitted.
    pub rows: usize,
    /// Buckets when fitted.
    pub buckets: usize,
    /// Highest mean recall the probe limits allow on these queries.
    pub ceiling: f32,
    /// Where the queries came from: `rows` (stored rows, their own id left out) or
    /// `queries` (searches the live monitor re-ran exactly).
    #[serde(default)]
    pub source: String,
}

/// One fitted target.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct CalibrationPoint {
    /// Recall target.
    pub target: f32,
    /// Stretch of the k-th distance the estimate is evaluated at.
    pub alpha: f32,
    /// Mean buckets scanned at this alpha on the calibration queries.
    pub buckets: f32,
    /// Mean recall reached on the calibration queries.
    pub recall: f32,
}

impl Calibration {
    /// Fits `alpha` per target on `traces`, aiming at `target + margin` (the margin at most
    /// half the miss rate `1 - target`): the smallest stretch
    /// whose mean recall, less one standard error of that mean (few queries, a noisy mean:
    /// aim higher), reaches it, by bisection on `log(alpha)` (mean recall grows with alpha),
    /// never below the previous target's.
    pub(crate) fn fit(traces: &[Trace], margin: f32, rows: usize, buckets: usize) -> Calibration {
        let n = traces.len().max(1) as f32;
        // (mean buckets, mean recall, mean recall less its standard error)
        let eval = |target: f32, alpha: f32| -> (f32, f32, f32) {
            let (mut b, mut r, mut r2) = (0f32, 0f32, 0f32);
            for t in traces {
                let (j, rec) = t.stop(target, alpha);
                b += j as f32;
                r += rec;
                r2 += rec * rec;
            }
            let mean = r / n;
            let var = ((r2 / n - mean * mean) * n / (n - 1.0).max(1.0)).max(0.0);
            (b / n, mean, mean - (var / n).sqrt())
        };
        let ceiling = traces
            .iter()
            .map(|t| t.found.last().map_or(1.0, |&f| f as f32 / t.k as f32))
            .sum::<f32>()
            / n;
        let mut points = Vec::with_capacity(TARGET_GRID.len());
        let mut floor = ALPHA_MIN.ln();
        for &target in &TARGET_GRID {
            // Near 1 the margin is capped at half the miss rate: aiming a 0.99 target at
            // 1.0 means every calibration query perfect, which the stretch reaches only far
            // out, at a cost the traces (which end at full recall) do not show: on a
            // 200k-row mixture such a fit scanned 88 buckets per query where 16 gave 0.9998.
            let want = (target + margin.min((1.0 - target) / 2.0)).min(ceiling);
            let (mut lo, mut hi) = (floor, ALPHA_MAX.ln());
            // At the ceiling the standard error cannot vanish: the mean reaching it is enough.
            let ok = |alpha: f32| {
                let (_, mean, low) = eval(target, alpha);
                low >= want || mean >= ceiling
            };
            if !ok(lo.exp()) {
                for _ in 0..BISECT_STEPS {
                    let mid = 0.5 * (lo + hi);
                    if ok(mid.exp()) {
                        hi = mid;
                    } else {
                        lo = mid;
                    }
                }
            } else {
                hi = lo;
            }
            floor = hi;
            let alpha = hi.exp();
            let (b, r, _) = eval(target, alpha);
            points.push(CalibrationPoint {
                target,
                alpha,
                buckets: b,
                recall: r,
            });
        }
        Calibration {
            points,
            queries: traces.len(),
            rows,
            buckets,
            ceiling,
            source: "rows".into(),
        }
    }

    /// Whether this calibration is still a guess at the workload: fitted on stored rows
    /// (an extrapolation until the monitor has seen real queries), or on fewer than
    /// [`CONFIRM_QUERIES`] real ones (a fit on 48 queries whose recall moves in bucket-sized
    /// steps missed target 0.90 by 0.014 on generated clusters). The monitor replaces it.
    pub fn provisional(&self) -> bool {
        self.source != "queries" || self.queries < CONFIRM_QUERIES
    }

    /// The stretch a search for `target` uses: [`Calibration::alpha`], aimed at half the
    /// miss rate (`1 - (1 - target) / 2`) while the calibration is
    /// [`provisional`](Calibration::provisional), so that queries unlike the stored rows
    /// (another topic, another image set) do not fall short before the monitor refits.
    pub fn search_alpha(&self, target: f32) -> f32 {
        if self.provisional() {
            self.alpha(1.0 - (1.0 - target) / 2.0)
        } else {
            self.alpha(target)
        }
    }

    /// The stretch for `target`, interpolated between fitted targets.
    pub fn alpha(&self, target: f32) -> f32 {
        let p = &self.points;
        let Some(first) = p.first() else {
            return 1.0;
        };
        if target <= first.target {
            return first.alpha;
        }
        for w in p.windows(2) {
            if target <= w[1].target {
                let f = (target - w[0].target) / (w[1].target - w[0].target).max(1e-9);
                // Geometric interpolation: alpha spans orders of magnitude.
                return w[0].alpha * (w[1].alpha / w[0].alpha).powf(f);
            }
        }
        p.last().map_or(1.0, |l| l.alpha)
    }

    /// Whether the layer changed enough since fitting (rows or buckets by a quarter) that
    /// the calibration should be refreshed.
    pub fn stale(&self, rows: usize, buckets: usize) -> bool {
        let off = |a: usize, b: usize| (a as f64 - b as f64).abs() > 0.25 * b.max(1) as f64;
        off(rows, self.rows) || off(buckets, self.buckets)
    }
}
