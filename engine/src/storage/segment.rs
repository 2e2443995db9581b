//! Segment files (`.drift`): the immutable unit of L1 storage. One segment holds one or more
//! bucket chunks (a flush's deltas, or a rebuilt bucket's new base).
//!
//! ```text
//! header  16 B   "DRIFTSEG", version u32, dim u32
//! hot            per chunk: ids u64×n, seqs u64×n, SQ8 codes (stride×n)       ← loaded at open
//! cold           per chunk: ALP blocks of f32 rows, then the payload section   ← read on demand
//! meta           per chunk: bucket, rows, quantizer (lo, step), offsets, block table with
//!                a CRC32C per block; then a Bloom filter over the ids
//! footer  64 B   region lengths, row count, CRC32C of hot / cold / meta, chunk count,
//!                version, CRC32C of the footer itself, "DRIFTEND"
//! ```
//! All integers are little endian. A reader checks the footer, the region lengths against
//! the file size, and the checksum of every region before using a byte of it; cold blocks
//! carry their own checksum so a single row can be fetched and validated alone.

use std::sync::Arc;

use crate::codec::{put_f32s, put_opt_str, ByteReader};
use crate::columns::{PayloadView, U64View};
use crate::quant::Sq8;
use crate::storage::alp;

/// First bytes of every segment.
pub const MAGIC: &[u8; 8] = b"DRIFTSEG";
/// Last bytes of every segment.
pub const END_MAGIC: &[u8; 8] = b"DRIFTEND";
/// Format version written and read.
pub const VERSION: u32 = 1;
/// Header size.
pub const HEADER: u64 = 16;
/// Footer size.
pub const FOOTER: u64 = 64;

/// A failure to read a segment: the byte offset and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    /// Offset in the file where the problem was found.
    pub offset: u64,
    /// What was wrong.
    pub reason: String,
}

fn bad(offset: u64, reason: impl Into<String>) -> FormatError {
    FormatError {
        offset,
        reason: reason.into(),
    }
}

/// One chunk to write.
pub struct ChunkInput<'a> {
    /// Bucket the chunk belongs to.
    pub bucket: u32,
    /// Record ids.
    pub ids: U64View<'a>,
    /// Sequence numbers.
    pub seqs: U64View<'a>,
    /// Code rows, `quant.stride()` bytes each.
    pub codes: &'a [u8],
    /// The quantizer that produced the codes.
    pub quant: &'a Sq8,
    /// Exact vectors, row-major.
    pub vectors: &'a [f32],
    /// Payload of each row.
    pub payloads: PayloadView<'a>,
}

/// Where one compressed block of rows lies, with its checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRef {
    /// Absolute offset in the file.
    pub offset: u64,
    /// Length in bytes.
    pub len: u32,
    /// CRC32C of the block.
    pub crc: u32,
}

/// How a chunk's exact vectors are laid out in the cold region.
#[derive(Debug, Clone, PartialEq)]
pub struct ColdLayout {
    /// Rows per block (the last block may hold fewer).
    pub block_rows: u32,
    /// The blocks, in row order.
    pub blocks: Vec<BlockRef>,
}

/// A chunk as described by the metadata region.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkMeta {
    /// Bucket id.
    pub bucket: u32,
    /// Rows.
    pub rows: u32,
    /// Quantizer of the codes.
    pub quant: Sq8,
    /// Absolute offset of the chunk's hot rows.
    pub hot_offset: u64,
    /// Cold blocks.
    pub cold: ColdLayout,
    /// Absolute offset and length of the payload section (length 0: no payloads).
    pub payload_offset: u64,
    /// Payload section length.
    pub payload_len: u64,
    /// CRC32C of the payload section.
    pub payload_crc: u32,
}

/// A Bloom filter over the ids of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bloom {
    hashes: u8,
    bits: Vec<u8>,
}

