//! The L1 checkpoint: every current row of every bucket, with centroids and quantizers, in one
//! checksummed file written atomically after each flush. The WAL is retired up to the
//! checkpoint's sequence number only once this file is durable.
//!
//! Layout (little endian): `"DRIFTCK1"`, format version u32, body length u64, crc32c(body)
//! u32, body = checkpoint seq u64, dim u32, next bucket id u32, bucket count u32, then per
//! bucket: id u32, centroid, anchor, radius f32, quantizer (lo and step per dimension), row count u32, rows of
//! (id u64, seq u64, vector, payload).

use std::path::Path;
use std::sync::Arc;

use crate::codec::{put_f32s, put_opt_str, ByteReader};
use crate::config::Metric;
use crate::error::{Error, IoContext, Result};
use crate::idmap::{IdMap, Loc};
use crate::ivf::{Bucket, L1};
use crate::memtable::MemBuffer;
use crate::quant::Sq8;

const MAGIC: &[u8; 8] = b"DRIFTCK1";
/// Version written; version 1 (before anchors) is still read.
const VERSION: u32 = 2;
const HEADER: usize = 8 + 4 + 8 + 4;

/// Serializes the current rows of `l1` (rows `idmap` says are stale are left out).
pub fn encode(l1: &L1, idmap: &IdMap, seq: u64, dim: usize) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&seq.to_le_bytes());
    body.extend_from_slice(&(dim as u32).to_le_bytes());
    body.extend_from_slice(&l1.next_id().to_le_bytes());
    body.extend_from_slice(&(l1.buckets().len() as u32).to_le_bytes());
    for b in l1.buckets() {
        body.extend_from_slice(&b.id.to_le_bytes());
        put_f32s(&mut body, &b.centroid);
        put_f32s(&mut body, &b.anchor);
        body.extend_from_slice(&b.radius.to_le_bytes());
        let (lo, step) = b.quant.parts();
        put_f32s(&mut body, lo);
        put_f32s(&mut body, step);
        let count_at = body.len();
        body.extend_from_slice(&0u32.to_le_bytes());
        let mut count = 0u32;
        for c in &b.chunks {
            for r in 0..c.len() {
                if !idmap.is_current(c.ids[r], c.seqs[r]) {
                    continue;
                }
                body.extend_from_slice(&c.ids[r].to_le_bytes());
                body.extend_from_slice(&c.seqs[r].to_le_bytes());
                put_f32s(&mut body, c.vector(r, dim));
                put_opt_str(&mut body, c.payloads[r].as_deref());
                count += 1;
            }
        }
        body[count_at..count_at + 4].copy_from_slice(&count.to_le_bytes());
    }
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Reads a checkpoint, loading its rows into `idmap`; returns the layer and its sequence.
pub fn read(path: &Path, dim: usize, metric: Metric, idmap: &IdMap) -> Result<(L1, u64)> {
    let data = std::fs::read(path).at(path)?;
    let bad = |off: usize, why: String| Error::corrupt(path, off as u64, why);
    if data.len() < HEADER {
        return Err(bad(
            0,
            format!("file is {} bytes, shorter than its header", data.len()),
        ));
    }
    if &data[..8] != MAGIC {
        return Err(bad(0, "not a Drift checkpoint (bad magic)".into()));
    }
    let mut h = ByteReader::new(&data[8..HEADER]);
    let version = h.u32().map_err(|e| bad(8, e))?;
    if version != VERSION && version != 1 {
        return Err(bad(8, format!("unsupported checkpoint version {version}")));
    }
    let len = h.u64().map_err(|e| bad(12, e))? as usize;
    let crc = h.u32().map_err(|e| bad(20, e))?;
    if data.len() - HEADER != len {
        return Err(bad(
            12,
            format!(
                "body length {len} but {} bytes follow the header",
                data.len() - HEADER
            ),
        ));
    }
    let body = &data[HEADER..];
    if crc32c::crc32c(body) != crc {
        return Err(bad(HEADER, "checksum mismatch".into()));
    }
    let mut r = ByteReader::new(body);
    let at = |r: &ByteReader, e: String| bad(HEADER + r.pos(), e);
    let seq = r.u64().map_err(|e| at(&r, e))?;
    let file_dim = r.u32().map_err(|e| at(&r, e))? as usize;
    if file_dim != dim {
        return Err(bad(
            HEADER + 8,
            format!("dimension {file_dim}, collection has {dim}"),
        ));
    }
    let next_id = r.u32().map_err(|e| at(&r, e))?;
    let n = r.u32().map_err(|e| at(&r, e))?;
    let mut buckets = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let id = r.u32().map_err(|e| at(&r, e))?;
        let centroid = r.f32s(dim).map_err(|e| at(&r, e))?;
        // Version 1 had no anchor and radius: drift is measured from the stored centroid on.
        let (anchor, radius) = if version >= 2 {
            let anchor = r.f32s(dim).map_err(|e| at(&r, e))?;
            (anchor, r.f32s(1).map_err(|e| at(&r, e))?[0])
        } else {
            (centroid.clone(), 0.0)
        };
        let lo = r.f32s(dim).map_err(|e| at(&r, e))?;
        let step = r.f32s(dim).map_err(|e| at(&r, e))?;
        let quant = Sq8::from_parts(lo, step);
        let rows = r.u32().map_err(|e| at(&r, e))? as usize;
        let mut rows_in = MemBuffer::default();
        for _ in 0..rows {
            let rid = r.u64().map_err(|e| at(&r, e))?;
            let rseq = r.u64().map_err(|e| at(&r, e))?;
            let v = r.f32s(dim).map_err(|e| at(&r, e))?;
            let p = r.opt_str().map_err(|e| at(&r, e))?;
            if idmap.load(rid, rseq, Loc::Bucket(id)) {
                rows_in.push(rid, rseq, &v, p.map(Arc::from));
            }
        }
        buckets.push(Arc::new(Bucket::restore(
            id, centroid, anchor, radius, quant, rows_in,
        )));
    }
    if r.remaining() != 0 {
        return Err(at(
            &r,
            format!("{} unexpected bytes after the last bucket", r.remaining()),
        ));
    }
    Ok((L1::from_buckets(dim, metric, buckets, next_id), seq))
}
