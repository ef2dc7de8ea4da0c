//! Handing out, requesting and releasing addresses.

use super::*;

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

fn aggregates(list: &[(&str, u8)]) -> Vec<Aggregate> {
    list.iter()
        .map(|&(r, prefix)| Aggregate {
            range: AddrRange::parse(r).expect("test range"),
            prefix,
        })
        .collect()
}

#[test]
fn aggregation_blocks_keep_their_edges() {
    // (name, pool, aggregates, family, want every allocation until exhausted)
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, u8)], Family, &'a [&'a str]);
    let cases: &[Case] = &[
        (
            "IPv4 /28 in /30 blocks: network and broadcast of each",
            "203.0.113.0/28",
            &[("203.0.113.0/28", 30)],
            Family::V4,
            &[
                "203.0.113.1",
                "203.0.113.2",
                "203.0.113.5",
                "203.0.113.6",
                "203.0.113.9",
                "203.0.113.10",
                "203.0.113.13",
                "203.0.113.14",
            ],
        ),
        (
            "a range starting inside a block",
            "203.0.113.14-203.0.113.18",
            &[("203.0.113.14-203.0.113.18", 29)],
            Family::V4,
            &["203.0.113.14", "203.0.113.17", "203.0.113.18"],
        ),
        (
            "IPv4 /31 and /32 blocks have no edges",
            "203.0.113.0/30",
            &[("203.0.113.0/30", 31)],
            Family::V4,
            &["203.0.113.0", "203.0.113.1", "203.0.113.2", "203.0.113.3"],
        ),
        (
            "IPv6 /126 blocks: the Subnet-Router anycast address of each",
            "2001:db8::/125",
            &[("2001:db8::/125", 126)],
            Family::V6,
            &[
                "2001:db8::1",
                "2001:db8::2",
                "2001:db8::3",
                "2001:db8::5",
                "2001:db8::6",
                "2001:db8::7",
            ],
        ),
        (
            "IPv6 /127 blocks have none (RFC 6164)",
            "2001:db8::/126",
            &[("2001:db8::/126", 127)],
            Family::V6,
            &["2001:db8::", "2001:db8::1", "2001:db8::2", "2001:db8::3"],
        ),
    ];
    for (name, range, aggs, family, want) in cases {
        let mut ipam =
            Ipam::with_aggregates(pool(&[range]), aggregates(aggs)).expect("valid test pool");
        assert_eq!(drain(&mut ipam, *family, 1000), ips(want), "{name}");
        assert_eq!(
            ipam.utilization(*family).capacity,
            want.len() as u128,
            "{name}: capacity"
        );
    }
    let mut ipam = Ipam::with_aggregates(
        pool(&["203.0.113.0/26"]),
        aggregates(&[("203.0.113.0/26", 28)]),
    )
    .expect("valid");
    assert_eq!(
        ipam.request(ip("203.0.113.15")),
        Err(Error::OutsidePool {
            addr: ip("203.0.113.15"),
            why: Outside::BlockEdge,
        })
    );
    assert_eq!(ipam.utilization(Family::V4).capacity, 64 - 8);
    // A /64 cut into /120 aggregates costs nothing up front either.
    let ipam = Ipam::with_aggregates(
        pool(&["2001:db8::/64"]),
        aggregates(&[("2001:db8::/64", 120)]),
    )
    .expect("valid");
    assert_eq!(
        ipam.utilization(Family::V6).capacity,
        (1u128 << 64) - (1 << 56)
    );
    assert!(!ipam.contains(ip("2001:db8::1:0")));
    assert!(ipam.contains(ip("2001:db8::1:1")));
}

#[test]
fn aggregates_survive_pool_edits_and_keep_what_is_allocated() {
    // An edge handed out before the aggregation was known stays allocated, out of the pool.
    let mut ipam = ipam(pool(&["203.0.113.0/28"]));
    ipam.request(ip("203.0.113.7")).expect("free");
    ipam.request(ip("203.0.113.5")).expect("free");
    ipam.set_aggregates(aggregates(&[("203.0.113.0/28", 29)]));
    assert!(ipam.is_allocated(ip("203.0.113.7")));
    assert_eq!(
        ipam.out_of_pool().collect::<Vec<_>>(),
        ips(&["203.0.113.7"])
    );
    assert_eq!(ipam.utilization(Family::V4).capacity, 12);
    // The pool grows: the aggregates stay.
    ipam.set_pool(pool(&["203.0.113.0/27"])).expect("valid");
    assert_eq!(ipam.aggregates(), aggregates(&[("203.0.113.0/28", 29)]));
    assert!(!ipam.contains(ip("203.0.113.8")));
    assert!(ipam.contains(ip("203.0.113.16")), "outside every aggregate");
    let (rebuilt, adoption) =
        Ipam::with_allocations(pool(&["203.0.113.0/28"]), [ip("203.0.113.7")]).expect("valid");
    assert!(adoption.out_of_pool.is_empty(), "no aggregates given");
    assert!(rebuilt.contains(ip("203.0.113.7")));
    ipam.rebuild(pool(&["203.0.113.0/28"]), [ip("203.0.113.7")])
        .expect("valid");
    assert_eq!(
        ipam.out_of_pool().collect::<Vec<_>>(),
        ips(&["203.0.113.7"])
    );
}
