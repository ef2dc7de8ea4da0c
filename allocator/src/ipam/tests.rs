//! Table-driven tests of the IPAM core's behaviour.

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| ip(s)).collect()
}

/// A pool from range strings of either family.
fn pool(ranges: &[&str]) -> Pool {
    let mut pool = Pool::default();
    for r in ranges {
        let range = AddrRange::parse(r).expect("test range");
        match range.family() {
            Family::V4 => pool.v4.push(range),
            Family::V6 => pool.v6.push(range),
        }
    }
    pool
}

trait PoolExt {
    fn avoiding_buggy(self) -> Pool;
    fn reserving(self, addrs: &[&str]) -> Pool;
}

impl PoolExt for Pool {
    fn avoiding_buggy(mut self) -> Pool {
        self.avoid_buggy_ips = true;
        self
    }

    fn reserving(mut self, addrs: &[&str]) -> Pool {
        self.reserved.extend(ips(addrs));
        self
    }
}

fn ipam(pool: Pool) -> Ipam {
    Ipam::new(pool).expect("valid test pool")
}

/// Allocates until exhausted (at most `limit` times).
fn drain(ipam: &mut Ipam, family: Family, limit: usize) -> Vec<IpAddr> {
    let mut got = Vec::new();
    while got.len() < limit {
        match ipam.allocate(family) {
            Ok(a) => got.push(a),
            Err(Error::Exhausted { family: f }) => {
                assert_eq!(f, family);
                break;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    got
}

#[test]
fn hands_out_lowest_free_address() {
    // (name, pool, requested first, released after, family, want next allocations)
    type Case<'a> = (
        &'a str,
        Pool,
        &'a [&'a str],
        &'a [&'a str],
        Family,
        &'a [&'a str],
    );
    let cases: &[Case] = &[
        (
            "from the start of a range",
            pool(&["192.0.2.10-192.0.2.12"]),
            &[],
            &[],
            Family::V4,
            &["192.0.2.10", "192.0.2.11", "192.0.2.12"],
        ),
        (
            "ranges in address order whatever their listed order",
            pool(&["198.51.100.5/32", "192.0.2.1-192.0.2.2"]),
            &[],
            &[],
            Family::V4,
            &["192.0.2.1", "192.0.2.2", "198.51.100.5"],
        ),
        (
            "around requested addresses",
            pool(&["192.0.2.0/29"]),
            &["192.0.2.0", "192.0.2.2", "192.0.2.3"],
            &[],
            Family::V4,
            &["192.0.2.1", "192.0.2.4", "192.0.2.5"],
        ),
        (
            "a released address first",
            pool(&["192.0.2.0/29"]),
            &["192.0.2.0", "192.0.2.1", "192.0.2.2", "192.0.2.3"],
            &["192.0.2.2", "192.0.2.1"],
            Family::V4,
            &["192.0.2.1", "192.0.2.2", "192.0.2.4"],
        ),
        (
            "overlapping ranges once",
            pool(&["2001:db8::2-2001:db8::3", "2001:db8::1-2001:db8::2"]),
            &[],
            &[],
            Family::V6,
            &["2001:db8::1", "2001:db8::2", "2001:db8::3"],
        ),
        (
            "IPv6 in a /64",
            pool(&["2001:db8::/64"]),
            &["2001:db8::"],
            &[],
            Family::V6,
            &["2001:db8::1", "2001:db8::2"],
        ),
    ];
    for (name, pool, requested, released, family, want) in cases {
        let mut ipam = ipam(pool.clone());
        for a in ips(requested) {
            ipam.request(a).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for a in ips(released) {
            assert!(ipam.release(a), "{name}: release {a}");
        }
        let got = drain(&mut ipam, *family, want.len());
        assert_eq!(got, ips(want), "{name}");
    }
}

