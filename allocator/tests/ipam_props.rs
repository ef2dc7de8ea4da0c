//! Property tests of the IPAM core against a plain model: a set of addresses over a small pool.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ferrolb_allocator::ipam::{Error, Ipam, Pool, Utilization};
use ferrolb_api::pool::{AddrRange, Family, from_u128, to_u128};
use proptest::prelude::*;

/// Addresses the generated pools live in, per family: small enough to enumerate in the model.
const V4_SPAN: u128 = 768;
const V6_SPAN: u128 = 64;

/// Where the small universes sit: somewhere ordinary, or at the very top of the address space
/// (255.255.255.255 and ffff:...:ffff are the edges where `end + 1` overflows).
#[derive(Clone, Copy, Debug)]
struct Universe {
    v4: u128,
    v6: u128,
}

impl Universe {
    fn base(self, family: Family) -> u128 {
        match family {
            Family::V4 => self.v4,
            Family::V6 => self.v6,
        }
    }

    fn span(family: Family) -> u128 {
        match family {
            Family::V4 => V4_SPAN,
            Family::V6 => V6_SPAN,
        }
    }

    fn addr(self, family: Family, offset: u128) -> IpAddr {
        from_u128(family, self.base(family) + offset % Self::span(family)).expect("in family")
    }

    fn all(self, family: Family) -> impl Iterator<Item = IpAddr> {
        (0..Self::span(family)).map(move |o| self.addr(family, o))
    }
}

fn universe() -> impl Strategy<Value = Universe> {
    prop_oneof![
        Just(Universe {
            v4: u128::from(u32::from_be_bytes([192, 0, 2, 0])),
            v6: 0x2001_0db8 << 96,
        }),
        Just(Universe {
            v4: u128::from(u32::MAX) + 1 - V4_SPAN,
            v6: u128::MAX - V6_SPAN + 1,
        }),
    ]
}

/// A pool as offsets into the universe, so one generated pool fits either universe.
#[derive(Clone, Debug)]
struct PoolShape {
    v4: Vec<(u128, u128)>,
    v6: Vec<(u128, u128)>,
    avoid_buggy_ips: bool,
    reserved: Vec<(Family, u128)>,
    /// Add a huge IPv6 range (more than 2^64 addresses) outside the universe.
    huge: bool,
}

impl PoolShape {
    fn pool(&self, u: Universe) -> Pool {
        let range = |family, &(start, len): &(u128, u128)| {
            let end = (start + len).min(Universe::span(family) - 1);
            AddrRange::new(u.addr(family, start), u.addr(family, end))
        };
        let mut v6: Vec<AddrRange> = self.v6.iter().map(|r| range(Family::V6, r)).collect();
        if self.huge {
            v6.push(huge_range(u));
        }
        Pool {
            v4: self.v4.iter().map(|r| range(Family::V4, r)).collect(),
            v6,
            avoid_buggy_ips: self.avoid_buggy_ips,
            reserved: self.reserved.iter().map(|&(f, o)| u.addr(f, o)).collect(),
        }
    }
}

/// A range too big to enumerate, so that its index space needs u128: above the ordinary
/// universe, below the one at the top of the address space.
fn huge_range(u: Universe) -> AddrRange {
    let net = if u.v6 < 0x3000 << 112 {
        "3000::/16"
    } else {
        "8000::/2"
    };
    AddrRange::parse(net).expect("valid range")
}

fn family() -> impl Strategy<Value = Family> {
    prop_oneof![3 => Just(Family::V4), 1 => Just(Family::V6)]
}

fn pool_shape() -> impl Strategy<Value = PoolShape> {
    let v4 = (0..V4_SPAN, prop_oneof![0..8u128, 0..300u128]);
    let v6 = (0..V6_SPAN, prop_oneof![0..4u128, 0..40u128]);
    (
        prop::collection::vec(v4, 0..4),
        prop::collection::vec(v6, 0..3),
        any::<bool>(),
        prop::collection::vec((family(), 0..V4_SPAN), 0..6),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(v4, v6, avoid_buggy_ips, reserved, huge)| PoolShape {
            v4,
            v6,
            avoid_buggy_ips,
            reserved,
            huge,
        })
}