const BLOOM_BITS_PER_KEY: usize = 10;
const BLOOM_HASHES: u8 = 7;

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Bloom {
    /// A filter holding the `count` ids of `ids` (about 1% false positives).
    pub fn build(count: usize, ids: impl Iterator<Item = u64>) -> Bloom {
        let bytes = (count * BLOOM_BITS_PER_KEY).div_ceil(8).max(8);
        let mut b = Bloom {
            hashes: BLOOM_HASHES,
            bits: vec![0; bytes],
        };
        for id in ids {
            let set: Vec<usize> = b.positions(id).collect();
            for bit in set {
                b.bits[bit / 8] |= 1 << (bit % 8);
            }
        }
        b
    }

    fn positions(&self, id: u64) -> impl Iterator<Item = usize> + '_ {
        let h = mix(id);
        let (h1, h2) = (h as u32 as u64, (h >> 32) | 1);
        let m = (self.bits.len() * 8) as u64;
        (0..self.hashes as u64).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % m) as usize)
    }

    /// False when `id` is certainly not in the segment.
    pub fn may_contain(&self, id: u64) -> bool {
        !self.bits.is_empty()
            && self
                .positions(id)
                .all(|b| self.bits[b / 8] & (1 << (b % 8)) != 0)
    }
}

/// Everything the metadata region says.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentMeta {
    /// Vector dimension.
    pub dim: usize,
    /// Total rows.
    pub rows: u64,
    /// The chunks, in file order.
    pub chunks: Vec<ChunkMeta>,
    /// Filter over every id in the segment.
    pub bloom: Bloom,
    /// Offset and length of the hot region.
    pub hot: (u64, u64),
    /// CRC32C of the hot region.
    pub hot_crc: u32,
    /// Offset, length and CRC32C of the cold region.
    pub cold: (u64, u64, u32),
}

/// Rows per cold block for vectors of `dim`: as many as fit in one ALP block.
pub fn block_rows(dim: usize) -> usize {
    (alp::BLOCK_VALUES / dim.max(1)).max(1)
}

/// Builds a segment from `chunks`; returns its bytes and its metadata.
pub fn encode(dim: usize, chunks: &[ChunkInput]) -> (Vec<u8>, SegmentMeta) {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(dim as u32).to_le_bytes());
    let mut metas = Vec::with_capacity(chunks.len());
    let mut hot_offsets = Vec::with_capacity(chunks.len());
    for c in chunks {
        hot_offsets.push(out.len() as u64);
        for id in c.ids.iter() {
            out.extend_from_slice(&id.to_le_bytes());
        }
        for s in c.seqs.iter() {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out.extend_from_slice(c.codes);
    }
    let hot = (HEADER, out.len() as u64 - HEADER);
    let hot_crc = crc32c::crc32c(&out[HEADER as usize..]);
    let cold_start = out.len();
    let per_block = block_rows(dim);
    let mut block = Vec::new();
    for (c, hot_offset) in chunks.iter().zip(hot_offsets) {
        let mut blocks = Vec::new();
        for rows in c.vectors.chunks(per_block * dim) {
            block.clear();
            alp::encode_block(rows, &mut block);
            blocks.push(BlockRef {
                offset: out.len() as u64,
                len: block.len() as u32,
                crc: crc32c::crc32c(&block),
            });
            out.extend_from_slice(&block);
        }
        let payload_offset = out.len() as u64;
        if let Some(slots) = c.payloads.slots().filter(|s| s.iter().any(Option::is_some)) {
            for p in slots {
                put_opt_str(&mut out, p.as_deref());
            }
        }
        let payload_len = out.len() as u64 - payload_offset;
        metas.push(ChunkMeta {
            bucket: c.bucket,
            rows: c.ids.len() as u32,
            quant: c.quant.clone(),
            hot_offset,
            cold: ColdLayout {
                block_rows: per_block as u32,
                blocks,
            },
            payload_offset,
            payload_len,
            payload_crc: crc32c::crc32c(&out[payload_offset as usize..]),
        });
    }
    let cold = (
        cold_start as u64,
        (out.len() - cold_start) as u64,
        crc32c::crc32c(&out[cold_start..]),
    );
    let rows: usize = chunks.iter().map(|c| c.ids.len()).sum();
    let bloom = Bloom::build(rows, chunks.iter().flat_map(|c| c.ids.iter()));
    let meta = SegmentMeta {
        dim,
        rows: rows as u64,
        chunks: metas,
        bloom,
        hot,
        hot_crc,
        cold,
    };
    let meta_start = out.len();
    write_meta(&meta, &mut out);
    let meta_len = (out.len() - meta_start) as u64;
    let meta_crc = crc32c::crc32c(&out[meta_start..]);
    let footer_start = out.len();
    out.extend_from_slice(&hot.1.to_le_bytes());
    out.extend_from_slice(&cold.1.to_le_bytes());
    out.extend_from_slice(&meta_len.to_le_bytes());
    out.extend_from_slice(&meta.rows.to_le_bytes());
    out.extend_from_slice(&hot_crc.to_le_bytes());
    out.extend_from_slice(&cold.2.to_le_bytes());
    out.extend_from_slice(&meta_crc.to_le_bytes());
    out.extend_from_slice(&(meta.chunks.len() as u32).to_le_bytes());
    out.extend_from_slice(&VERSION.to_le_bytes());
    let footer_crc = crc32c::crc32c(&out[footer_start..]);
    out.extend_from_slice(&footer_crc.to_le_bytes());
    out.extend_from_slice(END_MAGIC);
    (out, meta)
}

