//! A database: a data directory of named collections, held by one process at a time.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::collection::{Collection, CONFIG_FILE};
use crate::config::CollectionConfig;
use crate::error::{Error, IoContext, Result};

const COLLECTIONS_DIR: &str = "collections";
const LOCK_FILE: &str = "LOCK";
/// Longest collection name.
pub const MAX_NAME_LEN: usize = 128;

/// What [`Database::repair_collection`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RepairReport {
    /// The collection.
    pub name: String,
    /// Each step taken, with what it discarded.
    pub actions: Vec<String>,
    /// Live vectors once it opened.
    pub live_vectors: usize,
}

/// An open data directory.
pub struct Database {
    root: PathBuf,
    _lock: File,
    collections: RwLock<BTreeMap<String, Arc<Collection>>>,
    /// Collections that failed to open, with the error: listed, refused, droppable.
    failed: RwLock<BTreeMap<String, String>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("root", &self.root)
            .finish()
    }
}

/// Checks a collection name: 1 to 128 characters from `A-Z a-z 0-9 _ - .`, not starting
/// with a dot (so no `.`/`..` and no hidden directories), no path separators.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("it is longer than 128 characters");
    }
    if name.starts_with('.') {
        return bad("it starts with a dot");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return bad("only letters, digits, '_', '-' and '.' are allowed");
    }
    Ok(())
}

