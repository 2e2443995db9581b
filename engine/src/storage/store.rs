//! Object storage for segments, tombstones and manifests, through Apache OpenDAL.
//!
//! A store is named by a URI: `fs:///abs/dir` (or a plain path), `memory://name` (one
//! process-wide in-memory bucket per name, for tests), or
//! `s3://bucket/prefix?endpoint=http://host:port&region=r` (credentials from
//! `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, endpoint also from `AWS_ENDPOINT_URL`).
//!
//! Objects are immutable: a name is written once and never overwritten, so a cached copy is
//! never stale. Reads of a local `fs` store go straight to the file; reads of any other store
//! go through a local disk cache of whole objects ([`DiskCache`]): S3-FIFO eviction under a
//! byte budget, one fetch per object however many readers miss at once (single flight), and
//! hit / miss / eviction counters.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, IoContext, Result};
use crate::storage::cache::{CacheCounters, S3Fifo};
use super::sync_dir;

/// A handle on one storage location.
pub struct Store {
    uri: String,
    op: opendal::Operator,
    /// Root directory when the store is a local file system (reads bypass the cache).
    local: Option<PathBuf>,
    cache: Option<DiskCache>,
    files: Mutex<HashMap<String, Arc<File>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("uri", &self.uri).finish()
    }
}

/// The runtime OpenDAL's futures run on; engine threads block on them from outside it.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("drift-io")
            .enable_all()
            .build()
            .expect("the storage I/O runtime starts")
    })
}

/// Runs `fut` on the I/O runtime and waits for it (safe to call from inside another runtime).
fn block<T: Send + 'static>(fut: impl std::future::Future<Output = T> + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().expect("the storage I/O runtime is running")
}

fn memory_operator(name: &str) -> Result<opendal::Operator> {
    static MEMORY: OnceLock<Mutex<HashMap<String, opendal::Operator>>> = OnceLock::new();
    let mut all = MEMORY.get_or_init(Default::default).lock();
    if let Some(op) = all.get(name) {
        return Ok(op.clone());
    }
    let op = opendal::Operator::new(opendal::services::Memory::default())
        .map_err(|e| Error::Storage(format!("memory://{name}: {e}")))?;
    all.insert(name.to_string(), op.clone());
    Ok(op)
}

fn s3_operator(rest: &str) -> Result<opendal::Operator> {
    // The HTTP transport OpenDAL's S3 service sends requests with (installed once).
    static HTTP: OnceLock<()> = OnceLock::new();
    HTTP.get_or_init(opendal::install_default);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
    if bucket.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "s3://{rest}: the URI names no bucket"
        )));
    }
    let mut b = opendal::services::S3::default()
        .bucket(bucket)
        .root(&format!("/{prefix}"))
        .region("us-east-1");
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let Some(e) = env("AWS_ENDPOINT_URL") {
        b = b.endpoint(&e);
    }
    if let Some(k) = env("AWS_ACCESS_KEY_ID") {
        b = b.access_key_id(&k);
    }
    if let Some(s) = env("AWS_SECRET_ACCESS_KEY") {
        b = b.secret_access_key(&s);
    }
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        match kv.split_once('=') {
            Some(("endpoint", v)) => b = b.endpoint(v),
            Some(("region", v)) => b = b.region(v),
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "s3://{rest}: unknown option {kv:?} (endpoint=, region=)"
                )))
            }
        }
    }
    Ok(opendal::Operator::new(b)
        .map_err(|e| Error::Storage(format!("s3://{rest}: {e}")))?
        .layer(opendal::layers::RetryLayer::new()))
}

impl Store {
    /// Opens the store named by `uri`; `cache_dir` and `cache_bytes` size the disk cache used
    /// for stores that are not local directories.
    pub fn open(uri: &str, cache_dir: &Path, cache_bytes: u64) -> Result<Store> {
        let (op, local) = if let Some(name) = uri.strip_prefix("memory://") {
            (memory_operator(name)?, None)
        } else if let Some(rest) = uri.strip_prefix("s3://") {
            (s3_operator(rest)?, None)
        } else {
            let dir = PathBuf::from(uri.strip_prefix("fs://").unwrap_or(uri));
            if uri.contains("://") && !uri.starts_with("fs://") {
                return Err(Error::InvalidArgument(format!(
                    "unsupported storage URI {uri:?} (fs://, memory://, s3://)"
                )));
            }
            std::fs::create_dir_all(&dir).at(&dir)?;
            let root = dir.to_string_lossy().to_string();
            let op = opendal::Operator::new(
                opendal::services::Fs::default()
                    .root(&root)
                    .atomic_write_dir(&format!("{root}/.tmp")),
            )
            .map_err(|e| Error::Storage(format!("{uri}: {e}")))?;
            (op, Some(dir))
        };
        let op = match super::fault::Faults::registered(uri) {
            Some(plan) => op.layer(super::fault::FaultLayer(plan)),
            None => op,
        };
        let cache = match local {
            Some(_) => None,
            None => Some(DiskCache::open(cache_dir, cache_bytes)?),
        };
        Ok(Store {
            uri: uri.to_string(),
            op,
            local,
            cache,
            files: Mutex::new(HashMap::new()),
        })
    }

