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
//!
//! A constant can also be *bound*: a slot of a [`Bindings`] whose value is set before each
//! execution of a cached plan ([`super::cache::PlanCache`]). Its name is the slot's (`$1`),
//! and whatever needs its value while planning takes the slot instead ([`QueryVector`]).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::search::vector_value;

/// How many leading values a constant's name shows.
const SHOWN: usize = 3;

/// A constant list, as a function of no arguments (see the module docs).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ArrayConstant {
    value: ScalarValue,
    name: String,
    signature: Signature,
    slot: Option<Slot>,
}

/// The list value of `values` (all of type `element`), typed as the planner types it.
pub fn list_value(values: &[ScalarValue], element: &DataType) -> ScalarValue {
    ScalarValue::List(ScalarValue::new_list_nullable(values, element))
}

impl ArrayConstant {
    /// The expression holding `values` (all of the same numeric type) as one list.
    pub fn expr(values: &[ScalarValue], element: &DataType) -> Expr {
        let value = list_value(values, element);
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
            slot: None,
        };
        Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(ScalarUDF::new_from_impl(udf)),
            vec![],
        ))
    }

    /// The list this constant holds now (a bound constant's current value).
    pub fn value(&self) -> ScalarValue {
        match &self.slot {
            Some(s) => s.value(),
            None => self.value.clone(),
        }
    }

    /// This constant as a query vector: its values, or its slot when it is bound.
    pub fn query(&self) -> Result<QueryVector> {
        match &self.slot {
            Some(s) => {
                // Checked now so that a plan is only built around a usable vector (read
                // without counting as a capture: the plan keeps the slot, not this value).
                vector_value(&s.cell.get(s.index))?;
                Ok(QueryVector::Bound(s.clone()))
            }
            None => Ok(QueryVector::Fixed(vector_value(&self.value)?)),
        }
    }
}

/// The current values of a cached plan's vector literals, one slot per distinct literal;
/// set before each execution of that plan (which runs one query at a time).
#[derive(Debug)]
pub struct Bindings {
    values: Mutex<Vec<ScalarValue>>,
    planning: AtomicBool,
    captured: AtomicBool,
}

impl Bindings {
    /// Slots holding `values` (lists, as [`list_value`] builds them).
    pub fn new(values: Vec<ScalarValue>) -> Arc<Bindings> {
        Arc::new(Bindings {
            values: Mutex::new(values),
            planning: AtomicBool::new(false),
            captured: AtomicBool::new(false),
        })
    }

    /// Replaces every slot's value (same count and types as at planning).
    pub fn set(&self, values: Vec<ScalarValue>) {
        *self.values.lock().unwrap_or_else(|p| p.into_inner()) = values;
    }

    fn get(&self, index: usize) -> ScalarValue {
        self.values.lock().unwrap_or_else(|p| p.into_inner())[index].clone()
    }

    /// The function each slot is called by in SQL ([`param_name`]), one per slot.
    pub fn functions(self: &Arc<Self>) -> Vec<ScalarUDF> {
        let values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        (0..values.len())
            .map(|index| {
                ScalarUDF::new_from_impl(ArrayConstant {
                    value: values[index].clone(),
                    name: param_name(index),
                    signature: Signature::nullary(Volatility::Volatile),
                    slot: Some(Slot {
                        cell: self.clone(),
                        index,
                    }),
                })
            })
            .collect()
    }

    /// Marks planning as under way (`true`) or over: a slot evaluated meanwhile was copied
    /// into the plan by value, which makes the plan unfit for other values.
    pub fn planning(&self, on: bool) {
        self.planning.store(on, Ordering::Relaxed);
    }

    /// Whether a slot was evaluated while planning (see [`Bindings::planning`]).
    pub fn captured(&self) -> bool {
        self.captured.load(Ordering::Relaxed)
    }
}

/// The SQL name of slot `index` in a statement prepared for [`Bindings`].
pub fn param_name(index: usize) -> String {
    format!("__drift_param_{index}")
}

/// One slot of a [`Bindings`].
#[derive(Clone)]
pub struct Slot {
    cell: Arc<Bindings>,
    index: usize,
}

impl Slot {
    fn value(&self) -> ScalarValue {
        if self.cell.planning.load(Ordering::Relaxed) {
            self.cell.captured.store(true, Ordering::Relaxed);
        }
        self.cell.get(self.index)
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "${}", self.index + 1)
    }
}

impl PartialEq for Slot {
    fn eq(&self, other: &Slot) -> bool {
        Arc::ptr_eq(&self.cell, &other.cell) && self.index == other.index
    }
}

impl Eq for Slot {}

impl Hash for Slot {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.index.hash(state);
    }
}

/// A search's query vector: fixed when planned, a bound slot read at each execution, or a
/// stored record's vector read at each execution.
#[derive(Clone)]
pub enum QueryVector {
    /// Values known when planning.
    Fixed(Vec<f32>),
    /// A slot of a cached plan's [`Bindings`].
    Bound(Slot),
    /// The vector of the record `id` of `coll`.
    Record {
        /// The collection.
        coll: Arc<dyn drift_engine::VectorRead>,
        /// Collection name, for errors.
        name: String,
        /// Record id.
        id: u64,
    },
}

impl QueryVector {
    /// The vector as it is while planning, for checks (a bound slot's read is not a
    /// capture: the plan keeps the slot). A stored record's vector is not read.
    pub fn planned(&self) -> Result<Option<Vec<f32>>> {
        match self {
            QueryVector::Fixed(v) => Ok(Some(v.clone())),
            QueryVector::Bound(s) => vector_value(&s.cell.get(s.index)).map(Some),
            QueryVector::Record { .. } => Ok(None),
        }
    }

    /// The vector to search with now.
    pub fn current(&self) -> Result<Vec<f32>> {
        match self {
            QueryVector::Fixed(v) => Ok(v.clone()),
            QueryVector::Bound(s) => vector_value(&s.value()),
            QueryVector::Record { coll, name, id } => Ok(coll
                .get(*id)
                .map_err(super::engine_err)?
                .ok_or_else(|| {
                    DataFusionError::Plan(format!(
                        "vector_search: collection '{name}' has no record with id {id}"
                    ))
                })?
                .vector),
        }
    }
}

impl std::fmt::Debug for QueryVector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryVector::Fixed(v) => write!(f, "{} values", v.len()),
            QueryVector::Bound(s) => write!(f, "{s:?}"),
            QueryVector::Record { name, id, .. } => write!(f, "{name}[{id}]"),
        }
    }
}

impl ArrayConstant {
    fn shown(&self) -> String {
        match &self.slot {
            Some(s) => format!("{s:?}"),
            None => self.name.clone(),
        }
    }
}

impl ScalarUDFImpl for ArrayConstant {
    fn name(&self) -> &str {
        &self.name
    }

    fn display_name(&self, _args: &[Expr]) -> Result<String> {
        Ok(self.shown())
    }

    fn schema_name(&self, _args: &[Expr]) -> Result<String> {
        Ok(self.shown())
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.value.data_type())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(self.value()))
    }
}

/// `e` as an [`ArrayConstant`], if it is one.
pub fn array_constant(e: &Expr) -> Option<&ArrayConstant> {
    match e {
        Expr::ScalarFunction(f) if f.args.is_empty() => {
            let inner: &dyn std::any::Any = f.func.inner().as_ref();
            inner.downcast_ref::<ArrayConstant>()
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
