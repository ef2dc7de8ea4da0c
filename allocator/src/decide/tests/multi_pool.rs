//! multiPool: a Service of a local group spanning several subnets gets one address in each
//! subnet, per family; switched on per group (`spec.local.multiPool`) and per Service
//! (`ferrolb.io/multi-pool`); nothing it holds is ever renumbered.

use ferrolb_api::annotations as ann;
use ferrolb_api::contracts::{lease as l, reason};

use super::*;

/// IPv4 pools in two subnets (two ranges in the first), one IPv6 subnet.
fn wide(multi: bool) -> G {
    group("g")
        .v4("192.0.2.0/24", "192.0.2.10-192.0.2.11")
        .v4("198.51.100.0/24", "198.51.100.10-198.51.100.12")
        .v4("192.0.2.0/24", "192.0.2.20-192.0.2.21")
        .v6("2001:db8::/64", "2001:db8::10-2001:db8::12")
        .multi_pool(multi)
}

fn aged(services: Vec<S>) -> Vec<S> {
    services
        .into_iter()
        .enumerate()
        .map(|(i, s)| s.age(i as u32))
        .collect()
}

#[test]
fn gives_one_address_per_subnet_when_switched_on() {
    // (name, group's multiPool, Services (oldest first), want per Service)
    type Case<'a> = (&'a str, bool, Vec<S>, &'a [(&'a str, &'a [&'a str])]);
    let cases: Vec<Case> = vec![
        (
            "off: one address",
            false,
            vec![svc("a").group("g")],
            &[("a", &["192.0.2.10"])],
        ),
        (
            "on: one per subnet, two ranges of one subnet count once",
            true,
            vec![svc("a").group("g"), svc("b").group("g")],
            &[
                ("a", &["192.0.2.10", "198.51.100.10"]),
                ("b", &["192.0.2.11", "198.51.100.11"]),
            ],
        ),
        (
            "on, dual-stack: per family, the Service's family order",
            true,
            vec![
                svc("a")
                    .group("g")
                    .families(&["IPv6", "IPv4"], "RequireDualStack"),
            ],
            &[("a", &["2001:db8::10", "192.0.2.10", "198.51.100.10"])],
        ),
        (
            "on for the Service only",
            false,
            vec![
                svc("a").group("g").ann(ann::MULTI_POOL, "true"),
                svc("b").group("g"),
            ],
            &[
                ("a", &["192.0.2.10", "198.51.100.10"]),
                ("b", &["192.0.2.11"]),
            ],
        ),
        (
            "PureLB's annotation is honoured",
            false,
            vec![svc("a").group("g").ann("purelb.io/multi-pool", "true")],
            &[("a", &["192.0.2.10", "198.51.100.10"])],
        ),
        (
            "off for the Service only",
            true,
            vec![svc("a").group("g").ann(ann::MULTI_POOL, "false")],
            &[("a", &["192.0.2.10"])],
        ),
        (
            "a requested address is all a Service gets",
            true,
            vec![svc("a").group("g").addresses("198.51.100.12")],
            &[("a", &["198.51.100.12"])],
        ),
        (
            "a subnet's first range full: its next range",
            true,
            vec![
                svc("a").group("g").addresses("192.0.2.10"),
                svc("b").group("g").addresses("192.0.2.11"),
                svc("c").group("g"),
            ],
            &[("c", &["192.0.2.20", "198.51.100.10"])],
        ),
        (
            "sharing: the key's address in each subnet",
            true,
            vec![
                svc("a").group("g").key("k"),
                svc("b").group("g").key("k").ports(&[("TCP", 443)]),
            ],
            &[
                ("a", &["192.0.2.10", "198.51.100.10"]),
                ("b", &["192.0.2.10", "198.51.100.10"]),
            ],
        ),
    ];
    for (name, multi, services, want) in cases {
        let mut w = World::new(&[wide(multi)], &aged(services));
        let p = w.pass();
        for (svc, ips) in want {
            assert_eq!(w.ips(svc), *ips, "{name}: {svc}");
            assert!(
                problems(&p, svc).is_empty(),
                "{name}: {svc}: {:?}",
                of(&p, svc).problems
            );
        }
    }
}

#[test]
fn balanced_pools_balance_within_each_subnet() {
    let g = group("g")
        .v4("192.0.2.0/24", "192.0.2.10-192.0.2.11")
        .v4("192.0.2.0/24", "192.0.2.20-192.0.2.21")
        .v4("198.51.100.0/24", "198.51.100.10-198.51.100.12")
        .multi_pool(true)
        .set("balancePools", true.into());
    let mut w = World::new(&[g], &aged(vec![svc("a").group("g"), svc("b").group("g")]));
    w.pass();
    assert_eq!(w.ips("a"), ["192.0.2.10", "198.51.100.10"]);
    assert_eq!(w.ips("b"), ["192.0.2.20", "198.51.100.11"]);
}

