//! Vector files, read as a stream of batches: `.fvecs` and `.bvecs` (per row an i32 dimension
//! then the values), `.fbin` and `.u8bin` (an 8-byte header of row count and dimension, then
//! all values), NumPy `.npy` (a 2-D C-order array of f16, f32, f64 or u8) and `.jsonl` (one
//! `{"id", "vector", "payload"}` object per line). The format is chosen by the file's
//! extension.
//!
//! A path may end in `@START..END` (either end may be left out) to read only those rows of a
//! vector file, for example `pypi.npy@..80000` as base and `pypi.npy@80000..` as queries; rows
//! keep their position in the file as their id.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use drift_engine::Record;

use crate::error::{LabError, Result};

/// Supported formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// i32 dim + f32 values per row.
    Fvecs,
    /// i32 dim + u8 values per row.
    Bvecs,
    /// u32 rows, u32 dim header; f32 values.
    Fbin,
    /// u32 rows, u32 dim header; u8 values.
    U8bin,
    /// NumPy `.npy`: a 2-D, C-order array.
    Npy,
    /// JSON lines with id, vector and optional payload.
    Jsonl,
}

/// Element type of a fixed-size row format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    F16,
    F32,
    F64,
    U8,
}

impl Elem {
    fn size(self) -> usize {
        match self {
            Elem::F16 => 2,
            Elem::F32 => 4,
            Elem::F64 => 8,
            Elem::U8 => 1,
        }
    }

    fn decode(self, raw: &[u8]) -> Vec<f32> {
        match self {
            Elem::F16 => raw
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Elem::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Elem::F64 => raw
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                .collect(),
            Elem::U8 => raw.iter().map(|b| *b as f32).collect(),
        }
    }
}

/// Splits `path@START..END` into the file and its row range.
pub fn split_rows(spec: &Path) -> Result<(PathBuf, std::ops::Range<u64>)> {
    let all = (spec.to_path_buf(), 0..u64::MAX);
    let Some(s) = spec.to_str() else {
        return Ok(all);
    };
    let Some((file, range)) = s.rsplit_once('@') else {
        return Ok(all);
    };
    let Some((a, b)) = range.split_once("..") else {
        return Ok(all);
    };
    let num = |x: &str, default: u64| -> Result<u64> {
        if x.is_empty() {
            return Ok(default);
        }
        x.replace('_', "").parse().map_err(|_| {
            LabError::format(
                spec,
                format!("row range `{range}`: `{x}` is not a row number (expected START..END)"),
            )
        })
    };
    let (start, end) = (num(a, 0)?, num(b, u64::MAX)?);
    if start >= end {
        return Err(LabError::format(
            spec,
            format!("row range `{range}` is empty"),
        ));
    }
    Ok((PathBuf::from(file), start..end))
}

