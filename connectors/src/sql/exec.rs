//! `DriftExec`: the one physical plan node that reads the engine. It scans a collection in
//! batches (never materializing it), looks up ids, or runs a vector search (applying any
//! filters to the results, over-fetching until `k` rows pass).

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{BooleanArray, RecordBatch};
use datafusion::arrow::compute::{
    and, concat_batches, filter_record_batch, lexsort_to_indices, take_record_batch, SortColumn,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::cast::as_boolean_array;
use datafusion::common::stats::Precision;
use datafusion::common::Statistics;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use drift_engine::config::{Metric, MAX_K, MAX_PROBES};
use drift_engine::distance::{normalize, reported, Distance};
use drift_engine::{Record, SearchParams, VectorRead};
use futures::{stream, FutureExt};

use super::engine_err;
use super::literal::QueryVector;
use super::rows::{search_schema, Rows, DISTANCE};

/// Records per batch when scanning a collection.
pub const SCAN_BATCH: usize = 8192;

/// What a [`DriftExec`] reads.
pub enum Mode {
    /// Every live record, in batches, up to `limit`.
    Scan {
        /// The collection.
        coll: Arc<dyn VectorRead>,
        /// Stop after this many rows.
        limit: Option<usize>,
    },
    /// The records with these ids (missing ones skipped), up to `limit`.
    Lookup {
        /// The collection.
        coll: Arc<dyn VectorRead>,
        /// Sorted, distinct ids.
        ids: Vec<u64>,
        /// Stop after this many rows.
        limit: Option<usize>,
    },
    /// The `k` nearest records to `query` that pass every filter, nearest first.
    Search {
        /// The collection.
        coll: Arc<dyn VectorRead>,
        /// Query vector (read when the search runs).
        query: QueryVector,
        /// Rows wanted.
        k: usize,
        /// Engine search options.
        params: SearchParams,
        /// Predicates over [`search_schema`] columns.
        filters: Vec<Arc<dyn PhysicalExpr>>,
        /// First over-fetch factor when there are filters.
        overfetch: usize,
        /// The only ids the filters can pass (sorted, distinct, at most
        /// [`PREFILTER_MAX_IDS`]): ranked exactly, by id, instead of searching the index.
        ids: Option<Vec<u64>>,
    },
}

/// Largest id set that a search pre-filters (ranks each id's stored vector exactly) rather
/// than searching the index and filtering after.
pub const PREFILTER_MAX_IDS: usize = 4096;

/// The plan node; see the module docs.
pub struct DriftExec {
    table: String,
    dim: usize,
    schema: SchemaRef,
    mode: Arc<Mode>,
    props: Arc<PlanProperties>,
}

impl DriftExec {
    /// A node reading `table` (dimension `dim`), producing `schema` (a projection of the
    /// table's columns, plus `_distance` for searches).
    pub fn new(table: &str, dim: usize, schema: SchemaRef, mode: Mode) -> Self {
        let props = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        DriftExec {
            table: table.to_string(),
            dim,
            schema,
            mode: Arc::new(mode),
            props: Arc::new(props),
        }
    }

    /// True for an index search node.
    pub fn is_search(&self) -> bool {
        matches!(*self.mode, Mode::Search { .. })
    }
}

impl fmt::Debug for DriftExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DriftExec({})", self.table)
    }
}

impl DisplayAs for DriftExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let cols: Vec<&str> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        match self.mode.as_ref() {
            Mode::Scan { limit, .. } => write!(
                f,
                "DriftScanExec: collection={}, columns=[{}], limit={limit:?}",
                self.table,
                cols.join(", ")
            ),
            Mode::Lookup { ids, limit, .. } => write!(
                f,
                "DriftLookupExec: collection={}, ids={}, limit={limit:?}",
                self.table,
                ids.len()
            ),
            Mode::Search {
                k,
                params,
                filters,
                ids,
                ..
            } => write!(
                f,
                "DriftIndexSearchExec: collection={}, k={k}, nprobe={}, recall_target={}, filters={}{}",
                self.table,
                params.nprobe.map_or("adaptive".into(), |n| n.to_string()),
                params.recall_target.map_or("off".into(), |r| r.to_string()),
                filters.len(),
                ids.as_ref()
                    .map_or(String::new(), |ids| format!(", prefilter=ids({})", ids.len()))
            ),
        }
    }
}

