//! Synthetic data: Gaussian clusters (the shape of real embedding sets) with queries drawn
//! from the same distribution.

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

/// Row-major vectors with their dimension.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Values, `rows * dim`.
    pub vectors: Vec<f32>,
    /// Dimension.
    pub dim: usize,
}

impl Dataset {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.vectors.len() / self.dim
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }
}

/// Parameters of a clustered Gaussian mixture.
#[derive(Debug, Clone)]
pub struct Clustered {
    /// Dimension.
    pub dim: usize,
    /// Number of clusters.
    pub clusters: usize,
    /// Standard deviation of cluster centres around the origin.
    pub centre_spread: f32,
    /// Standard deviation of points around their centre.
    pub point_spread: f32,
    /// Random seed.
    pub seed: u64,
}

impl Clustered {
    /// A mixture with `clusters` clusters in `dim` dimensions (centres ~N(0, 10²), points
    /// ~N(centre, 1)).
    pub fn new(dim: usize, clusters: usize, seed: u64) -> Self {
        Clustered {
            dim,
            clusters,
            centre_spread: 10.0,
            point_spread: 1.0,
            seed,
        }
    }

    fn centres(&self) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed);
        let n = Normal::new(0.0f32, self.centre_spread).expect("valid spread");
        (0..self.clusters * self.dim)
            .map(|_| n.sample(&mut rng))
            .collect()
    }

    /// `rows` points; `stream` picks an independent random stream (0 for base, 1 for queries).
    pub fn sample(&self, rows: usize, stream: u64) -> Dataset {
        self.sample_labelled(rows, stream).0
    }

    /// `rows` points in cluster order, every cluster holding `rows / clusters` of them (the
    /// first `rows % clusters` one more): cluster `c` is one contiguous range of rows.
    pub fn sample_in_cluster_order(&self, rows: usize, stream: u64) -> Dataset {
        let centres = self.centres();
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed ^ ((stream + 1) * 0x9e37_79b9));
        let n = Normal::new(0.0f32, self.point_spread).expect("valid spread");
        let mut vectors = Vec::with_capacity(rows * self.dim);
        for c in 0..self.clusters {
            let count = rows / self.clusters + usize::from(c < rows % self.clusters);
            for _ in 0..count {
                for d in 0..self.dim {
                    vectors.push(centres[c * self.dim + d] + n.sample(&mut rng));
                }
            }
        }
        Dataset {
            vectors,
            dim: self.dim,
        }
    }

    /// Like [`Clustered::sample`], with the cluster of every row.
    pub fn sample_labelled(&self, rows: usize, stream: u64) -> (Dataset, Vec<usize>) {
        let centres = self.centres();
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed ^ ((stream + 1) * 0x9e37_79b9));
        let n = Normal::new(0.0f32, self.point_spread).expect("valid spread");
        let mut vectors = Vec::with_capacity(rows * self.dim);
        let mut labels = Vec::with_capacity(rows);
        for _ in 0..rows {
            let c = rng.gen_range(0..self.clusters);
            labels.push(c);
            for d in 0..self.dim {
                vectors.push(centres[c * self.dim + d] + n.sample(&mut rng));
            }
        }
        (
            Dataset {
                vectors,
                dim: self.dim,
            },
            labels,
        )
    }
}

/// Gaussian clusters whose centres move along fixed random directions as time passes: the
/// data an index trained at time 0 goes stale on.
#[derive(Debug, Clone)]
pub struct Drifting {
    /// The mixture at time 0.
    pub base: Clustered,
    /// Distance each centre travels per unit of time.
    pub speed: f32,
}

impl Drifting {
    /// `clusters` clusters in `dim` dimensions moving `speed` per unit of time.
    pub fn new(dim: usize, clusters: usize, speed: f32, seed: u64) -> Self {
        Drifting {
            base: Clustered::new(dim, clusters, seed),
            speed,
        }
    }

    /// Cluster centres at time `t`, row-major.
    pub fn centres_at(&self, t: f32) -> Vec<f32> {
        let dim = self.base.dim;
        let mut centres = self.base.centres();
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.base.seed ^ 0xd21f_7000);
        let n = Normal::new(0.0f32, 1.0).expect("valid spread");
        for c in centres.chunks_exact_mut(dim) {
            let dir: Vec<f32> = (0..dim).map(|_| n.sample(&mut rng)).collect();
            let norm = dir.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            for (x, d) in c.iter_mut().zip(&dir) {
                *x += t * self.speed * d / norm;
            }
        }
        centres
    }

    /// `rows` points drawn around the centres at time `t`; `stream` picks an independent
    /// random stream.
    pub fn sample_at(&self, t: f32, rows: usize, stream: u64) -> Dataset {
        let dim = self.base.dim;
        let centres = self.centres_at(t);
        let seed = self.base.seed ^ ((stream + 1) * 0x9e37_79b9) ^ (t.to_bits() as u64) << 17;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let n = Normal::new(0.0f32, self.base.point_spread).expect("valid spread");
        let mut vectors = Vec::with_capacity(rows * dim);
        for _ in 0..rows {
            let c = rng.gen_range(0..self.base.clusters);
            for d in 0..dim {
                vectors.push(centres[c * dim + d] + n.sample(&mut rng));
            }
        }
        Dataset { vectors, dim }
    }
}

