//! Collection configuration and per-query search options: plain data, validated once at the edge.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How distance between two vectors is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Squared Euclidean distance (reported squared, as faiss does).
    #[default]
    L2,
    /// Cosine distance `1 - cos(a, b)`; vectors are normalized on the way in.
    Cosine,
    /// Inner product, reported as `-<a, b>` so that smaller is nearer.
    #[serde(rename = "ip")]
    InnerProduct,
}

impl Metric {
    /// Parses `l2`, `cosine` or `ip` (also `inner_product`, `dot`).
    pub fn parse(s: &str) -> Result<Metric> {
        match s.to_ascii_lowercase().as_str() {
            "l2" | "euclidean" => Ok(Metric::L2),
            "cosine" | "cos" | "angular" => Ok(Metric::Cosine),
            "ip" | "inner_product" | "dot" => Ok(Metric::InnerProduct),
            other => Err(Error::InvalidArgument(format!(
                "unknown metric '{other}' (expected l2, cosine or ip)"
            ))),
        }
    }

    /// The short name used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            Metric::L2 => "l2",
            Metric::Cosine => "cosine",
            Metric::InnerProduct => "ip",
        }
    }

    /// True when vectors are stored normalized and compared with L2 internally.
    pub(crate) fn uses_l2_internally(self) -> bool {
        !matches!(self, Metric::InnerProduct)
    }
}

/// How SQ8 distances are computed during a bucket scan (both give the same sums).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AdcKernel {
    /// Per-dimension table of 256 partial distances, summed by table lookups (gathers).
    Lut,
    /// The same sum in closed form: a u8 x f32 dot product plus a per-row term stored at
    /// encode time. No table to build per bucket; several times faster.
    #[default]
    Factored,
}

/// How bucket selection weighs a bucket's density against its centroid distance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Scoring {
    /// Drift-aware: `R = 1 - exp(-live / tau)`, which saturates once a bucket holds a few
    /// tau of rows, so only near-empty "zombie" buckets are discounted.
    #[default]
    Reliability,
    /// The design paper's first version ("V1"): `R = live / target_bucket_size` (capped at 1),
    /// linear in density, so a half-emptied bucket counts half.
    Linear,
}

impl Scoring {
    /// Parses `reliability` or `linear`.
    pub fn parse(s: &str) -> Result<Scoring> {
        match s.to_ascii_lowercase().as_str() {
            "reliability" => Ok(Scoring::Reliability),
            "linear" => Ok(Scoring::Linear),
            other => Err(Error::InvalidArgument(format!(
                "unknown scoring '{other}' (expected reliability or linear)"
            ))),
        }
    }

    /// The name used in files and options.
    pub fn name(self) -> &'static str {
        match self {
            Scoring::Reliability => "reliability",
            Scoring::Linear => "linear",
        }
    }
}

/// Index settings of a collection. Every field has a sensible default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexSettings {
    /// Vectors in the active memtable buffer before it is frozen (and HNSW-indexed).
    pub memtable_capacity: usize,
    /// Frozen vectors waiting for flush that trigger an automatic flush into L1 once the
    /// collection is trained (before that, the first flush waits for `auto_train_min` rows).
    /// Small enough that searches do not slow down under steady ingest: unflushed rows are
    /// searched by memtable, not by bucket.
    pub flush_threshold: usize,
    /// Frozen rows waiting for flush above which writers that can wait (the Kafka sink)
    /// pause; see [`crate::Collection::flush_backlog`]. Never below `flush_threshold`.
    pub max_flush_backlog: usize,
    /// Bucket size the index aims for; k-means picks `n / target_bucket_size` centroids.
    pub target_bucket_size: usize,
    /// Vectors that must have arrived before centroids are trained automatically.
    pub auto_train_min: usize,
    /// Largest number of vectors used as the k-means training sample.
    pub train_sample: usize,
    /// HNSW out-degree on the upper layers (layer 0 uses twice this).
    pub hnsw_m: usize,
    /// HNSW candidate list size during construction.
    pub hnsw_ef_construction: usize,
    /// Default search options of the collection.
    pub search: SearchDefaults,
    /// Recall calibration and the live recall monitor.
    pub recall: RecallSettings,
    /// When and how much the index reshapes itself.
    pub maintenance: MaintenanceSettings,
    /// Where segments go and how much of them is cached.
    pub storage: StorageSettings,
}

