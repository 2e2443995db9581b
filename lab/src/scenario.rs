//! Scenario files: our own YAML format for a drift experiment. A scenario names a data source
//! (a generated mixture that drifts, or vector files), the engine settings, the steps to replay
//! and the baselines to run beside the index on the same steps.
//!
//! ```yaml
//! name: drifting-clusters
//! k: 10
//! data:
//!   clusters: { dim: 32, count: 16, speed: 1.0, skew: 0.5,
//!               births: [{ at: 4, count: 4 }], deaths: [{ at: 6, count: 4 }] }
//! engine: { target_bucket_size: 128 }          # drift_engine::IndexSettings
//! steps:
//!   - insert: 20000
//!   - repeat: { times: 5, steps: [ { drift: 1.0 }, { insert: 5000 }, { search: 200 } ] }
//!   - delete: { oldest: 0.5 }
//!   - search: 200
//! baselines: [brute_force, static_ivf, v1, hnswlib, faiss_ivf_sq8]
//! peers: { hnswlib: { M: 16, ef: 64 }, faiss_ivf_sq8: { nprobe: 16 } }   # optional knobs
//! sweep: { target_confidence: [0.8, 0.9, 0.95, 0.99] }
//! ```
//!
//! Parsing rejects unknown keys and out-of-range values with the line and the reason.

use std::path::{Path, PathBuf};

use drift_engine::{IndexSettings, Metric, PolicyKind, SearchOverrides};
use serde::{Deserialize, Serialize};

use crate::datasets::ClusterEvent;
use crate::error::{LabError, Result};

/// A whole scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name; names the output folder.
    pub name: String,
    /// What the scenario shows.
    #[serde(default)]
    pub description: String,
    /// Neighbours per query.
    #[serde(default = "default_k")]
    pub k: Positive,
    /// Distance metric.
    #[serde(default)]
    pub metric: Metric,
    /// Seed of every random choice (data, queries, deletions).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Where vectors come from.
    #[serde(with = "serde_yaml::with::singleton_map_recursive")]
    pub data: DataSpec,
    /// Settings of the index under test (engine defaults for what is left out).
    #[serde(default)]
    pub engine: IndexSettings,
    /// How the runner drives the engine.
    #[serde(default)]
    pub run: RunOptions,
    /// What happens, in order.
    #[serde(with = "serde_yaml::with::singleton_map_recursive")]
    pub steps: Vec<Step>,
    /// Reference systems run on the same steps.
    #[serde(default)]
    pub baselines: Vec<BaselineKind>,
    /// Settings of the peer baselines, by name (`hnswlib: { M: 16, ef_construction: 200,
    /// ef: 64 }`, `faiss_ivf_sq8: { nlist: 256, nprobe: 16, retrain: false }`).
    #[serde(default)]
    pub peers: std::collections::BTreeMap<String, serde_json::Value>,
    /// Named variants of the index under test.
    #[serde(default)]
    pub variants: Vec<Variant>,
    /// Search settings swept over the index under test (each value is one more system).
    #[serde(default)]
    pub sweep: Sweep,
}

fn default_k() -> Positive {
    Positive(10)
}
fn default_seed() -> u64 {
    42
}

/// A count that must be at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u64")]
pub struct Positive(pub usize);

impl TryFrom<i64> for Positive {
    type Error = String;
    fn try_from(v: i64) -> std::result::Result<Self, String> {
        if v >= 1 {
            Ok(Positive(v as usize))
        } else {
            Err(format!("must be at least 1, got {v}"))
        }
    }
}

impl From<Positive> for u64 {
    fn from(p: Positive) -> u64 {
        p.0 as u64
    }
}

/// A share in (0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Fraction(pub f64);

impl TryFrom<f64> for Fraction {
    type Error = String;
    fn try_from(v: f64) -> std::result::Result<Self, String> {
        if v > 0.0 && v <= 1.0 {
            Ok(Fraction(v))
        } else {
            Err(format!("must be a fraction in (0, 1], got {v}"))
        }
    }
}

impl From<Fraction> for f64 {
    fn from(f: Fraction) -> f64 {
        f.0
    }
}

/// A finite number >= 0.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct NonNegative(pub f64);

