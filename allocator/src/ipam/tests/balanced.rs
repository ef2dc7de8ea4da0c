//! Balanced allocation (`balancePools`): new addresses spread evenly over a family's ranges.

use super::*;

fn allocate_balanced(ipam: &mut Ipam, family: Family, n: usize) -> Vec<IpAddr> {
    (0..n)
        .map(|i| {
            ipam.allocate_balanced(family)
                .unwrap_or_else(|e| panic!("allocation {i}: {e}"))
        })
        .collect()
}

#[test]
fn spreads_new_allocations_over_the_ranges() {
    // (name, pool, requested first, allocations, want the first allocations, want per range)
    type Case<'a> = (
        &'a str,
        Pool,
        &'a [&'a str],
        usize,
        &'a [&'a str],
        &'a [u128],
    );
    let cases: &[Case] = &[
        (
            "round robin in listed order",
            pool(&[
                "198.51.100.10-198.51.100.19",
                "192.0.2.10-192.0.2.19",
                "203.0.113.10-203.0.113.19",
            ]),
            &[],
            7,
            &[
                "198.51.100.10",
                "192.0.2.10",
                "203.0.113.10",
                "198.51.100.11",
            ],
            &[3, 2, 2],
        ),
        (
            "one range: lowest first as without balancing",
            pool(&["192.0.2.10-192.0.2.19"]),
            &[],
            3,
            &["192.0.2.10", "192.0.2.11", "192.0.2.12"],
            &[3],
        ),
        (
            "requested addresses count; the emptier ranges catch up",
            pool(&["192.0.2.0/29", "198.51.100.0/29"]),
            &["192.0.2.5", "192.0.2.6", "192.0.2.7"],
            4,
            &["198.51.100.0", "198.51.100.1", "198.51.100.2", "192.0.2.0"],
            &[4, 3],
        ),
        (
            "a full range is passed over",
            pool(&["192.0.2.1/32", "198.51.100.0/29"]),
            &[],
            4,
            &["192.0.2.1", "198.51.100.0", "198.51.100.1", "198.51.100.2"],
            &[1, 3],
        ),
        (
            "reserved and buggy addresses are neither handed out nor counted",
            pool(&["192.0.2.254-192.0.3.2", "198.51.100.1-198.51.100.9"])
                .avoiding_buggy()
                .reserving(&["198.51.100.1"]),
            &[],
            4,
            &["192.0.2.254", "198.51.100.2", "192.0.3.1", "198.51.100.3"],
            &[2, 2],
        ),
        (
            "IPv6",
            pool(&["2001:db8::/120", "2001:db8:1::/120"]),
            &[],
            3,
            &["2001:db8::", "2001:db8:1::", "2001:db8::1"],
            &[2, 1],
        ),
    ];
    for (name, pool, requested, n, first, per_range) in cases {
        let mut ipam = ipam(pool.clone());
        for a in *requested {
            ipam.request(ip(a)).expect("requested address free");
        }
        let family = if pool.v4.is_empty() {
            Family::V6
        } else {
            Family::V4
        };
        let got = allocate_balanced(&mut ipam, family, *n);
        assert_eq!(got[..first.len()], ips(first)[..], "{name}");
        assert_eq!(ipam.allocated_per_range(family), *per_range, "{name}");
        let mut distinct = got.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), got.len(), "{name}: no address twice");
    }
}

#[test]
fn keeps_the_ranges_within_one_of_each_other() {
    for ranges in [2usize, 3, 5] {
        let list: Vec<String> = (0..ranges)
            .map(|r| format!("10.{r}.0.0-10.{r}.0.99"))
            .collect();
        let list: Vec<&str> = list.iter().map(String::as_str).collect();
        let mut ipam = ipam(pool(&list));
        for n in 1..=60 {
            ipam.allocate_balanced(Family::V4).expect("room left");
            let counts = ipam.allocated_per_range(Family::V4);
            let (lo, hi) = (counts.iter().min(), counts.iter().max());
            assert!(
                hi.zip(lo).is_some_and(|(h, l)| h - l <= 1),
                "{ranges} ranges after {n}: {counts:?}"
            );
            assert_eq!(counts.iter().sum::<u128>(), n, "{ranges} ranges");
        }
    }
}

#[test]
fn a_release_is_refilled_in_its_range_and_nothing_moves() {
    let mut ipam = ipam(pool(&[
        "192.0.2.10-192.0.2.19",
        "198.51.100.10-198.51.100.19",
    ]));
    let before = allocate_balanced(&mut ipam, Family::V4, 6);
    assert!(ipam.release(ip("198.51.100.11")));
    assert_eq!(
        ipam.allocate_balanced(Family::V4),
        Ok(ip("198.51.100.11")),
        "the range that lost one is the emptiest"
    );
    let kept: Vec<IpAddr> = ipam.allocated().collect();
    for a in before {
        assert!(kept.contains(&a), "{a} is still allocated");
    }
}

#[test]
fn exhausts_like_lowest_first() {
    let mut ipam = ipam(pool(&[
        "192.0.2.1/32",
        "198.51.100.1/32",
        "2001:db8::1/128",
    ]));
    assert_eq!(allocate_balanced(&mut ipam, Family::V4, 2).len(), 2);
    assert_eq!(
        ipam.allocate_balanced(Family::V4),
        Err(Error::Exhausted { family: Family::V4 })
    );
    assert_eq!(ipam.allocate_balanced(Family::V6), Ok(ip("2001:db8::1")));
    let mut empty = ipam_of_v6_only();
    assert_eq!(
        empty.allocate_balanced(Family::V4),
        Err(Error::Exhausted { family: Family::V4 })
    );
}

fn ipam_of_v6_only() -> Ipam {
    ipam(pool(&["2001:db8::/126"]))
}

#[test]
fn counts_taken_indices_in_an_interval() {
    let mut ipam = ipam(pool(&["192.0.2.0/24"]));
    for a in [
        "192.0.2.1",
        "192.0.2.2",
        "192.0.2.3",
        "192.0.2.7",
        "192.0.2.9",
    ] {
        ipam.request(ip(a)).expect("free");
    }
    let runs = &ipam.v4.runs;
    let cases: &[(&str, u128, u128, u128, Option<u128>)] = &[
        ("all", 0, 255, 5, Some(0)),
        ("inside a run", 2, 2, 1, None),
        ("across runs", 2, 8, 3, Some(4)),
        ("from a run's start", 1, 3, 3, None),
        ("from a run's start, room after", 1, 4, 3, Some(4)),
        ("after every run", 10, 255, 0, Some(10)),
        ("reversed", 5, 4, 0, None),
    ];
    for (name, lo, hi, count, free) in cases {
        assert_eq!(runs.count_in(*lo, *hi), *count, "{name}: count");
        assert_eq!(runs.lowest_free_in(*lo, *hi), *free, "{name}: lowest free");
    }
}