/// Storage of the L1 tier: the object store and its caches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Object store for segments, tombstones and manifests: `fs:///dir`, `memory://name` or
    /// `s3://bucket/prefix?endpoint=URL&region=R`; the collection's name is appended. Empty:
    /// the collection's own directory.
    pub uri: String,
    /// Memory budget for decoded cold vectors (re-rank reads), in bytes.
    pub block_cache_bytes: u64,
    /// Disk budget for local copies of remote objects, in bytes.
    pub disk_cache_bytes: u64,
    /// Re-rank from plain f32 copies of stored vectors, memory-mapped from the collection's
    /// local `vectors/` directory (page cache, outside the heap), rather than from decoded
    /// ALP blocks in the block cache (heap). Costs 4 bytes per dimension per row of local
    /// disk.
    pub mapped_vectors: bool,
    /// Chunks (one base, then deltas) a bucket may hold before the next append rebuilds it
    /// into a single new base.
    pub max_chunks: usize,
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            uri: String::new(),
            block_cache_bytes: 256 << 20,
            disk_cache_bytes: 4 << 30,
            mapped_vectors: true,
            max_chunks: 8,
        }
    }
}

impl StorageSettings {
    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        if self.max_chunks == 0 {
            return Err(Error::InvalidArgument(
                "storage.max_chunks must be at least 1".into(),
            ));
        }
        let uri = self.uri.as_str();
        if !(uri.is_empty()
            || uri.starts_with("fs://")
            || uri.starts_with("memory://")
            || uri.starts_with("s3://"))
        {
            return Err(Error::InvalidArgument(format!(
                "storage.uri {uri:?} must start with fs://, memory:// or s3://"
            )));
        }
        Ok(())
    }
}

/// Recall calibration and the live recall monitor (searches by recall target).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecallSettings {
    /// Learn how far the recall estimate must be stretched from the collection's own rows
    /// (after the first flush, then in the background as the index changes).
    pub calibrate: bool,
    /// Most stored rows used as calibration queries per fit.
    pub calibration_queries: usize,
    /// Budget of one fit's exact ground truth, in multiply-adds (queries x rows x dim);
    /// fewer queries are used on large collections (never fewer than 32).
    pub calibration_budget: u64,
    /// Mean recall the calibration aims above each target (beyond one standard error of the
    /// fit's mean).
    pub margin: f32,
    /// Share of searches by recall target re-run exactly in the background (0 = off).
    pub monitor_rate: f64,
    /// Most CPU the monitor may use, as a share of one core over time.
    pub monitor_cpu: f64,
    /// Monitored searches the measured recall is averaged over.
    pub monitor_window: usize,
}

impl Default for RecallSettings {
    fn default() -> Self {
        RecallSettings {
            calibrate: true,
            calibration_queries: 256,
            calibration_budget: 10_000_000_000,
            margin: 0.01,
            monitor_rate: 0.01,
            monitor_cpu: 0.05,
            monitor_window: 1000,
        }
    }
}

impl RecallSettings {
    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if self.calibration_queries == 0 {
            return bad("recall.calibration_queries must be at least 1".into());
        }
        if !(self.margin.is_finite() && (0.0..0.5).contains(&self.margin)) {
            return bad(format!(
                "recall.margin must be in [0, 0.5), got {}",
                self.margin
            ));
        }
        if !(self.monitor_rate.is_finite() && (0.0..=1.0).contains(&self.monitor_rate)) {
            return bad(format!(
                "recall.monitor_rate must be in [0, 1], got {}",
                self.monitor_rate
            ));
        }
        if !(self.monitor_cpu.is_finite() && (0.0..=1.0).contains(&self.monitor_cpu)) {
            return bad(format!(
                "recall.monitor_cpu must be in [0, 1], got {}",
                self.monitor_cpu
            ));
        }
        if self.monitor_window == 0 {
            return bad("recall.monitor_window must be at least 1".into());
        }
        Ok(())
    }
}

impl Default for IndexSettings {
    fn default() -> Self {
        IndexSettings {
            memtable_capacity: 8192,
            flush_threshold: 8192,
            max_flush_backlog: 131072,
            target_bucket_size: 256,
            auto_train_min: 32768,
            train_sample: 65536,
            hnsw_m: 16,
            hnsw_ef_construction: 100,
            search: SearchDefaults::default(),
            recall: RecallSettings::default(),
            maintenance: MaintenanceSettings::default(),
            storage: StorageSettings::default(),
        }
    }
}

