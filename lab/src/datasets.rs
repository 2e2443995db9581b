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
        let centres = self.centres();
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed ^ ((stream + 1) * 0x9e37_79b9));
        let n = Normal::new(0.0f32, self.point_spread).expect("valid spread");
        let mut vectors = Vec::with_capacity(rows * self.dim);
        for _ in 0..rows {
            let c = rng.gen_range(0..self.clusters);
            for d in 0..self.dim {
                vectors.push(centres[c * self.dim + d] + n.sample(&mut rng));
            }
        }
        Dataset {
            vectors,
            dim: self.dim,
        }
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
