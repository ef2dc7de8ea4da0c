//! The allocatable addresses of one family as a dense index space: rank and select by arithmetic.
//!
//! A pool is normalised to sorted, disjoint ranges. Its allocatable addresses (the ranges less
//! the exclusions) are numbered 0, 1, 2, ... in address order; [`Space::rank`] maps an address to
//! its index and [`Space::select`] maps back. Both cost a binary search over the ranges and the
//! reserved addresses, never a walk over addresses, so allocation state can be kept as runs of
//! indices where exclusions leave no holes.

use std::net::IpAddr;

use ferrolb_api::pool::{AddrRange, Family, from_u128, to_u128};

/// Why an address of the right family is not allocatable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outside {
    /// In no range of the pool.
    NoRange,
    /// An IPv4 address ending in `.0` or `.255` while `avoidBuggyIPs` is on.
    Buggy,
    /// One of the pool's reserved addresses (e.g. a local subnet's network or broadcast address).
    Reserved,
}

impl std::fmt::Display for Outside {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outside::NoRange => "it is in no range of the pool",
            Outside::Buggy => "it ends in .0 or .255 and the pool avoids buggy IPs",
            Outside::Reserved => "it is reserved (e.g. a subnet's network or broadcast address)",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Space {
    family: Family,
    /// Sorted, disjoint, non-touching inclusive ranges.
    ranges: Vec<(u128, u128)>,
    /// `raw_before[k]`: addresses of `ranges[..k]` that are not buggy (reserved ones counted).
    raw_before: Vec<u128>,
    /// Skip IPv4 addresses ending in .0 and .255.
    buggy: bool,
    /// Reserved addresses inside a range and not already buggy, sorted, distinct.
    reserved: Vec<u128>,
    /// `gaps[j]`: allocatable addresses before `reserved[j]`, i.e. its raw rank minus `j`.
    gaps: Vec<u128>,
    /// Index of the last allocatable address; `None` when there is none. An index, not a
    /// count, so that `::/0` (2^128 addresses) still fits.
    last: Option<u128>,
}

/// IPv4 addresses below `x` that do not end in .0 or .255: 254 of every 256.
fn not_buggy_below(x: u128) -> u128 {
    (x / 256) * 254 + (x % 256).saturating_sub(1).min(254)
}

/// The inverse of [`not_buggy_below`]: the `t`-th (0-based) address not ending in .0 or .255.
fn nth_not_buggy(t: u128) -> u128 {
    (t / 254) * 256 + 1 + t % 254
}

fn is_buggy(x: u128) -> bool {
    matches!(x & 0xff, 0 | 0xff)
}

impl Space {
    /// `ranges` must all be of `family` and ordered (the caller checks). `reserved` may hold
    /// addresses of any family and outside every range: those are ignored.
    pub(crate) fn new(
        family: Family,
        ranges: &[AddrRange],
        avoid_buggy_ips: bool,
        reserved: &[IpAddr],
    ) -> Self {
        let mut sorted: Vec<(u128, u128)> = ranges
            .iter()
            .map(|r| (to_u128(r.start), to_u128(r.end)))
            .collect();
        sorted.sort_unstable();
        let mut merged: Vec<(u128, u128)> = Vec::with_capacity(sorted.len());
        for (start, end) in sorted {
            match merged.last_mut() {
                // Overlapping or touching: `start <= last_end + 1`, written without overflow.
                Some((_, last_end)) if start <= *last_end || start - *last_end == 1 => {
                    *last_end = (*last_end).max(end);
                }
                _ => merged.push((start, end)),
            }
        }
        let mut space = Space {
            family,
            ranges: merged,
            raw_before: Vec::new(),
            buggy: avoid_buggy_ips && family == Family::V4,
            reserved: Vec::new(),
            gaps: Vec::new(),
            last: None,
        };

        let mut before = 0u128;
        let mut last_raw: Option<u128> = None;
        for &(start, end) in &space.ranges {
            space.raw_before.push(before);
            if let Some(count_minus_one) = space.raw_count_minus_one(start, end) {
                // Ranges are disjoint, so every prefix sum but the full one fits in a u128.
                last_raw = Some(before + count_minus_one);
                before = before.wrapping_add(count_minus_one).wrapping_add(1);
            }
        }

        let mut kept: Vec<u128> = reserved
            .iter()
            .filter(|a| Family::of(**a) == family)
            .map(|a| to_u128(*a))
            .filter(|&a| space.range_of(a).is_some() && !(space.buggy && is_buggy(a)))
            .collect();
        kept.sort_unstable();
        kept.dedup();
        space.gaps = kept
            .iter()
            .enumerate()
            .map(|(j, &a)| space.raw_rank(a) - j as u128)
            .collect();
        space.last = last_raw.and_then(|l| l.checked_sub(kept.len() as u128));
        space.reserved = kept;
        space
    }