fn write_meta(meta: &SegmentMeta, out: &mut Vec<u8>) {
    out.extend_from_slice(&(meta.chunks.len() as u32).to_le_bytes());
    for c in &meta.chunks {
        out.extend_from_slice(&c.bucket.to_le_bytes());
        out.extend_from_slice(&c.rows.to_le_bytes());
        let (lo, step) = c.quant.parts();
        put_f32s(out, lo);
        put_f32s(out, step);
        out.extend_from_slice(&c.hot_offset.to_le_bytes());
        out.extend_from_slice(&c.cold.block_rows.to_le_bytes());
        out.extend_from_slice(&(c.cold.blocks.len() as u32).to_le_bytes());
        for b in &c.cold.blocks {
            out.extend_from_slice(&b.offset.to_le_bytes());
            out.extend_from_slice(&b.len.to_le_bytes());
            out.extend_from_slice(&b.crc.to_le_bytes());
        }
        out.extend_from_slice(&c.payload_offset.to_le_bytes());
        out.extend_from_slice(&c.payload_len.to_le_bytes());
        out.extend_from_slice(&c.payload_crc.to_le_bytes());
    }
    out.push(meta.bloom.hashes);
    out.extend_from_slice(&(meta.bloom.bits.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta.bloom.bits);
}

/// What the footer says: where the regions are and their checksums.
#[derive(Debug, Clone, Copy)]
pub struct Footer {
    hot_len: u64,
    cold_len: u64,
    meta_len: u64,
    rows: u64,
    hot_crc: u32,
    cold_crc: u32,
    meta_crc: u32,
    chunks: u32,
}

impl Footer {
    /// Offset and length of the metadata region.
    pub fn meta_range(&self) -> (u64, u64) {
        (HEADER + self.hot_len + self.cold_len, self.meta_len)
    }

    /// Offset and length of the hot region.
    pub fn hot_range(&self) -> (u64, u64) {
        (HEADER, self.hot_len)
    }
}

/// Parses and checks the last [`FOOTER`] bytes of a file of `file_len` bytes.
pub fn read_footer(tail: &[u8], file_len: u64) -> Result<Footer, FormatError> {
    if file_len < HEADER + FOOTER || tail.len() as u64 != FOOTER {
        return Err(bad(
            0,
            format!("{file_len} bytes is too short for a segment"),
        ));
    }
    let at = file_len - FOOTER;
    if &tail[56..64] != END_MAGIC {
        return Err(bad(
            at + 56,
            "missing end marker (truncated or not a segment)",
        ));
    }
    let crc = u32::from_le_bytes(tail[52..56].try_into().expect("4 bytes"));
    if crc32c::crc32c(&tail[..52]) != crc {
        return Err(bad(at, "footer checksum mismatch"));
    }
    let mut r = ByteReader::new(tail);
    let f = Footer {
        hot_len: r.u64().map_err(|e| bad(at, e))?,
        cold_len: r.u64().map_err(|e| bad(at, e))?,
        meta_len: r.u64().map_err(|e| bad(at, e))?,
        rows: r.u64().map_err(|e| bad(at, e))?,
        hot_crc: r.u32().map_err(|e| bad(at, e))?,
        cold_crc: r.u32().map_err(|e| bad(at, e))?,
        meta_crc: r.u32().map_err(|e| bad(at, e))?,
        chunks: r.u32().map_err(|e| bad(at, e))?,
    };
    let version = r.u32().map_err(|e| bad(at, e))?;
    if version != VERSION {
        return Err(bad(
            at + 48,
            format!("unsupported segment version {version}"),
        ));
    }
    let total = HEADER
        .checked_add(f.hot_len)
        .and_then(|x| x.checked_add(f.cold_len))
        .and_then(|x| x.checked_add(f.meta_len))
        .and_then(|x| x.checked_add(FOOTER));
    if total != Some(file_len) {
        return Err(bad(
            at,
            format!("region lengths do not add up to the file size {file_len}"),
        ));
    }
    Ok(f)
}

/// Checks the header (first [`HEADER`] bytes) and returns the dimension.
pub fn read_header(head: &[u8]) -> Result<usize, FormatError> {
    if head.len() < HEADER as usize || &head[..8] != MAGIC {
        return Err(bad(0, "not a Drift segment (bad magic)"));
    }
    let version = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(bad(8, format!("unsupported segment version {version}")));
    }
    let dim = u32::from_le_bytes(head[12..16].try_into().expect("4 bytes")) as usize;
    if dim == 0 || dim > 65_536 {
        return Err(bad(12, format!("implausible dimension {dim}")));
    }
    Ok(dim)
}

