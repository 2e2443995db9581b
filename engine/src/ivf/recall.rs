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

use std::sync::{Arc, LazyLock};

use super::L1;
use crate::kernels;
use crate::per_dim::{self, PerDim};

/// Resolution of the cap table over `h / rho` in [0, 1].
const STEPS: usize = 2048;

/// Share of a `dim`-ball's volume beyond a hyperplane at `t` radii from its centre.
#[derive(Debug)]
pub struct CapTable {
    share: Vec<f32>,
}

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
        let share = (0..=STEPS)
            .map(|i| (0.5 * tail[i * 8] / half) as f32)
            .collect();
        CapTable { share }
    }

    /// Cached table for `dim`.
    pub fn for_dim(dim: usize) -> Arc<CapTable> {
        static TABLES: PerDim<CapTable> = LazyLock::new(Default::default);
        per_dim::get_or_make(&TABLES, dim, CapTable::new)
    }

    /// Cap share at `t = h / rho` (1/2 at 0, 0 from 1 on, 1 - share(-t) below 0).
    pub fn share(&self, t: f32) -> f32 {
        if t < 0.0 {
            return 1.0 - self.share(-t);
        }
        if t >= 1.0 {
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
    /// Distance from the query to each one's bisector with the nearest centroid.
    h: Vec<f32>,
    /// Relative density (live rows over the candidates' mean).
    w: Vec<f32>,
    table: Arc<CapTable>,
}

impl RecallPlan {
    /// The nearest `max` non-empty buckets of `l1` for `query` (L2 geometry).
    pub fn new(l1: &L1, query: &[f32], max: usize) -> RecallPlan {
        let dim = query.len();
        let cands =
            super::probe::nearest_live(l1, query, max.max(1), super::probe::Measure::L2Squared);
        let order: Vec<usize> = cands.iter().map(|c| c.1).collect();
        let c0 = order.first().map(|&p| l1.centroid(p));
        let h = cands
            .iter()
            .map(|&(d2, p, _)| match c0 {
                Some(c0) => {
                    let gap = kernels::l2sq(l1.centroid(p), c0).sqrt();
                    if gap > 0.0 {
                        (d2 - cands[0].0) / (2.0 * gap)
                    } else {
                        0.0
                    }
                }
                None => 0.0,
            })
            .collect();
        let lives: Vec<f32> = cands.iter().map(|c| c.2 as f32).collect();
        let mean = (lives.iter().sum::<f32>() / lives.len().max(1) as f32).max(1.0);
        RecallPlan {
            order,
            h,
            w: lives.iter().map(|l| (l / mean).min(8.0)).collect(),
            table: CapTable::for_dim(dim),
        }
    }

    /// Mass of bucket `j` (in scan order) for a k-th distance `rho`.
    #[inline]
    fn mass(&self, j: usize, rho: f32) -> f32 {
        if j == 0 {
            self.w[0]
        } else if rho > 0.0 {
            self.w[j] * self.table.share(self.h[j] / rho)
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
        if memo.rho != rho || scanned < memo.scanned {
            memo.rho = rho;
            memo.all = (0..self.h.len()).map(|j| self.mass(j, rho)).sum();
            memo.got = (0..scanned.min(self.h.len()))
                .map(|j| self.mass(j, rho))
                .sum();
        } else {
            for j in memo.scanned..scanned.min(self.h.len()) {
                memo.got += self.mass(j, rho);
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
        let plan = RecallPlan {
            order: (0..n).collect(),
            h: (0..n).map(|j| j as f32 * 0.05).collect(),
            w: (0..n).map(|_| rng.gen_range(0.2f32..2.0)).collect(),
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
