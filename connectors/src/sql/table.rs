//! A collection as a DataFusion table: `id UInt64, vector FixedSizeList<Float32, dim>,
//! payload Utf8`. Scans push down the projection (vectors are only built when asked for),
//! `id = ...` / `id IN (...)` filters (answered by point lookups) and the limit.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use drift_engine::VectorRead;

use super::exec::{DriftExec, Mode};
use super::rows::{collection_schema, projected};

/// A collection registered as a table.
#[derive(Debug, Clone)]
pub struct CollectionTable {
    name: String,
    coll: Arc<dyn VectorRead>,
    schema: SchemaRef,
}

impl CollectionTable {
    /// Wraps `coll`, known to SQL as `name`.
    pub fn new(name: &str, coll: Arc<dyn VectorRead>) -> Self {
        let schema = collection_schema(coll.config().dim);
        CollectionTable {
            name: name.to_string(),
            coll,
            schema,
        }
    }

    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The collection behind the table.
    pub fn collection(&self) -> &Arc<dyn VectorRead> {
        &self.coll
    }
}

/// The ids an `id = v` or `id IN (...)` filter allows, if `e` is one.
pub fn id_filter(e: &Expr) -> Option<Vec<u64>> {
    let as_id = |e: &Expr| match e {
        Expr::Literal(v, _) => scalar_u64(v),
        Expr::Cast(c) => match c.expr.as_ref() {
            Expr::Literal(v, _) => scalar_u64(v),
            _ => None,
        },
        _ => None,
    };
    let is_id = |e: &Expr| match e {
        Expr::Column(c) => c.name == "id",
        Expr::Cast(c) => matches!(c.expr.as_ref(), Expr::Column(col) if col.name == "id"),
        _ => false,
    };
    match e {
        Expr::BinaryExpr(b) if b.op == Operator::Eq => {
            if is_id(&b.left) {
                as_id(&b.right).map(|v| vec![v])
            } else if is_id(&b.right) {
                as_id(&b.left).map(|v| vec![v])
            } else {
                None
            }
        }
        Expr::InList(l) if !l.negated && is_id(&l.expr) => l.list.iter().map(as_id).collect(),
        _ => None,
    }
}

/// The ids every row passing all of `filters` must have (sorted, distinct): the
/// intersection of their `id = / IN` predicates; `None` when no filter constrains the id.
pub fn allowed_ids(filters: &[Expr]) -> Option<Vec<u64>> {
    let mut ids: Option<Vec<u64>> = None;
    for f in filters {
        if let Some(allowed) = id_filter(f) {
            ids = Some(match ids {
                None => allowed,
                Some(prev) => prev.into_iter().filter(|i| allowed.contains(i)).collect(),
            });
        }
    }
    ids.map(|mut ids| {
        ids.sort_unstable();
        ids.dedup();
        ids
    })
}

fn scalar_u64(v: &ScalarValue) -> Option<u64> {
    match v {
        ScalarValue::UInt64(Some(x)) => Some(*x),
        ScalarValue::UInt32(Some(x)) => Some(*x as u64),
        ScalarValue::Int64(Some(x)) if *x >= 0 => Some(*x as u64),
        ScalarValue::Int32(Some(x)) if *x >= 0 => Some(*x as u64),
        _ => None,
    }
}

#[async_trait]
impl TableProvider for CollectionTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if id_filter(f).is_some() {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = projected(&self.schema, projection)?;
        // The rows an id filter allows are looked up one by one.
        let coll = self.coll.clone();
        let mode = match allowed_ids(filters) {
            Some(ids) => Mode::Lookup { coll, ids, limit },
            None => Mode::Scan { coll, limit },
        };
        Ok(Arc::new(DriftExec::new(
            &self.name,
            self.coll.config().dim,
            schema,
            mode,
        )))
    }
}