/// Parses the metadata region (`raw`, read at the footer's [`Footer::meta_range`]) after
/// checking its checksum, and checks every offset it gives against the regions.
pub fn read_meta(raw: &[u8], footer: &Footer, dim: usize) -> Result<SegmentMeta, FormatError> {
    let (start, len) = footer.meta_range();
    if raw.len() as u64 != len {
        return Err(bad(start, "metadata region has the wrong length"));
    }
    if crc32c::crc32c(raw) != footer.meta_crc {
        return Err(bad(start, "metadata checksum mismatch"));
    }
    let hot_end = HEADER + footer.hot_len;
    let cold = (hot_end, footer.cold_len);
    let cold_end = hot_end + footer.cold_len;
    let mut r = ByteReader::new(raw);
    let at = |r: &ByteReader, e: String| bad(start + r.pos() as u64, e);
    let n = r.u32().map_err(|e| at(&r, e))?;
    if n != footer.chunks {
        return Err(bad(
            start,
            format!("{n} chunks, footer says {}", footer.chunks),
        ));
    }
    let stride = dim.div_ceil(8) * 8;
    let per_block = block_rows(dim) as u32;
    let mut chunks = Vec::with_capacity(n.min(1 << 16) as usize);
    let mut rows_total = 0u64;
    let mut hot_next = HEADER;
    for _ in 0..n {
        let bucket = r.u32().map_err(|e| at(&r, e))?;
        let rows = r.u32().map_err(|e| at(&r, e))?;
        let lo = r.f32s(dim).map_err(|e| at(&r, e))?;
        let step = r.f32s(dim).map_err(|e| at(&r, e))?;
        if lo.iter().chain(&step).any(|x| !x.is_finite()) {
            return Err(at(&r, "quantizer parameter is not finite".into()));
        }
        let hot_offset = r.u64().map_err(|e| at(&r, e))?;
        let hot_len = rows as u64 * (16 + stride as u64);
        if hot_offset != hot_next || hot_offset + hot_len > hot_end {
            return Err(at(
                &r,
                format!("chunk hot rows at {hot_offset} are out of place"),
            ));
        }
        hot_next += hot_len;
        let block_rows = r.u32().map_err(|e| at(&r, e))?;
        let count = r.u32().map_err(|e| at(&r, e))?;
        if block_rows != per_block || count as u64 != (rows as u64).div_ceil(per_block as u64) {
            return Err(at(
                &r,
                format!("{count} blocks of {block_rows} rows for {rows} rows"),
            ));
        }
        let mut blocks = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let b = BlockRef {
                offset: r.u64().map_err(|e| at(&r, e))?,
                len: r.u32().map_err(|e| at(&r, e))?,
                crc: r.u32().map_err(|e| at(&r, e))?,
            };
            if b.offset < hot_end || b.offset + b.len as u64 > cold_end {
                return Err(at(
                    &r,
                    format!("block at {} is outside the cold region", b.offset),
                ));
            }
            blocks.push(b);
        }
        let payload_offset = r.u64().map_err(|e| at(&r, e))?;
        let payload_len = r.u64().map_err(|e| at(&r, e))?;
        let payload_crc = r.u32().map_err(|e| at(&r, e))?;
        if payload_offset < hot_end
            || payload_offset
                .checked_add(payload_len)
                .is_none_or(|end| end > cold_end)
        {
            return Err(at(&r, "payload section is outside the cold region".into()));
        }
        rows_total += rows as u64;
        chunks.push(ChunkMeta {
            bucket,
            rows,
            quant: Sq8::from_parts(lo, step),
            hot_offset,
            cold: ColdLayout { block_rows, blocks },
            payload_offset,
            payload_len,
            payload_crc,
        });
    }
    if hot_next != hot_end {
        return Err(bad(start, "chunks do not cover the hot region"));
    }
    if rows_total != footer.rows {
        return Err(bad(
            start,
            format!("{rows_total} rows, footer says {}", footer.rows),
        ));
    }
    let hashes = r.u8().map_err(|e| at(&r, e))?;
    let bytes = r.u32().map_err(|e| at(&r, e))? as usize;
    let bits = r.take(bytes).map_err(|e| at(&r, e))?.to_vec();
    if hashes == 0 || hashes > 16 || bits.is_empty() {
        return Err(at(&r, "bad Bloom filter".into()));
    }
    if r.remaining() != 0 {
        return Err(at(
            &r,
            format!("{} stray bytes after the metadata", r.remaining()),
        ));
    }
    Ok(SegmentMeta {
        dim,
        rows: rows_total,
        chunks,
        bloom: Bloom { hashes, bits },
        hot: (HEADER, footer.hot_len),
        hot_crc: footer.hot_crc,
        cold: (cold.0, cold.1, footer.cold_crc),
    })
}

