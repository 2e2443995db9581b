//! Self-healing of the bucket layer under drift and churn.
//!
//! ```text
//! LayerView ─▶ Policy::plan ─▶ [Split | Merge | Compact] ─▶ ops (within the pass budget) ─▶ Reshape ─▶ new L1
//! ```
//! The policy decides which bucket and when; `ops` decide how. Neither touches the id map or
//! the collection's versions: `Collection::maintain` runs them under the maintenance lock and
//! publishes the result like a flush does.

pub mod ops;
pub mod policy;

pub use ops::{OpContext, OpOutcome};
pub use policy::{
    policy_for, Action, BucketView, DriftPolicy, LayerView, NoMaintenance, Policy, SizePolicy,
};

use serde::Serialize;

/// What one or more maintenance passes did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MaintainReport {
    /// Policy that planned the passes.
    pub policy: String,
    /// Passes run.
    pub passes: u64,
    /// Buckets split (for size or drift).
    pub splits: u64,
    /// Buckets dissolved by scatter merge.
    pub merges: u64,
    /// Buckets compacted.
    pub compactions: u64,
    /// Rows that changed bucket: split defectors and scattered rows.
    pub moved: u64,
    /// Rows written into new or rebuilt buckets (the physical cost).
    pub written: u64,
    /// Stale rows dropped.
    pub compacted_tombstones: u64,
    /// Actions the policy still wanted when the last pass ran out of budget.
    pub pending: u64,
    /// Wall time spent, milliseconds.
    pub millis: f64,
}

impl MaintainReport {
    /// Adds another report's counts to this one.
    pub fn absorb(&mut self, o: &MaintainReport) {
        self.passes += o.passes;
        self.splits += o.splits;
        self.merges += o.merges;
        self.compactions += o.compactions;
        self.moved += o.moved;
        self.written += o.written;
        self.compacted_tombstones += o.compacted_tombstones;
        self.pending = o.pending;
        self.millis += o.millis;
        if self.policy.is_empty() {
            self.policy = o.policy.clone();
        }
    }

    /// True when the pass changed nothing.
    pub fn is_idle(&self) -> bool {
        self.splits + self.merges + self.compactions == 0
    }
}