/// Which maintenance policy decides what to reshape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PolicyKind {
    /// Split oversized or drifted buckets, scatter-merge urgent ones, compact stale ones.
    #[default]
    Drift,
    /// Only split oversized buckets and compact stale ones (no drift splits, no merges).
    Size,
    /// Never reshape: a static IVF index (the baseline maintenance is measured against).
    Off,
    /// The design paper's first version: split oversized buckets and merge any bucket whose
    /// linear emptiness `1 - live/target` passes `merge_urgency`, whatever its temperature or
    /// stale share; compact stale ones.
    V1,
}

/// Maintenance settings: the thresholds of the policy and the budget of each pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaintenanceSettings {
    /// Policy in charge.
    pub policy: PolicyKind,
    /// Run maintenance passes in the background thread (off for step-by-step runs).
    pub background: bool,
    /// A bucket whose live rows exceed `split_factor * target_bucket_size` is split.
    pub split_factor: f32,
    /// A bucket whose running-mean centroid moved more than `drift_split` radii from where it
    /// was built is split (0 = never split for drift).
    pub drift_split: f32,
    /// Buckets with fewer live rows than `merge_below * target_bucket_size` may be merged.
    pub merge_below: f32,
    /// Scatter-merge once `emptiness / (temperature + eps) + beta * zombie_ratio` exceeds this.
    pub merge_urgency: f32,
    /// Weight of the zombie (stale row) ratio in the urgency.
    pub beta: f32,
    /// Keeps the urgency finite for buckets nobody probes.
    pub eps: f32,
    /// Compact a bucket nobody probes once this share of its stored rows is stale; a hot
    /// one sooner, down to half this share at the mean temperature and above
    /// ([`crate::maintain::LayerView::compact_threshold`]).
    pub compact_ratio: f32,
    /// Neighbouring buckets checked for defectors after a split (default 1: the nearest).
    pub reassign_neighbours: usize,
    /// A neighbour gives up its defectors (and is rewritten) only when they are at least
    /// this share of its rows; 0 (the default) moves every defector. On PyPI MiniLM-384,
    /// moving every defector of the nearest neighbour cut the rows that pass the binary
    /// sketch filter per query by a third (about 10% more searches per second at equal
    /// recall) for 3.0 rows rewritten per insert instead of 1.9; eight neighbours gave the
    /// same cut for 9.7, and 0.1 or 0.3 of eight gave none (README "Measured").
    pub reassign_min_share: f32,
    /// Vectors one pass may write (moved, split or compacted); at least one action runs.
    pub budget: usize,
}

impl Default for MaintenanceSettings {
    fn default() -> Self {
        MaintenanceSettings {
            policy: PolicyKind::Drift,
            background: true,
            split_factor: 2.0,
            drift_split: 1.0,
            merge_below: 0.25,
            merge_urgency: 0.5,
            beta: 1.0,
            eps: 1.0,
            compact_ratio: 0.25,
            reassign_neighbours: 1,
            reassign_min_share: 0.0,
            budget: 16_384,
        }
    }
}

impl MaintenanceSettings {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        let finite = [
            ("split_factor", self.split_factor),
            ("drift_split", self.drift_split),
            ("merge_below", self.merge_below),
            ("merge_urgency", self.merge_urgency),
            ("beta", self.beta),
            ("eps", self.eps),
            ("compact_ratio", self.compact_ratio),
            ("reassign_min_share", self.reassign_min_share),
        ];
        for (name, v) in finite {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!(
                    "maintenance.{name} must be finite and >= 0, got {v}"
                ));
            }
        }
        if self.split_factor < 1.5 {
            return bad(format!(
                "maintenance.split_factor must be at least 1.5 (children must not be merge candidates), got {}",
                self.split_factor
            ));
        }
        if self.merge_below >= 0.5 {
            return bad(format!(
                "maintenance.merge_below must be below 0.5, got {}",
                self.merge_below
            ));
        }
        if self.eps <= 0.0 {
            return bad("maintenance.eps must be above 0".into());
        }
        if self.compact_ratio <= 0.0 || self.compact_ratio > 1.0 {
            return bad(format!(
                "maintenance.compact_ratio must be in (0, 1], got {}",
                self.compact_ratio
            ));
        }
        if self.budget == 0 {
            return bad("maintenance.budget must be at least 1".into());
        }
        Ok(())
    }
}