#[test]
fn never_hands_out_excluded_addresses() {
    // (name, pool, every address handed out before exhaustion)
    let cases: &[(&str, Pool, &[&str])] = &[
        (
            "buggy .255 and .0 skipped",
            pool(&["192.0.2.253-192.0.3.2"]).avoiding_buggy(),
            &["192.0.2.253", "192.0.2.254", "192.0.3.1", "192.0.3.2"],
        ),
        (
            "reserved network and broadcast",
            pool(&["192.0.2.0/30"]).reserving(&["192.0.2.0", "192.0.2.3"]),
            &["192.0.2.1", "192.0.2.2"],
        ),
        (
            "reserved and buggy together",
            pool(&["192.0.2.254-192.0.3.3"])
                .avoiding_buggy()
                .reserving(&["192.0.3.1", "192.0.3.0"]),
            &["192.0.2.254", "192.0.3.2", "192.0.3.3"],
        ),
        (
            "buggy does not apply to IPv6",
            pool(&["2001:db8::fe-2001:db8::100"]).avoiding_buggy(),
            &["2001:db8::fe", "2001:db8::ff", "2001:db8::100"],
        ),
        (
            "reserved IPv6",
            pool(&["2001:db8::/126"]).reserving(&["2001:db8::1"]),
            &["2001:db8::", "2001:db8::2", "2001:db8::3"],
        ),
    ];
    for (name, pool, want) in cases {
        let mut ipam = ipam(pool.clone());
        let family = Family::of(ip(want[0]));
        let got = drain(&mut ipam, family, 1000);
        assert_eq!(got, ips(want), "{name}");
        assert_eq!(
            ipam.utilization(family).capacity,
            want.len() as u128,
            "{name}"
        );
        for excluded in pool.reserved.iter() {
            assert!(!ipam.contains(*excluded), "{name}: {excluded}");
            assert!(
                matches!(ipam.request(*excluded), Err(Error::OutsidePool { .. })),
                "{name}: request {excluded}"
            );
        }
    }
}

#[test]
fn single_address_pools() {
    let cases: &[(&str, &str, &str)] = &[
        ("IPv4 /32", "192.0.2.9/32", "192.0.2.9"),
        ("IPv6 /128", "2001:db8::9/128", "2001:db8::9"),
        ("range a-a", "192.0.2.7-192.0.2.7", "192.0.2.7"),
        ("last IPv4 address", "255.255.255.255/32", "255.255.255.255"),
        (
            "last IPv6 address",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ),
        ("first IPv6 address", "::/128", "::"),
    ];
    for (name, range, addr) in cases {
        let addr = ip(addr);
        let family = Family::of(addr);
        let mut ipam = ipam(pool(&[range]));
        assert_eq!(ipam.utilization(family).capacity, 1, "{name}");
        assert_eq!(ipam.allocate(family), Ok(addr), "{name}");
        assert_eq!(
            ipam.allocate(family),
            Err(Error::Exhausted { family }),
            "{name}"
        );
        assert_eq!(ipam.request(addr), Err(Error::InUse { addr }), "{name}");
        assert!(ipam.release(addr), "{name}: release");
        assert!(!ipam.release(addr), "{name}: release twice");
        assert_eq!(ipam.allocate(family), Ok(addr), "{name}: reuse");
        assert_eq!(ipam.utilization(family).allocated, 1, "{name}");
    }
}

#[test]
fn requests_only_free_addresses_in_the_pool() {
    // (name, pool, already allocated, requested, want)
    type Case<'a> = (&'a str, Pool, &'a [&'a str], &'a str, Result<()>);
    let cases: &[Case] = &[
        ("free", pool(&["192.0.2.0/24"]), &[], "192.0.2.7", Ok(())),
        (
            "taken",
            pool(&["192.0.2.0/24"]),
            &["192.0.2.7"],
            "192.0.2.7",
            Err(Error::InUse {
                addr: ip("192.0.2.7"),
            }),
        ),
        (
            "outside every range",
            pool(&["192.0.2.0/24"]),
            &[],
            "192.0.3.7",
            Err(Error::OutsidePool {
                addr: ip("192.0.3.7"),
                why: Outside::NoRange,
            }),
        ),
        (
            "other family has no range",
            pool(&["192.0.2.0/24"]),
            &[],
            "2001:db8::7",
            Err(Error::OutsidePool {
                addr: ip("2001:db8::7"),
                why: Outside::NoRange,
            }),
        ),
        (
            "buggy",
            pool(&["192.0.2.0/24"]).avoiding_buggy(),
            &[],
            "192.0.2.255",
            Err(Error::OutsidePool {
                addr: ip("192.0.2.255"),
                why: Outside::Buggy,
            }),
        ),
        (
            "reserved",
            pool(&["192.0.2.0/24"]).reserving(&["192.0.2.0"]),
            &[],
            "192.0.2.0",
            Err(Error::OutsidePool {
                addr: ip("192.0.2.0"),
                why: Outside::Reserved,
            }),
        ),
        (
            "in a gap between ranges",
            pool(&["192.0.2.0/30", "192.0.2.8/30"]),
            &[],
            "192.0.2.5",
            Err(Error::OutsidePool {
                addr: ip("192.0.2.5"),
                why: Outside::NoRange,
            }),
        ),
    ];
    for (name, pool, allocated, requested, want) in cases {
        let mut ipam = ipam(pool.clone());
        for a in ips(allocated) {
            ipam.request(a).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert_eq!(ipam.request(ip(requested)), *want, "{name}");
        assert!(
            ipam.is_allocated(ip(requested)) == (want.is_ok() || allocated.contains(requested)),
            "{name}: is_allocated"
        );
    }
}

