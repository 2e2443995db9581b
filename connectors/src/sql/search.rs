//! Index searches as tables: [`SearchTable`] (the `k` nearest rows of a collection to a
//! query, filters applied with over-fetch) and the `vector_search('collection', [floats], k
//! [, 'options'])` table function built on it.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::ExecutionPlan;
use drift_engine::{Catalog, SearchParams, VectorRead};

use super::exec::{DriftExec, Mode, PREFILTER_MAX_IDS};
use super::literal::{array_constant, QueryVector};
use super::rows::{collection_schema, projected, search_schema};
use super::table::allowed_ids;
use super::{engine_err, DriftOptions};

/// The `k` nearest rows of a collection to a fixed query, as a table.
#[derive(Debug, Clone)]
pub struct SearchTable {
    name: String,
    coll: Arc<dyn VectorRead>,
    query: QueryVector,
    k: usize,
    params: SearchParams,
    overfetch: usize,
    schema: SchemaRef,
}

impl SearchTable {
    /// A search of `coll` (known as `name`) for `query`. With `with_distance` the table
    /// has the `_distance` column after the collection's columns.
    pub fn new(
        name: &str,
        coll: Arc<dyn VectorRead>,
        query: QueryVector,
        k: usize,
        options: &DriftOptions,
        with_distance: bool,
    ) -> Result<Self> {
        let dim = coll.config().dim;
        // A stored record's vector is read when the search runs, and fits by construction.
        if let Some(values) = query.planned()? {
            check_query(name, dim, &values)?;
        }
        let mut params = coll.search_params(k);
        options.apply(&mut params)?;
        params.validate().map_err(engine_err)?;
        Ok(SearchTable {
            name: name.to_string(),
            coll,
            query,
            k,
            params,
            overfetch: options.overfetch,
            schema: if with_distance {
                search_schema(dim)
            } else {
                collection_schema(dim)
            },
        })
    }
}

/// Fails unless `query` has `dim` finite values, naming the problem.
pub fn check_query(name: &str, dim: usize, query: &[f32]) -> Result<()> {
    if query.len() != dim {
        return Err(DataFusionError::Plan(format!(
            "query vector has {} values but collection '{name}' has dimension {dim}",
            query.len()
        )));
    }
    if let Some((i, x)) = query.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(DataFusionError::Plan(format!(
            "query vector value {i} is {x}: values must be finite"
        )));
    }
    Ok(())
}

/// Drops table qualifiers from column references (filters are evaluated on our batches).
fn unqualified(e: &Expr) -> Result<Expr> {
    Ok(e.clone()
        .transform(|e| {
            Ok(match e {
                Expr::Column(c) => Transformed::yes(Expr::Column(Column::new_unqualified(c.name))),
                other => Transformed::no(other),
            })
        })?
        .data)
}

#[async_trait]
impl TableProvider for SearchTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Every filter is applied to the search results, with over-fetch.
        Ok(vec![TableProviderFilterPushDown::Exact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let dim = self.coll.config().dim;
        let full = search_schema(dim);
        let df = DFSchema::try_from(full.as_ref().clone())?;
        // Few enough ids allowed by an id predicate are ranked exactly instead of searched.
        let ids = allowed_ids(filters).filter(|ids| ids.len() <= PREFILTER_MAX_IDS);
        let filters = filters
            .iter()
            .map(|f| state.create_physical_expr(unqualified(f)?, &df))
            .collect::<Result<Vec<_>>>()?;
        let schema = projected(&self.schema, projection)?;
        let k = limit.map_or(self.k, |l| l.min(self.k));
        let coll: Arc<dyn VectorRead> = self.coll.clone();
        let mode = Mode::Search {
            coll,
            query: self.query.clone(),
            k,
            params: self.params.clone(),
            filters,
            overfetch: self.overfetch,
            ids,
        };
        Ok(Arc::new(DriftExec::new(&self.name, dim, schema, mode)))
    }
}

/// `vector_search('collection', [floats] | id, k [, 'options'])`: the collection's columns
/// plus `_distance`, nearest first. An integer instead of a vector searches with the stored
/// vector of that record. Options are `key=value` pairs separated by commas
/// (`nprobe`, `recall_target`, `target_confidence`, `rerank`, `overfetch`), on top of the
/// session's `drift.*` settings.
#[derive(Debug)]
pub struct VectorSearchFunction {
    catalog: Arc<dyn Catalog>,
}

impl VectorSearchFunction {
    /// The function over `catalog`'s collections.
    pub fn new(catalog: Arc<dyn Catalog>) -> Self {
        VectorSearchFunction { catalog }
    }
}