/// Default values for the per-query [`SearchParams`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchDefaults {
    /// Sharpness of the geometric bucket score `exp(-lambda * d_rel)`, where `d_rel` is the
    /// centroid distance relative to the nearest centroid's (unitless).
    pub lambda: f32,
    /// Density scale of the reliability factor `1 - exp(-count / tau)`; 0 means
    /// `target_bucket_size / 10`.
    pub tau: f32,
    /// Probability mass of bucket scores to cover before the probe stops (0..1].
    pub target_confidence: f32,
    /// Fewest buckets probed per query.
    pub min_probes: usize,
    /// Most buckets probed per query.
    pub max_probes: usize,
    /// Buckets whose centroid distance is within this factor of the nearest are always probed.
    pub guardrail: f32,
    /// Re-rank factor: the best `k * rerank` SQ8 candidates are re-scored exactly; 0 = off.
    pub rerank: usize,
    /// HNSW candidate list size when searching frozen memtables.
    pub ef_search: usize,
    /// SQ8 scan kernel.
    pub adc: AdcKernel,
    /// Density term of the bucket score.
    pub scoring: Scoring,
    /// Recall@k searches aim for when no other option is given (the default mode; `None`
    /// falls back to the bucket-score confidence). Explicit `nprobe` still wins.
    pub recall_target: Option<f32>,
    /// Skip rows whose binary-sketch lower bound shows they cannot enter the candidate pool,
    /// instead of computing every row's SQ8 distance.
    pub prefilter: bool,
}

impl Default for SearchDefaults {
    fn default() -> Self {
        SearchDefaults {
            lambda: 30.0,
            tau: 0.0,
            target_confidence: 0.95,
            min_probes: 2,
            max_probes: 256,
            guardrail: 1.05,
            rerank: 4,
            ef_search: 64,
            adc: AdcKernel::Factored,
            scoring: Scoring::Reliability,
            recall_target: Some(0.95),
            prefilter: true,
        }
    }
}

impl IndexSettings {
    /// Checks every field's range; called when a collection is created.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidArgument(m.to_string()));
        if self.memtable_capacity == 0 {
            return bad("memtable_capacity must be at least 1");
        }
        if self.target_bucket_size < 8 {
            return bad("target_bucket_size must be at least 8");
        }
        if self.hnsw_m < 2 || self.hnsw_m > 128 {
            return bad("hnsw_m must be in 2..=128");
        }
        if self.hnsw_ef_construction < self.hnsw_m {
            return bad("hnsw_ef_construction must be at least hnsw_m");
        }
        if self.train_sample == 0 {
            return bad("train_sample must be at least 1");
        }
        self.maintenance.validate()?;
        self.storage.validate()?;
        self.recall.validate()?;
        self.search.to_params(10).validate()
    }
}

impl SearchDefaults {
    /// Search parameters for `k` results using these defaults.
    pub fn to_params(&self, k: usize) -> SearchParams {
        SearchParams {
            k,
            nprobe: None,
            lambda: self.lambda,
            tau: self.tau,
            target_confidence: self.target_confidence,
            min_probes: self.min_probes,
            max_probes: self.max_probes,
            guardrail: self.guardrail,
            rerank: self.rerank,
            ef_search: self.ef_search,
            adc: self.adc,
            scoring: self.scoring,
            recall_target: self.recall_target,
            prefilter: self.prefilter,
            max_codes: None,
            with_payload: false,
            with_vector: false,
        }
    }
}

