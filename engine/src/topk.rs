//! Bounded max-heap keeping the `k` smallest distances seen.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// An item with its distance; ordered by distance only.
#[derive(Debug, Clone, Copy)]
pub struct Scored<T> {
    /// Distance (smaller is nearer).
    pub dist: f32,
    /// What was scored.
    pub item: T,
}

impl<T> PartialEq for Scored<T> {
    fn eq(&self, o: &Self) -> bool {
        self.dist.total_cmp(&o.dist) == Ordering::Equal
    }
}
impl<T> Eq for Scored<T> {}
impl<T> PartialOrd for Scored<T> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<T> Ord for Scored<T> {
    fn cmp(&self, o: &Self) -> Ordering {
        self.dist.total_cmp(&o.dist)
    }
}

/// Keeps the `k` nearest items pushed into it.
#[derive(Debug)]
pub struct TopK<T> {
    k: usize,
    heap: BinaryHeap<Scored<T>>,
}

impl<T> TopK<T> {
    /// An empty collector for `k` items.
    pub fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    /// Distance an item must beat to enter (infinity until full).
    #[inline]
    pub fn threshold(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::INFINITY
        } else {
            self.heap.peek().map_or(f32::INFINITY, |s| s.dist)
        }
    }

    /// The items kept so far, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Scored<T>> {
        self.heap.iter()
    }

    /// Offers an item; returns whether it was kept.
    #[inline]
    pub fn push(&mut self, dist: f32, item: T) -> bool {
        if self.k == 0 || dist >= self.threshold() {
            return false;
        }
        if self.heap.len() < self.k {
            self.heap.push(Scored { dist, item });
        } else if let Some(mut top) = self.heap.peek_mut() {
            // One sift-down instead of a push and a pop.
            *top = Scored { dist, item };
        }
        true
    }

    /// Number of items held.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The items, nearest first.
    pub fn into_sorted(self) -> Vec<Scored<T>> {
        self.heap.into_sorted_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_k_smallest_in_order() {
        let mut t = TopK::new(3);
        for (i, d) in [5.0, 1.0, 4.0, 2.0, 3.0, 0.5].iter().enumerate() {
            t.push(*d, i);
        }
        let got: Vec<f32> = t.into_sorted().iter().map(|s| s.dist).collect();
        assert_eq!(got, vec![0.5, 1.0, 2.0]);
    }
}
