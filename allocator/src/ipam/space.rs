//! The allocatable addresses of one family as a dense index space: rank and select by arithmetic.
//!
//! A pool is normalised to sorted, disjoint segments. Its allocatable addresses (the ranges less
//! the exclusions) are numbered 0, 1, 2, ... in address order; [`Space::rank`] maps an address to
//! its index and [`Space::select`] maps back. Both cost a binary search over the segments and the
//! reserved addresses, never a walk over addresses, so allocation state can be kept as runs of
//! indices where exclusions leave no holes. Periodic exclusions (the edges of every aggregation
//! block, `avoidBuggyIPs`) are counted by arithmetic per segment, so a `/64` cut into `/120`
//! aggregates costs as little as one without.

use std::net::IpAddr;

use ferrolb_api::pool::{AddrRange, Family, from_u128, to_u128};

use super::Aggregate;

/// Why an address of the right family is not allocatable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outside {
    /// In no range of the pool.
    NoRange,
    /// An IPv4 address ending in `.0` or `.255` while `avoidBuggyIPs` is on.
    Buggy,
    /// The network or broadcast address (IPv4) or the Subnet-Router anycast address (IPv6) of
    /// its aggregation block: the kernel of every node that carries the block treats it as such.
    BlockEdge,
    /// One of the pool's reserved addresses (e.g. a local subnet's network or broadcast address).
    Reserved,
}

impl std::fmt::Display for Outside {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outside::NoRange => "it is in no range of the pool",
            Outside::Buggy => "it ends in .0 or .255 and the pool avoids buggy IPs",
            Outside::BlockEdge => {
                "it is the network or broadcast (IPv6: Subnet-Router anycast) address of its aggregation block"
            }
            Outside::Reserved => "it is reserved (e.g. a subnet's network or broadcast address)",
        })
    }
}

/// Addresses skipped in every aligned block of `2^bits` addresses: the first, and for IPv4 the
/// last too. `bits == 0` skips nothing; otherwise `2 <= bits <= 127`, so that a block keeps at
/// least one address and its size fits a u128.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Edges {
    bits: u8,
    last_too: bool,
}

impl Edges {
    pub(crate) const NONE: Edges = Edges {
        bits: 0,
        last_too: false,
    };

    /// The edges of blocks of `2^bits` addresses of `family`; none for blocks of one or two
    /// addresses (IPv4 /31 and /32, RFC 3021; IPv6 /127 and /128, RFC 6164).
    pub(crate) fn of_blocks(family: Family, bits: u8) -> Self {
        if (2..=127).contains(&bits) {
            Edges {
                bits,
                last_too: family == Family::V4,
            }
        } else {
            Edges::NONE
        }
    }

    /// The union of two patterns of one family: the smaller blocks' edges include the larger
    /// ones' (the first and last address of an aligned block are those of an aligned sub-block).
    fn union(self, other: Edges) -> Edges {
        match (self.bits, other.bits) {
            (0, _) => other,
            (_, 0) => self,
            (a, b) if a <= b => self,
            _ => other,
        }
    }

    fn mask(self) -> u128 {
        (1u128 << self.bits) - 1
    }

    /// Kept addresses per block.
    fn per_block(self) -> u128 {
        self.mask() - u128::from(self.last_too)
    }

    pub(crate) fn skips(self, x: u128) -> bool {
        if self.bits == 0 {
            return false;
        }
        let low = x & self.mask();
        low == 0 || (self.last_too && low == self.mask())
    }

    /// Kept addresses below `x`.
    pub(crate) fn kept_below(self, x: u128) -> u128 {
        if self.bits == 0 {
            return x;
        }
        let per = self.per_block();
        (x >> self.bits) * per + (x & self.mask()).saturating_sub(1).min(per)
    }

    /// The inverse of [`Edges::kept_below`]: the `t`-th (0-based) kept address.
    pub(crate) fn nth_kept(self, t: u128) -> u128 {
        if self.bits == 0 {
            return t;
        }
        let per = self.per_block();
        ((t / per) << self.bits) + 1 + t % per
    }
}

