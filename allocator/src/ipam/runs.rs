//! A set of indices kept as maximal runs (start -> end, inclusive), so memory follows what is taken.

use std::collections::BTreeMap;
use std::fmt::Debug;

/// Taken indices of one index space. Runs never touch: two adjacent runs are always merged into
/// one, which keeps the representation canonical (equal sets compare equal) and makes the lowest
/// free index the end of the first run plus one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Runs {
    map: Map,
    len: u128,
}

/// Index spaces that fit a u64 (every pool up to a `/64`) use u64 runs: half the memory of u128
/// ones, which only pools bigger than a `/64` need.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Map {
    Narrow(RunMap<u64>),
    Wide(RunMap<u128>),
}

macro_rules! each_width {
    ($map:expr, $m:ident => $body:expr) => {
        match $map {
            Map::Narrow($m) => $body,
            Map::Wide($m) => $body,
        }
    };
}

impl Runs {
    /// Nothing taken, in a space whose last index is `last`.
    pub(crate) fn new(last: Option<u128>) -> Self {
        Self::from_sorted(last, [])
    }

    /// Builds from sorted, distinct indices (at most `last`) in one pass; the map is then
    /// bulk-built, densely packed.
    pub(crate) fn from_sorted(last: Option<u128>, indices: impl IntoIterator<Item = u128>) -> Self {
        let mut runs: Vec<(u128, u128)> = Vec::new();
        let mut len = 0u128;
        for i in indices {
            debug_assert!(last.is_some_and(|l| i <= l), "index beyond the space");
            len += 1;
            match runs.last_mut() {
                Some((_, end)) if i.checked_sub(1) == Some(*end) => *end = i,
                _ => {
                    debug_assert!(runs.last().is_none_or(|&(_, end)| end < i), "unsorted");
                    runs.push((i, i));
                }
            }
        }
        let map = if last.is_none_or(|l| l <= u128::from(u64::MAX)) {
            Map::Narrow(RunMap::from_runs(runs))
        } else {
            Map::Wide(RunMap::from_runs(runs))
        };
        Self { map, len }
    }

    /// How many indices are taken.
    pub(crate) fn len(&self) -> u128 {
        self.len
    }

    /// How many runs the set is made of (memory is proportional to this).
    #[cfg(test)]
    pub(crate) fn run_count(&self) -> usize {
        each_width!(&self.map, m => m.runs.len())
    }

    pub(crate) fn contains(&self, i: u128) -> bool {
        each_width!(&self.map, m => m.contains(i))
    }

    /// The lowest index not taken; `None` when no index of the map's width is left.
    pub(crate) fn lowest_free(&self) -> Option<u128> {
        each_width!(&self.map, m => m.lowest_free())
    }

    /// The lowest index of `lo..=hi` not taken.
    pub(crate) fn lowest_free_in(&self, lo: u128, hi: u128) -> Option<u128> {
        each_width!(&self.map, m => m.lowest_free_in(lo, hi))
    }

    /// How many indices of `lo..=hi` are taken: O(log n) plus the runs that meet the interval.
    pub(crate) fn count_in(&self, lo: u128, hi: u128) -> u128 {
        each_width!(&self.map, m => m.count_in(lo, hi))
    }

    /// Takes `i`, which must lie in the space; `false` when it was already taken.
    pub(crate) fn insert(&mut self, i: u128) -> bool {
        let inserted = each_width!(&mut self.map, m => m.insert(i));
        self.len += u128::from(inserted);
        inserted
    }

    /// Frees `i`; `false` when it was not taken.
    pub(crate) fn remove(&mut self, i: u128) -> bool {
        let removed = each_width!(&mut self.map, m => m.remove(i));
        self.len -= u128::from(removed);
        removed
    }

    /// Every taken index, ascending.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u128> + '_ {
        let runs: Box<dyn Iterator<Item = (u128, u128)> + '_> = each_width!(
            &self.map,
            m => Box::new(m.pairs())
        );
        runs.flat_map(|(start, end)| start..=end)
    }
}

