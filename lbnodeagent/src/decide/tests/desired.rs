//! `desired`: where each address goes, and why it does not.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ferrolb_api::contracts::{EXCLUDE_LABEL, IneligibleReason as R};
use ferrolb_api::pool::Family;
use regex::Regex;

use super::{ours, placed, route, svc, world};
use crate::decide::{IFA_F_NOPREFIXROUTE, SkipReason, desired, holds_every_address};
use crate::snapshot::{Lifecycle, Lifetime, LocalInterface, OperState, Snapshot};

struct Case {
    name: &'static str,
    setup: fn(&mut Snapshot),
    holds: fn(&IpAddr, Option<&BTreeSet<String>>) -> bool,
    want: &'static [&'static str],
    /// Debug text of each skip reason, in Service order.
    skipped: &'static [&'static str],
    eligible: Option<R>,
}

const ALL: fn(&IpAddr, Option<&BTreeSet<String>>) -> bool = holds_every_address;

fn lan(s: &mut Snapshot) {
    s.services = vec![svc("web", "lan", &["192.0.2.100", "2001:db8:1::10"])];
}

fn routed(s: &mut Snapshot) {
    s.services = vec![svc("api", "routed", &["203.0.113.1", "2001:db8:ff::1"])];
}

fn both(s: &mut Snapshot) {
    s.services = vec![
        svc("api", "routed", &["203.0.113.1"]),
        svc("web", "lan", &["192.0.2.100"]),
    ];
}

const LAN: &[&str] = &["eth0 192.0.2.100/24", "eth0 2001:db8:1::10/64"];

