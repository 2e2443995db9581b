//! The distance a collection ranks by internally, and conversion to the reported value.

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
