//! The IPAM core: which addresses of a ServiceGroup's pool are taken, and the lowest free one.
//!
//! A pure, synchronous data structure (no kube, no tokio). Per family the allocatable addresses
//! (ranges less exclusions) form a dense index space (`space`); what is allocated is kept as
//! maximal runs of indices (`runs`). Allocate, request and release cost O(log n) in the number of
//! runs plus a binary search over the configured ranges and reserved addresses; memory follows
//! what is allocated, so a `/64` pool costs nothing up front. Addresses allocated outside the
//! current pool (adopted at start, or left behind by a pool edit) are kept in a small set of their
//! own: still allocated, never handed out, reported by [`Ipam::out_of_pool`]. Addresses that sit
//! on an interface with an aggregation mask ([`Aggregate`]) skip the edges of every aggregation
//! block, counted by arithmetic too.

mod runs;
mod space;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::net::IpAddr;

use ferrolb_api::pool::{AddrRange, Family, from_u128, to_u128};

use runs::Runs;
pub use space::Outside;
use space::Space;

/// What can go wrong in the IPAM core.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("no free {family} address left in the pool")]
    Exhausted { family: Family },
    #[error("{addr} cannot be allocated from the pool: {why}")]
    OutsidePool { addr: IpAddr, why: Outside },
    #[error("{addr} is already allocated")]
    InUse { addr: IpAddr },
    #[error("{family} range {range} starts after it ends")]
    ReversedRange { family: Family, range: AddrRange },
    #[error("range {range} is listed as {family} but is not {family}")]
    WrongFamily { family: Family, range: AddrRange },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A pool as the IPAM sees it: ranges per family (in any order, overlapping or touching ones
/// allowed) and the addresses never to hand out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pool {
    pub v4: Vec<AddrRange>,
    pub v6: Vec<AddrRange>,
    /// Skip IPv4 addresses ending in .0 and .255 (`avoidBuggyIPs`).
    pub avoid_buggy_ips: bool,
    /// Individual addresses of either family never handed out, e.g. the network and broadcast
    /// addresses of a local IPv4 subnet.
    pub reserved: Vec<IpAddr>,
}

impl Pool {
    fn ranges(&self, family: Family) -> &[AddrRange] {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    fn check(&self) -> Result<()> {
        for family in [Family::V4, Family::V6] {
            for &range in self.ranges(family) {
                if Family::of(range.start) != family || Family::of(range.end) != family {
                    return Err(Error::WrongFamily { family, range });
                }
                if !range.is_ordered() {
                    return Err(Error::ReversedRange { family, range });
                }
            }
        }
        Ok(())
    }
}

/// Addresses of `range` that go onto an interface with the mask `/prefix` (a virtual group's
/// aggregation). In every aligned `/prefix` block, the network and broadcast addresses (IPv4) or
/// the Subnet-Router anycast address (IPv6) are never handed out: Linux makes the first a
/// broadcast route and the second an anycast address of every node carrying the block. Blocks of
/// one or two addresses (IPv4 /31, /32; IPv6 /127, /128) have no such edges (RFC 3021, RFC 6164).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Aggregate {
    pub range: AddrRange,
    pub prefix: u8,
}

/// How much of one family of a pool is used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Utilization {
    /// Allocatable addresses (ranges less exclusions), exact; saturates at `u128::MAX`, which only
    /// `::/0` without exclusions reaches.
    pub capacity: u128,
    /// Allocated addresses inside the pool (out-of-pool ones are not counted).
    pub allocated: u128,
}

/// What [`Ipam::rebuild`] found in its input that the caller should report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Adoption {
    /// Addresses listed more than once (each once, ascending): two owners claim them.
    pub duplicates: Vec<IpAddr>,
    /// Addresses kept as allocated although outside the pool (ascending).
    pub out_of_pool: Vec<IpAddr>,
}

/// One family's state.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Book {
    space: Space,
    /// Allocated indices of `space`.
    runs: Runs,
    /// Allocated addresses (as integers) that `space` does not contain.
    out_of_pool: BTreeSet<u128>,
}

impl Book {
    fn empty(space: Space) -> Self {
        Self {
            runs: Runs::new(space.last()),
            space,
            out_of_pool: BTreeSet::new(),
        }
    }

    /// `addrs` must all be of this book's family.
    fn adopt(space: Space, addrs: &[IpAddr], adoption: &mut Adoption) -> Self {
        let mut indices = Vec::with_capacity(addrs.len());
        let mut out_of_pool = BTreeSet::new();
        let mut duplicates = BTreeSet::new();
        for &addr in addrs {
            match space.rank(addr) {
                Some(i) => indices.push(i),
                None => {
                    if !out_of_pool.insert(to_u128(addr)) {
                        duplicates.insert(addr);
                    }
                }
            }
        }
        indices.sort_unstable();
        let mut previous = None;
        indices.retain(|&i| {
            let fresh = previous != Some(i);
            if !fresh {
                duplicates.insert(space.select(i));
            }
            previous = Some(i);
            fresh
        });
        adoption.duplicates.extend(duplicates);
        let family = space.family();
        adoption.out_of_pool.extend(
            out_of_pool
                .iter()
                .map(|&a| from_u128(family, a).expect("stored in its family")),
        );
        Self {
            runs: Runs::from_sorted(space.last(), indices),
            space,
            out_of_pool,
        }
    }

