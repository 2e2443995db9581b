//! Search by recall target: how many buckets a query must scan for its estimated recall@k to
//! reach a target, decided while scanning (after the spirit of Quake's adaptive partition
//! scanning, with the bucket's live row count as its density).
//!
//! Around the query, the k nearest rows lie in a ball whose radius `rho` is the k-th best
//! distance found so far. Bucket `j`'s Voronoi cell meets that ball beyond the hyperplane
//! bisecting the nearest centroid `c0` and `c_j`, at distance
//! `h_j = (|q - c_j|² - |q - c0|²) / (2 |c_j - c0|)` from the query. The share of the ball's
//! volume past that plane (a spherical cap, a function of `h_j / rho` and the dimension) times
//! the bucket's relative density is its expected share of the neighbours; the nearest bucket
//! holds the ball's centre and counts in full. Scanning stops once the scanned buckets hold
//! the target share. As `rho` shrinks with each scanned bucket, far caps vanish.

use std::sync::{Arc, LazyLock, OnceLock};

use super::L1;
use crate::kernels;
use crate::per_dim::{self, PerDim};

/// Resolution of the cap table over `h / rho` in [0, 1].
const STEPS: usize = 2048;

/// Share of a `dim`-ball's volume beyond a hyperplane at `t` radii from its centre.
#[derive(Debug)]
pub struct CapTable {
    share: Vec<f32>,
    /// The `t` from which the share counts as 0 (below [`SHARE_FLOOR`]).
    cut: f32,
}

/// Cap shares below this count as 0: a bucket that far past its bisector holds no neighbour
/// the estimate could notice, and the scan need not look at it at all.
const SHARE_FLOOR: f64 = 1e-9;

impl CapTable {
    /// The table for one dimension. The first coordinate of a point uniform in a unit
    /// `dim`-ball has density proportional to `(1 - s²)^((dim - 1) / 2)`; the cap share is
    /// its tail integral, normalised to 1/2 at `t = 0`.
    pub fn new(dim: usize) -> CapTable {
        let e = (dim as f64 - 1.0) / 2.0;
        let n = STEPS * 8;
        let f = |s: f64| (1.0 - s * s).max(0.0).powf(e);
        // Cumulative trapezoid from s = 1 down to s = 0.
        let mut tail = vec![0f64; n + 1];
        for i in (0..n).rev() {
            let (a, b) = (i as f64 / n as f64, (i + 1) as f64 / n as f64);
            tail[i] = tail[i + 1] + (f(a) + f(b)) * 0.5 * (b - a);
        }
        let half = tail[0].max(f64::MIN_POSITIVE);
        let share: Vec<f32> = (0..=STEPS)
            .map(|i| (0.5 * tail[i * 8] / half) as f32)
            .collect();
        let cut = share
            .iter()
            .position(|&v| (v as f64) < SHARE_FLOOR)
            .unwrap_or(STEPS) as f32
            / STEPS as f32;
        CapTable { share, cut }
    }

    /// The `t` from which [`CapTable::share`] is 0.
    pub fn cut(&self) -> f32 {
        self.cut
    }

    /// Cached table for `dim`.
    pub fn for_dim(dim: usize) -> Arc<CapTable> {
        static TABLES: PerDim<CapTable> = LazyLock::new(Default::default);
        per_dim::get_or_make(&TABLES, dim, CapTable::new)
    }

    /// Cap share at `t = h / rho` (1/2 at 0, 0 from [`CapTable::cut`] on, 1 - share(-t) below
    /// 0).
    pub fn share(&self, t: f32) -> f32 {
        if t < 0.0 {
            return 1.0 - self.share(-t);
        }
        if t >= self.cut {
            return 0.0;
        }
        let x = t * STEPS as f32;
        let i = x as usize;
        let frac = x - i as f32;
        self.share[i] * (1.0 - frac) + self.share[(i + 1).min(STEPS)] * frac
    }
}

/// What [`RecallPlan::estimate_memo`] remembers between calls of one scan.
#[derive(Debug, Clone, Copy)]
pub struct EstimateMemo {
    rho: f32,
    scanned: usize,
    got: f32,
    all: f32,
}

impl Default for EstimateMemo {
    fn default() -> Self {
        EstimateMemo {
            rho: f32::NAN,
            scanned: 0,
            got: 0.0,
            all: 0.0,
        }
    }
}

/// Candidate buckets of one query, nearest centroid first, with what the estimate needs.
#[derive(Debug, Clone)]
pub struct RecallPlan {
    /// Bucket positions in scan order.
    pub order: Vec<usize>,
    /// Squared distance from the query to each one's centroid.
    d2: Vec<f32>,
    /// What the estimate needs of the candidates that can hold neighbours at all (a prefix
    /// of `order`; the rest have no mass). Set by [`RecallPlan::settle`], or at once by
    /// [`RecallPlan::new`].
    settled: OnceLock<Settled>,
    table: Arc<CapTable>,
}

