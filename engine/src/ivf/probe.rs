//! Drift-aware bucket selection.
//!
//! Each bucket gets `P_eff = P_geom * R` with `P_geom = exp(-lambda * d_rel)` (centroid
//! distance relative to the nearest, scaled by the mean distance of the nearest four so that
//! lambda is unitless) and `R = 1 - exp(-live / tau)` (near-empty "zombie" buckets stop
//! eating the probe budget). Buckets are taken by decreasing `P_eff` until their share of the
//! total reaches `target_confidence`, within `min_probes..=max_probes`; a bucket whose
//! centroid is within `guardrail` of the nearest is always taken. An explicit `nprobe` takes
//! the nearest non-empty buckets instead. [`Scoring::Linear`] replaces `R` by the design
//! paper's first, linear density term `live / target` (a baseline).

use super::L1;
use crate::config::{Scoring, SearchParams};
use crate::distance::Distance;
use crate::kernels;

/// Collection-level inputs to selection.
#[derive(Debug, Clone, Copy)]
pub struct ProbeOptions {
    /// The collection's target bucket size: the scale of [`Scoring::Linear`], and ten times
    /// the tau used when the query leaves it at 0.
    pub target: f32,
    /// Stretch of the k-th distance at which the recall estimate is evaluated (1 = the
    /// uncalibrated ball model; see [`super::Calibration`]).
    pub alpha: f32,
}

/// Positions of the buckets to scan.
pub fn select_buckets(
    l1: &L1,
    query: &[f32],
    params: &SearchParams,
    opts: &ProbeOptions,
) -> Vec<usize> {
    let dist = match l1.distance() {
        Distance::NegDot => Measure::NegDot,
        Distance::L2 => Measure::L2,
    };
    if let Some(n) = params.nprobe {
        return nearest_live(l1, query, n, dist)
            .into_iter()
            .map(|c| c.1)
            .collect();
    }
    let cands = nearest_live(l1, query, usize::MAX, dist);
    if cands.is_empty() {
        return Vec::new();
    }
    let d_min = cands[0].0;
    let near = cands.len().min(4);
    let scale = (cands[..near].iter().map(|c| c.0.abs()).sum::<f32>() / near as f32).max(1e-12);
    let tau = if params.tau > 0.0 {
        params.tau
    } else {
        (opts.target / 10.0).max(1e-6)
    };
    let guard = (params.guardrail - 1.0) * scale;
    let mut scored: Vec<(f32, usize, bool)> = cands
        .iter()
        .map(|&(d, i, live)| {
            let gap = d - d_min;
            let geom = (-params.lambda * gap / scale).exp();
            let live = live as f32;
            let reliability = match params.scoring {
                Scoring::Reliability => 1.0 - (-live / tau).exp(),
                Scoring::Linear => (live / opts.target.max(1.0)).min(1.0),
            };
            (geom * reliability, i, gap <= guard)
        })
        .collect();
    let total: f32 = scored.iter().map(|s| s.0).sum();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut chosen = Vec::new();
    let mut mass = 0f32;
    for (p, i, guarded) in scored {
        let enough = chosen.len() >= params.min_probes
            && (mass >= params.target_confidence * total || chosen.len() >= params.max_probes);
        if enough && !guarded {
            continue;
        }
        chosen.push(i);
        mass += p;
    }
    chosen
}

/// How [`nearest_live`] measures a centroid's distance to the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Measure {
    /// Euclidean distance.
    L2,
    /// Squared Euclidean distance.
    L2Squared,
    /// Negated inner product.
    NegDot,
}

/// (distance, position, live rows) of the `max` buckets with live rows nearest to `query`
/// by `measure`, nearest first (ties by position).
///
/// Distances come from one batched kernel pass over the centroids (four per query load; each
/// bucket's own allocation, no second copy) and the stored row counts; only the buckets that
/// make the cut are visited for their live count (a bucket whose rows are all stale is skipped
/// and the next nearest takes its place). Candidates are ordered as packed integer keys (the
/// distance's order-preserving bits above the position), which sort several times faster
/// than pairs under a float comparator.
pub(super) fn nearest_live(
    l1: &L1,
    query: &[f32],
    max: usize,
    measure: Measure,
) -> Vec<(f32, usize, usize)> {
    nearest(l1, query, max, measure, true)
}

/// [`nearest_live`] when `live`; otherwise the buckets storing rows, with their stored row
/// count third and no bucket's live count read (a bucket whose rows are all stale is kept).
pub(super) fn nearest(
    l1: &L1,
    query: &[f32],
    max: usize,
    measure: Measure,
    live: bool,
) -> Vec<(f32, usize, usize)> {
    // The per-query buffers are reused (a search allocated and grew them every time).
    thread_local! {
        static BUFFERS: std::cell::RefCell<(Vec<f32>, Vec<u64>)> = Default::default();
    }
    BUFFERS.with(|b| {
        let (dists, keys) = &mut *b.borrow_mut();
        order_by_distance(l1, query, max, measure, live, dists, keys)
    })
}

/// [`nearest`] with its buffers.
fn order_by_distance(
    l1: &L1,
    query: &[f32],
    max: usize,
    measure: Measure,
    live: bool,
    dists: &mut Vec<f32>,
    keys: &mut Vec<u64>,
) -> Vec<(f32, usize, usize)> {
    dists.clear();
    dists.resize(l1.stored.len(), 0f32);
    if measure == Measure::NegDot {
        kernels::dot_rows(query, &l1.centroids, dists);
    } else {
        kernels::l2sq_rows(query, &l1.centroids, dists);
    }
    let value = |d: f32| match measure {
        Measure::L2 => d.sqrt(),
        Measure::L2Squared => d,
        Measure::NegDot => -d,
    };
    keys.clear();
    keys.extend(
        dists
            .iter()
            .zip(&l1.stored)
            .enumerate()
            .filter(|(_, (_, &rows))| rows > 0)
            .map(|(i, (&d, _))| (u64::from(order_bits(value(d))) << 32) | i as u64),
    );
    let mut out = Vec::with_capacity(max.min(keys.len()));
    let mut from = 0;
    while out.len() < max && from < keys.len() {
        // Order the next window of candidates; a window is short only when stale-only buckets
        // were skipped, so this loop runs once in practice.
        let want = (max - out.len()).min(keys.len() - from);
        let rest = &mut keys[from..];
        if want < rest.len() {
            rest.select_nth_unstable(want - 1);
        }
        rest[..want].sort_unstable();
        for &key in &rest[..want] {
            let i = (key & u64::from(u32::MAX)) as usize;
            let rows = if live {
                l1.live_rows(i)
            } else {
                l1.stored[i] as usize
            };
            if rows > 0 {
                out.push((value(dists[i]), i, rows));
            }
        }
        from += want;
    }
    out
}

/// The bits of `x` as an unsigned integer that orders as [`f32::total_cmp`] orders floats.
#[inline]
fn order_bits(x: f32) -> u32 {
    let b = x.to_bits();
    if b >> 31 == 1 {
        !b
    } else {
        b | (1 << 31)
    }
}

#[cfg(test)]
mod tests {
    use super::order_bits;

    #[test]
    fn order_bits_sort_as_total_cmp() {
        let mut xs = vec![
            0.0f32,
            -0.0,
            1.0,
            -1.0,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            3.5e-42,
            1e30,
            -1e30,
            0.5,
        ];
        let mut by_bits = xs.clone();
        xs.sort_by(f32::total_cmp);
        by_bits.sort_by_key(|&x| order_bits(x));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&xs), bits(&by_bits));
    }
}
