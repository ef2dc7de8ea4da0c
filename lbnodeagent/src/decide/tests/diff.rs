//! `diff`: the changes from the kernel's owned addresses to the desired ones.

use super::{ours, own, svc, world};
use crate::decide::{
    IFA_F_NODAD, IFA_F_NOPREFIXROUTE, Observed, blocked, desired, diff, holds_every_address,
    renewal_due, renewal_period,
};
use crate::snapshot::{Lifecycle, Lifetime, Snapshot};

const NPR: u32 = IFA_F_NOPREFIXROUTE;
const S: fn(u32) -> Lifetime = Lifetime::Seconds;
const FOREVER: Lifetime = Lifetime::Forever;

fn lan_and_routed(s: &mut Snapshot) {
    s.services = vec![
        svc("web", "lan", &["192.0.2.100"]),
        svc("api", "routed", &["203.0.113.1"]),
    ];
}

/// Puts an address on the interface at position `i` of the world's interfaces
/// (1 = eth0, 2 = eth1, 3 = kube-lb0).
fn put(s: &mut Snapshot, i: usize, addr: crate::snapshot::InterfaceAddress) {
    s.kernel.interfaces[i].addresses.push(addr);
}

fn fresh_virtual(s: &mut Snapshot) {
    put(s, 3, ours("203.0.113.1/28", 0, FOREVER, FOREVER));
}

