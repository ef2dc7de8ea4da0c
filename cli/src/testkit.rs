//! Builders of plain cluster data for the pure tests.

use std::collections::BTreeMap;

use ferrolb_api::ServiceGroupSpec;
use ferrolb_api::annotations as ann;
use ferrolb_api::contracts::parse_eligible;
use ferrolb_api::servicegroup::{LocalSpec, Pool, VirtualSpec};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::cluster::{Cluster, Group, NodeInfo, NodeLease, ServiceInfo};

pub fn now() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().expect("a timestamp")
}

pub fn pool(subnet: &str, range: &str, aggregation: Option<&str>) -> Pool {
    Pool {
        subnet: subnet.into(),
        pool: range.into(),
        aggregation: aggregation.map(str::to_string),
    }
}

pub fn local_group(name: &str) -> Group {
    Group {
        name: name.into(),
        spec: ServiceGroupSpec {
            local: Some(LocalSpec {
                v4pools: vec![pool("192.0.2.0/24", "192.0.2.100-192.0.2.150", None)],
                v6pools: vec![pool("2001:db8:1::/64", "2001:db8:1::/120", None)],
                ..Default::default()
            }),
            ..Default::default()
        },
        status: None,
    }
}

pub fn virtual_group(name: &str) -> Group {
    Group {
        name: name.into(),
        spec: ServiceGroupSpec {
            virtual_: Some(VirtualSpec {
                v4pools: vec![pool("203.0.113.0/24", "203.0.113.0/26", Some("/28"))],
                ..Default::default()
            }),
            ..Default::default()
        },
        status: None,
    }
}

/// A node with a fresh Lease renewed 2 s ago on `eth0` with the demo LAN's subnets.
pub fn node(name: &str, eligible: &str, holding: &[&str]) -> (NodeInfo, NodeLease) {
    let info = NodeInfo {
        name: name.into(),
        ready: true,
        ..Default::default()
    };
    let renewed = now() - SignedDuration::from_secs(2);
    let lease = NodeLease {
        node: name.into(),
        renewed: Some(renewed),
        expires: Some(renewed + SignedDuration::from_secs(15)),
        eligible_text: Some(eligible.into()),
        ineligible: parse_eligible(eligible).expect("a valid eligible value"),
        interface_v4: Some("eth0".into()),
        interface_v6: Some("eth0".into()),
        subnets: vec![
            "192.0.2.0/24".parse().expect("a CIDR"),
            "2001:db8:1::/64".parse().expect("a CIDR"),
        ],
        holding: holding
            .iter()
            .map(|a| a.parse().expect("an address"))
            .collect(),
        holding_truncated: false,
        virtual_count: Some(1),
        gossip_addr: None,
    };
    (info, lease)
}

pub fn cluster(groups: Vec<Group>, nodes: Vec<(NodeInfo, NodeLease)>) -> Cluster {
    Cluster {
        now: now(),
        groups: groups.into_iter().map(|g| (g.name.clone(), g)).collect(),
        nodes: nodes
            .iter()
            .map(|(n, _)| (n.name.clone(), n.clone()))
            .collect(),
        leases: nodes
            .into_iter()
            .map(|(_, l)| (l.node.clone(), l))
            .collect(),
        bad_leases: Default::default(),
        agents: Vec::new(),
    }
}

pub fn service(group: &str, kind: &str, addresses: &[&str]) -> ServiceInfo {
    ServiceInfo {
        namespace: "demo".into(),
        name: "web".into(),
        type_: "LoadBalancer".into(),
        lb_class: None,
        etp_local: false,
        addresses: addresses
            .iter()
            .map(|a| a.parse().expect("an address"))
            .collect(),
        annotations: BTreeMap::from([
            (ann::ALLOCATED_FROM.to_string(), group.to_string()),
            (ann::POOL_TYPE.to_string(), kind.to_string()),
        ]),
        labels: BTreeMap::new(),
        namespace_labels: Some(BTreeMap::new()),
        families: Vec::new(),
        policy: Default::default(),
        endpoint_nodes: Default::default(),
    }
}
