//! Values computed once per vector dimension and shared by the whole process (the recall
//! estimate's cap tables, the sketches' rotations).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use parking_lot::RwLock;

/// A process-wide cache keyed by dimension.
pub(crate) type PerDim<T> = LazyLock<RwLock<HashMap<usize, Arc<T>>>>;

/// The cached value for `dim`, made by `make` on first use.
pub(crate) fn get_or_make<T>(cache: &PerDim<T>, dim: usize, make: fn(usize) -> T) -> Arc<T> {
    if let Some(v) = cache.read().get(&dim) {
        return v.clone();
    }
    cache
        .write()
        .entry(dim)
        .or_insert_with(|| Arc::new(make(dim)))
        .clone()
}