#[test]
fn places_each_address_by_the_rules() {
    let cases = [
        Case {
            name: "local addresses go on the default route's interface with the subnet's prefix",
            setup: lan,
            holds: ALL,
            want: LAN,
            skipped: &[],
            eligible: None,
        },
        Case {
            name: "virtual addresses go on kube-lb0 with the aggregation (/28, and default = subnet)",
            setup: routed,
            holds: ALL,
            want: &["kube-lb0 203.0.113.1/28", "kube-lb0 2001:db8:ff::1/48"],
            skipped: &[],
            eligible: None,
        },
        Case {
            name: "several virtual addresses of one aggregate all go on kube-lb0",
            setup: |s| {
                s.services = vec![
                    svc("a", "routed", &["203.0.113.1"]),
                    svc("b", "routed", &["203.0.113.2", "203.0.113.3"]),
                ]
            },
            holds: ALL,
            want: &[
                "kube-lb0 203.0.113.1/28",
                "kube-lb0 203.0.113.2/28",
                "kube-lb0 203.0.113.3/28",
            ],
            skipped: &[],
            eligible: None,
        },
        Case {
            name: "the default route with the lowest metric picks the interface",
            setup: |s| {
                s.kernel.default_routes.push(route(Family::V4, 3, 50));
                s.services = vec![
                    svc("a", "lan", &["192.0.2.100"]),
                    svc("b", "lan2", &["198.51.100.10"]),
                ];
            },
            holds: ALL,
            want: &["eth1 198.51.100.10/24"],
            skipped: &["SubnetNotOnLocalInterface(eth1, 192.0.2.0/24)"],
            eligible: None,
        },
        Case {
            name: "equal metrics: the lower interface index wins",
            setup: |s| {
                s.kernel.default_routes =
                    vec![route(Family::V4, 3, 100), route(Family::V4, 2, 100)];
                s.services = vec![svc("a", "lan", &["192.0.2.100"])];
            },
            holds: ALL,
            want: &["eth0 192.0.2.100/24"],
            skipped: &[],
            eligible: None,
        },
        Case {
            name: "a regex picks the first matching interface",
            setup: |s| {
                s.config.local_interface =
                    LocalInterface::Matching(Regex::new("eth1").expect("re"));
                s.services = vec![
                    svc("a", "lan2", &["198.51.100.10"]),
                    svc("b", "lan", &["2001:db8:1::10"]),
                ];
            },
            holds: ALL,
            // eth1 has no IPv6 address of its own but is still the only match for IPv6.
            want: &["eth1 198.51.100.10/24"],
            skipped: &["SubnetNotOnLocalInterface(eth1, 2001:db8:1::/64)"],
            eligible: None,
        },
        Case {
            name: "a regex prefers, per family, a matching interface that has that family",
            setup: |s| {
                s.kernel.interfaces[1]
                    .addresses
                    .retain(|a| a.address.is_ipv6());
                s.kernel.interfaces[2]
                    .addresses
                    .push(super::own("2001:db8:2::5/64"));
                s.config.local_interface =
                    LocalInterface::Matching(Regex::new("^eth").expect("re"));
                s.services = vec![
                    svc("a", "lan2", &["198.51.100.10"]),
                    svc("b", "lan", &["2001:db8:1::10"]),
                ];
            },
            holds: ALL,
            want: &["eth0 2001:db8:1::10/64", "eth1 198.51.100.10/24"],
            skipped: &[],
            eligible: None,
        },
        Case {
            name: "loopback and the virtual interface are never local",
            setup: |s| {
                s.config.local_interface =
                    LocalInterface::Matching(Regex::new("lo|kube").expect("re"));
                lan(s);
            },
            holds: ALL,
            want: &[],
            skipped: &["NoLocalInterface(V4)", "NoLocalInterface(V6)"],
            eligible: None,
        },
        Case {
            name: "no IPv6 default route: no IPv6 local address",
            setup: |s| {
                s.kernel.default_routes.retain(|r| r.family == Family::V4);
                lan(s);
            },
            holds: ALL,
            want: &["eth0 192.0.2.100/24"],
            skipped: &["NoLocalInterface(V6)"],
            eligible: None,
        },
        Case {
            name: "our own address does not count as the node having the subnet",
            setup: |s| {
                s.kernel.interfaces[1].addresses = vec![ours(
                    "192.0.2.100/24",
                    IFA_F_NOPREFIXROUTE,
                    Lifetime::Seconds(4),
                    Lifetime::Seconds(4),
                )];
                s.services = vec![svc("a", "lan", &["192.0.2.100"])];
            },
            holds: ALL,
            want: &[],
            skipped: &["SubnetNotOnLocalInterface(eth0, 192.0.2.0/24)"],
            eligible: None,
        },
        Case {
            name: "not selected by the LBNodeAgent: neither local nor virtual",
            setup: |s| {
                s.config.selects_node = false;
                both(s);
            },
            holds: ALL,
            want: &[],
            skipped: &["NotEligible(NotSelected)", "NotEligible(NotSelected)"],
            eligible: Some(R::NotSelected),
        },
        Case {
            name: "the exclusion label excludes, whatever its value",
            setup: |s| {
                s.node.labels.insert(EXCLUDE_LABEL.into(), String::new());
                both(s);
            },
            holds: ALL,
            want: &[],
            skipped: &["NotEligible(ExcludedLabel)", "NotEligible(ExcludedLabel)"],
            eligible: Some(R::ExcludedLabel),
        },
        Case {
            name: "a NotReady node carries nothing",
            setup: |s| {
                s.node.ready = false;
                both(s);
            },
            holds: ALL,
            want: &[],
            skipped: &["NotEligible(NotReady)", "NotEligible(NotReady)"],
            eligible: Some(R::NotReady),
        },
        Case {
            name: "NetworkUnavailable carries nothing",
            setup: |s| {
                s.node.network_unavailable = true;
                both(s);
            },
            holds: ALL,
            want: &[],
            skipped: &[
                "NotEligible(NetworkUnavailable)",
                "NotEligible(NetworkUnavailable)",
            ],
            eligible: Some(R::NetworkUnavailable),
        },
        Case {
            name: "carrier down on the local interface: no local address, virtual ones stay",
            setup: |s| {
                s.kernel.interfaces[1].carrier = false;
                both(s);
            },
            holds: ALL,
            want: &["kube-lb0 203.0.113.1/28"],
            skipped: &["NotEligible(CarrierDown)"],
            eligible: Some(R::CarrierDown),
        },
        Case {
            name: "operational state down counts as carrier down",
            setup: |s| {
                s.kernel.interfaces[1].oper = OperState::LowerLayerDown;
                both(s);
            },
            holds: ALL,
            want: &["kube-lb0 203.0.113.1/28"],
            skipped: &["NotEligible(CarrierDown)"],
            eligible: Some(R::CarrierDown),
        },
        Case {
            name: "carrier down on an interface that is not local changes nothing",
            setup: |s| {
                s.kernel.interfaces[2].carrier = false;
                both(s);
            },
            holds: ALL,
            want: &["eth0 192.0.2.100/24", "kube-lb0 203.0.113.1/28"],
            skipped: &[],
            eligible: None,
        },
        Case {
            name: "draining: local addresses go at once, virtual ones stay",
            setup: |s| {
                s.lifecycle = Lifecycle::Draining;
                s.kernel.interfaces[1].carrier = false;
                both(s);
            },
            holds: ALL,
            want: &["kube-lb0 203.0.113.1/28"],
            skipped: &["NotEligible(Stopping)"],
            eligible: Some(R::Stopping),
        },
        Case {
            name: "drained: virtual addresses go too",
            setup: |s| {
                s.lifecycle = Lifecycle::Drained;
                both(s);
            },
            holds: ALL,
            want: &[],
            skipped: &["NotEligible(Stopping)", "NotEligible(Stopping)"],
            eligible: Some(R::Stopping),
        },
        Case {
            name: "externalTrafficPolicy Local with a ready endpoint here: both kinds placed",
            setup: |s| {
                s.services = vec![
                    svc("a", "routed", &["203.0.113.1"]).local_policy(&["n1", "n2"]),
                    svc("b", "lan", &["192.0.2.100"]).local_policy(&["n1"]),
                ]
            },
            holds: ALL,
            want: &["eth0 192.0.2.100/24", "kube-lb0 203.0.113.1/28"],
            skipped: &[],
            eligible: None,
        },
        Case {
            name: "externalTrafficPolicy Local without a ready endpoint here: neither kind",
            setup: |s| {
                s.services = vec![
                    svc("a", "routed", &["203.0.113.1"]).local_policy(&["n2"]),
                    svc("b", "lan", &["192.0.2.100"]).local_policy(&[]),
                ]
            },
            holds: ALL,
            want: &[],
            skipped: &["NoReadyLocalEndpoint", "NoReadyLocalEndpoint"],
            eligible: None,
        },
        Case {
            name: "a local address another node holds is not placed; virtual ones ignore holders",
            setup: |s| {
                s.services = vec![
                    svc("a", "routed", &["203.0.113.1"]),
                    svc("b", "lan", &["192.0.2.100", "192.0.2.101"]),
                ]
            },
            holds: |a, _| *a == "192.0.2.101".parse::<IpAddr>().expect("ip"),
            want: &["eth0 192.0.2.101/24", "kube-lb0 203.0.113.1/28"],
            skipped: &["NotHolder"],
            eligible: None,
        },
        Case {
            name: "the holder is asked with the endpoint nodes under the Local policy only",
            setup: |s| {
                s.services = vec![
                    svc("a", "lan", &["192.0.2.100"]).local_policy(&["n1", "n2"]),
                    svc("b", "lan", &["192.0.2.101"]),
                ]
            },
            holds: |_, endpoints| endpoints.is_some_and(|n| n.len() == 2 && n.contains("n2")),
            want: &["eth0 192.0.2.100/24"],
            skipped: &["NotHolder"],
            eligible: None,
        },
        Case {
            name: "an unknown group or an address outside it is skipped",
            setup: |s| {
                s.services = vec![
                    svc("a", "gone", &["192.0.2.100"]),
                    svc("b", "lan", &["198.51.100.10"]),
                ]
            },
            holds: ALL,
            want: &[],
            skipped: &["UnknownGroup", "OutsideGroup"],
            eligible: None,
        },
        Case {
            name: "an address kept after its range shrank still goes where its subnet says",
            setup: |s| s.services = vec![svc("a", "lan", &["192.0.2.200"])],
            holds: ALL,
            want: &["eth0 192.0.2.200/24"],
            skipped: &[],
            eligible: None,
        },
        Case {
            name: "a shared address is placed once",
            setup: |s| {
                s.services = vec![
                    svc("a", "lan", &["192.0.2.100"]),
                    svc("b", "lan", &["192.0.2.100"]),
                ]
            },
            holds: ALL,
            want: &["eth0 192.0.2.100/24"],
            skipped: &[],
            eligible: None,
        },
    ];
    for case in cases {
        let mut s = world();
        (case.setup)(&mut s);
        let d = desired(&s, &case.holds);
        assert_eq!(placed(&d), case.want, "{}", case.name);
        let skipped: Vec<String> = d.skipped.iter().map(|k| reason(&k.why)).collect();
        assert_eq!(skipped, case.skipped, "{}", case.name);
        assert_eq!(d.eligible, case.eligible, "{}", case.name);
    }
}

fn reason(why: &SkipReason) -> String {
    match why {
        SkipReason::SubnetNotOnLocalInterface { interface, subnet } => {
            format!("SubnetNotOnLocalInterface({interface}, {subnet})")
        }
        other => format!("{other:?}"),
    }
}
