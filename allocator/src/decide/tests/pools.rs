//! Edge pools: single addresses, /64, buggy addresses, reuse and growth.

use ferrolb_api::contracts::reason;

use super::*;

#[test]
fn edge_pools() {
    let cases: Vec<(&str, G, S, &[&str])> = vec![
        (
            "/32",
            group("g").v4("192.0.2.0/24", "192.0.2.7/32"),
            svc("a").group("g"),
            &["192.0.2.7"],
        ),
        (
            "/128",
            group("g").v6("2001:db8::/64", "2001:db8::7/128"),
            svc("a").group("g").families(&["IPv6"], "SingleStack"),
            &["2001:db8::7"],
        ),
        (
            "a-a",
            group("g").v4("192.0.2.0/24", "192.0.2.9-192.0.2.9"),
            svc("a").group("g"),
            &["192.0.2.9"],
        ),
        (
            "/64",
            group("g").v6("2001:db8::/64", "2001:db8::/64"),
            svc("a").group("g").families(&["IPv6"], "SingleStack"),
            // The Subnet-Router anycast address is a router's, never a Service's.
            &["2001:db8::1"],
        ),
        (
            "whole /24 skips network",
            group("g").v4("192.0.2.0/24", "192.0.2.0/24"),
            svc("a").group("g"),
            &["192.0.2.1"],
        ),
        (
            "virtual /24 skips network too",
            group("g").v4("192.0.2.0/24", "192.0.2.0/24").virtual_(),
            svc("a").group("g"),
            &["192.0.2.1"],
        ),
        (
            "avoid buggy",
            group("g")
                .v4("192.0.2.0/23", "192.0.2.255-192.0.3.1")
                .set("avoidBuggyIPs", true.into()),
            svc("a").group("g"),
            &["192.0.3.1"],
        ),
    ];
    for (name, g, s, want) in cases {
        let mut w = World::new(&[g], &[s]);
        w.pass();
        assert_eq!(w.ips("a"), want, "{name}");
    }
}

#[test]
fn the_last_address_is_reused_and_a_new_range_serves_the_waiting() {
    let mut w = World::new(
        &[group("g").v4("192.0.2.0/24", "192.0.2.9-192.0.2.9")],
        &[svc("a").group("g")],
    );
    w.pass();
    w.edit(svc("b").group("g").age(1));
    let p = w.pass();
    assert_eq!(problems(&p, "b"), vec![reason::ALLOCATION_FAILED]);
    w.delete("a");
    w.pass();
    assert_eq!(
        w.ips("b"),
        vec!["192.0.2.9"],
        "the freed last address is reused"
    );
    w.edit(svc("c").group("g").age(2));
    w.pass();
    assert!(w.ips("c").is_empty());
    w.set_group(
        group("g")
            .v4("192.0.2.0/24", "192.0.2.9-192.0.2.9")
            .v4("192.0.2.0/24", "192.0.2.20/32"),
    );
    w.pass();
    assert_eq!(w.ips("c"), vec!["192.0.2.20"]);
    assert_eq!(
        w.condition("g", "Exhausted").map(|c| c.0).as_deref(),
        Some("True")
    );
}

#[test]
fn virtual_groups_skip_the_edges_of_their_aggregation_blocks() {
    // Pool /26 in /28 blocks: .0, .15, .16, .31, ... are network or broadcast addresses on
    // kube-lb0; IPv6 /124 blocks: each block's Subnet-Router anycast address.
    let mut routed_g = group("routed")
        .v4("203.0.113.0/24", "203.0.113.0/26")
        .v6("2001:db8:5::/64", "2001:db8:5::/120")
        .virtual_()
        .aggregation("/28");
    routed_g.0["spec"]["virtual"]["v6pools"][0]["aggregation"] = "/124".into();
    let services: Vec<S> = (0..16)
        .map(|i| {
            svc(&format!("s{i:02}"))
                .group("routed")
                .dual("RequireDualStack")
                .age(i)
        })
        .collect();
    let mut w = World::new(&[routed_g.clone()], &services);
    w.pass();
    assert_eq!(w.ips("s13"), vec!["203.0.113.14", "2001:db8:5::e"]);
    assert_eq!(w.ips("s14"), vec!["203.0.113.17", "2001:db8:5::f"]);
    assert_eq!(w.ips("s15"), vec!["203.0.113.18", "2001:db8:5::11"]);
    let status = w.snap.groups[0].status.clone().expect("a status");
    let capacity = status.capacity.expect("capacity");
    assert_eq!(
        (capacity.ipv4.as_str(), capacity.ipv6.as_str()),
        ("56", "240")
    );

    // Asking for an edge is refused with the reason.
    w.edit(
        svc("edge")
            .group("routed")
            .addresses("203.0.113.31")
            .age(100),
    );
    let p = w.pass();
    assert_eq!(
        problems(&p, "edge"),
        vec![reason::REQUESTED_ADDRESS_UNAVAILABLE]
    );
    let msg = &of(&p, "edge").problems[0].message;
    assert!(msg.contains("aggregation block"), "{msg}");

    // A Service that got an edge before (from an older version) keeps it: reported, not moved.
    let old = svc("old")
        .group("routed")
        .ann(ferrolb_api::annotations::ALLOCATED_FROM, "routed")
        .ingress(&["203.0.113.15"])
        .age(200);
    let mut w = World::new(&[routed_g], &[old]);
    w.pass();
    assert_eq!(w.ips("old"), vec!["203.0.113.15"]);
    let (on, msg) = w
        .condition("routed", "OutOfPoolAllocations")
        .expect("condition");
    assert_eq!(on, "True");
    assert!(msg.contains("203.0.113.15 (ns/old)"), "{msg}");
}

#[test]
fn local_groups_ignore_aggregation() {
    // CEL refuses an aggregation on a local group; one that got through changes nothing.
    let g = group("g")
        .v4("192.0.2.0/24", "192.0.2.14-192.0.2.17")
        .aggregation("/29");
    let mut w = World::new(&[g], &[svc("a").group("g"), svc("b").group("g").age(1)]);
    w.pass();
    assert_eq!(w.ips("a"), vec!["192.0.2.14"]);
    assert_eq!(w.ips("b"), vec!["192.0.2.15"]);
}