/// Options one search may change; `None` keeps the collection's default. The one place
/// that decides how they combine: an explicit `nprobe` wins over everything, and the
/// bucket-score options (`target_confidence`, `lambda`, `tau`, `scoring`) given without a
/// `recall_target` switch the search from the recall target (the default mode) to the
/// bucket-score confidence they tune.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchOverrides {
    /// Probe exactly this many buckets.
    pub nprobe: Option<usize>,
    /// Scan until the calibrated recall estimate reaches this.
    pub recall_target: Option<f32>,
    /// Bucket-score mass to cover (expert).
    pub target_confidence: Option<f32>,
    /// Geometric sharpness of the bucket score (expert).
    pub lambda: Option<f32>,
    /// Density scale of the reliability factor (expert).
    pub tau: Option<f32>,
    /// Density term of the bucket score (expert).
    pub scoring: Option<Scoring>,
    /// Re-rank factor.
    pub rerank: Option<usize>,
    /// Fewest buckets probed.
    pub min_probes: Option<usize>,
    /// Most buckets probed.
    pub max_probes: Option<usize>,
    /// HNSW candidate list size in frozen memtables.
    pub ef_search: Option<usize>,
    /// Hard budget of codes scanned.
    pub max_codes: Option<usize>,
}

impl SearchOverrides {
    /// Every option's key, as written in `key=value` text, SQL's `SET drift.<key>`, the
    /// lab's YAML and the gRPC request.
    pub const KEYS: [&'static str; 11] = [
        "nprobe",
        "recall_target",
        "target_confidence",
        "lambda",
        "tau",
        "scoring",
        "rerank",
        "min_probes",
        "max_probes",
        "ef_search",
        "max_codes",
    ];