impl ExecutionPlan for DriftExec {
    fn name(&self) -> &str {
        if self.is_search() {
            "DriftIndexSearchExec"
        } else {
            "DriftScanExec"
        }
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    /// A search yields at most k rows and a lookup at most its ids: the estimate lets the
    /// planner keep those few rows in one partition.
    fn partition_statistics(&self, _partition: Option<usize>) -> Result<Arc<Statistics>> {
        let mut stats = Statistics::new_unknown(&self.schema);
        stats.num_rows = match self.mode.as_ref() {
            Mode::Search { k, .. } => Precision::Inexact(*k),
            Mode::Lookup { ids, limit, .. } => {
                Precision::Inexact(limit.map_or(ids.len(), |l| l.min(ids.len())))
            }
            Mode::Scan { .. } => Precision::Absent,
        };
        Ok(Arc::new(stats))
    }

    fn with_new_children(
        self: Arc<Self>,
        _: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _ctx: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "DriftExec has one partition, asked for {partition}"
            )));
        }
        let (schema, dim) = (self.schema.clone(), self.dim);
        let wants_vector = schema.fields().iter().any(|f| f.name() == "vector");
        let out = schema.clone();
        match self.mode.as_ref() {
            Mode::Scan { coll, limit } => {
                let mut left = limit.unwrap_or(usize::MAX);
                let mut iter = coll
                    .clone()
                    .scan(SCAN_BATCH.min(left.max(1)))
                    .map_err(engine_err)?;
                let batches = std::iter::from_fn(move || {
                    if left == 0 {
                        return None;
                    }
                    let mut recs = match iter.next()? {
                        Ok(recs) => recs,
                        Err(e) => return Some(Err(engine_err(e))),
                    };
                    recs.truncate(left);
                    left -= recs.len();
                    Some(records_to_rows(recs, wants_vector).to_batch(&out, dim))
                });
                Ok(Box::pin(RecordBatchStreamAdapter::new(
                    schema,
                    stream::iter(batches),
                )))
            }
            Mode::Lookup { coll, ids, limit } => {
                let mut recs = Vec::new();
                for id in ids {
                    if recs.len() >= limit.unwrap_or(usize::MAX) {
                        break;
                    }
                    if let Some(r) = coll.get(*id).map_err(engine_err)? {
                        recs.push(r);
                    }
                }
                let batch = records_to_rows(recs, wants_vector).to_batch(&out, dim);
                Ok(Box::pin(RecordBatchStreamAdapter::new(
                    schema,
                    stream::iter([batch]),
                )))
            }
            Mode::Search { .. } => {
                let mode = self.mode.clone();
                let table = self.table.clone();
                // The search itself is CPU work: off DataFusion's async threads.
                let fut = drift_engine::run_cpu(move || {
                    let Mode::Search {
                        coll,
                        query,
                        k,
                        params,
                        filters,
                        overfetch,
                        ids,
                    } = mode.as_ref()
                    else {
                        unreachable!("checked above")
                    };
                    let query = &query.current()?;
                    super::search::check_query(&table, dim, query)?;
                    match ids {
                        Some(ids) => by_ids(coll, query, *k, ids, filters, &out, dim),
                        None => search(coll, query, *k, params, filters, *overfetch, &out, dim),
                    }
                })
                .map(|r| r.map_err(engine_err).and_then(|r| r));
                Ok(Box::pin(RecordBatchStreamAdapter::new(
                    schema,
                    stream::once(fut),
                )))
            }
        }
    }
}

fn records_to_rows(recs: Vec<Record>, wants_vector: bool) -> Rows {
    let mut rows = Rows::default();
    for r in recs {
        rows.ids.push(r.id);
        if wants_vector {
            rows.vectors.extend_from_slice(&r.vector);
        }
        rows.payloads.push(r.payload);
    }
    rows
}

/// Runs the search, over-fetching until `k` rows pass the filters (or the collection has no
/// more rows), and returns them in the `out` schema. The first round uses the caller's
/// options; later rounds probe every bucket with four times the candidates; when even the
/// largest search leaves fewer than `k` rows passing, every row of one snapshot is checked
/// ([`exact_filtered`]). Filters are evaluated on all columns.
#[allow(clippy::too_many_arguments)]
fn search(
    coll: &Arc<dyn VectorRead>,
    query: &[f32],
    k: usize,
    params: &SearchParams,
    filters: &[Arc<dyn PhysicalExpr>],
    overfetch: usize,
    out: &SchemaRef,
    dim: usize,
) -> Result<RecordBatch> {
    let full = if filters.is_empty() {
        out.clone()
    } else {
        search_schema(dim)
    };
    // Vectors and payloads are only copied out of the engine when asked for (filters may
    // read any column).
    let wants = |col: &str| !filters.is_empty() || out.fields().iter().any(|f| f.name() == col);
    let mut p = params.clone();
    p.with_payload = wants("payload");
    p.with_vector = wants("vector");
    let mut fetch = if filters.is_empty() {
        k
    } else {
        k.saturating_mul(overfetch.max(1))
    };
    loop {
        p.k = fetch.clamp(1, MAX_K);
        let hits = coll.search(query, &p).map_err(engine_err)?;
        let exhausted = hits.len() < p.k;
        let mut rows = Rows::default();
        for h in hits {
            rows.ids.push(h.id);
            if let Some(v) = h.vector {
                rows.vectors.extend(v);
            }
            rows.payloads.push(h.payload);
            rows.distances.push(h.distance);
        }
        let batch = rows.to_batch(&full, dim)?;
        let mut batch = apply_filters(batch, filters)?;
        let everything = exhausted && p.nprobe == Some(MAX_PROBES);
        if batch.num_rows() < k && p.k == MAX_K && !everything && !filters.is_empty() {
            // The largest search left too few rows passing: check every row.
            batch = exact_filtered(coll, query, k, filters, &full, dim)?;
        }
        let done = batch.num_rows() >= k || p.k == MAX_K || everything;
        if done || filters.is_empty() {
            let n = batch.num_rows().min(k);
            return Ok(project(&batch, &full, out)?.slice(0, n));
        }
        // Not enough rows passed: widen to every bucket and fetch more.
        p.nprobe = Some(MAX_PROBES);
        p.recall_target = None;
        fetch = if exhausted {
            p.k
        } else {
            fetch.saturating_mul(4)
        };
    }
}

