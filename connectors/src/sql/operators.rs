//! pgvector's distance operators, planned onto the distance functions: `a <-> b` is
//! `l2_distance(a, b)`, `a <=> b` is `cosine_distance(a, b)` and `a <#> b` is
//! `-inner_product(a, b)` (negated, so that ascending order is nearest first, as in
//! pgvector). A side written as a string vector literal (`'[1, 2, 3]'`) is read as an array.
//!
//! The session parses SQL with the PostgreSQL dialect ([`super::session_config`]): in it
//! sqlparser reads `<->` as a binary operator (geometric distance) and `<#>` as a custom
//! operator; `<=>` is one in every dialect.

use std::sync::Arc;

use datafusion::common::{DFSchema, ScalarValue};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{Expr, ScalarUDF};
use datafusion::sql::sqlparser::ast::BinaryOperator;

use super::functions::{self, Kind};
use super::literal::ArrayConstant;

/// See the module docs.
#[derive(Debug, Default)]
pub struct VectorOperators;

impl ExprPlanner for VectorOperators {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        _schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        let (kind, negate) = match &expr.op {
            BinaryOperator::LtDashGt => (Kind::L2, false),
            BinaryOperator::Spaceship => (Kind::Cosine, false),
            BinaryOperator::Custom(op) if op == "<#>" => (Kind::InnerProduct, true),
            _ => return Ok(PlannerResult::Original(expr)),
        };
        let udf: Arc<ScalarUDF> = functions::udf(kind);
        let call = Expr::ScalarFunction(ScalarFunction::new_udf(
            udf,
            vec![vector_literal(expr.left)?, vector_literal(expr.right)?],
        ));
        Ok(PlannerResult::Planned(if negate {
            Expr::Negative(Box::new(call))
        } else {
            call
        }))
    }
}

/// `e` itself, or the array a string literal such as `'[1, 2.5, -3]'` spells.
fn vector_literal(e: Expr) -> Result<Expr> {
    let text = match &e {
        Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)), _) => s,
        _ => return Ok(e),
    };
    let values = parse_vector(text).map_err(|reason| {
        DataFusionError::Plan(format!("{text:?} is not a vector literal: {reason}"))
    })?;
    let values: Vec<ScalarValue> = values
        .into_iter()
        .map(|v| ScalarValue::Float32(Some(v)))
        .collect();
    Ok(ArrayConstant::expr(
        &values,
        &datafusion::arrow::datatypes::DataType::Float32,
    ))
}

/// The numbers of `[a, b, ...]` (pgvector's text form).
pub(crate) fn parse_vector(text: &str) -> std::result::Result<Vec<f32>, String> {
    let inner = text
        .trim()
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or("expected [x, y, ...]")?;
    if inner.trim().is_empty() {
        return Err("no values".into());
    }
    inner
        .split(',')
        .map(|x| {
            let x = x.trim();
            match x.parse::<f32>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(format!("{x:?} is not a finite number")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_text_parses_or_names_the_problem() {
        assert_eq!(parse_vector(" [1, 2.5,-3e2] "), Ok(vec![1.0, 2.5, -300.0]));
        assert!(parse_vector("1, 2").is_err());
        assert!(parse_vector("[]").is_err());
        assert!(parse_vector("[1, x]").unwrap_err().contains("\"x\""));
        assert!(parse_vector("[1, NaN]").is_err());
    }
}
