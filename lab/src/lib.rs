//! # drift-lab
//!
//! Experiments against Drift through its public API: data sources, vector file formats,
//! exact ground truth and recall, and runners that report what they measured.
//!
//! ```text
//! data source (generator | .fvecs/.bvecs/.fbin/.u8bin/.npy/.jsonl) ─▶ engine (public API) ─▶ search
//!                                         └────▶ exact k-NN (ground truth) ─▶ recall@k, latency
//! ```

pub mod baseline;
pub mod bench;
pub mod chart;
pub mod datasets;
pub mod demo;
pub mod driver;
pub mod error;
pub mod live;
pub mod peer;
pub mod record;
pub mod report;
pub mod run;
pub mod runbook;
pub mod scenario;
pub mod stream;
pub mod summary;
pub mod topics;
pub mod transport;
pub mod truth;
pub mod vecfile;

pub use error::{LabError, Result};

use std::sync::Arc;

use drift_engine::{Catalog, CollectionConfig, IndexSettings, Metric, VectorWrite};

/// Collection `name` of `catalog`, created empty (dropped first if it exists) with `settings`
/// (the engine's defaults if None).
pub fn fresh_collection(
    catalog: &dyn Catalog,
    name: &str,
    dim: usize,
    metric: Metric,
    settings: Option<&IndexSettings>,
) -> Result<Arc<dyn VectorWrite>> {
    if catalog.open(name).is_ok() {
        catalog.drop_collection(name)?;
    }
    let mut config = CollectionConfig::new(dim, metric);
    if let Some(s) = settings {
        config.settings = s.clone();
    }
    Ok(catalog.create(name, config)?)
}