/// Checks the hot region's checksum (`raw` read at [`Footer::hot_range`]).
pub fn check_hot(raw: &[u8], meta: &SegmentMeta) -> Result<(), FormatError> {
    if raw.len() as u64 != meta.hot.1 || crc32c::crc32c(raw) != meta.hot_crc {
        return Err(bad(meta.hot.0, "hot region checksum mismatch"));
    }
    Ok(())
}

/// Ids, sequence numbers and code rows of chunk `c`, sliced from the (checked) hot region.
pub fn hot_rows<'a>(hot: &'a [u8], meta: &SegmentMeta, c: usize) -> (Vec<u64>, Vec<u64>, &'a [u8]) {
    let ch = &meta.chunks[c];
    let n = ch.rows as usize;
    let stride = meta.dim.div_ceil(8) * 8;
    let base = (ch.hot_offset - meta.hot.0) as usize;
    let word = |i: usize| u64::from_le_bytes(hot[i..i + 8].try_into().expect("8 bytes"));
    let ids = (0..n).map(|i| word(base + 8 * i)).collect();
    let seqs = (0..n).map(|i| word(base + 8 * (n + i))).collect();
    let codes = &hot[base + 16 * n..base + 16 * n + stride * n];
    (ids, seqs, codes)
}

/// Decodes cold block `b` of a chunk (`raw` read at its offset) into `out`, checking its
/// checksum first. `rows` is the chunk's row count.
pub fn decode_block(
    raw: &[u8],
    block: &BlockRef,
    b: usize,
    layout: &ColdLayout,
    rows: u32,
    dim: usize,
    out: &mut Vec<f32>,
) -> Result<(), FormatError> {
    if raw.len() != block.len as usize || crc32c::crc32c(raw) != block.crc {
        return Err(bad(block.offset, "cold block checksum mismatch"));
    }
    let first = b as u64 * layout.block_rows as u64;
    let n = (rows as u64 - first).min(layout.block_rows as u64) as usize;
    alp::decode_block(raw, n * dim, out).map_err(|e| bad(block.offset, e))
}

