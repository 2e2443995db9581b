//! HNSW (Malkov & Yashunin) over an immutable block of vectors: layered proximity graph,
//! greedy descent through the upper layers, beam search with `ef` candidates on layer 0, and
//! the neighbour-selection heuristic that keeps links spread out.

use std::collections::BinaryHeap;

use rand::{Rng, SeedableRng};

use crate::distance::Distance;
use crate::topk::Scored;

/// Construction parameters.
#[derive(Debug, Clone, Copy)]
pub struct BuildParams {
    /// Distance to build with.
    pub dist: Distance,
    /// Out-degree on upper layers (twice this on layer 0).
    pub m: usize,
    /// Candidate list size during construction.
    pub ef_construction: usize,
    /// Seed of the level draw.
    pub seed: u64,
}

/// A built graph. Node `i` is row `i` of the vectors it was built over.
#[derive(Debug, Clone)]
pub struct Hnsw {
    dist: Distance,
    dim: usize,
    m: usize,
    entry: u32,
    top_level: usize,
    /// `links[node][level]` = neighbour nodes.
    links: Vec<Vec<Vec<u32>>>,
}

struct Visited {
    marks: Vec<u32>,
    epoch: u32,
}

impl Visited {
    fn new(n: usize) -> Self {
        Visited {
            marks: vec![0; n],
            epoch: 0,
        }
    }
    fn reset(&mut self) {
        self.epoch += 1;
    }
    /// Marks `i`; returns true if it was not marked before.
    fn insert(&mut self, i: u32) -> bool {
        let m = &mut self.marks[i as usize];
        if *m == self.epoch {
            false
        } else {
            *m = self.epoch;
            true
        }
    }
}

type Near = Scored<u32>;

impl Hnsw {
    /// Builds the graph over `vectors` (row-major, `dim` columns); `None` if `wanted` turned
    /// false during the build (it is asked every 256 insertions).
    pub fn build(
        vectors: &[f32],
        dim: usize,
        params: &BuildParams,
        wanted: &dyn Fn() -> bool,
    ) -> Option<Hnsw> {
        let BuildParams {
            dist,
            m,
            ef_construction,
            seed,
        } = *params;
        let n = vectors.len() / dim;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let ml = 1.0 / (m as f64).ln();
        let mut g = Hnsw {
            dist,
            dim,
            m,
            entry: 0,
            top_level: 0,
            links: Vec::with_capacity(n),
        };
        let mut visited = Visited::new(n);
        for node in 0..n {
            if node % 256 == 255 && !wanted() {
                return None;
            }
            let r: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
            let level = ((-r.ln() * ml) as usize).min(16);
            g.links.push(vec![Vec::new(); level + 1]);
            if node == 0 {
                g.top_level = level;
                continue;
            }
            g.insert(vectors, node as u32, level, ef_construction, &mut visited);
        }
        Some(g)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// True when the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    fn vec<'a>(&self, vectors: &'a [f32], i: u32) -> &'a [f32] {
        &vectors[i as usize * self.dim..(i as usize + 1) * self.dim]
    }

    fn max_links(&self, level: usize) -> usize {
        if level == 0 {
            2 * self.m
        } else {
            self.m
        }
    }

    fn insert(
        &mut self,
        vectors: &[f32],
        node: u32,
        level: usize,
        ef: usize,
        visited: &mut Visited,
    ) {
        let q = self.vec(vectors, node).to_vec();
        let mut ep = Near {
            dist: self.dist.eval(&q, self.vec(vectors, self.entry)),
            item: self.entry,
        };
        for l in (level + 1..=self.top_level).rev() {
            ep = self.greedy(vectors, &q, ep, l);
        }
        for l in (0..=level.min(self.top_level)).rev() {
            let found = self.search_layer(vectors, &q, &[ep], ef, l, visited);
            let chosen = self.select(vectors, &found, self.max_links(l));
            for &nb in &chosen {
                self.link(vectors, nb, node, l);
            }
            self.links[node as usize][l] = chosen;
            ep = found[0];
        }
        if level > self.top_level {
            self.top_level = level;
            self.entry = node;
        }
    }

    /// Adds `to` to `from`'s links on `level`, pruning with the heuristic when over capacity.
    fn link(&mut self, vectors: &[f32], from: u32, to: u32, level: usize) {
        let cap = self.max_links(level);
        let list = &mut self.links[from as usize][level];
        list.push(to);
        if list.len() <= cap {
            return;
        }
        let base = self.vec(vectors, from);
        let mut cands: Vec<Near> = self.links[from as usize][level]
            .iter()
            .map(|&x| Near {
                dist: self.dist.eval(base, self.vec(vectors, x)),
                item: x,
            })
            .collect();
        cands.sort();
        self.links[from as usize][level] = self.select(vectors, &cands, cap);
    }