#[test]
fn slash64_pool_costs_nothing_up_front() {
    let cases: &[(&str, &str, u128)] = &[
        ("/64", "2001:db8::/64", 1 << 64),
        ("/48", "2001:db8::/48", 1 << 80),
        ("all of IPv6", "::/0", u128::MAX),
    ];
    for (name, range, capacity) in cases {
        let mut ipam = ipam(pool(&[range]));
        assert_eq!(
            ipam.v6.runs.run_count(),
            0,
            "{name}: nothing before allocating"
        );
        for _ in 0..1000 {
            ipam.allocate(Family::V6)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        // A thousand sequential addresses are one run: one map entry.
        assert_eq!(ipam.v6.runs.run_count(), 1, "{name}");
        let far = ipam.v6.space.select(capacity.saturating_sub(1) - 1);
        ipam.request(far).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ipam.v6.runs.run_count(), 2, "{name}");
        assert_eq!(
            ipam.utilization(Family::V6),
            Utilization {
                capacity: *capacity,
                allocated: 1001
            },
            "{name}"
        );
    }
}

#[test]
fn keeps_out_of_pool_allocations_on_shrink() {
    let mut ipam = ipam(pool(&["192.0.2.0/29", "2001:db8::/126"]));
    for a in ["192.0.2.1", "192.0.2.6", "2001:db8::3"] {
        ipam.request(ip(a)).expect("in pool");
    }
    // Shrink: .6 and ::3 leave the pool; avoiding buggy makes nothing here excluded.
    ipam.set_pool(pool(&["192.0.2.0/30", "2001:db8::/127"]))
        .expect("valid");
    assert_eq!(
        ipam.out_of_pool().collect::<Vec<_>>(),
        ips(&["192.0.2.6", "2001:db8::3"])
    );
    assert!(ipam.is_allocated(ip("192.0.2.6")), "kept as allocated");
    assert_eq!(
        ipam.utilization(Family::V4),
        Utilization {
            capacity: 4,
            allocated: 1
        }
    );
    // Never handed out again, not even once the shrunken pool runs out.
    assert_eq!(
        drain(&mut ipam, Family::V4, 10),
        ips(&["192.0.2.0", "192.0.2.2", "192.0.2.3"])
    );
    assert_eq!(
        ipam.request(ip("192.0.2.6")),
        Err(Error::OutsidePool {
            addr: ip("192.0.2.6"),
            why: Outside::NoRange
        })
    );
    // Grow again: in the pool again, still allocated.
    ipam.set_pool(pool(&["192.0.2.0/29", "2001:db8::/126"]))
        .expect("valid");
    assert_eq!(ipam.out_of_pool().count(), 0);
    assert_eq!(
        ipam.utilization(Family::V4),
        Utilization {
            capacity: 8,
            allocated: 5
        }
    );
    assert_eq!(
        drain(&mut ipam, Family::V4, 10),
        ips(&["192.0.2.4", "192.0.2.5", "192.0.2.7"])
    );
    assert_eq!(
        drain(&mut ipam, Family::V6, 10),
        ips(&["2001:db8::", "2001:db8::1", "2001:db8::2"])
    );
}