impl Database {
    /// Opens (creating if needed) the data directory and every collection in it. Fails with
    /// [`Error::Locked`] if another process has it open.
    pub fn open(root: impl AsRef<Path>) -> Result<Database> {
        let root = root.as_ref().to_path_buf();
        let cdir = root.join(COLLECTIONS_DIR);
        std::fs::create_dir_all(&cdir).at(&cdir)?;
        let lock_path = root.join(LOCK_FILE);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .at(&lock_path)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Locked { path: root }),
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
        }
        let mut collections = BTreeMap::new();
        let mut failed = BTreeMap::new();
        for entry in std::fs::read_dir(&cdir).at(&cdir)? {
            let entry = entry.at(&cdir)?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                // Leftover of an interrupted drop.
                let p = entry.path();
                std::fs::remove_dir_all(&p).at(&p)?;
                continue;
            }
            if !entry.path().join(CONFIG_FILE).exists() {
                continue;
            }
            // One collection that cannot open does not take the others down.
            match Collection::open(&name, &entry.path()) {
                Ok(coll) => {
                    collections.insert(name, coll);
                }
                Err(e) => {
                    tracing::error!(collection = %name, error = %e, "collection failed to open; the others are served");
                    failed.insert(name, e.to_string());
                }
            }
        }
        Ok(Database {
            root,
            _lock: lock,
            collections: RwLock::new(collections),
            failed: RwLock::new(failed),
        })
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates a collection.
    pub fn create_collection(
        &self,
        name: &str,
        config: CollectionConfig,
    ) -> Result<Arc<Collection>> {
        validate_name(name)?;
        config.validate()?;
        let mut map = self.collections.write();
        if map.contains_key(name) || self.failed.read().contains_key(name) {
            return Err(Error::CollectionExists(name.to_string()));
        }
        let dir = self.root.join(COLLECTIONS_DIR).join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).at(&dir)?;
        }
        match Collection::create(name, &dir, config) {
            Ok(coll) => {
                map.insert(name.to_string(), coll.clone());
                Ok(coll)
            }
            Err(e) => {
                // All or nothing: a failed create (an unusable storage uri, a full disk)
                // leaves no directory behind to trip the next open.
                if dir.exists() {
                    if let Err(rm) = std::fs::remove_dir_all(&dir) {
                        tracing::warn!(dir = %dir.display(), error = %rm, "cannot remove what a failed create left");
                    }
                }
                Err(e)
            }
        }
    }

    /// The collection called `name`.
    pub fn collection(&self, name: &str) -> Result<Arc<Collection>> {
        if let Some(c) = self.collections.read().get(name) {
            return Ok(c.clone());
        }
        match self.failed.read().get(name) {
            Some(reason) => Err(Error::Unavailable {
                name: name.to_string(),
                reason: reason.clone(),
            }),
            None => Err(Error::CollectionNotFound(name.to_string())),
        }
    }

    /// Repairs a collection that failed to open, step by step, discarding as little as
    /// possible, and opens it; returns what was done (and what was lost).
    ///
    /// - Damage in a WAL file: the file is cut at the damage and the newer files are removed
    ///   (the records after the damage are lost; they were acknowledged).
    /// - A damaged newest manifest: it is moved to `damaged/` in the collection's store and
    ///   the previous manifest is used (rows that only the damaged commit held, and the WAL
    ///   no longer does, are lost).
    /// - A damaged segment or tombstone file is not repaired: restore it from a backup or
    ///   drop the collection; the error says which.
    ///
    /// A collection that opens already needs no repair (an empty report).
    pub fn repair_collection(&self, name: &str) -> Result<RepairReport> {
        if let Some(c) = self.collections.read().get(name) {
            return Ok(RepairReport {
                name: name.to_string(),
                actions: Vec::new(),
                live_vectors: c.stats().live_vectors,
            });
        }
        if !self.failed.read().contains_key(name) {
            return Err(Error::CollectionNotFound(name.to_string()));
        }
        let dir = self.root.join(COLLECTIONS_DIR).join(name);
        let mut actions = Vec::new();
        // Each step removes one damaged place; a handful is plenty.
        for _ in 0..16 {
            let e = match Collection::open(name, &dir) {
                Ok(c) => {
                    let live_vectors = c.stats().live_vectors;
                    self.collections.write().insert(name.to_string(), c);
                    self.failed.write().remove(name);
                    tracing::warn!(collection = %name, ?actions, "collection repaired");
                    return Ok(RepairReport {
                        name: name.to_string(),
                        actions,
                        live_vectors,
                    });
                }
                Err(e) => e,
            };
            match Collection::repair_step(name, &dir, &e)? {
                Some(action) => actions.push(action),
                None => {
                    self.failed.write().insert(name.to_string(), e.to_string());
                    let done = if actions.is_empty() {
                        String::new()
                    } else {
                        format!(" (after: {})", actions.join("; "))
                    };
                    return Err(Error::Unavailable {
                        name: name.to_string(),
                        reason: format!("cannot be repaired automatically: {e}{done}"),
                    });
                }
            }
        }
        Err(Error::Unavailable {
            name: name.to_string(),
            reason: format!("still damaged after: {}", actions.join("; ")),
        })
    }

    /// Collections that failed to open, with their error, sorted by name. Every access to one
    /// returns [`Error::Unavailable`]; [`Database::drop_collection`] removes it.
    pub fn failed(&self) -> Vec<(String, String)> {
        self.failed
            .read()
            .iter()
            .map(|(n, e)| (n.clone(), e.clone()))
            .collect()
    }

    /// Names and configurations of all collections, sorted by name.
    pub fn list(&self) -> Vec<(String, CollectionConfig)> {
        self.collections
            .read()
            .iter()
            .map(|(n, c)| (n.clone(), c.config().clone()))
            .collect()
    }

    /// Deletes a collection and its files. Handles to it fail with `Closed` afterwards.
    pub fn drop_collection(&self, name: &str) -> Result<()> {
        let removed = self.collections.write().remove(name);
        let dir = match removed {
            Some(coll) => {
                coll.close();
                // Objects in a store of their own (storage.uri) go too: re-creating the
                // collection there must not bring the old data back.
                if !coll.config().settings.storage.uri.is_empty() {
                    coll.purge_objects()?;
                }
                coll.dir().to_path_buf()
            }
            // A collection that failed to open can be dropped too; its objects in a store
            // of its own go when its configuration still says where they are (when the store
            // cannot be reached they stay, and a later create there is refused).
            None if self.failed.read().contains_key(name) => {
                let dir = self.root.join(COLLECTIONS_DIR).join(name);
                if let Err(e) = Collection::purge_unopened(name, &dir) {
                    tracing::warn!(collection = %name, error = %e, "cannot delete the objects of a collection that failed to open; dropping it here anyway");
                }
                self.failed.write().remove(name);
                dir
            }
            None => return Err(Error::CollectionNotFound(name.to_string())),
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let trash = self
            .root
            .join(COLLECTIONS_DIR)
            .join(format!(".dropped-{name}-{nanos}"));
        // Rename first: a crash mid-delete leaves a hidden directory, never half a collection.
        std::fs::rename(&dir, &trash).at(&dir)?;
        crate::storage::sync_dir(&self.root.join(COLLECTIONS_DIR))?;
        std::fs::remove_dir_all(&trash).at(&trash)
    }

    /// Stops every collection's background work.
    pub fn close(&self) {
        for c in self.collections.read().values() {
            c.close();
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for ok in ["a", "docs_v2", "A-b.c", &"x".repeat(128)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a\\b",
            ".hidden",
            "sp ace",
            &"x".repeat(129),
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_second_open_is_refused_while_the_first_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        assert!(matches!(
            Database::open(dir.path()),
            Err(Error::Locked { .. })
        ));
        drop(db);
        Database::open(dir.path()).unwrap();
    }
}
