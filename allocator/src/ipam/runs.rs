//! A set of indices kept as maximal runs (start -> end, inclusive), so memory follows what is taken.

use std::collections::BTreeMap;

/// Taken indices. Runs never touch: two adjacent runs are always merged into one, which keeps the
/// representation canonical (equal sets compare equal) and makes the lowest free index the end of
/// the first run plus one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Runs {
    runs: BTreeMap<u128, u128>,
    len: u128,
}

impl Runs {
    /// Builds from sorted, distinct indices in one pass (the map is then bulk-built, densely packed).
    pub(crate) fn from_sorted(indices: impl IntoIterator<Item = u128>) -> Self {
        let mut runs: Vec<(u128, u128)> = Vec::new();
        let mut len = 0u128;
        for i in indices {
            len += 1;
            match runs.last_mut() {
                Some((_, end)) if i.checked_sub(1) == Some(*end) => *end = i,
                _ => {
                    debug_assert!(runs.last().is_none_or(|&(_, end)| end < i), "unsorted");
                    runs.push((i, i));
                }
            }
        }
        Self {
            runs: runs.into_iter().collect(),
            len,
        }
    }

    /// How many indices are taken.
    pub(crate) fn len(&self) -> u128 {
        self.len
    }

    /// How many runs the set is made of (memory is proportional to this).
    #[cfg(test)]
    pub(crate) fn run_count(&self) -> usize {
        self.runs.len()
    }

    /// The run holding `i`, if any.
    fn run_of(&self, i: u128) -> Option<(u128, u128)> {
        self.runs
            .range(..=i)
            .next_back()
            .filter(|&(_, &end)| end >= i)
            .map(|(&start, &end)| (start, end))
    }

    pub(crate) fn contains(&self, i: u128) -> bool {
        self.run_of(i).is_some()
    }

    /// The lowest index not taken; `None` only when every u128 is taken.
    pub(crate) fn lowest_free(&self) -> Option<u128> {
        match self.runs.first_key_value() {
            Some((0, &end)) => end.checked_add(1),
            _ => Some(0),
        }
    }

    /// Takes `i`; `false` when it was already taken.
    pub(crate) fn insert(&mut self, i: u128) -> bool {
        let left = self.runs.range_mut(..=i).next_back();
        let start = match left {
            Some((_, end)) if *end >= i => return false,
            Some((&start, end)) if *end + 1 == i => {
                *end = i;
                start
            }
            _ => {
                self.runs.insert(i, i);
                i
            }
        };
        // Join the run that starts right after `i`, if any.
        if let Some(next) = i.checked_add(1)
            && let Some(next_end) = self.runs.remove(&next)
        {
            self.runs.insert(start, next_end);
        }
        self.len += 1;
        true
    }

    /// Frees `i`; `false` when it was not taken.
    pub(crate) fn remove(&mut self, i: u128) -> bool {
        let Some((start, end)) = self.run_of(i) else {
            return false;
        };
        if start == i {
            self.runs.remove(&start);
        } else {
            self.runs.insert(start, i - 1);
        }
        if i < end {
            self.runs.insert(i + 1, end);
        }
        self.len -= 1;
        true
    }

    /// Every taken index, ascending.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u128> + '_ {
        self.runs.iter().flat_map(|(&start, &end)| start..=end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_runs_maximal() {
        // (name, inserts, removes, want runs)
        type Case<'a> = (&'a str, &'a [u128], &'a [u128], &'a [(u128, u128)]);
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
                "top of u128",
                &[u128::MAX, u128::MAX - 1],
                &[],
                &[(u128::MAX - 1, u128::MAX)],
            ),
        ];
        for (name, inserts, removes, want) in cases {
            let mut runs = Runs::default();
            for &i in *inserts {
                assert!(runs.insert(i), "{name}: insert {i}");
                assert!(!runs.insert(i), "{name}: insert {i} twice");
            }
            for &i in *removes {
                assert_eq!(runs.remove(i), inserts.contains(&i), "{name}: remove {i}");
            }
            let got: Vec<(u128, u128)> = runs.runs.iter().map(|(&s, &e)| (s, e)).collect();
            assert_eq!(got, *want, "{name}");
            let rebuilt = Runs::from_sorted(runs.iter().collect::<Vec<_>>());
            assert_eq!(rebuilt, runs, "{name}: rebuilt");
        }
    }

    #[test]
    fn lowest_free_is_after_the_first_run() {
        let cases: &[(&str, &[u128], Option<u128>)] = &[
            ("empty", &[], Some(0)),
            ("zero free", &[1, 2], Some(0)),
            ("after first run", &[0, 1, 2, 5], Some(3)),
            ("everything", &[], None),
        ];
        for (name, taken, want) in cases {
            let mut runs = Runs::from_sorted(taken.iter().copied());
            if *name == "everything" {
                runs.runs.insert(0, u128::MAX);
            }
            assert_eq!(runs.lowest_free(), *want, "{name}");
        }
    }
}