/// Pre-filtered search: the `k` nearest of the records with these `ids` that pass every
/// filter, by exact distance, in the `out` schema (a filter matching 5 rows gives those 5).
fn by_ids(
    coll: &Arc<dyn VectorRead>,
    query: &[f32],
    k: usize,
    ids: &[u64],
    filters: &[Arc<dyn PhysicalExpr>],
    out: &SchemaRef,
    dim: usize,
) -> Result<RecordBatch> {
    let full = search_schema(dim);
    let exact = Exact::new(coll, query)?;
    let mut recs = Vec::with_capacity(ids.len());
    for id in ids {
        recs.extend(coll.get(*id).map_err(engine_err)?);
    }
    let passed = apply_filters(exact.rows(recs).to_batch(&full, dim)?, filters)?;
    project(&nearest(&passed, k)?, &full, out)
}

/// The columns of `out` taken from `batch` (in the `full` search schema).
fn project(batch: &RecordBatch, full: &SchemaRef, out: &SchemaRef) -> Result<RecordBatch> {
    let idx: Vec<usize> = out
        .fields()
        .iter()
        .map(|f| full.index_of(f.name()))
        .collect::<std::result::Result<_, _>>()?;
    Ok(batch.project(&idx)?)
}

/// Exact ranking against one query: the query as it needs it (normalized for cosine), the
/// internal distance, and the metric its values are reported in.
struct Exact {
    q: Vec<f32>,
    dist: Distance,
    metric: Metric,
}

impl Exact {
    fn new(coll: &Arc<dyn VectorRead>, query: &[f32]) -> Result<Exact> {
        let metric = coll.config().metric;
        let mut q = query.to_vec();
        if metric == Metric::Cosine && !normalize(&mut q) {
            return Err(DataFusionError::Plan(
                "a cosine search needs a query vector that is not zero".into(),
            ));
        }
        Ok(Exact {
            q,
            dist: Distance::for_metric(metric),
            metric,
        })
    }

    /// `recs` as rows of the search schema, each with its exact distance.
    fn rows(&self, recs: Vec<Record>) -> Rows {
        let mut rows = Rows::default();
        for r in recs {
            rows.distances
                .push(reported(self.metric, self.dist.eval(&self.q, &r.vector)));
            rows.ids.push(r.id);
            rows.vectors.extend_from_slice(&r.vector);
            rows.payloads.push(r.payload);
        }
        rows
    }
}

/// The `k` nearest rows passing `filters`, by exact distance over every live row of one
/// snapshot (in the `full` search schema, nearest first).
fn exact_filtered(
    coll: &Arc<dyn VectorRead>,
    query: &[f32],
    k: usize,
    filters: &[Arc<dyn PhysicalExpr>],
    full: &SchemaRef,
    dim: usize,
) -> Result<RecordBatch> {
    let exact = Exact::new(coll, query)?;
    let mut kept = RecordBatch::new_empty(full.clone());
    for recs in coll.clone().scan(SCAN_BATCH).map_err(engine_err)? {
        let rows = exact.rows(recs.map_err(engine_err)?);
        let passed = apply_filters(rows.to_batch(full, dim)?, filters)?;
        if passed.num_rows() > 0 {
            kept = nearest(&concat_batches(full, [&kept, &passed])?, k)?;
        }
    }
    Ok(kept)
}

/// The `k` rows of `batch` with the smallest distance (ties by id), nearest first.
fn nearest(batch: &RecordBatch, k: usize) -> Result<RecordBatch> {
    let cols = [DISTANCE, "id"].map(|c| SortColumn {
        values: batch
            .column(batch.schema().index_of(c).expect("search schema"))
            .clone(),
        options: None,
    });
    let idx = lexsort_to_indices(&cols, Some(k))?;
    Ok(take_record_batch(batch, &idx)?)
}

fn apply_filters(batch: RecordBatch, filters: &[Arc<dyn PhysicalExpr>]) -> Result<RecordBatch> {
    if filters.is_empty() || batch.num_rows() == 0 {
        return Ok(batch);
    }
    let mut mask: Option<BooleanArray> = None;
    for f in filters {
        let v = f.evaluate(&batch)?.into_array(batch.num_rows())?;
        let b = as_boolean_array(&v)?.clone();
        mask = Some(match mask {
            None => b,
            Some(m) => and(&m, &b)?,
        });
    }
    match mask {
        Some(m) => Ok(filter_record_batch(&batch, &m)?),
        None => Ok(batch),
    }
}
