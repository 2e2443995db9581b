//! The manifest: which segments, chunks, tombstone files and source offsets make up a
//! collection's durable L1 state, and which WAL sequence number it covers.
//!
//! Every commit writes a new object `manifest/<version>.mf` (versions only grow; nothing is
//! ever overwritten, so the commit is atomic on any object store); the highest version is
//! the state. Tombstone files (`tombstones/<n>.tomb`) list deletes `(id, seq)` that must hide
//! older copies still stored in segments.
//!
//! Manifest layout (little endian): `"DRIFTMF1"`, format u32, body length u64, CRC32C(body)
//! u32, body: version u64, seq u64, next object u64, next bucket u32, dim u32, segments
//! (count u32, numbers u64), tombstone files (count u32, numbers u64), source offsets (count
//! u32, then name as text and offset i64), buckets (count u32, then per bucket: id u32,
//! rows appended u64, radius f32, centroid, anchor, chunk count u32, (segment u64, chunk u32)),
//! then (format 2) cumulative counters (count u32, then name as text and value u64). Format
//! 1 manifests (no counters) are still read.
//!
//! Tombstone file layout: `"DRIFTTB1"`, count u64, (id u64, seq u64) × count, CRC32C u32.

use std::collections::BTreeMap;

use crate::codec::{put_f32s, put_opt_str, ByteReader};
use crate::storage::segment::FormatError;

const MAGIC: &[u8; 8] = b"DRIFTMF1";
const FORMAT: u32 = 2;
const HEADER: usize = 8 + 4 + 8 + 4;
const TOMB_MAGIC: &[u8; 8] = b"DRIFTTB1";

/// Folder of manifest objects.
pub const MANIFEST_DIR: &str = "manifest/";
/// Folder of segment objects.
pub const SEGMENT_DIR: &str = "segments/";
/// Folder of tombstone objects.
pub const TOMBSTONE_DIR: &str = "tombstones/";

/// Object name of manifest `version`.
pub fn manifest_name(version: u64) -> String {
    format!("{MANIFEST_DIR}{version:016}.mf")
}

/// Object name of segment `n`.
pub fn segment_name(n: u64) -> String {
    format!("{SEGMENT_DIR}{n:016}.drift")
}

/// Object name of tombstone file `n`.
pub fn tombstone_name(n: u64) -> String {
    format!("{TOMBSTONE_DIR}{n:016}.tomb")
}

/// The number in an object name made by the functions above.
pub fn object_number(name: &str) -> Option<u64> {
    let file = name.rsplit('/').next()?;
    file.split('.').next()?.parse().ok()
}

/// One bucket as the manifest records it.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketEntry {
    /// Bucket id.
    pub id: u32,
    /// Rows appended since the bucket was built (the weight of its running-mean centroid).
    pub count: u64,
    /// Radius when built.
    pub radius: f32,
    /// Routing centroid.
    pub centroid: Vec<f32>,
    /// Centroid when built.
    pub anchor: Vec<f32>,
    /// Chunks, oldest first: (segment number, chunk index in the segment).
    pub chunks: Vec<(u64, u32)>,
}

/// A committed state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Manifest {
    /// Version (the object name's number).
    pub version: u64,
    /// Every WAL record at or below this sequence number is in this state.
    pub seq: u64,
    /// Number the next segment or tombstone object gets.
    pub next_object: u64,
    /// Id the next bucket gets.
    pub next_bucket: u32,
    /// Vector dimension.
    pub dim: u32,
    /// Live segments.
    pub segments: Vec<u64>,
    /// Live tombstone files.
    pub tombstones: Vec<u64>,
    /// Offsets of external sources (e.g. `topic/partition` → next offset) this state includes.
    pub offsets: BTreeMap<String, i64>,
    /// Buckets in routing order.
    pub buckets: Vec<BucketEntry>,
    /// Cumulative work counters (flushes, splits, merges, …) as of this state, so that they
    /// survive restarts.
    pub counters: BTreeMap<String, u64>,
}

