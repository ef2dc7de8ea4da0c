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
    Space::new(family, &ranges, buggy, &reserved, &[])
}

/// A space whose ranges sit on an interface in blocks: `(range, prefix)` per aggregate.
fn blocks(family: Family, ranges: &[&str], buggy: bool, aggregates: &[(&str, u8)]) -> Space {
    let ranges: Vec<AddrRange> = ranges
        .iter()
        .map(|r| AddrRange::parse(r).expect("test range"))
        .collect();
    let aggregates: Vec<Aggregate> = aggregates
        .iter()
        .map(|&(r, prefix)| Aggregate {
            range: AddrRange::parse(r).expect("test range"),
            prefix,
        })
        .collect();
    Space::new(family, &ranges, buggy, &[], &aggregates)
}

#[test]
fn counts_block_edges_by_arithmetic() {
    let buggy = Edges::of_blocks(Family::V4, 8);
    let cases: &[(&str, u128, u128)] = &[
        ("empty prefix", 0, 0),
        ("first .0 only", 1, 0),
        ("up to .1", 2, 1),
        ("one whole block", 256, 254),
        ("block and a bit", 258, 255),
        ("all of IPv4", 1 << 32, (1 << 24) * 254),
    ];
    for (name, x, want) in cases {
        assert_eq!(buggy.kept_below(*x), *want, "{name}");
    }
    // Every pattern against enumeration: kept_below counts, nth_kept inverts it.
    for (family, bits) in [
        (Family::V4, 2),
        (Family::V4, 4),
        (Family::V4, 8),
        (Family::V6, 2),
        (Family::V6, 3),
        (Family::V6, 8),
    ] {
        let e = Edges::of_blocks(family, bits);
        let mut kept = 0u128;
        for x in 0..2048u128 {
            assert_eq!(e.kept_below(x), kept, "{family} /{bits}: below {x}");
            if !e.skips(x) {
                assert_eq!(e.nth_kept(kept), x, "{family} /{bits}: {kept}th");
                kept += 1;
            }
        }
    }
    // The widest pattern still counts without overflow.
    let half = Edges::of_blocks(Family::V6, 127);
    assert_eq!(half.kept_below(u128::MAX), u128::MAX - 2);
    assert!(half.skips(0) && half.skips(1 << 127) && !half.skips(u128::MAX));
    for (family, bits) in [
        (Family::V4, 0),
        (Family::V4, 1),
        (Family::V6, 1),
        (Family::V6, 128),
    ] {
        assert_eq!(
            Edges::of_blocks(family, bits),
            Edges::NONE,
            "{family} {bits}"
        );
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
        (
            "v4 blocks of 16",
            blocks(
                Family::V4,
                &["203.0.113.0/26"],
                false,
                &[("203.0.113.0/26", 28)],
            ),
        ),
        (
            "v4 blocks, range starting mid-block, buggy too",
            blocks(
                Family::V4,
                &["203.0.113.250-203.0.114.40"],
                true,
                &[("203.0.113.250-203.0.114.40", 27)],
            ),
        ),
        (
            "v4 blocks of 512 with buggy inside",
            blocks(Family::V4, &["10.0.0.0/22"], true, &[("10.0.0.0/22", 23)]),
        ),
        (
            "two pools, two aggregations, touching",
            blocks(
                Family::V4,
                &["203.0.113.0/27", "203.0.113.32/27", "203.0.113.100/32"],
                false,
                &[("203.0.113.0/27", 29), ("203.0.113.32/27", 30)],
            ),
        ),
        (
            "v6 blocks",
            blocks(
                Family::V6,
                &["2001:db8::/120"],
                false,
                &[("2001:db8::/120", 124)],
            ),
        ),
        (
            "v6 /127 and /128 blocks skip nothing",
            blocks(
                Family::V6,
                &["2001:db8::/124", "2001:db8:1::/124"],
                false,
                &[("2001:db8::/124", 127), ("2001:db8:1::/124", 128)],
            ),
        ),
    ];
    for (name, s) in cases {
        let mut count = 0u128;
        for &Segment { start, end, .. } in &s.segments {
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
        (
            "v4 /26 in /28 blocks",
            blocks(
                Family::V4,
                &["203.0.113.0/26"],
                false,
                &[("203.0.113.0/26", 28)],
            ),
            64 - 8,
        ),
        (
            "v4 blocks and buggy counted once",
            blocks(Family::V4, &["192.0.2.0/24"], true, &[("192.0.2.0/24", 28)]),
            256 - 32,
        ),
        (
            "v4 /31 and /32 blocks skip nothing",
            blocks(
                Family::V4,
                &["192.0.2.0/28", "192.0.3.0/28"],
                false,
                &[("192.0.2.0/28", 31), ("192.0.3.0/28", 32)],
            ),
            32,
        ),
        (
            "v6 /64 in /120 blocks",
            blocks(
                Family::V6,
                &["2001:db8::/64"],
                false,
                &[("2001:db8::/64", 120)],
            ),
            (1 << 64) - (1 << 56),
        ),
        (
            "all of IPv6 as one block",
            blocks(Family::V6, &["::/0"], false, &[("::/0", 0)]),
            u128::MAX,
        ),
        (
            "aggregates of the other family or reversed ignored",
            blocks(
                Family::V4,
                &["192.0.2.0/28"],
                false,
                &[("2001:db8::/64", 120), ("192.0.2.9-192.0.2.1", 30)],
            ),
            16,
        ),
    ];
    for (name, s, want) in cases {
        assert_eq!(s.capacity(), *want, "{name}");
    }
}

#[test]
fn spans_a_range_by_enumeration() {
    // (name, space, the addresses it may hold, ranges asked about)
    let cases: &[(&str, Space, &str, &[&str])] = &[
        (
            "two ranges, reserved and buggy",
            space(
                Family::V4,
                &["192.0.2.250-192.0.3.5", "192.0.3.20-192.0.3.30"],
                true,
                &["192.0.2.252", "192.0.3.25"],
            ),
            "192.0.2.240-192.0.3.40",
            &[
                "192.0.2.250-192.0.3.5",
                "192.0.3.20-192.0.3.30",
                "192.0.2.255-192.0.3.0",
                "192.0.3.6-192.0.3.19",
                "192.0.2.240-192.0.3.40",
                "192.0.3.25/32",
                "192.0.3.24-192.0.3.26",
            ],
        ),
        (
            "aggregation blocks",
            blocks(
                Family::V4,
                &["203.0.113.0/26"],
                false,
                &[("203.0.113.0/26", 28)],
            ),
            "203.0.113.0/25",
            &[
                "203.0.113.0/26",
                "203.0.113.0/28",
                "203.0.113.15-203.0.113.16",
                "203.0.113.15-203.0.113.17",
            ],
        ),
    ];
    for (name, s, around, ranges) in cases {
        let around = AddrRange::parse(around).expect("test range");
        let all: Vec<u128> = (to_u128(around.start)..=to_u128(around.end))
            .filter(|&a| s.contains(from_u128(s.family(), a).expect("in family")))
            .collect();
        for r in *ranges {
            let range = AddrRange::parse(r).expect("test range");
            let inside: Vec<u128> = all
                .iter()
                .copied()
                .filter(|&a| to_u128(range.start) <= a && a <= to_u128(range.end))
                .collect();
            let want = inside.first().map(|&first| {
                let ix = |a: u128| s.rank(from_u128(s.family(), a).expect("in family"));
                (
                    ix(first).expect("allocatable"),
                    ix(*inside.last().expect("not empty")).expect("allocatable"),
                )
            });
            assert_eq!(s.span(range), want, "{name}: {r}");
        }
    }
    // The wrong family, and a space with nothing in it.
    let v4 = space(Family::V4, &["192.0.2.0/24"], false, &[]);
    assert_eq!(
        v4.span(AddrRange::parse("2001:db8::/120").expect("test range")),
        None
    );
    let empty = space(Family::V4, &[], false, &[]);
    assert_eq!(
        empty.span(AddrRange::parse("192.0.2.0/24").expect("test range")),
        None
    );
}