    pub(crate) fn family(&self) -> Family {
        self.family
    }

    /// Allocatable addresses of a range less one, or `None` when it has none.
    fn raw_count_minus_one(&self, start: u128, end: u128) -> Option<u128> {
        if self.buggy {
            (not_buggy_below(end + 1) - not_buggy_below(start)).checked_sub(1)
        } else {
            Some(end - start)
        }
    }

    fn not_buggy_below(&self, x: u128) -> u128 {
        if self.buggy { not_buggy_below(x) } else { x }
    }

    fn range_of(&self, a: u128) -> Option<usize> {
        let k = self.ranges.partition_point(|&(start, _)| start <= a);
        let k = k.checked_sub(1)?;
        (a <= self.ranges[k].1).then_some(k)
    }

    /// Rank among the addresses of the ranges that are not buggy; `a` must be one of them.
    fn raw_rank(&self, a: u128) -> u128 {
        let k = self.range_of(a).expect("raw_rank of an address in a range");
        self.raw_before[k] + (self.not_buggy_below(a) - self.not_buggy_below(self.ranges[k].0))
    }

    fn raw_select(&self, raw: u128) -> u128 {
        let k = self.raw_before.partition_point(|&b| b <= raw) - 1;
        let t = self.not_buggy_below(self.ranges[k].0) + (raw - self.raw_before[k]);
        if self.buggy { nth_not_buggy(t) } else { t }
    }

    /// Why `addr` is not allocatable, or `None` when it is.
    pub(crate) fn why_outside(&self, addr: IpAddr) -> Option<Outside> {
        if Family::of(addr) != self.family {
            return Some(Outside::NoRange);
        }
        let a = to_u128(addr);
        if self.range_of(a).is_none() {
            Some(Outside::NoRange)
        } else if self.buggy && is_buggy(a) {
            Some(Outside::Buggy)
        } else if self.reserved.binary_search(&a).is_ok() {
            Some(Outside::Reserved)
        } else {
            None
        }
    }

    pub(crate) fn contains(&self, addr: IpAddr) -> bool {
        self.why_outside(addr).is_none()
    }

    /// The index of an allocatable address, `None` when it is not allocatable.
    pub(crate) fn rank(&self, addr: IpAddr) -> Option<u128> {
        if !self.contains(addr) {
            return None;
        }
        let a = to_u128(addr);
        let reserved_below = self.reserved.partition_point(|&r| r < a) as u128;
        Some(self.raw_rank(a) - reserved_below)
    }

    /// The address of index `index`; `index` must be at most [`Space::last`].
    pub(crate) fn select(&self, index: u128) -> IpAddr {
        debug_assert!(
            self.last.is_some_and(|l| index <= l),
            "select beyond the pool"
        );
        let reserved_before = self.gaps.partition_point(|&g| g <= index) as u128;
        let a = self.raw_select(index + reserved_before);
        from_u128(self.family, a).expect("a selected address lies in a range of its family")
    }

    /// Index of the last allocatable address.
    pub(crate) fn last(&self) -> Option<u128> {
        self.last
    }

    /// Allocatable addresses, saturating at `u128::MAX` (only `::/0` without exclusions).
    pub(crate) fn capacity(&self) -> u128 {
        self.last.map_or(0, |l| l.saturating_add(1))
    }
}

#[cfg(test)]
mod tests;