    /// Sets option `key` from its text `value`; an unknown key, a value that does not parse
    /// or one out of range is an error naming both.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let value = value.trim();
        let bad =
            |why: &str| Error::InvalidArgument(format!("search option {key}={value:?}: {why}"));
        let count = |min: usize| -> Result<usize> {
            let n: usize = value.parse().map_err(|_| bad("not a whole number"))?;
            if n < min {
                return Err(bad(&format!("must be at least {min}")));
            }
            Ok(n)
        };
        let real = || -> Result<f32> {
            let x: f32 = value.parse().map_err(|_| bad("not a number"))?;
            if !x.is_finite() {
                return Err(bad("not a finite number"));
            }
            Ok(x)
        };
        let fraction = || -> Result<f32> {
            let x = real()?;
            if !(x > 0.0 && x <= 1.0) {
                return Err(bad("must be in (0, 1]"));
            }
            Ok(x)
        };
        let non_negative = || -> Result<f32> {
            let x = real()?;
            if x < 0.0 {
                return Err(bad("must not be negative"));
            }
            Ok(x)
        };
        match key.trim() {
            "nprobe" => self.nprobe = Some(count(1)?),
            "recall_target" => self.recall_target = Some(fraction()?),
            "target_confidence" => self.target_confidence = Some(fraction()?),
            "lambda" => self.lambda = Some(non_negative()?),
            "tau" => self.tau = Some(non_negative()?),
            "scoring" => {
                self.scoring =
                    Some(Scoring::parse(value).map_err(|_| bad("expected reliability or linear"))?)
            }
            "rerank" => self.rerank = Some(count(0)?),
            "min_probes" => self.min_probes = Some(count(1)?),
            "max_probes" => self.max_probes = Some(count(1)?),
            "ef_search" => self.ef_search = Some(count(1)?),
            "max_codes" => self.max_codes = Some(count(1)?),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "unknown search option '{other}' (known: {})",
                    Self::KEYS.join(", ")
                )))
            }
        }
        Ok(())
    }

    /// Options from `key=value` pairs separated by commas or whitespace (`nprobe=8,
    /// rerank=4`); an empty text sets nothing.
    pub fn parse(text: &str) -> Result<SearchOverrides> {
        let mut o = SearchOverrides::default();
        for pair in text.split(|c: char| c == ',' || c.is_whitespace()) {
            if pair.is_empty() {
                continue;
            }
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                Error::InvalidArgument(format!("search option '{pair}' is not key=value"))
            })?;
            o.set(key, value)?;
        }
        Ok(o)
    }

    /// The options set, as `(key, value)` text in [`SearchOverrides::KEYS`] order.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let num = |v: Option<usize>| v.map(|v| v.to_string());
        let real = |v: Option<f32>| v.map(|v| v.to_string());
        let values = [
            num(self.nprobe),
            real(self.recall_target),
            real(self.target_confidence),
            real(self.lambda),
            real(self.tau),
            self.scoring.map(|s| s.name().to_string()),
            num(self.rerank),
            num(self.min_probes),
            num(self.max_probes),
            num(self.ef_search),
            num(self.max_codes),
        ];
        Self::KEYS
            .iter()
            .zip(values)
            .filter_map(|(k, v)| v.map(|v| (*k, v)))
            .collect()
    }

    /// Checks every set option's range (as [`SearchOverrides::set`] does for text), for
    /// options that arrived already typed (YAML, JSON, gRPC).
    pub fn validate(&self) -> Result<()> {
        let mut check = SearchOverrides::default();
        for (k, v) in self.pairs() {
            check.set(k, &v)?;
        }
        Ok(())
    }

    /// The options that turn `defaults` into `params` (the inverse of
    /// [`SearchOverrides::apply`]), for passing resolved parameters to a collection whose
    /// defaults live elsewhere. `guardrail`, `adc` and `prefilter` are settings, not search
    /// options, and do not travel.
    pub fn between(defaults: &SearchParams, params: &SearchParams) -> SearchOverrides {
        let (d, p) = (defaults, params);
        let differs = |a: usize, b: usize| (a != b).then_some(b);
        let mut o = SearchOverrides {
            nprobe: if p.nprobe != d.nprobe { p.nprobe } else { None },
            rerank: differs(d.rerank, p.rerank),
            min_probes: differs(d.min_probes, p.min_probes),
            max_probes: differs(d.max_probes, p.max_probes),
            ef_search: differs(d.ef_search, p.ef_search),
            max_codes: if p.max_codes != d.max_codes {
                p.max_codes
            } else {
                None
            },
            lambda: (p.lambda != d.lambda).then_some(p.lambda),
            tau: (p.tau != d.tau).then_some(p.tau),
            target_confidence: (p.target_confidence != d.target_confidence)
                .then_some(p.target_confidence),
            scoring: (p.scoring != d.scoring).then_some(p.scoring),
            recall_target: None,
        };
        match p.recall_target {
            // A recall target that differs, or one that must stay on beside a bucket-score
            // option (which alone would switch to the bucket-score mode).
            Some(r) => {
                let confidence = o.target_confidence.is_some()
                    || o.lambda.is_some()
                    || o.tau.is_some()
                    || o.scoring.is_some();
                if p.recall_target != d.recall_target || confidence {
                    o.recall_target = Some(r);
                }
            }
            // The bucket-score mode where the defaults use a recall target.
            None if d.recall_target.is_some() => {
                o.target_confidence = Some(p.target_confidence);
            }
            None => {}
        }
        o
    }

    /// Applies the set options to `p` (see the type's rules); validate `p` afterwards.
    pub fn apply(&self, p: &mut SearchParams) {
        let confidence_mode = self.target_confidence.is_some()
            || self.lambda.is_some()
            || self.tau.is_some()
            || self.scoring.is_some();
        if confidence_mode && self.recall_target.is_none() {
            p.recall_target = None;
        }
        if let Some(r) = self.recall_target {
            p.recall_target = Some(r);
        }
        if self.nprobe.is_some() {
            p.nprobe = self.nprobe;
        }
        let set = |dst: &mut f32, v: Option<f32>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        set(&mut p.target_confidence, self.target_confidence);
        set(&mut p.lambda, self.lambda);
        set(&mut p.tau, self.tau);
        let set = |dst: &mut usize, v: Option<usize>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        set(&mut p.rerank, self.rerank);
        set(&mut p.min_probes, self.min_probes);
        set(&mut p.max_probes, self.max_probes);
        set(&mut p.ef_search, self.ef_search);
        if let Some(s) = self.scoring {
            p.scoring = s;
        }
        if self.max_codes.is_some() {
            p.max_codes = self.max_codes;
        }
    }
}

impl std::fmt::Display for SearchOverrides {
    /// `key=value` pairs joined by commas ([`SearchOverrides::parse`] reads them back).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text: Vec<String> = self
            .pairs()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        f.write_str(&text.join(","))
    }
}

/// Largest `k` a single search may ask for.
pub const MAX_K: usize = 10_000;
/// Largest re-rank factor (candidates kept per requested neighbour).
pub const MAX_RERANK: usize = 1_000;
/// Largest candidate pool of one search (`k * rerank`): what a search may allocate for
/// candidates is bounded before anything is allocated.
pub const MAX_POOL: usize = 1_000_000;
/// Largest bucket count a search may ask to probe (`nprobe`, `min_probes`, `max_probes`).
pub const MAX_PROBES: usize = 1 << 20;
/// Largest `ef_search` (candidate list of the memtable graph).
pub const MAX_EF_SEARCH: usize = 100_000;