impl Manifest {
    /// Serializes the manifest.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        for x in [self.version, self.seq, self.next_object] {
            b.extend_from_slice(&x.to_le_bytes());
        }
        b.extend_from_slice(&self.next_bucket.to_le_bytes());
        b.extend_from_slice(&self.dim.to_le_bytes());
        for list in [&self.segments, &self.tombstones] {
            b.extend_from_slice(&(list.len() as u32).to_le_bytes());
            for n in list {
                b.extend_from_slice(&n.to_le_bytes());
            }
        }
        b.extend_from_slice(&(self.offsets.len() as u32).to_le_bytes());
        for (name, off) in &self.offsets {
            put_opt_str(&mut b, Some(name));
            b.extend_from_slice(&off.to_le_bytes());
        }
        b.extend_from_slice(&(self.buckets.len() as u32).to_le_bytes());
        for e in &self.buckets {
            b.extend_from_slice(&e.id.to_le_bytes());
            b.extend_from_slice(&e.count.to_le_bytes());
            b.extend_from_slice(&e.radius.to_le_bytes());
            put_f32s(&mut b, &e.centroid);
            put_f32s(&mut b, &e.anchor);
            b.extend_from_slice(&(e.chunks.len() as u32).to_le_bytes());
            for (s, c) in &e.chunks {
                b.extend_from_slice(&s.to_le_bytes());
                b.extend_from_slice(&c.to_le_bytes());
            }
        }
        b.extend_from_slice(&(self.counters.len() as u32).to_le_bytes());
        for (name, v) in &self.counters {
            put_opt_str(&mut b, Some(name));
            b.extend_from_slice(&v.to_le_bytes());
        }
        let mut out = Vec::with_capacity(HEADER + b.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        out.extend_from_slice(&(b.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&b).to_le_bytes());
        out.extend_from_slice(&b);
        out
    }

    /// Parses and checks a manifest.
    pub fn decode(data: &[u8]) -> Result<Manifest, FormatError> {
        let bad = |offset: usize, reason: String| FormatError {
            offset: offset as u64,
            reason,
        };
        if data.len() < HEADER {
            return Err(bad(
                0,
                format!("{} bytes is shorter than the header", data.len()),
            ));
        }
        if &data[..8] != MAGIC {
            return Err(bad(0, "not a Drift manifest (bad magic)".into()));
        }
        let mut h = ByteReader::new(&data[8..HEADER]);
        let format = h.u32().map_err(|e| bad(8, e))?;
        if format != 1 && format != FORMAT {
            return Err(bad(8, format!("unsupported manifest format {format}")));
        }
        let len = h.u64().map_err(|e| bad(12, e))?;
        let crc = h.u32().map_err(|e| bad(20, e))?;
        if (data.len() - HEADER) as u64 != len {
            return Err(bad(
                12,
                format!("body length {len} but {} bytes follow", data.len() - HEADER),
            ));
        }
        let body = &data[HEADER..];
        if crc32c::crc32c(body) != crc {
            return Err(bad(HEADER, "checksum mismatch".into()));
        }
        let mut r = ByteReader::new(body);
        let at = |r: &ByteReader, e: String| bad(HEADER + r.pos(), e);
        let mut m = Manifest {
            version: r.u64().map_err(|e| at(&r, e))?,
            seq: r.u64().map_err(|e| at(&r, e))?,
            next_object: r.u64().map_err(|e| at(&r, e))?,
            next_bucket: r.u32().map_err(|e| at(&r, e))?,
            dim: r.u32().map_err(|e| at(&r, e))?,
            ..Default::default()
        };
        let dim = m.dim as usize;
        for list in [&mut m.segments, &mut m.tombstones] {
            let n = r.u32().map_err(|e| at(&r, e))?;
            for _ in 0..n {
                list.push(r.u64().map_err(|e| at(&r, e))?);
            }
        }
        let n = r.u32().map_err(|e| at(&r, e))?;
        for _ in 0..n {
            let name = r
                .opt_str()
                .map_err(|e| at(&r, e))?
                .ok_or_else(|| at(&r, "offset without a name".into()))?;
            let off = r.u64().map_err(|e| at(&r, e))? as i64;
            m.offsets.insert(name, off);
        }
        let n = r.u32().map_err(|e| at(&r, e))?;
        for _ in 0..n {
            let id = r.u32().map_err(|e| at(&r, e))?;
            let count = r.u64().map_err(|e| at(&r, e))?;
            let radius = r.f32s(1).map_err(|e| at(&r, e))?[0];
            let centroid = r.f32s(dim).map_err(|e| at(&r, e))?;
            let anchor = r.f32s(dim).map_err(|e| at(&r, e))?;
            let chunks = r.u32().map_err(|e| at(&r, e))?;
            let mut refs = Vec::new();
            for _ in 0..chunks {
                let s = r.u64().map_err(|e| at(&r, e))?;
                let c = r.u32().map_err(|e| at(&r, e))?;
                if !m.segments.contains(&s) {
                    return Err(at(
                        &r,
                        format!("bucket {id} refers to segment {s}, not listed"),
                    ));
                }
                refs.push((s, c));
            }
            if id >= m.next_bucket {
                return Err(at(&r, format!("bucket id {id} is not below the next id")));
            }
            m.buckets.push(BucketEntry {
                id,
                count,
                radius,
                centroid,
                anchor,
                chunks: refs,
            });
        }
        if format >= 2 {
            let n = r.u32().map_err(|e| at(&r, e))?;
            for _ in 0..n {
                let name = r
                    .opt_str()
                    .map_err(|e| at(&r, e))?
                    .ok_or_else(|| at(&r, "counter without a name".into()))?;
                let v = r.u64().map_err(|e| at(&r, e))?;
                m.counters.insert(name, v);
            }
        }
        if r.remaining() != 0 {
            return Err(at(&r, format!("{} stray bytes at the end", r.remaining())));
        }
        Ok(m)
    }
}

