//! Builders for snapshots, and the tables that test every rule of `decide`.

mod attributes;
mod config;
mod desired;
mod diff;
mod interfaces;
mod published;

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_api::contracts::IFA_PROTO_FERROLB;
use ferrolb_api::pool::{AddrRange, Aggregation, Family, parse_cidr};
use ferrolb_api::servicegroup::GroupType;

use crate::snapshot::{
    AgentConfig, ArpConf, DefaultRoute, Group, GroupPool, Interface, InterfaceAddress, KernelFacts,
    Lifecycle, Lifetime, LocalInterface, NodeFacts, OperState, ServiceAddresses, Snapshot,
};

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// An address the node has of its own (proto 0, permanent).
pub(super) fn own(cidr: &str) -> InterfaceAddress {
    let (addr, prefix) = cidr.split_once('/').expect("test cidr");
    InterfaceAddress {
        address: ip(addr),
        prefix_len: prefix.parse().expect("test prefix"),
        proto: 0,
        flags: 0,
        valid: Lifetime::Forever,
        preferred: Lifetime::Forever,
    }
}

/// An address the agent added (proto 0x66).
pub(super) fn ours(
    cidr: &str,
    flags: u32,
    valid: Lifetime,
    preferred: Lifetime,
) -> InterfaceAddress {
    InterfaceAddress {
        proto: IFA_PROTO_FERROLB,
        flags,
        valid,
        preferred,
        ..own(cidr)
    }
}

pub(super) fn iface(index: u32, name: &str, addrs: &[&str]) -> Interface {
    Interface {
        name: name.to_string(),
        index,
        kind: None,
        admin_up: true,
        carrier: true,
        oper: OperState::Up,
        mac: Some(vec![2, 0, 0, 0, 0, index as u8]),
        arp: Some(ArpConf::default()),
        addresses: addrs.iter().map(|a| own(a)).collect(),
    }
}

pub(super) fn route(family: Family, index: u32, metric: u32) -> DefaultRoute {
    DefaultRoute {
        family,
        interface_index: index,
        metric,
    }
}

fn pool(subnet: &str, range: &str, aggregation: &str) -> GroupPool {
    GroupPool {
        subnet: parse_cidr(subnet).expect("test subnet"),
        range: AddrRange::parse(range).expect("test range"),
        aggregation: Aggregation::parse(aggregation).expect("test aggregation"),
    }
}

/// A Service with addresses from `group`.
pub(super) fn svc(name: &str, group: &str, ips: &[&str]) -> ServiceAddresses {
    ServiceAddresses {
        key: format!("default/{name}"),
        group: group.to_string(),
        addresses: ips.iter().map(|a| ip(a)).collect(),
        local_traffic_policy: false,
        ready_endpoint_nodes: Default::default(),
    }
}

impl ServiceAddresses {
    /// `externalTrafficPolicy: Local` with ready endpoints on `nodes`.
    pub(super) fn local_policy(mut self, nodes: &[&str]) -> Self {
        self.local_traffic_policy = true;
        self.ready_endpoint_nodes = nodes.iter().map(|n| n.to_string()).collect();
        self
    }
}

pub(super) fn config() -> AgentConfig {
    AgentConfig {
        source: Some("default".into()),
        also_selecting: Vec::new(),
        selects_node: true,
        local_interface: LocalInterface::DefaultRoute,
        virtual_interface: "kube-lb0".into(),
        local_address_lifetime: 5,
        gratuitous: Default::default(),
        drain: std::time::Duration::from_secs(5),
        gossip_settle: std::time::Duration::from_secs(2),
    }
}

/// Node `n1`: eth0 (default route, both families) on 192.0.2.0/24 and 2001:db8:1::/64, eth1 on
/// 198.51.100.0/24, kube-lb0; groups `lan` (local, both families), `lan2` (local, eth1's
/// subnet) and `routed` (virtual: /28 aggregates for IPv4, the subnet's /48 for IPv6).
pub(super) fn world() -> Snapshot {
    let mut kube_lb0 = iface(4, "kube-lb0", &[]);
    kube_lb0.kind = Some("ifb".into());
    kube_lb0.oper = OperState::Unknown;
    let groups = BTreeMap::from([
        (
            "lan".to_string(),
            Group {
                kind: GroupType::Local,
                pools: vec![
                    pool("192.0.2.0/24", "192.0.2.100-192.0.2.150", "default"),
                    pool("2001:db8:1::/64", "2001:db8:1::/120", "default"),
                ],
            },
        ),
        (
            "lan2".to_string(),
            Group {
                kind: GroupType::Local,
                pools: vec![pool(
                    "198.51.100.0/24",
                    "198.51.100.10-198.51.100.20",
                    "default",
                )],
            },
        ),
        (
            "routed".to_string(),
            Group {
                kind: GroupType::Virtual,
                pools: vec![
                    pool("203.0.113.0/24", "203.0.113.0/26", "/28"),
                    pool("2001:db8:ff::/48", "2001:db8:ff::/120", "default"),
                ],
            },
        ),
    ]);
    Snapshot {
        node: NodeFacts {
            name: "n1".into(),
            labels: BTreeMap::from([("kubernetes.io/hostname".into(), "n1".into())]),
            ready: true,
            network_unavailable: false,
        },
        config: config(),
        groups,
        services: Vec::new(),
        kernel: KernelFacts {
            interfaces: vec![
                iface(1, "lo", &["127.0.0.1/8", "::1/128"]),
                iface(
                    2,
                    "eth0",
                    &["192.0.2.5/24", "2001:db8:1::5/64", "fe80::1/64"],
                ),
                iface(3, "eth1", &["198.51.100.5/24", "fe80::2/64"]),
                kube_lb0,
            ],
            default_routes: vec![route(Family::V4, 2, 100), route(Family::V6, 2, 100)],
            arp_all: Some(ArpConf::default()),
        },
        lifecycle: Lifecycle::Running,
    }
}

/// The desired addresses as `interface address/prefix`, sorted.
pub(super) fn placed(d: &crate::decide::Desired) -> Vec<String> {
    d.addresses
        .values()
        .map(|a| format!("{} {}/{}", a.interface, a.address, a.prefix_len))
        .collect()
}
