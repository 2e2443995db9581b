//! Kafka record values → ordered engine writes, in the three wire formats:
//!
//! | format  | value                                                      | id from          |
//! |---------|------------------------------------------------------------|------------------|
//! | `json`  | `{"id": 7, "vector": [..], "payload": {..}}`               | `id`, else key   |
//! | `f32le` | `dim` little-endian f32s                                   | key (decimal)    |
//! | `arrow` | one Arrow IPC stream: `id` u64, `vector` FixedSizeList<f32>, optional `payload` utf8 | `id` column |
//!
//! A record with a key and a null value (a Kafka tombstone) deletes the key's id; in an Arrow
//! message, a null `vector` deletes that row's id. A message is the unit of failure: if any
//! row of it is bad, none of it is applied and the whole message is reported.

use std::io::Cursor;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, AsArray, FixedSizeListArray, Float32Array, Int64Array, ListArray, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Float32Type};
use datafusion::arrow::ipc::reader::StreamReader;
use drift_engine::{Record, Write};
use serde::Deserialize;

/// Wire format of record values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON object per record.
    #[default]
    Json,
    /// Raw little-endian f32 array; the id is the key as decimal text.
    F32le,
    /// An Arrow IPC stream holding many rows.
    Arrow,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "json" => Ok(Format::Json),
            "f32le" => Ok(Format::F32le),
            "arrow" => Ok(Format::Arrow),
            other => Err(format!(
                "unknown format {other:?}: expected json, f32le or arrow"
            )),
        }
    }
}

/// What is wrong with a record; the kind names the class, the text the detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    /// Short class name, also sent in the dead-letter header `drift.error.kind`.
    pub kind: BadKind,
    /// Human-readable detail.
    pub reason: String,
}

/// Classes of bad records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BadKind {
    /// The value cannot be parsed in the configured format, or the id is missing.
    Undecodable,
    /// The vector has the wrong number of values.
    Dimension,
    /// The vector holds NaN or an infinity.
    NonFinite,
    /// The vector holds a value too large for finite distances.
    OutOfRange,
    /// The message or its payload exceeds a size limit.
    Oversized,
    /// The payload is not a JSON object.
    Payload,
    /// The record names a collection other than the sink's.
    UnknownCollection,
    /// The engine refused the record for another reason.
    Rejected,
}

impl BadKind {
    /// The kebab-case name used in headers, logs and stats.
    pub fn as_str(self) -> &'static str {
        match self {
            BadKind::Undecodable => "undecodable",
            BadKind::Dimension => "dimension",
            BadKind::NonFinite => "non-finite",
            BadKind::OutOfRange => "out-of-range",
            BadKind::Oversized => "oversized",
            BadKind::Payload => "payload",
            BadKind::UnknownCollection => "unknown-collection",
            BadKind::Rejected => "rejected",
        }
    }
}

impl std::fmt::Display for BadRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.reason)
    }
}

fn bad(kind: BadKind, reason: impl Into<String>) -> BadRecord {
    BadRecord {
        kind,
        reason: reason.into(),
    }
}

impl From<drift_engine::Error> for BadRecord {
    fn from(e: drift_engine::Error) -> Self {
        use drift_engine::Error as E;
        let kind = match &e {
            E::DimensionMismatch { .. } => BadKind::Dimension,
            E::NonFinite { .. } => BadKind::NonFinite,
            E::OutOfRange { .. } => BadKind::OutOfRange,
            E::InvalidPayload { reason, .. } if reason.contains("limit") => BadKind::Oversized,
            E::InvalidPayload { .. } => BadKind::Payload,
            E::CollectionNotFound(_) => BadKind::UnknownCollection,
            _ => BadKind::Rejected,
        };
        bad(kind, e.to_string())
    }
}

