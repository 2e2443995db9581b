//! Compact per-row columns of stored chunks: ids and sequence numbers narrowed to 32-bit
//! offsets when they fit, payloads that cost nothing when a chunk has none, and per-row f32 factors (code
//! norms, sketch factors) as 16-bit levels over the chunk's own range. Readers see ids,
//! sequence numbers and payloads through borrowed views that memtables (plain vectors)
//! produce too.

use std::sync::Arc;

/// A u64 per row (a chunk's ids or sequence numbers): offsets from the smallest when the
/// spread fits in 32 bits (sequence numbers of one flush always do; ids do when they are
/// dense, as most are), full width otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum U64Column {
    /// `base + offset` per row.
    Narrow {
        /// The smallest value.
        base: u64,
        /// Each row's distance from `base`.
        offsets: Box<[u32]>,
    },
    /// One full value per row.
    Wide(Box<[u64]>),
}

impl U64Column {
    /// The column for `values`, narrowed when their spread allows.
    pub fn new(values: &[u64]) -> U64Column {
        let base = values.iter().copied().min().unwrap_or(0);
        let top = values.iter().copied().max().unwrap_or(0);
        if top - base <= u32::MAX as u64 {
            U64Column::Narrow {
                base,
                offsets: values.iter().map(|&s| (s - base) as u32).collect(),
            }
        } else {
            U64Column::Wide(values.into())
        }
    }

    /// A borrowed view.
    pub fn view(&self) -> U64View<'_> {
        match self {
            U64Column::Narrow { base, offsets } => U64View::Narrow(*base, offsets),
            U64Column::Wide(s) => U64View::Wide(s),
        }
    }

    /// Value of row `r`.
    #[inline]
    pub fn get(&self, r: usize) -> u64 {
        self.view().get(r)
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.view().len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held in memory.
    pub fn resident_bytes(&self) -> usize {
        match self {
            U64Column::Narrow { offsets, .. } => offsets.len() * 4,
            U64Column::Wide(s) => s.len() * 8,
        }
    }
}

/// A borrowed u64 column: a chunk's [`U64Column`] or a memtable's plain vector.
#[derive(Debug, Clone, Copy)]
pub enum U64View<'a> {
    /// `base + offset` per row.
    Narrow(u64, &'a [u32]),
    /// One full value per row.
    Wide(&'a [u64]),
}

impl<'a> U64View<'a> {
    /// Value of row `r`.
    #[inline]
    pub fn get(self, r: usize) -> u64 {
        match self {
            U64View::Narrow(base, offsets) => base + offsets[r] as u64,
            U64View::Wide(s) => s[r],
        }
    }

    /// Rows.
    pub fn len(self) -> usize {
        match self {
            U64View::Narrow(_, o) => o.len(),
            U64View::Wide(s) => s.len(),
        }
    }

    /// True when there are no rows.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// Rows `range` only.
    pub fn slice(self, range: std::ops::Range<usize>) -> U64View<'a> {
        match self {
            U64View::Narrow(base, o) => U64View::Narrow(base, &o[range]),
            U64View::Wide(s) => U64View::Wide(&s[range]),
        }
    }

    /// Every value in row order.
    pub fn iter(self) -> impl Iterator<Item = u64> + 'a {
        (0..self.len()).map(move |r| self.get(r))
    }
}

impl<'a> From<&'a [u64]> for U64View<'a> {
    fn from(s: &'a [u64]) -> U64View<'a> {
        U64View::Wide(s)
    }
}

impl<'a> From<&'a Vec<u64>> for U64View<'a> {
    fn from(s: &'a Vec<u64>) -> U64View<'a> {
        U64View::Wide(s)
    }
}

/// One optional payload per row.
pub type PayloadSlots = [Option<Arc<str>>];

/// Payloads of a chunk's rows: no per-row slots at all when no row has one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PayloadColumn(Option<Box<PayloadSlots>>);

