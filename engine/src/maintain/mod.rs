//! Self-healing of the bucket layer under drift and churn.
//!
//! ```text
//! LayerView ─▶ Policy::plan ─▶ [Split | Merge | Compact] ─▶ ops (within the pass budget) ─▶ Reshape ─▶ new L1
//! ```
//! The policy decides which bucket and when; `ops` decide how. Neither touches the id map or
//! the collection's versions: `Collection::maintain` runs them under the maintenance lock and
//! publishes the result like a flush does.

pub(crate) mod ops;
pub mod policy;

pub(crate) use ops::OpContext;
pub use policy::{
    policy_for, Action, BucketView, DriftPolicy, LayerView, NoMaintenance, Policy, SizePolicy,
};

use serde::Serialize;

/// Work done by maintenance, counted the same way in a pass's report, the collection's
/// cumulative stats and the manifest that makes them durable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct MaintenanceCounts {
    /// Passes run.
    pub passes: u64,
    /// Buckets split (for size or drift).
    pub splits: u64,
    /// Buckets dissolved by scatter merge.
    pub merges: u64,
    /// Buckets compacted.
    pub compactions: u64,
    /// Rows that changed bucket: split defectors and scattered rows.
    pub reassigned: u64,
    /// Rows written into new or rebuilt buckets (the physical cost).
    pub written: u64,
    /// Stale rows dropped.
    pub compacted_tombstones: u64,
}

impl MaintenanceCounts {
    /// Field names, in the order of [`MaintenanceCounts::values`] (the manifest's keys).
    pub const NAMES: [&'static str; 7] = [
        "passes",
        "splits",
        "merges",
        "compactions",
        "reassigned",
        "written",
        "compacted_tombstones",
    ];

    /// The counts in the order of [`MaintenanceCounts::NAMES`].
    pub fn values(&self) -> [u64; 7] {
        [
            self.passes,
            self.splits,
            self.merges,
            self.compactions,
            self.reassigned,
            self.written,
            self.compacted_tombstones,
        ]
    }

    /// The counts from values in the order of [`MaintenanceCounts::NAMES`].
    pub fn from_values(v: [u64; 7]) -> MaintenanceCounts {
        let [passes, splits, merges, compactions, reassigned, written, compacted_tombstones] = v;
        MaintenanceCounts {
            passes,
            splits,
            merges,
            compactions,
            reassigned,
            written,
            compacted_tombstones,
        }
    }

    /// Adds `o` to these counts.
    pub fn absorb(&mut self, o: &MaintenanceCounts) {
        let (a, b) = (self.values(), o.values());
        *self = MaintenanceCounts::from_values(std::array::from_fn(|i| a[i] + b[i]));
    }
}

/// What one or more maintenance passes did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct MaintainReport {
    /// Policy that planned the passes.
    pub policy: String,
    /// What the passes did.
    #[serde(flatten)]
    pub counts: MaintenanceCounts,
    /// Actions the policy still wanted when the last pass ran out of budget.
    pub pending: u64,
    /// Wall time spent, milliseconds.
    pub millis: f64,
}

impl MaintainReport {
    /// Adds another report's counts to this one.
    pub fn absorb(&mut self, o: &MaintainReport) {
        self.counts.absorb(&o.counts);
        self.pending = o.pending;
        self.millis += o.millis;
        if self.policy.is_empty() {
            self.policy = o.policy.clone();
        }
    }

    /// True when the pass changed nothing.
    pub fn is_idle(&self) -> bool {
        let c = &self.counts;
        c.splits + c.merges + c.compactions == 0
    }
}
