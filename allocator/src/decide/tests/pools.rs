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
