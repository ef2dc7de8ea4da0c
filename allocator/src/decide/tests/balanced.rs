//! `balancePools`: a group's new allocations spread evenly over its pools, per family;
//! requested and shared addresses as always; nothing renumbered.

use super::*;

/// Two IPv4 pools of three and one IPv6 pool of two, with `balancePools` as given.
fn two_pools(balance: bool) -> G {
    group("g")
        .v4("192.0.2.0/24", "192.0.2.10-192.0.2.12")
        .v4("198.51.100.0/24", "198.51.100.10-198.51.100.12")
        .v6("2001:db8::/64", "2001:db8::10-2001:db8::11")
        .set("balancePools", balance.into())
}

#[test]
fn spreads_new_allocations_over_the_pools() {
    // (name, balancePools, Services (oldest first), want per Service)
    type Case<'a> = (&'a str, bool, Vec<S>, &'a [(&'a str, &'a [&'a str])]);
    let cases: Vec<Case> = vec![
        (
            "off: lowest first",
            false,
            vec![
                svc("a").group("g"),
                svc("b").group("g"),
                svc("c").group("g"),
            ],
            &[
                ("a", &["192.0.2.10"]),
                ("b", &["192.0.2.11"]),
                ("c", &["192.0.2.12"]),
            ],
        ),
        (
            "on: the pool with the fewest, ties by order",
            true,
            vec![
                svc("a").group("g"),
                svc("b").group("g"),
                svc("c").group("g"),
            ],
            &[
                ("a", &["192.0.2.10"]),
                ("b", &["198.51.100.10"]),
                ("c", &["192.0.2.11"]),
            ],
        ),
        (
            "on, per family",
            true,
            vec![
                svc("a").group("g").dual("RequireDualStack"),
                svc("b").group("g").dual("RequireDualStack"),
            ],
            &[
                ("a", &["192.0.2.10", "2001:db8::10"]),
                ("b", &["198.51.100.10", "2001:db8::11"]),
            ],
        ),
        (
            "on: a requested address counts, and is not moved",
            true,
            vec![
                svc("a").group("g").addresses("192.0.2.12"),
                svc("b").group("g"),
                svc("c").group("g"),
            ],
            &[
                ("a", &["192.0.2.12"]),
                ("b", &["198.51.100.10"]),
                ("c", &["192.0.2.10"]),
            ],
        ),
        (
            "on: sharing joins the key's address",
            true,
            vec![
                svc("a").group("g").key("k"),
                svc("b").group("g").key("k").ports(&[("TCP", 443)]),
                svc("c").group("g"),
            ],
            &[
                ("a", &["192.0.2.10"]),
                ("b", &["192.0.2.10"]),
                ("c", &["198.51.100.10"]),
            ],
        ),
    ];
    for (name, balance, services, want) in cases {
        let services: Vec<S> = services
            .into_iter()
            .enumerate()
            .map(|(i, s)| s.age(i as u32))
            .collect();
        let mut w = World::new(&[two_pools(balance)], &services);
        w.pass();
        for (svc, ips) in want {
            assert_eq!(w.ips(svc), *ips, "{name}: {svc}");
        }
    }
}

#[test]
fn switching_it_on_renumbers_nothing() {
    let services: Vec<S> = ["a", "b"]
        .iter()
        .enumerate()
        .map(|(i, n)| svc(n).group("g").age(i as u32))
        .collect();
    let mut w = World::new(&[two_pools(false)], &services);
    w.pass();
    assert_eq!(w.ips("a"), ["192.0.2.10"]);
    assert_eq!(w.ips("b"), ["192.0.2.11"]);
    w.set_group(two_pools(true));
    w.edit(svc("c").group("g").age(5));
    w.edit(svc("d").group("g").age(6));
    w.pass();
    assert_eq!(w.ips("a"), ["192.0.2.10"], "kept");
    assert_eq!(w.ips("b"), ["192.0.2.11"], "kept");
    assert_eq!(w.ips("c"), ["198.51.100.10"], "the emptier pool");
    assert_eq!(w.ips("d"), ["198.51.100.11"], "still the emptier pool");
}