/// Parses a `.npy` header: (element type, rows, dim, header bytes).
fn npy_header(path: &Path, input: &mut dyn Read) -> Result<(Elem, u64, usize, u64)> {
    let bad = |m: String| LabError::format(path, m);
    let mut pre = [0u8; 8];
    input
        .read_exact(&mut pre)
        .map_err(|_| bad("file is shorter than the .npy preamble".into()))?;
    if &pre[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file (magic bytes missing)".into()));
    }
    let read_len = |input: &mut dyn Read, n: usize| -> Result<usize> {
        let mut b = [0u8; 4];
        input
            .read_exact(&mut b[..n])
            .map_err(|_| bad("file ends inside the .npy header length".into()))?;
        Ok(u32::from_le_bytes(b) as usize)
    };
    let (len, used) = match pre[6] {
        1 => (read_len(input, 2)?, 10u64),
        2 | 3 => (read_len(input, 4)?, 12u64),
        v => return Err(bad(format!(".npy format version {v} is not supported"))),
    };
    if len > 1 << 20 {
        return Err(bad(format!(".npy header of {len} bytes is implausible")));
    }
    let mut dict = vec![0u8; len];
    input
        .read_exact(&mut dict)
        .map_err(|_| bad("file ends inside the .npy header".into()))?;
    let dict = String::from_utf8_lossy(&dict);
    let field = |key: &str| -> Option<String> {
        let at = dict.find(&format!("'{key}'"))? + key.len() + 2;
        let rest = dict[at..].trim_start().strip_prefix(':')?.trim_start();
        let end = if rest.starts_with('(') {
            rest.find(')')? + 1
        } else {
            rest.find([',', '}'])?
        };
        Some(rest[..end].trim().to_string())
    };
    let descr = field("descr").ok_or_else(|| bad("the .npy header has no descr".into()))?;
    let elem = match descr.trim_matches(|c| c == '\'' || c == '"') {
        "<f2" => Elem::F16,
        "<f4" => Elem::F32,
        "<f8" => Elem::F64,
        "|u1" | "<u1" => Elem::U8,
        d => {
            return Err(bad(format!(
                "element type {d} is not supported (expected <f2, <f4, <f8 or |u1)"
            )))
        }
    };
    if field("fortran_order").as_deref() != Some("False") {
        return Err(bad("Fortran-order arrays are not supported".into()));
    }
    let shape = field("shape").ok_or_else(|| bad("the .npy header has no shape".into()))?;
    let dims: Vec<u64> = shape
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|x| x.parse())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad(format!("shape {shape} is not a tuple of integers")))?;
    let [rows, dim] = dims[..] else {
        return Err(bad(format!(
            "shape {shape}: expected a 2-D array (rows, dim)"
        )));
    };
    if dim == 0 || dim > 1 << 20 {
        return Err(bad(format!(
            "shape {shape}: dimension {dim} is out of range"
        )));
    }
    Ok((elem, rows, dim as usize, used + len as u64))
}

impl Format {
    /// The format named by `path`'s extension.
    pub fn from_path(path: &Path) -> Result<Format> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .unwrap_or_default();
        Ok(match ext.as_str() {
            "fvecs" => Format::Fvecs,
            "bvecs" => Format::Bvecs,
            "fbin" => Format::Fbin,
            "u8bin" => Format::U8bin,
            "npy" => Format::Npy,
            "jsonl" | "ndjson" => Format::Jsonl,
            _ => {
                return Err(LabError::format(
                    path,
                    "unknown file type (expected .fvecs, .bvecs, .fbin, .u8bin, .npy or .jsonl)",
                ))
            }
        })
    }
}

/// Streaming reader. Rows of vector formats get ids `row + id_offset`; `.jsonl` rows carry
/// their own ids.
pub struct VecReader {
    path: PathBuf,
    format: Format,
    input: BufReader<File>,
    dim: Option<usize>,
    /// Rows left, for the formats with a header.
    remaining: Option<u64>,
    row: u64,
    offset: u64,
    id_offset: u64,
    line: String,
    elem: Elem,
    /// Row index in the file after which reading stops.
    end: u64,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRow {
    id: u64,
    vector: Vec<f32>,
    #[serde(default)]
    payload: Option<serde_json::Value>,
}

impl VecReader {
    /// Opens `path` (optionally `path@START..END`); ids of vector formats are the row's
    /// position in the file plus `id_offset`.
    pub fn open(spec: &Path, id_offset: u64) -> Result<VecReader> {
        let (path, rows) = split_rows(spec)?;
        let path = path.as_path();
        let format = Format::from_path(path)?;
        if format == Format::Jsonl && rows != (0..u64::MAX) {
            return Err(LabError::format(
                spec,
                "a row range applies to vector files, not .jsonl",
            ));
        }
        let file = File::open(path).map_err(|e| LabError::io(path, e))?;
        let mut r = VecReader {
            path: path.to_path_buf(),
            format,
            input: BufReader::with_capacity(1 << 20, file),
            dim: None,
            remaining: None,
            row: 0,
            offset: 0,
            id_offset,
            line: String::new(),
            elem: match format {
                Format::Bvecs | Format::U8bin => Elem::U8,
                _ => Elem::F32,
            },
            end: rows.end,
        };
        if format == Format::Npy {
            let (elem, n, dim, header) = npy_header(path, &mut r.input)?;
            r.elem = elem;
            r.dim = Some(dim);
            r.remaining = Some(n);
            r.offset = header;
        }
        if matches!(format, Format::Fbin | Format::U8bin) {
            let mut h = [0u8; 8];
            r.read_exact_or(&mut h, "header of row count and dimension")?;
            let rows = u32::from_le_bytes(h[0..4].try_into().expect("4 bytes")) as u64;
            let dim = u32::from_le_bytes(h[4..8].try_into().expect("4 bytes")) as usize;
            if dim == 0 {
                return Err(LabError::format(path, "header says dimension 0"));
            }
            r.dim = Some(dim);
            r.remaining = Some(rows);
        }
        r.skip_to(rows.start)?;
        Ok(r)
    }

