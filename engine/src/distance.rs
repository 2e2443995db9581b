//! A metric's rules in one place: how a vector is prepared for storage or search (normalized
//! for cosine), the distance a collection ranks by internally, and the value it reports.

use crate::config::Metric;
use crate::kernels;

/// Internal ranking distance: squared L2 (L2 and cosine on normalized vectors) or negated
/// inner product. Smaller is always nearer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distance {
    /// Squared Euclidean.
    L2,
    /// `-<a, b>`.
    NegDot,
}

impl Distance {
    /// The internal distance used for `metric`.
    pub fn for_metric(metric: Metric) -> Distance {
        if metric.uses_l2_internally() {
            Distance::L2
        } else {
            Distance::NegDot
        }
    }

    /// True for squared L2: the distance has the geometry (balls, bisectors between
    /// centroids) that the recall model and the sketches' bounds rely on.
    #[inline]
    pub fn is_euclidean(self) -> bool {
        self == Distance::L2
    }

    /// Distance between two vectors.
    #[inline]
    pub fn eval(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Distance::L2 => kernels::l2sq(a, b),
            Distance::NegDot => -kernels::dot(a, b),
        }
    }
}

/// Converts an internal distance into the value reported for `metric`: squared L2, `1 - cos`
/// (half the squared L2 between unit vectors), or `-<q, x>`.
pub fn reported(metric: Metric, internal: f32) -> f32 {
    match metric {
        Metric::L2 | Metric::InnerProduct => internal,
        Metric::Cosine => internal * 0.5,
    }
}

/// Whether `metric` can store or search `v`: a cosine vector needs a direction (not all zeros,
/// and a finite norm). Checked without copying; [`prepare`] refuses the same vectors.
pub fn has_direction(metric: Metric, v: &[f32]) -> bool {
    if metric != Metric::Cosine {
        return true;
    }
    let norm = kernels::dot(v, v).sqrt();
    norm != 0.0 && norm.is_finite()
}

/// Prepares `v` in place for storage or search under `metric` (cosine: unit length);
/// false when it cannot be ([`has_direction`]).
pub fn prepare(metric: Metric, v: &mut [f32]) -> bool {
    metric != Metric::Cosine || normalize(v)
}

/// Normalizes `v` to unit length in place; returns false for a zero vector.
pub fn normalize(v: &mut [f32]) -> bool {
    let norm = kernels::dot(v, v).sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return false;
    }
    for x in v.iter_mut() {
        *x /= norm;
    }
    true
}
