//! The collection's background thread, the janitor: builds HNSW graphs over frozen
//! memtables, runs automatic flushes (and with them, automatic training), and, when the
//! settings allow, maintenance passes after each flush and whenever it has been idle for a
//! moment.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;

use super::Collection;
use crate::memtable::Memtable;

/// How long the janitor waits for work before it looks for maintenance to do.
const JANITOR_IDLE: Duration = Duration::from_millis(250);
/// Most maintenance passes the janitor runs in one go (it yields to queued tasks after).
const JANITOR_PASSES: usize = 4;

impl Collection {
    /// A few maintenance passes with the configured policy, if background maintenance is on.
    fn background_maintenance(&self) {
        let m = &self.config.settings.maintenance;
        if !m.background || m.policy == crate::config::PolicyKind::Off {
            return;
        }
        if let Err(e) = self.maintain(JANITOR_PASSES) {
            tracing::error!(collection = %self.name, error = %e, "background maintenance failed");
        }
    }
}

pub(crate) enum Task {
    Index(Arc<Memtable>),
    Flush,
    /// Re-run one sampled search exactly (the recall monitor).
    Monitor(Box<super::recall::Sample>),
    Stop,
}

/// Handle to the background thread; tasks sent before `start` wait in the queue.
pub(crate) struct Worker {
    tx: Mutex<Option<Sender<Task>>>,
    queue: Mutex<Vec<Task>>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl Default for Worker {
    fn default() -> Self {
        Worker {
            tx: Mutex::new(None),
            queue: Mutex::new(Vec::new()),
            handle: Mutex::new(None),
        }
    }
}

/// A flush the write path asked for, then the maintenance it may call for.
fn background_flush(c: &Collection) {
    if let Err(e) = c.flush() {
        tracing::error!(collection = %c.name, error = %e, "background flush failed");
    }
    c.background_maintenance();
}

impl Worker {
    pub(crate) fn start(&self, coll: Weak<Collection>) {
        let (tx, rx) = channel::<Task>();
        for t in self.queue.lock().drain(..) {
            let _ = tx.send(t);
        }
        *self.tx.lock() = Some(tx);
        let name = coll.upgrade().map(|c| c.name.clone()).unwrap_or_default();
        let handle = std::thread::Builder::new()
            .name(format!("drift-bg-{name}"))
            .spawn(move || {
                loop {
                    let task = match rx.recv_timeout(JANITOR_IDLE) {
                        Ok(t) => Some(t),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    };
                    let Some(c) = coll.upgrade() else { break };
                    if c.closed.load(Ordering::Acquire) {
                        break;
                    }
                    let Some(task) = task else {
                        c.background_maintenance();
                        continue;
                    };
                    match task {
                        Task::Stop => break,
                        Task::Index(m) => {
                            // A flush may drain the memtable while its graph is built: stop
                            // then. A flush already queued behind this task will drain it too,
                            // so under bulk ingest the graph is not built at all (searches scan
                            // an unindexed memtable exactly until the flush).
                            let wanted = || {
                                !c.closed.load(Ordering::Acquire)
                                    && !c.flush_pending.load(Ordering::Acquire)
                                    && c.version.load().frozen.iter().any(|f| Arc::ptr_eq(f, &m))
                            };
                            if wanted() {
                                let s = &c.config.settings;
                                m.build_graph(
                                    c.config.metric,
                                    c.config.dim,
                                    s.hnsw_m,
                                    s.hnsw_ef_construction,
                                    &wanted,
                                );
                            }
                        }
                        Task::Flush => {
                            if c.flush_pending.swap(false, Ordering::AcqRel) {
                                background_flush(&c);
                            }
                        }
                        Task::Monitor(sample) => {
                            // Samples are best effort; a flush is not: one that came due
                            // behind queued samples runs first (its own task then finds
                            // nothing pending), so memtables never grow while the monitor
                            // catches up.
                            if c.flush_pending.swap(false, Ordering::AcqRel) {
                                background_flush(&c);
                            }
                            c.run_monitor(*sample)
                        }
                    }
                }
            });
        match handle {
            Ok(h) => *self.handle.lock() = Some(h),
            Err(e) => tracing::error!(error = %e, "cannot start background thread"),
        }
    }

    pub(crate) fn send(&self, task: Task) {
        match self.tx.lock().as_ref() {
            Some(tx) => {
                let _ = tx.send(task);
            }
            None => self.queue.lock().push(task),
        }
    }

    /// Asks the thread to stop and waits for it (unless called from the thread itself).
    pub(crate) fn stop(&self) {
        self.send(Task::Stop);
        self.tx.lock().take();
        if let Some(h) = self.handle.lock().take() {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }

    /// Lets the thread end on its own (it exits once the collection is gone).
    pub(crate) fn detach(&self) {
        self.tx.lock().take();
        self.handle.lock().take();
    }
}
