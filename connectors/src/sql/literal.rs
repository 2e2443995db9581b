//! Vector literals planned once.
//!
//! DataFusion plans `[0.1, 0.2, ...]` as `make_array` over one literal per element: type
//! coercion casts every element, the simplifier folds the call into a list literal, and every
//! projection the planner and the optimizer build names its expressions by printing that list,
//! float by float. For a 384-float query vector that naming was most of an `ORDER BY
//! vector <-> [..] LIMIT k` query's planning time. Here an array literal whose elements are
//! all numbers (and pgvector's string form `'[1, 2, 3]'`) becomes one [`ArrayConstant`]: a
//! function of no arguments that holds the list, whose name is short (the first values, the
//! length and a hash of the rest), and that the simplifier leaves alone (it is declared
//! volatile, so it is not folded back into a literal that would be printed again).
//!
//! The value keeps `make_array`'s type: a list of Int64 when every element is an integer,
//! of Float64 otherwise (Float32 for the string form, which is a vector by definition).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// How many leading values a constant's name shows.
const SHOWN: usize = 3;

/// A constant list, as a function of no arguments (see the module docs).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ArrayConstant {
    value: ScalarValue,
    name: String,
    signature: Signature,
}

impl ArrayConstant {
    /// The expression holding `values` (all of the same numeric type) as one list.
    pub fn expr(values: &[ScalarValue], element: &DataType) -> Expr {
        let value = ScalarValue::List(ScalarValue::new_list_nullable(values, element));
        let mut name = String::from("[");
        for (i, v) in values.iter().take(SHOWN).enumerate() {
            if i > 0 {
                name.push_str(", ");
            }
            name.push_str(&v.to_string());
        }
        if values.len() > SHOWN {
            let mut h = DefaultHasher::new();
            values.hash(&mut h);
            name.push_str(&format!(
                ", … {} values, #{:08x}",
                values.len(),
                h.finish() as u32
            ));
        }
        name.push(']');
        let udf = ArrayConstant {
            value,
            name,
            signature: Signature::nullary(Volatility::Volatile),
        };
        Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(ScalarUDF::new_from_impl(udf)),
            vec![],
        ))
    }

    /// The list this constant holds.
    pub fn value(&self) -> &ScalarValue {
        &self.value
    }
}

impl ScalarUDFImpl for ArrayConstant {
    fn name(&self) -> &str {
        &self.name
    }

    fn display_name(&self, _args: &[Expr]) -> Result<String> {
        Ok(self.name.clone())
    }

    fn schema_name(&self, _args: &[Expr]) -> Result<String> {
        Ok(self.name.clone())
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.value.data_type())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(self.value.clone()))
    }
}

/// The list value of `e` if it is an [`ArrayConstant`].
pub fn constant_value(e: &Expr) -> Option<&ScalarValue> {
    match e {
        Expr::ScalarFunction(f) if f.args.is_empty() => {
            let inner: &dyn std::any::Any = f.func.inner().as_ref();
            inner
                .downcast_ref::<ArrayConstant>()
                .map(ArrayConstant::value)
        }
        _ => None,
    }
}

/// Plans numeric array literals as [`ArrayConstant`]s; must come before DataFusion's own
/// array-literal planner.
#[derive(Debug, Default)]
pub struct ArrayLiterals;

impl ExprPlanner for ArrayLiterals {
    fn plan_array_literal(
        &self,
        exprs: Vec<Expr>,
        _schema: &DFSchema,
    ) -> Result<PlannerResult<Vec<Expr>>> {
        match numbers(&exprs) {
            Some((values, element)) => Ok(PlannerResult::Planned(ArrayConstant::expr(
                &values, &element,
            ))),
            None => Ok(PlannerResult::Original(exprs)),
        }
    }
}

/// The elements as one numeric type, if every one is a number literal (`-x` included).
fn numbers(exprs: &[Expr]) -> Option<(Vec<ScalarValue>, DataType)> {
    if exprs.is_empty() {
        return None;
    }
    let mut values = Vec::with_capacity(exprs.len());
    for e in exprs {
        let v = match e {
            Expr::Literal(v, None) => v.clone(),
            Expr::Negative(inner) => match inner.as_ref() {
                Expr::Literal(v, None) => v.arithmetic_negate().ok()?,
                _ => return None,
            },
            _ => return None,
        };
        match v {
            ScalarValue::Int64(Some(_)) | ScalarValue::Float64(Some(_)) => values.push(v),
            _ => return None,
        }
    }
    if values.iter().all(|v| matches!(v, ScalarValue::Int64(_))) {
        return Some((values, DataType::Int64));
    }
    let values = values
        .into_iter()
        .map(|v| v.cast_to(&DataType::Float64))
        .collect::<Result<Vec<_>>>()
        .ok()?;
    Some((values, DataType::Float64))
}
