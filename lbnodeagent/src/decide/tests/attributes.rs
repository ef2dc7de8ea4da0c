//! `desired`: flags and lifetimes per kind, the values the node publishes, and a moved route.

use ferrolb_api::pool::Family;

use super::{iface, ip, placed, route, svc, world};
use crate::decide::{AddressKind, IFA_F_NODAD, IFA_F_NOPREFIXROUTE, desired, holds_every_address};
use crate::snapshot::Lifetime;

#[test]
fn sets_flags_and_lifetimes_per_kind_and_family() {
    let mut s = world();
    s.config.local_address_lifetime = 9;
    s.services = vec![
        svc("a", "lan", &["192.0.2.100", "2001:db8:1::10"]),
        svc("b", "routed", &["203.0.113.1", "2001:db8:ff::1"]),
    ];
    let d = desired(&s, &holds_every_address);
    let got: Vec<(String, AddressKind, u32, Lifetime, Lifetime)> = d
        .addresses
        .values()
        .map(|a| (a.address.to_string(), a.kind, a.flags, a.valid, a.preferred))
        .collect();
    let local = AddressKind::Local;
    let virt = AddressKind::Virtual;
    let nine = Lifetime::Seconds(9);
    let forever = Lifetime::Forever;
    assert_eq!(
        got,
        vec![
            ("192.0.2.100".into(), local, IFA_F_NOPREFIXROUTE, nine, nine),
            (
                "2001:db8:1::10".into(),
                local,
                IFA_F_NOPREFIXROUTE | IFA_F_NODAD,
                nine,
                Lifetime::Seconds(0)
            ),
            ("203.0.113.1".into(), virt, 0, forever, forever),
            ("2001:db8:ff::1".into(), virt, IFA_F_NODAD, forever, forever),
        ]
    );
}

#[test]
fn publishes_interfaces_subnets_and_holdings() {
    let mut s = world();
    s.kernel
        .interfaces
        .insert(2, iface(5, "eth2", &["203.0.113.9/24"]));
    s.services = vec![
        svc("a", "lan", &["192.0.2.101", "192.0.2.100"]),
        svc("b", "routed", &["203.0.113.1"]),
    ];
    let d = desired(&s, &holds_every_address);
    assert_eq!(d.local_interface_v4.as_deref(), Some("eth0"));
    assert_eq!(d.local_interface_v6.as_deref(), Some("eth0"));
    let subnets: Vec<String> = d.subnets.iter().map(|n| n.to_string()).collect();
    assert_eq!(subnets, ["192.0.2.0/24", "2001:db8:1::/64"]);
    assert_eq!(d.holding(), [ip("192.0.2.100"), ip("192.0.2.101")]);
    assert_eq!(d.virtual_count(), 1);
    assert!(d.keep_virtual_interface);
}

#[test]
fn default_route_moving_moves_the_local_interface() {
    let mut s = world();
    s.kernel.interfaces[2]
        .addresses
        .push(super::own("192.0.2.6/24"));
    s.services = vec![svc("a", "lan", &["192.0.2.100"])];
    assert_eq!(
        placed(&desired(&s, &holds_every_address)),
        ["eth0 192.0.2.100/24"]
    );
    s.kernel.default_routes = vec![route(Family::V4, 3, 0), route(Family::V6, 2, 100)];
    let d = desired(&s, &holds_every_address);
    assert_eq!(placed(&d), ["eth1 192.0.2.100/24"]);
    assert_eq!(d.local_interface_v4.as_deref(), Some("eth1"));
}
