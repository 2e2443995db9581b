//! Vector files, read as a stream of batches: `.fvecs` and `.bvecs` (per row an i32 dimension
//! then the values), `.fbin` and `.u8bin` (an 8-byte header of row count and dimension, then
//! all values), and `.jsonl` (one `{"id", "vector", "payload"}` object per line). The format is
//! chosen by the file's extension.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
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
    /// JSON lines with id, vector and optional payload.
    Jsonl,
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
            "jsonl" | "ndjson" => Format::Jsonl,
            _ => {
                return Err(LabError::format(
                    path,
                    "unknown file type (expected .fvecs, .bvecs, .fbin, .u8bin or .jsonl)",
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
    /// Opens `path`; ids of vector formats start at `id_offset`.
    pub fn open(path: &Path, id_offset: u64) -> Result<VecReader> {
        let format = Format::from_path(path)?;
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
        };
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
        Ok(r)
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
        match self.format {
            Format::Jsonl => return self.next_json(),
            Format::Fbin | Format::U8bin => {
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
        let vector = match self.format {
            Format::Fvecs | Format::Fbin => {
                let mut raw = vec![0u8; dim * 4];
                self.read_exact_or(&mut raw, "values")?;
                raw.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            }
            _ => {
                let mut raw = vec![0u8; dim];
                self.read_exact_or(&mut raw, "values")?;
                raw.iter().map(|b| *b as f32).collect()
            }
        };
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

    #[test]
    fn unknown_extension_is_named() {
        let err = Format::from_path(Path::new("x.csv"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.csv") && err.contains("unknown file type"));
    }
}