/// Part of a range where one pattern of edges applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Segment {
    start: u128,
    end: u128,
    /// Every address the pattern skips: aggregation block edges and buggy addresses.
    skip: Edges,
    /// The aggregation block edges alone, to say why an address is skipped.
    blocks: Edges,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Space {
    family: Family,
    /// Sorted, disjoint inclusive segments (ranges cut where an aggregate starts or ends).
    segments: Vec<Segment>,
    /// `raw_before[k]`: addresses of `segments[..k]` their edges keep (reserved ones counted).
    raw_before: Vec<u128>,
    /// Reserved addresses inside a segment and not already skipped, sorted, distinct.
    reserved: Vec<u128>,
    /// `gaps[j]`: allocatable addresses before `reserved[j]`, i.e. its raw rank minus `j`.
    gaps: Vec<u128>,
    /// Index of the last allocatable address; `None` when there is none. An index, not a
    /// count, so that `::/0` (2^128 addresses) still fits.
    last: Option<u128>,
}

/// IPv4 addresses ending in .0 and .255 are the edges of /24 blocks.
const BUGGY_BITS: u8 = 8;

impl Space {
    /// `ranges` must all be of `family` and ordered (the caller checks). `reserved` and
    /// `aggregates` may hold entries of any family and outside every range: those are ignored,
    /// and so are reversed aggregates.
    pub(crate) fn new(
        family: Family,
        ranges: &[AddrRange],
        avoid_buggy_ips: bool,
        reserved: &[IpAddr],
        aggregates: &[Aggregate],
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

        let buggy = avoid_buggy_ips && family == Family::V4;
        let mut reserved: Vec<u128> = reserved
            .iter()
            .filter(|a| Family::of(**a) == family)
            .map(|a| to_u128(*a))
            .collect();
        // (start, end, edges) of every aggregate of this family.
        let mut blocks: Vec<(u128, u128, Edges)> = Vec::new();
        for a in aggregates {
            let (start, end) = (to_u128(a.range.start), to_u128(a.range.end));
            if a.range.family() != family || !a.range.is_ordered() || a.prefix > family.bits() {
                continue;
            }
            let bits = family.bits() - a.prefix;
            if bits == 128 {
                // `::/0` as one block: its only edge is `::`.
                reserved.push(0);
                continue;
            }
            let edges = Edges::of_blocks(family, bits);
            if edges != Edges::NONE {
                blocks.push((start, end, edges));
            }
        }
        let mut cuts: Vec<u128> = blocks
            .iter()
            .flat_map(|&(start, end, _)| [Some(start), end.checked_add(1)])
            .flatten()
            .collect();
        cuts.sort_unstable();
        cuts.dedup();

        let buggy_edges = if buggy {
            Edges::of_blocks(family, BUGGY_BITS)
        } else {
            Edges::NONE
        };
        let mut segments = Vec::with_capacity(merged.len() + cuts.len());
        for (start, end) in merged {
            let inside = cuts.partition_point(|&c| c <= start)..cuts.partition_point(|&c| c <= end);
            let mut from = start;
            for &c in &cuts[inside] {
                segments.push((from, c - 1));
                from = c;
            }
            segments.push((from, end));
        }
        let segments: Vec<Segment> = segments
            .into_iter()
            .map(|(start, end)| {
                // A segment lies wholly inside or outside each aggregate.
                let blocks = blocks
                    .iter()
                    .filter(|&&(s, e, _)| s <= start && start <= e)
                    .fold(Edges::NONE, |acc, &(_, _, edges)| acc.union(edges));
                Segment {
                    start,
                    end,
                    skip: blocks.union(buggy_edges),
                    blocks,
                }
            })
            .collect();

        let mut space = Space {
            family,
            segments,
            raw_before: Vec::new(),
            reserved: Vec::new(),
            gaps: Vec::new(),
            last: None,
        };
        let mut before = 0u128;
        let mut last_raw: Option<u128> = None;
        for k in 0..space.segments.len() {
            space.raw_before.push(before);
            if let Some(count_minus_one) = space.raw_count_minus_one(space.segments[k]) {
                // Segments are disjoint, so every prefix sum but the full one fits in a u128.
                last_raw = Some(before + count_minus_one);
                before = before.wrapping_add(count_minus_one).wrapping_add(1);
            }
        }

        reserved.retain(|&a| {
            space
                .segment_of(a)
                .is_some_and(|k| !space.segments[k].skip.skips(a))
        });
        reserved.sort_unstable();
        reserved.dedup();
        space.gaps = reserved
            .iter()
            .enumerate()
            .map(|(j, &a)| space.raw_rank(a) - j as u128)
            .collect();
        space.last = last_raw.and_then(|l| l.checked_sub(reserved.len() as u128));
        space.reserved = reserved;
        space
    }

