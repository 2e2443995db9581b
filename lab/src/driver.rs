//! Drivers: what a run does, one step at a time. A scenario (generated drifting clusters or
//! vector files, steps from YAML) and a Big-ANN runbook both become a sequence of [`Action`]s.

use std::path::Path;

use drift_engine::{Record, Write};
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::datasets::{Mixture, MixtureSpec};
use crate::error::{LabError, Result};
use crate::live::Live;
use crate::runbook::{Operation, Runbook};
use crate::scenario::{DataSpec, DeleteSpec, Scenario, Step};
use crate::vecfile::read_all;

/// What one step does, with the data it needs.
#[derive(Debug, Clone)]
pub enum Action {
    /// Upserts and deletes, in order.
    Write {
        /// Operation name.
        op: &'static str,
        /// Description.
        detail: String,
        /// The writes.
        writes: Vec<Write>,
    },
    /// Time moves on (no system work).
    Drift(f32),
    /// Maintenance passes.
    Maintain(usize),
    /// Queries, row-major.
    Search(Vec<f32>),
}

/// Produces the actions of a run one at a time.
pub trait Driver {
    /// Name of the run (scenario or runbook data set).
    fn name(&self) -> &str;
    /// Dimension.
    fn dim(&self) -> usize;
    /// Steps in all.
    fn len(&self) -> usize;
    /// True when there are no steps.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The action of step `i` given the live set.
    fn action(&mut self, i: usize, live: &Live) -> Result<Action>;
    /// Scenario time (0 for runbooks).
    fn time(&self) -> f32 {
        0.0
    }
}

/// Drives a scenario: generated or file data, steps unrolled.
pub struct ScenarioDriver {
    name: String,
    steps: Vec<Step>,
    data: Data,
    query_rng: rand::rngs::StdRng,
    rng: rand::rngs::StdRng,
    time: f32,
    next_id: u64,
}

enum Data {
    Mixture(Mixture),
    Files {
        base: Vec<f32>,
        queries: Vec<f32>,
        dim: usize,
        next_row: usize,
        next_query: usize,
    },
}

impl ScenarioDriver {
    /// Prepares the data of `s` (reads its files).
    pub fn new(s: &Scenario) -> Result<ScenarioDriver> {
        let data = match &s.data {
            DataSpec::Clusters(c) => Data::Mixture(Mixture::new(&MixtureSpec {
                dim: c.dim.0,
                clusters: c.count.0,
                centre_spread: c.centre_spread.0 as f32,
                point_spread: c.point_spread.0 as f32,
                speed: c.speed.0 as f32,
                skew: c.skew.0 as f32,
                births: c.births.clone(),
                deaths: c.deaths.clone(),
                seed: s.seed,
            })),
            DataSpec::Files(f) => {
                let (base, dim) = read_all(&f.base)?;
                let (queries, qdim) = read_all(&f.queries)?;
                if dim != qdim {
                    return Err(LabError::Invalid(format!(
                        "{} has dimension {dim} but {} has {qdim}",
                        f.base.display(),
                        f.queries.display()
                    )));
                }
                Data::Files {
                    base,
                    queries,
                    dim,
                    next_row: 0,
                    next_query: 0,
                }
            }
        };
        Ok(ScenarioDriver {
            name: s.name.clone(),
            steps: s.flat_steps(),
            data,
            query_rng: rand::rngs::StdRng::seed_from_u64(s.seed ^ 0x51ab_0001),
            rng: rand::rngs::StdRng::seed_from_u64(s.seed ^ 0x51ab_0002),
            time: 0.0,
            next_id: 0,
        })
    }

    fn draw(&mut self, n: usize, queries: bool) -> Result<Vec<f32>> {
        let t = self.time;
        match &mut self.data {
            Data::Mixture(m) => {
                let rng = if queries {
                    &mut self.query_rng
                } else {
                    &mut self.rng
                };
                m.sample(t, n, rng)
                    .ok_or_else(|| LabError::Invalid(format!("no cluster is alive at time {t}")))
            }
            Data::Files {
                base,
                queries: qs,
                dim,
                next_row,
                next_query,
            } => {
                let dim = *dim;
                if queries {
                    let rows = qs.len() / dim;
                    let mut out = Vec::with_capacity(n * dim);
                    for _ in 0..n {
                        let r = *next_query % rows;
                        out.extend_from_slice(&qs[r * dim..(r + 1) * dim]);
                        *next_query += 1;
                    }
                    Ok(out)
                } else {
                    let rows = base.len() / dim;
                    if *next_row + n > rows {
                        return Err(LabError::Invalid(format!(
                            "the base file has {rows} rows; the scenario asks for row {}",
                            *next_row + n
                        )));
                    }
                    let out = base[*next_row * dim..(*next_row + n) * dim].to_vec();
                    *next_row += n;
                    Ok(out)
                }
            }
        }
    }
}

