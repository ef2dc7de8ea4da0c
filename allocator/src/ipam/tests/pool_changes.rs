//! Pool edits, rebuilds from existing allocations, utilization and malformed pools.

use super::*;

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
