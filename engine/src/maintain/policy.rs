//! Maintenance policy: which buckets to reshape, and how urgently. A policy only reads a
//! [`LayerView`] and returns [`Action`]s; the operations in `ops` carry them out, so policies
//! can be swapped and compared without touching the mechanism.

use crate::config::{MaintenanceSettings, PolicyKind};

/// What a policy sees of one bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketView {
    /// Bucket id.
    pub id: u32,
    /// Current rows.
    pub live: usize,
    /// Stored rows, stale ones included.
    pub rows: usize,
    /// Stale rows (deleted or replaced since they were written).
    pub stale: usize,
    /// Decayed probe count.
    pub temperature: f64,
    /// How far the running-mean centroid moved from where the bucket was built, in radii.
    pub drift: f32,
}

/// What a policy sees of the whole layer.
#[derive(Debug, Clone)]
pub struct LayerView<'a> {
    /// Every bucket.
    pub buckets: Vec<BucketView>,
    /// The collection's target bucket size.
    pub target: usize,
    /// Thresholds and budget.
    pub settings: &'a MaintenanceSettings,
}

impl BucketView {
    /// Share of stored rows that are stale (0 for an empty bucket).
    pub fn stale_ratio(&self) -> f64 {
        if self.rows == 0 {
            0.0
        } else {
            self.stale.min(self.rows) as f64 / self.rows as f64
        }
    }
}

impl LayerView<'_> {
    /// Mean temperature over all buckets (0 before any search).
    pub fn mean_temperature(&self) -> f64 {
        if self.buckets.is_empty() {
            return 0.0;
        }
        self.buckets.iter().map(|b| b.temperature).sum::<f64>() / self.buckets.len() as f64
    }

    /// Merge urgency of `b` (design paper, eq. 5): `emptiness / (temperature + eps) + beta *
    /// zombie_ratio`, with the temperature relative to the layer's mean so that the threshold
    /// does not depend on the query rate.
    pub fn urgency(&self, b: &BucketView) -> f64 {
        let s = self.settings;
        let emptiness = (1.0 - b.live as f64 / self.target.max(1) as f64).max(0.0);
        let mean = self.mean_temperature();
        let temp = if mean > 0.0 {
            b.temperature / mean
        } else {
            0.0
        };
        emptiness / (temp + s.eps as f64) + s.beta as f64 * b.stale_ratio()
    }

    /// Stale share at which `b` is compacted: `compact_ratio` for a bucket nobody probes,
    /// less the hotter it is (`compact_ratio / (1 + temperature / mean)`, at least half of
    /// it), since every probe of a bucket pays for its stale rows while the rewrite is paid
    /// once. On PyPI MiniLM-384 after 20,000 of 80,000 rows were re-upserted, the
    /// stale copies (20% of each bucket, under the flat 0.25) cut searches/s at nprobe 52
    /// from 5,600-6,200 to 3,200-3,600 (README "Measured").
    pub fn compact_threshold(&self, b: &BucketView) -> f64 {
        let mean = self.mean_temperature();
        let heat = if mean > 0.0 {
            b.temperature / mean
        } else {
            0.0
        };
        self.settings.compact_ratio as f64 / (1.0 + heat).min(2.0)
    }

    /// Live rows above which a bucket is split for size.
    pub fn split_above(&self) -> usize {
        (self.settings.split_factor as f64 * self.target as f64) as usize
    }

    /// Live rows below which a bucket may be merged.
    pub fn merge_below(&self) -> usize {
        (self.settings.merge_below as f64 * self.target as f64).ceil() as usize
    }
}

/// One reshaping step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Split the bucket in two by local 2-means and reassign defectors.
    Split(u32),
    /// Dissolve the bucket into its nearest neighbours.
    Merge(u32),
    /// Rewrite the bucket without its stale rows.
    Compact(u32),
}

impl Action {
    /// The bucket the action is about.
    pub fn bucket(self) -> u32 {
        match self {
            Action::Split(b) | Action::Merge(b) | Action::Compact(b) => b,
        }
    }
}

/// Decides what maintenance does next.
pub trait Policy: Send + Sync {
    /// Short name for reports.
    fn name(&self) -> &'static str;
    /// Actions in the order they should run; a pass carries out a prefix within its budget.
    fn plan(&self, view: &LayerView) -> Vec<Action>;
}