    pub(crate) fn family(&self) -> Family {
        self.family
    }

    /// Addresses a segment keeps, less one, or `None` when it keeps none.
    fn raw_count_minus_one(&self, s: Segment) -> Option<u128> {
        if s.skip == Edges::NONE {
            return Some(s.end - s.start);
        }
        let through_end = s.skip.kept_below(s.end) + u128::from(!s.skip.skips(s.end));
        (through_end - s.skip.kept_below(s.start)).checked_sub(1)
    }

    fn segment_of(&self, a: u128) -> Option<usize> {
        let k = self.segments.partition_point(|s| s.start <= a);
        let k = k.checked_sub(1)?;
        (a <= self.segments[k].end).then_some(k)
    }

    /// Rank among the addresses the segments' edges keep; `a` must be one of them.
    fn raw_rank(&self, a: u128) -> u128 {
        let k = self
            .segment_of(a)
            .expect("raw_rank of an address in a segment");
        let s = self.segments[k];
        self.raw_before[k] + (s.skip.kept_below(a) - s.skip.kept_below(s.start))
    }

    fn raw_select(&self, raw: u128) -> u128 {
        let k = self.raw_before.partition_point(|&b| b <= raw) - 1;
        let s = self.segments[k];
        s.skip
            .nth_kept(s.skip.kept_below(s.start) + (raw - self.raw_before[k]))
    }

    /// Why `addr` is not allocatable, or `None` when it is.
    pub(crate) fn why_outside(&self, addr: IpAddr) -> Option<Outside> {
        if Family::of(addr) != self.family {
            return Some(Outside::NoRange);
        }
        let a = to_u128(addr);
        let Some(k) = self.segment_of(a) else {
            return Some(Outside::NoRange);
        };
        let s = self.segments[k];
        if s.blocks.skips(a) {
            Some(Outside::BlockEdge)
        } else if s.skip.skips(a) {
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

    /// Allocatable addresses below `a`.
    fn below(&self, a: u128) -> u128 {
        let k = self.segments.partition_point(|s| s.start < a);
        let Some(k) = k.checked_sub(1) else {
            return 0;
        };
        let s = self.segments[k];
        let raw = if a > s.end {
            // The whole segment: no overflow, since its end is below `a`.
            self.raw_before[k] + self.raw_count_minus_one(s).map_or(0, |c| c + 1)
        } else {
            self.raw_before[k] + (s.skip.kept_below(a) - s.skip.kept_below(s.start))
        };
        raw - self.reserved.partition_point(|&r| r < a) as u128
    }

    /// The first and last index of the allocatable addresses of `range` (of this family), or
    /// `None` when it has none.
    pub(crate) fn span(&self, range: AddrRange) -> Option<(u128, u128)> {
        if range.family() != self.family || !range.is_ordered() {
            return None;
        }
        let (start, end) = (to_u128(range.start), to_u128(range.end));
        let first = self.below(start);
        let last = if self.contains(range.end) {
            self.below(end)
        } else {
            self.below(end).checked_sub(1)?
        };
        (first <= last).then_some((first, last))
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