#[derive(Clone, Debug)]
enum Op {
    Allocate(Family),
    /// An address of the universe, by offset.
    Request(Family, u128),
    Release(Family, u128),
    /// The n-th allocated address (modulo how many there are).
    ReleaseAllocated(usize),
    SetPool(PoolShape),
    /// Rebuild from the allocated addresses, reversed, with the n-th ones listed twice.
    Rebuild(Vec<usize>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => family().prop_map(Op::Allocate),
        3 => (family(), 0..V4_SPAN).prop_map(|(f, o)| Op::Request(f, o)),
        1 => (family(), 0..V4_SPAN).prop_map(|(f, o)| Op::Release(f, o)),
        3 => any::<usize>().prop_map(Op::ReleaseAllocated),
        1 => pool_shape().prop_map(Op::SetPool),
        1 => prop::collection::vec(any::<usize>(), 0..3).prop_map(Op::Rebuild),
    ]
}

/// What the IPAM should do, the obvious way.
struct Model {
    universe: Universe,
    pool: Pool,
    allocated: BTreeSet<IpAddr>,
}

impl Model {
    fn in_pool(&self, addr: IpAddr) -> bool {
        let family = Family::of(addr);
        let ranges = match family {
            Family::V4 => &self.pool.v4,
            Family::V6 => &self.pool.v6,
        };
        let buggy = self.pool.avoid_buggy_ips
            && family == Family::V4
            && matches!(to_u128(addr) & 0xff, 0 | 0xff);
        ranges.iter().any(|r| r.contains(addr)) && !buggy && !self.pool.reserved.contains(&addr)
    }

    /// The huge range of the pool, if it has one.
    fn huge(&self) -> Option<AddrRange> {
        let huge = huge_range(self.universe);
        self.pool.v6.contains(&huge).then_some(huge)
    }

