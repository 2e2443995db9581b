//! The optimizer rule that answers nearest-neighbour `ORDER BY ... LIMIT k` queries with an
//! index search:
//!
//! ```text
//! Sort: l2_distance(t.vector, [..]) ASC, fetch=k          Sort: l2_distance(t.vector, [..]) ASC, fetch=k
//!   Projection: ...                               ─▶        Projection: ...
//!     Filter: <predicate>                                      TableScan: t (index search of k rows,
//!       TableScan: t (a collection)                                         predicate applied with over-fetch)
//! ```
//! The sort stays (it now orders k rows); the scan becomes a [`SearchTable`] whose physical
//! node is `DriftIndexSearchExec`. The distance must match the collection's metric:
//! `l2_distance` ASC for L2 (and cosine, whose stored vectors are unit length),
//! `cosine_distance` ASC for cosine, `inner_product` DESC for inner product (DataFusion's
//! `array_distance` counts as `l2_distance`). The sort key may be selected under an alias or
//! not selected at all. Anything else is left to DataFusion's own sort.

use std::sync::Arc;

use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, DFSchema};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::error::Result;
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::{Expr, LogicalPlan, SortExpr, TableScan};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
use datafusion::physical_expr::create_physical_expr;
use drift_engine::Metric;

use super::functions::Kind;
use super::literal::{array_constant, QueryVector};
use super::search::{evaluate_constant, vector_value, SearchTable};
use super::table::CollectionTable;
use super::DriftOptions;

/// See the module docs.
#[derive(Debug, Default)]
pub struct IndexSearchRule;

impl OptimizerRule for IndexSearchRule {
    fn name(&self) -> &str {
        "drift_index_search"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let (sort_expr, k, input) = match &plan {
            LogicalPlan::Sort(s) if s.expr.len() == 1 && s.fetch.is_some() => {
                (s.expr[0].clone(), s.fetch.unwrap_or(0), s.input.clone())
            }
            _ => return Ok(Transformed::no(plan)),
        };
        let options = config
            .options()
            .extensions
            .get::<DriftOptions>()
            .cloned()
            .unwrap_or_default();
        match search_input(&sort_expr, k, &input, &options)? {
            Some(new_input) => Ok(Transformed::yes(
                plan.with_new_exprs(plan.expressions(), vec![new_input])?,
            )),
            None => Ok(Transformed::no(plan)),
        }
    }
}

/// The input of the sort rebuilt over an index search, if the pattern matches.
fn search_input(
    sort: &SortExpr,
    k: usize,
    input: &LogicalPlan,
    options: &DriftOptions,
) -> Result<Option<LogicalPlan>> {
    if k == 0 {
        return Ok(None);
    }
    // Walk down: projections (resolving aliases in the sort key) and filters, to the scan.
    // A distance that is ordered by but not selected comes aliased to its own text.
    let mut key = sort.expr.clone().unalias();
    let mut chain: Vec<&LogicalPlan> = Vec::new();
    let mut filters: Vec<Expr> = Vec::new();
    let mut node = input;
    let scan = loop {
        match node {
            LogicalPlan::Projection(p) => {
                if let Expr::Column(c) = &key {
                    let pos = p.schema.columns().iter().position(|col| col.name == c.name);
                    if let Some(i) = pos {
                        key = p.expr[i].clone().unalias();
                    }
                }
                chain.push(node);
                node = p.input.as_ref();
            }
            LogicalPlan::Filter(f) => {
                filters.push(f.predicate.clone());
                node = f.input.as_ref();
            }
            // A subquery or CTE around the table; filters above it name the alias, so only
            // a filter-free path is taken through one.
            LogicalPlan::SubqueryAlias(a) if filters.is_empty() => {
                chain.push(node);
                node = a.input.as_ref();
            }
            LogicalPlan::TableScan(s) => break s,
            _ => return Ok(None),
        }
    };
    let Ok(provider) = source_as_provider(&scan.source) else {
        return Ok(None);
    };
    let Some(table) = provider.as_ref().downcast_ref::<CollectionTable>() else {
        return Ok(None);
    };
    // A negated distance orders the other way (pgvector's `<#>` is `-inner_product`).
    let (key, asc) = match key {
        Expr::Negative(inner) => (*inner, !sort.asc),
        k => (k, sort.asc),
    };
    let Expr::ScalarFunction(f) = &key else {
        return Ok(None);
    };
    // DataFusion's own `array_distance` is the Euclidean distance, like `l2_distance`.
    let kind = match f.func.name() {
        "array_distance" => Kind::L2,
        name => match Kind::from_name(name) {
            Some(k) => k,
            None => return Ok(None),
        },
    };
    let metric = table.collection().config().metric;
    let fits = matches!(
        (kind, metric, asc),
        (Kind::L2, Metric::L2 | Metric::Cosine, true)
            | (Kind::Cosine, Metric::Cosine, true)
            | (Kind::InnerProduct, Metric::InnerProduct, false)
    );
    if !fits || f.args.len() != 2 {
        return Ok(None);
    }
    let is_vector = |e: &Expr| matches!(e, Expr::Column(c) if c.name == "vector");
    let constant = if is_vector(&f.args[0]) {
        &f.args[1]
    } else if is_vector(&f.args[1]) {
        &f.args[0]
    } else {
        return Ok(None);
    };
    if !constant.column_refs().is_empty() {
        return Ok(None);
    }
    let Some(query) = evaluate_vector(constant)? else {
        return Ok(None);
    };
    // Filters must only read the table's own columns.
    filters.extend(scan.filters.iter().cloned());
    let own = ["id", "vector", "payload"];
    if filters.iter().any(|e| {
        e.column_refs()
            .iter()
            .any(|c: &&Column| !own.contains(&c.name.as_str()))
    }) {
        return Ok(None);
    }
    let search = match SearchTable::new(
        table.name(),
        table.collection().clone(),
        query,
        k,
        options,
        false,
    ) {
        Ok(s) => s,
        // A query vector of the wrong dimension: leave the plan alone, the sort reports it.
        Err(_) => return Ok(None),
    };
    let new_scan = LogicalPlan::TableScan(TableScan::try_new(
        scan.table_name.clone(),
        provider_as_source(Arc::new(search)),
        scan.projection.clone(),
        filters,
        None,
    )?);
    // Rebuild the projections on top (filters are now inside the search).
    let mut plan = new_scan;
    for p in chain.into_iter().rev() {
        plan = p.with_new_exprs(p.expressions(), vec![plan])?;
    }
    Ok(Some(plan))
}

/// The query vector a constant expression stands for, if it is one.
fn evaluate_vector(e: &Expr) -> Result<Option<QueryVector>> {
    if let Some(c) = array_constant(e) {
        return Ok(c.query().ok());
    }
    let Ok(phys) = create_physical_expr(e, &DFSchema::empty(), &ExecutionProps::new()) else {
        return Ok(None);
    };
    Ok(evaluate_constant(phys.as_ref())
        .ok()
        .and_then(|v| vector_value(&v).ok())
        .map(QueryVector::Fixed))
}