/// Per candidate within reach (a prefix of the plan's order).
#[derive(Debug, Clone, Default)]
struct Settled {
    /// Distance from the query to its bisector with the nearest centroid.
    h: Vec<f32>,
    /// Relative density: live rows over the mean of these candidates' (at most 8).
    w: Vec<f32>,
}

impl RecallPlan {
    /// The nearest `max` non-empty buckets of `l1` for `query` (L2 geometry), with every
    /// bisector distance computed.
    pub fn new(l1: &L1, query: &[f32], max: usize) -> RecallPlan {
        let plan = RecallPlan::pending(l1, query, max);
        plan.settle(l1, f32::INFINITY);
        plan
    }

    /// [`RecallPlan::new`] without the bisector distances: [`RecallPlan::settle`] computes
    /// the ones the first k-th distance of a scan can reach.
    ///
    /// The candidates are the buckets that store rows; live counts are read (one cache miss
    /// each, through the bucket's tally) only for those the settled plan keeps. A bucket whose
    /// rows are all stale stays in the order with no mass.
    pub fn pending(l1: &L1, query: &[f32], max: usize) -> RecallPlan {
        let cands =
            super::probe::nearest(l1, query, max.max(1), super::probe::Measure::L2Squared, false);
        RecallPlan {
            order: cands.iter().map(|c| c.1).collect(),
            d2: cands.iter().map(|c| c.0).collect(),
            settled: OnceLock::new(),
            table: CapTable::for_dim(query.len()),
        }
    }

    /// Computes the bisector distances (once; later calls do nothing) of the candidates that
    /// can hold neighbours within `rho` of the query, and of no others: a bucket's bisector
    /// lies at least half its centroid's distance beyond the nearest one's (triangle
    /// inequality), so from the first candidate where that half reaches `rho` times the cap
    /// table's cut on, none has mass at `rho` or at any smaller k-th distance. A scan's k-th
    /// distance only shrinks, so settling at its first one loses nothing.
    pub fn settle(&self, l1: &L1, rho: f32) {
        self.settled.get_or_init(|| {
            let Some(&d0) = self.d2.first() else {
                return Settled::default();
            };
            // The nearest bucket always counts (its mass does not depend on `rho`).
            let n = self.within_reach(&self.d2, rho).max(1);
            let c0 = l1.centroid(self.order[0]);
            let h = (0..n)
                .map(|j| {
                    let gap = kernels::l2sq(l1.centroid(self.order[j]), c0).sqrt();
                    if gap > 0.0 {
                        (self.d2[j] - d0) / (2.0 * gap)
                    } else {
                        0.0
                    }
                })
                .collect();
            let lives: Vec<f32> = self.order[..n]
                .iter()
                .map(|&b| l1.live_rows(b) as f32)
                .collect();
            let mean = (lives.iter().sum::<f32>() / n as f32).max(1.0);
            let w = lives.iter().map(|l| (l / mean).min(8.0)).collect();
            Settled { h, w }
        });
    }

    /// How many of the first candidates in `d2` (a prefix of the plan's, nearest first) can
    /// hold mass at k-th distance `rho`: those whose bisector's lower bound, half the excess of
    /// their centroid distance over the nearest one's, is within the cap table's cut of `rho`.
    fn within_reach(&self, d2: &[f32], rho: f32) -> usize {
        let (d0, reach) = (self.d2[0].max(0.0).sqrt(), self.table.cut() * rho);
        d2.partition_point(|&d| (d.max(0.0).sqrt() - d0) * 0.5 < reach)
    }

    /// The settled candidates (none before [`RecallPlan::settle`]).
    fn settled(&self) -> &Settled {
        static NONE: Settled = Settled {
            h: Vec::new(),
            w: Vec::new(),
        };
        self.settled.get().unwrap_or(&NONE)
    }

    /// The settled bisector distances (none before [`RecallPlan::settle`]).
    #[cfg(test)]
    fn h(&self) -> &[f32] {
        &self.settled().h
    }

    /// Mass of bucket `j` (in scan order) for a k-th distance `rho`.
    #[inline]
    fn mass(&self, s: &Settled, j: usize, rho: f32) -> f32 {
        if j == 0 {
            s.w[0]
        } else if rho > 0.0 {
            s.w[j] * self.table.share(s.h[j] / rho)
        } else {
            0.0
        }
    }

    /// [`RecallPlan::estimate`] for a scan that calls it with `scanned` growing: the masses
    /// are recomputed only when `rho` changed since the last call (`memo` carries them; a
    /// fresh memo computes from scratch).
    pub fn estimate_memo(&self, memo: &mut EstimateMemo, scanned: usize, rho: f32) -> f32 {
        if self.order.is_empty() {
            return 1.0;
        }
        if !rho.is_finite() {
            return 0.0;
        }
        let s = self.settled();
        if s.h.is_empty() {
            return 0.0;
        }
        if memo.rho != rho || scanned < memo.scanned {
            memo.rho = rho;
            // Only the settled candidates still within reach of this `rho` have mass.
            let live = self.within_reach(&self.d2[..s.h.len()], rho).max(1);
            memo.all = (0..live).map(|j| self.mass(s, j, rho)).sum();
            memo.got = (0..scanned.min(live))
                .map(|j| self.mass(s, j, rho))
                .sum();
        } else {
            for j in memo.scanned..scanned.min(s.h.len()) {
                memo.got += self.mass(s, j, rho);
            }
        }
        memo.scanned = scanned;
        if memo.all <= 0.0 {
            1.0
        } else {
            memo.got / memo.all
        }
    }