    /// Moves past the first `start` rows (a seek for the formats with fixed-size rows).
    fn skip_to(&mut self, start: u64) -> Result<()> {
        if start == 0 {
            return Ok(());
        }
        if let (Some(dim), Some(rem)) = (self.dim, self.remaining) {
            if start > rem {
                return Err(LabError::format(
                    &self.path,
                    format!("row range starts at row {start} but the file has {rem} rows"),
                ));
            }
            let bytes = start * (dim * self.elem.size()) as u64;
            self.offset += bytes;
            let at = self.offset;
            self.input
                .seek(SeekFrom::Start(at))
                .map_err(|e| LabError::io(&self.path, e))?;
            self.remaining = Some(rem - start);
            self.row = start;
            return Ok(());
        }
        while self.row < start {
            if self.next_row()?.is_none() {
                return Err(LabError::format(
                    &self.path,
                    format!(
                        "row range starts at row {start} but the file has {} rows",
                        self.row
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The dimension, once known (after the first row for per-row formats).
    pub fn dim(&self) -> Option<usize> {
        self.dim
    }

    /// The format being read.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Total file size in bytes (for progress bars).
    pub fn file_len(&self) -> u64 {
        self.input
            .get_ref()
            .metadata()
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> u64 {
        self.offset
    }

    fn read_exact_or(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        self.input.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                LabError::format(
                    &self.path,
                    format!(
                        "file ends inside row {} ({what}) at byte {}",
                        self.row, self.offset
                    ),
                )
            } else {
                LabError::io(&self.path, e)
            }
        })?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn at_eof(&mut self) -> Result<bool> {
        Ok(self
            .input
            .fill_buf()
            .map_err(|e| LabError::io(&self.path, e))?
            .is_empty())
    }

    /// Reads up to `max` more rows; `None` at the end of the file.
    pub fn next_batch(&mut self, max: usize) -> Result<Option<Vec<Record>>> {
        let mut out = Vec::new();
        while out.len() < max {
            match self.next_row()? {
                Some(r) => out.push(r),
                None => break,
            }
        }
        Ok((!out.is_empty()).then_some(out))
    }

    fn next_row(&mut self) -> Result<Option<Record>> {
        if self.row >= self.end {
            return Ok(None);
        }
        match self.format {
            Format::Jsonl => return self.next_json(),
            Format::Fbin | Format::U8bin | Format::Npy => {
                if self.remaining == Some(0) {
                    return Ok(None);
                }
            }
            Format::Fvecs | Format::Bvecs => {
                if self.at_eof()? {
                    return Ok(None);
                }
                let mut d = [0u8; 4];
                self.read_exact_or(&mut d, "dimension")?;
                let dim = i32::from_le_bytes(d);
                if dim <= 0 || dim > 1 << 20 {
                    return Err(LabError::format(
                        &self.path,
                        format!("row {} declares dimension {dim}", self.row),
                    ));
                }
                match self.dim {
                    None => self.dim = Some(dim as usize),
                    Some(x) if x != dim as usize => {
                        return Err(LabError::format(
                            &self.path,
                            format!(
                                "row {} has dimension {dim}, earlier rows have {x}",
                                self.row
                            ),
                        ))
                    }
                    _ => {}
                }
            }
        }
        let dim = self.dim.expect("dimension known");
        let mut raw = vec![0u8; dim * self.elem.size()];
        self.read_exact_or(&mut raw, "values")?;
        let vector = self.elem.decode(&raw);
        if let Some(r) = self.remaining.as_mut() {
            *r -= 1;
        }
        let id = self.row + self.id_offset;
        self.row += 1;
        Ok(Some(Record::new(id, vector)))
    }

    fn next_json(&mut self) -> Result<Option<Record>> {
        loop {
            self.line.clear();
            let n = self
                .input
                .read_line(&mut self.line)
                .map_err(|e| LabError::io(&self.path, e))?;
            if n == 0 {
                return Ok(None);
            }
            self.offset += n as u64;
            self.row += 1;
            if self.line.trim().is_empty() {
                continue;
            }
            let row: JsonRow = serde_json::from_str(&self.line)
                .map_err(|e| LabError::format(&self.path, format!("line {}: {e}", self.row)))?;
            let payload = match row.payload {
                None | Some(serde_json::Value::Null) => None,
                Some(v @ serde_json::Value::Object(_)) => Some(v.to_string()),
                Some(_) => {
                    return Err(LabError::format(
                        &self.path,
                        format!("line {}: payload must be a JSON object", self.row),
                    ))
                }
            };
            match self.dim {
                None => self.dim = Some(row.vector.len()),
                Some(d) if d != row.vector.len() => {
                    return Err(LabError::format(
                        &self.path,
                        format!(
                            "line {}: vector has dimension {}, earlier lines have {d}",
                            self.row,
                            row.vector.len()
                        ),
                    ))
                }
                _ => {}
            }
            return Ok(Some(Record {
                id: row.id,
                vector: row.vector,
                payload,
            }));
        }
    }
}

/// Reads a whole vector file into (row-major values, dimension).
pub fn read_all(path: &Path) -> Result<(Vec<f32>, usize)> {
    let mut r = VecReader::open(path, 0)?;
    let mut data = Vec::new();
    while let Some(batch) = r.next_batch(4096)? {
        for rec in batch {
            data.extend_from_slice(&rec.vector);
        }
    }
    let dim = r
        .dim()
        .ok_or_else(|| LabError::format(path, "file holds no vectors"))?;
    Ok((data, dim))
}

/// Reads a base file and a query file whole: (base values, query values, dimension); fails
/// when their dimensions differ.
pub fn read_base_and_queries(base: &Path, queries: &Path) -> Result<(Vec<f32>, Vec<f32>, usize)> {
    let (b, dim) = read_all(base)?;
    let (q, qdim) = read_all(queries)?;
    if dim != qdim {
        return Err(LabError::Invalid(format!(
            "base has dimension {dim} but queries have {qdim}"
        )));
    }
    Ok((b, q, dim))
}

/// Writes row-major `data` as `.fvecs`.
pub fn write_fvecs(path: &Path, data: &[f32], dim: usize) -> Result<()> {
    let f = File::create(path).map_err(|e| LabError::io(path, e))?;
    let mut w = BufWriter::new(f);
    for row in data.chunks_exact(dim) {
        w.write_all(&(dim as i32).to_le_bytes())
            .map_err(|e| LabError::io(path, e))?;
        for x in row {
            w.write_all(&x.to_le_bytes())
                .map_err(|e| LabError::io(path, e))?;
        }
    }
    w.flush().map_err(|e| LabError::io(path, e))
}

/// The bytes of a version-1 `.npy` file as `np.save` writes it: `descr` is NumPy's type
/// string (`<f4`, `<f2`, ...), `shape` its tuple as text (`(2, 3)`), `body` the C-order data.
pub fn npy_bytes(descr: &str, shape: &str, body: &[u8]) -> Vec<u8> {
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // The header is padded with spaces to a multiple of 64 bytes, ending in a newline.
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend_from_slice(body);
    out
}

/// Writes `data` (row-major, `dim` values per row) as `.fbin`: u32 rows, u32 dim, values.
pub fn write_fbin(path: &Path, data: &[f32], dim: usize) -> Result<()> {
    let f = File::create(path).map_err(|e| LabError::io(path, e))?;
    let mut w = BufWriter::new(f);
    let rows = data.len() / dim.max(1);
    let header = [(rows as u32).to_le_bytes(), (dim as u32).to_le_bytes()].concat();
    w.write_all(&header).map_err(|e| LabError::io(path, e))?;
    for x in &data[..rows * dim] {
        w.write_all(&x.to_le_bytes())
            .map_err(|e| LabError::io(path, e))?;
    }
    w.flush().map_err(|e| LabError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fvecs_round_trip_and_truncation_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.fvecs");
        let data: Vec<f32> = (0..30).map(|x| x as f32).collect();
        write_fvecs(&p, &data, 3).unwrap();
        let (back, dim) = read_all(&p).unwrap();
        assert_eq!((back, dim), (data.clone(), 3));
        let fb = dir.path().join("a.fbin");
        write_fbin(&fb, &data, 3).unwrap();
        assert_eq!(read_all(&fb).unwrap(), (data.clone(), 3));
        let raw = std::fs::read(&p).unwrap();
        std::fs::write(&p, &raw[..raw.len() - 2]).unwrap();
        let err = read_all(&p).unwrap_err().to_string();
        assert!(err.contains("row 9"), "{err}");
    }

    #[test]
    fn bin_formats_and_jsonl() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.u8bin");
        let mut raw = Vec::new();
        raw.extend_from_slice(&2u32.to_le_bytes());
        raw.extend_from_slice(&3u32.to_le_bytes());
        raw.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        std::fs::write(&p, raw).unwrap();
        let mut r = VecReader::open(&p, 100).unwrap();
        let rows = r.next_batch(10).unwrap().unwrap();
        assert_eq!(rows[1].id, 101);
        assert_eq!(rows[1].vector, vec![4.0, 5.0, 6.0]);

        let j = dir.path().join("a.jsonl");
        std::fs::write(
            &j,
            "{\"id\": 7, \"vector\": [1, 2], \"payload\": {\"k\": 1}}\n\n{\"id\": 9, \"vector\": [3, 4]}\n{\"id\": 1, \"vector\": [3]}\n",
        )
        .unwrap();
        let mut r = VecReader::open(&j, 0).unwrap();
        let err = r.next_batch(10).unwrap_err().to_string();
        assert!(
            err.contains("line 4") && err.contains("dimension 1"),
            "{err}"
        );
        let mut r = VecReader::open(&j, 0).unwrap();
        let first = r.next_batch(2).unwrap().unwrap();
        assert_eq!(first[0].payload.as_deref(), Some("{\"k\":1}"));
        assert_eq!(first[1].id, 9);
    }

    use super::npy_bytes as npy;

    #[test]
    fn npy_f16_and_f32_with_row_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let vals: Vec<f32> = (0..12).map(|x| x as f32 * 0.5).collect();
        let f16: Vec<u8> = vals
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect();
        let p = dir.path().join("a.npy");
        std::fs::write(&p, npy("<f2", "(4, 3)", &f16)).unwrap();
        assert_eq!(read_all(&p).unwrap(), (vals.clone(), 3));
        let tail = PathBuf::from(format!("{}@2..", p.display()));
        assert_eq!(read_all(&tail).unwrap(), (vals[6..].to_vec(), 3));
        let mid = PathBuf::from(format!("{}@1..2", p.display()));
        let mut r = VecReader::open(&mid, 0).unwrap();
        let rows = r.next_batch(10).unwrap().unwrap();
        assert_eq!((rows.len(), rows[0].id), (1, 1));
        assert_eq!(rows[0].vector, vals[3..6].to_vec());

        let f32b: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&p, npy("<f4", "(2, 6)", &f32b)).unwrap();
        assert_eq!(read_all(&p).unwrap(), (vals.clone(), 6));

        for (descr, shape, want) in [
            ("<i4", "(2, 6)", "element type <i4"),
            ("<f4", "(12,)", "expected a 2-D array"),
        ] {
            std::fs::write(&p, npy(descr, shape, &f32b)).unwrap();
            let err = read_all(&p).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
        std::fs::write(&p, npy("<f4", "(3, 6)", &f32b)).unwrap();
        let err = read_all(&p).unwrap_err().to_string();
        assert!(err.contains("row 2"), "{err}");
        let far = PathBuf::from(format!("{}@9..", p.display()));
        let err = read_all(&far).unwrap_err().to_string();
        assert!(err.contains("file has 3 rows"), "{err}");
        let bad = PathBuf::from(format!("{}@x..", p.display()));
        assert!(read_all(&bad)
            .unwrap_err()
            .to_string()
            .contains("not a row number"));
    }

    #[test]
    fn unknown_extension_is_named() {
        let err = Format::from_path(Path::new("x.csv"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.csv") && err.contains("unknown file type"));
    }
}