/// The default policy: split oversized and far-drifted buckets, scatter-merge urgent ones,
/// compact the rest when stale rows pile up.
#[derive(Debug, Clone, Copy, Default)]
pub struct DriftPolicy;

/// Size-only policy: split oversized buckets and compact stale ones; no drift splits, no
/// merges.
#[derive(Debug, Clone, Copy, Default)]
pub struct SizePolicy;

/// The design paper's first version: size splits, merges by linear emptiness alone, compaction.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinearPolicy;

/// Never reshapes anything (static IVF).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMaintenance;

/// The policy a setting names.
pub fn policy_for(kind: PolicyKind) -> Box<dyn Policy> {
    match kind {
        PolicyKind::Drift => Box::new(DriftPolicy),
        PolicyKind::Size => Box::new(SizePolicy),
        PolicyKind::Off => Box::new(NoMaintenance),
        PolicyKind::V1 => Box::new(LinearPolicy),
    }
}

impl Policy for DriftPolicy {
    fn name(&self) -> &'static str {
        "drift"
    }

    fn plan(&self, view: &LayerView) -> Vec<Action> {
        let s = view.settings;
        let mut actions = size_splits(view);
        // Drifted buckets big enough that both halves stay above the merge threshold.
        let min_drift_split = 2 * view.merge_below() + 2;
        let mut drifted: Vec<&BucketView> = view
            .buckets
            .iter()
            .filter(|b| {
                s.drift_split > 0.0
                    && b.drift > s.drift_split
                    && b.live >= min_drift_split
                    && b.live <= view.split_above()
            })
            .collect();
        drifted.sort_by(|a, b| b.drift.total_cmp(&a.drift));
        actions.extend(drifted.iter().map(|b| Action::Split(b.id)));

        let merges = view
            .buckets
            .iter()
            .filter(|b| b.live < view.merge_below())
            .map(|b| (view.urgency(b), b.id))
            .filter(|(u, _)| *u > s.merge_urgency as f64)
            .collect();
        actions.extend(ranked_merges(view, merges));

        actions.extend(compactions(view, &actions));
        actions
    }
}

impl Policy for SizePolicy {
    fn name(&self) -> &'static str {
        "size"
    }

    fn plan(&self, view: &LayerView) -> Vec<Action> {
        let mut actions = size_splits(view);
        actions.extend(compactions(view, &actions));
        actions
    }
}

impl Policy for LinearPolicy {
    fn name(&self) -> &'static str {
        "v1"
    }

    fn plan(&self, view: &LayerView) -> Vec<Action> {
        let s = view.settings;
        let mut actions = size_splits(view);
        let target = view.target.max(1) as f64;
        let merges = view
            .buckets
            .iter()
            .map(|b| ((1.0 - b.live as f64 / target).max(0.0), b.id))
            .filter(|(e, _)| *e > s.merge_urgency as f64)
            .collect();
        actions.extend(ranked_merges(view, merges));
        actions.extend(compactions(view, &actions));
        actions
    }
}

impl Policy for NoMaintenance {
    fn name(&self) -> &'static str {
        "off"
    }

    fn plan(&self, _view: &LayerView) -> Vec<Action> {
        Vec::new()
    }
}

/// Merges of `(urgency, bucket)` candidates, most urgent first; never the last bucket.
fn ranked_merges(view: &LayerView, mut scored: Vec<(f64, u32)>) -> Vec<Action> {
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let keep = view.buckets.len().saturating_sub(1);
    scored
        .into_iter()
        .take(keep)
        .map(|m| Action::Merge(m.1))
        .collect()
}

/// Oversized buckets, largest first.
fn size_splits(view: &LayerView) -> Vec<Action> {
    let mut big: Vec<&BucketView> = view
        .buckets
        .iter()
        .filter(|b| b.live > view.split_above())
        .collect();
    big.sort_by_key(|b| std::cmp::Reverse(b.live));
    big.iter().map(|b| Action::Split(b.id)).collect()
}

