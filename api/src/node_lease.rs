//! A per-node Lease read back as plain facts: what a node's agent publishes (Contracts,
//! "per-node Lease"). The allocator, which mirrors holders onto Services, and the CLI, which
//! explains them, read Leases the same way.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::contracts::{self, IneligibleReason, NODE_LEASE_PREFIX, lease};

/// What a node's agent publishes on its per-node Lease.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeLease {
    pub node: String,
    pub renewed: Option<Timestamp>,
    /// renewTime + leaseDurationSeconds.
    pub expires: Option<Timestamp>,
    /// The `eligible` annotation as written (`None`: not written).
    pub eligible_text: Option<String>,
    /// `None` eligible (also when the annotation is absent or unreadable, as the allocator
    /// reads it), else why not.
    pub ineligible: Option<IneligibleReason>,
    pub interface_v4: Option<String>,
    pub interface_v6: Option<String>,
    pub subnets: Vec<IpNetwork>,
    pub holding: BTreeSet<IpAddr>,
    pub holding_truncated: bool,
    pub virtual_count: Option<u64>,
    pub gossip_addr: Option<String>,
}

impl NodeLease {
    /// `None` for Leases that are not per-node Leases.
    pub fn from_lease(l: &Lease) -> Option<Self> {
        let node = l
            .metadata
            .name
            .as_deref()?
            .strip_prefix(NODE_LEASE_PREFIX)?;
        let a = l.metadata.annotations.clone().unwrap_or_default();
        let spec = l.spec.clone().unwrap_or_default();
        let renewed = spec.renew_time.map(|t| t.0);
        let expires = match (renewed, spec.lease_duration_seconds) {
            (Some(t), Some(d)) => Some(t + SignedDuration::from_secs(i64::from(d))),
            _ => None,
        };
        let words = |k: &str| -> Vec<String> {
            a.get(k)
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        Some(NodeLease {
            node: node.to_string(),
            renewed,
            expires,
            eligible_text: a.get(lease::ELIGIBLE).cloned(),
            ineligible: a
                .get(lease::ELIGIBLE)
                .and_then(|v| contracts::parse_eligible(v).ok())
                .flatten(),
            interface_v4: a.get(lease::INTERFACE_V4).cloned(),
            interface_v6: a.get(lease::INTERFACE_V6).cloned(),
            subnets: words(lease::SUBNETS)
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect(),
            holding: words(lease::HOLDING)
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect(),
            holding_truncated: a.get(lease::HOLDING_TRUNCATED).map(String::as_str) == Some("true"),
            virtual_count: a
                .get(lease::VIRTUAL_COUNT)
                .and_then(|v| v.trim().parse().ok()),
            gossip_addr: a.get(lease::GOSSIP_ADDR).cloned(),
        })
    }

    /// Not past its duration at `now`: the node counts as alive.
    pub fn alive(&self, now: Timestamp) -> bool {
        self.expires.is_some_and(|e| e > now)
    }

    /// The local interface of `addr`'s family.
    pub fn interface(&self, addr: IpAddr) -> Option<&str> {
        match addr {
            IpAddr::V4(_) => self.interface_v4.as_deref(),
            IpAddr::V6(_) => self.interface_v6.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

    fn object(name: &str, annotations: &[(&str, &str)]) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(name.into()),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some("n1".into()),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(
                    "2026-11-30T10:00:00Z".parse().expect("a timestamp"),
                )),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn reads_what_the_agent_publishes() {
        let l = NodeLease::from_lease(&object(
            "ferrolb-node-n1",
            &[
                (lease::ELIGIBLE, "false,carrier-down"),
                (lease::INTERFACE_V4, "eth0"),
                (lease::SUBNETS, "192.0.2.0/24 2001:db8::/64"),
                (lease::HOLDING, "192.0.2.10 2001:db8::10"),
                (lease::VIRTUAL_COUNT, "3"),
            ],
        ))
        .expect("a per-node Lease");
        assert_eq!(l.node, "n1");
        assert_eq!(l.ineligible, Some(IneligibleReason::CarrierDown));
        assert_eq!(l.subnets.len(), 2);
        assert_eq!(l.holding.len(), 2);
        assert_eq!(l.virtual_count, Some(3));
        assert_eq!(
            l.interface("192.0.2.10".parse().expect("an address")),
            Some("eth0")
        );
        assert_eq!(
            l.interface("2001:db8::10".parse().expect("an address")),
            None
        );
        let renewed: Timestamp = "2026-11-30T10:00:00Z".parse().expect("a timestamp");
        assert!(l.alive(renewed + SignedDuration::from_secs(14)));
        assert!(!l.alive(renewed + SignedDuration::from_secs(15)));
    }

    #[test]
    fn other_leases_are_not_node_leases() {
        assert_eq!(
            NodeLease::from_lease(&object("ferrolb-allocator", &[])),
            None
        );
    }
}
