//! Driving maintenance on a collection: plan with a policy, run the operations within the
//! pass budget on a copy of L1, and publish the result (under the same lock as flushes, so a
//! pass never interleaves with one). Also the consistency audit the tests rely on.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde::Serialize;

use super::{Collection, Durable};
use crate::error::Result;
use crate::maintain::{
    ops, policy_for, Action, BucketView, LayerView, MaintainReport, OpContext, Policy,
};

/// Result of [`Collection::audit`]: where every current record was found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Audit {
    /// Live records according to the id map.
    pub live: usize,
    /// Current rows found in L0.
    pub in_l0: usize,
    /// Current rows found in L1.
    pub in_l1: usize,
    /// Problems found (empty when consistent).
    pub problems: Vec<String>,
}

impl Collection {
    /// Runs up to `passes` maintenance passes with the collection's configured policy,
    /// stopping early once a pass finds nothing to do.
    pub fn maintain(&self, passes: usize) -> Result<MaintainReport> {
        let policy = policy_for(self.config.settings.maintenance.policy);
        self.maintain_with(policy.as_ref(), passes)
    }

    /// Like [`Collection::maintain`], with any policy.
    pub fn maintain_with(&self, policy: &dyn Policy, passes: usize) -> Result<MaintainReport> {
        self.check_open()?;
        let mut total = MaintainReport {
            policy: policy.name().to_string(),
            ..Default::default()
        };
        for _ in 0..passes {
            let r = self.pass(policy)?;
            total.absorb(&r);
            // An idle pass is the check that the policy wants nothing more.
            if r.is_idle() {
                break;
            }
        }
        if !total.is_idle() {
            self.calibrate_if_stale();
        }
        Ok(total)
    }

    /// What the policy sees of the current layer.
    pub fn bucket_views(&self) -> Vec<BucketView> {
        let v = self.version.load_full();
        let now = self.tick.load(Ordering::Relaxed);
        v.l1.buckets()
            .iter()
            .map(|b| BucketView {
                id: b.id,
                live: b.live_rows(),
                rows: b.rows(),
                stale: b.tally.dead().min(b.rows()),
                temperature: b.tally.temperature(now),
                drift: b.drift(),
            })
            .collect()
    }

    /// The layer as a maintenance policy sees it.
    pub fn layer_view(&self) -> LayerView<'_> {
        LayerView {
            buckets: self.bucket_views(),
            target: self.config.settings.target_bucket_size,
            settings: &self.config.settings.maintenance,
        }
    }

    /// One pass: plan, then carry out actions until the budget of written rows is spent.
    fn pass(&self, policy: &dyn Policy) -> Result<MaintainReport> {
        let _m = self.maintenance.lock();
        let started = Instant::now();
        let settings = &self.config.settings.maintenance;
        // A pass that finds nothing to do is not counted.
        let mut report = MaintainReport {
            policy: policy.name().to_string(),
            ..Default::default()
        };
        let v = self.version.load_full();
        if !v.l1.is_trained() {
            return Ok(report);
        }
        let view = self.layer_view();
        let actions = policy.plan(&view);
        if actions.is_empty() {
            return Ok(report);
        }
        report.counts.passes = 1;
        let is_current = |id: u64, seq: u64| self.idmap.is_current(id, seq);
        let ctx = OpContext {
            is_current: &is_current,
            min_child: view.merge_below() + 1,
            neighbours: settings.reassign_neighbours,
            reassign_min_share: settings.reassign_min_share,
        };
        let mut shape = self.reshape(&v.l1);
        let mut spent = 0usize;
        for (i, action) in actions.iter().enumerate() {
            if spent >= settings.budget {
                report.pending = (actions.len() - i) as u64;
                break;
            }
            let outcome = match *action {
                Action::Split(b) => ops::split(&mut shape, b, &ctx)?,
                Action::Merge(b) => ops::merge(&mut shape, b, &ctx)?,
                Action::Compact(b) => ops::compact(&mut shape, b, &ctx)?,
            };
            let Some(o) = outcome else { continue };
            let c = &mut report.counts;
            match action {
                Action::Split(_) => c.splits += 1,
                Action::Merge(_) => c.merges += 1,
                Action::Compact(_) => c.compactions += 1,
            }
            c.reassigned += o.reassigned as u64;
            c.written += o.written as u64;
            c.compacted_tombstones += o.dropped_stale as u64;
            spent += o.written.max(1);
        }
        let work = Durable {
            maintenance: report.counts,
            ..Default::default()
        };
        if report.is_idle() {
            self.counters.add(&work);
        } else {
            // The counters become durable with the pass they count.
            let (layer, placed) = shape.finish();
            let layer = self.install(layer, &[], placed);
            self.commit(&layer, self.checkpoint_seq.load(Ordering::Acquire), &work)?;
        }
        report.millis = started.elapsed().as_secs_f64() * 1e3;
        let c = &self.counters;
        c.maintenance_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        if !report.is_idle() {
            let c = &report.counts;
            tracing::debug!(collection = %self.name, splits = c.splits, merges = c.merges,
                compactions = c.compactions, reassigned = c.reassigned, "maintenance pass");
        }
        Ok(report)
    }

    /// Checks the collection's internal consistency on one snapshot: every live record's
    /// current version is stored in exactly one place (a memtable or one bucket), every
    /// stored current row belongs to a live record, and the id map's live count agrees.
    /// Holds the maintenance lock, so no flush or pass runs meanwhile.
    pub fn audit(&self) -> Audit {
        let _m = self.maintenance.lock();
        let (pin, v) = self.snapshot();
        let snap = pin.seq();
        let mut audit = Audit {
            live: self.idmap.live(),
            ..Default::default()
        };
        let mut seen: HashMap<u64, usize> = HashMap::new();
        // Counts a stored row if it is current at the snapshot; true the first time.
        let mut note = |id: u64, seq: u64, place: &dyn Fn() -> String, audit: &mut Audit| {
            if !self.idmap.visible(id, seq, snap) {
                return false;
            }
            let n = seen.entry(id).or_default();
            *n += 1;
            if *n > 1 {
                audit
                    .problems
                    .push(format!("id {id} (seq {seq}) stored again in {}", place()));
            }
            *n == 1
        };
        for m in std::iter::once(&v.active).chain(v.frozen.iter()) {
            let buf = m.buf.read();
            for i in 0..buf.len() {
                let first = note(buf.ids[i], buf.seqs[i], &|| "a memtable".into(), &mut audit);
                audit.in_l0 += usize::from(first);
            }
        }
        for b in v.l1.buckets() {
            for c in &b.chunks {
                for r in 0..c.len() {
                    let place = || format!("bucket {}", b.id);
                    let first = note(c.ids.get(r), c.seqs.get(r), &place, &mut audit);
                    audit.in_l1 += usize::from(first);
                }
            }
        }
        let found = audit.in_l0 + audit.in_l1;
        if found != audit.live && self.applied_seq.load(Ordering::Acquire) == snap {
            audit.problems.push(format!(
                "id map counts {} live records but {} were found",
                audit.live, found
            ));
        }
        audit
    }
}