/// Clusters that appear at a given time.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterEvent {
    /// Time of the event.
    pub at: f32,
    /// Clusters involved.
    pub count: usize,
}

/// A Gaussian mixture that changes over time: centres move along fixed random directions at
/// `speed` per unit of time, clusters are born and vanish at scheduled times, and cluster
/// weights follow a Zipf law of exponent `skew` (0 = all equally likely).
#[derive(Debug, Clone)]
pub struct Mixture {
    dim: usize,
    point_spread: f32,
    speed: f32,
    /// Per cluster: centre at its birth, unit direction of travel, birth, death, weight.
    clusters: Vec<MixCluster>,
}

#[derive(Debug, Clone)]
struct MixCluster {
    centre: Vec<f32>,
    direction: Vec<f32>,
    born: f32,
    dies: f32,
    weight: f64,
}

/// Parameters of a [`Mixture`].
#[derive(Debug, Clone)]
pub struct MixtureSpec {
    /// Dimension.
    pub dim: usize,
    /// Clusters alive at time 0.
    pub clusters: usize,
    /// Standard deviation of centres around the origin.
    pub centre_spread: f32,
    /// Standard deviation of points around their centre.
    pub point_spread: f32,
    /// Distance a centre travels per unit of time.
    pub speed: f32,
    /// Zipf exponent of cluster weights.
    pub skew: f32,
    /// Clusters born later.
    pub births: Vec<ClusterEvent>,
    /// Clusters that vanish (the oldest alive ones go first).
    pub deaths: Vec<ClusterEvent>,
    /// Random seed.
    pub seed: u64,
}

impl Mixture {
    /// Builds the whole schedule from `spec`.
    pub fn new(spec: &MixtureSpec) -> Mixture {
        let mut rng = rand::rngs::StdRng::seed_from_u64(spec.seed);
        let centre = Normal::new(0.0f32, spec.centre_spread.max(0.0)).expect("valid spread");
        let unit = Normal::new(0.0f32, 1.0).expect("valid spread");
        let mut births: Vec<f32> = vec![0.0; spec.clusters];
        for e in &spec.births {
            births.extend(std::iter::repeat_n(e.at, e.count));
        }
        let mut clusters: Vec<MixCluster> = births
            .iter()
            .enumerate()
            .map(|(i, &born)| {
                let c: Vec<f32> = (0..spec.dim).map(|_| centre.sample(&mut rng)).collect();
                let mut dir: Vec<f32> = (0..spec.dim).map(|_| unit.sample(&mut rng)).collect();
                let norm = dir.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                dir.iter_mut().for_each(|x| *x /= norm);
                MixCluster {
                    centre: c,
                    direction: dir,
                    born,
                    dies: f32::INFINITY,
                    weight: 1.0 / ((i + 1) as f64).powf(spec.skew as f64),
                }
            })
            .collect();
        let mut deaths = spec.deaths.clone();
        deaths.sort_by(|a, b| a.at.total_cmp(&b.at));
        for e in deaths {
            let mut alive: Vec<usize> = (0..clusters.len())
                .filter(|&i| clusters[i].born <= e.at && clusters[i].dies > e.at)
                .collect();
            alive.sort_by(|&a, &b| clusters[a].born.total_cmp(&clusters[b].born));
            for i in alive.into_iter().take(e.count) {
                clusters[i].dies = e.at;
            }
        }
        Mixture {
            dim: spec.dim,
            point_spread: spec.point_spread,
            speed: spec.speed,
            clusters,
        }
    }

    /// Dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Clusters alive at time `t`.
    pub fn alive_at(&self, t: f32) -> usize {
        self.clusters
            .iter()
            .filter(|c| c.born <= t && c.dies > t)
            .count()
    }

    /// `rows` points drawn at time `t` from the clusters then alive, with `rng`. Fails when
    /// no cluster is alive.
    pub fn sample(&self, t: f32, rows: usize, rng: &mut impl Rng) -> Option<Vec<f32>> {
        let alive: Vec<&MixCluster> = self
            .clusters
            .iter()
            .filter(|c| c.born <= t && c.dies > t)
            .collect();
        if alive.is_empty() {
            return None;
        }
        let total: f64 = alive.iter().map(|c| c.weight).sum();
        let noise = Normal::new(0.0f32, self.point_spread.max(0.0)).expect("valid spread");
        let mut out = Vec::with_capacity(rows * self.dim);
        for _ in 0..rows {
            let mut pick = rng.gen::<f64>() * total;
            let mut chosen = alive[alive.len() - 1];
            for c in &alive {
                if pick < c.weight {
                    chosen = c;
                    break;
                }
                pick -= c.weight;
            }
            let travel = (t - chosen.born) * self.speed;
            for d in 0..self.dim {
                out.push(chosen.centre[d] + travel * chosen.direction[d] + noise.sample(&mut *rng));
            }
        }
        Some(out)
    }
}
