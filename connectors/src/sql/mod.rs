//! SQL over Drift collections with Apache DataFusion.
//!
//! ```text
//! SessionContext ─ register(ctx, db)
//!   ├─ table per collection  (table.rs: id UInt64, vector FixedSizeList<Float32, dim>, payload Utf8)
//!   ├─ vector_search(...)    (search.rs: table function, rows + _distance, nearest first)
//!   ├─ l2_distance / cosine_distance / inner_product   (functions.rs)
//!   ├─ `<->`, `<=>`, `<#>`; array literals planned once  (operators.rs, literal.rs)
//!   ├─ SET drift.nprobe = 16 ...                       (DriftOptions, a config extension)
//!   ├─ PlanCache: a statement differing only in its vector literals reuses a plan (cache.rs)
//!   └─ rewrite rule: Sort(distance(vector, [..]), fetch k) over a collection scan
//!                    ─▶ the same Sort over an index search of k rows   (rewrite.rs)
//! ```
//! Every plan node that touches the engine is a [`exec::DriftExec`], which streams record
//! batches (a collection is never materialized at once).

pub mod cache;
pub mod exec;
pub mod functions;
pub mod literal;
pub mod operators;
pub mod rewrite;
pub mod rows;
pub mod search;
pub mod table;

use std::sync::Arc;

use datafusion::common::config::ConfigExtension;
use datafusion::common::extensions_options;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use drift_engine::{Catalog, Scoring, SearchParams};

pub use cache::PlanCache;
pub use exec::DriftExec;
pub use search::{SearchTable, VectorSearchFunction};
pub use table::CollectionTable;

extensions_options! {
    /// Search knobs settable per session: `SET drift.nprobe = 16`.
    pub struct DriftOptions {
        /// Probe exactly this many buckets (0 = the collection's adaptive selection).
        pub nprobe: usize, default = 0
        /// Scan buckets until this estimated recall (0 = off).
        pub recall_target: f64, default = 0.0
        /// Bucket-score mass to cover (0 = the collection's default).
        pub target_confidence: f64, default = 0.0
        /// Re-rank factor (unset = the collection's default).
        pub rerank: Option<usize>, default = None
        /// First over-fetch factor when filters must be applied to search results.
        pub overfetch: usize, default = 4
        /// Geometric sharpness of the bucket score (unset = the collection's default).
        pub lambda: Option<f64>, default = None
        /// Density scale of the reliability factor (unset = the collection's default).
        pub tau: Option<f64>, default = None
        /// Fewest buckets probed (unset = the collection's default).
        pub min_probes: Option<usize>, default = None
        /// Most buckets probed (unset = the collection's default).
        pub max_probes: Option<usize>, default = None
        /// Density term of the bucket score: `reliability` or `linear` (unset = default).
        pub scoring: Option<String>, default = None
        /// HNSW candidate list size in frozen memtables (unset = the collection's default).
        pub ef_search: Option<usize>, default = None
        /// Hard budget of codes scanned per search (unset = none).
        pub max_codes: Option<usize>, default = None
    }
}

impl ConfigExtension for DriftOptions {
    const PREFIX: &'static str = "drift";
}

impl DriftOptions {
    /// These options as the engine's [`drift_engine::SearchOverrides`] (SQL's own syntax:
    /// 0 means unset for `nprobe`, `recall_target` and `target_confidence`); fails on a value
    /// out of range, naming it.
    pub fn overrides(&self) -> Result<drift_engine::SearchOverrides> {
        let scoring = match &self.scoring {
            Some(name) => Some(Scoring::parse(name).map_err(engine_err)?),
            None => None,
        };
        let o = drift_engine::SearchOverrides {
            nprobe: (self.nprobe > 0).then_some(self.nprobe),
            recall_target: (self.recall_target > 0.0).then_some(self.recall_target as f32),
            target_confidence: (self.target_confidence > 0.0)
                .then_some(self.target_confidence as f32),
            lambda: self.lambda.map(|l| l as f32),
            tau: self.tau.map(|t| t as f32),
            scoring,
            rerank: self.rerank,
            min_probes: self.min_probes,
            max_probes: self.max_probes,
            ef_search: self.ef_search,
            max_codes: self.max_codes,
        };
        o.validate().map_err(engine_err)?;
        Ok(o)
    }

