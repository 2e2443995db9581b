//! k-means++ seeding and Lloyd iterations, with empty-cluster rescue.

use rand::{Rng, SeedableRng};

use crate::kernels;

/// Result of a k-means run: `k` centroids (row-major) and each input row's cluster.
#[derive(Debug, Clone)]
pub struct KMeans {
    /// Centroids, `k * dim` values.
    pub centroids: Vec<f32>,
    /// Cluster of every input row.
    pub assignment: Vec<u32>,
}

/// Index and squared distance of the centroid nearest to `v`.
pub fn nearest(centroids: &[f32], dim: usize, v: &[f32]) -> (usize, f32) {
    let mut best = (0usize, f32::INFINITY);
    for (i, c) in centroids.chunks_exact(dim).enumerate() {
        let d = kernels::l2sq(v, c);
        if d < best.1 {
            best = (i, d);
        }
    }
    best
}

/// Clusters `data` (row-major, `dim` columns) into at most `k` clusters.
///
/// Seeds with k-means++ (D² sampling), runs up to `iters` Lloyd iterations, and whenever a
/// cluster empties, re-seeds it with the point farthest from its centroid in the largest
/// cluster. Deterministic for a given `seed`.
pub fn kmeans(data: &[f32], dim: usize, k: usize, iters: usize, seed: u64) -> KMeans {
    let n = data.len() / dim;
    let k = k.clamp(1, n.max(1));
    if n == 0 {
        return KMeans {
            centroids: vec![0.0; dim],
            assignment: Vec::new(),
        };
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let row = |i: usize| &data[i * dim..(i + 1) * dim];

    // k-means++ seeding.
    let mut centroids = Vec::with_capacity(k * dim);
    centroids.extend_from_slice(row(rng.gen_range(0..n)));
    let mut d2: Vec<f32> = (0..n)
        .map(|i| kernels::l2sq(row(i), &centroids[..dim]))
        .collect();
    while centroids.len() < k * dim {
        let total: f64 = d2.iter().map(|x| *x as f64).sum();
        let pick = if total <= 0.0 {
            rng.gen_range(0..n)
        } else {
            let mut target = rng.gen::<f64>() * total;
            let mut chosen = n - 1;
            for (i, w) in d2.iter().enumerate() {
                target -= *w as f64;
                if target <= 0.0 {
                    chosen = i;
                    break;
                }
            }
            chosen
        };
        let start = centroids.len();
        centroids.extend_from_slice(row(pick));
        let c = centroids[start..].to_vec();
        for (i, best) in d2.iter_mut().enumerate() {
            *best = best.min(kernels::l2sq(row(i), &c));
        }
    }

    // Lloyd iterations.
    let mut assignment = vec![0u32; n];
    let mut dist = vec![0f32; n];
    for iter in 0..iters.max(1) {
        let mut changed = 0usize;
        for (i, (a, dd)) in assignment.iter_mut().zip(dist.iter_mut()).enumerate() {
            let (c, d) = nearest(&centroids, dim, row(i));
            if *a != c as u32 || iter == 0 {
                changed += 1;
            }
            *a = c as u32;
            *dd = d;
        }
        let mut sums = vec![0f64; k * dim];
        let mut counts = vec![0usize; k];
        for (i, a) in assignment.iter().enumerate() {
            let c = *a as usize;
            counts[c] += 1;
            for (s, x) in sums[c * dim..(c + 1) * dim].iter_mut().zip(row(i)) {
                *s += *x as f64;
            }
        }
        for c in 0..k {
            if counts[c] > 0 {
                for d in 0..dim {
                    centroids[c * dim + d] = (sums[c * dim + d] / counts[c] as f64) as f32;
                }
            }
        }
        // Empty-cluster rescue: steal the worst-fitting point of the largest cluster.
        for c in 0..k {
            if counts[c] > 0 {
                continue;
            }
            let largest = (0..k).max_by_key(|&j| counts[j]).unwrap_or(0);
            if counts[largest] < 2 {
                continue;
            }
            let far = (0..n)
                .filter(|&i| assignment[i] as usize == largest)
                .max_by(|&a, &b| dist[a].total_cmp(&dist[b]));
            if let Some(p) = far {
                centroids[c * dim..(c + 1) * dim].copy_from_slice(row(p));
                assignment[p] = c as u32;
                dist[p] = 0.0;
                counts[largest] -= 1;
                counts[c] = 1;
                changed += 1;
            }
        }
        if changed == 0 {
            break;
        }
    }
    KMeans {
        centroids,
        assignment,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_well_separated_clusters() {
        let mut data = Vec::new();
        let centres = [[0.0f32, 0.0], [100.0, 0.0], [0.0, 100.0], [100.0, 100.0]];
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for i in 0..400 {
            let c = centres[i % 4];
            data.push(c[0] + rng.gen_range(-1.0..1.0));
            data.push(c[1] + rng.gen_range(-1.0..1.0));
        }
        let km = kmeans(&data, 2, 4, 20, 7);
        for c in centres {
            let (_, d) = nearest(&km.centroids, 2, &c);
            assert!(d < 4.0, "no centroid near {c:?}");
        }
        let mut sizes = [0; 4];
        for a in &km.assignment {
            sizes[*a as usize] += 1;
        }
        assert_eq!(sizes, [100; 4]);
    }

    #[test]
    fn never_leaves_a_cluster_empty_when_points_allow() {
        // Many duplicates: naive Lloyd would leave clusters empty.
        let mut data = vec![1.0f32; 2 * 300];
        data.extend_from_slice(&[5.0, 5.0, 9.0, 9.0, -3.0, 2.0]);
        let km = kmeans(&data, 2, 6, 10, 3);
        let mut used = [false; 6];
        for a in &km.assignment {
            used[*a as usize] = true;
        }
        assert!(used.iter().filter(|u| **u).count() >= 4);
    }
}
