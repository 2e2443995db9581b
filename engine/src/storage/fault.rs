//! Fault injection for tests and chaos drills: an OpenDAL layer that makes object-store
//! operations fail on demand, as a full disk or an S3 endpoint answering 5xx past its
//! retries would.
//!
//! [`Faults::for_store`] registers a plan for a storage URI; every [`super::Store`] opened
//! on that URI afterwards goes through the layer, and the plan's failure rates can be
//! changed at any time. Stores of URIs without a plan are untouched (one map lookup at open).
//! [`Faults::for_wal`] does the same for a write-ahead log directory (plain files, not
//! OpenDAL): a failing log write leaves half its bytes behind, as a full disk does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use opendal::raw::*;
use opendal::{Capability, Error as DalError, ErrorKind, OperationContext, Result as DalResult};
use parking_lot::Mutex;

/// Which object-store operations a plan can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    /// Object writes (segments, tombstones, manifests).
    Write,
    /// Object reads and stats.
    Read,
    /// Deletes.
    Delete,
    /// Listings.
    List,
}

/// Failure rates (percent) per operation, and how many faults were injected.
#[derive(Debug, Default)]
pub struct Faults {
    rates: [AtomicU32; 4],
    state: AtomicU64,
    injected: AtomicU64,
}

fn registry() -> &'static Mutex<HashMap<String, Arc<Faults>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<Faults>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// Set once any plan is registered: until then (always, outside tests and drills) the log's
/// write path checks one relaxed flag instead of locking the registry.
static ANY_PLAN: AtomicBool = AtomicBool::new(false);

impl Faults {
    /// The plan for stores opened on `uri` from now on (created with no faults if new).
    pub fn for_store(uri: &str) -> Arc<Faults> {
        ANY_PLAN.store(true, Ordering::Relaxed);
        registry()
            .lock()
            .entry(uri.to_string())
            .or_insert_with(|| {
                Arc::new(Faults {
                    state: AtomicU64::new(0x2545_f491_4f6c_dd1d),
                    ..Default::default()
                })
            })
            .clone()
    }

    /// The plan registered for `uri`, if any.
    pub(crate) fn registered(uri: &str) -> Option<Arc<Faults>> {
        registry().lock().get(uri).cloned()
    }

    /// The plan for the write-ahead log in `dir` (a collection's `wal/` directory): its
    /// [`FaultOp::Write`] rate makes log writes fail half-written, as a full disk would.
    pub fn for_wal(dir: &std::path::Path) -> Arc<Faults> {
        Faults::for_store(&wal_key(dir))
    }

    /// Whether this write to the log in `dir` fails (no plan anywhere: never, after one
    /// atomic load).
    pub(crate) fn wal_write_fails(dir: &std::path::Path) -> bool {
        if !ANY_PLAN.load(Ordering::Relaxed) {
            return false;
        }
        let plan = registry().lock().get(&wal_key(dir)).cloned();
        plan.is_some_and(|p| p.strike(FaultOp::Write, "wal").is_err())
    }

    /// Makes `percent` (0..=100) of the `op` operations fail from now on.
    pub fn set(&self, op: FaultOp, percent: u32) {
        self.rates[op as usize].store(percent.min(100), Ordering::Relaxed);
    }

    /// Turns every fault off.
    pub fn clear(&self) {
        for r in &self.rates {
            r.store(0, Ordering::Relaxed);
        }
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// Whether this `op` fails (a xorshift draw against its rate).
    fn strike(&self, op: FaultOp, path: &str) -> DalResult<()> {
        let rate = self.rates[op as usize].load(Ordering::Relaxed);
        if rate == 0 {
            return Ok(());
        }
        let mut x = self.state.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state.store(x, Ordering::Relaxed);
        if (x % 100) as u32 >= rate {
            return Ok(());
        }
        self.injected.fetch_add(1, Ordering::Relaxed);
        Err(DalError::new(
            ErrorKind::Unexpected,
            format!("injected fault: {op:?} of {path} failed"),
        ))
    }
}

/// The registry key of the log in `dir` (canonical, so that any spelling of it matches).
fn wal_key(dir: &std::path::Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    format!("wal:{}", dir.display())
}

/// The layer: wraps a store's service so that each operation first asks the plan.
#[derive(Debug, Clone)]
pub(crate) struct FaultLayer(pub(crate) Arc<Faults>);

impl Layer for FaultLayer {
    fn apply_service(&self, inner: Servicer) -> Servicer {
        Arc::new(FaultService {
            inner,
            faults: self.0.clone(),
        })
    }
}

#[derive(Debug)]
struct FaultService {
    inner: Servicer,
    faults: Arc<Faults>,
}

impl Service for FaultService {
    type Reader = oio::Reader;
    type Writer = oio::Writer;
    type Lister = oio::Lister;
    type Deleter = oio::Deleter;
    type Copier = oio::Copier;
    type Composer = oio::Composer;

    fn info(&self) -> ServiceInfo {
        self.inner.info()
    }

    fn capability(&self) -> Capability {
        self.inner.capability()
    }

    async fn create_dir(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpCreateDir,
    ) -> DalResult<RpCreateDir> {
        self.faults.strike(FaultOp::Write, path)?;
        self.inner.create_dir(ctx, path, args).await
    }

    async fn stat(&self, ctx: &OperationContext, path: &str, args: OpStat) -> DalResult<RpStat> {
        self.faults.strike(FaultOp::Read, path)?;
        self.inner.stat(ctx, path, args).await
    }

    fn read(&self, ctx: &OperationContext, path: &str, args: OpRead) -> DalResult<oio::Reader> {
        self.faults.strike(FaultOp::Read, path)?;
        self.inner.read(ctx, path, args)
    }

    fn write(&self, ctx: &OperationContext, path: &str, args: OpWrite) -> DalResult<oio::Writer> {
        self.faults.strike(FaultOp::Write, path)?;
        self.inner.write(ctx, path, args)
    }

    fn delete(&self, ctx: &OperationContext) -> DalResult<oio::Deleter> {
        self.faults.strike(FaultOp::Delete, "(delete)")?;
        self.inner.delete(ctx)
    }

    fn list(&self, ctx: &OperationContext, path: &str, args: OpList) -> DalResult<oio::Lister> {
        self.faults.strike(FaultOp::List, path)?;
        self.inner.list(ctx, path, args)
    }

    fn copy(
        &self,
        ctx: &OperationContext,
        from: &str,
        to: &str,
        args: OpCopy,
    ) -> DalResult<oio::Copier> {
        self.faults.strike(FaultOp::Write, to)?;
        self.inner.copy(ctx, from, to, args)
    }

    fn compose(
        &self,
        ctx: &OperationContext,
        to: &str,
        args: OpCompose,
    ) -> DalResult<oio::Composer> {
        self.faults.strike(FaultOp::Write, to)?;
        self.inner.compose(ctx, to, args)
    }

    async fn rename(
        &self,
        ctx: &OperationContext,
        from: &str,
        to: &str,
        args: OpRename,
    ) -> DalResult<RpRename> {
        self.faults.strike(FaultOp::Write, to)?;
        self.inner.rename(ctx, from, to, args).await
    }

    async fn restore(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpRestore,
    ) -> DalResult<RpRestore> {
        self.inner.restore(ctx, path, args).await
    }

    async fn presign(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpPresign,
    ) -> DalResult<RpPresign> {
        self.inner.presign(ctx, path, args).await
    }
}
