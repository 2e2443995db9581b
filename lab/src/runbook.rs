//! Big-ANN streaming runbooks (the NeurIPS'23 streaming track's YAML), read unchanged:
//!
//! ```yaml
//! my-dataset:
//!   max_pts: 10000
//!   1: { operation: insert, start: 0, end: 5000 }
//!   2: { operation: search }
//!   3: { operation: delete, start: 0, end: 2500 }
//!   4: { operation: replace, tags_start: 2500, tags_end: 3000, ids_start: 5000, ids_end: 5500 }
//!   gt_url: ...            # other keys are the track's bookkeeping and are ignored
//! ```
//!
//! `insert` adds base rows `[start, end)` with their row numbers as ids; `delete` removes ids
//! `[start, end)`; `replace` gives ids `tags_start..tags_end` the vectors of base rows
//! `ids_start..ids_end`; `search` runs the whole query file.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{LabError, Result};
use crate::scenario::yaml_error;

/// One runbook operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Insert base rows `[start, end)` with ids equal to the row numbers.
    Insert {
        /// First row.
        start: u64,
        /// One past the last row.
        end: u64,
    },
    /// Delete ids `[start, end)`.
    Delete {
        /// First id.
        start: u64,
        /// One past the last id.
        end: u64,
    },
    /// Give ids `[tags_start, tags_end)` the vectors of rows `[ids_start, ids_end)`.
    Replace {
        /// First id replaced.
        tags_start: u64,
        /// One past the last id replaced.
        tags_end: u64,
        /// First row of the new vectors.
        ids_start: u64,
        /// One past the last row of the new vectors.
        ids_end: u64,
    },
    /// Search every query.
    Search,
}

impl Operation {
    /// The operation's name in runbooks.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Insert { .. } => "insert",
            Operation::Delete { .. } => "delete",
            Operation::Replace { .. } => "replace",
            Operation::Search => "search",
        }
    }
}

/// A runbook for one data set.
#[derive(Debug, Clone)]
pub struct Runbook {
    /// Data set key.
    pub dataset: String,
    /// Most points the index holds at once.
    pub max_pts: u64,
    /// Operations in step order.
    pub steps: Vec<Operation>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    operation: String,
    start: Option<u64>,
    end: Option<u64>,
    tags_start: Option<u64>,
    tags_end: Option<u64>,
    ids_start: Option<u64>,
    ids_end: Option<u64>,
}

impl Runbook {
    /// Reads the runbook of `dataset` from a runbook file.
    pub fn load(path: &Path, dataset: &str) -> Result<Runbook> {
        let text = std::fs::read_to_string(path).map_err(|e| LabError::io(path, e))?;
        Runbook::parse(&text, path, dataset)
    }

    /// Parses the runbook of `dataset` from YAML text; `origin` names the source in errors.
    pub fn parse(text: &str, origin: &Path, dataset: &str) -> Result<Runbook> {
        let bad = |m: String| LabError::format(origin, m);
        let all: BTreeMap<String, serde_yaml::Value> =
            serde_yaml::from_str(text).map_err(|e| yaml_error(origin, &e))?;
        let Some(book) = all.get(dataset) else {
            let keys: Vec<&str> = all.keys().map(String::as_str).collect();
            return Err(bad(format!(
                "no runbook for data set {dataset:?} (the file has: {})",
                keys.join(", ")
            )));
        };
        let serde_yaml::Value::Mapping(map) = book else {
            return Err(bad(format!("{dataset}: expected a mapping of steps")));
        };
        let mut max_pts = None;
        let mut numbered: BTreeMap<u64, Operation> = BTreeMap::new();
        for (k, v) in map {
            let key = match k {
                serde_yaml::Value::Number(n) => n.to_string(),
                serde_yaml::Value::String(s) => s.clone(),
                other => return Err(bad(format!("{dataset}: unexpected key {other:?}"))),
            };
            if key == "max_pts" {
                max_pts =
                    Some(v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                        bad(format!("{dataset}.max_pts must be a positive integer"))
                    })?);
                continue;
            }
            let Ok(n) = key.parse::<u64>() else {
                // gt_url and the like: the track's bookkeeping.
                continue;
            };
            let raw: RawStep = serde_yaml::from_value(v.clone())
                .map_err(|e| bad(format!("{dataset} step {n}: {e}")))?;
            let op = step(&raw).map_err(|m| bad(format!("{dataset} step {n}: {m}")))?;
            numbered.insert(n, op);
        }
        let max_pts = max_pts.ok_or_else(|| bad(format!("{dataset}: max_pts is missing")))?;
        if numbered.is_empty() {
            return Err(bad(format!("{dataset}: no numbered steps")));
        }
        let book = Runbook {
            dataset: dataset.to_string(),
            max_pts,
            steps: numbered.into_values().collect(),
        };
        book.check_live(origin)?;
        Ok(book)
    }

    /// Simulates the live set: deletes must name live ids, inserts new ones, and the live
    /// count must stay within `max_pts`.
    fn check_live(&self, origin: &Path) -> Result<()> {
        let mut live = std::collections::HashSet::new();
        for (i, op) in self.steps.iter().enumerate() {
            let bad = |m: String| LabError::format(origin, format!("step {}: {m}", i + 1));
            match *op {
                Operation::Insert { start, end } => {
                    for id in start..end {
                        if !live.insert(id) {
                            return Err(bad(format!("inserts id {id}, which is already live")));
                        }
                    }
                }
                Operation::Delete { start, end } => {
                    for id in start..end {
                        if !live.remove(&id) {
                            return Err(bad(format!("deletes id {id}, which is not live")));
                        }
                    }
                }
                Operation::Replace {
                    tags_start,
                    tags_end,
                    ..
                } => {
                    if let Some(id) = (tags_start..tags_end).find(|id| !live.contains(id)) {
                        return Err(bad(format!("replaces id {id}, which is not live")));
                    }
                }
                Operation::Search => {}
            }
            if live.len() as u64 > self.max_pts {
                return Err(bad(format!(
                    "{} points live, over max_pts {}",
                    live.len(),
                    self.max_pts
                )));
            }
        }
        Ok(())
    }

    /// Highest base row any step reads, plus one.
    pub fn rows_needed(&self) -> u64 {
        self.steps
            .iter()
            .map(|op| match *op {
                Operation::Insert { end, .. } => end,
                Operation::Replace { ids_end, .. } => ids_end,
                _ => 0,
            })
            .max()
            .unwrap_or(0)
    }
}