impl TryFrom<f64> for NonNegative {
    type Error = String;
    fn try_from(v: f64) -> std::result::Result<Self, String> {
        if v.is_finite() && v >= 0.0 {
            Ok(NonNegative(v))
        } else {
            Err(format!("must be a finite number >= 0, got {v}"))
        }
    }
}

impl From<NonNegative> for f64 {
    fn from(f: NonNegative) -> f64 {
        f.0
    }
}

/// Where vectors come from: exactly one of the two.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum DataSpec {
    /// Generated Gaussian clusters that move, appear and vanish.
    Clusters(ClusterSpec),
    /// Vector files: inserts take base rows in order, searches take query rows in order.
    Files(FileSpec),
}

/// The generated mixture (see [`crate::datasets::Mixture`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// Dimension.
    pub dim: Positive,
    /// Clusters alive at time 0.
    pub count: Positive,
    /// Standard deviation of centres around the origin.
    #[serde(default = "default_centre_spread")]
    pub centre_spread: NonNegative,
    /// Standard deviation of points around their centre.
    #[serde(default = "default_point_spread")]
    pub point_spread: NonNegative,
    /// Distance each centre travels per unit of time (`drift` steps advance time).
    #[serde(default)]
    pub speed: NonNegative,
    /// Zipf exponent of the cluster weights (0: all equally likely).
    #[serde(default)]
    pub skew: NonNegative,
    /// Clusters that appear later.
    #[serde(default)]
    pub births: Vec<ClusterEvent>,
    /// Clusters that vanish (oldest first).
    #[serde(default)]
    pub deaths: Vec<ClusterEvent>,
}

fn default_centre_spread() -> NonNegative {
    NonNegative(10.0)
}
fn default_point_spread() -> NonNegative {
    NonNegative(1.0)
}

/// Vector files (relative paths are relative to the scenario file).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Base vectors (.fvecs, .bvecs, .fbin, .u8bin).
    pub base: PathBuf,
    /// Query vectors.
    pub queries: PathBuf,
}

/// How the runner drives the engine.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunOptions {
    /// Rows per write call.
    pub batch: Positive,
    /// Flush L0 into buckets after every write step and only then (the engine's flush
    /// thresholds are lifted, so runs repeat), or leave it to the engine's thresholds.
    pub flush_each_step: bool,
    /// Maintenance passes the index runs after every write step (self-healing); explicit
    /// `maintain` steps add more.
    pub heal_passes: usize,
    /// Let the engine's janitor run maintenance in the background as well.
    pub background: bool,
    /// Path of writes and searches (the command line's `--via` wins).
    pub via: Via,
}

/// How writes reach the indexes and searches are asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// Engine API calls in process.
    #[default]
    Direct,
    /// Writes through a Kafka topic and the sink, searches through SQL.
    Kafka,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            batch: Positive(1000),
            flush_each_step: true,
            heal_passes: 64,
            background: false,
            via: Via::Direct,
        }
    }
}

/// One step of a scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Step {
    /// Insert this many new vectors drawn from the current distribution.
    Insert(Positive),
    /// Delete live vectors.
    Delete(DeleteSpec),
    /// Advance time: generated clusters move, are born and vanish.
    Drift(NonNegative),
    /// Run this many maintenance passes.
    Maintain(Positive),
    /// Search this many queries drawn from the current distribution.
    Search(Positive),
    /// Repeat a block of steps.
    Repeat(Repeat),
}

/// Which live vectors a delete step removes: exactly one of the keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum DeleteSpec {
    /// A random share of the live vectors.
    Fraction(Fraction),
    /// The oldest share of the live vectors.
    Oldest(Fraction),
    /// Ids in `[start, end)`.
    Range([u64; 2]),
}

/// A block of steps run several times.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repeat {
    /// How many times.
    pub times: Positive,
    /// The block.
    pub steps: Vec<Step>,
}

/// Reference systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineKind {
    /// Exact search over the live set.
    BruteForce,
    /// The same index with maintenance off: a static IVF index.
    StaticIvf,
    /// The design paper's first version: linear density in probe scoring and merges.
    V1,
    /// hnswlib (the real library, through the peer adapter; deletes by `mark_deleted`).
    Hnswlib,
    /// faiss IVF-SQ8, trained on the first insert (`retrain: true` in its `peers` entry
    /// retrains it on every insert).
    FaissIvfSq8,
    /// faiss IVF-Flat, trained like IVF-SQ8.
    FaissIvfFlat,
}