/// Buckets whose stale share passed their threshold ([`LayerView::compact_threshold`]) and
/// that no earlier action rewrites, furthest past it first.
fn compactions(view: &LayerView, planned: &[Action]) -> Vec<Action> {
    let mut stale: Vec<(f64, u32)> = view
        .buckets
        .iter()
        .filter(|b| b.rows > 0 && b.stale > 0 && !planned.iter().any(|a| a.bucket() == b.id))
        .map(|b| (b.stale_ratio() / view.compact_threshold(b), b.id))
        .filter(|(r, _)| *r >= 1.0)
        .collect();
    stale.sort_by(|a, b| b.0.total_cmp(&a.0));
    stale.iter().map(|s| Action::Compact(s.1)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(id: u32, live: usize, stale: usize, temperature: f64, drift: f32) -> BucketView {
        BucketView {
            id,
            live,
            rows: live + stale,
            stale,
            temperature,
            drift,
        }
    }

    #[test]
    fn drift_policy_orders_splits_merges_then_compactions() {
        let settings = MaintenanceSettings::default();
        let view = LayerView {
            buckets: vec![
                bucket(1, 600, 0, 1.0, 0.0),   // oversized
                bucket(2, 200, 0, 1.0, 3.0),   // drifted
                bucket(3, 10, 0, 0.0, 0.0),    // cold and nearly empty
                bucket(4, 10, 0, 50.0, 0.0),   // nearly empty but hot: keep
                bucket(5, 150, 100, 1.0, 0.0), // many stale rows
                bucket(6, 250, 0, 1.0, 0.2),   // healthy
            ],
            target: 256,
            settings: &settings,
        };
        let plan = DriftPolicy.plan(&view);
        assert_eq!(
            plan,
            vec![
                Action::Split(1),
                Action::Split(2),
                Action::Merge(3),
                Action::Compact(5)
            ]
        );
        assert_eq!(
            SizePolicy.plan(&view),
            vec![Action::Split(1), Action::Compact(5)]
        );
        assert!(NoMaintenance.plan(&view).is_empty());
        // V1 merges by emptiness alone: the hot near-empty bucket 4 goes too, and so does
        // bucket 5, whose 150 live rows leave it 41% empty (below the 0.5 threshold: kept).
        assert_eq!(
            LinearPolicy.plan(&view),
            vec![
                Action::Split(1),
                Action::Merge(3),
                Action::Merge(4),
                Action::Compact(5)
            ]
        );
    }

    #[test]
    fn hot_buckets_are_compacted_at_a_smaller_stale_share() {
        let settings = MaintenanceSettings::default();
        let view = LayerView {
            buckets: vec![
                bucket(1, 340, 60, 0.0, 0.0),  // 15% stale, never probed: waits for 25%
                bucket(2, 340, 60, 2.0, 0.0),  // 15% stale, at the mean heat: past 0.25 / 2
                bucket(3, 360, 40, 1.0, 0.0),  // 10% stale, half the mean heat: under 0.25 / 1.5
                bucket(4, 290, 110, 0.0, 0.0), // 27.5% stale: past 0.25 however cold
                bucket(5, 396, 4, 9.0, 0.0),   // 1% stale, hottest: under the floor 0.25 / 2
                bucket(6, 300, 0, 0.0, 0.0),
            ],
            target: 256,
            settings: &settings,
        };
        assert!((view.mean_temperature() - 2.0).abs() < 1e-12);
        assert_eq!(view.compact_threshold(&view.buckets[0]), 0.25);
        assert!((view.compact_threshold(&view.buckets[4]) - 0.125).abs() < 1e-9);
        // Bucket 2 is furthest past its threshold (0.15 against 0.125), then bucket 4 (0.275
        // against 0.25).
        assert_eq!(
            SizePolicy.plan(&view),
            vec![Action::Compact(2), Action::Compact(4)]
        );
    }

    #[test]
    fn urgency_rises_with_emptiness_and_zombies_and_falls_with_heat() {
        let settings = MaintenanceSettings::default();
        let view = LayerView {
            buckets: vec![bucket(1, 100, 0, 1.0, 0.0), bucket(2, 100, 0, 1.0, 0.0)],
            target: 200,
            settings: &settings,
        };
        let base = view.urgency(&bucket(9, 50, 0, 1.0, 0.0));
        assert!(view.urgency(&bucket(9, 10, 0, 1.0, 0.0)) > base);
        assert!(view.urgency(&bucket(9, 50, 50, 1.0, 0.0)) > base);
        assert!(view.urgency(&bucket(9, 50, 0, 5.0, 0.0)) < base);
    }
}