fn step(raw: &RawStep) -> std::result::Result<Operation, String> {
    let range = |a: Option<u64>, b: Option<u64>, what: &str| match (a, b) {
        (Some(a), Some(b)) if a < b => Ok((a, b)),
        (Some(a), Some(b)) => Err(format!("{what}: start {a} is not below end {b}")),
        _ => Err(format!("{what} needs both a start and an end")),
    };
    match raw.operation.as_str() {
        "insert" => {
            let (start, end) = range(raw.start, raw.end, "insert")?;
            Ok(Operation::Insert { start, end })
        }
        "delete" => {
            let (start, end) = range(raw.start, raw.end, "delete")?;
            Ok(Operation::Delete { start, end })
        }
        "replace" => {
            let (tags_start, tags_end) = range(raw.tags_start, raw.tags_end, "replace tags")?;
            let (ids_start, ids_end) = range(raw.ids_start, raw.ids_end, "replace ids")?;
            if tags_end - tags_start != ids_end - ids_start {
                return Err(format!(
                    "replace: {} tags but {} ids",
                    tags_end - tags_start,
                    ids_end - ids_start
                ));
            }
            Ok(Operation::Replace {
                tags_start,
                tags_end,
                ids_start,
                ids_end,
            })
        }
        "search" => Ok(Operation::Search),
        other => Err(format!(
            "unknown operation {other:?} (expected insert, delete, replace or search)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOK: &str = "
small:
  max_pts: 100
  1: { operation: insert, start: 0, end: 60 }
  2: { operation: search }
  3: { operation: delete, start: 0, end: 30 }
  4: { operation: replace, tags_start: 30, tags_end: 40, ids_start: 60, ids_end: 70 }
  5: { operation: 'insert', start: 70, end: 100 }
  6: { operation: search }
  gt_url: https://example.invalid/gt
other:
  max_pts: 1
  1: { operation: search }
";

    fn parse(text: &str) -> Result<Runbook> {
        Runbook::parse(text, Path::new("rb.yaml"), "small")
    }

    #[test]
    fn a_track_runbook_parses_in_step_order() {
        let b = parse(BOOK).unwrap();
        assert_eq!(b.max_pts, 100);
        assert_eq!(b.steps.len(), 6);
        assert_eq!(b.steps[0], Operation::Insert { start: 0, end: 60 });
        assert_eq!(b.steps[5], Operation::Search);
        assert_eq!(b.rows_needed(), 100);
    }

    #[test]
    fn bad_runbooks_say_what_and_where() {
        let e = |t: &str| parse(t).unwrap_err().to_string();
        assert!(
            e(&BOOK.replace("operation: search }\n  3", "operation: serch }\n  3"))
                .contains("step 2: unknown operation \"serch\"")
        );
        assert!(e(&BOOK.replace("start: 0, end: 30", "start: 30, end: 0")).contains("not below"));
        assert!(e(&BOOK.replace("max_pts: 100", "max_pts: 50")).contains("over max_pts 50"));
        assert!(e(&BOOK.replace("start: 0, end: 30", "start: 0, end: 61"))
            .contains("deletes id 60, which is not live"));
        assert!(e(&BOOK.replace("ids_end: 70", "ids_end: 75")).contains("10 tags but 15 ids"));
        assert!(
            e(&BOOK.replace("end: 30 }", "end: 30, stop: 3 }")).contains("unknown field `stop`")
        );
        assert!(Runbook::parse(BOOK, Path::new("rb.yaml"), "nope")
            .unwrap_err()
            .to_string()
            .contains("the file has: other, small"));
    }
}