    fn allocated(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let family = self.space.family();
        // Both parts ascend; merge them so the whole ascends.
        let mut in_pool = self.runs.iter().map(|i| self.space.select(i)).peekable();
        let mut outside = self
            .out_of_pool
            .iter()
            .map(move |&a| from_u128(family, a).expect("stored in its family"))
            .peekable();
        std::iter::from_fn(move || match (in_pool.peek(), outside.peek()) {
            (Some(a), Some(b)) if a < b => in_pool.next(),
            (Some(_), None) => in_pool.next(),
            _ => outside.next(),
        })
    }
}

/// The allocation state of one ServiceGroup's pool, both families.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipam {
    v4: Book,
    v6: Book,
    pool: Pool,
    /// Kept across pool changes; see [`Ipam::set_aggregates`].
    aggregates: Vec<Aggregate>,
}

impl Ipam {
    /// An IPAM with nothing allocated.
    pub fn new(pool: Pool) -> Result<Self> {
        Self::with_aggregates(pool, Vec::new())
    }

    /// An IPAM with nothing allocated whose addresses skip the edges of `aggregates`' blocks.
    /// Aggregates of the wrong family, reversed or with a prefix longer than the family's are
    /// ignored: the group's own check reports them.
    pub fn with_aggregates(pool: Pool, aggregates: Vec<Aggregate>) -> Result<Self> {
        pool.check()?;
        Ok(Self {
            v4: Book::empty(space_of(&pool, &aggregates, Family::V4)),
            v6: Book::empty(space_of(&pool, &aggregates, Family::V6)),
            pool,
            aggregates,
        })
    }

    /// An IPAM holding exactly `existing`, as [`Ipam::rebuild`] would leave it.
    pub fn with_allocations(
        pool: Pool,
        existing: impl IntoIterator<Item = IpAddr>,
    ) -> Result<(Self, Adoption)> {
        let mut ipam = Self::new(Pool::default())?;
        let adoption = ipam.rebuild(pool, existing)?;
        Ok((ipam, adoption))
    }

    /// Replaces the whole state: the pool becomes `pool` and exactly `existing` is allocated
    /// (e.g. the addresses adopted from Services' status at start). Addresses outside the pool
    /// are kept as allocated and reported; so are duplicates. The aggregates stay. On error
    /// nothing changes.
    pub fn rebuild(
        &mut self,
        pool: Pool,
        existing: impl IntoIterator<Item = IpAddr>,
    ) -> Result<Adoption> {
        pool.check()?;
        let (v4, v6): (Vec<IpAddr>, Vec<IpAddr>) = existing.into_iter().partition(|a| a.is_ipv4());
        let mut adoption = Adoption::default();
        self.v4 = Book::adopt(
            space_of(&pool, &self.aggregates, Family::V4),
            &v4,
            &mut adoption,
        );
        self.v6 = Book::adopt(
            space_of(&pool, &self.aggregates, Family::V6),
            &v6,
            &mut adoption,
        );
        self.pool = pool;
        Ok(adoption)
    }

    /// Changes the ranges and exclusions, keeping every allocation: those the new pool does not
    /// contain become out-of-pool allocations, out-of-pool ones it contains are in the pool again.
    /// Costs O(n log n) in the allocations of a family whose ranges or exclusions changed.
    pub fn set_pool(&mut self, pool: Pool) -> Result<()> {
        pool.check()?;
        self.relayout(&pool, &self.aggregates.clone());
        self.pool = pool;
        Ok(())
    }

    /// Changes the aggregates, keeping every allocation as [`Ipam::set_pool`] does.
    pub fn set_aggregates(&mut self, aggregates: Vec<Aggregate>) {
        let pool = self.pool.clone();
        self.relayout(&pool, &aggregates);
        self.aggregates = aggregates;
    }

    pub fn aggregates(&self) -> &[Aggregate] {
        &self.aggregates
    }

    fn relayout(&mut self, pool: &Pool, aggregates: &[Aggregate]) {
        for family in [Family::V4, Family::V6] {
            let space = space_of(pool, aggregates, family);
            let book = self.book_mut(family);
            if book.space != space {
                let allocated: Vec<IpAddr> = book.allocated().collect();
                *book = Book::adopt(space, &allocated, &mut Adoption::default());
            }
        }
    }

    /// The pool as last given to [`Ipam::new`], [`Ipam::rebuild`] or [`Ipam::set_pool`].
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Takes the lowest free address of `family`.
    pub fn allocate(&mut self, family: Family) -> Result<IpAddr> {
        let book = self.book_mut(family);
        let index = book
            .runs
            .lowest_free()
            .filter(|&i| book.space.last().is_some_and(|last| i <= last))
            .ok_or(Error::Exhausted { family })?;
        book.runs.insert(index);
        Ok(book.space.select(index))
    }