impl BaselineKind {
    /// Every baseline, in the order of `--baselines` help.
    pub const ALL: [BaselineKind; 6] = [
        BaselineKind::BruteForce,
        BaselineKind::StaticIvf,
        BaselineKind::V1,
        BaselineKind::Hnswlib,
        BaselineKind::FaissIvfSq8,
        BaselineKind::FaissIvfFlat,
    ];

    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            BaselineKind::BruteForce => "brute-force",
            BaselineKind::StaticIvf => "static-ivf",
            BaselineKind::V1 => "v1",
            BaselineKind::Hnswlib => "hnswlib",
            BaselineKind::FaissIvfSq8 => "faiss-ivf-sq8",
            BaselineKind::FaissIvfFlat => "faiss-ivf-flat",
        }
    }

    /// Name in `--baselines` and scenario YAML.
    pub fn key(self) -> &'static str {
        match self {
            BaselineKind::BruteForce => "brute_force",
            BaselineKind::StaticIvf => "static_ivf",
            BaselineKind::V1 => "v1",
            BaselineKind::Hnswlib => "hnswlib",
            BaselineKind::FaissIvfSq8 => "faiss_ivf_sq8",
            BaselineKind::FaissIvfFlat => "faiss_ivf_flat",
        }
    }

    /// The baseline called `key` (`--baselines` syntax), or an error listing the names.
    pub fn parse(key: &str) -> Result<BaselineKind> {
        BaselineKind::ALL
            .into_iter()
            .find(|b| b.key() == key)
            .ok_or_else(|| {
                let names: Vec<&str> = BaselineKind::ALL.iter().map(|b| b.key()).collect();
                LabError::Invalid(format!(
                    "unknown baseline '{key}' (expected one of {} or none)",
                    names.join(", ")
                ))
            })
    }

    /// The peer library this baseline runs, if it is one.
    pub fn peer(self) -> Option<crate::peer::PeerKind> {
        use crate::peer::PeerKind;
        match self {
            BaselineKind::Hnswlib => Some(PeerKind::Hnswlib),
            BaselineKind::FaissIvfSq8 => Some(PeerKind::FaissIvfSq8),
            BaselineKind::FaissIvfFlat => Some(PeerKind::FaissIvfFlat),
            _ => None,
        }
    }
}

/// A named variant of the index under test: other settings (a separate index) and/or other
/// search options (searching the same index when the settings are unchanged).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Name in reports.
    pub name: String,
    /// Index settings changed from the scenario's `engine` (same keys).
    #[serde(default)]
    pub engine: Option<serde_yaml::Value>,
    /// Maintenance policy (shorthand for `engine.maintenance.policy`).
    #[serde(default)]
    pub policy: Option<PolicyKind>,
    /// Search options (the engine's keys; the rest keep the collection defaults).
    #[serde(default)]
    pub search: SearchOverrides,
}

/// Search options swept over the index under test.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sweep {
    /// Fixed probe counts.
    #[serde(default)]
    pub nprobe: Vec<Positive>,
    /// Target confidences.
    #[serde(default)]
    pub target_confidence: Vec<Fraction>,
    /// Recall targets.
    #[serde(default)]
    pub recall_target: Vec<Fraction>,
}

impl Sweep {
    /// One (name, override) per swept value.
    pub fn points(&self) -> Vec<(String, SearchOverrides)> {
        let mut out = Vec::new();
        for n in &self.nprobe {
            out.push((
                format!("nprobe={}", n.0),
                SearchOverrides {
                    nprobe: Some(n.0),
                    ..Default::default()
                },
            ));
        }
        for c in &self.target_confidence {
            out.push((
                format!("confidence={}", c.0),
                SearchOverrides {
                    target_confidence: Some(c.0 as f32),
                    ..Default::default()
                },
            ));
        }
        for r in &self.recall_target {
            out.push((
                format!("recall_target={}", r.0),
                SearchOverrides {
                    recall_target: Some(r.0 as f32),
                    ..Default::default()
                },
            ));
        }
        out
    }
}