/// Evaluates a constant expression (a literal, `[1.0, 2.0]`, `-3`, ...) to one value.
pub fn constant(session: &dyn Session, e: &Expr, what: &str) -> Result<ScalarValue> {
    let bad =
        |err: DataFusionError| DataFusionError::Plan(format!("{what} must be a constant: {err}"));
    let phys = session
        .create_physical_expr(e.clone(), &DFSchema::empty())
        .map_err(bad)?;
    evaluate_constant(phys.as_ref()).map_err(bad)
}

/// The value of a physical expression that reads no columns.
pub fn evaluate_constant(phys: &dyn PhysicalExpr) -> Result<ScalarValue> {
    let batch = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )?;
    let arr = phys.evaluate(&batch)?.into_array(1)?;
    ScalarValue::try_from_array(&arr, 0)
}

/// A query vector from a constant list value (`[0.1, 0.2]`, a FixedSizeList, ...).
pub fn vector_value(v: &ScalarValue) -> Result<Vec<f32>> {
    let arr = v.to_array()?;
    let as_list = cast(
        &arr,
        &DataType::List(Arc::new(Field::new_list_field(DataType::Float32, true))),
    )
    .map_err(|_| {
        DataFusionError::Plan(format!(
            "query vector must be a list of numbers, got {}",
            v.data_type()
        ))
    })?;
    let list = as_list
        .as_any()
        .downcast_ref::<datafusion::arrow::array::ListArray>()
        .ok_or_else(|| DataFusionError::Plan("query vector must be a list of numbers".into()))?;
    if list.is_null(0) {
        return Err(DataFusionError::Plan("query vector is NULL".into()));
    }
    let values = list.value(0);
    let f = values
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Float32Array>()
        .ok_or_else(|| DataFusionError::Plan("query vector must be a list of numbers".into()))?;
    if f.null_count() > 0 {
        return Err(DataFusionError::Plan("query vector contains NULL".into()));
    }
    Ok(f.values().to_vec())
}

impl TableFunctionImpl for VectorSearchFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        let session = args.session();
        if !(3..=4).contains(&exprs.len()) {
            return Err(DataFusionError::Plan(format!(
                "vector_search takes ('collection', [query floats], k [, 'options']), got {} arguments",
                exprs.len()
            )));
        }
        let name = match constant(session, &exprs[0], "collection name")? {
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)) => s,
            other => {
                return Err(DataFusionError::Plan(format!(
                "vector_search: the first argument must be a collection name string, got {other}"
            )))
            }
        };
        let coll: Arc<dyn VectorRead> = self.catalog.open(&name).map_err(engine_err)?;
        // The query: a vector literal, or the id of a stored record whose vector to use
        // (read when the search runs, so that a plan kept for reuse sees updates).
        let query = match array_constant(&exprs[1]) {
            Some(c) => c.query()?,
            None => match constant(session, &exprs[1], "query vector")? {
                ScalarValue::Int64(Some(id)) if id >= 0 => {
                    let q = QueryVector::Record {
                        coll: coll.clone(),
                        name: name.clone(),
                        id: id as u64,
                    };
                    // Named at planning when missing, as before.
                    q.current()?;
                    q
                }
                other => QueryVector::Fixed(vector_value(&other)?),
            },
        };
        let k = match constant(session, &exprs[2], "k")? {
            ScalarValue::Int64(Some(k)) if k > 0 => k as usize,
            other => {
                return Err(DataFusionError::Plan(format!(
                    "vector_search: k must be a positive integer, got {other}"
                )))
            }
        };
        let mut options = session
            .config_options()
            .extensions
            .get::<DriftOptions>()
            .cloned()
            .unwrap_or_default();
        if let Some(e) = exprs.get(3) {
            let text = match constant(session, e, "options")? {
                ScalarValue::Utf8(Some(s))
                | ScalarValue::LargeUtf8(Some(s))
                | ScalarValue::Utf8View(Some(s)) => s,
                other => {
                    return Err(DataFusionError::Plan(format!(
                        "vector_search: options must be a string like 'nprobe=16', got {other}"
                    )))
                }
            };
            for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').ok_or_else(|| {
                    DataFusionError::Plan(format!("search option '{pair}' is not key=value"))
                })?;
                options.set_pair(k.trim(), v.trim())?;
            }
        }
        Ok(Arc::new(SearchTable::new(
            &name, coll, query, k, &options, true,
        )?))
    }
}