/// Decodes a chunk's payload section (`raw` read at its offset).
pub fn decode_payloads(raw: &[u8], ch: &ChunkMeta) -> Result<Vec<Option<Arc<str>>>, FormatError> {
    if ch.payload_len == 0 {
        return Ok(vec![None; ch.rows as usize]);
    }
    if raw.len() as u64 != ch.payload_len || crc32c::crc32c(raw) != ch.payload_crc {
        return Err(bad(ch.payload_offset, "payload checksum mismatch"));
    }
    let mut r = ByteReader::new(raw);
    let mut out = Vec::with_capacity(ch.rows as usize);
    for _ in 0..ch.rows {
        let p = r
            .opt_str()
            .map_err(|e| bad(ch.payload_offset + r.pos() as u64, e))?;
        out.push(p.map(Arc::from));
    }
    Ok(out)
}

/// Everything in one segment, read from its whole bytes and validated: every region's
/// checksum, every block decoded. Used by `drift verify`-style checks, tests and the fuzzer.
pub struct Decoded {
    /// The metadata.
    pub meta: SegmentMeta,
    /// Per chunk: ids, seqs, codes, vectors and payloads.
    pub chunks: Vec<DecodedChunk>,
}

/// One chunk read back in full.
pub struct DecodedChunk {
    /// Record ids.
    pub ids: Vec<u64>,
    /// Sequence numbers.
    pub seqs: Vec<u64>,
    /// Code rows.
    pub codes: Vec<u8>,
    /// Exact vectors, row-major.
    pub vectors: Vec<f32>,
    /// Payloads.
    pub payloads: Vec<Option<Arc<str>>>,
}

/// Checks a whole segment held in memory: footer, header, metadata, and the checksums of the
/// hot and cold regions. Returns the metadata; the hot region is at [`SegmentMeta::hot`].
pub fn check(bytes: &[u8]) -> Result<SegmentMeta, FormatError> {
    let len = bytes.len() as u64;
    if len < HEADER + FOOTER {
        return Err(bad(0, format!("{len} bytes is too short for a segment")));
    }
    let footer = read_footer(&bytes[(len - FOOTER) as usize..], len)?;
    let dim = read_header(&bytes[..HEADER as usize])?;
    let meta = read_meta(slice(bytes, footer.meta_range()), &footer, dim)?;
    check_hot(slice(bytes, footer.hot_range()), &meta)?;
    if crc32c::crc32c(slice(bytes, (meta.cold.0, meta.cold.1))) != meta.cold.2 {
        return Err(bad(meta.cold.0, "cold region checksum mismatch"));
    }
    Ok(meta)
}

/// The `(offset, length)` range of `bytes` (already checked to lie inside it).
pub fn slice(bytes: &[u8], (off, n): (u64, u64)) -> &[u8] {
    &bytes[off as usize..(off + n) as usize]
}

/// Reads and checks a whole segment held in memory, decoding every block.
pub fn decode(bytes: &[u8]) -> Result<Decoded, FormatError> {
    let meta = check(bytes)?;
    let dim = meta.dim;
    let hot = slice(bytes, meta.hot);
    let mut chunks = Vec::with_capacity(meta.chunks.len());
    for (c, ch) in meta.chunks.iter().enumerate() {
        let (ids, seqs, codes) = hot_rows(hot, &meta, c);
        let mut vectors = Vec::with_capacity(ch.rows as usize * dim);
        for (b, block) in ch.cold.blocks.iter().enumerate() {
            let raw = slice(bytes, (block.offset, block.len as u64));
            decode_block(raw, block, b, &ch.cold, ch.rows, dim, &mut vectors)?;
        }
        let payloads = decode_payloads(slice(bytes, (ch.payload_offset, ch.payload_len)), ch)?;
        chunks.push(DecodedChunk {
            ids,
            seqs,
            codes: codes.to_vec(),
            vectors,
            payloads,
        });
    }
    Ok(Decoded { meta, chunks })
}

