//! Record framing: `[body length u32][crc32c(body) u32][body]`, little endian.
//! Body: `seq u64, op u8, id u64`, then for an upsert `dim u32, dim x f32, payload_len u32,
//! payload bytes` (payload_len `u32::MAX` = no payload); for source offsets (id 0) `count u32`,
//! then `count x (key_len u32, key bytes, offset i64)`.

use crate::codec::{put_f32s, put_opt_str, ByteReader};

/// Bytes before each body.
pub const FRAME_HEADER: usize = 8;
/// Largest body accepted; a bigger length field is damage, not data.
pub const MAX_RECORD: usize = 256 << 20;

const OP_UPSERT: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_OFFSETS: u8 = 3;

/// One logged change.
#[derive(Debug, Clone, PartialEq)]
pub enum WalOp {
    /// Insert or replace `id`.
    Upsert {
        /// Record id.
        id: u64,
        /// The vector, already normalized for cosine collections.
        vector: Vec<f32>,
        /// JSON object text, if any.
        payload: Option<String>,
    },
    /// Remove `id`.
    Delete {
        /// Record id.
        id: u64,
    },
    /// Positions of external sources (e.g. Kafka `topic/partition` → next offset) that the
    /// operations logged before this one cover.
    Offsets {
        /// (source key, next offset) pairs.
        offsets: Vec<(String, i64)>,
    },
}

/// Appends the framed record to `out`.
pub fn encode_record(seq: u64, op: &WalOp, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER]);
    out.extend_from_slice(&seq.to_le_bytes());
    match op {
        WalOp::Upsert {
            id,
            vector,
            payload,
        } => {
            out.push(OP_UPSERT);
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&(vector.len() as u32).to_le_bytes());
            put_f32s(out, vector);
            put_opt_str(out, payload.as_deref());
        }
        WalOp::Delete { id } => {
            out.push(OP_DELETE);
            out.extend_from_slice(&id.to_le_bytes());
        }
        WalOp::Offsets { offsets } => {
            out.push(OP_OFFSETS);
            out.extend_from_slice(&0u64.to_le_bytes());
            out.extend_from_slice(&(offsets.len() as u32).to_le_bytes());
            for (key, offset) in offsets {
                put_opt_str(out, Some(key));
                out.extend_from_slice(&offset.to_le_bytes());
            }
        }
    }
    let body_len = (out.len() - start - FRAME_HEADER) as u32;
    let crc = crc32c::crc32c(&out[start + FRAME_HEADER..]);
    out[start..start + 4].copy_from_slice(&body_len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes a checksum-verified body. Errors describe what is malformed.
pub fn decode_record(body: &[u8]) -> Result<(u64, WalOp), String> {
    let mut r = ByteReader::new(body);
    let seq = r.u64()?;
    let op = r.u8()?;
    let id = r.u64()?;
    let op = match op {
        OP_UPSERT => {
            let dim = r.u32()? as usize;
            let vector = r.f32s(dim)?;
            let payload = r.opt_str()?;
            WalOp::Upsert {
                id,
                vector,
                payload,
            }
        }
        OP_DELETE => WalOp::Delete { id },
        OP_OFFSETS => {
            let count = r.u32()? as usize;
            let mut offsets = Vec::with_capacity(count.min(r.remaining() / 12));
            for _ in 0..count {
                let key = r.opt_str()?.ok_or("source key is missing")?;
                offsets.push((key, r.u64()? as i64));
            }
            WalOp::Offsets { offsets }
        }
        other => return Err(format!("unknown operation code {other}")),
    };
    if r.remaining() != 0 {
        return Err(format!("{} trailing bytes after record", r.remaining()));
    }
    Ok((seq, op))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(seq in any::<u64>(), id in any::<u64>(),
                       v in prop::collection::vec(any::<f32>(), 0..40),
                       p in prop::option::of("[a-z{}\":0-9]{0,30}"), kind in 0..3u8,
                       offsets in prop::collection::vec(("[a-z/0-9]{0,12}", any::<i64>()), 0..5)) {
            let op = match kind {
                0 => WalOp::Delete { id },
                1 => WalOp::Upsert { id, vector: v, payload: p },
                _ => WalOp::Offsets { offsets },
            };
            let mut buf = Vec::new();
            encode_record(seq, &op, &mut buf);
            let len = u32::from_le_bytes(buf[0..4].try_into().unwrap()) as usize;
            prop_assert_eq!(len + FRAME_HEADER, buf.len());
            let (s, back) = decode_record(&buf[FRAME_HEADER..]).unwrap();
            prop_assert_eq!(s, seq);
            // NaN payloads compare unequal; compare bit patterns instead.
            let bits = |o: &WalOp| match o {
                WalOp::Upsert { id, vector, payload } => (1, *id, vector.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), payload.clone()),
                WalOp::Delete { id } => (2, *id, vec![], None),
                WalOp::Offsets { offsets } => (3, 0, offsets.iter().map(|o| o.1 as u32).collect(), Some(format!("{offsets:?}"))),
            };
            prop_assert_eq!(bits(&back), bits(&op));
        }

        #[test]
        fn decoder_never_panics(body in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_record(&body);
        }
    }
}