/// Options of one search. Build with [`SearchDefaults::to_params`] or
/// `Collection::search_params`, then adjust fields.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchParams {
    /// Number of neighbours to return (1..=10000).
    pub k: usize,
    /// Probe exactly this many buckets (overrides the confidence-based selection).
    pub nprobe: Option<usize>,
    /// See [`SearchDefaults::lambda`].
    pub lambda: f32,
    /// See [`SearchDefaults::tau`].
    pub tau: f32,
    /// See [`SearchDefaults::target_confidence`].
    pub target_confidence: f32,
    /// See [`SearchDefaults::min_probes`].
    pub min_probes: usize,
    /// See [`SearchDefaults::max_probes`].
    pub max_probes: usize,
    /// See [`SearchDefaults::guardrail`].
    pub guardrail: f32,
    /// See [`SearchDefaults::rerank`].
    pub rerank: usize,
    /// See [`SearchDefaults::ef_search`].
    pub ef_search: usize,
    /// See [`SearchDefaults::adc`].
    pub adc: AdcKernel,
    /// See [`SearchDefaults::scoring`].
    pub scoring: Scoring,
    /// Scan as many buckets as the estimated recall@k needs to reach this target (0..1];
    /// overrides `target_confidence` (but not `nprobe`).
    pub recall_target: Option<f32>,
    /// See [`SearchDefaults::prefilter`].
    pub prefilter: bool,
    /// Stop scanning L1 after this many codes (a hard per-query cost budget).
    pub max_codes: Option<usize>,
    /// Return each hit's payload.
    pub with_payload: bool,
    /// Return each hit's stored vector.
    pub with_vector: bool,
}

impl SearchParams {
    /// Checks every option's range.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if self.k == 0 || self.k > MAX_K {
            return bad(format!("k must be in 1..={MAX_K}, got {}", self.k));
        }
        if let Some(n) = self.nprobe {
            if n == 0 || n > MAX_PROBES {
                return bad(format!("nprobe must be in 1..={MAX_PROBES}, got {n}"));
            }
        }
        if self.rerank > MAX_RERANK {
            return bad(format!(
                "rerank must be in 0..={MAX_RERANK}, got {}",
                self.rerank
            ));
        }
        if self.k.saturating_mul(self.rerank.max(1)) > MAX_POOL {
            return bad(format!(
                "k * rerank must be at most {MAX_POOL}, got {} * {}",
                self.k, self.rerank
            ));
        }
        if self.max_probes > MAX_PROBES {
            return bad(format!(
                "max_probes must be at most {MAX_PROBES}, got {}",
                self.max_probes
            ));
        }
        if self.ef_search > MAX_EF_SEARCH {
            return bad(format!(
                "ef_search must be at most {MAX_EF_SEARCH}, got {}",
                self.ef_search
            ));
        }
        if let Some(r) = self.recall_target {
            if !(r > 0.0 && r <= 1.0) {
                return bad(format!("recall target must be in (0, 1], got {r}"));
            }
        }
        if self.max_codes == Some(0) {
            return bad("max_codes must be at least 1".into());
        }
        if !(self.lambda.is_finite() && self.lambda >= 0.0) {
            return bad(format!(
                "lambda must be finite and >= 0, got {}",
                self.lambda
            ));
        }
        if !(self.tau.is_finite() && self.tau >= 0.0) {
            return bad(format!("tau must be finite and >= 0, got {}", self.tau));
        }
        if !(self.target_confidence > 0.0 && self.target_confidence <= 1.0) {
            return bad(format!(
                "target_confidence must be in (0, 1], got {}",
                self.target_confidence
            ));
        }
        if self.min_probes == 0 || self.min_probes > self.max_probes {
            return bad(format!(
                "need 1 <= min_probes <= max_probes, got {} and {}",
                self.min_probes, self.max_probes
            ));
        }
        if !(self.guardrail.is_finite() && self.guardrail >= 1.0) {
            return bad(format!("guardrail must be >= 1, got {}", self.guardrail));
        }
        if self.ef_search == 0 {
            return bad("ef_search must be at least 1".into());
        }
        Ok(())
    }
}