    /// Applies these options to `params`; fails on a value out of range.
    pub fn apply(&self, params: &mut SearchParams) -> Result<()> {
        self.overrides()?.apply(params);
        Ok(())
    }

    /// Sets one option from `key=value` text (the `vector_search` options string): the
    /// engine's search option keys ([`drift_engine::SearchOverrides::KEYS`], checked by its
    /// parser) and SQL's own `overfetch`.
    pub fn set_pair(&mut self, key: &str, value: &str) -> Result<()> {
        use datafusion::common::config::ExtensionOptions;
        if key != "overfetch" {
            drift_engine::SearchOverrides::default()
                .set(key, value)
                .map_err(engine_err)?;
        }
        self.set(key, value)
    }
}

/// Turns an engine error into a DataFusion error that keeps its message.
pub fn engine_err(e: drift_engine::Error) -> DataFusionError {
    if e.is_user_error() {
        DataFusionError::Plan(e.to_string())
    } else {
        DataFusionError::External(Box::new(e))
    }
}

/// The statements of `text`, parsed in `ctx`'s dialect (PostgreSQL for a [`context`]).
pub fn parse(ctx: &SessionContext, text: &str) -> Result<Vec<datafusion::sql::parser::Statement>> {
    let name = ctx
        .state()
        .config()
        .options()
        .sql_parser
        .dialect
        .as_ref()
        .to_string();
    let dialect = datafusion::sql::sqlparser::dialect::dialect_from_str(&name)
        .ok_or_else(|| DataFusionError::Plan(format!("unknown SQL dialect {name}")))?;
    Ok(datafusion::sql::parser::DFParser::parse_sql_with_dialect(text, dialect.as_ref())?.into())
}

/// A session configuration with the `drift.*` options registered.
pub fn session_config() -> SessionConfig {
    let mut config = SessionConfig::new().with_option_extension(DriftOptions::default());
    // pgvector's `<->` is a binary operator only in dialects with geometric types.
    config.options_mut().sql_parser.dialect = datafusion::config::Dialect::PostgreSQL;
    // Let row estimates decide parallelism: an index search yields k rows, and spreading
    // them over partitions (a round-robin repartition, a sort per partition and a merge)
    // cost more than the rest of the query's execution.
    config
        .options_mut()
        .execution
        .use_row_number_estimates_to_optimize_partitioning = true;
    config
}

/// A `SessionContext` with every collection of `catalog` registered (see [`register`]).
pub fn context(catalog: Arc<dyn Catalog>) -> Result<SessionContext> {
    let state = SessionStateBuilder::new()
        .with_config(session_config())
        .with_default_features()
        .build();
    let ctx = SessionContext::new_with_state(state);
    register(&ctx, catalog)?;
    Ok(ctx)
}

/// Registers `catalog`'s collections as tables (those that open; SQL reaches them only
/// through [`drift_engine::VectorRead`]), the `vector_search` table function, the distance
/// functions and the index-search rewrite in `ctx`. For the `SET drift.*` options, build
/// `ctx` from [`session_config`] (or use [`context`]).
pub fn register(ctx: &SessionContext, catalog: Arc<dyn Catalog>) -> Result<()> {
    for entry in catalog.list().map_err(engine_err)? {
        if entry.error.is_some() {
            continue;
        }
        let coll = catalog.open(&entry.name).map_err(engine_err)?;
        ctx.register_table(
            entry.name.as_str(),
            Arc::new(CollectionTable::new(&entry.name, coll)),
        )?;
    }
    ctx.register_udtf(
        "vector_search",
        Arc::new(VectorSearchFunction::new(catalog)),
    );
    for f in functions::all() {
        ctx.register_udf(f);
    }
    ctx.add_optimizer_rule(Arc::new(rewrite::IndexSearchRule));
    // Ahead of DataFusion's own planners: the first to plan an array literal wins.
    let state = ctx.state_ref();
    let mut state = state.write();
    let mut builder = SessionStateBuilder::new_from_existing(state.clone());
    let planners = builder.expr_planners().get_or_insert_with(Vec::new);
    planners.insert(0, Arc::new(literal::ArrayLiterals));
    planners.insert(1, Arc::new(operators::VectorOperators));
    *state = builder.build();
    Ok(())
}
