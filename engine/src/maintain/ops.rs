//! Maintenance operations: how a bucket is split, merged or compacted. Each works on a
//! `ivf::Reshape` (the next layer under construction) and never touches the id map; rows are
//! chosen with `is_current` and their new homes recorded for the caller to publish.

use std::collections::BTreeMap;

use crate::distance::Distance;
use crate::error::Result;
use crate::ivf::held_in_vectors;
use crate::ivf::{Bucket, Reshape};
use crate::kmeans::kmeans;
use crate::rows::RowBatch;

/// Lloyd iterations of the local 2-means of a split.
const SPLIT_ITERS: usize = 12;

/// What one operation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpOutcome {
    /// Rows that changed bucket beyond the operation's own (defectors, scattered rows).
    pub reassigned: usize,
    /// Rows written into rebuilt or new buckets.
    pub written: usize,
    /// Stale rows dropped.
    pub dropped_stale: usize,
}

/// Inputs shared by the operations.
pub struct OpContext<'a> {
    /// Whether a stored (id, seq) is the current version of its record.
    pub is_current: &'a dyn Fn(u64, u64) -> bool,
    /// Smallest child a split may leave (smaller 2-means splits fall back to a median cut).
    pub min_child: usize,
    /// Neighbouring buckets checked for defectors after a split.
    pub neighbours: usize,
    /// A neighbour is rebuilt to give up its defectors only when they are at least this
    /// share of its rows (rebuilding rewrites all of them; a few rows a little off their
    /// nearest centroid cost less recall than the rewrite costs I/O).
    pub reassign_min_share: f32,
}

/// Splits bucket `id` in two by local 2-means, then reassigns defectors: rows of the split
/// bucket now nearer a neighbour's centroid than either child's go there, and rows of the
/// nearest `ctx.neighbours` buckets now nearer a child than their own centroid move to it.
pub fn split(shape: &mut Reshape, id: u32, ctx: &OpContext) -> Result<Option<OpOutcome>> {
    let Some(old) = shape.bucket(id).cloned() else {
        return Ok(None);
    };
    let dim = old.centroid.len();
    let dist = Distance::for_metric(shape.layer().metric());
    let rows = old.current_rows(ctx.is_current)?;
    let mut out = OpOutcome {
        dropped_stale: old.rows() - rows.len(),
        ..Default::default()
    };
    if rows.len() < 2 {
        return compact(shape, id, ctx);
    }
    let side = two_way(&rows, dim, ctx.min_child);
    let mut halves = [RowBatch::default(), RowBatch::default()];
    for (i, s) in side.iter().enumerate() {
        halves[*s].push_from(&rows, i, dim);
    }
    let children: Vec<Vec<f32>> = halves.iter().map(|h| mean(&h.vectors, dim)).collect();

    // The nearest other buckets to the old centroid.
    let mut near: Vec<(f32, u32)> = shape
        .layer()
        .buckets()
        .iter()
        .filter(|b| b.id != id)
        .map(|b| (dist.eval(&old.centroid, &b.centroid), b.id))
        .collect();
    near.sort_by(|a, b| a.0.total_cmp(&b.0));
    near.truncate(ctx.neighbours);
    let neighbours: Vec<Bucket> = near
        .iter()
        .filter_map(|(_, nid)| shape.bucket(*nid).map(|b| (**b).clone()))
        .collect();

    // Defectors out of the split bucket: rows nearer a neighbour than either child go there.
    let mut kept = [RowBatch::default(), RowBatch::default()];
    // Ordered, so that the buckets rebuilt from it get their fresh ids in a repeatable order.
    let mut gained: BTreeMap<u32, RowBatch> = BTreeMap::new();
    for (h, half) in halves.iter().enumerate() {
        for i in 0..half.len() {
            let v = half.vector(i, dim);
            let (mine, other) = (dist.eval(v, &children[h]), dist.eval(v, &children[1 - h]));
            let best = neighbours
                .iter()
                .map(|n| (dist.eval(v, &n.centroid), n.id))
                .min_by(|a, b| a.0.total_cmp(&b.0));
            match best {
                Some((d, nid)) if d < mine.min(other) => {
                    out.reassigned += 1;
                    gained.entry(nid).or_default().push_from(half, i, dim);
                }
                _ => kept[if mine <= other { h } else { 1 - h }].push_from(half, i, dim),
            }
        }
    }

    // Defectors out of the neighbours into the children.
    let mut rebuilt = Vec::new();
    let mut removed = vec![id];
    for n in &neighbours {
        let current = n.current_rows(ctx.is_current)?;
        let moves: Vec<(usize, usize)> = (0..current.len())
            .filter_map(|i| {
                let v = current.vector(i, dim);
                let (c, d) = nearest_of(dist, v, &children);
                (d < dist.eval(v, &n.centroid)).then_some((i, c))
            })
            .collect();
        // Not worth a rewrite of the whole neighbour: its defectors stay where they are
        // (rows it gained from the split bucket are appended below).
        if moves.is_empty() || (moves.len() as f32) < ctx.reassign_min_share * current.len() as f32
        {
            continue;
        }
        let mut stay = RowBatch::default();
        let mut next = moves.iter().peekable();
        for i in 0..current.len() {
            match next.peek() {
                Some(&&(j, c)) if j == i => {
                    kept[c].push_from(&current, i, dim);
                    next.next();
                }
                _ => stay.push_from(&current, i, dim),
            }
        }
        out.reassigned += moves.len();
        out.dropped_stale += n.rows() - current.len();
        if let Some(g) = gained.remove(&n.id) {
            stay.extend_from(g);
        }
        let nid = shape.fresh_id();
        rebuilt.push(n.rebuilt(nid, stay));
        removed.push(n.id);
    }

    let mut added = rebuilt;
    for (h, rows) in kept.into_iter().enumerate() {
        if rows.is_empty() {
            continue;
        }
        let cid = shape.fresh_id();
        added.push(Bucket::build(
            cid,
            rows,
            &children[h],
            old.tally.carry_heat(0.5),
        ));
    }
    out.written += added.iter().map(|b| b.rows()).sum::<usize>();
    shape.replace(&removed, added);
    for (nid, g) in gained {
        out.written += g.len();
        shape.append(nid, g, ctx.is_current)?;
    }
    Ok(Some(out))
}