impl PayloadColumn {
    /// The column for `payloads` (empty when every one is `None`).
    pub fn new(payloads: Vec<Option<Arc<str>>>) -> PayloadColumn {
        if payloads.iter().all(Option::is_none) {
            PayloadColumn(None)
        } else {
            PayloadColumn(Some(payloads.into_boxed_slice()))
        }
    }

    /// A borrowed view.
    pub fn view(&self) -> PayloadView<'_> {
        PayloadView(self.0.as_deref())
    }

    /// Payload of row `r`.
    #[inline]
    pub fn get(&self, r: usize) -> Option<&Arc<str>> {
        self.view().get(r)
    }

    /// Bytes held in memory: the slots (when any row has a payload) and the text.
    pub fn resident_bytes(&self) -> usize {
        self.0.as_deref().map_or(0, |s| {
            std::mem::size_of_val(s) + s.iter().flatten().map(|p| p.len()).sum::<usize>()
        })
    }
}

/// Borrowed payloads: a chunk's [`PayloadColumn`] or a memtable's plain vector (`None`: no
/// row has a payload).
#[derive(Debug, Clone, Copy, Default)]
pub struct PayloadView<'a>(pub Option<&'a PayloadSlots>);

impl<'a> PayloadView<'a> {
    /// Payload of row `r`.
    #[inline]
    pub fn get(self, r: usize) -> Option<&'a Arc<str>> {
        self.0.and_then(|s| s[r].as_ref())
    }

    /// The slots, when any row has a payload.
    pub fn slots(self) -> Option<&'a PayloadSlots> {
        self.0
    }
}

impl<'a> From<&'a Vec<Option<Arc<str>>>> for PayloadView<'a> {
    fn from(s: &'a Vec<Option<Arc<str>>>) -> PayloadView<'a> {
        PayloadView(Some(s))
    }
}

/// How a value is rounded to its column's 16-bit grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Never above the value (a term that must not grow).
    Down,
    /// To the nearest level.
    Nearest,
    /// Never below the value (a term that must not shrink).
    Up,
}

/// An unsigned integer a value is rounded to on a [`Levels`] grid.
pub trait Level: Copy + Default + PartialEq + std::fmt::Debug {
    /// The highest level.
    const TOP: f32;
    /// `t` (already rounded and clamped to `0..=TOP`) as a level.
    fn from_f32(t: f32) -> Self;
    /// The level as a float.
    fn to_f32(self) -> f32;
}

/// [`Level`] for an unsigned integer type.
macro_rules! level {
    ($t:ty) => {
        impl Level for $t {
            const TOP: f32 = <$t>::MAX as f32;
            #[inline]
            fn from_f32(t: f32) -> $t {
                t as $t
            }
            #[inline]
            fn to_f32(self) -> f32 {
                self as f32
            }
        }
    };
}

level!(u16);
level!(u8);

/// Per-row f32 values stored as integer levels over the column's own range:
/// `value = lo + step * level`, a resolution of 1/TOP of the spread between the rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Levels<L: Level> {
    lo: f32,
    step: f32,
    levels: Box<[L]>,
}

/// 16-bit levels (1/65535 of the spread): code norms and sketch factors.
pub type Levels16 = Levels<u16>;

/// 8-bit levels (1/255 of the spread): a bucket's anchor, which only a drift measure reads.
pub type Levels8 = Levels<u8>;

impl<L: Level> Levels<L> {
    /// `values` on a grid spanning their range, each rounded by `round`.
    pub fn new(values: &[f32], round: Round) -> Levels<L> {
        let lo = values.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if values.is_empty() || hi <= lo || !(hi - lo).is_finite() {
            return Levels {
                lo: if lo.is_finite() { lo } else { 0.0 },
                step: 0.0,
                levels: vec![L::default(); values.len()].into(),
            };
        }
        let step = (hi - lo) / L::TOP;
        let levels = values
            .iter()
            .map(|&v| {
                let t = (v - lo) / step;
                let t = match round {
                    Round::Down => t.floor(),
                    Round::Nearest => t.round(),
                    Round::Up => t.ceil(),
                };
                L::from_f32(t.clamp(0.0, L::TOP))
            })
            .collect();
        Levels { lo, step, levels }
    }