/// Serializes a tombstone file.
pub fn encode_tombstones(deletes: &[(u64, u64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + deletes.len() * 16);
    out.extend_from_slice(TOMB_MAGIC);
    out.extend_from_slice(&(deletes.len() as u64).to_le_bytes());
    for (id, seq) in deletes {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&seq.to_le_bytes());
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Parses and checks a tombstone file.
pub fn decode_tombstones(data: &[u8]) -> Result<Vec<(u64, u64)>, FormatError> {
    let bad = |offset: usize, reason: &str| FormatError {
        offset: offset as u64,
        reason: reason.into(),
    };
    if data.len() < 20 || &data[..8] != TOMB_MAGIC {
        return Err(bad(
            0,
            "not a Drift tombstone file (bad magic or too short)",
        ));
    }
    let n = u64::from_le_bytes(data[8..16].try_into().expect("8 bytes"));
    if n.checked_mul(16).and_then(|b| b.checked_add(20)) != Some(data.len() as u64) {
        return Err(bad(8, "entry count does not match the file size"));
    }
    let body = &data[..data.len() - 4];
    let crc = u32::from_le_bytes(data[data.len() - 4..].try_into().expect("4 bytes"));
    if crc32c::crc32c(body) != crc {
        return Err(bad(data.len() - 4, "checksum mismatch"));
    }
    Ok(body[16..]
        .chunks_exact(16)
        .map(|c| {
            (
                u64::from_le_bytes(c[..8].try_into().expect("8 bytes")),
                u64::from_le_bytes(c[8..].try_into().expect("8 bytes")),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            version: 3,
            seq: 77,
            next_object: 9,
            next_bucket: 5,
            dim: 2,
            segments: vec![4, 8],
            tombstones: vec![6],
            offsets: [("events/0".to_string(), 120), ("events/3".to_string(), 7)].into(),
            buckets: vec![BucketEntry {
                id: 4,
                count: 10,
                radius: 0.5,
                centroid: vec![1.0, 2.0],
                anchor: vec![1.5, 2.5],
                chunks: vec![(4, 0), (8, 2)],
            }],
            counters: [("flushes".to_string(), 12), ("splits".to_string(), 3)].into(),
        }
    }

    #[test]
    fn format_1_without_counters_is_still_read() {
        let mut m = sample();
        m.counters.clear();
        let bytes = m.encode();
        // Format 1: the same body without the trailing (empty) counter section.
        let body = &bytes[HEADER..bytes.len() - 4];
        let mut old = Vec::new();
        old.extend_from_slice(MAGIC);
        old.extend_from_slice(&1u32.to_le_bytes());
        old.extend_from_slice(&(body.len() as u64).to_le_bytes());
        old.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
        old.extend_from_slice(body);
        assert_eq!(Manifest::decode(&old).unwrap(), m);
    }

    #[test]
    fn round_trip_and_every_corruption_is_caught() {
        let m = sample();
        let bytes = m.encode();
        assert_eq!(Manifest::decode(&bytes).unwrap(), m);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(Manifest::decode(&b).is_err(), "flip at {i} passed");
        }
        for n in 0..bytes.len() {
            assert!(
                Manifest::decode(&bytes[..n]).is_err(),
                "truncation to {n} passed"
            );
        }
        assert_eq!(object_number(&manifest_name(42)), Some(42));
        assert_eq!(object_number(&segment_name(7)), Some(7));
    }

    #[test]
    fn tombstones_round_trip_and_reject_damage() {
        let t = vec![(1, 2), (u64::MAX, 9)];
        let bytes = encode_tombstones(&t);
        assert_eq!(decode_tombstones(&bytes).unwrap(), t);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 1;
            assert!(decode_tombstones(&b).is_err(), "flip at {i} passed");
        }
        assert!(decode_tombstones(&bytes[..bytes.len() - 1]).is_err());
    }
}