impl Scenario {
    /// Parses a scenario from YAML text; `origin` names the source in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Scenario> {
        let s: Scenario = serde_yaml::from_str(text).map_err(|e| yaml_error(origin, &e))?;
        s.check(origin)?;
        Ok(s)
    }

    /// Reads and parses a scenario file; relative data paths become relative to its folder.
    pub fn load(path: &Path) -> Result<Scenario> {
        let text = std::fs::read_to_string(path).map_err(|e| LabError::io(path, e))?;
        let mut s = Scenario::parse(&text, path)?;
        if let DataSpec::Files(f) = &mut s.data {
            let dir = path.parent().unwrap_or(Path::new("."));
            for p in [&mut f.base, &mut f.queries] {
                if p.is_relative() {
                    *p = dir.join(&*p);
                }
            }
        }
        Ok(s)
    }

    /// Checks what serde cannot: names, settings, variants.
    fn check(&self, origin: &Path) -> Result<()> {
        let bad = |m: String| Err(LabError::format(origin, m));
        if self.name.trim().is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return bad(format!(
                "name {:?} must be non-empty letters, digits, '-', '_' or '.'",
                self.name
            ));
        }
        if self.steps.is_empty() {
            return bad("steps: the scenario has no steps".into());
        }
        if !self.steps.iter().any(Step::searches) {
            return bad("steps: no search step, so nothing would be measured".into());
        }
        self.engine
            .validate()
            .map_err(|e| LabError::format(origin, format!("engine: {e}")))?;
        let mut names = std::collections::HashSet::new();
        names.insert("drift".to_string());
        for b in &self.baselines {
            if !names.insert(b.name().to_string()) {
                return bad(format!("baselines: {} is listed twice", b.name()));
            }
        }
        for (name, params) in &self.peers {
            let listed = self
                .baselines
                .iter()
                .any(|b| b.peer().is_some() && b.key() == name);
            if !listed {
                return bad(format!(
                    "peers: {name} is not a peer baseline of this scenario (peers: hnswlib, \
                     faiss_ivf_sq8, faiss_ivf_flat, each listed in baselines)"
                ));
            }
            if !params.is_object() {
                return bad(format!("peers: {name} must map setting names to values"));
            }
        }
        for (i, v) in self.variants.iter().enumerate() {
            if !names.insert(v.name.clone()) {
                return bad(format!("variants[{i}]: the name {:?} is taken", v.name));
            }
            self.variant_settings(v).map_err(|e| {
                LabError::format(origin, format!("variants[{i}] ({}): {e}", v.name))
            })?;
            v.search.validate().map_err(|e| {
                LabError::format(origin, format!("variants[{i}] ({}): {e}", v.name))
            })?;
        }
        for (name, _) in self.sweep.points() {
            if !names.insert(name.clone()) {
                return bad(format!("sweep: {name} is given twice"));
            }
        }
        Ok(())
    }

    /// The index settings of a variant: the scenario's, with the variant's keys replaced.
    pub fn variant_settings(&self, v: &Variant) -> Result<IndexSettings> {
        let mut settings = match &v.engine {
            None => self.engine.clone(),
            Some(patch) => {
                let mut base = serde_yaml::to_value(&self.engine)
                    .map_err(|e| LabError::Invalid(e.to_string()))?;
                merge_yaml(&mut base, patch);
                serde_yaml::from_value(base)
                    .map_err(|e| LabError::Invalid(format!("engine: {e}")))?
            }
        };
        if let Some(p) = v.policy {
            settings.maintenance.policy = p;
        }
        settings
            .validate()
            .map_err(|e| LabError::Invalid(format!("engine: {e}")))?;
        Ok(settings)
    }

    /// Steps with every `repeat` unrolled.
    pub fn flat_steps(&self) -> Vec<Step> {
        fn unroll(steps: &[Step], out: &mut Vec<Step>) {
            for s in steps {
                match s {
                    Step::Repeat(r) => {
                        for _ in 0..r.times.0 {
                            unroll(&r.steps, out);
                        }
                    }
                    other => out.push(other.clone()),
                }
            }
        }
        let mut out = Vec::new();
        unroll(&self.steps, &mut out);
        out
    }
}

impl Step {
    fn searches(&self) -> bool {
        match self {
            Step::Search(_) => true,
            Step::Repeat(r) => r.steps.iter().any(Step::searches),
            _ => false,
        }
    }
}