/// How to read values for one collection.
#[derive(Debug, Clone)]
pub struct Decoder {
    /// Wire format.
    pub format: Format,
    /// The target collection's name (a JSON record naming another one is refused).
    pub collection: String,
    /// Largest value accepted, in bytes.
    pub max_message_bytes: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRecord {
    id: Option<u64>,
    vector: Option<Vec<f32>>,
    #[serde(default)]
    payload: Option<Box<serde_json::value::RawValue>>,
    #[serde(default)]
    collection: Option<String>,
}

impl Decoder {
    /// Decodes one Kafka record into writes, in order.
    pub fn decode(
        &self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<Vec<Write>, BadRecord> {
        let Some(value) = value else {
            return Ok(vec![Write::Delete(key_id(key)?)]);
        };
        if value.len() > self.max_message_bytes {
            return Err(bad(
                BadKind::Oversized,
                format!(
                    "value is {} bytes, the limit is {}",
                    value.len(),
                    self.max_message_bytes
                ),
            ));
        }
        match self.format {
            Format::Json => self.json(key, value).map(|w| vec![w]),
            Format::F32le => f32le(key, value).map(|w| vec![w]),
            Format::Arrow => arrow(value),
        }
    }

    fn json(&self, key: Option<&[u8]>, value: &[u8]) -> Result<Write, BadRecord> {
        let r: JsonRecord = serde_json::from_slice(value)
            .map_err(|e| bad(BadKind::Undecodable, format!("not a JSON record: {e}")))?;
        if let Some(c) = &r.collection {
            if *c != self.collection {
                return Err(bad(
                    BadKind::UnknownCollection,
                    format!(
                        "record is for collection {c:?}, this sink writes {:?}",
                        self.collection
                    ),
                ));
            }
        }
        let id = match (r.id, key) {
            (Some(id), _) => id,
            (None, key) => key_id(key)?,
        };
        let Some(vector) = r.vector else {
            return Err(bad(
                BadKind::Undecodable,
                format!("record {id} has no \"vector\""),
            ));
        };
        Ok(Write::Upsert(Record {
            id,
            vector,
            payload: r.payload.map(|p| p.get().to_string()),
        }))
    }
}

/// The id carried in a record key (decimal text).
fn key_id(key: Option<&[u8]>) -> Result<u64, BadRecord> {
    let key = key.ok_or_else(|| bad(BadKind::Undecodable, "record has no key and no id"))?;
    std::str::from_utf8(key)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .ok_or_else(|| {
            bad(
                BadKind::Undecodable,
                format!(
                    "key {:?} is not a decimal id",
                    String::from_utf8_lossy(&key[..key.len().min(40)])
                ),
            )
        })
}

fn f32le(key: Option<&[u8]>, value: &[u8]) -> Result<Write, BadRecord> {
    let id = key_id(key)?;
    if !value.len().is_multiple_of(4) {
        return Err(bad(
            BadKind::Undecodable,
            format!(
                "f32le value for id {id} is {} bytes, not a multiple of 4",
                value.len()
            ),
        ));
    }
    let vector = value
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(Write::Upsert(Record::new(id, vector)))
}

/// Walks the messages of an Arrow IPC stream and checks that each one's declared metadata
/// and body lengths fit inside `value`. The reader allocates what a message declares before
/// reading it: unchecked, ten bytes claiming a 2 GB message make it allocate 2 GB (found by
/// the `kafka_value` fuzz target).
fn check_ipc_framing(value: &[u8]) -> Result<(), String> {
    let word = |at: usize| -> Option<i32> {
        value
            .get(at..at + 4)
            .map(|b| i32::from_le_bytes(b.try_into().expect("4 bytes")))
    };
    let mut pos = 0usize;
    while pos < value.len() {
        let mut len = word(pos).ok_or("the stream ends inside a message length")?;
        pos += 4;
        if len == -1 {
            // Continuation marker, then the length.
            len = word(pos).ok_or("the stream ends inside a message length")?;
            pos += 4;
        }
        if len == 0 {
            return Ok(());
        }
        let left = value.len() - pos;
        let meta_len =
            usize::try_from(len).map_err(|_| format!("message length {len} is negative"))?;
        if meta_len > left {
            return Err(format!(
                "a message declares {meta_len} bytes of metadata, only {left} bytes follow"
            ));
        }
        let message = datafusion::arrow::ipc::root_as_message(&value[pos..pos + meta_len])
            .map_err(|e| format!("bad message metadata: {e}"))?;
        pos += meta_len;
        let left = value.len() - pos;
        let body = message.bodyLength();
        let body_len =
            usize::try_from(body).map_err(|_| format!("message body length {body} is negative"))?;
        if body_len > left {
            return Err(format!(
                "a message declares a body of {body_len} bytes, only {left} bytes follow"
            ));
        }
        pos += body_len;
    }
    Ok(())
}

fn arrow(value: &[u8]) -> Result<Vec<Write>, BadRecord> {
    let undecodable = |m: String| bad(BadKind::Undecodable, m);
    check_ipc_framing(value).map_err(|e| undecodable(format!("not an Arrow IPC stream: {e}")))?;
    let reader = StreamReader::try_new(Cursor::new(value), None)
        .map_err(|e| undecodable(format!("not an Arrow IPC stream: {e}")))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| undecodable(format!("bad Arrow record batch: {e}")))?;
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .cloned()
                .ok_or_else(|| undecodable(format!("Arrow batch has no {name:?} column")))
        };
        let ids = ids_of(&col("id")?)?;
        let vectors = col("vector")?;
        let payloads = batch.column_by_name("payload").cloned();
        let payloads = match &payloads {
            Some(p) => Some(p.as_string_opt::<i32>().ok_or_else(|| {
                undecodable(format!(
                    "Arrow column \"payload\" is {}, expected Utf8",
                    p.data_type()
                ))
            })?),
            None => None,
        };
        for (row, id) in ids.into_iter().enumerate() {
            let id = id.ok_or_else(|| undecodable(format!("Arrow row {row} has a null id")))?;
            let Some(vector) = row_vector(&vectors, row)? else {
                out.push(Write::Delete(id));
                continue;
            };
            let payload = payloads
                .filter(|p| p.is_valid(row))
                .map(|p| p.value(row).to_string());
            out.push(Write::Upsert(Record {
                id,
                vector,
                payload,
            }));
        }
    }
    Ok(out)
}