#[test]
fn a_full_subnet_gives_nothing_and_says_which() {
    let g = group("g")
        .v4("192.0.2.0/24", "192.0.2.10-192.0.2.11")
        .v4("198.51.100.0/24", "198.51.100.10-198.51.100.10")
        .multi_pool(true);
    let mut w = World::new(
        &[g],
        &aged(vec![
            svc("a").group("g").addresses("198.51.100.10"),
            svc("b").group("g"),
        ]),
    );
    let p = w.pass();
    assert_eq!(w.ips("a"), ["198.51.100.10"]);
    assert!(w.ips("b").is_empty(), "all or nothing: {:?}", w.ips("b"));
    assert_eq!(problems(&p, "b"), [reason::ALLOCATION_FAILED]);
    let msg = &of(&p, "b").problems[0].message;
    assert!(
        msg.contains("no free IPv4 address in subnet 198.51.100.0/24"),
        "{msg}"
    );
    assert_eq!(
        w.condition("g", "Exhausted").map(|(s, _)| s).as_deref(),
        Some("True")
    );
    // The subnet frees up: b gets one address in each.
    w.delete("a");
    w.pass();
    assert_eq!(w.ips("b"), ["192.0.2.10", "198.51.100.10"]);
}

#[test]
fn switching_it_renumbers_nothing() {
    let mut w = World::new(&[wide(false)], &[svc("a").group("g")]);
    w.pass();
    assert_eq!(w.ips("a"), ["192.0.2.10"]);
    // On: the address it has stays, the other subnet is added.
    w.set_group(wide(true));
    let p = w.pass();
    assert_eq!(w.ips("a"), ["192.0.2.10", "198.51.100.10"]);
    assert_eq!(
        of(&p, "a").allocated,
        ["198.51.100.10".parse::<IpAddr>().expect("ip")]
    );
    // A subnet added to the group: one more address, the others stay.
    w.set_group(wide(true).v4("203.0.113.0/24", "203.0.113.10-203.0.113.11"));
    w.pass();
    assert_eq!(w.ips("a"), ["192.0.2.10", "198.51.100.10", "203.0.113.10"]);
    // Off for the Service: the first address stays, the others are released.
    w.edit(svc("a").group("g").ann(ann::MULTI_POOL, "false"));
    let p = w.pass();
    assert_eq!(w.ips("a"), ["192.0.2.10"]);
    let released: Vec<&str> = of(&p, "a")
        .news
        .iter()
        .filter(|n| n.reason == reason::ADDRESS_RELEASED)
        .map(|n| n.message.as_str())
        .collect();
    assert_eq!(
        released,
        ["198.51.100.10 released", "203.0.113.10 released"]
    );
}

#[test]
fn a_virtual_group_and_a_bad_value_give_one_address() {
    let v = group("v")
        .v4("203.0.113.0/24", "203.0.113.0/28")
        .v4("198.51.100.0/24", "198.51.100.64/28")
        .virtual_();
    let mut w = World::new(
        &[v, wide(false)],
        &aged(vec![
            svc("a").group("v").ann(ann::MULTI_POOL, "true"),
            svc("b").group("g").ann(ann::MULTI_POOL, "yes"),
        ]),
    );
    let p = w.pass();
    assert_eq!(w.ips("a"), ["198.51.100.64"], "virtual: one address");
    assert_eq!(w.ips("b"), ["192.0.2.10"], "the group's setting applies");
    assert_eq!(problems(&p, "b"), [reason::ANNOTATION_CONFLICT]);
    assert!(
        of(&p, "b").problems[0]
            .message
            .contains("ferrolb.io/multi-pool=\"yes\""),
        "{:?}",
        of(&p, "b").problems
    );
}

#[test]
fn each_address_has_its_own_announcers() {
    let holding = |node: &str, iface: &str, subnet: &str, addrs: &str| {
        lease(
            node,
            1,
            &[
                (l::HOLDING, addrs),
                (l::INTERFACE_V4, iface),
                (l::SUBNETS, subnet),
                (l::ELIGIBLE, "true"),
            ],
        )
    };
    let mut w = World::new(&[wide(true)], &[svc("a").group("g")]);
    let leases = vec![
        holding("n0", "eth0", "192.0.2.0/24", "192.0.2.10"),
        holding("n1", "eth0", "192.0.2.0/24", ""),
        holding("n2", "eth1", "198.51.100.0/24", "198.51.100.10"),
    ];
    w.snap.nodes = leases.iter().map(|l| l.node.clone()).collect();
    w.snap.leases = leases;
    let p = w.pass();
    assert_eq!(
        w.written("a", ann::ANNOUNCING_IPV4).as_deref(),
        Some("n0,eth0,192.0.2.10 n2,eth1,198.51.100.10")
    );
    assert!(
        all_problems(&p, "a").is_empty(),
        "{:?}",
        of(&p, "a").problems
    );
    // The second subnet's only node goes: that address alone changes holder, and nobody is
    // left who could hold it.
    w.snap.leases.retain(|l| l.node != "n2");
    w.snap.nodes.remove("n2");
    let p = w.pass();
    assert_eq!(
        w.written("a", ann::ANNOUNCING_IPV4).as_deref(),
        Some("n0,eth0,192.0.2.10")
    );
    let changes: Vec<&str> = of(&p, "a")
        .news
        .iter()
        .filter(|n| n.reason == reason::HOLDER_CHANGED)
        .map(|n| n.message.as_str())
        .collect();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(
        changes[0].starts_with("IPv4 198.51.100.10 is no longer announced (was n2)"),
        "{changes:?}"
    );
    let no_candidate: Vec<&str> = of(&p, "a")
        .problems
        .iter()
        .filter(|n| n.reason == reason::NO_CANDIDATE)
        .map(|n| n.message.as_str())
        .collect();
    assert_eq!(no_candidate.len(), 1, "{no_candidate:?}");
    assert!(
        no_candidate[0].contains("198.51.100.10"),
        "{no_candidate:?}"
    );
}