    /// The URI this store was opened with.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// A printable location for object `name` (used in error messages).
    pub fn path_of(&self, name: &str) -> PathBuf {
        match &self.local {
            Some(dir) => dir.join(name),
            None => PathBuf::from(format!("{}/{name}", self.uri.trim_end_matches('/'))),
        }
    }

    fn storage_err(&self, what: &str, name: &str, e: opendal::Error) -> Error {
        Error::Storage(format!("{what} {}: {e}", self.path_of(name).display()))
    }

    /// Writes object `name` durably (never called twice for one name).
    pub fn write(&self, name: &str, bytes: Vec<u8>) -> Result<()> {
        let op = self.op.clone();
        let path = name.to_string();
        block(async move { op.write(&path, bytes).await.map(|_| ()) })
            .map_err(|e| self.storage_err("cannot write", name, e))?;
        if let Some(dir) = &self.local {
            // The file is synced by the writer; make its directory entry durable too.
            let full = dir.join(name);
            sync_dir(full.parent().unwrap_or(dir))?;
        }
        Ok(())
    }

    /// The whole of object `name`.
    pub fn read(&self, name: &str) -> Result<Vec<u8>> {
        let file = self.file(name)?;
        let len = file.metadata().at(&self.path_of(name))?.len();
        self.read_at(name, &file, 0, len)
    }

    /// Names of the objects under `prefix` (a folder, ending in `/`).
    pub fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let op = self.op.clone();
        let p = prefix.to_string();
        let entries = block(async move { op.list(&p).await })
            .map_err(|e| self.storage_err("cannot list", prefix, e))?;
        Ok(entries
            .into_iter()
            .map(|e| e.path().to_string())
            .filter(|p| !p.ends_with('/'))
            .collect())
    }

    /// Deletes object `name` (and its cached copy).
    pub fn delete(&self, name: &str) -> Result<()> {
        let op = self.op.clone();
        let path = name.to_string();
        block(async move { op.delete(&path).await })
            .map_err(|e| self.storage_err("cannot delete", name, e))?;
        self.files.lock().remove(name);
        if let Some(c) = &self.cache {
            c.forget(name);
        }
        Ok(())
    }

    /// A local file holding object `name`: the object itself for `fs` stores, otherwise its
    /// copy in the disk cache (fetched on a miss).
    pub fn file(&self, name: &str) -> Result<Arc<File>> {
        match &self.cache {
            None => {
                if let Some(f) = self.files.lock().get(name) {
                    return Ok(f.clone());
                }
                let path = self.path_of(name);
                let f = Arc::new(File::open(&path).at(&path)?);
                self.files.lock().insert(name.to_string(), f.clone());
                Ok(f)
            }
            Some(cache) => cache.get(name, || {
                let op = self.op.clone();
                let path = name.to_string();
                block(async move { op.read(&path).await.map(|b| b.to_vec()) })
                    .map_err(|e| self.storage_err("cannot read", name, e))
            }),
        }
    }

    /// `len` bytes of object `name` at `offset`, read from `file` (see [`Store::file`]).
    pub fn read_at(&self, name: &str, file: &File, offset: u64, len: u64) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, offset).map_err(|e| {
            Error::corrupt(
                self.path_of(name),
                offset,
                format!("cannot read {len} bytes: {e}"),
            )
        })?;
        Ok(buf)
    }

    /// Disk cache counters (hits, misses, evictions) and bytes held; zeros for local stores.
    pub fn cache_stats(&self) -> (u64, u64, u64, u64) {
        match &self.cache {
            Some(c) => {
                let (h, m, e) = c.counters.snapshot();
                (h, m, e, c.state.lock().policy.bytes())
            }
            None => (0, 0, 0, 0),
        }
    }
}

struct CacheState {
    policy: S3Fifo<String>,
    files: HashMap<String, Arc<File>>,
    /// Misses being fetched: waiters block on the condvar until the slot is filled.
    loading: HashMap<String, Arc<Flight>>,
}

#[derive(Default)]
struct Flight {
    done: Mutex<Option<std::result::Result<Arc<File>, String>>>,
    cv: Condvar,
}

/// Local disk copies of remote objects under a byte budget.
pub struct DiskCache {
    dir: PathBuf,
    state: Mutex<CacheState>,
    counters: CacheCounters,
}

impl DiskCache {
    fn open(dir: &Path, budget: u64) -> Result<DiskCache> {
        // Copies from an earlier run are not trusted to be complete: start empty.
        if dir.exists() {
            std::fs::remove_dir_all(dir).at(dir)?;
        }
        std::fs::create_dir_all(dir).at(dir)?;
        Ok(DiskCache {
            dir: dir.to_path_buf(),
            state: Mutex::new(CacheState {
                policy: S3Fifo::new(budget),
                files: HashMap::new(),
                loading: HashMap::new(),
            }),
            counters: CacheCounters::default(),
        })
    }