fn ids_of(col: &Arc<dyn Array>) -> Result<Vec<Option<u64>>, BadRecord> {
    if let Some(a) = col.as_any().downcast_ref::<UInt64Array>() {
        return Ok(a.iter().collect());
    }
    if let Some(a) = col.as_any().downcast_ref::<Int64Array>() {
        return a
            .iter()
            .map(|v| match v {
                Some(v) if v < 0 => Err(bad(
                    BadKind::Undecodable,
                    format!("Arrow id {v} is negative"),
                )),
                v => Ok(v.map(|v| v as u64)),
            })
            .collect();
    }
    Err(bad(
        BadKind::Undecodable,
        format!(
            "Arrow column \"id\" is {}, expected UInt64 or Int64",
            col.data_type()
        ),
    ))
}

/// The f32 values of one row of a `vector` column (None for a null row: a delete).
fn row_vector(col: &Arc<dyn Array>, row: usize) -> Result<Option<Vec<f32>>, BadRecord> {
    if col.is_null(row) {
        return Ok(None);
    }
    let values = match col.data_type() {
        DataType::FixedSizeList(f, _) if f.data_type() == &DataType::Float32 => col
            .as_any()
            .downcast_ref::<FixedSizeListArray>()
            .map(|l| l.value(row)),
        DataType::List(f) if f.data_type() == &DataType::Float32 => col
            .as_any()
            .downcast_ref::<ListArray>()
            .map(|l| l.value(row)),
        _ => None,
    };
    let values = values.ok_or_else(|| {
        bad(
            BadKind::Undecodable,
            format!(
                "Arrow column \"vector\" is {}, expected FixedSizeList<Float32>",
                col.data_type()
            ),
        )
    })?;
    let floats: &Float32Array = values.as_primitive::<Float32Type>();
    if floats.null_count() > 0 {
        return Err(bad(
            BadKind::NonFinite,
            format!("Arrow row {row} has a null inside its vector"),
        ));
    }
    Ok(Some(floats.values().to_vec()))
}

/// One row of an Arrow message: id, vector (`None`: delete), payload.
pub type ArrowRow = (u64, Option<Vec<f32>>, Option<String>);