/// Replaces keys of `base` by those of `patch`, recursively for nested mappings.
fn merge_yaml(base: &mut serde_yaml::Value, patch: &serde_yaml::Value) {
    match (base, patch) {
        (serde_yaml::Value::Mapping(b), serde_yaml::Value::Mapping(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(slot) => merge_yaml(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

/// A YAML error as `file: line L column C: reason`.
pub(crate) fn yaml_error(origin: &Path, e: &serde_yaml::Error) -> LabError {
    let reason = e.to_string();
    match e.location() {
        Some(loc) => {
            // serde_yaml appends "at line L column C" itself; keep the reason only once.
            let reason = reason
                .split(" at line ")
                .next()
                .unwrap_or(&reason)
                .to_string();
            LabError::format(
                origin,
                format!("line {} column {}: {reason}", loc.line(), loc.column()),
            )
        }
        None => LabError::format(origin, reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Scenario> {
        Scenario::parse(text, Path::new("test.yaml"))
    }

    const VALID: &str = "
name: small
k: 5
data:
  clusters: { dim: 8, count: 4, speed: 0.5, skew: 1.0, births: [{ at: 1, count: 2 }] }
engine: { target_bucket_size: 64, maintenance: { merge_below: 0.2 } }
steps:
  - insert: 1000
  - repeat: { times: 2, steps: [ { drift: 1.0 }, { insert: 100 }, { search: 10 } ] }
  - delete: { fraction: 0.5 }
  - delete: { range: [0, 10] }
  - maintain: 4
  - search: 20
baselines: [brute_force, static_ivf, v1]
variants:
  - { name: big, engine: { target_bucket_size: 128 } }
  - { name: probe4, search: { nprobe: 4 } }
sweep: { target_confidence: [0.8, 0.9] }
";

    #[test]
    fn a_valid_scenario_parses_and_unrolls() {
        let s = parse(VALID).unwrap();
        assert_eq!(s.k.0, 5);
        assert_eq!(s.engine.target_bucket_size, 64);
        assert_eq!(s.engine.maintenance.merge_below, 0.2);
        let flat = s.flat_steps();
        assert_eq!(flat.len(), 1 + 2 * 3 + 4);
        assert!(matches!(flat[1], Step::Drift(NonNegative(1.0))));
        let big = s.variant_settings(&s.variants[0]).unwrap();
        assert_eq!(big.target_bucket_size, 128);
        assert_eq!(big.maintenance.merge_below, 0.2, "unchanged keys are kept");
        assert_eq!(s.sweep.points().len(), 2);
    }

    fn error_of(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_line_and_reason() {
        let e = error_of(&VALID.replace("k: 5", "k: 5\nkk: 3"));
        assert!(
            e.contains("line 4") && e.contains("unknown field `kk`"),
            "{e}"
        );
        let e = error_of(&VALID.replace("fraction: 0.5", "fraction: 1.5"));
        assert!(
            e.contains("line 10") && e.contains("fraction in (0, 1]"),
            "{e}"
        );
        let e = error_of(&VALID.replace("insert: 1000", "insert: 0"));
        assert!(e.contains("line 8") && e.contains("at least 1"), "{e}");
        let e = error_of(&VALID.replace("maintain: 4", "maintian: 4"));
        assert!(e.contains("line 12") && e.contains("maintian"), "{e}");
        let e = error_of(&VALID.replace("static_ivf", "static"));
        assert!(
            e.contains("line 14") && e.contains("unknown variant `static`"),
            "{e}"
        );
        let e = error_of(&VALID.replace("target_bucket_size: 64", "target_bucket_sise: 64"));
        assert!(
            e.contains("line 6") && e.contains("target_bucket_sise"),
            "{e}"
        );
    }

    #[test]
    fn semantic_errors_name_the_part() {
        let e = error_of(&VALID.replace("target_bucket_size: 128", "target_bucket_size: 2"));
        assert!(
            e.contains("variants[0] (big)") && e.contains("target_bucket_size"),
            "{e}"
        );
        let e = error_of(&VALID.replace("name: probe4", "name: big"));
        assert!(e.contains("taken"), "{e}");
        let e = error_of(&VALID.replace("name: small", "name: 'a b'"));
        assert!(e.contains("name"), "{e}");
        let e = error_of(
            "name: x\ndata: { clusters: { dim: 4, count: 2 } }\nsteps: [ { insert: 10 } ]\n",
        );
        assert!(e.contains("no search step"), "{e}");
        let e = error_of("name: x\ndata: { clusters: { dim: 4, count: 2 } }\n");
        assert!(e.contains("missing field `steps`"), "{e}");
    }
}