    fn local_path(&self, name: &str) -> PathBuf {
        self.dir.join(name.replace('/', "%"))
    }

    fn get(&self, name: &str, fetch: impl FnOnce() -> Result<Vec<u8>>) -> Result<Arc<File>> {
        let flight = {
            let mut s = self.state.lock();
            if let Some(f) = s.files.get(name).cloned() {
                s.policy.touch(&name.to_string());
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(f);
            }
            if let Some(f) = s.loading.get(name).cloned() {
                // Someone else is fetching it: wait for their result.
                drop(s);
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                let mut done = f.done.lock();
                while done.is_none() {
                    f.cv.wait(&mut done);
                }
                return done.clone().expect("filled").map_err(Error::Storage);
            }
            let f = Arc::new(Flight::default());
            s.loading.insert(name.to_string(), f.clone());
            f
        };
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        let result = fetch().and_then(|bytes| {
            let path = self.local_path(name);
            std::fs::write(&path, &bytes).at(&path)?;
            let file = Arc::new(File::open(&path).at(&path)?);
            // Unlinked now: the open handle keeps the data until the entry is evicted.
            std::fs::remove_file(&path).at(&path)?;
            Ok((file, bytes.len() as u64))
        });
        let mut s = self.state.lock();
        s.loading.remove(name);
        let out = match result {
            Ok((file, len)) => {
                s.files.insert(name.to_string(), file.clone());
                let evicted = s.policy.insert(name.to_string(), len);
                self.counters
                    .evictions
                    .fetch_add(evicted.len() as u64, Ordering::Relaxed);
                for k in evicted {
                    s.files.remove(&k);
                }
                Ok(file)
            }
            Err(e) => Err(e),
        };
        drop(s);
        *flight.done.lock() = Some(out.as_ref().map(Arc::clone).map_err(|e| e.to_string()));
        flight.cv.notify_all();
        out
    }

    fn forget(&self, name: &str) {
        let mut s = self.state.lock();
        s.files.remove(name);
        s.policy.remove(&name.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_round_trip_through_the_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Store::open("memory://store-test", &tmp.path().join("cache"), 1 << 20).unwrap();
        s.write("seg/a.drift", b"hello world".to_vec()).unwrap();
        s.write("seg/b.drift", vec![7; 100]).unwrap();
        assert_eq!(s.read("seg/a.drift").unwrap(), b"hello world");
        let f = s.file("seg/a.drift").unwrap();
        assert_eq!(s.read_at("seg/a.drift", &f, 6, 5).unwrap(), b"world");
        let mut names = s.list("seg/").unwrap();
        names.sort();
        assert_eq!(names, ["seg/a.drift", "seg/b.drift"]);
        let (hits, misses, _, bytes) = s.cache_stats();
        assert_eq!((hits, misses, bytes), (1, 1, 11));
        s.delete("seg/a.drift").unwrap();
        assert!(s.read("seg/a.drift").is_err());
        // The same name in a second handle sees the same objects.
        let again = Store::open("memory://store-test", &tmp.path().join("c2"), 1 << 20).unwrap();
        assert_eq!(again.read("seg/b.drift").unwrap(), vec![7; 100]);
    }

    #[test]
    fn concurrent_misses_fetch_once() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = DiskCache::open(tmp.path(), 1 << 20).unwrap();
        let fetches = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|sc| {
            for _ in 0..8 {
                sc.spawn(|| {
                    cache
                        .get("x", || {
                            fetches.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            Ok(vec![1, 2, 3])
                        })
                        .unwrap()
                });
            }
        });
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        let (hits, misses, _) = cache.counters.snapshot();
        assert_eq!((hits, misses), (7, 1));
    }

    #[test]
    fn byte_budget_evicts() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Store::open("memory://budget-test", &tmp.path().join("cache"), 250).unwrap();
        for i in 0..10 {
            s.write(&format!("o{i}"), vec![i as u8; 100]).unwrap();
            assert_eq!(s.read(&format!("o{i}")).unwrap(), vec![i as u8; 100]);
        }
        let (_, misses, evictions, bytes) = s.cache_stats();
        assert_eq!(misses, 10);
        assert!(evictions >= 8 && bytes <= 250, "{evictions} {bytes}");
    }

    #[test]
    fn fs_store_and_bad_uris() {
        let tmp = tempfile::tempdir().unwrap();
        let uri = format!("fs://{}", tmp.path().join("objs").display());
        let s = Store::open(&uri, &tmp.path().join("cache"), 0).unwrap();
        s.write("m/1", b"abc".to_vec()).unwrap();
        assert_eq!(s.read("m/1").unwrap(), b"abc");
        assert!(tmp.path().join("objs/m/1").exists());
        assert_eq!(s.list("m/").unwrap(), ["m/1"]);
        let e = Store::open("ftp://x", tmp.path(), 0).unwrap_err();
        assert!(e.to_string().contains("unsupported storage URI"), "{e}");
        let e = Store::open("s3://b/p?colour=red", tmp.path(), 0).unwrap_err();
        assert!(e.to_string().contains("unknown option"), "{e}");
    }
}