/// Encodes records as one Arrow IPC stream message (`id`, `vector`, `payload`); `None` as
/// the vector encodes a delete. Producers and tests use this to write the `arrow` format.
pub fn encode_arrow(dim: usize, rows: &[ArrowRow]) -> Vec<u8> {
    use datafusion::arrow::array::{RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::ipc::writer::StreamWriter;
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new(
            "vector",
            DataType::FixedSizeList(item.clone(), dim as i32),
            true,
        ),
        Field::new("payload", DataType::Utf8, true),
    ]));
    let ids = UInt64Array::from_iter_values(rows.iter().map(|r| r.0));
    let mut flat = Vec::with_capacity(rows.len() * dim);
    for r in rows {
        match &r.1 {
            Some(v) => flat.extend_from_slice(v),
            None => flat.extend(std::iter::repeat_n(0.0, dim)),
        }
    }
    let nulls = datafusion::arrow::buffer::NullBuffer::from(
        rows.iter().map(|r| r.1.is_some()).collect::<Vec<_>>(),
    );
    let vectors = FixedSizeListArray::new(
        item,
        dim as i32,
        Arc::new(Float32Array::from(flat)),
        Some(nulls),
    );
    let payloads: StringArray = rows.iter().map(|r| r.2.as_deref()).collect();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(ids), Arc::new(vectors), Arc::new(payloads)],
    )
    .expect("columns match the schema");
    let mut out = Vec::new();
    let mut w = StreamWriter::try_new(&mut out, &schema).expect("schema is encodable");
    w.write(&batch).expect("batch is encodable");
    w.finish().expect("stream finishes");
    drop(w);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(format: Format) -> Decoder {
        Decoder {
            format,
            collection: "c".into(),
            max_message_bytes: 1 << 16,
        }
    }

    #[test]
    fn json_records_and_tombstones() {
        let d = dec(Format::Json);
        let w = d
            .decode(
                None,
                Some(br#"{"id":7,"vector":[1,2.5],"payload":{"a":1}}"#),
            )
            .unwrap();
        assert_eq!(
            w,
            vec![Write::Upsert(Record {
                id: 7,
                vector: vec![1.0, 2.5],
                payload: Some(r#"{"a":1}"#.into())
            })]
        );
        // Id from the key when the value has none.
        let w = d.decode(Some(b"9"), Some(br#"{"vector":[1]}"#)).unwrap();
        assert_eq!(w[0].id(), 9);
        assert_eq!(
            d.decode(Some(b"12"), None).unwrap(),
            vec![Write::Delete(12)]
        );
    }

    #[test]
    fn bad_json_names_the_problem() {
        let d = dec(Format::Json);
        let kind = |k: Option<&[u8]>, v: &[u8]| d.decode(k, Some(v)).unwrap_err().kind;
        assert_eq!(kind(None, b"{not json"), BadKind::Undecodable);
        assert_eq!(kind(None, br#"{"vector":[1]}"#), BadKind::Undecodable);
        assert_eq!(kind(None, br#"{"id":1}"#), BadKind::Undecodable);
        assert_eq!(
            kind(None, br#"{"id":1,"vector":[1],"extra":2}"#),
            BadKind::Undecodable
        );
        assert_eq!(
            kind(None, br#"{"id":1,"vector":[1],"collection":"other"}"#),
            BadKind::UnknownCollection
        );
        assert_eq!(kind(None, &vec![b' '; 1 << 17]), BadKind::Oversized);
        let e = d.decode(Some(b"x1"), None).unwrap_err();
        assert!(e.reason.contains("x1"), "{e}");
        assert!(d.decode(None, None).is_err());
    }

    #[test]
    fn f32le_reads_the_key_and_little_endian_floats() {
        let d = dec(Format::F32le);
        let v: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(
            d.decode(Some(b"3"), Some(&v)).unwrap(),
            vec![Write::Upsert(Record::new(3, vec![1.5, -2.0]))]
        );
        assert_eq!(
            d.decode(Some(b"3"), Some(&v[..7])).unwrap_err().kind,
            BadKind::Undecodable
        );
        assert_eq!(
            d.decode(None, Some(&v)).unwrap_err().kind,
            BadKind::Undecodable
        );
    }

    #[test]
    fn arrow_round_trips_upserts_payloads_and_deletes() {
        let rows = vec![
            (1, Some(vec![1.0, 2.0]), Some(r#"{"k":1}"#.to_string())),
            (2, None, None),
            (3, Some(vec![0.5, f32::NAN]), None),
        ];
        let msg = encode_arrow(2, &rows);
        let w = dec(Format::Arrow).decode(None, Some(&msg)).unwrap();
        assert_eq!(w.len(), 3);
        assert_eq!(
            w[0],
            Write::Upsert(Record {
                id: 1,
                vector: vec![1.0, 2.0],
                payload: Some(r#"{"k":1}"#.into())
            })
        );
        assert_eq!(w[1], Write::Delete(2));
        // NaN passes decoding; the engine's validation rejects it.
        assert!(matches!(&w[2], Write::Upsert(r) if r.vector[1].is_nan()));
        let e = dec(Format::Arrow)
            .decode(None, Some(&msg[..msg.len() / 2]))
            .unwrap_err();
        assert_eq!(e.kind, BadKind::Undecodable);
        assert_eq!(
            dec(Format::Arrow)
                .decode(None, Some(b"junk"))
                .unwrap_err()
                .kind,
            BadKind::Undecodable
        );
    }

    #[test]
    fn arrow_messages_that_declare_more_than_they_hold_are_refused_before_any_allocation() {
        // Continuation marker, then a metadata length of ~2 GB: ten bytes in all.
        let claim = [0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x7f, 0x00, 0x00];
        let e = dec(Format::Arrow).decode(None, Some(&claim)).unwrap_err();
        assert_eq!(e.kind, BadKind::Undecodable);
        assert!(e.reason.contains("declares"), "{}", e.reason);
        // A whole stream passes the framing check; each of its prefixes is refused cleanly
        // or, when it ends at a message boundary, decodes to a prefix of the whole.
        let msg = encode_arrow(2, &[(1, Some(vec![1.0, 2.0]), None)]);
        assert!(check_ipc_framing(&msg).is_ok());
        let whole = dec(Format::Arrow).decode(None, Some(&msg)).unwrap();
        for cut in 1..msg.len() {
            if let Ok(part) = dec(Format::Arrow).decode(None, Some(&msg[..cut])) {
                assert!(whole.starts_with(&part), "prefix of {cut} bytes");
            }
        }
    }

    #[test]
    fn engine_errors_map_to_kinds() {
        let e = drift_engine::Error::NonFinite {
            id: 1,
            position: 0,
            value: "NaN".into(),
        };
        assert_eq!(BadRecord::from(e).kind, BadKind::NonFinite);
    }
}