    /// Value of row `r`.
    #[inline]
    pub fn get(&self, r: usize) -> f32 {
        self.lo + self.step * self.levels[r].to_f32()
    }

    /// Every value, in row order.
    pub fn to_vec(&self) -> Vec<f32> {
        (0..self.len()).map(|r| self.get(r)).collect()
    }

    /// The levels (a kernel maps them back with [`Levels::lo`] and [`Levels::step`]).
    pub fn levels(&self) -> &[L] {
        &self.levels
    }

    /// Value of level 0.
    pub fn lo(&self) -> f32 {
        self.lo
    }

    /// Value of one level.
    pub fn step(&self) -> f32 {
        self.step
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.levels.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    /// Bytes held in memory.
    pub fn resident_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.levels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_read_back_within_half_a_step() {
        let values: Vec<f32> = (0..384).map(|i| ((i * 37) % 101) as f32 * 0.013 - 0.6).collect();
        let spread = 100.0 * 0.013;
        let eight = Levels8::new(&values, Round::Nearest);
        let sixteen = Levels16::new(&values, Round::Nearest);
        assert_eq!(eight.resident_bytes(), 384);
        assert_eq!(sixteen.resident_bytes(), 768);
        for (i, v) in values.iter().enumerate() {
            assert!((eight.get(i) - v).abs() <= spread / 255.0 * 0.5 + 1e-6);
            assert!((sixteen.get(i) - v).abs() <= spread / 65535.0 * 0.5 + 1e-6);
        }
    }

    #[test]
    fn u64s_narrow_when_they_fit_and_read_back_either_way() {
        let near = [10u64, 7, 7 + u32::MAX as u64];
        let c = U64Column::new(&near);
        assert!(matches!(c, U64Column::Narrow { base: 7, .. }));
        assert_eq!(c.view().iter().collect::<Vec<_>>(), near);
        assert_eq!(c.resident_bytes(), 12);
        let far = [10u64, 7, 8 + u32::MAX as u64];
        let c = U64Column::new(&far);
        assert!(matches!(c, U64Column::Wide(_)));
        assert_eq!(c.view().iter().collect::<Vec<_>>(), far);
        assert_eq!(c.view().slice(1..3).get(1), far[2]);
        assert!(U64Column::new(&[]).view().is_empty());
    }

    #[test]
    fn levels_stay_within_a_step_and_round_the_asked_way() {
        let values: Vec<f32> = (0..1000)
            .map(|i| ((i * 7919) % 1000) as f32 * 0.37 - 50.0)
            .collect();
        let spread = 999.0 * 0.37;
        for round in [Round::Down, Round::Nearest, Round::Up] {
            let c = Levels16::new(&values, round);
            for (r, &v) in values.iter().enumerate() {
                let got = c.get(r);
                let slack = 1e-6 * spread;
                assert!(
                    (got - v).abs() <= c.step() + slack,
                    "{round:?} {got} vs {v}"
                );
                match round {
                    Round::Down => assert!(got <= v + slack, "{got} above {v}"),
                    Round::Up => assert!(got >= v - slack, "{got} below {v}"),
                    Round::Nearest => assert!((got - v).abs() <= c.step() / 2.0 + slack),
                }
            }
        }
        let flat = Levels16::new(&[2.5; 4], Round::Nearest);
        assert_eq!((flat.get(3), flat.step()), (2.5, 0.0));
        assert!(Levels16::new(&[], Round::Up).is_empty());
    }

    #[test]
    fn payloads_cost_nothing_when_absent() {
        let none = PayloadColumn::new(vec![None; 100]);
        assert_eq!(none.resident_bytes(), 0);
        assert_eq!(none.get(99), None);
        let some = PayloadColumn::new(vec![None, Some(Arc::from("abc"))]);
        assert_eq!(some.get(1).map(|p| &**p), Some("abc"));
        assert_eq!(some.get(0), None);
        assert_eq!(
            some.resident_bytes(),
            2 * std::mem::size_of::<Option<Arc<str>>>() + 3
        );
    }
}