    /// Neighbour-selection heuristic: keep a candidate only if it is nearer to the base than to
    /// every neighbour kept so far; fill up with the nearest leftovers.
    fn select(&self, vectors: &[f32], sorted: &[Near], cap: usize) -> Vec<u32> {
        let mut kept: Vec<u32> = Vec::with_capacity(cap);
        let mut spare = Vec::new();
        for c in sorted {
            if kept.len() >= cap {
                break;
            }
            let cv = self.vec(vectors, c.item);
            let diverse = kept
                .iter()
                .all(|&k| self.dist.eval(cv, self.vec(vectors, k)) > c.dist);
            if diverse {
                kept.push(c.item);
            } else {
                spare.push(c.item);
            }
        }
        for s in spare {
            if kept.len() >= cap {
                break;
            }
            kept.push(s);
        }
        kept
    }

    fn greedy(&self, vectors: &[f32], q: &[f32], mut ep: Near, level: usize) -> Near {
        loop {
            let mut improved = false;
            for &nb in &self.links[ep.item as usize][level] {
                let d = self.dist.eval(q, self.vec(vectors, nb));
                if d < ep.dist {
                    ep = Near { dist: d, item: nb };
                    improved = true;
                }
            }
            if !improved {
                return ep;
            }
        }
    }

    /// Beam search on one layer; returns up to `ef` nodes, nearest first.
    fn search_layer(
        &self,
        vectors: &[f32],
        q: &[f32],
        entries: &[Near],
        ef: usize,
        level: usize,
        visited: &mut Visited,
    ) -> Vec<Near> {
        visited.reset();
        let mut frontier: BinaryHeap<std::cmp::Reverse<Near>> = BinaryHeap::new();
        let mut best: BinaryHeap<Near> = BinaryHeap::new();
        for e in entries {
            visited.insert(e.item);
            frontier.push(std::cmp::Reverse(*e));
            best.push(*e);
        }
        while let Some(std::cmp::Reverse(c)) = frontier.pop() {
            let worst = best.peek().map_or(f32::INFINITY, |w| w.dist);
            if c.dist > worst && best.len() >= ef {
                break;
            }
            for &nb in &self.links[c.item as usize][level] {
                if !visited.insert(nb) {
                    continue;
                }
                let d = self.dist.eval(q, self.vec(vectors, nb));
                let worst = best.peek().map_or(f32::INFINITY, |w| w.dist);
                if best.len() < ef || d < worst {
                    let n = Near { dist: d, item: nb };
                    frontier.push(std::cmp::Reverse(n));
                    best.push(n);
                    if best.len() > ef {
                        best.pop();
                    }
                }
            }
        }
        best.into_sorted_vec()
    }

    /// Up to `ef` nearest nodes to `q` as (node, distance), nearest first.
    pub fn search(&self, vectors: &[f32], q: &[f32], ef: usize) -> Vec<(u32, f32)> {
        if self.links.is_empty() {
            return Vec::new();
        }
        let mut ep = Near {
            dist: self.dist.eval(q, self.vec(vectors, self.entry)),
            item: self.entry,
        };
        for l in (1..=self.top_level).rev() {
            ep = self.greedy(vectors, q, ep, l);
        }
        let mut visited = Visited::new(self.links.len());
        self.search_layer(vectors, q, &[ep], ef, 0, &mut visited)
            .into_iter()
            .map(|n| (n.item, n.dist))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_true_neighbours_with_high_recall() {
        let (n, dim) = (3000, 16);
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let data: Vec<f32> = (0..n * dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let params = BuildParams {
            dist: Distance::L2,
            m: 16,
            ef_construction: 100,
            seed: 1,
        };
        let g = Hnsw::build(&data, dim, &params, &|| true).unwrap();
        let mut hits = 0;
        for qi in 0..50 {
            let q: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let mut exact: Vec<(usize, f32)> = (0..n)
                .map(|i| (i, Distance::L2.eval(&q, &data[i * dim..(i + 1) * dim])))
                .collect();
            exact.sort_by(|a, b| a.1.total_cmp(&b.1));
            let truth: std::collections::HashSet<u32> =
                exact[..10].iter().map(|x| x.0 as u32).collect();
            let got = g.search(&data, &q, 64);
            hits += got[..10].iter().filter(|x| truth.contains(&x.0)).count();
            let _ = qi;
        }
        let recall = hits as f64 / 500.0;
        assert!(recall > 0.95, "HNSW recall@10 {recall}");
    }
}