impl Driver for ScenarioDriver {
    fn name(&self) -> &str {
        &self.name
    }
    fn dim(&self) -> usize {
        match &self.data {
            Data::Mixture(m) => m.dim(),
            Data::Files { dim, .. } => *dim,
        }
    }
    fn len(&self) -> usize {
        self.steps.len()
    }
    fn time(&self) -> f32 {
        self.time
    }
    fn action(&mut self, i: usize, live: &Live) -> Result<Action> {
        let dim = self.dim();
        Ok(match self.steps[i].clone() {
            Step::Insert(n) => {
                let data = self.draw(n.0, false)?;
                let first = self.next_id;
                let writes = data
                    .chunks_exact(dim)
                    .map(|v| {
                        let w = Write::Upsert(Record::new(self.next_id, v.to_vec()));
                        self.next_id += 1;
                        w
                    })
                    .collect();
                Action::Write {
                    op: "insert",
                    detail: format!("{} vectors, ids {first}..{}", n.0, self.next_id),
                    writes,
                }
            }
            Step::Delete(spec) => {
                let (ids, detail): (Vec<u64>, String) = match spec {
                    DeleteSpec::Fraction(f) => {
                        let mut all = live.ids_by_age();
                        all.shuffle(&mut self.rng);
                        let n = (all.len() as f64 * f.0).round() as usize;
                        all.truncate(n);
                        (all, format!("random {:.0}%", f.0 * 100.0))
                    }
                    DeleteSpec::Oldest(f) => {
                        let mut all = live.ids_by_age();
                        let n = (all.len() as f64 * f.0).round() as usize;
                        all.truncate(n);
                        (all, format!("oldest {:.0}%", f.0 * 100.0))
                    }
                    DeleteSpec::Range([a, b]) => (
                        (a..b).filter(|id| live.contains(*id)).collect(),
                        format!("ids {a}..{b}"),
                    ),
                };
                let detail = format!("{detail}: {} vectors", ids.len());
                Action::Write {
                    op: "delete",
                    detail,
                    writes: ids.into_iter().map(Write::Delete).collect(),
                }
            }
            Step::Drift(t) => {
                self.time += t.0 as f32;
                Action::Drift(t.0 as f32)
            }
            Step::Maintain(p) => Action::Maintain(p.0),
            Step::Search(n) => Action::Search(self.draw(n.0, true)?),
            Step::Repeat(_) => unreachable!("repeats are unrolled"),
        })
    }
}

/// Drives a Big-ANN runbook over a base and a query file.
pub struct RunbookDriver {
    book: Runbook,
    base: Vec<f32>,
    queries: Vec<f32>,
    dim: usize,
}

impl RunbookDriver {
    /// Reads the files and checks that the base file covers every row the runbook reads.
    pub fn new(book: Runbook, base: &Path, queries: &Path) -> Result<RunbookDriver> {
        let (b, dim) = read_all(base)?;
        let (q, qdim) = read_all(queries)?;
        if dim != qdim {
            return Err(LabError::Invalid(format!(
                "{} has dimension {dim} but {} has {qdim}",
                base.display(),
                queries.display()
            )));
        }
        let rows = (b.len() / dim) as u64;
        if book.rows_needed() > rows {
            return Err(LabError::Invalid(format!(
                "the runbook reads base rows up to {} but {} has {rows}",
                book.rows_needed(),
                base.display()
            )));
        }
        Ok(RunbookDriver {
            book,
            base: b,
            queries: q,
            dim,
        })
    }

    fn row(&self, r: u64) -> Vec<f32> {
        let r = r as usize;
        self.base[r * self.dim..(r + 1) * self.dim].to_vec()
    }
}

impl Driver for RunbookDriver {
    fn name(&self) -> &str {
        &self.book.dataset
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn len(&self) -> usize {
        self.book.steps.len()
    }
    fn action(&mut self, i: usize, _live: &Live) -> Result<Action> {
        let op = self.book.steps[i];
        Ok(match op {
            Operation::Insert { start, end } => Action::Write {
                op: "insert",
                detail: format!("rows {start}..{end}"),
                writes: (start..end)
                    .map(|r| Write::Upsert(Record::new(r, self.row(r))))
                    .collect(),
            },
            Operation::Delete { start, end } => Action::Write {
                op: "delete",
                detail: format!("ids {start}..{end}"),
                writes: (start..end).map(Write::Delete).collect(),
            },
            Operation::Replace {
                tags_start,
                tags_end,
                ids_start,
                ..
            } => Action::Write {
                op: "replace",
                detail: format!("ids {tags_start}..{tags_end} from rows {ids_start}.."),
                writes: (tags_start..tags_end)
                    .map(|t| Write::Upsert(Record::new(t, self.row(ids_start + (t - tags_start)))))
                    .collect(),
            },
            Operation::Search => Action::Search(self.queries.clone()),
        })
    }
}
