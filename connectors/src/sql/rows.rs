//! The table shape of a collection (`id UInt64, vector FixedSizeList<Float32, dim>, payload
//! Utf8`, plus `_distance` for searches) and the row batch both the table and its execution
//! plans build Arrow batches from.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, FixedSizeListArray, Float32Array, RecordBatch, StringArray, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::Result;

/// Name of the distance column added by searches (as in Lance).
pub const DISTANCE: &str = "_distance";

/// The table schema of a collection of dimension `dim`.
pub fn collection_schema(dim: usize) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new(
            "vector",
            DataType::FixedSizeList(
                Arc::new(Field::new_list_field(DataType::Float32, true)),
                dim as i32,
            ),
            false,
        ),
        Field::new("payload", DataType::Utf8, true),
    ]))
}

/// The collection schema plus `_distance Float32`.
pub fn search_schema(dim: usize) -> SchemaRef {
    let base = collection_schema(dim);
    let mut fields: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(DISTANCE, DataType::Float32, false));
    Arc::new(Schema::new(fields))
}

/// `schema` narrowed to `projection` (all of it when there is none).
pub fn projected(schema: &SchemaRef, projection: Option<&Vec<usize>>) -> Result<SchemaRef> {
    Ok(match projection {
        Some(p) => Arc::new(schema.project(p)?),
        None => schema.clone(),
    })
}

/// Rows to put in a batch: ids, row-major vectors (only needed when the schema has the
/// vector column), payloads, and distances for searches.
#[derive(Debug, Default)]
pub struct Rows {
    /// Record ids.
    pub ids: Vec<u64>,
    /// Row-major vectors (`ids.len() * dim` values, or none when not needed).
    pub vectors: Vec<f32>,
    /// Payload JSON text.
    pub payloads: Vec<Option<String>>,
    /// Distances (searches only).
    pub distances: Vec<f32>,
}

impl Rows {
    /// Builds a batch of `schema` (a projection of [`search_schema`]) from these rows.
    pub fn to_batch(&self, schema: &SchemaRef, dim: usize) -> Result<RecordBatch> {
        let n = self.ids.len();
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for f in schema.fields() {
            let col: ArrayRef = match f.name().as_str() {
                "id" => Arc::new(UInt64Array::from(self.ids.clone())),
                "vector" => {
                    if self.vectors.len() != n * dim {
                        return Err(datafusion::error::DataFusionError::Internal(format!(
                            "{} vector values for {n} rows of dimension {dim}",
                            self.vectors.len()
                        )));
                    }
                    let values = self.vectors.clone();
                    let item = Arc::new(Field::new_list_field(DataType::Float32, true));
                    Arc::new(FixedSizeListArray::try_new(
                        item,
                        dim as i32,
                        Arc::new(Float32Array::from(values)),
                        None,
                    )?)
                }
                "payload" => Arc::new(StringArray::from(self.payloads.clone())),
                DISTANCE => Arc::new(Float32Array::from(self.distances.clone())),
                other => {
                    return Err(datafusion::error::DataFusionError::Internal(format!(
                        "unknown column {other}"
                    )))
                }
            };
            cols.push(col);
        }
        if cols.is_empty() {
            let opts = datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(n));
            return Ok(RecordBatch::try_new_with_options(
                schema.clone(),
                cols,
                &opts,
            )?);
        }
        Ok(RecordBatch::try_new(schema.clone(), cols)?)
    }
}