/// Dissolves bucket `id`: its current rows go to their nearest remaining buckets.
pub fn merge(shape: &mut Reshape, id: u32, ctx: &OpContext) -> Result<Option<OpOutcome>> {
    let Some(old) = shape.bucket(id).cloned() else {
        return Ok(None);
    };
    if shape.layer().buckets().len() < 2 {
        return Ok(None);
    }
    let rows = old.current_rows(ctx.is_current)?;
    let out = OpOutcome {
        reassigned: rows.len(),
        written: rows.len(),
        dropped_stale: old.rows() - rows.len(),
    };
    shape.replace(&[id], Vec::new());
    shape.scatter(rows, ctx.is_current)?;
    Ok(Some(out))
}

/// Rewrites bucket `id` without its stale rows (removes it if nothing is left and other
/// buckets exist).
pub fn compact(shape: &mut Reshape, id: u32, ctx: &OpContext) -> Result<Option<OpOutcome>> {
    let Some(old) = shape.bucket(id).cloned() else {
        return Ok(None);
    };
    let rows = old.current_rows(ctx.is_current)?;
    let out = OpOutcome {
        reassigned: 0,
        written: rows.len(),
        dropped_stale: old.rows() - rows.len(),
    };
    if rows.is_empty() && shape.layer().buckets().len() > 1 {
        shape.replace(&[id], Vec::new());
    } else {
        let nid = shape.fresh_id();
        let b = old.rebuilt(nid, rows);
        shape.replace(&[id], vec![b]);
    }
    Ok(Some(out))
}

/// Side (0 or 1) of every row: local 2-means (fitted without the held-out rows, which then
/// go to the nearer mean), or a median cut along the line between the two means when 2-means
/// leaves a side smaller than `min_child` (so both halves stay above the merge threshold and
/// a split cannot be undone by the next merge).
fn two_way(rows: &RowBatch, dim: usize, min_child: usize) -> Vec<usize> {
    let n = rows.len();
    let fit = held_in_vectors(&rows.ids, &rows.vectors, dim);
    let km = if fit.len() >= 2 * dim && fit.len() < rows.vectors.len() {
        let mut km = kmeans(&fit, dim, 2, SPLIT_ITERS, 0x5b17 ^ n as u64);
        km.assignment = rows
            .vectors
            .chunks_exact(dim)
            .map(|v| crate::kmeans::nearest(&km.centroids, dim, v).0 as u32)
            .collect();
        km
    } else {
        kmeans(&rows.vectors, dim, 2, SPLIT_ITERS, 0x5b17 ^ n as u64)
    };
    let mut side: Vec<usize> = km.assignment.iter().map(|a| *a as usize).collect();
    let ones = side.iter().filter(|s| **s == 1).count();
    let floor = min_child.min(n / 2).max(1);
    if ones >= floor && n - ones >= floor && km.centroids.len() == 2 * dim {
        return side;
    }
    // Direction: between the 2-means centroids, or the widest dimension if they coincide.
    let mut dir: Vec<f32> = if km.centroids.len() == 2 * dim {
        (0..dim)
            .map(|d| km.centroids[dim + d] - km.centroids[d])
            .collect()
    } else {
        vec![0.0; dim]
    };
    if dir.iter().all(|x| *x == 0.0) {
        let m = mean(&rows.vectors, dim);
        let widest = (0..dim)
            .max_by(|&a, &b| {
                let spread = |d: usize| {
                    rows.vectors
                        .chunks_exact(dim)
                        .map(|v| (v[d] - m[d]).abs())
                        .sum::<f32>()
                };
                spread(a).total_cmp(&spread(b))
            })
            .unwrap_or(0);
        dir[widest] = 1.0;
    }
    let mut proj: Vec<(f32, usize)> = rows
        .vectors
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, v)| (v.iter().zip(&dir).map(|(a, b)| a * b).sum(), i))
        .collect();
    proj.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (rank, (_, i)) in proj.iter().enumerate() {
        side[*i] = usize::from(rank >= n / 2);
    }
    side
}

fn nearest_of(dist: Distance, v: &[f32], centroids: &[Vec<f32>]) -> (usize, f32) {
    centroids
        .iter()
        .enumerate()
        .map(|(i, c)| (i, dist.eval(v, c)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, f32::INFINITY))
}

fn mean(vectors: &[f32], dim: usize) -> Vec<f32> {
    let n = (vectors.len() / dim.max(1)).max(1) as f64;
    let mut sum = vec![0f64; dim];
    for v in vectors.chunks_exact(dim) {
        for (s, x) in sum.iter_mut().zip(v) {
            *s += *x as f64;
        }
    }
    sum.iter().map(|s| (s / n) as f32).collect()
}