/// An unsigned integer type runs can be kept in.
trait Index: Copy + Ord + Debug + Into<u128> + TryFrom<u128, Error: Debug> {
    const ZERO: Self;
    fn checked_succ(self) -> Option<Self>;
    /// `self - 1`; `self` is not zero.
    fn pred(self) -> Self;
}

macro_rules! index {
    ($t:ty) => {
        impl Index for $t {
            const ZERO: Self = 0;
            fn checked_succ(self) -> Option<Self> {
                self.checked_add(1)
            }
            fn pred(self) -> Self {
                self - 1
            }
        }
    };
}
index!(u64);
index!(u128);

#[derive(Clone, Debug, PartialEq, Eq)]
struct RunMap<K> {
    runs: BTreeMap<K, K>,
}

impl<K: Index> RunMap<K> {
    fn from_runs(runs: Vec<(u128, u128)>) -> Self {
        Self {
            runs: runs
                .into_iter()
                .map(|(s, e)| (Self::narrow(s), Self::narrow(e)))
                .collect(),
        }
    }

    fn narrow(i: u128) -> K {
        K::try_from(i).expect("the map is wide enough for every index of its space")
    }

    /// The runs as (start, end), ascending.
    fn pairs(&self) -> impl Iterator<Item = (u128, u128)> + '_ {
        self.runs.iter().map(|(&s, &e)| (s.into(), e.into()))
    }

    /// The run holding `i`, if any.
    fn run_of(&self, i: K) -> Option<(K, K)> {
        self.runs
            .range(..=i)
            .next_back()
            .filter(|&(_, &end)| end >= i)
            .map(|(&start, &end)| (start, end))
    }

    fn contains(&self, i: u128) -> bool {
        K::try_from(i).is_ok_and(|i| self.run_of(i).is_some())
    }

    fn lowest_free(&self) -> Option<u128> {
        match self.runs.first_key_value() {
            Some((&start, &end)) if start == K::ZERO => end.checked_succ().map(Into::into),
            _ => Some(0),
        }
    }

    fn lowest_free_in(&self, lo: u128, hi: u128) -> Option<u128> {
        if lo > hi {
            return None;
        }
        let Ok(k) = K::try_from(lo) else {
            return Some(lo);
        };
        match self.run_of(k) {
            None => Some(lo),
            // Runs are maximal: the index after one is free.
            Some((_, end)) => end
                .checked_succ()
                .map(Into::into)
                .filter(|&i: &u128| i <= hi),
        }
    }

    fn count_in(&self, lo: u128, hi: u128) -> u128 {
        if lo > hi {
            return 0;
        }
        let top = K::try_from(hi).unwrap_or_else(|_| Self::narrow(u128::from(u64::MAX)));
        let mut n = 0;
        for (&start, &end) in self.runs.range(..=top).rev() {
            let (start, end): (u128, u128) = (start.into(), end.into());
            if end < lo {
                break;
            }
            n += end.min(hi) - start.max(lo) + 1;
        }
        n
    }

    fn insert(&mut self, i: u128) -> bool {
        let i = Self::narrow(i);
        let left = self.runs.range_mut(..=i).next_back();
        let start = match left {
            Some((_, end)) if *end >= i => return false,
            Some((&start, end)) if end.checked_succ() == Some(i) => {
                *end = i;
                start
            }
            _ => {
                self.runs.insert(i, i);
                i
            }
        };
        // Join the run that starts right after `i`, if any.
        if let Some(next) = i.checked_succ()
            && let Some(next_end) = self.runs.remove(&next)
        {
            self.runs.insert(start, next_end);
        }
        true
    }

    fn remove(&mut self, i: u128) -> bool {
        let Ok(i) = K::try_from(i) else {
            return false;
        };
        let Some((start, end)) = self.run_of(i) else {
            return false;
        };
        if start == i {
            self.runs.remove(&start);
        } else {
            self.runs.insert(start, i.pred());
        }
        if let Some(next) = i.checked_succ()
            && i < end
        {
            self.runs.insert(next, end);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NARROW: Option<u128> = Some(u64::MAX as u128);
    const WIDE: Option<u128> = Some(u128::MAX);

    fn run_list(runs: &Runs) -> Vec<(u128, u128)> {
        each_width!(&runs.map, m => m.pairs().collect())
    }

    #[test]
    fn keeps_runs_maximal() {
        // (name, inserts, removes, want runs)
        type Case<'a> = (&'a str, &'a [u128], &'a [u128], &'a [(u128, u128)]);
        const TOP64: u128 = u64::MAX as u128;
        let cases: &[Case] = &[
            ("ascending merge", &[0, 1, 2], &[], &[(0, 2)]),
            ("descending merge", &[2, 1, 0], &[], &[(0, 2)]),
            ("fills a hole", &[0, 2, 1], &[], &[(0, 2)]),
            ("isolated", &[0, 2, 4], &[], &[(0, 0), (2, 2), (4, 4)]),
            ("remove middle splits", &[0, 1, 2], &[1], &[(0, 0), (2, 2)]),
            ("remove start", &[0, 1, 2], &[0], &[(1, 2)]),
            ("remove end", &[0, 1, 2], &[2], &[(0, 1)]),
            ("remove last one", &[7], &[7], &[]),
            ("remove absent", &[7], &[8], &[(7, 7)]),
            (
                "top of u64",
                &[TOP64, TOP64 - 1],
                &[TOP64],
                &[(TOP64 - 1, TOP64 - 1)],
            ),
            (
                "top of u128",
                &[u128::MAX, u128::MAX - 1],
                &[],
                &[(u128::MAX - 1, u128::MAX)],
            ),
        ];
        for (name, inserts, removes, want) in cases {
            let fits_u64 = inserts.iter().all(|&i| i <= TOP64);
            for last in [NARROW, WIDE] {
                if last == NARROW && !fits_u64 {
                    continue;
                }
                let mut runs = Runs::new(last);
                for &i in *inserts {
                    assert!(runs.insert(i), "{name}: insert {i}");
                    assert!(!runs.insert(i), "{name}: insert {i} twice");
                }
                for &i in *removes {
                    assert_eq!(runs.remove(i), inserts.contains(&i), "{name}: remove {i}");
                    assert!(!runs.contains(i), "{name}: {i} removed");
                }
                assert_eq!(run_list(&runs), *want, "{name} {last:?}");
                assert_eq!(
                    runs.len(),
                    runs.iter().count() as u128,
                    "{name} {last:?}: len"
                );
                let rebuilt = Runs::from_sorted(last, runs.iter().collect::<Vec<_>>());
                assert_eq!(rebuilt, runs, "{name} {last:?}: rebuilt");
            }
        }
    }

    #[test]
    fn lowest_free_is_after_the_first_run() {
        // (name, space's last index, taken, want)
        type Case<'a> = (&'a str, Option<u128>, &'a [u128], Option<u128>);
        let cases: &[Case] = &[
            ("empty", NARROW, &[], Some(0)),
            ("zero free", NARROW, &[1, 2], Some(0)),
            ("after first run", NARROW, &[0, 1, 2, 5], Some(3)),
            ("after first run, wide", WIDE, &[0, 1, 2, 5], Some(3)),
            ("every u64 taken", NARROW, &[], None),
            ("every u128 taken", WIDE, &[], None),
        ];
        for (name, last, taken, want) in cases {
            let mut runs = Runs::from_sorted(*last, taken.iter().copied());
            match &mut runs.map {
                Map::Narrow(m) if want.is_none() => drop(m.runs.insert(0, u64::MAX)),
                Map::Wide(m) if want.is_none() => drop(m.runs.insert(0, u128::MAX)),
                _ => {}
            }
            assert_eq!(runs.lowest_free(), *want, "{name}");
        }
    }
}