impl DecodedChunk {
    /// This chunk as input for [`encode`] (with `meta`, its entry in the metadata).
    pub fn input<'a>(&'a self, meta: &'a ChunkMeta) -> ChunkInput<'a> {
        ChunkInput {
            bucket: meta.bucket,
            ids: (&self.ids).into(),
            seqs: (&self.seqs).into(),
            codes: &self.codes,
            quant: &meta.quant,
            vectors: &self.vectors,
            payloads: (&self.payloads).into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `rows` integer-valued rows with their codes, and a payload on every `every`-th row.
    fn sample(dim: usize, rows: usize, every: usize) -> (DecodedChunk, Sq8) {
        let vectors: Vec<f32> = (0..rows * dim).map(|i| ((i * 7) % 256) as f32).collect();
        let quant = Sq8::fit(&vectors, dim);
        let mut codes = Vec::new();
        for v in vectors.chunks_exact(dim) {
            quant.encode_into(v, &mut codes);
        }
        let chunk = DecodedChunk {
            ids: (0..rows as u64).map(|i| i * 3 + 1).collect(),
            seqs: (0..rows as u64).map(|i| i + 100).collect(),
            codes,
            vectors,
            payloads: (0..rows)
                .map(|i| (every > 0 && i % every == 0).then(|| Arc::from(format!("{{\"i\":{i}}}"))))
                .collect(),
        };
        (chunk, quant)
    }

    fn input<'a>(c: &'a DecodedChunk, quant: &'a Sq8, bucket: u32) -> ChunkInput<'a> {
        ChunkInput {
            bucket,
            ids: (&c.ids).into(),
            seqs: (&c.seqs).into(),
            codes: &c.codes,
            quant,
            vectors: &c.vectors,
            payloads: (&c.payloads).into(),
        }
    }

    #[test]
    fn round_trip_and_bloom() {
        let dim = 12;
        let (a, qa) = sample(dim, 300, 3);
        let (b, qb) = sample(dim, 10, 0);
        let (bytes, meta) = encode(dim, &[input(&a, &qa, 4), input(&b, &qb, 9)]);
        let d = decode(&bytes).unwrap();
        assert_eq!(d.meta, meta);
        assert_eq!(d.chunks[0].ids, a.ids);
        assert_eq!(d.chunks[0].seqs, a.seqs);
        assert_eq!(d.chunks[0].codes, a.codes);
        assert_eq!(d.chunks[0].vectors, a.vectors);
        assert_eq!(d.chunks[0].payloads, a.payloads);
        assert_eq!(d.chunks[1].vectors, b.vectors);
        assert_eq!(d.chunks[1].payloads, b.payloads);
        assert_eq!(meta.chunks[1].bucket, 9);
        assert!(a.ids.iter().all(|&i| meta.bloom.may_contain(i)));
        let false_hits = (1_000_000..1_010_000u64)
            .filter(|&i| meta.bloom.may_contain(i))
            .count();
        assert!(false_hits < 300, "{false_hits} false positives in 10k");
        // Integer-valued vectors compress to about a byte per value.
        let cold = meta.cold.1 as usize;
        assert!(cold < (300 + 10) * dim * 2, "cold region {cold} bytes");
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_caught() {
        let dim = 8;
        let (a, qa) = sample(dim, 40, 1);
        let (bytes, _) = encode(dim, &[input(&a, &qa, 1)]);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x41;
            let e = decode(&b)
                .err()
                .unwrap_or_else(|| panic!("flip at {i} passed"));
            assert!(e.offset <= bytes.len() as u64, "{e:?}");
        }
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "truncation to {n} passed");
        }
    }
}