    /// Takes a free address of `family` from the range of the pool with the fewest allocated
    /// addresses, ties going to the range listed first; the lowest free one of that range
    /// (PureLB's `balancePools`). A range counts its allocated addresses, whoever holds them;
    /// ranges with no free address are passed over. Costs O(log n) per range plus the runs
    /// of allocations inside it.
    pub fn allocate_balanced(&mut self, family: Family) -> Result<IpAddr> {
        let ranges = self.pool.ranges(family).to_vec();
        self.allocate_within(family, &ranges, true)
    }

    /// Takes a free address of `family` from `ranges` only (ranges of the pool, e.g. those of
    /// one subnet): the lowest free one, or with `balanced` as [`Self::allocate_balanced`].
    pub fn allocate_within(
        &mut self,
        family: Family,
        ranges: &[AddrRange],
        balanced: bool,
    ) -> Result<IpAddr> {
        let book = self.book(family);
        let mut best: Option<(u128, u128)> = None;
        for &range in ranges {
            let Some((lo, hi)) = book.space.span(range) else {
                continue;
            };
            let Some(free) = book.runs.lowest_free_in(lo, hi) else {
                continue;
            };
            // Balanced: fewest taken first; else the lowest free address.
            let rank = if balanced {
                book.runs.count_in(lo, hi)
            } else {
                free
            };
            if best.is_none_or(|(r, _)| rank < r) {
                best = Some((rank, free));
            }
        }
        let (_, index) = best.ok_or(Error::Exhausted { family })?;
        let book = self.book_mut(family);
        book.runs.insert(index);
        Ok(book.space.select(index))
    }

    /// Whether [`Self::allocate_within`] would find a free address.
    pub fn has_free_within(&self, family: Family, ranges: &[AddrRange]) -> bool {
        let book = self.book(family);
        ranges.iter().any(|&range| {
            book.space
                .span(range)
                .is_some_and(|(lo, hi)| book.runs.lowest_free_in(lo, hi).is_some())
        })
    }

    /// Allocated addresses of each range of `family`'s pool, in the pool's order (an address
    /// in two overlapping ranges counts in both).
    pub fn allocated_per_range(&self, family: Family) -> Vec<u128> {
        let book = self.book(family);
        self.pool
            .ranges(family)
            .iter()
            .map(|&r| {
                book.space
                    .span(r)
                    .map_or(0, |(lo, hi)| book.runs.count_in(lo, hi))
            })
            .collect()
    }

    /// Takes `addr`, which must be in the pool and free.
    pub fn request(&mut self, addr: IpAddr) -> Result<()> {
        let book = self.book_mut(Family::of(addr));
        if let Some(why) = book.space.why_outside(addr) {
            return Err(Error::OutsidePool { addr, why });
        }
        let index = book
            .space
            .rank(addr)
            .expect("an address in the pool has an index");
        if book.runs.insert(index) {
            Ok(())
        } else {
            Err(Error::InUse { addr })
        }
    }

    /// Frees `addr`, in the pool or out of it; `true` when it was allocated.
    pub fn release(&mut self, addr: IpAddr) -> bool {
        let book = self.book_mut(Family::of(addr));
        match book.space.rank(addr) {
            Some(index) => book.runs.remove(index),
            None => book.out_of_pool.remove(&to_u128(addr)),
        }
    }

    /// Whether `addr` is allocated, in the pool or out of it.
    pub fn is_allocated(&self, addr: IpAddr) -> bool {
        let book = self.book(Family::of(addr));
        match book.space.rank(addr) {
            Some(index) => book.runs.contains(index),
            None => book.out_of_pool.contains(&to_u128(addr)),
        }
    }

    /// Whether `addr` is in a range of the pool and not excluded.
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.book(Family::of(addr)).space.contains(addr)
    }

    pub fn utilization(&self, family: Family) -> Utilization {
        let book = self.book(family);
        Utilization {
            capacity: book.space.capacity(),
            allocated: book.runs.len(),
        }
    }

    /// Allocated addresses the pool does not contain (condition `OutOfPoolAllocations`):
    /// IPv4 first, each family ascending.
    pub fn out_of_pool(&self) -> impl Iterator<Item = IpAddr> + '_ {
        [&self.v4, &self.v6].into_iter().flat_map(|book| {
            let family = book.space.family();
            book.out_of_pool
                .iter()
                .map(move |&a| from_u128(family, a).expect("stored in its family"))
        })
    }

    /// Every allocated address, in the pool or not: IPv4 first, each family ascending.
    pub fn allocated(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.v4.allocated().chain(self.v6.allocated())
    }

    fn book(&self, family: Family) -> &Book {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    fn book_mut(&mut self, family: Family) -> &mut Book {
        match family {
            Family::V4 => &mut self.v4,
            Family::V6 => &mut self.v6,
        }
    }
}

fn space_of(pool: &Pool, aggregates: &[Aggregate], family: Family) -> Space {
    Space::new(
        family,
        pool.ranges(family),
        pool.avoid_buggy_ips,
        &pool.reserved,
        aggregates,
    )
}