    /// Estimated share of the k nearest neighbours held by the first `scanned` buckets,
    /// given the k-th best distance found so far (`rho`, Euclidean).
    pub fn estimate(&self, scanned: usize, rho: f32) -> f32 {
        self.estimate_memo(&mut EstimateMemo::default(), scanned, rho)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memoized_estimate_equals_the_direct_one() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let n = 40;
        // Centroid distances 1 + j/20: bisectors j/20 away, at least half that excess.
        let plan = RecallPlan {
            order: (0..n).collect(),
            d2: (0..n).map(|j| (1.0 + j as f32 * 0.05).powi(2)).collect(),
            settled: OnceLock::from(Settled {
                h: (0..n).map(|j| j as f32 * 0.05).collect(),
                w: (0..n).map(|_| rng.gen_range(0.2f32..2.0)).collect(),
            }),
            table: CapTable::for_dim(32),
        };
        let mut memo = EstimateMemo::default();
        let mut rho = 2.0f32;
        for scanned in 1..n {
            if rng.gen_bool(0.3) {
                rho *= 0.9;
            }
            // Running (masses carried) against from scratch.
            let a = plan.estimate_memo(&mut memo, scanned, rho);
            let b = plan.estimate(scanned, rho);
            assert!((a - b).abs() < 1e-4, "scanned {scanned}: {a} vs {b}");
        }
    }

    #[test]
    fn a_plan_settled_at_the_first_kth_distance_estimates_as_one_computed_in_full() {
        use crate::config::Metric;
        use crate::ivf::{Bucket, Chunk};
        use crate::quant::Sq8;
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let mut pruned = 0;
        for dim in [8usize, 64, 384] {
            // 120 buckets of 20 rows around random centroids.
            let buckets: Vec<Arc<Bucket>> = (0..120u32)
                .map(|id| {
                    let c: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
                    let rows: Vec<f32> = (0..20 * dim)
                        .map(|i| c[i % dim] + rng.gen_range(-0.2f32..0.2))
                        .collect();
                    let quant = Sq8::fit(&rows, dim);
                    let ids: Vec<u64> = (0..20).map(|r| id as u64 * 100 + r).collect();
                    let chunk = Chunk::build(&quant, ids.clone(), ids, rows, vec![None; 20]);
                    Arc::new(Bucket::empty(id, c).with_chunk(chunk))
                })
                .collect();
            let l1 = L1::from_buckets(dim, Metric::L2, buckets, 120);
            for _ in 0..20 {
                let q: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
                let full = RecallPlan::new(&l1, &q, 100);
                let lazy = RecallPlan::pending(&l1, &q, 100);
                assert_eq!(full.order, lazy.order);
                let mut rho = full.d2[0].sqrt() * rng.gen_range(0.05f32..0.6);
                lazy.settle(&l1, rho);
                assert!(lazy.h().len() <= full.h().len());
                pruned += usize::from(lazy.h().len() < full.h().len());
                let (mut a, mut b) = (EstimateMemo::default(), EstimateMemo::default());
                for scanned in 1..full.order.len() {
                    let x = full.estimate_memo(&mut a, scanned, rho);
                    let y = lazy.estimate_memo(&mut b, scanned, rho);
                    assert!((x - y).abs() < 1e-6, "dim {dim} scanned {scanned}: {x} vs {y}");
                    if rng.gen_bool(0.3) {
                        rho *= 0.9;
                    }
                }
            }
        }
        assert!(pruned >= 20, "the settled plans skipped candidates ({pruned} of 60)");
    }

    #[test]
    fn cap_share_matches_known_values() {
        // dim 1: the "ball" is a segment, share(t) = (1 - t) / 2.
        let t1 = CapTable::new(1);
        assert!((t1.share(0.5) - 0.25).abs() < 1e-3);
        // dim 3: cap volume share = (1 - t)² (2 + t) / 4.
        let t3 = CapTable::new(3);
        for t in [0.0f32, 0.2, 0.5, 0.9] {
            let want = (1.0 - t).powi(2) * (2.0 + t) / 4.0;
            assert!(
                (t3.share(t) - want).abs() < 1e-3,
                "t={t}: {} vs {want}",
                t3.share(t)
            );
        }
        // High dimensions concentrate volume near the plane through the centre.
        let t128 = CapTable::new(128);
        assert!(t128.share(0.3) < 1e-3);
        assert!((t128.share(0.0) - 0.5).abs() < 1e-6);
        assert!((t128.share(-0.3) - 1.0).abs() < 1e-3);
    }
}