#[test]
fn excluding_an_allocated_address_keeps_it_out_of_pool() {
    let mut ipam = ipam(pool(&["192.0.2.0/24"]));
    ipam.request(ip("192.0.2.255")).expect("free");
    ipam.request(ip("192.0.2.7")).expect("free");
    ipam.set_pool(
        pool(&["192.0.2.0/24"])
            .avoiding_buggy()
            .reserving(&["192.0.2.7"]),
    )
    .expect("valid");
    assert_eq!(
        ipam.out_of_pool().collect::<Vec<_>>(),
        ips(&["192.0.2.7", "192.0.2.255"])
    );
    assert_eq!(
        ipam.utilization(Family::V4),
        Utilization {
            capacity: 253,
            allocated: 0
        }
    );
    assert!(
        ipam.release(ip("192.0.2.255")),
        "out-of-pool addresses can be released"
    );
    assert_eq!(ipam.out_of_pool().collect::<Vec<_>>(), ips(&["192.0.2.7"]));
}

#[test]
fn rebuild_adopts_existing_allocations() {
    // (name, pool, existing, want duplicates, want out of pool, want next allocation)
    type Case<'a> = (
        &'a str,
        Pool,
        &'a [&'a str],
        &'a [&'a str],
        &'a [&'a str],
        Result<IpAddr>,
    );
    let cases: &[Case] = &[
        (
            "in pool",
            pool(&["192.0.2.0/30"]),
            &["192.0.2.0", "192.0.2.2"],
            &[],
            &[],
            Ok(ip("192.0.2.1")),
        ),
        (
            "duplicates reported once each",
            pool(&["192.0.2.0/30"]),
            &[
                "192.0.2.1",
                "192.0.2.0",
                "192.0.2.1",
                "192.0.2.1",
                "192.0.9.9",
                "192.0.9.9",
            ],
            &["192.0.2.1", "192.0.9.9"],
            &["192.0.9.9"],
            Ok(ip("192.0.2.2")),
        ),
        (
            "outside and excluded kept",
            pool(&["192.0.2.0/30"]).reserving(&["192.0.2.0"]),
            &["192.0.2.0", "198.51.100.1", "2001:db8::1"],
            &[],
            &["192.0.2.0", "198.51.100.1", "2001:db8::1"],
            Ok(ip("192.0.2.1")),
        ),
        (
            "full",
            pool(&["192.0.2.0/31"]),
            &["192.0.2.1", "192.0.2.0"],
            &[],
            &[],
            Err(Error::Exhausted { family: Family::V4 }),
        ),
    ];
    for (name, pool, existing, duplicates, out_of_pool, next) in cases {
        let mut ipam = ipam(Pool::default());
        let adoption = ipam
            .rebuild(pool.clone(), ips(existing))
            .expect("valid pool");
        assert_eq!(adoption.duplicates, ips(duplicates), "{name}: duplicates");
        assert_eq!(
            adoption.out_of_pool,
            ips(out_of_pool),
            "{name}: out of pool"
        );
        assert_eq!(
            ipam.out_of_pool().collect::<Vec<_>>(),
            ips(out_of_pool),
            "{name}"
        );
        let mut want_allocated = ips(existing);
        want_allocated.sort();
        want_allocated.dedup();
        assert_eq!(
            ipam.allocated().collect::<Vec<_>>(),
            want_allocated,
            "{name}"
        );
        assert_eq!(ipam.allocate(Family::V4), *next, "{name}: next");
    }
}