    fn lowest_free(&self, family: Family) -> Option<IpAddr> {
        let in_universe = self
            .universe
            .all(family)
            .find(|a| self.in_pool(*a) && !self.allocated.contains(a));
        let in_huge = self.huge().filter(|_| family == Family::V6).map(|huge| {
            let mut a = to_u128(huge.start);
            while self
                .allocated
                .contains(&from_u128(family, a).expect("IPv6"))
            {
                a += 1;
            }
            from_u128(family, a).expect("IPv6")
        });
        match (in_universe, in_huge) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn utilization(&self, family: Family) -> Utilization {
        let mut capacity = self
            .universe
            .all(family)
            .filter(|a| self.in_pool(*a))
            .count() as u128;
        if let Some(huge) = self.huge().filter(|_| family == Family::V6) {
            capacity += huge.len();
        }
        let allocated = self
            .allocated
            .iter()
            .filter(|a| Family::of(**a) == family && self.in_pool(**a))
            .count();
        Utilization {
            capacity,
            allocated: allocated as u128,
        }
    }
}

/// Everything observable about the IPAM agrees with the model.
fn check(ipam: &Ipam, model: &Model, pool_changed: bool) -> Result<(), TestCaseError> {
    let allocated: Vec<IpAddr> = ipam.allocated().collect();
    let want: Vec<IpAddr> = model.allocated.iter().copied().collect();
    prop_assert_eq!(&allocated, &want, "allocated set");
    let out: Vec<IpAddr> = ipam.out_of_pool().collect();
    let want_out: Vec<IpAddr> = want
        .iter()
        .copied()
        .filter(|a| !model.in_pool(*a))
        .collect();
    prop_assert_eq!(out, want_out, "out-of-pool allocations");
    for family in [Family::V4, Family::V6] {
        prop_assert_eq!(
            ipam.utilization(family),
            model.utilization(family),
            "{}",
            family
        );
    }
    if pool_changed {
        for family in [Family::V4, Family::V6] {
            for a in model.universe.all(family) {
                prop_assert_eq!(ipam.contains(a), model.in_pool(a), "contains {}", a);
                prop_assert_eq!(ipam.is_allocated(a), model.allocated.contains(&a), "{}", a);
            }
        }
    }
    // Rebuilding from the list of allocated addresses reproduces the same state, so the same
    // next allocation too.
    let (rebuilt, adoption) =
        Ipam::with_allocations(model.pool.clone(), allocated.iter().rev().copied())
            .expect("valid pool");
    prop_assert!(adoption.duplicates.is_empty());
    prop_assert_eq!(&rebuilt, ipam, "rebuilt state");
    Ok(())
}

fn run(universe: Universe, shape: PoolShape, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let pool = shape.pool(universe);
    let mut ipam = Ipam::new(pool.clone()).expect("generated pools are valid");
    let mut model = Model {
        universe,
        pool,
        allocated: BTreeSet::new(),
    };
    check(&ipam, &model, true)?;
    for op in ops {
        let mut pool_changed = false;
        match op {
            Op::Allocate(family) => {
                let got = ipam.allocate(family);
                match model.lowest_free(family) {
                    Some(want) => {
                        prop_assert_eq!(got, Ok(want));
                        prop_assert!(model.in_pool(want), "handed out {} outside the pool", want);
                        prop_assert!(model.allocated.insert(want), "handed out {} twice", want);
                    }
                    None => prop_assert_eq!(got, Err(Error::Exhausted { family })),
                }
            }
            Op::Request(family, offset) => {
                let addr = universe.addr(family, offset);
                let got = ipam.request(addr);
                if !model.in_pool(addr) {
                    let outside =
                        matches!(got, Err(Error::OutsidePool { addr: a, .. }) if a == addr);
                    prop_assert!(outside, "request {} outside the pool: {:?}", addr, got);
                } else if model.allocated.contains(&addr) {
                    prop_assert_eq!(got, Err(Error::InUse { addr }));
                } else {
                    prop_assert_eq!(got, Ok(()));
                    model.allocated.insert(addr);
                }
            }
            Op::Release(family, offset) => {
                let addr = universe.addr(family, offset);
                prop_assert_eq!(ipam.release(addr), model.allocated.remove(&addr));
                prop_assert!(!ipam.is_allocated(addr));
            }
            Op::ReleaseAllocated(n) => {
                if model.allocated.is_empty() {
                    continue;
                }
                let addr = *model
                    .allocated
                    .iter()
                    .nth(n % model.allocated.len())
                    .expect("in bounds");
                prop_assert!(ipam.release(addr));
                model.allocated.remove(&addr);
                // Released addresses of the pool are available again at once.
                let mut probe = ipam.clone();
                prop_assert_eq!(probe.request(addr).is_ok(), model.in_pool(addr));
            }
            Op::SetPool(shape) => {
                model.pool = shape.pool(universe);
                ipam.set_pool(model.pool.clone())
                    .expect("generated pools are valid");
                pool_changed = true;
            }
            Op::Rebuild(doubled) => {
                let mut list: Vec<IpAddr> = model.allocated.iter().rev().copied().collect();
                let mut want_duplicates = BTreeSet::new();
                if !list.is_empty() {
                    for n in doubled {
                        let addr = list[n % list.len()];
                        list.push(addr);
                        want_duplicates.insert(addr);
                    }
                }
                let adoption = ipam
                    .rebuild(model.pool.clone(), list)
                    .expect("generated pools are valid");
                let got: Vec<IpAddr> = adoption.duplicates;
                prop_assert_eq!(got, want_duplicates.into_iter().collect::<Vec<_>>());
                pool_changed = true;
            }
        }
        check(&ipam, &model, pool_changed)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn behaves_like_a_set_over_the_pool(
        universe in universe(),
        shape in pool_shape(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        run(universe, shape, ops)?;
    }

    #[test]
    fn fills_a_pool_exactly_to_capacity(universe in universe(), mut shape in pool_shape()) {
        shape.huge = false;
        let pool = shape.pool(universe);
        let mut ipam = Ipam::new(pool.clone()).expect("generated pools are valid");
        let mut model = Model { universe, pool, allocated: BTreeSet::new() };
        for family in [Family::V4, Family::V6] {
            let capacity = model.utilization(family).capacity;
            let mut handed_out = BTreeSet::new();
            while let Ok(addr) = ipam.allocate(family) {
                prop_assert!(model.in_pool(addr), "{} outside the pool", addr);
                prop_assert!(handed_out.insert(addr), "{} twice", addr);
            }
            prop_assert_eq!(handed_out.len() as u128, capacity);
            model.allocated.extend(handed_out);
        }
        check(&ipam, &model, true)?;
    }
}
