//! Distance functions over vector columns and array literals: `l2_distance` (Euclidean, the
//! same value as DataFusion's `array_distance`), `cosine_distance` (`1 - cos`, NULL for a
//! zero vector) and `inner_product`. Arguments may be FixedSizeList or List columns of any
//! numeric type, or constants; NULL in, NULL out; rows of different lengths are an error.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Float32Array, Float64Array, ListArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// Which distance a [`VectorDistance`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Euclidean distance.
    L2,
    /// `1 - a·b / (|a| |b|)`.
    Cosine,
    /// `a·b`.
    InnerProduct,
}

impl Kind {
    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::L2 => "l2_distance",
            Kind::Cosine => "cosine_distance",
            Kind::InnerProduct => "inner_product",
        }
    }

    /// The kind a function name refers to.
    pub fn from_name(name: &str) -> Option<Kind> {
        [Kind::L2, Kind::Cosine, Kind::InnerProduct]
            .into_iter()
            .find(|k| k.name() == name)
    }

    fn eval(self, a: &[f32], b: &[f32]) -> Option<f64> {
        match self {
            Kind::L2 => Some(
                a.iter()
                    .zip(b)
                    .map(|(x, y)| {
                        let d = *x as f64 - *y as f64;
                        d * d
                    })
                    .sum::<f64>()
                    .sqrt(),
            ),
            Kind::InnerProduct => Some(a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()),
            Kind::Cosine => {
                let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
                for (x, y) in a.iter().zip(b) {
                    let (x, y) = (*x as f64, *y as f64);
                    dot += x * y;
                    na += x * x;
                    nb += y * y;
                }
                (na > 0.0 && nb > 0.0).then(|| 1.0 - dot / (na.sqrt() * nb.sqrt()))
            }
        }
    }
}

/// One of the three distance functions.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct VectorDistance {
    kind: Kind,
    signature: Signature,
}

impl VectorDistance {
    /// The function computing `kind`.
    pub fn new(kind: Kind) -> Self {
        VectorDistance {
            kind,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

/// All three functions, ready to register.
pub fn all() -> Vec<ScalarUDF> {
    [Kind::L2, Kind::Cosine, Kind::InnerProduct]
        .into_iter()
        .map(|k| ScalarUDF::new_from_impl(VectorDistance::new(k)))
        .collect()
}

/// The function computing `kind`.
pub fn udf(kind: Kind) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(VectorDistance::new(kind)))
}

/// One argument: a column of lists, or one constant list.
enum Side {
    Rows(ListArray),
    Const(Option<Vec<f32>>),
}

fn as_f32_lists(arr: &ArrayRef, fname: &str) -> Result<ListArray> {
    let target = DataType::List(Arc::new(Field::new_list_field(DataType::Float32, true)));
    let cast_arr = cast(arr, &target).map_err(|_| {
        DataFusionError::Plan(format!(
            "{fname}: arguments must be vectors (lists of numbers), got {}",
            arr.data_type()
        ))
    })?;
    cast_arr
        .as_any()
        .downcast_ref::<ListArray>()
        .cloned()
        .ok_or_else(|| DataFusionError::Internal("list cast failed".into()))
}

/// Row `i` of a list of f32 as a slice of the shared values buffer (None if the row or
/// any of its elements is NULL).
fn row(list: &ListArray, i: usize) -> Option<&[f32]> {
    if list.is_null(i) {
        return None;
    }
    let values = list.values().as_any().downcast_ref::<Float32Array>()?;
    let offsets = list.value_offsets();
    let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
    if values.null_count() > 0 && (start..end).any(|j| values.is_null(j)) {
        return None;
    }
    Some(&values.values()[start..end])
}

impl Side {
    fn new(v: &ColumnarValue, fname: &str) -> Result<Side> {
        Ok(match v {
            ColumnarValue::Array(a) => Side::Rows(as_f32_lists(a, fname)?),
            ColumnarValue::Scalar(s) => {
                let list = as_f32_lists(&s.to_array()?, fname)?;
                Side::Const(row(&list, 0).map(<[f32]>::to_vec))
            }
        })
    }

    fn get(&self, i: usize) -> Option<&[f32]> {
        match self {
            Side::Rows(l) => row(l, i),
            Side::Const(v) => v.as_deref(),
        }
    }
}

impl ScalarUDFImpl for VectorDistance {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let fname = self.kind.name();
        let [a, b] = args.args.as_slice() else {
            return Err(DataFusionError::Plan(format!("{fname} takes two vectors")));
        };
        let (sa, sb) = (Side::new(a, fname)?, Side::new(b, fname)?);
        let n = args.number_rows;
        let mut out = Float64Array::builder(n);
        for i in 0..n {
            match (sa.get(i), sb.get(i)) {
                (Some(x), Some(y)) => {
                    if x.len() != y.len() {
                        return Err(DataFusionError::Execution(format!(
                            "{fname}: vectors of different lengths ({} and {})",
                            x.len(),
                            y.len()
                        )));
                    }
                    out.append_option(self.kind.eval(x, y));
                }
                _ => out.append_null(),
            }
        }
        let arr: ArrayRef = Arc::new(out.finish());
        if matches!((a, b), (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_))) {
            return Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&arr, 0)?,
            ));
        }
        Ok(ColumnarValue::Array(arr))
    }
}