#[test]
fn counts_utilization_exactly() {
    // (name, pool, allocations of IPv4, want IPv4 utilization)
    let cases: &[(&str, Pool, usize, Utilization)] = &[
        (
            "empty pool",
            Pool::default(),
            0,
            Utilization {
                capacity: 0,
                allocated: 0,
            },
        ),
        (
            "/24",
            pool(&["192.0.2.0/24"]),
            3,
            Utilization {
                capacity: 256,
                allocated: 3,
            },
        ),
        (
            "/8 avoiding buggy, by arithmetic",
            pool(&["10.0.0.0/8"]).avoiding_buggy(),
            300,
            Utilization {
                capacity: 65536 * 254,
                allocated: 300,
            },
        ),
        (
            "all of IPv4 avoiding buggy, reserved counted once",
            pool(&["0.0.0.0/0"])
                .avoiding_buggy()
                .reserving(&["0.0.0.0", "0.0.0.1", "10.0.0.1"]),
            1,
            Utilization {
                capacity: (1 << 24) * 254 - 2,
                allocated: 1,
            },
        ),
    ];
    for (name, pool, n, want) in cases {
        let mut ipam = ipam(pool.clone());
        for _ in 0..*n {
            ipam.allocate(Family::V4)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert_eq!(ipam.utilization(Family::V4), *want, "{name}");
    }
}

#[test]
fn rejects_malformed_pools() {
    let reversed = AddrRange::new(ip("192.0.2.9"), ip("192.0.2.1"));
    let v6 = AddrRange::parse("2001:db8::/64").expect("valid");
    let cases: &[(&str, Pool, Error)] = &[
        (
            "reversed range",
            Pool {
                v4: vec![reversed],
                ..Pool::default()
            },
            Error::ReversedRange {
                family: Family::V4,
                range: reversed,
            },
        ),
        (
            "IPv6 range listed as IPv4",
            Pool {
                v4: vec![v6],
                ..Pool::default()
            },
            Error::WrongFamily {
                family: Family::V4,
                range: v6,
            },
        ),
    ];
    for (name, bad, want) in cases {
        assert_eq!(Ipam::new(bad.clone()), Err(want.clone()), "{name}: new");
        let mut ipam = ipam(pool(&["192.0.2.0/30"]));
        ipam.request(ip("192.0.2.1")).expect("free");
        let before = ipam.clone();
        assert_eq!(
            ipam.set_pool(bad.clone()),
            Err(want.clone()),
            "{name}: set_pool"
        );
        assert_eq!(
            ipam.rebuild(bad.clone(), []),
            Err(want.clone()),
            "{name}: rebuild"
        );
        assert_eq!(ipam, before, "{name}: unchanged");
    }
}

#[test]
fn errors_say_what_happened() {
    let cases: &[(&str, Error, &str)] = &[
        (
            "exhausted",
            Error::Exhausted { family: Family::V6 },
            "no free IPv6 address left in the pool",
        ),
        (
            "in use",
            Error::InUse {
                addr: ip("192.0.2.1"),
            },
            "192.0.2.1 is already allocated",
        ),
        (
            "outside",
            Error::OutsidePool {
                addr: ip("192.0.2.0"),
                why: Outside::Buggy,
            },
            "192.0.2.0 cannot be allocated from the pool: it ends in .0 or .255 and the pool avoids buggy IPs",
        ),
        (
            "reversed",
            Error::ReversedRange {
                family: Family::V4,
                range: AddrRange::new(ip("192.0.2.9"), ip("192.0.2.1")),
            },
            "IPv4 range 192.0.2.9-192.0.2.1 starts after it ends",
        ),
    ];
    for (name, err, want) in cases {
        assert_eq!(err.to_string(), *want, "{name}");
    }
}

#[test]
fn families_are_independent() {
    let mut ipam = ipam(pool(&["192.0.2.0/31", "2001:db8::/127"]));
    assert_eq!(ipam.allocate(Family::V4), Ok(ip("192.0.2.0")));
    assert_eq!(ipam.allocate(Family::V6), Ok(ip("2001:db8::")));
    assert_eq!(ipam.allocate(Family::V4), Ok(ip("192.0.2.1")));
    assert_eq!(
        ipam.allocate(Family::V4),
        Err(Error::Exhausted { family: Family::V4 })
    );
    assert_eq!(ipam.allocate(Family::V6), Ok(ip("2001:db8::1")));
    assert_eq!(
        ipam.utilization(Family::V6),
        Utilization {
            capacity: 2,
            allocated: 2
        }
    );
    // Changing only IPv4 leaves the IPv6 book as it is.
    let v6_before = ipam.v6.clone();
    ipam.set_pool(pool(&["192.0.2.0/30", "2001:db8::/127"]))
        .expect("valid");
    assert_eq!(ipam.v6, v6_before);
    assert_eq!(ipam.allocate(Family::V4), Ok(ip("192.0.2.2")));
}