/// Everything fixed about a collection when it is created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionConfig {
    /// Vector dimension (1..=65536).
    pub dim: usize,
    /// Distance metric.
    pub metric: Metric,
    /// Index settings.
    #[serde(default)]
    pub settings: IndexSettings,
}

/// Largest supported dimension.
pub const MAX_DIM: usize = 65_536;

/// Largest magnitude of a stored or query vector component. Squared distances sum `dim`
/// squared differences: at `MAX_DIM` dimensions of `2 * MAX_ABS_VALUE` each they stay below
/// 3e35, far from `f32::MAX`, and so do quantizer ranges, norms and centroid sums.
pub const MAX_ABS_VALUE: f32 = 1e15;

impl CollectionConfig {
    /// A configuration with default settings.
    pub fn new(dim: usize, metric: Metric) -> Self {
        CollectionConfig {
            dim,
            metric,
            settings: IndexSettings::default(),
        }
    }

    /// Checks the dimension and every setting.
    pub fn validate(&self) -> Result<()> {
        if self.dim == 0 || self.dim > MAX_DIM {
            return Err(Error::InvalidArgument(format!(
                "dimension must be in 1..={MAX_DIM}, got {}",
                self.dim
            )));
        }
        self.settings.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn search_overrides_parse_print_and_name_bad_input() {
        let o = SearchOverrides::parse("nprobe=8, recall_target=0.95 scoring=linear").unwrap();
        assert_eq!(o.nprobe, Some(8));
        assert_eq!(o.recall_target, Some(0.95));
        assert_eq!(o.scoring, Some(Scoring::Linear));
        assert_eq!(o.to_string(), "nprobe=8,recall_target=0.95,scoring=linear");
        assert_eq!(
            SearchOverrides::parse("").unwrap(),
            SearchOverrides::default()
        );
        for (text, names) in [
            ("nprobe=0", "nprobe"),
            ("nprobe=x", "not a whole number"),
            ("recall_target=1.5", "(0, 1]"),
            ("lambda=-1", "negative"),
            ("tau=NaN", "finite"),
            ("scoring=cosine", "reliability or linear"),
            ("ef=8", "unknown search option 'ef'"),
            ("nprobe", "not key=value"),
        ] {
            let e = SearchOverrides::parse(text).unwrap_err().to_string();
            assert!(e.contains(names), "{text}: {e}");
        }
        let typed = SearchOverrides {
            target_confidence: Some(0.0),
            ..Default::default()
        };
        assert!(typed
            .validate()
            .unwrap_err()
            .to_string()
            .contains("target_confidence"));
    }

    fn arb_overrides() -> impl Strategy<Value = SearchOverrides> {
        (
            proptest::option::of(1usize..5000),
            proptest::option::of(0.001f32..=1.0),
            proptest::option::of(0.001f32..=1.0),
            proptest::option::of(0.0f32..100.0),
            proptest::option::of(0.0f32..1e4),
            proptest::option::of(prop_oneof![
                Just(Scoring::Reliability),
                Just(Scoring::Linear)
            ]),
            proptest::option::of(0usize..100),
            (
                proptest::option::of(1usize..100),
                proptest::option::of(1usize..100),
                proptest::option::of(1usize..1000),
                proptest::option::of(1usize..1_000_000),
            ),
        )
            .prop_map(
                |(nprobe, rt, tc, lambda, tau, scoring, rerank, (mn, mx, ef, mc))| {
                    SearchOverrides {
                        nprobe,
                        recall_target: rt,
                        target_confidence: tc,
                        lambda,
                        tau,
                        scoring,
                        rerank,
                        min_probes: mn,
                        max_probes: mx,
                        ef_search: ef,
                        max_codes: mc,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn search_overrides_between_inverts_apply(o in arb_overrides(), recall_mode in any::<bool>()) {
            let mut defaults = SearchDefaults::default().to_params(10);
            if !recall_mode {
                defaults.recall_target = None;
            }
            let mut want = defaults.clone();
            o.apply(&mut want);
            let mut got = defaults.clone();
            SearchOverrides::between(&defaults, &want).apply(&mut got);
            prop_assert_eq!(got, want);
        }

        #[test]
        fn search_overrides_round_trip_through_text(o in arb_overrides()) {
            let text = o.to_string();
            prop_assert_eq!(SearchOverrides::parse(&text).unwrap(), o.clone());
            prop_assert!(o.validate().is_ok());
        }
    }
}
