//! `lease_annotations`: what the node publishes on its per-node Lease.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_api::contracts::lease;
use ferrolb_api::pool::Family;

use super::{ip, route, svc, world};
use crate::decide::{desired, holds_every_address, lease_annotations};
use crate::snapshot::{Lifecycle, ServiceAddresses};

fn annotations(snapshot: &crate::snapshot::Snapshot, holding: &[&str]) -> BTreeMap<String, String> {
    let want = desired(snapshot, &holds_every_address);
    let holding: BTreeSet<IpAddr> = holding.iter().map(|a| ip(a)).collect();
    lease_annotations(&want, &snapshot.kernel, &holding)
}

#[test]
fn publishes_interfaces_subnets_macs_and_what_it_holds() {
    let mut s = world();
    s.services = vec![
        svc("web", "lan", &["192.0.2.100", "2001:db8:1::10"]),
        svc("api", "routed", &["203.0.113.1", "203.0.113.2"]),
    ];
    let got = annotations(&s, &["2001:db8:1::10", "192.0.2.100"]);
    let want: BTreeMap<String, String> = [
        (lease::GOSSIP_ADDR, "192.0.2.5:7947"),
        (lease::INTERFACE_V4, "eth0"),
        (lease::INTERFACE_V6, "eth0"),
        (lease::SUBNETS, "192.0.2.0/24 2001:db8:1::/64"),
        (lease::MAC, "eth0=02:00:00:00:00:02"),
        (lease::ELIGIBLE, "true"),
        (lease::HOLDING, "192.0.2.100 2001:db8:1::10"),
        (lease::VIRTUAL_COUNT, "2"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn gossip_address_and_interfaces_follow_the_default_routes() {
    let cases: Vec<(
        &str,
        Vec<(Family, u32)>,
        Option<&str>,
        Option<&str>,
        Option<&str>,
        &str,
    )> = vec![
        (
            "v4 on eth1, v6 on eth0",
            vec![(Family::V4, 3), (Family::V6, 2)],
            Some("198.51.100.5:7947"),
            Some("eth1"),
            Some("eth0"),
            "eth0=02:00:00:00:00:02 eth1=02:00:00:00:00:03",
        ),
        (
            "v6 only: the gossip address is the IPv6 one",
            vec![(Family::V6, 2)],
            Some("[2001:db8:1::5]:7947"),
            None,
            Some("eth0"),
            "eth0=02:00:00:00:00:02",
        ),
        ("no default route", vec![], None, None, None, ""),
    ];
    for (name, routes, gossip, v4, v6, macs) in cases {
        let mut s = world();
        s.kernel.default_routes = routes.iter().map(|(f, i)| route(*f, *i, 0)).collect();
        let got = annotations(&s, &[]);
        assert_eq!(
            got.get(lease::GOSSIP_ADDR).map(String::as_str),
            gossip,
            "{name}"
        );
        assert_eq!(
            got.get(lease::INTERFACE_V4).map(String::as_str),
            v4,
            "{name}"
        );
        assert_eq!(
            got.get(lease::INTERFACE_V6).map(String::as_str),
            v6,
            "{name}"
        );
        assert_eq!(got[lease::MAC], macs, "{name}");
    }
}

#[test]
fn says_why_it_is_not_eligible_and_truncates_a_long_holding_list() {
    let mut s = world();
    s.lifecycle = Lifecycle::Draining;
    assert_eq!(annotations(&s, &[])[lease::ELIGIBLE], "false,stopping");

    let s = world();
    let want = desired(&s, &holds_every_address);
    let many: BTreeSet<IpAddr> = (0..5000u32)
        .map(|i| {
            IpAddr::from(std::net::Ipv6Addr::from(
                0x2001_0db8_0001_0000_0000_0000_0000_0000u128 + u128::from(i),
            ))
        })
        .collect();
    let got = lease_annotations(&want, &s.kernel, &many);
    assert_eq!(got[lease::HOLDING].split(' ').count(), 4096);
    assert_eq!(got[lease::HOLDING_TRUNCATED], "true");
    assert!(!annotations(&s, &["192.0.2.100"]).contains_key(lease::HOLDING_TRUNCATED));
}

#[test]
fn an_address_whose_removal_failed_is_still_published_as_held() {
    let mut s = world();
    s.services = vec![svc("web", "lan", &["192.0.2.100"])];
    let want = desired(&s, &holds_every_address);
    let key = |i: &str, a: &str| (i.to_string(), ip(a));
    let none = BTreeSet::new();
    let cases = [
        (
            "desired and added",
            none.clone(),
            none.clone(),
            vec![key("eth0", "192.0.2.100")],
        ),
        (
            "its add failed",
            [key("eth0", "192.0.2.100")].into(),
            none.clone(),
            vec![],
        ),
        (
            "a removal failed: the kernel still has it",
            none.clone(),
            [key("eth0", "192.0.2.101"), key("kube-lb0", "203.0.113.1")].into(),
            vec![key("eth0", "192.0.2.100"), key("eth0", "192.0.2.101")],
        ),
    ];
    for (name, failed, not_removed, want_held) in cases {
        let held = crate::decide::held_local(&want, &failed, &none, &not_removed);
        assert_eq!(held.into_iter().collect::<Vec<_>>(), want_held, "{name}");
    }
}

#[test]
fn each_address_relates_to_one_service_the_first_by_name_when_shared() {
    let service = |key: &str, addresses: &[&str]| ServiceAddresses {
        key: key.into(),
        addresses: addresses.iter().map(|a| a.parse().expect("ip")).collect(),
        ..ServiceAddresses::default()
    };
    let services = [
        service("b/web", &["192.0.2.10", "2001:db8:1::10"]),
        service("a/dns", &["192.0.2.10"]),
        service("c/api", &["192.0.2.11"]),
    ];
    let got = crate::decide::services_by_address(&services);
    let want: Vec<(IpAddr, &str)> = vec![
        ("192.0.2.10".parse().expect("ip"), "a/dns"),
        ("192.0.2.11".parse().expect("ip"), "c/api"),
        ("2001:db8:1::10".parse().expect("ip"), "b/web"),
    ];
    assert_eq!(
        got.iter()
            .map(|(a, k)| (*a, k.as_str()))
            .collect::<Vec<_>>(),
        want
    );
}
