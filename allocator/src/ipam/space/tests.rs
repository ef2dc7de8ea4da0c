//! Tests of the index space: counting, rank and select against enumeration.

use super::*;

fn space(family: Family, ranges: &[&str], buggy: bool, reserved: &[&str]) -> Space {
    let ranges: Vec<AddrRange> = ranges
        .iter()
        .map(|r| AddrRange::parse(r).expect("test range"))
        .collect();
    let reserved: Vec<IpAddr> = reserved
        .iter()
        .map(|a| a.parse().expect("test address"))
        .collect();
    Space::new(family, &ranges, buggy, &reserved)
}

#[test]
fn counts_buggy_addresses_by_arithmetic() {
    let cases: &[(&str, u128, u128)] = &[
        ("empty prefix", 0, 0),
        ("first .0 only", 1, 0),
        ("up to .1", 2, 1),
        ("one whole block", 256, 254),
        ("block and a bit", 258, 255),
        ("all of IPv4", 1 << 32, (1 << 24) * 254),
    ];
    for (name, x, want) in cases {
        assert_eq!(not_buggy_below(*x), *want, "{name}");
    }
    for t in 0..2000 {
        let a = nth_not_buggy(t);
        assert!(!is_buggy(a), "{t} -> {a} is buggy");
        assert_eq!(not_buggy_below(a), t, "{t}");
    }
}

#[test]
fn rank_and_select_are_inverse() {
    let cases: &[(&str, Space)] = &[
        ("plain v4", space(Family::V4, &["192.0.2.0/24"], false, &[])),
        (
            "buggy v4 over several blocks",
            space(Family::V4, &["192.0.2.250-192.0.4.3"], true, &[]),
        ),
        (
            "reserved and buggy",
            space(
                Family::V4,
                &["192.0.2.0/24", "198.51.100.200-198.51.101.10"],
                true,
                &[
                    "192.0.2.0",
                    "192.0.2.1",
                    "192.0.2.17",
                    "198.51.100.255",
                    "198.51.101.1",
                ],
            ),
        ),
        (
            "v6 with reserved",
            space(
                Family::V6,
                &["2001:db8::/120", "2001:db8:1::/126"],
                true,
                &["2001:db8::"],
            ),
        ),
        (
            "top of IPv6 after another range",
            space(
                Family::V6,
                &[
                    "2001:db8::/124",
                    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120",
                ],
                false,
                &["ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"],
            ),
        ),
        (
            "top of IPv4",
            space(
                Family::V4,
                &["255.255.255.0/24"],
                true,
                &["255.255.255.254"],
            ),
        ),
    ];
    for (name, s) in cases {
        let mut count = 0u128;
        for &(start, end) in &s.ranges {
            for a in start..=end {
                let addr = from_u128(s.family, a).expect("in family");
                match s.rank(addr) {
                    Some(i) => {
                        assert_eq!(i, count, "{name}: rank of {addr}");
                        assert_eq!(s.select(i), addr, "{name}: select {i}");
                        count += 1;
                    }
                    None => assert!(!s.contains(addr), "{name}: {addr}"),
                }
            }
        }
        assert_eq!(s.capacity(), count, "{name}: capacity");
    }
}

#[test]
fn counts_capacity_exactly() {
    let cases: &[(&str, Space, u128)] = &[
        (
            "v4 /24",
            space(Family::V4, &["192.0.2.0/24"], false, &[]),
            256,
        ),
        (
            "v4 /24 avoiding buggy",
            space(Family::V4, &["192.0.2.0/24"], true, &[]),
            254,
        ),
        (
            "buggy is only for IPv4",
            space(Family::V6, &["2001:db8::/120"], true, &[]),
            256,
        ),
        (
            "v4 /8 avoiding buggy",
            space(Family::V4, &["10.0.0.0/8"], true, &[]),
            (1 << 16) * 254,
        ),
        (
            "reserved and buggy counted once",
            space(
                Family::V4,
                &["192.0.2.0/24"],
                true,
                &["192.0.2.0", "192.0.2.255", "192.0.2.9"],
            ),
            253,
        ),
        (
            "reserved outside the ranges ignored",
            space(
                Family::V4,
                &["192.0.2.0/30"],
                false,
                &["192.0.3.1", "2001:db8::1"],
            ),
            4,
        ),
        (
            "overlapping and touching ranges merged",
            space(
                Family::V4,
                &[
                    "192.0.2.10-192.0.2.20",
                    "192.0.2.15-192.0.2.30",
                    "192.0.2.31-192.0.2.31",
                    "192.0.2.0/30",
                ],
                false,
                &[],
            ),
            4 + 22,
        ),
        (
            "v6 /64",
            space(Family::V6, &["2001:db8::/64"], false, &[]),
            1 << 64,
        ),
        (
            "all of IPv6 saturates",
            space(Family::V6, &["::/0"], false, &[]),
            u128::MAX,
        ),
        (
            "all of IPv6 less two is exact",
            space(Family::V6, &["::/0"], false, &["::", "::1"]),
            u128::MAX - 1,
        ),
        (
            "single address",
            space(Family::V4, &["192.0.2.7/32"], false, &[]),
            1,
        ),
        (
            "single buggy address",
            space(Family::V4, &["192.0.2.0/32"], true, &[]),
            0,
        ),
        (
            "single reserved address",
            space(Family::V6, &["2001:db8::1/128"], false, &["2001:db8::1"]),
            0,
        ),
        ("no ranges", space(Family::V4, &[], true, &["192.0.2.1"]), 0),
    ];
    for (name, s, want) in cases {
        assert_eq!(s.capacity(), *want, "{name}");
    }
}