#[test]
fn turns_owned_addresses_into_desired_ones() {
    let cases: &[(&str, fn(&mut Snapshot), &[&str])] = &[
        (
            "nothing there yet: add both kinds",
            lan_and_routed,
            &["add eth0 192.0.2.100/24", "add kube-lb0 203.0.113.1/28"],
        ),
        (
            "everything in place and fresh: no change",
            |s| {
                lan_and_routed(s);
                put(s, 1, ours("192.0.2.100/24", NPR, S(5), S(5)));
                fresh_virtual(s);
            },
            &[],
        ),
        (
            "a local address with less than a third of its lifetime gone is left alone",
            |s| {
                lan_and_routed(s);
                put(s, 1, ours("192.0.2.100/24", NPR, S(4), S(4)));
                fresh_virtual(s);
            },
            &[],
        ),
        (
            "a local address with a third of its lifetime gone is renewed",
            |s| {
                lan_and_routed(s);
                put(s, 1, ours("192.0.2.100/24", NPR, S(3), S(3)));
                fresh_virtual(s);
            },
            &["renew eth0 192.0.2.100/24"],
        ),
        (
            "a local address that outlives a shortened lifetime is renewed",
            |s| {
                lan_and_routed(s);
                put(s, 1, ours("192.0.2.100/24", NPR, S(60), S(60)));
                fresh_virtual(s);
            },
            &["renew eth0 192.0.2.100/24"],
        ),
        (
            "a local address of ours that never expires is renewed",
            |s| {
                lan_and_routed(s);
                put(s, 1, ours("192.0.2.100/24", NPR, FOREVER, FOREVER));
                fresh_virtual(s);
            },
            &["renew eth0 192.0.2.100/24"],
        ),
        (
            "an IPv6 local address preferred again is renewed (preferred 0)",
            |s| {
                s.services = vec![svc("web", "lan", &["2001:db8:1::10"])];
                put(
                    s,
                    1,
                    ours("2001:db8:1::10/64", NPR | IFA_F_NODAD, S(5), S(5)),
                );
            },
            &["renew eth0 2001:db8:1::10/64"],
        ),
        (
            "an IPv6 local address with preferred 0 and a fresh lifetime is left alone",
            |s| {
                s.services = vec![svc("web", "lan", &["2001:db8:1::10"])];
                put(
                    s,
                    1,
                    ours("2001:db8:1::10/64", NPR | IFA_F_NODAD, S(5), S(0)),
                );
            },
            &[],
        ),
        (
            "a virtual address with a lifetime is renewed to forever",
            |s| {
                s.services = vec![svc("api", "routed", &["203.0.113.1"])];
                put(s, 3, ours("203.0.113.1/28", 0, S(100), S(100)));
            },
            &["renew kube-lb0 203.0.113.1/28"],
        ),
        (
            "a local address with the wrong prefix is replaced",
            |s| {
                lan_and_routed(s);
                put(s, 1, ours("192.0.2.100/32", NPR, S(5), S(5)));
                fresh_virtual(s);
            },
            &["remove eth0 192.0.2.100/32", "add eth0 192.0.2.100/24"],
        ),
        (
            "a local address on the wrong interface is moved",
            |s| {
                lan_and_routed(s);
                put(s, 2, ours("192.0.2.100/24", NPR, S(5), S(5)));
                fresh_virtual(s);
            },
            &["remove eth1 192.0.2.100/24", "add eth0 192.0.2.100/24"],
        ),
        (
            "a local address without noprefixroute is replaced",
            |s| {
                lan_and_routed(s);
                put(s, 1, ours("192.0.2.100/24", 0, S(5), S(5)));
                fresh_virtual(s);
            },
            &["remove eth0 192.0.2.100/24", "add eth0 192.0.2.100/24"],
        ),
        (
            "a second copy of an address is removed, the matching one kept",
            |s| {
                lan_and_routed(s);
                put(s, 1, ours("192.0.2.100/24", NPR, S(5), S(5)));
                put(s, 1, ours("192.0.2.100/28", NPR, S(5), S(5)));
                fresh_virtual(s);
            },
            &["remove eth0 192.0.2.100/28"],
        ),
        (
            "stale owned addresses are removed, before anything is added",
            |s| {
                s.services = vec![svc("web", "lan", &["192.0.2.101"])];
                put(s, 1, ours("192.0.2.100/24", NPR, S(5), S(5)));
                put(s, 3, ours("203.0.113.2/28", 0, FOREVER, FOREVER));
            },
            &[
                "remove eth0 192.0.2.100/24",
                "remove kube-lb0 203.0.113.2/28",
                "add eth0 192.0.2.101/24",
            ],
        ),
        (
            "addresses without our proto are never touched",
            |s| {
                put(s, 1, own("192.0.2.77/24"));
                put(s, 3, own("203.0.113.77/28"));
            },
            &[],
        ),
        (
            "a desired address someone else already put there is left to them",
            |s| {
                lan_and_routed(s);
                put(s, 1, own("192.0.2.100/24"));
                fresh_virtual(s);
            },
            &[],
        ),
        (
            "a missing virtual interface is created before its addresses are added",
            |s| {
                lan_and_routed(s);
                s.kernel.interfaces.retain(|i| i.name != "kube-lb0");
            },
            &[
                "create kube-lb0",
                "add eth0 192.0.2.100/24",
                "add kube-lb0 203.0.113.1/28",
            ],
        ),
        (
            "drained: virtual addresses and then the interface go",
            |s| {
                lan_and_routed(s);
                s.lifecycle = Lifecycle::Drained;
                put(s, 1, ours("192.0.2.100/24", NPR, S(5), S(5)));
                fresh_virtual(s);
            },
            &[
                "remove eth0 192.0.2.100/24",
                "remove kube-lb0 203.0.113.1/28",
                "remove link kube-lb0",
            ],
        ),
        (
            "draining: local addresses go, virtual ones stay",
            |s| {
                lan_and_routed(s);
                s.lifecycle = Lifecycle::Draining;
                put(s, 1, ours("192.0.2.100/24", NPR, S(5), S(5)));
                fresh_virtual(s);
            },
            &["remove eth0 192.0.2.100/24"],
        ),
    ];
    for (name, setup, want) in cases {
        let mut s = world();
        setup(&mut s);
        let d = desired(&s, &holds_every_address);
        let changes: Vec<String> = diff(&d, &Observed::from_kernel(&s.kernel))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(changes, *want, "{name}");
    }
}

#[test]
fn reports_addresses_blocked_by_someone_elses() {
    let mut s = world();
    lan_and_routed(&mut s);
    put(&mut s, 1, own("192.0.2.100/32"));
    let d = desired(&s, &holds_every_address);
    let observed = Observed::from_kernel(&s.kernel);
    let blocked: Vec<String> = blocked(&d, &observed)
        .iter()
        .map(|a| a.address.to_string())
        .collect();
    assert_eq!(blocked, ["192.0.2.100"]);
    assert!(observed.owned.is_empty());
}

#[test]
fn renews_every_third_of_the_lifetime() {
    // (lifetime, seconds left, due)
    let cases = [
        (5, 5, false),
        (5, 4, false),
        (5, 3, true),
        (5, 0, true),
        (6, 4, true),
        (6, 5, false),
        (3, 2, true),
        (3, 3, false),
        (30, 21, false),
        (30, 20, true),
        (5, 6, true),
    ];
    for (lifetime, left, due) in cases {
        assert_eq!(
            renewal_due(lifetime, left),
            due,
            "lifetime {lifetime}, {left} left"
        );
    }
    assert_eq!(renewal_period(5).as_millis(), 1666);
    assert_eq!(renewal_period(3).as_millis(), 1000);
}
